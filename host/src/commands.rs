//! The domain commands of `pvbuild`: `create`, `destroy`, `list`, `console`, as xl does them.
//!
//! `create` works in two halves. Everything that reads outside input (the config file, the
//! kernel, the ramdisk, the command line) is parsed and the layout solved first, without
//! touching the hypervisor, so bad input never leaves a domain behind. Then [`crate::build::pv`]
//! builds the domain, the xenstore entries are written and the guest is unpaused; a failure in
//! any of these undoes what came before it, in reverse order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pvbuild_core::limits::MAX_GUEST_CMDLINE;

use crate::build::domain::{
    hvm_dm_args, make_domain, FailAt, Host, Image, Prepared, BACKEND_DOMID,
};
use crate::build::pv;
use crate::config::{Action, DiskFormat, DomainConfig};
use crate::devices::vif::{self, HotplugAction};
use crate::devmodel::{self, DmRequest};
use crate::plan::{Inputs, PlanError};
use crate::support::log;
use crate::xen::{DomainInfo, Xen};
use crate::xenstore::{self, Uuid, VbdBackend, XsConnection};

/// How often a waiting `create` looks at the domain.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What `pvbuild create` was asked for, from flags and/or an xl config file.
#[derive(Debug, Clone, Default)]
pub struct CreateArgs {
    /// An xl config file.
    pub config: Option<PathBuf>,
    /// `KEY=VALUE` settings after the config file, appended to its text as xl appends them.
    pub overrides: Vec<String>,
    /// `-n`: print the resolved configuration as JSON and stop, without touching Xen.
    pub dry_run: bool,
    /// `-d`: print the resolved configuration as JSON on stderr, then create.
    pub debug: bool,
    /// `--name` (overrides the config's).
    pub name: Option<String>,
    /// `--kernel`.
    pub kernel: Option<PathBuf>,
    /// `--ramdisk`.
    pub ramdisk: Option<PathBuf>,
    /// `--cmdline`.
    pub cmdline: Option<String>,
    /// `--memory` in MiB.
    pub memory_mib: Option<u64>,
    /// `--vcpus`.
    pub vcpus: Option<u32>,
    /// `-p`: leave the guest paused.
    pub paused: bool,
    /// `-c`: attach to the console.
    pub console: bool,
    /// `--wait`: wait for the guest to shut down, report why, and act on it.
    pub wait: bool,
    /// `--timeout` in seconds for `--wait` (0: none).
    pub timeout_s: u64,
    /// Test-only: fail this step.
    pub fail_at: Option<FailAt>,
    /// Leave a monitor in the background when `create` returns at once (xl's default; `-e`
    /// turns it off): it acts on the guest's shutdown as `--wait` does.
    pub monitor: bool,
    /// Be the background monitor of this domain (made by the same arguments).
    pub adopt: Option<u16>,
    /// `--bootloader` (overrides the config's).
    pub bootloader: Option<String>,
    /// `--bootloader-arg`, repeated (replace the config's `bootloader_args`).
    pub bootloader_args: Vec<String>,
    /// `--disk`, repeated: the guest's disks as xl disk specs (replace the config's).
    pub disks: Vec<String>,
    /// `--device-model`: the QEMU serving the disks (overrides `device_model_override`).
    pub device_model: Option<PathBuf>,
    /// `--vif`, repeated: the guest's network interfaces as xl vif specs (replace the
    /// config's).
    pub vifs: Vec<String>,
    /// `--bootloader-timeout`, seconds (default [`crate::devices::bootloader::DEFAULT_TIMEOUT`]).
    pub bootloader_timeout_s: Option<u64>,
    /// `--bootloader-max-size`, bytes (default [`crate::devices::bootloader::DEFAULT_MAX_FILE`]).
    pub bootloader_max_file: Option<u64>,
    /// `--bootloader-user` (overrides the config's `bootloader_user`).
    pub bootloader_user: Option<String>,
    /// `--bootloader-as-root`: `bootloader_restrict = 0`.
    pub bootloader_as_root: bool,
    /// Use the cache of unpacked kernels ([`crate::plan::kcache`]): `pvbuild create` sets it
    /// unless `--no-cache`; off by default, so tests never touch the system's cache.
    pub kernel_cache: bool,
}

/// Why a domain command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad arguments or config.
    #[error("{0}")]
    Usage(String),
    /// The config file.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The kernel or ramdisk, or their layout.
    #[error("{0}")]
    Input(#[from] PlanError),
    /// The hypervisor could not be reached or refused.
    #[error("{0}")]
    Xen(#[from] crate::xen::XenError),
    /// The domain build.
    #[error("create: {0}")]
    Create(#[from] pv::CreateError),
    #[error("creating the PVH domain: {0}")]
    Pvh(#[from] crate::build::pvh::PvhCreateError),
    /// An HVM guest's build.
    #[error("creating the HVM domain: {0}")]
    Hvm(#[from] crate::build::hvm::HvmCreateError),
    /// Xenstore.
    #[error("xenstore: {0}")]
    Xs(String),
    /// The console.
    #[error("console: {0}")]
    Console(#[from] crate::devices::console::ConsoleError),
    /// The bootloader.
    #[error("{0}")]
    Bootloader(#[from] crate::devices::bootloader::BootloaderError),
    /// A `disk` entry that cannot be attached.
    #[error("{0}")]
    Disk(#[from] crate::devices::disk::DiskError),
    /// A `vif` entry that cannot be attached.
    #[error("{0}")]
    Vif(#[from] vif::VifError),
    /// The device model.
    #[error("{0}")]
    DeviceModel(#[from] devmodel::DmError),
    /// The config's pool, cpus or scheduler parameters, which this host cannot honour.
    #[error("{0}")]
    Placement(#[from] crate::control::placement::PlacementError),
    /// A step after the build failed; what it made was undone.
    #[error("{step}: {msg}{}", crate::build::runner::undo_note(.undo_errors))]
    After {
        /// The step.
        step: &'static str,
        /// What went wrong.
        msg: String,
        /// Undo steps that failed.
        undo_errors: Vec<String>,
    },
    /// A signal asked pvbuild to stop; what was made was undone.
    #[error("interrupted")]
    Interrupted,
    /// `--wait` ran out of time.
    #[error("domain {0} did not shut down within {1} s")]
    Timeout(u16, u64),
    /// A shutdown or reboot request the guest did not take.
    #[error("{0}")]
    Control(#[from] crate::control::shutdown::ControlError),
    /// The domain's device lock.
    #[error("{0}")]
    Lock(#[from] crate::devices::domlock::LockError),
}

impl From<crate::xenstore::XsError> for CommandError {
    fn from(e: crate::xenstore::XsError) -> Self {
        CommandError::Xs(e.to_string())
    }
}

/// The guest's settings after merging the config file and the flags.
pub(crate) fn resolve(args: &CreateArgs) -> Result<DomainConfig, CommandError> {
    let source = crate::config::source::ConfigSource::read(args.config.as_deref(), &args.overrides)
        .map_err(CommandError::Usage)?;
    let mut cfg = match &source {
        Some(src) => {
            if args.adopt.is_none() {
                crate::support::progress::line(format_args!("Parsing config from {}", src.name()));
            }
            let (cfg, warnings) = src.load().map_err(CommandError::Usage)?;
            for w in warnings {
                crate::say_err!("warning: {w}");
            }
            cfg
        }
        None => DomainConfig {
            name: String::new(),
            uuid: None,
            kernel: None,
            ramdisk: None,
            cmdline: None,
            memory_mib: crate::config::DEFAULT_MEMORY_MIB,
            maxmem_mib: crate::config::DEFAULT_MEMORY_MIB,
            vcpus: 1,
            max_vcpus: 1,
            on_poweroff: Action::Destroy,
            on_reboot: Action::Restart,
            on_crash: Action::Destroy,
            on_watchdog: Action::Destroy,
            bootloader: None,
            bootloader_args: Vec::new(),
            bootloader_restrict: None,
            bootloader_user: None,
            disks: Vec::new(),
            device_model: None,
            dm_privileges: Default::default(),
            vifs: Vec::new(),
            placement: Default::default(),
            pvh: false,
            hvm: None,
        },
    };
    if let Some(n) = &args.name {
        cfg.name = n.clone();
    }
    if let Some(k) = &args.kernel {
        cfg.kernel = Some(k.clone());
    }
    if let Some(r) = &args.ramdisk {
        cfg.ramdisk = Some(r.clone());
    }
    if let Some(c) = &args.cmdline {
        cfg.cmdline = Some(c.clone());
    }
    if let Some(m) = args.memory_mib {
        cfg.memory_mib = m;
        cfg.maxmem_mib = cfg.maxmem_mib.max(m);
    }
    if let Some(v) = args.vcpus {
        cfg.vcpus = v;
        cfg.max_vcpus = cfg.max_vcpus.max(v);
    }
    if cfg.name.is_empty() {
        return Err(CommandError::Usage(
            "a domain name is needed (--name or `name` in the config)".into(),
        ));
    }
    xenstore::check_domain_name(&cfg.name)
        .map_err(|why| CommandError::Usage(format!("invalid domain name: {why}")))?;
    if let Some(b) = &args.bootloader {
        cfg.bootloader = Some(b.clone());
    }
    if !args.bootloader_args.is_empty() {
        cfg.bootloader_args = args.bootloader_args.clone();
    }
    if let Some(u) = &args.bootloader_user {
        cfg.bootloader_user = Some(u.clone());
    }
    if args.bootloader_as_root {
        cfg.bootloader_restrict = Some(false);
    }
    if !args.disks.is_empty() {
        cfg.disks = args
            .disks
            .iter()
            .map(|d| {
                crate::config::parse_disk_spec(d)
                    .map_err(|m| CommandError::Usage(format!("--disk {d:?}: {m}")))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(dm) = &args.device_model {
        cfg.device_model = Some(dm.clone());
    }
    if !args.vifs.is_empty() {
        cfg.vifs = args
            .vifs
            .iter()
            .map(|v| {
                crate::config::parse_vif_spec(v)
                    .map_err(|m| CommandError::Usage(format!("--vif {v:?}: {m}")))
            })
            .collect::<Result<_, _>>()?;
    }
    if cfg.kernel.is_none() && cfg.bootloader.is_none() {
        return Err(CommandError::Usage(
            "no kernel given (--kernel or `kernel`, or a bootloader)".into(),
        ));
    }
    if cfg.bootloader.is_some() {
        match cfg.boot_disk() {
            None => {
                return Err(CommandError::Usage(
                    "cannot run the bootloader with no disk (`disk` in the config, or --disk)"
                        .into(),
                ))
            }
            Some(d) if d.format == DiskFormat::Empty || d.target.is_empty() => {
                return Err(CommandError::Usage(
                    "cannot run the bootloader: the first disk is empty".into(),
                ))
            }
            Some(d) if d.format != DiskFormat::Raw => {
                return Err(CommandError::Usage(format!(
                "cannot run the bootloader on a {} disk: pvbuild reads raw images and devices only",
                d.format.name()
            )))
            }
            Some(_) => {}
        }
    }
    if cfg.memory_mib == 0 || cfg.memory_mib > (1 << 24) {
        return Err(CommandError::Usage(format!(
            "memory {} MiB out of range",
            cfg.memory_mib
        )));
    }
    if cfg.vcpus == 0 || cfg.vcpus > crate::plan::MAX_VCPUS {
        return Err(CommandError::Usage(format!(
            "vcpus {} out of range (1..={})",
            cfg.vcpus,
            crate::plan::MAX_VCPUS
        )));
    }
    check_cmdline(cfg.cmdline.as_deref())?;
    Ok(cfg)
}

fn check_cmdline(cmdline: Option<&str>) -> Result<(), CommandError> {
    if cmdline.is_some_and(|c| c.len() >= MAX_GUEST_CMDLINE) {
        return Err(CommandError::Usage(format!(
            "command line longer than {} bytes",
            MAX_GUEST_CMDLINE - 1
        )));
    }
    Ok(())
}

/// The xl shutdown reason names.
pub fn shutdown_reason_name(code: u32) -> &'static str {
    match code {
        0 => "poweroff",
        1 => "reboot",
        2 => "suspend",
        3 => "crash",
        4 => "watchdog",
        5 => "soft_reset",
        _ => "unknown",
    }
}

/// From here a signal is a request to stop at the next safe point ([`crate::support::interrupt`]), so
/// that what a command made is undone. (Not in unit tests: Ctrl-C must still stop `cargo
/// test`; they set the flag per thread.)
fn catch_signals() -> Result<(), CommandError> {
    #[cfg(not(test))]
    crate::support::interrupt::catch()
        .map_err(|e| CommandError::Usage(format!("installing signal handlers: {e}")))?;
    Ok(())
}

/// `pvbuild create`. Returns the new domain's id.
pub fn create_cmd(args: &CreateArgs) -> Result<u16, CommandError> {
    catch_signals()?;
    // The background monitor: the same arguments, but it starts nothing at first, attaches
    // no console, waits without a deadline, and starts a restarted guest unpaused.
    let monitor_args;
    let args = match args.adopt {
        Some(_) => {
            monitor_args = CreateArgs {
                console: false,
                paused: false,
                wait: true,
                timeout_s: 0,
                fail_at: None,
                monitor: false,
                ..args.clone()
            };
            &monitor_args
        }
        None => args,
    };
    let mut base = resolve(args)?;
    if args.dry_run || (args.debug && args.adopt.is_none()) {
        // As xl: a config without a UUID gets one now (the create below makes its own).
        let uuid = *base.uuid.get_or_insert_with(Uuid::new_v4);
        // xl's parser sets the vcpu fields only from the keys (the flag counts as `vcpus`).
        let source =
            crate::config::source::ConfigSource::read(args.config.as_deref(), &args.overrides)
                .ok()
                .flatten();
        let sets = |k: &str| source.as_ref().is_some_and(|s| s.sets(k));
        let given = crate::config::libxl_json::Given {
            vcpus: args.vcpus.is_some() || sets("vcpus"),
            maxvcpus: sets("maxvcpus"),
        };
        let text = crate::config::libxl_json::dry_run_text(&base, uuid, given);
        if args.dry_run {
            // xl -n: on stdout, and nothing more.
            crate::support::out::write_all(&text)
                .map_err(|e| CommandError::Usage(format!("writing the output: {e}")))?;
            return Ok(0);
        }
        crate::support::out::write_all_err(&text);
    }
    // The monitor keeps the identity of the guest it adopts: its UUID and its interfaces'
    // MACs, from xenstore, so that a restart it makes looks like the same machine.
    if let Some(d) = args.adopt {
        adopt_identity(&mut base, d);
    }
    // One UUID and one set of MACs for every start of the guest, as xl keeps its config's
    // (and the MACs libxl generated) across restarts.
    let uuid = base.uuid.unwrap_or_else(Uuid::new_v4);
    for v in &mut base.vifs {
        if v.mac.is_none() {
            v.mac = Some(crate::config::Mac::random_xen(vif::random_bytes()));
        }
    }
    let mut host: Option<Host> = None;
    let deadline =
        (args.timeout_s != 0).then(|| Instant::now() + Duration::from_secs(args.timeout_s));
    let mut adopted = args.adopt;
    loop {
        let started = Instant::now();
        let (domid, cfg) = match adopted.take() {
            Some(d) => {
                crate::say!("pvbuild: monitoring domain {d} ({})", base.name);
                (d, base.clone())
            }
            None => start(args, &base, uuid, &mut host, started)?,
        };
        if args.console {
            crate::devices::console::attach(
                u32::from(domid),
                crate::devices::console::DEFAULT_TTY_TIMEOUT,
            )?;
        }
        if !(args.wait || args.console) {
            if args.monitor {
                match spawn_monitor(domid, &cfg.name) {
                    Ok((pid, log)) => log::info(format_args!(
                        "monitor (pid {pid}) acts on the guest's shutdown; its log: {}",
                        log.display()
                    )),
                    // The domain is made and running: say so, but do not fail create.
                    Err(e) => crate::say_err!("warning: no monitor for domain {domid}: {e}"),
                }
                crate::build::steps::lap("monitor");
            }
            crate::build::steps::total();
            return Ok(domid);
        }
        crate::build::steps::total();
        let h = match &host {
            Some(h) => h,
            None => host.insert(Host::open()?),
        };
        match wait_and_act(&h.xen, domid, &cfg, deadline.map(|d| (d, args.timeout_s)))? {
            (Next::Done, _) => return Ok(domid),
            (Next::Restart, reload) => {
                // As xl reloads the stored configuration: the disks and interfaces attached
                // (or detached) while the guest ran are the restarted guest's, and so is the
                // name it was renamed to.
                if let Some((disks, vifs)) = reload.devices {
                    base.disks = disks;
                    base.vifs = vifs;
                }
                if let Some(n) = reload.name {
                    base.name = n;
                }
                // xl: "Done. Rebooting now", after a pause of its own.
                crate::say!("pvbuild: restarting {} (domain {domid} is gone)", base.name);
                std::thread::sleep(RESTART_PAUSE);
                if crate::support::interrupt::requested() {
                    return Err(CommandError::Interrupted);
                }
            }
        }
    }
}

/// Where the background monitor of domain `name` writes what it saw (xl's is
/// `/var/log/xen/xl-NAME.log`).
pub fn monitor_log(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/log/xen/pvbuild-{name}.log"))
}

/// Leaves a monitor for `domid` behind, as `xl create` forks one: this program again, with
/// this run's arguments and `--adopt DOMID`, in a session of its own (no terminal), its output
/// appended to [`monitor_log`]. Returns its pid and the log.
fn spawn_monitor(domid: u16, name: &str) -> Result<(u32, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding pvbuild's binary: {e}"))?;
    let log = monitor_log(name);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let args = std::env::args_os()
        .skip(1)
        .chain(["--adopt".into(), domid.to_string().into()]);
    // posix_spawn, in a new session: no fork of this process (crate::support::spawn says why).
    let pid = crate::support::spawn::spawn_detached(&exe, args, &out, &out)
        .map_err(|e| format!("starting it: {e}"))?;
    // Not waited for: it outlives this process (and is then reaped by init).
    Ok((pid, log))
}

/// Fills in what `domid`'s xenstore entries say about the guest a monitor adopts and its
/// config leaves open: the UUID (`/local/domain/N/vm`) and the MAC of each interface without
/// `mac=` (its backend's `mac`). Best effort: what cannot be read stays open.
fn adopt_identity(cfg: &mut DomainConfig, domid: u16) {
    let Ok(xs) = XsConnection::open() else {
        return;
    };
    let read = |p: String| xs.read_opt(&p).ok().flatten();
    if cfg.uuid.is_none() {
        cfg.uuid =
            read(format!("/local/domain/{domid}/vm")).and_then(|v| xenstore::uuid_of_vm_path(&v));
    }
    for (i, v) in cfg.vifs.iter_mut().enumerate() {
        if v.mac.is_some() {
            continue;
        }
        let devid = v
            .devid
            .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX));
        v.mac = vif::backend_mac(&xs, u32::from(domid), devid)
            .ok()
            .flatten();
    }
}

/// How long `create --wait` pauses before starting a guest again (xl sleeps 2 s).
const RESTART_PAUSE: Duration = Duration::from_secs(2);

/// One start of the guest: the bootloader (if any), the kernel read, parsed and laid out,
/// then the domain made. Returns its id and the configuration it was made from (the
/// bootloader's kernel, ramdisk and command line in place of the config's).
fn start(
    args: &CreateArgs,
    base: &DomainConfig,
    uuid: Uuid,
    host: &mut Option<Host>,
    started: Instant,
) -> Result<(u16, DomainConfig), CommandError> {
    crate::build::steps::start();
    // What this start acquires is recorded where a later pvbuild finds it, should this one be
    // killed ([`crate::build::journal`]): ended (removed) when the domain is made, or when a failure
    // undid everything; kept when undoing failed, for the next sweep.
    let journal = crate::build::journal::Journal::begin(&base.name)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let r = start_recorded(args, base, uuid, host, started);
    let undo_failed = match &r {
        Err(CommandError::After { undo_errors, .. })
        | Err(CommandError::Create(pv::CreateError { undo_errors, .. })) => !undo_errors.is_empty(),
        _ => false,
    };
    if !undo_failed {
        // The domain (if made) is the user's either way: a record that cannot be removed is
        // reported, not a failure (it says `done` when the write got through, and a sweep then
        // only removes it).
        if let Err(e) = journal.end() {
            crate::say_err!("warning: {e}");
        }
    }
    r
}

/// [`start`], its record kept.
fn start_recorded(
    args: &CreateArgs,
    base: &DomainConfig,
    uuid: Uuid,
    host: &mut Option<Host>,
    started: Instant,
) -> Result<(u16, DomainConfig), CommandError> {
    let mut cfg = base.clone();
    // Everything from outside is parsed and the layout solved before Xen is touched: the
    // bootloader too runs first, and what it extracts is read like any other kernel.
    let extracted = match (&cfg.bootloader, cfg.boot_disk()) {
        (Some(program), Some(disk)) => {
            let runas = crate::devices::bootloader::runas_uid(
                cfg.bootloader_restrict,
                cfg.bootloader_user.as_deref(),
                |v| std::env::var(v).ok(),
                crate::devices::bootloader::system_uid,
            )?;
            crate::support::progress::line(format_args!(
                "Running bootloader {program} on {}",
                disk.target
            ));
            let x = crate::devices::bootloader::run(&crate::devices::bootloader::Request {
                program,
                extra_args: &cfg.bootloader_args,
                disk: Path::new(&disk.target),
                kernel: cfg.kernel.as_deref(),
                ramdisk: cfg.ramdisk.as_deref(),
                cmdline: cfg.cmdline.as_deref(),
                interactive: args.console,
                timeout: args.bootloader_timeout_s.map_or(
                    crate::devices::bootloader::DEFAULT_TIMEOUT,
                    Duration::from_secs,
                ),
                runas,
                max_file: args
                    .bootloader_max_file
                    .unwrap_or(crate::devices::bootloader::DEFAULT_MAX_FILE),
                work_dir: None,
            })?;
            for w in &x.result.warnings {
                crate::say_err!("warning: bootloader: {w}");
            }
            log::info(format_args!(
                "bootloader chose {} in {:.3} s",
                x.result.kernel.display(),
                started.elapsed().as_secs_f64()
            ));
            // As libxl: the kernel, ramdisk and command line are the bootloader's.
            cfg.kernel = Some(x.result.kernel.clone());
            cfg.ramdisk = x.result.ramdisk.clone();
            cfg.cmdline = x.result.args.clone();
            check_cmdline(cfg.cmdline.as_deref())?;
            crate::build::steps::lap("bootloader");
            Some(x)
        }
        _ => None,
    };
    let kernel_path = cfg
        .kernel
        .clone()
        .ok_or_else(|| CommandError::Usage("no kernel given (--kernel or `kernel`)".into()))?;
    // The cache of unpacked kernels, if asked for and usable (else the kernel is unpacked as
    // if there were none).
    let cache = args
        .kernel_cache
        .then(crate::plan::kcache::KernelCache::system)
        .and_then(|r| {
            r.map_err(|e| log::info(format_args!("kernel cache not used: {e}")))
                .ok()
        });
    // The bootloader's files are read through the descriptors it was checked by; the config's
    // by name.
    let mut inputs = match extracted {
        Some(x) => {
            let kernel = (x.files.kernel, x.result.kernel.as_path());
            let ramdisk = x.files.ramdisk.zip(x.result.ramdisk.as_deref());
            // Read: the private directory goes with the rest of `x` at the end of this arm,
            // before Xen is touched.
            Inputs::load_opened(kernel, ramdisk, cache.as_ref())?
        }
        // An HVM guest's kernel is its device model's to load: only checked readable here.
        None if cfg.hvm.is_some() => Inputs::map_only(&kernel_path, cfg.ramdisk.as_deref())?,
        None => Inputs::load_cached(&kernel_path, cfg.ramdisk.as_deref(), cache.as_ref())?,
    };
    // An HVM guest's kernel goes to its device model (direct kernel boot): read, not parsed.
    let kern = match cfg.hvm {
        Some(_) => None,
        None => Some(inputs.kernel()?),
    };
    crate::build::steps::lap("parse");
    let nr_pages = cfg.memory_mib << (20 - 12);
    let (layout, pvh_plan, hvm_plan);
    let image = if let Some(h) = &cfg.hvm {
        // The device model's arguments are checked before Xen is touched, and its program.
        devmodel::hvm::check(&hvm_dm_args(&cfg, h))
            .map_err(|e| CommandError::DeviceModel(devmodel::DmError::Hvm(e.to_string())))?;
        devmodel::check_program(
            cfg.device_model
                .as_deref()
                .unwrap_or(Path::new(devmodel::DEFAULT_QEMU)),
        )?;
        let guest_mib = cfg
            .memory_mib
            .checked_sub(h.video_memkb >> 10)
            .filter(|m| *m > 0)
            .ok_or_else(|| {
                CommandError::Usage(format!(
                    "memory ({} MiB) must be larger than the video memory ({} KiB)",
                    cfg.memory_mib, h.video_memkb
                ))
            })?;
        hvm_plan = crate::build::hvm::plan::plan_hvm(
            Path::new(crate::build::hvm::plan::HVMLOADER),
            Path::new(crate::build::hvm::plan::SEABIOS),
            guest_mib,
            cfg.max_vcpus,
            cfg.vcpus,
            h.apic,
        )?;
        Image::Hvm(&hvm_plan)
    } else if let (true, Some(kern)) = (cfg.pvh, &kern) {
        pvh_plan = crate::build::pvh::plan::plan_pvh(
            &inputs,
            kern,
            cfg.memory_mib,
            cfg.max_vcpus,
            cfg.vcpus,
            cfg.cmdline.as_deref(),
        )?;
        Image::Pvh(&pvh_plan)
    } else {
        let kern = kern
            .as_ref()
            .ok_or_else(|| CommandError::Usage("no kernel parsed".into()))?;
        layout = inputs.solve(kern, nr_pages)?;
        crate::plan::detail::print(&crate::plan::detail::Source {
            cmdline: cfg.cmdline.as_deref().unwrap_or(""),
            kernel: (&kernel_path, inputs.kernel_file()),
            parsed: kern,
            ramdisk: cfg.ramdisk.as_deref().zip(inputs.ramdisk()),
            ramdisk_loaded: None,
            layout: &layout,
            memory_mib: cfg.memory_mib,
        });
        Image::Pv(&layout)
    };
    crate::build::steps::lap("layout");
    // The disks too are checked before Xen is touched: their targets, and the QEMU that will
    // serve them.
    let disks =
        crate::devices::disk::plan_disks(&cfg.disks, crate::devices::disk::blkback_available())?;
    if disks.iter().any(|v| v.backend == VbdBackend::Qdisk) {
        devmodel::check_program(
            cfg.device_model
                .as_deref()
                .unwrap_or(Path::new(devmodel::DEFAULT_QEMU)),
        )?;
        devmodel::restrict::check_servable(&cfg.dm_privileges, |k| std::env::var(k).ok())
            .map_err(devmodel::DmError::from)?;
    }
    // dm_restrict / device_model_user: the user must exist, whether or not a device model
    // starts now (`block-attach` may start one later); the range's uid for the domain is
    // checked once the domain id is known.
    devmodel::restrict::check_users(&cfg.dm_privileges, &devmodel::restrict::SystemUsers)
        .map_err(devmodel::DmError::from)?;
    // And the network interfaces: netback, their scripts, their bridges.
    let vifs = vif::plan_vifs(&cfg.vifs, vif::random_bytes)?;
    vif::check_host(&vifs, Path::new(vif::NETBACK_SYSFS), &vif::sys_class_net())?;
    crate::build::steps::lap("check-devices");
    log::info(format_args!(
        "parsed and planned in {:.3} s",
        started.elapsed().as_secs_f64()
    ));
    if crate::support::interrupt::requested() {
        return Err(CommandError::Interrupted);
    }

    let host = match host {
        Some(h) => h,
        None => host.insert(Host::open()?),
    };
    crate::build::steps::lap("open-xen");
    // What an earlier, killed create of this name left is undone first.
    sweep(host, crate::build::journal::Filter::Name(&cfg.name));
    let made = make_domain(
        host,
        &Prepared {
            cfg: &cfg,
            base,
            inputs: &inputs,
            kernel: kern.as_ref(),
            image,
            disks: &disks,
            vifs: &vifs,
            uuid,
            paused: args.paused,
            fail_at: args.fail_at,
            started,
        },
    )?;
    if let Image::Pv(layout) = image {
        if let Ok(top) = layout.top_table_pfn() {
            crate::plan::detail::cr3_line(top.get(), made.top_table_mfn.get());
        }
    }
    crate::say!(
        "pvbuild: created domain {} ({}) in {:.3} s{}",
        made.domid,
        cfg.name,
        started.elapsed().as_secs_f64(),
        if args.paused { ", paused" } else { "" }
    );
    inputs.finish_cache();
    Ok((made.domid, cfg))
}

/// What `create --wait` does after a guest shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Return.
    Done,
    /// Start the guest again.
    Restart,
}

/// The action the config names for a shutdown `code`, and what it comes to here: whether the
/// domain is destroyed, and whether the guest starts again. xl's `handle_domain_death`:
/// `restart` destroys and starts again; `preserve` leaves the domain as it is; a suspended
/// guest is left alone (xl: "Domain has suspended.", and its monitor ends). The config refuses
/// the actions pvbuild cannot carry out (coredump-*, rename-restart, soft-reset); should one
/// come here all the same, the coredump actions are their plain counterparts (a warning says
/// no dump is written) and the other two destroy.
fn action_for(cfg: &DomainConfig, code: u32) -> (Action, bool, Next) {
    let action = match code {
        0 => cfg.on_poweroff,
        1 => cfg.on_reboot,
        2 => return (Action::Preserve, false, Next::Done),
        3 => cfg.on_crash,
        4 => cfg.on_watchdog,
        // soft_reset and unknown reasons: destroy.
        _ => Action::Destroy,
    };
    match action {
        Action::Preserve => (action, false, Next::Done),
        Action::Restart | Action::CoredumpRestart => (action, true, Next::Restart),
        _ => (action, true, Next::Done),
    }
}

/// The disks and interfaces a restart takes from the stored configuration.
type StoredDevices = (Vec<crate::config::DiskSpec>, Vec<crate::config::VifSpec>);

/// What a restart takes from the old domain, read before it and its configuration go, as
/// xl's monitor reloads the configuration (`libxl_retrieve_domain_configuration`).
#[derive(Debug, Default)]
struct Reload {
    /// Its name now (`/local/domain/N/name`): a renamed guest restarts under its new name,
    /// as libxl takes the name from xenstore.
    name: Option<String>,
    /// The devices of its stored configuration; `None` when it has none or it cannot be read
    /// (said so): the guest then restarts with the devices it was created with.
    devices: Option<StoredDevices>,
}

/// Waits for `domid` to shut down (until `deadline`, the end of `--timeout`'s seconds),
/// prints the reason as xl does, and applies the config's action for it; with a restart,
/// returns what the restart takes from the old domain.
fn wait_and_act(
    xen: &Xen,
    domid: u16,
    cfg: &DomainConfig,
    deadline: Option<(Instant, u64)>,
) -> Result<(Next, Reload), CommandError> {
    let info: DomainInfo = loop {
        let info = match xen.domain_info(domid) {
            Ok(i) => i,
            // Destroyed by someone else (`pvbuild destroy`, `xl destroy`): nothing to act on.
            Err(crate::xen::XenError::NoSuchDomain { .. })
            | Err(crate::xen::XenError::Call {
                errno: nix::errno::Errno::ESRCH,
                ..
            }) => {
                crate::say!("pvbuild: domain {domid} ({}) is gone", cfg.name);
                return Ok((Next::Done, Reload::default()));
            }
            Err(e) => return Err(e.into()),
        };
        if info.dying() && !info.shutdown() {
            crate::say!("pvbuild: domain {domid} ({}) was destroyed", cfg.name);
            return Ok((Next::Done, Reload::default()));
        }
        if info.shutdown() {
            break info;
        }
        if let Some((d, secs)) = deadline {
            if Instant::now() >= d {
                return Err(CommandError::Timeout(domid, secs));
            }
        }
        if crate::support::interrupt::requested() {
            // As when --wait was not given: the guest keeps running.
            return Err(CommandError::Interrupted);
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let code = info.shutdown_reason();
    let reason = shutdown_reason_name(code);
    crate::say!("pvbuild: domain {domid} ({}) shut down: {reason}", cfg.name);
    let (action, destroy, next) = action_for(cfg, code);
    match action {
        Action::CoredumpDestroy | Action::CoredumpRestart => {
            crate::say_err!("warning: {action:?} for {reason}: pvbuild writes no core dump")
        }
        Action::RenameRestart | Action::SoftReset => {
            crate::say_err!(
                "warning: action {action:?} for {reason} is not supported yet: destroying"
            )
        }
        _ => {}
    }
    let stored = match next {
        Next::Restart => Reload {
            name: XsConnection::open()
                .ok()
                .and_then(|xs| {
                    xs.read_opt(&format!("{}/name", xenstore::dom_path(u32::from(domid))))
                        .ok()
                        .flatten()
                })
                .filter(|n| xenstore::check_domain_name(n).is_ok()),
            devices: stored_devices(domid),
        },
        Next::Done => Reload::default(),
    };
    if destroy {
        destroy_domid(xen, domid)?;
    }
    Ok((next, stored))
}

/// The devices of `domid`'s stored configuration, for its restart.
fn stored_devices(domid: u16) -> Option<StoredDevices> {
    let id = u32::from(domid);
    let xs = XsConnection::open().ok()?;
    let uuid = crate::config::userdata::domain_uuid(&xs, id)?;
    let ud = crate::config::userdata::Userdata::new(id, uuid);
    let text = match ud.retrieve(crate::config::userdata::LIBXL_JSON) {
        Ok(Some(t)) => t,
        Ok(None) => return None,
        Err(e) => {
            crate::say_err!(
                "warning: domain {domid}: {e}; restarting with the devices it was created with"
            );
            return None;
        }
    };
    match crate::config::libxl_json::devices_from_json(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            crate::say_err!(
                "warning: domain {domid}: {e}; restarting with the devices it was created with"
            );
            None
        }
    }
}

/// Destroys `domid` and removes its xenstore entries. As with libxl, xenstored is not asked
/// to release the domain: it drops a dead domain's connection itself (`@releaseDomain`), and
/// refuses (EINVAL) to release one it has already dropped.
fn destroy_domid(xen: &Xen, domid: u16) -> Result<(), CommandError> {
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    crate::build::steps::lap("open-xenstore");
    let r = destroy_with(xen, &xs, &vif::run_hotplug, domid, None);
    crate::build::steps::total();
    r
}

/// [`destroy_domid`] through `xs` and the hotplug runner `hotplug`; `uuid`'s `/vm` entry goes
/// too (for a domain whose own `vm` entry was never written). A domain already gone is not an
/// error: its entries still go.
fn destroy_with(
    xen: &Xen,
    xs: &XsConnection,
    hotplug: vif::Runner<'_>,
    domid: u16,
    uuid: Option<&Uuid>,
) -> Result<(), CommandError> {
    // As libxl: the device model goes first (it holds the guest's pages mapped).
    match devmodel::stop_for_domain(xs, u32::from(domid)) {
        Ok(Some(pid)) => log::info(format_args!("stopped device model {pid}")),
        Ok(None) => {}
        Err(e) => crate::say_err!("warning: domain {domid}: {e}"),
    }
    crate::build::steps::lap("device-model");
    match xen.destroy_domain(domid) {
        Ok(()) => {}
        // Destroyed meanwhile by someone else (a monitor and `pvbuild destroy` racing): the
        // entries still go.
        Err(crate::xen::XenError::Call {
            errno: nix::errno::Errno::ESRCH,
            ..
        })
        | Err(crate::xen::XenError::NoSuchDomain { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    crate::build::steps::lap("destroydomain");
    // As libxl: each interface's hotplug script unplugs it, then its entries go (and with
    // them netback's interface).
    match vif::from_xenstore(xs, u32::from(domid)) {
        Ok(list) => {
            for h in &list {
                if let Err(e) = hotplug(xs, h, HotplugAction::Offline) {
                    crate::say_err!("warning: domain {domid}: {e}");
                }
            }
        }
        Err(e) => crate::say_err!("warning: domain {domid}: {e}"),
    }
    crate::build::steps::lap("hotplug");
    // As libxl__userdata_destroyall: the stored configuration goes with the domain, whoever
    // stored it (pvbuild, or xl for a domain xl made).
    for e in crate::config::userdata::remove_all(u32::from(domid)) {
        crate::say_err!("warning: domain {domid}: {e}");
    }
    crate::build::steps::lap("userdata");
    let r = xenstore::remove_domain(xs, u32::from(domid), uuid, u32::from(BACKEND_DOMID), false)
        .map_err(|e| CommandError::Xs(e.to_string()));
    crate::build::steps::lap("xenstore");
    r
}

/// The crash-safety sweep's view of a [`Host`].
impl crate::build::journal::DomainUndo for Host {
    fn handle_of(&self, domid: u16) -> Result<Option<[u8; 16]>, String> {
        match self.xen.domain_info(domid) {
            Ok(i) => Ok(Some(i.handle)),
            Err(crate::xen::XenError::NoSuchDomain { .. })
            | Err(crate::xen::XenError::Call {
                errno: nix::errno::Errno::ESRCH,
                ..
            }) => Ok(None),
            Err(e) => Err(format!("domain {domid}: {e}")),
        }
    }

    fn unnamed_with_handle(&self, handle: &[u8; 16]) -> Result<Vec<u16>, String> {
        let xs = (self.xenstore)().map_err(|e| e.to_string())?;
        let doms = self.xen.list_domains().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for d in doms.iter().filter(|d| d.domid != 0 && d.handle == *handle) {
            let known = xs
                .read_opt(&format!("{}/name", xenstore::dom_path(u32::from(d.domid))))
                .map_err(|e| e.to_string())?;
            if known.is_none() {
                out.push(d.domid);
            }
        }
        Ok(out)
    }

    fn destroy(&self, domid: u16, uuid: Option<&Uuid>) -> Result<(), String> {
        let xs = (self.xenstore)().map_err(|e| e.to_string())?;
        destroy_with(&self.xen, &xs, &*self.hotplug, domid, uuid).map_err(|e| e.to_string())
    }

    fn remove_vm(&self, uuid: &Uuid) -> Result<(), String> {
        let xs = (self.xenstore)().map_err(|e| e.to_string())?;
        match xs.rm(&xenstore::vm_path(uuid)) {
            Err(e) if !e.is_not_found() => Err(format!("{}: {e}", xenstore::vm_path(uuid))),
            _ => Ok(()),
        }
    }
}

/// Undoes what killed creates left (those `filter` selects: [`crate::build::journal::sweep_in`]),
/// saying what was done on stderr; returns how many records were undone.
fn sweep(host: &Host, filter: crate::build::journal::Filter<'_>) -> usize {
    let done = crate::build::journal::sweep_in(&crate::build::journal::default_dir(), filter, host);
    for s in &done {
        crate::say_err!("pvbuild: {s}");
    }
    done.len()
}

/// `pvbuild cleanup`: undoes what every killed create left. Returns a line per record.
pub fn cleanup_cmd() -> Result<String, CommandError> {
    let host = Host::open()?;
    let done = crate::build::journal::sweep_in(
        &crate::build::journal::default_dir(),
        crate::build::journal::Filter::All,
        &host,
    );
    let failed = done.iter().filter(|s| !s.errors.is_empty()).count();
    let text: String = done.iter().map(|s| format!("pvbuild: {s}\n")).collect();
    if failed > 0 {
        crate::say_err!("{}", text.trim_end());
        return Err(CommandError::Usage(format!(
            "{failed} killed create(s) could not be undone; their records stay for the next cleanup"
        )));
    }
    Ok(text)
}

/// A guest named by id or by name, for the commands that change it: dom0 is refused however
/// it is named (`0` or `Domain-0`).
fn lookup(target: &str) -> Result<u16, CommandError> {
    let id = lookup_any(target)?;
    if id == 0 {
        return Err(CommandError::Usage(format!(
            "{target:?} is domain 0: pvbuild does not act on dom0"
        )));
    }
    Ok(id)
}

/// `pvbuild destroy DOMAIN`. A create of that name (or domain id) that was killed is undone
/// first ([`crate::build::journal`]); when it had not got as far as naming its domain, that is all
/// there is to destroy.
pub fn destroy_cmd(target: &str) -> Result<(), CommandError> {
    let filter = match target.parse::<u16>() {
        Ok(0) => return lookup(target).map(|_| ()),
        Ok(id) => crate::build::journal::Filter::Domain(id),
        Err(_) => crate::build::journal::Filter::Name(target),
    };
    // At -vv, each step's time as for create (crate::build::steps).
    crate::build::steps::start();
    let host = Host::open()?;
    crate::build::steps::lap("open-xen");
    let swept = sweep(&host, filter);
    crate::build::steps::lap("journal-sweep");
    let domid = match lookup(target) {
        Ok(d) => d,
        Err(_) if swept > 0 => return Ok(()),
        Err(e) => return Err(e),
    };
    if swept > 0
        && matches!(
            crate::build::journal::DomainUndo::handle_of(&host, domid),
            Ok(None)
        )
    {
        // The sweep destroyed it (a domain id given).
        return Ok(());
    }
    crate::build::steps::lap("lookup");
    destroy_domid(&host.xen, domid)
}

/// `pvbuild shutdown` / `pvbuild reboot`: which domains, and what to do.
#[derive(Debug, Clone)]
pub struct ControlArgs {
    /// The domain (id or name); `None` with `all`.
    pub domain: Option<String>,
    /// Every domain but dom0 (and those already shut down or dying), as `xl shutdown -a`.
    pub all: bool,
    /// Wait until each has shut down or is gone, as `xl shutdown -w`.
    pub wait: bool,
    /// With `wait`: give up after this many seconds (0: wait as long as it takes, as xl).
    pub timeout_s: u64,
    /// Power off or reboot.
    pub request: crate::control::shutdown::Request,
}

/// `pvbuild shutdown` / `pvbuild reboot`: asks each guest through its PV control node (as
/// libxl: the guest must acknowledge within 60 s), then with `wait` waits until each has
/// shut down or is gone. What becomes of a shut-down domain is up to whoever watches it (its
/// monitor or `create --wait`, by the config's `on_poweroff` / `on_reboot`).
pub fn control_cmd(args: &ControlArgs) -> Result<(), CommandError> {
    catch_signals()?;
    match (&args.domain, args.all) {
        (Some(_), true) => {
            return Err(CommandError::Usage(
                "give a domain or -a (--all), not both".into(),
            ))
        }
        (None, false) => return Err(CommandError::Usage("give a domain or -a (--all)".into())),
        _ => {}
    }
    let xen = Xen::open()?;
    let domids: Vec<u16> = match (&args.domain, args.all) {
        (None, _) => xen
            .list_domains()?
            .iter()
            .filter(|d| d.domid != 0 && !d.shutdown() && !d.dying())
            .map(|d| d.domid)
            .collect(),
        (Some(t), _) => {
            let d = lookup_any(t)?;
            if d == 0 {
                return Err(CommandError::Usage(
                    "domain 0 is not shut down or rebooted by pvbuild".into(),
                ));
            }
            match xen.domain_info(d) {
                Ok(_) => {}
                Err(crate::xen::XenError::NoSuchDomain { .. }) => {
                    return Err(CommandError::Usage(format!("no domain {d}")))
                }
                Err(e) => return Err(e.into()),
            }
            vec![d]
        }
    };
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    let word = args.request.word();
    for &d in &domids {
        crate::say!(
            "pvbuild: asking domain {d} ({}) to {word}",
            domain_name(&xs, d)
        );
        crate::control::shutdown::request(
            &xs,
            u32::from(d),
            args.request,
            crate::control::shutdown::ACK_TIMEOUT,
        )?;
    }
    if !args.wait {
        return Ok(());
    }
    let timeout = (args.timeout_s != 0).then(|| Duration::from_secs(args.timeout_s));
    let deadline = timeout.map(|t| Instant::now() + t);
    for &d in &domids {
        let left = deadline.map(|dl| dl.saturating_duration_since(Instant::now()));
        let name = domain_name(&xs, d);
        // Xen tells xenstored of every shutdown and death, and xenstored fires
        // `@releaseDomain`; the wait looks at the domain again on each firing.
        let waited = xenstore::wait_watched(&xs, &["@releaseDomain"], left, || {
            match xen.domain_info(d) {
                Ok(i) if i.shutdown() => Ok(Some(format!(
                    "shut down: {}",
                    shutdown_reason_name(i.shutdown_reason())
                ))),
                Ok(i) if i.dying() => Ok(Some("was destroyed".to_owned())),
                Ok(_) => Ok(None),
                Err(crate::xen::XenError::NoSuchDomain { .. }) => Ok(Some("is gone".to_owned())),
                Err(e) => Err(CommandError::from(e)),
            }
        });
        match waited? {
            xenstore::Waited::Done(what) => crate::say!("pvbuild: domain {d} ({name}) {what}"),
            xenstore::Waited::Interrupted => return Err(CommandError::Interrupted),
            xenstore::Waited::TimedOut => {
                return Err(CommandError::Timeout(d, args.timeout_s));
            }
        }
    }
    Ok(())
}

/// `pvbuild pause DOMAIN` / `pvbuild unpause DOMAIN`, as xl's.
pub fn pause_cmd(target: &str, pause: bool) -> Result<(), CommandError> {
    let domid = lookup_any(target)?;
    if domid == 0 {
        return Err(CommandError::Usage(
            "domain 0 is not paused or unpaused by pvbuild".into(),
        ));
    }
    let xen = Xen::open()?;
    let r = if pause {
        xen.pause_domain(domid)
    } else {
        xen.unpause_domain(domid)
    };
    match r {
        Ok(()) => Ok(()),
        Err(crate::xen::XenError::Call {
            errno: nix::errno::Errno::ESRCH,
            ..
        }) => Err(CommandError::Usage(format!("no domain {domid}"))),
        Err(e) => Err(e.into()),
    }
}

/// `pvbuild sysrq DOMAIN KEY`, as `xl sysrq`: the guest's kernel handles the magic SysRq key.
pub fn sysrq_cmd(target: &str, key: &str) -> Result<(), CommandError> {
    let key = crate::control::shutdown::sysrq_key(key).ok_or_else(|| {
        CommandError::Usage(format!(
            "sysrq key {key:?}: one printable character (h lists the guest's keys)"
        ))
    })?;
    let domid = lookup(target)?;
    let xs = XsConnection::open()?;
    crate::control::shutdown::sysrq(&xs, u32::from(domid), key)
        .map_err(|e| CommandError::Usage(e.to_string()))
}

/// `pvbuild rename DOMAIN NEW_NAME`, as `xl rename`: the domain's name in xenstore (its own
/// and its `/vm` entry's), refused if another domain has it.
pub fn rename_cmd(target: &str, new_name: &str) -> Result<(), CommandError> {
    let domid = lookup(target)?;
    let xs = XsConnection::open()?;
    let old = domain_name(&xs, domid);
    xenstore::rename_domain(&xs, u32::from(domid), &old, new_name)
        .map_err(|e| CommandError::Usage(format!("domain {domid}: {e}")))
}

/// The size and the guest (not dom0) that `mem-set` and `mem-max` are given, and the
/// connections they need.
fn memory_args(target: &str, size: &str) -> Result<(u64, u16, Xen, XsConnection), CommandError> {
    let kib = crate::control::memory::parse_size_kib(size).ok_or_else(|| {
        CommandError::Usage(crate::control::memory::MemError::BadSize(size.into()).to_string())
    })?;
    let domid = lookup_any(target)?;
    if domid == 0 {
        return Err(CommandError::Usage(
            "dom0's memory is not managed by pvbuild".into(),
        ));
    }
    Ok((kib, domid, Xen::open()?, XsConnection::open()?))
}

/// `pvbuild mem-set DOMAIN SIZE`, as `xl mem-set`: the guest's balloon target. Returns what
/// was set, for the user.
pub fn mem_set_cmd(target: &str, size: &str) -> Result<String, CommandError> {
    let (kib, domid, xen, xs) = memory_args(target, size)?;
    let set = crate::control::memory::set_target(&xs, &xen, domid, kib)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    Ok(format!(
        "pvbuild: domain {domid} ({}): memory target {} KiB ({} MiB)\n",
        domain_name(&xs, domid),
        set,
        set / 1024
    ))
}

/// `pvbuild mem-max DOMAIN SIZE`, as `xl mem-max`: how much memory Xen lets the guest hold
/// (the size plus libxl's 1 MiB slack), not less than its current target.
pub fn mem_max_cmd(target: &str, size: &str) -> Result<String, CommandError> {
    let (kib, domid, xen, xs) = memory_args(target, size)?;
    let limit = crate::control::memory::set_max(&xs, &xen, domid, kib)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    Ok(format!(
        "pvbuild: domain {domid} ({}): maximum memory {kib} KiB (Xen's limit {limit} KiB)\n",
        domain_name(&xs, domid),
    ))
}

/// `pvbuild vcpu-set DOMAIN COUNT`, as `xl vcpu-set` for a PV guest
/// (`libxl__set_vcpuonline_xenstore`): vcpus `0..COUNT` are marked `online` and the rest
/// `offline` in `cpu/N/availability`, one transaction; the guest's kernel watches those and
/// takes the vcpus down (and marks them present again, for its userspace to bring up). More
/// than the domain's `maxvcpus` is refused, and more than the host has physical CPUs unless
/// `ignore_host` (xl's `--ignore-host`).
pub fn vcpu_set_cmd(target: &str, count: &str, ignore_host: bool) -> Result<String, CommandError> {
    let n: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| CommandError::Usage(format!("vcpu count {count:?}: a number from 1")))?;
    let domid = lookup_any(target)?;
    if domid == 0 {
        return Err(CommandError::Usage(
            "dom0's vcpus are not managed by pvbuild".into(),
        ));
    }
    let xen = Xen::open()?;
    let info = match xen.domain_info(domid) {
        Ok(i) => i,
        Err(crate::xen::XenError::NoSuchDomain { .. }) => {
            return Err(CommandError::Usage(format!("no domain {domid}")))
        }
        Err(e) => return Err(e.into()),
    };
    let max = info.max_vcpu_id.saturating_add(1);
    if n > max {
        return Err(CommandError::Usage(format!(
            "domain {domid}: {n} vcpus asked for, but its maximum (maxvcpus) is {max}"
        )));
    }
    let host_cpus = xen.physinfo()?.nr_cpus;
    if n > host_cpus && !ignore_host {
        return Err(CommandError::Usage(format!(
            "domain {domid}: {n} vcpus asked for on a host with {host_cpus} physical CPUs \
             (--ignore-host to overcommit)"
        )));
    }
    let xs = XsConnection::open()?;
    xenstore::set_vcpus_online(&xs, u32::from(domid), n, max)?;
    Ok(format!(
        "pvbuild: domain {domid} ({}): {n} of {max} vcpus online\n",
        domain_name(&xs, domid)
    ))
}

/// `v` for a terminal: control characters as `?`, at most `max` characters (then `...`).
fn printable(v: &str, max: usize) -> String {
    let mut out: String = v
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if v.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// The name xenstore gives `domid`, or `?`.
fn domain_name(xs: &XsConnection, domid: u16) -> String {
    xs.read_opt(&format!("{}/name", xenstore::dom_path(u32::from(domid))))
        .ok()
        .flatten()
        .unwrap_or_else(|| "?".to_owned())
}

/// `pvbuild network-attach DOMAIN KEY=VALUE...`: the words are one vif spec (as xl joins
/// them). Returns what was attached, for the user.
pub fn network_attach_cmd(target: &str, spec: &[String]) -> Result<String, CommandError> {
    let spec_text = spec.join(",");
    let parsed = crate::config::parse_vif_spec(&spec_text)
        .map_err(|m| CommandError::Usage(format!("vif spec {spec_text:?}: {m}")))?;
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    let mut random = vif::random_bytes;
    let v = vif::attach(
        &xs,
        u32::from(domid),
        &parsed,
        vif::AttachHost {
            netback: Path::new(vif::NETBACK_SYSFS),
            sys_class_net: &vif::sys_class_net(),
            random: &mut random,
            run: &vif::run_hotplug,
        },
    )?;
    let entry = crate::config::libxl_json::nic_json(&parsed, Some(&v), 0);
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::add_device(old, "nics", entry, |n| n["devid"] == v.devid)
    });
    Ok(format!(
        "pvbuild: domain {domid}: network interface {} ({}) on {}\n",
        v.devid, v.mac, v.bridge
    ))
}

/// `pvbuild network-detach DOMAIN DEVID|MAC`.
pub fn network_detach_cmd(target: &str, which: &str) -> Result<(), CommandError> {
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    let devid = vif::find(&xs, u32::from(domid), which)?;
    let closed = vif::detach(
        &xs,
        u32::from(domid),
        devid,
        vif::DETACH_TIMEOUT,
        &vif::run_hotplug,
    )?;
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::remove_device(old, "nics", |n| n["devid"] == devid)
    });
    if !closed {
        crate::say_err!(
            "warning: domain {domid}: the guest did not close interface {devid} within {} s; removed anyway",
            vif::DETACH_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

/// `pvbuild block-attach [--device-model QEMU] DOMAIN SPEC...`: the words are one disk spec
/// (as xl joins them). A disk QEMU serves, for a domain that has no device model, starts one
/// first (`device_model`, or Debian's), as libxl does. Returns what was attached, for the
/// user.
pub fn block_attach_cmd(
    target: &str,
    spec: &[String],
    device_model: Option<&std::path::Path>,
) -> Result<String, CommandError> {
    let spec_text = spec.join(",");
    let parsed = crate::config::parse_disk_spec(&spec_text)
        .map_err(|m| CommandError::Usage(format!("disk spec {spec_text:?}: {m}")))?;
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xen = Xen::open()?;
    let no_domain = |e: crate::xen::XenError| match e {
        crate::xen::XenError::Call {
            errno: nix::errno::Errno::ESRCH,
            ..
        } => CommandError::Usage(format!("no domain {domid}")),
        e => e.into(),
    };
    // libxl writes the frontend's `protocol` for PV guests only (an HVM container, PVH
    // here, has no PV address size: XEN_DOMCTL_get_address_size refuses it).
    let protocol = if xen.domain_info(domid).map_err(no_domain)?.hvm() {
        None
    } else {
        match xen.address_size(domid).map_err(no_domain)? {
            32 => Some("x86_32-abi"),
            _ => Some("x86_64-abi"),
        }
    };
    let xs = XsConnection::open()?;
    let id = u32::from(domid);
    // QEMU's `-m` is the guest's maximum, as libxl passes it.
    let maxmem_mib = xs
        .read_opt(&format!(
            "{}/memory/static-max",
            crate::xenstore::dom_path(id)
        ))
        .map_err(|e| CommandError::Xs(e.to_string()))?
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024);
    let mut req = DmRequest::new(device_model, id, &domain_name(&xs, domid), maxmem_mib);
    // The restriction the domain was created with (`create` recorded it).
    req.privileges =
        devmodel::restrict::recorded(&xs, id).map_err(|e| CommandError::Xs(e.to_string()))?;
    let start = || {
        if crate::support::interrupt::requested() {
            return Err(crate::devices::disk::DiskError::Interrupted);
        }
        devmodel::restrict::check_servable(&req.privileges, |k| std::env::var(k).ok())
            .map_err(|e| crate::devices::disk::DiskError::DeviceModel(e.to_string()))?;
        devmodel::launch(&xs, &req)
            .map_err(|e| crate::devices::disk::DiskError::DeviceModel(e.to_string()))
    };
    let dm = if crate::devices::disk::device_model_running(&xs, id)? {
        crate::devices::disk::AttachDm::Running
    } else {
        crate::devices::disk::AttachDm::Start(&start)
    };
    let (v, started) = crate::devices::disk::attach(
        &xs,
        id,
        &parsed,
        crate::devices::disk::blkback_available(),
        dm,
        protocol,
        crate::devices::disk::BLKBACK_TIMEOUT,
    )?;
    let by = match (v.backend, started) {
        (VbdBackend::Phy { .. }, _) => "blkback".to_owned(),
        (VbdBackend::Qdisk, None) => "the device model".to_owned(),
        (VbdBackend::Qdisk, Some(pid)) => format!("a device model started for it (pid {pid})"),
    };
    let entry = crate::config::libxl_json::disk_json(&parsed, Some(&v), false);
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::add_device(old, "disks", entry, |d| {
            d["vdev"].as_str().and_then(crate::devices::disk::devid) == Some(v.devid)
        })
    });
    Ok(format!(
        "pvbuild: domain {domid}: disk {} (device {}) served by {by}\n",
        v.vdev, v.devid
    ))
}

/// `pvbuild block-detach DOMAIN VDEV|DEVID`.
pub fn block_detach_cmd(target: &str, which: &str) -> Result<(), CommandError> {
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xs = XsConnection::open()?;
    let id = u32::from(domid);
    let (devid, bp) = crate::devices::disk::find(&xs, id, which)?;
    let closed =
        crate::devices::disk::detach(&xs, id, devid, &bp, crate::devices::disk::DETACH_TIMEOUT)?;
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::remove_device(old, "disks", |d| {
            d["vdev"].as_str().and_then(crate::devices::disk::devid) == Some(devid)
        })
    });
    if !closed {
        crate::say_err!(
            "warning: domain {domid}: the guest did not close disk {which} within {} s; removed anyway",
            crate::devices::disk::DETACH_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

/// Changes `domid`'s stored configuration (see [`crate::config::userdata`]) after a device change,
/// as libxl does for xl's. The device is changed either way: a failure is a warning.
fn store_change(
    xs: &XsConnection,
    domid: u16,
    change: impl FnOnce(&str) -> Result<String, crate::config::libxl_json::StoredError>,
) {
    let id = u32::from(domid);
    let Some(uuid) = crate::config::userdata::domain_uuid(xs, id) else {
        crate::say_err!(
            "warning: domain {domid}: no UUID in xenstore; its stored configuration is not updated"
        );
        return;
    };
    let dir = Path::new(crate::config::userdata::XEN_LIB_DIR);
    match crate::config::userdata::update_config_in(dir, id, uuid, |old| {
        change(old).map_err(|e| e.to_string())
    }) {
        Ok(true) => {}
        Ok(false) => log::info(format_args!(
            "domain {domid} has no stored configuration to update"
        )),
        Err(e) => crate::say_err!("warning: domain {domid}: {e}"),
    }
}

/// `pvbuild block-list DOMAIN`, in xl's columns.
pub fn block_list_cmd(target: &str) -> Result<String, CommandError> {
    let domid = lookup_any(target)?;
    let xs = XsConnection::open()?;
    let id = u32::from(domid);
    let mut out = format!(
        "{:<6} {:<3} {:<7} {:<6} {:<7} {:<8} {}\n",
        "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path"
    );
    for devid in xenstore::vbd_devids(&xs, id)? {
        let fe = format!("{}/device/vbd/{devid}", xenstore::dom_path(id));
        // The frontend is the guest's to write: what it holds is shown, never obeyed by the
        // terminal (control characters become `?`, and long values are cut).
        let read = |p: String| -> Result<String, CommandError> {
            Ok(xs
                .read_opt(&p)?
                .map_or_else(|| "-".into(), |v| printable(&v, 80)))
        };
        out.push_str(&format!(
            "{devid:<6} {:<3} {:<7} {:<6} {:<7} {:<8} {}\n",
            read(format!("{fe}/backend-id"))?,
            devid,
            read(format!("{fe}/state"))?,
            read(format!("{fe}/event-channel"))?,
            read(format!("{fe}/ring-ref"))?,
            read(format!("{fe}/backend"))?
        ));
    }
    Ok(out)
}

/// `pvbuild network-list DOMAIN`.
pub fn network_list_cmd(target: &str) -> Result<String, CommandError> {
    let domid = lookup_any(target)?;
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    Ok(vif::list(&xs, u32::from(domid))?)
}

/// `pvbuild console DOMAIN`: through xenconsoled's pty when it serves (or will serve) the
/// console, straight to the ring when xenconsoled does not run ([`crate::devices::console::attach`]).
pub fn console_cmd(target: &str) -> Result<(), CommandError> {
    let domid = lookup_any(target)?;
    crate::devices::console::attach(
        u32::from(domid),
        crate::devices::console::DEFAULT_TTY_TIMEOUT,
    )?;
    Ok(())
}

/// A domain named by id or by name, dom0 included: for the commands that only read, or that
/// check dom0 themselves.
pub fn lookup_any(target: &str) -> Result<u16, CommandError> {
    if let Ok(id) = target.parse::<u16>() {
        return Ok(id);
    }
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    match xenstore::domid_by_name(&xs, target).map_err(|e| CommandError::Xs(e.to_string()))? {
        Some(id) => u16::try_from(id)
            .map_err(|_| CommandError::Usage(format!("domain id {id} out of range"))),
        None => Err(CommandError::Usage(format!("no domain named {target:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::pv::CreateStep;

    #[test]
    fn dom0_is_refused_by_the_commands_that_change_a_guest() {
        let e = lookup("0").unwrap_err().to_string();
        assert!(e.contains("pvbuild does not act on dom0"), "{e}");
        assert_eq!(lookup_any("0").unwrap(), 0);
        assert_eq!(lookup("7").unwrap(), 7);
    }

    #[test]
    fn guest_written_values_are_shown_not_obeyed() {
        assert_eq!(printable("4", 80), "4");
        assert_eq!(printable("\u{1b}]0;owned\u{7}x", 80), "?]0;owned?x");
        assert_eq!(printable("a\nb\r", 80), "a?b?");
        assert_eq!(printable(&"z".repeat(100), 5), "zzzzz...");
    }

    #[test]
    fn the_bootloader_runs_and_its_kernel_is_planned_before_xen_is_opened() {
        use crate::devices::bootloader::tests::{debian_kernel, pygrub_disk, scratch};
        let work = scratch("create");
        let img = pygrub_disk(&work, &debian_kernel(), b"ramdisk", "console=hvc0");
        let args = CreateArgs {
            name: Some("g".into()),
            bootloader: Some("pygrub".into()),
            // Restricted runs need a user this test machine may not have (see the bootloader's
            // own tests for them).
            bootloader_as_root: true,
            disks: vec![format!("file:{},xvda,w", img.display())],
            memory_mib: Some(256),
            ..Default::default()
        };
        // This machine has no Xen: getting as far as opening it means the bootloader ran,
        // and the kernel it extracted was read, parsed and laid out.
        match create_cmd(&args) {
            Err(CommandError::Xen(_)) => {}
            other => panic!("{other:?}"),
        }
        // A bootloader that fails stops create before Xen.
        let bad = CreateArgs {
            bootloader: Some("/bin/false".into()),
            ..args.clone()
        };
        assert!(matches!(create_cmd(&bad), Err(CommandError::Bootloader(_))));
        // No disk, an empty one, a qcow2 one: refused up front.
        for (disks, want) in [
            (vec![], "no disk"),
            (vec![",,hdc,devtype=cdrom".to_string()], "empty"),
            (vec![format!("{},qcow2,xvda", img.display())], "qcow2"),
        ] {
            let a = CreateArgs {
                disks,
                ..args.clone()
            };
            let e = create_cmd(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let _ = std::fs::remove_dir_all(&work);
    }

    #[test]
    fn waiting_on_a_domain_someone_destroyed_ends_quietly() {
        use crate::xen::fake::{FakeConfig, FakeXen};
        let xen = Xen::with_backend(std::sync::Arc::new(
            FakeXen::new(FakeConfig::default()).unwrap(),
        ));
        let cfg = resolve(&CreateArgs {
            name: Some("g".into()),
            kernel: Some("/k".into()),
            ..Default::default()
        })
        .unwrap();
        // No such domain (destroyed before the monitor looked): done, no action, no error.
        assert_eq!(wait_and_act(&xen, 42, &cfg, None).unwrap().0, Next::Done);
    }

    #[test]
    fn shutdown_actions_as_xl_applies_them() {
        let mut cfg = resolve(&CreateArgs {
            name: Some("g".into()),
            kernel: Some("/k".into()),
            ..Default::default()
        })
        .unwrap();
        // xl's defaults: poweroff destroys, reboot restarts, crash destroys.
        assert_eq!(action_for(&cfg, 0), (Action::Destroy, true, Next::Done));
        assert_eq!(action_for(&cfg, 1), (Action::Restart, true, Next::Restart));
        assert_eq!(action_for(&cfg, 3), (Action::Destroy, true, Next::Done));
        assert_eq!(action_for(&cfg, 4).2, Next::Done, "watchdog");
        cfg.on_watchdog = Action::Restart;
        assert_eq!(action_for(&cfg, 4), (Action::Restart, true, Next::Restart));
        cfg.on_crash = Action::Preserve;
        assert_eq!(action_for(&cfg, 3), (Action::Preserve, false, Next::Done));
        cfg.on_poweroff = Action::CoredumpRestart;
        assert_eq!(action_for(&cfg, 0).2, Next::Restart);
        cfg.on_reboot = Action::RenameRestart;
        assert_eq!(
            action_for(&cfg, 1),
            (Action::RenameRestart, true, Next::Done)
        );
        // A suspended guest is left alone, whatever the config says (xl's handle_domain_death).
        cfg.on_poweroff = Action::Destroy;
        assert_eq!(action_for(&cfg, 2), (Action::Preserve, false, Next::Done));
    }

    #[test]
    fn fail_at_names_round_trip() {
        for s in FailAt::all() {
            assert_eq!(FailAt::from_name(s.name()), Some(s));
        }
        assert_eq!(FailAt::from_name("nonsense"), None);
        assert_eq!(FailAt::all().len(), CreateStep::ALL.len() + 4);
    }

    #[test]
    fn flags_alone_need_name_and_kernel() {
        let args = CreateArgs {
            kernel: Some("/nonexistent".into()),
            ..Default::default()
        };
        assert!(matches!(resolve(&args), Err(CommandError::Usage(_))));
        let args = CreateArgs {
            name: Some("g".into()),
            kernel: Some("/nonexistent/kernel".into()),
            ..Default::default()
        };
        // Input is read before Xen is opened: a missing kernel is an input error.
        assert!(matches!(create_cmd(&args), Err(CommandError::Input(_))));
    }

    #[test]
    fn bad_values_are_refused() {
        let base = CreateArgs {
            name: Some("g".into()),
            kernel: Some("/k".into()),
            ..Default::default()
        };
        let zero_mem = CreateArgs {
            memory_mib: Some(0),
            ..base.clone()
        };
        assert!(matches!(resolve(&zero_mem), Err(CommandError::Usage(_))));
        let long = CreateArgs {
            cmdline: Some("x".repeat(MAX_GUEST_CMDLINE)),
            ..base.clone()
        };
        assert!(matches!(resolve(&long), Err(CommandError::Usage(_))));
        assert!(resolve(&base).is_ok());
    }
}

//! `pvbuild create`, as `xl create` does it: the configuration resolved from the file and the
//! flags, the inputs read and planned before Xen is touched, then the domain made
//! ([`crate::build::domain::make_domain`]); with `--wait` or the background monitor, what the
//! guest's shutdown asks for (destroy, restart, preserve).

use super::lifecycle::{destroy_domid, sweep};
use super::*;

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
    // An HVM guest without a kernel boots from its disks through its firmware.
    if cfg.kernel.is_none() && cfg.bootloader.is_none() && cfg.hvm.is_none() {
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

pub(crate) fn check_cmdline(cmdline: Option<&str>) -> Result<(), CommandError> {
    if cmdline.is_some_and(|c| c.len() >= MAX_GUEST_CMDLINE) {
        return Err(CommandError::Usage(format!(
            "command line longer than {} bytes",
            MAX_GUEST_CMDLINE - 1
        )));
    }
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
            // A served create of `pvbuild serve --pool`'s config takes a prepared domain.
            None => match crate::serve::pool::take(args, &base, started)? {
                Some(d) => (d, base.clone()),
                None => {
                    let made = start(args, &base, uuid, &mut host, started)?;
                    // The inputs' and the guest's mappings dropped (at -vv: their time).
                    crate::build::steps::lap("release");
                    made
                }
            },
        };
        if args.console {
            crate::devices::console::attach(
                u32::from(domid),
                crate::devices::console::DEFAULT_TTY_TIMEOUT,
            )?;
        }
        if !(args.wait || args.console) {
            if args.monitor && crate::support::invocation::served() {
                // The server starts it once the client has its reply ([`DeferredMonitors`]):
                // the guest is made either way, and its shutdown state waits for the monitor's
                // first look.
                crate::support::invocation::defer_monitor(domid, &cfg.name);
                log::info(format_args!(
                    "monitor starts after this reply and acts on the guest's shutdown; its log: {}",
                    monitor_log(&cfg.name).display()
                ));
            } else if args.monitor {
                start_monitor(domid, &cfg.name);
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

/// Starts the background monitor of `domid`, saying so at `-v`; a monitor that cannot be
/// started is a warning (the domain is made and running).
fn start_monitor(domid: u16, name: &str) {
    match spawn_monitor(domid, name) {
        Ok((pid, log)) => log::info(format_args!(
            "monitor (pid {pid}) acts on the guest's shutdown; its log: {}",
            log.display()
        )),
        Err(e) => crate::say_err!("warning: no monitor for domain {domid}: {e}"),
    }
}

/// The monitors a served request asked for ([`crate::support::invocation`]), to be started
/// after its reply: the domains, the request's words and its working directory.
#[derive(Debug)]
pub struct DeferredMonitors {
    domains: Vec<(u16, String)>,
    args: Vec<std::ffi::OsString>,
    cwd: std::os::fd::OwnedFd,
}

impl DeferredMonitors {
    /// What the request just run asked for, with its words and `cwd` (a descriptor of its
    /// working directory); `None` when it asked for no monitor.
    pub fn take(cwd: std::os::fd::BorrowedFd<'_>) -> Result<Option<Self>, std::io::Error> {
        let domains = crate::support::invocation::take_deferred_monitors();
        if domains.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            domains,
            args: crate::support::invocation::args(),
            cwd: cwd.try_clone_to_owned()?,
        }))
    }

    /// Starts them (`pvbuild serve` does it in a thread of its own, so that the next request
    /// does not wait for the spawns): one line per monitor for the server's log. Nothing here
    /// depends on the process's current directory or standard descriptors, which the next
    /// request may be using.
    pub fn start(self) -> Vec<String> {
        self.domains
            .iter()
            .map(|(domid, name)| {
                match spawn_monitor_with(
                    &self.args,
                    *domid,
                    name,
                    Some(std::os::fd::AsFd::as_fd(&self.cwd)),
                ) {
                    Ok((pid, log)) => format!(
                        "monitor of domain {domid} ({name}): pid {pid}, its log {}",
                        log.display()
                    ),
                    Err(e) => format!("warning: no monitor for domain {domid} ({name}): {e}"),
                }
            })
            .collect()
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
pub(crate) fn spawn_monitor(domid: u16, name: &str) -> Result<(u32, PathBuf), String> {
    // The words of this command (a served request's, not the server's).
    spawn_monitor_with(&crate::support::invocation::args(), domid, name, None)
}

/// [`spawn_monitor`] with the command's words `words` (after `pvbuild`), started in `cwd`
/// when given.
fn spawn_monitor_with(
    words: &[std::ffi::OsString],
    domid: u16,
    name: &str,
    cwd: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<(u32, PathBuf), String> {
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
    let args = words
        .iter()
        .cloned()
        .chain(["--adopt".into(), domid.to_string().into()]);
    // posix_spawn, in a new session: no fork of this process (crate::support::spawn says why).
    let pid = crate::support::spawn::spawn_detached_in(&exe, args, &out, &out, cwd)
        .map_err(|e| format!("starting it: {e}"))?;
    // Not waited for: it outlives this process (and is then reaped by init).
    Ok((pid, log))
}

/// Fills in what `domid`'s xenstore entries say about the guest a monitor adopts and its
/// config leaves open: the UUID (`/local/domain/N/vm`) and the MAC of each interface without
/// `mac=` (its backend's `mac`). Best effort: what cannot be read stays open.
pub(crate) fn adopt_identity(cfg: &mut DomainConfig, domid: u16) {
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

/// The longest a guest's wait (its monitor, `create --wait`) goes without asking Xen, should
/// xenstored's `@releaseDomain` never come.
pub(crate) const MONITOR_SLICE: Duration = Duration::from_secs(5);

/// How long `create --wait` pauses before starting a guest again (xl sleeps 2 s).
pub(crate) const RESTART_PAUSE: Duration = Duration::from_secs(2);

/// One start of the guest: the bootloader (if any), the kernel read, parsed and laid out,
/// then the domain made. Returns its id and the configuration it was made from (the
/// bootloader's kernel, ramdisk and command line in place of the config's).
pub(crate) fn start(
    args: &CreateArgs,
    base: &DomainConfig,
    uuid: Uuid,
    host: &mut Option<Host>,
    started: Instant,
) -> Result<(u16, DomainConfig), CommandError> {
    let (r, journal) = start_journaled(args, base, uuid, host, started)?;
    if let Some(journal) = journal {
        end_journal(journal);
    }
    r
}

/// Ends a create's record: the domain (if made) is the user's either way, so a record that
/// cannot be removed is reported, not a failure (it says `done` when the write got through,
/// and a sweep then only removes it).
pub(crate) fn end_journal(journal: crate::build::journal::Journal) {
    if let Err(e) = journal.end() {
        crate::say_err!("warning: {e}");
    }
}

/// A start's result, and its record when the caller is to end it (a start that failed with
/// everything undone has ended it already; one whose undo failed keeps it, for the next sweep).
type Journaled = (
    Result<(u16, DomainConfig), CommandError>,
    Option<crate::build::journal::Journal>,
);

/// [`start`], returning the record of a start that made its domain instead of ending it:
/// `pvbuild serve --pool` keeps a prepared domain's record until a create takes the domain,
/// so that a server killed meanwhile leaves it to the next sweep ([`crate::serve::pool`]).
pub(crate) fn start_journaled(
    args: &CreateArgs,
    base: &DomainConfig,
    uuid: Uuid,
    host: &mut Option<Host>,
    started: Instant,
) -> Result<Journaled, CommandError> {
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
    if r.is_ok() {
        return Ok((r, Some(journal)));
    }
    // Kept (dropped without its end) when undoing failed.
    if !undo_failed {
        end_journal(journal);
    }
    Ok((r, None))
}

/// [`start`], its record kept.
pub(crate) fn start_recorded(
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
    // None: an HVM guest that boots from its disks through its firmware (no inputs to read).
    let kernel_path = match (&cfg.kernel, &cfg.hvm) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(CommandError::Usage(
                "no kernel given (--kernel or `kernel`)".into(),
            ))
        }
    };
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
    let mut inputs = match (extracted, &kernel_path) {
        (Some(x), _) => {
            let kernel = (x.files.kernel, x.result.kernel.as_path());
            let ramdisk = x.files.ramdisk.zip(x.result.ramdisk.as_deref());
            // Read: the private directory goes with the rest of `x` at the end of this arm,
            // before Xen is touched.
            Some(Inputs::load_opened(kernel, ramdisk, cache.as_ref())?)
        }
        (None, None) => None,
        // An HVM guest's kernel is its device model's to load: only checked readable here.
        (None, Some(k)) if cfg.hvm.is_some() => Some(Inputs::map_only(k, cfg.ramdisk.as_deref())?),
        (None, Some(k)) => Some(Inputs::load_cached(
            k,
            cfg.ramdisk.as_deref(),
            cache.as_ref(),
        )?),
    };
    // A PV or PVH guest's inputs (always read: it has a kernel).
    let pv_inputs = || {
        inputs
            .as_ref()
            .ok_or_else(|| CommandError::Usage("no kernel given (--kernel or `kernel`)".into()))
    };
    // An HVM guest's kernel goes to its device model (direct kernel boot): read, not parsed.
    let kern = match cfg.hvm {
        Some(_) => None,
        None => Some(pv_inputs()?.kernel()?),
    };
    crate::build::steps::lap("parse");
    let nr_pages = cfg.memory_mib << (20 - 12);
    let (layout, pvh_plan, hvm_plan);
    let image = if let Some(h) = &cfg.hvm {
        // The device model's program is checked before Xen is touched (its arguments once
        // the interfaces are planned, below).
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
            pv_inputs()?,
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
        let inputs = pv_inputs()?;
        let kernel_path = kernel_path
            .as_deref()
            .ok_or_else(|| CommandError::Usage("no kernel given (--kernel or `kernel`)".into()))?;
        layout = inputs.solve(kern, nr_pages)?;
        crate::plan::detail::print(&crate::plan::detail::Source {
            cmdline: cfg.cmdline.as_deref().unwrap_or(""),
            kernel: (kernel_path, inputs.kernel_file()),
            parsed: kern,
            ramdisk: cfg.ramdisk.as_deref().zip(inputs.ramdisk()),
            ramdisk_loaded: None,
            layout: &layout,
            memory_mib: cfg.memory_mib,
        });
        Image::Pv(&layout)
    };
    crate::build::steps::lap("layout");
    // The network interfaces: netback, their scripts, their bridges.
    let mut vifs = vif::plan_vifs(&cfg.vifs, vif::random_bytes)?;
    vif::check_host(&vifs, Path::new(vif::NETBACK_SYSFS), &vif::sys_class_net())?;
    if let Some(h) = &cfg.hvm {
        // An HVM guest's interfaces get their emulated NICs; then the device model's
        // arguments, disks and NICs included, are checked as libxl builds them (the tap's
        // name with the largest domain id, the longest it can be). The taps are dom0's
        // unless the device model is in a stub domain (then they are the stub's).
        vif::emulate(&mut vifs, &cfg.vifs)?;
        devmodel::hvm::check(&hvm_dm_args(&cfg, h, &vifs, u32::from(u16::MAX >> 1)))
            .map_err(|e| CommandError::DeviceModel(devmodel::DmError::Hvm(e.to_string())))?;
        if h.stubdom.is_none() && vifs.iter().any(|v| v.model.is_some()) {
            vif::check_tun(Path::new(vif::TUN_DEVICE))?;
        }
    }
    // An HVM guest's stub domain: its images read, parsed and laid out, its disks planned,
    // before Xen is touched ([`devmodel::stubdom`]).
    let (stub_cfg, stub_inputs, stub_kern, stub_layout, stub_disks, stub_vifs, stub_plan);
    let stub = match &cfg.hvm {
        Some(
            h @ crate::config::HvmGuest {
                stubdom: Some(spec),
                ..
            },
        ) => {
            devmodel::stubdom::check(&cfg).map_err(CommandError::Usage)?;
            devmodel::stubdom::proxy::check_program().map_err(CommandError::Usage)?;
            for (key, path) in [
                ("stubdomain_kernel", &spec.kernel),
                ("stubdomain_ramdisk", &spec.ramdisk),
            ] {
                if !path.is_file() {
                    return Err(CommandError::Usage(format!(
                        "{key} {}: no such file (Debian ships no stub-domain image: build one \
                         with stubdom/build.sh, docs/stubdom.md)",
                        path.display()
                    )));
                }
            }
            stub_cfg = devmodel::stubdom::stub_config(&cfg, h, spec);
            // Through the kernel cache, as the guest's own kernel: each stub of the same image
            // would otherwise decode it again.
            stub_inputs = Inputs::load_cached(&spec.kernel, Some(&spec.ramdisk), cache.as_ref())?;
            stub_kern = stub_inputs.kernel()?;
            stub_layout = stub_inputs.solve(&stub_kern, stub_cfg.memory_mib << (20 - 12))?;
            stub_disks = crate::devices::disk::plan_disks(
                &stub_cfg.disks,
                crate::devices::disk::blkback_available(),
            )?;
            stub_vifs = devmodel::stubdom::stub_vifs(&vifs);
            stub_plan = crate::build::domain::StubPlan {
                cfg: &stub_cfg,
                inputs: &stub_inputs,
                kernel: &stub_kern,
                layout: &stub_layout,
                disks: &stub_disks,
                vifs: &stub_vifs,
                uuid: Uuid::new_v4(),
            };
            Some(&stub_plan)
        }
        _ => None,
    };
    // The disks too are checked before Xen is touched: their targets, and the QEMU that will
    // serve them. A guest whose device model is in a stub domain gets no PV disk in dom0 (no
    // dom0 QEMU may serve it: the stub's QEMU emulates its disks).
    let disks = if stub.is_some() {
        Vec::new()
    } else {
        crate::devices::disk::plan_disks(&cfg.disks, crate::devices::disk::blkback_available())?
    };
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
            inputs: inputs.as_ref(),
            kernel: kern.as_ref(),
            image,
            disks: &disks,
            vifs: &vifs,
            uuid,
            paused: args.paused,
            fail_at: args.fail_at,
            started,
            stub,
            stub_role: None,
        },
    )?;
    crate::build::steps::lap("made");
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
    if let Some(i) = inputs.as_mut() {
        i.finish_cache();
    }
    Ok((made.domid, cfg))
}

/// What `create --wait` does after a guest shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
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
pub(crate) fn action_for(cfg: &DomainConfig, code: u32) -> (Action, bool, Next) {
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
pub(crate) struct Reload {
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
pub(crate) fn wait_and_act(
    xen: &Xen,
    domid: u16,
    cfg: &DomainConfig,
    deadline: Option<(Instant, u64)>,
) -> Result<(Next, Reload), CommandError> {
    /// What the wait saw of the domain.
    enum Seen {
        Gone,
        Destroyed,
        ShutDown(DomainInfo),
    }
    // Woken by `@releaseDomain`, which xenstored fires when a domain shuts down or dies, as
    // libxl's domain-death wait is: no poll of Xen while the guest runs (a monitor per guest,
    // each polling, took the emulated dom0's time from every other guest's create). Xen is
    // asked again at most every MONITOR_SLICE all the same, in case an event was missed.
    let look = || match xen.domain_info(domid) {
        Ok(i) if i.shutdown() => Ok(Some(Seen::ShutDown(i))),
        Ok(i) if i.dying() => Ok(Some(Seen::Destroyed)),
        Ok(_) => Ok(None),
        // Destroyed by someone else (`pvbuild destroy`, `xl destroy`): nothing to act on.
        Err(crate::xen::XenError::NoSuchDomain { .. })
        | Err(crate::xen::XenError::Call {
            errno: nix::errno::Errno::ESRCH,
            ..
        }) => Ok(Some(Seen::Gone)),
        Err(e) => Err(CommandError::from(e)),
    };
    let waited = match look()? {
        // Already there: no watch needed.
        Some(seen) => crate::xenstore::Waited::Done(seen),
        None => {
            let xs = XsConnection::open()?;
            let timeout = deadline.map(|(d, _)| d.saturating_duration_since(Instant::now()));
            crate::xenstore::wait_watched_every(
                &xs,
                &["@releaseDomain"],
                timeout,
                MONITOR_SLICE,
                look,
            )?
        }
    };
    let info: DomainInfo = match waited {
        crate::xenstore::Waited::Done(Seen::ShutDown(i)) => i,
        crate::xenstore::Waited::Done(Seen::Gone) => {
            crate::say!("pvbuild: domain {domid} ({}) is gone", cfg.name);
            return Ok((Next::Done, Reload::default()));
        }
        crate::xenstore::Waited::Done(Seen::Destroyed) => {
            crate::say!("pvbuild: domain {domid} ({}) was destroyed", cfg.name);
            return Ok((Next::Done, Reload::default()));
        }
        crate::xenstore::Waited::TimedOut => {
            let secs = deadline.map_or(0, |(_, s)| s);
            return Err(CommandError::Timeout(domid, secs));
        }
        // As when --wait was not given: the guest keeps running.
        crate::xenstore::Waited::Interrupted => return Err(CommandError::Interrupted),
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
pub(crate) fn stored_devices(domid: u16) -> Option<StoredDevices> {
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

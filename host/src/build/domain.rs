//! A whole domain, made from a configuration already parsed and planned ([`Prepared`]): the
//! guest type's build ([`crate::build::pv`], [`crate::build::pvh`], [`crate::build::hvm`]),
//! then its xenstore entries and introduction, its device model, its disks' and network
//! interfaces' backends, its configuration stored for xl, and the unpause. A failure at any
//! step undoes what came before it, in reverse order ([`crate::build::runner::Building`]).

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use pvbuild_core::kernel::Kernel;
use pvbuild_core::layout::Layout;

use crate::build::pv::{self, CreateRequest, CreateStep};
use crate::build::runner;
use crate::commands::CommandError;
use crate::config::DomainConfig;
use crate::devices::vif::{self, Hotplug, HotplugAction};
use crate::devmodel::stubdom::{StubRole, StubStep};
use crate::devmodel::{self, DmLauncher, DmRequest};
use crate::plan::Inputs;
use crate::support::log;
use crate::xen::Xen;
use crate::xenstore::{
    self, GuestKind, NewDomain, Ring, Uuid, Vbd, VbdBackend, Vif, XsConnection, XsError,
};

/// The domain of the xenstore and console backends.
pub const BACKEND_DOMID: u16 = 0;

/// A step of `pvbuild create` that the test-only failure switch can name: a build step of
/// [`crate::build::pv`], or one of the steps after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailAt {
    /// A step of the domain build.
    Build(CreateStep),
    /// A step of a PVH guest's build (not in [`FailAt::all`], which lists a PV guest's).
    Pvh(crate::build::pvh::PvhStep),
    /// A step of an HVM guest's build (not in [`FailAt::all`] either).
    Hvm(crate::build::hvm::HvmStep),
    /// Writing the xenstore entries and introducing the domain.
    Xenstore,
    /// Starting the device model (whether or not the guest has disks that need it).
    DeviceModel,
    /// Plugging the network interfaces in (whether or not the guest has any).
    Vif,
    /// Unpausing the guest.
    Unpause,
    /// A step of an HVM guest's stub domain ([`crate::devmodel::stubdom`]).
    Stub(crate::devmodel::stubdom::StubStep),
}

impl FailAt {
    /// Every step, in order.
    pub fn all() -> Vec<FailAt> {
        let mut v: Vec<FailAt> = CreateStep::ALL.iter().map(|s| FailAt::Build(*s)).collect();
        v.push(FailAt::Xenstore);
        v.push(FailAt::DeviceModel);
        v.push(FailAt::Vif);
        v.push(FailAt::Unpause);
        v
    }
    /// The step's name.
    pub fn name(self) -> &'static str {
        match self {
            FailAt::Build(s) => s.name(),
            FailAt::Pvh(s) => s.name(),
            FailAt::Hvm(s) => s.name(),
            FailAt::Xenstore => "xenstore",
            FailAt::DeviceModel => "device-model",
            FailAt::Vif => "vif",
            FailAt::Unpause => "unpause",
            FailAt::Stub(s) => s.name(),
        }
    }
    /// The step called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all()
            .into_iter()
            .find(|s| s.name() == name)
            .or_else(|| crate::build::pvh::PvhStep::from_name(name).map(FailAt::Pvh))
            .or_else(|| crate::build::hvm::HvmStep::from_name(name).map(FailAt::Hvm))
            .or_else(|| crate::devmodel::stubdom::StubStep::from_name(name).map(FailAt::Stub))
    }
}

/// An HVM guest's device-model arguments from its config, as libxl builds them: direct
/// kernel boot, every disk on QEMU's IDE (beside its PV vbd; QEMU skips what IDE cannot
/// have), and an emulated NIC (tap `vif<domid>.<devid>-emu`) for each `vif_ioemu`
/// interface of `vifs` (planned, [`vif::emulate`]d).
pub(crate) fn hvm_dm_args(
    cfg: &DomainConfig,
    h: &crate::config::HvmGuest,
    vifs: &[Vif],
    domid: u32,
) -> devmodel::hvm::HvmArgs {
    devmodel::hvm::HvmArgs {
        dm: h.dm.clone(),
        max_memkb: cfg.maxmem_mib << 10,
        vcpus: cfg.vcpus,
        max_vcpus: cfg.max_vcpus,
        acpi: h.acpi,
        mmio_hole_memkb: 0,
        kernel: cfg.kernel.clone(),
        ramdisk: cfg.ramdisk.clone(),
        cmdline: cfg.cmdline.clone(),
        disks: cfg
            .disks
            .iter()
            .map(devmodel::hvm::EmulatedDisk::from_spec)
            .collect(),
        nics: vifs
            .iter()
            .filter_map(|v| {
                Some(devmodel::hvm::EmulatedNic {
                    devid: v.devid,
                    mac: v.mac.clone(),
                    model: v.model.clone()?,
                    bridge: v.bridge.clone(),
                    ifname: vif::tap_name(domid, v.devid),
                })
            })
            .collect(),
    }
}

/// Where a domain is made: the hypervisor, and a way to reach xenstore. `create` uses the
/// real ones; the fault tests use [`crate::xen::fake::FakeXen`] and
/// [`crate::xenstore::fake::FakeXenstore`].
pub struct Host {
    /// The hypervisor.
    pub xen: Xen,
    /// Opens a xenstore connection: one for the build, and one for the undo step, which may
    /// run later (from a drop) and so owns its own.
    pub xenstore: XsOpener,
    /// Starts a device model ([`devmodel::launch`]).
    pub device_model: DmLauncher,
    /// Plugs a network interface in or out ([`vif::run_hotplug`]).
    pub hotplug: HotplugRunner,
    /// Where the domain's configuration is stored for xl ([`crate::config::userdata::XEN_LIB_DIR`]).
    pub userdata_dir: PathBuf,
}

/// Runs a hotplug script: the real one runs the script, the fault tests record the call.
pub type HotplugRunner = std::sync::Arc<
    dyn Fn(&XsConnection, &Hotplug, HotplugAction) -> Result<(), vif::VifError> + Send + Sync,
>;

/// Opens a xenstore connection.
pub type XsOpener = std::sync::Arc<dyn Fn() -> Result<XsConnection, XsError> + Send + Sync>;

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("xen", &self.xen)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// The real hypervisor and xenstored.
    pub fn open() -> Result<Self, CommandError> {
        Ok(Self {
            xen: Xen::open()?,
            xenstore: std::sync::Arc::new(XsConnection::open),
            device_model: std::sync::Arc::new(devmodel::launch),
            hotplug: std::sync::Arc::new(vif::run_hotplug),
            userdata_dir: PathBuf::from(crate::config::userdata::XEN_LIB_DIR),
        })
    }
}

/// A domain parsed and planned, ready to be made: what [`make_domain`] takes.
#[derive(Debug)]
pub struct Prepared<'a> {
    /// The resolved configuration.
    pub cfg: &'a DomainConfig,
    /// The configuration as given (before a bootloader's kernel replaced the config's): what
    /// is stored for xl.
    pub base: &'a DomainConfig,
    /// The kernel and ramdisk as read (None for an HVM guest booting from its disks).
    pub inputs: Option<&'a Inputs>,
    /// The parsed kernel (None for an HVM guest: its kernel is its device model's).
    pub kernel: Option<&'a Kernel<'a>>,
    /// The solved layout (PV) or plan (PVH).
    pub image: Image<'a>,
    /// The guest's disks, checked ([`crate::devices::disk::plan_disks`]).
    pub disks: &'a [Vbd],
    /// The guest's network interfaces, checked ([`vif::plan_vifs`]).
    pub vifs: &'a [Vif],
    /// The domain's UUID.
    pub uuid: Uuid,
    /// Leave the guest paused.
    pub paused: bool,
    /// Test-only: fail this step.
    pub fail_at: Option<FailAt>,
    /// When `create` started, for its progress lines.
    pub started: Instant,
    /// An HVM guest's stub domain, planned: its device model runs there.
    pub stub: Option<&'a StubPlan<'a>>,
    /// This domain is a stub domain, for this guest.
    pub stub_role: Option<&'a StubRole>,
}

/// A stub domain parsed and planned before Xen is touched ([`crate::devmodel::stubdom`]).
#[derive(Debug)]
pub struct StubPlan<'a> {
    /// The stub's config ([`crate::devmodel::stubdom::stub_config`]).
    pub cfg: &'a DomainConfig,
    /// Its kernel and ramdisk, read.
    pub inputs: &'a Inputs,
    /// Its kernel, parsed.
    pub kernel: &'a Kernel<'a>,
    /// Its layout.
    pub layout: &'a Layout,
    /// Its disks (the guest's, as the stub's block devices).
    pub disks: &'a [Vbd],
    /// Its network interfaces (the guest's, as the stub's PV interfaces:
    /// [`crate::devmodel::stubdom::stub_vifs`]).
    pub vifs: &'a [Vif],
    /// Its UUID.
    pub uuid: Uuid,
}

/// What is built: a PV guest's layout or a PVH guest's plan.
#[derive(Debug, Clone, Copy)]
pub enum Image<'a> {
    /// A PV guest.
    Pv(&'a Layout),
    /// A PVH guest.
    Pvh(&'a crate::build::pvh::PvhPlanned),
    /// An HVM guest.
    Hvm(&'a crate::build::hvm::HvmPlanned),
}

/// Makes the domain `p` describes on `host`: builds it, writes its xenstore entries,
/// introduces it, unpauses it (unless asked not to). A failure at any point undoes what came
/// before it, in reverse order, and nothing is left.
pub fn make_domain(host: &Host, p: &Prepared<'_>) -> Result<runner::Created, CommandError> {
    let cfg = p.cfg;
    let xen = &host.xen;
    let xs = (host.xenstore)().map_err(|e| CommandError::Xs(e.to_string()))?;
    // Unlike libxl, which goes on when the lookup fails, a name that cannot be checked is
    // not used: two domains of one name would confuse every later command. The check is made
    // in the transaction that will write the domain's entries, held open while the domain is
    // built (a taken name is refused before Xen is touched, and the names are read once).
    let claim = match xenstore::claim_name(&xs, &cfg.name) {
        Ok(c) => c,
        Err(e @ xenstore::DomainXsError::NameTaken { .. }) => {
            return Err(CommandError::Usage(e.to_string()))
        }
        Err(e) => {
            return Err(CommandError::Xs(format!(
                "checking whether {:?} is in use: {e}",
                cfg.name
            )))
        }
    };
    // The `block` script's sharing check, which libxl runs for blkback's disks: before the
    // domain exists.
    crate::devices::disk::check_sharing(&xs, p.disks, None)?;
    let build_fail = match p.fail_at {
        Some(FailAt::Build(s)) => Some(s),
        _ => None,
    };
    // The pool, the cpus and the scheduler's weight and cap, checked against the host before
    // any domain exists: a config the host cannot honour leaves nothing behind.
    let placed = crate::control::placement::resolve(
        xen,
        |id| {
            xs.read_opt(&crate::control::placement::pool_name_path(id))
                .map_err(|e| e.to_string())
        },
        &cfg.placement,
        cfg.max_vcpus,
    )?;
    let cmdline = cfg.cmdline.clone().unwrap_or_default();
    crate::build::steps::lap("name-check");
    let parsed = || {
        p.kernel
            .ok_or_else(|| CommandError::Usage("no kernel parsed for this guest".into()))
    };
    let mut building = match p.image {
        Image::Pv(layout) => pv::create(
            xen,
            &CreateRequest {
                kernel: parsed()?,
                layout,
                ramdisk: p.inputs.and_then(Inputs::ramdisk),
                inputs: p.inputs,
                cmdline: cmdline.as_bytes(),
                max_memkb: cfg.maxmem_mib << 10,
                // The domain gets `maxvcpus` vcpus, as libxl gives it; `cpu/N/availability` says
                // how many of them the guest brings up.
                vcpus: cfg.max_vcpus,
                handle: *p.uuid.as_bytes(),
                console_backend: BACKEND_DOMID,
                store_backend: BACKEND_DOMID,
                placement: &placed,
                fail_at: build_fail,
            },
        )?,
        Image::Pvh(planned) => crate::build::pvh::create(
            xen,
            &crate::build::pvh::PvhRequest {
                kernel: parsed()?,
                planned,
                ramdisk: p.inputs.and_then(Inputs::ramdisk),
                max_vcpus: cfg.max_vcpus,
                handle: *p.uuid.as_bytes(),
                console_backend: BACKEND_DOMID,
                store_backend: BACKEND_DOMID,
                placement: &placed,
                fail_at: match p.fail_at {
                    Some(FailAt::Pvh(s)) => Some(s),
                    _ => None,
                },
            },
        )?,
        Image::Hvm(planned) => crate::build::hvm::create(
            xen,
            &crate::build::hvm::HvmRequest {
                planned,
                memory_mib: cfg.memory_mib,
                max_vcpus: cfg.max_vcpus,
                handle: *p.uuid.as_bytes(),
                console_backend: BACKEND_DOMID,
                store_backend: BACKEND_DOMID,
                placement: &placed,
                fail_at: match p.fail_at {
                    Some(FailAt::Hvm(s)) => Some(s),
                    _ => None,
                },
            },
        )?,
    };
    let made = building.created.clone();
    let domid = made.domid;
    let uuid = p.uuid;
    log::info(format_args!(
        "domain {domid} built in {:.3} s",
        p.started.elapsed().as_secs_f64()
    ));

    let new = NewDomain {
        domid: u32::from(domid),
        name: cfg.name.clone(),
        uuid,
        max_memkb: cfg.maxmem_mib << 10,
        // An HVM guest's target leaves out its video memory, as libxl's
        // (`target_memkb - video_memkb`).
        target_memkb: (cfg.memory_mib << 10)
            - cfg
                .hvm
                .as_ref()
                .map_or(0, |h| h.video_memkb.min(cfg.memory_mib << 10)),
        max_vcpus: cfg.max_vcpus,
        avail_vcpus: cfg.vcpus,
        store: Ring {
            mfn: made.store_mfn.get(),
            port: made.store_port,
        },
        console: Ring {
            mfn: made.console_mfn.get(),
            port: made.console_port,
        },
        backend_domid: u32::from(BACKEND_DOMID),
        // Written for a PV guest only (libxl__build_pv's image/kernel); an HVM guest booting
        // from its disks has none.
        kernel: p
            .inputs
            .map_or_else(String::new, |i| i.kernel_path.display().to_string()),
        ramdisk: cfg.ramdisk.as_ref().map(|p| p.display().to_string()),
        cmdline: cfg.cmdline.clone(),
        start_time: SystemTime::now(),
        disks: p.disks.to_vec(),
        vifs: p.vifs.to_vec(),
        stub_console_output: p.stub_role.map(|r| format!("file:{}", r.log().display())),
        guest: match p.image {
            Image::Pv(l) if l.mode != pvbuild_core::paging::PagingMode::FourLevel => {
                GuestKind::Pv {
                    protocol: "x86_32-abi",
                }
            }
            Image::Pv(_) => GuestKind::Pv {
                protocol: "x86_64-abi",
            },
            Image::Pvh(_) => GuestKind::Pvh,
            Image::Hvm(_) => GuestKind::Hvm,
        },
    };
    let after = |building: runner::Building<'_>, step: &'static str, msg: String| {
        let undo_errors = building.abandon();
        // xenconsoled, which saw the domain introduced, may write `console/tty` after the undo
        // removed the domain's entries (seen in pvbuild-pvh-fail): once the domain is dying,
        // its id cannot be reused yet, and what was written late goes too.
        if matches!(xen.domain_info(domid), Ok(i) if i.dying()) {
            if let Ok(xs) = (host.xenstore)() {
                let _ = xs.rm(&xenstore::dom_path(u32::from(domid)));
            }
        }
        CommandError::After {
            step,
            msg,
            undo_errors,
        }
    };
    if let Err(m) = runner::gate("xenstore", p.fail_at == Some(FailAt::Xenstore)) {
        return Err(after(building, "xenstore", m.to_string()));
    }
    if let Err(e) = xenstore::write_new_domain_claimed(&xs, claim, &new) {
        return Err(after(building, "xenstore", e.to_string()));
    }
    if let (Image::Hvm(_), Some(h)) = (p.image, &cfg.hvm) {
        if let Err(e) = crate::build::hvm::xenstore::write(&xs, u32::from(domid), &uuid, h) {
            return Err(after(building, "xenstore", e.to_string()));
        }
    }
    // A stub domain's consoles 1 and up, served with its disks by its dom0 QEMU.
    if let Some(role) = p.stub_role {
        let ops = devmodel::stubdom::entries::console_entries(u32::from(domid), role);
        if let Err(e) = xenstore::write_ops(&xs, &ops) {
            return Err(after(building, "xenstore", e.to_string()));
        }
    }
    let open = host.xenstore.clone();
    // Not released (XS_RELEASE) here: xenstored forgets the domain when it dies, and fires
    // @releaseDomain then, which is how xenconsoled learns to unmap its console. Released
    // first, the domain would still be alive at that event, xenconsoled would keep the
    // mapping, and the destroyed domain would stay a zombie (seen in the harness's
    // fail-inject at the device-model step). libxl's destroy does not release either.
    let vif_devids: Vec<u32> = p.vifs.iter().map(|v| v.devid).collect();
    building.push_undo("remove xenstore entries", move |_| {
        let xs = open().map_err(|e| e.to_string())?;
        vif::settle_backends(
            &xs,
            u32::from(BACKEND_DOMID),
            u32::from(domid),
            &vif_devids,
            vif::PROBE_SETTLE_TIMEOUT,
        );
        xenstore::remove_domain(&xs, u32::from(domid), Some(&uuid), 0, false)
            .map_err(|e| e.to_string())
    });
    crate::support::testhook::stop_at("device-model");
    // dm_restrict / device_model_user, where a device model started later for this domain
    // (`block-attach`) finds them: dom0's own `/libxl/<domid>`.
    if let Err(e) = devmodel::restrict::record(&xs, u32::from(domid), &cfg.dm_privileges) {
        return Err(after(building, "xenstore", e.to_string()));
    }
    if p.fail_at == Some(FailAt::DeviceModel) {
        return Err(after(
            building,
            "device-model",
            "failure injected for testing".into(),
        ));
    }
    let be_domid = u32::from(BACKEND_DOMID);
    let qdisks: Vec<String> = p
        .disks
        .iter()
        .filter(|v| v.backend == VbdBackend::Qdisk)
        .map(|v| v.backend_path(be_domid, u32::from(domid)))
        .collect();
    // An HVM guest's QEMU (libxl's `libxl__spawn_local_dm`), awaited before the guest runs.
    // It is the one device model of the guest, as libxl starts no other: its xen-bus serves
    // the guest's `backend/qdisk/<domid>` too (the PV side of each disk it also emulates on
    // IDE), and it counts as up once it took them.
    if let (Image::Hvm(_), Some(h), Some(plan)) = (p.image, &cfg.hvm, p.stub) {
        if crate::support::interrupt::requested() {
            return Err(after(building, "device-model", "interrupted".into()));
        }
        if let Err((step, msg)) = start_stub(host, &xs, p, h, plan, u32::from(domid), &mut building)
        {
            return Err(after(building, step, msg));
        }
    } else if let (Image::Hvm(_), Some(h)) = (p.image, &cfg.hvm) {
        if crate::support::interrupt::requested() {
            return Err(after(building, "device-model", "interrupted".into()));
        }
        let mut req = devmodel::hvm::request(
            cfg.device_model.as_deref(),
            u32::from(domid),
            &cfg.name,
            hvm_dm_args(cfg, h, p.vifs, u32::from(domid)),
        );
        req.privileges = cfg.dm_privileges.clone();
        req.backends = qdisks.clone();
        crate::support::progress::line(format_args!(
            "Starting device model {} for HVM domain {domid}",
            req.program.display()
        ));
        match (host.device_model)(&xs, &req) {
            Ok(dm) => {
                log::info(format_args!(
                    "device model (pid {}) running after {:.3} s",
                    dm.pid,
                    p.started.elapsed().as_secs_f64()
                ));
                building.push_undo("stop the device model", move |_| dm.stop());
            }
            Err(e) => return Err(after(building, "device-model", e.to_string())),
        }
    }
    // blkback's disks: ready (InitWait) before the guest runs, as libxl waits for them.
    let phy: Vec<String> = p
        .disks
        .iter()
        .filter(|v| matches!(v.backend, VbdBackend::Phy { .. }))
        .map(|v| v.backend_path(be_domid, u32::from(domid)))
        .collect();
    if let Err(e) =
        crate::devices::disk::wait_backends(&xs, &phy, crate::devices::disk::BLKBACK_TIMEOUT)
    {
        return Err(after(building, "disks", e.to_string()));
    }
    // A PV or PVH guest's qdisk disks: a QEMU of their own (`-machine xenpv`); a stub
    // domain's always has one, for its consoles.
    if (!qdisks.is_empty() || p.stub_role.is_some()) && !matches!(p.image, Image::Hvm(_)) {
        if crate::support::interrupt::requested() {
            return Err(after(building, "device-model", "interrupted".into()));
        }
        let mut req = DmRequest::new(
            cfg.device_model.as_deref(),
            u32::from(domid),
            &cfg.name,
            cfg.maxmem_mib,
        );
        req.backends = qdisks.clone();
        crate::support::progress::line(format_args!(
            "Starting device model {} for {} disk(s) of domain {domid}",
            req.program.display(),
            qdisks.len()
        ));
        req.privileges = cfg.dm_privileges.clone();
        req.images = p
            .disks
            .iter()
            .filter(|v| v.backend == VbdBackend::Qdisk)
            .filter_map(|v| {
                let (_, path) = v.params.split_once(':')?;
                Some((PathBuf::from(path), v.readonly))
            })
            .collect();
        match (host.device_model)(&xs, &req) {
            Ok(dm) => {
                log::info(format_args!(
                    "device model (pid {}) running for {} disk(s) after {:.3} s",
                    dm.pid,
                    qdisks.len(),
                    p.started.elapsed().as_secs_f64()
                ));
                building.push_undo("stop the device model", move |_| dm.stop());
            }
            Err(e) => return Err(after(building, "device-model", e.to_string())),
        }
    }
    // The network interfaces, as libxl attaches them after the device model: netback takes
    // each backend (InitWait), then its hotplug script plugs `vif<domid>.<devid>` in
    // (`vif::run_hotplug`).
    if let Err(m) = runner::gate("vif", p.fail_at == Some(FailAt::Vif)) {
        return Err(after(building, "vif", m.to_string()));
    }
    if !p.vifs.is_empty() {
        let hotplugs: Vec<Hotplug> = p
            .vifs
            .iter()
            .map(|v| vif::hotplug_for(v, u32::from(domid), p.stub.is_none()))
            .collect();
        // Pushed before the first script runs: a script that fails halfway is undone too,
        // as libxl's destroy runs `offline` for every interface in xenstore (and `remove`
        // for an emulated NIC's tap).
        let unplug: Vec<Hotplug> = hotplugs
            .iter()
            .flat_map(|h| std::iter::once(h.clone()).chain(h.tap_run()))
            .collect();
        let names = unplug
            .iter()
            .map(|h| format!("{} ({})", h.ifname(), h.script))
            .collect::<Vec<_>>()
            .join(", ");
        let (open, run) = (host.xenstore.clone(), host.hotplug.clone());
        building.push_undo("unplug the network interfaces", move |_| {
            let xs = open().map_err(|e| e.to_string())?;
            // In reverse: the last plugged in goes first.
            let errors: Vec<String> = unplug
                .iter()
                .rev()
                .filter_map(|h| run(&xs, h, HotplugAction::Offline).err())
                .map(|e| e.to_string())
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(errors.join("; "))
            }
        });
        crate::support::progress::line(format_args!("Running hotplug scripts for {}", names));
        // All at once, as libxl plugs a guest's interfaces: under emulation each script takes
        // seconds. Each on its own xenstore connection; the first failure is reported.
        let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = hotplugs
                .iter()
                .map(|h| {
                    let (open, run) = (host.xenstore.clone(), host.hotplug.clone());
                    scope.spawn(move || {
                        let xs = open().map_err(|e| e.to_string())?;
                        run(&xs, h, HotplugAction::Online).map_err(|e| e.to_string())?;
                        // An emulated NIC's tap (QEMU made it), onto the bridge after its
                        // vif: libxl's second hotplug run, `add type_if=tap`.
                        match h.tap_run() {
                            Some(t) => {
                                run(&xs, &t, HotplugAction::Online).map_err(|e| e.to_string())
                            }
                            None => Ok(()),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|t| {
                    t.join()
                        .unwrap_or_else(|_| Err("hotplug thread panicked".into()))
                })
                .collect()
        });
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(after(building, "vif", e));
        }
        log::info(format_args!(
            "{} network interface(s) plugged in after {:.3} s",
            hotplugs.len(),
            p.started.elapsed().as_secs_f64()
        ));
    }
    crate::build::steps::lap("devices");
    // The configuration, where libxl keeps it (`libxl__set_domain_configuration`, before the
    // guest is unpaused, as libxl stores it): xl's commands then know the domain, and a
    // restart reads back the devices attached meanwhile.
    // A stub domain is its guest's: no configuration of its own is stored (as libxl).
    if p.stub_role.is_some() {
        return Ok(building.finish());
    }
    // A guest whose device model is in a stub domain has its disks through the stub, not as
    // PV disks of its own: they are stored all the same (a restart reads its devices back).
    let stored_disks = p.stub.map_or(p.disks, |s| s.disks);
    let stored = crate::config::libxl_json::domain_config(p.base, uuid, stored_disks, p.vifs);
    let ud = crate::config::userdata::Userdata::in_dir(&host.userdata_dir, u32::from(domid), uuid);
    let dir = host.userdata_dir.clone();
    building.push_undo("remove the stored configuration", move |_| {
        match crate::config::userdata::remove_all_in(&dir, u32::from(domid)).first() {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    });
    if let Err(e) = ud.lock().and_then(|l| {
        ud.store(
            &l,
            crate::config::userdata::LIBXL_JSON,
            &crate::config::libxl_json::to_text(&stored),
        )
    }) {
        return Err(after(building, "userdata", e.to_string()));
    }
    crate::build::steps::lap("userdata");
    if !p.paused {
        if let Err(m) = runner::gate("unpause", p.fail_at == Some(FailAt::Unpause)) {
            return Err(after(building, "unpause", m.to_string()));
        }
        if let Err(e) = building.unpause() {
            return Err(after(building, "unpause", e.to_string()));
        }
        crate::build::steps::lap("unpause");
    }
    Ok(building.finish())
}

/// Starts HVM guest `guest`'s device model in its stub domain (`libxl__spawn_stub_dm`): see
/// [`crate::devmodel::stubdom`] for the steps. Once the stub exists, its destruction is on
/// `building`'s undo stack; an error names the step that failed.
fn start_stub(
    host: &Host,
    xs: &XsConnection,
    p: &Prepared<'_>,
    h: &crate::config::HvmGuest,
    plan: &StubPlan<'_>,
    guest: u32,
    building: &mut runner::Building<'_>,
) -> Result<(), (&'static str, String)> {
    use devmodel::stubdom::{entries, proxy};
    let gate = |s: StubStep| {
        runner::gate(s.name(), p.fail_at == Some(FailAt::Stub(s)))
            .map_err(|m| (s.name(), m.to_string()))
    };
    let role = StubRole {
        guest_domid: guest,
        guest_name: p.cfg.name.clone(),
        serials: h.dm.serial.clone(),
    };
    gate(StubStep::Build)?;
    crate::support::progress::line(format_args!(
        "Building stub domain {} for HVM domain {guest}",
        plan.cfg.name
    ));
    let made = make_domain(
        host,
        &Prepared {
            cfg: plan.cfg,
            base: plan.cfg,
            inputs: Some(plan.inputs),
            kernel: Some(plan.kernel),
            image: Image::Pv(plan.layout),
            disks: plan.disks,
            vifs: plan.vifs,
            uuid: plan.uuid,
            paused: true,
            fail_at: None,
            started: p.started,
            stub: None,
            stub_role: Some(&role),
        },
    )
    .map_err(|e| (StubStep::Build.name(), e.to_string()))?;
    let stub_id = made.domid;
    let stub = u32::from(stub_id);
    let (open, hotplug) = (host.xenstore.clone(), host.hotplug.clone());
    building.push_undo("destroy the stub domain", move |xen| {
        let xs = open().map_err(|e| e.to_string())?;
        crate::commands::lifecycle::destroy_with(xen, &xs, &*hotplug, stub_id, None)
            .map_err(|e| e.to_string())
    });
    log::info(format_args!(
        "stub domain {stub} built after {:.3} s",
        p.started.elapsed().as_secs_f64()
    ));
    crate::support::testhook::stop_at("stubdom-built");

    // libxl's order: dm-argv, the links, set_target (Xen, then xenstore), the directory.
    gate(StubStep::Target)?;
    let target_err = |e: String| (StubStep::Target.name(), e);
    let args =
        devmodel::hvm::stub_qemu_args(guest, &p.cfg.name, &hvm_dm_args(p.cfg, h, p.vifs, guest));
    let mut ops = entries::argv_entries(&xenstore::vm_path(&p.uuid), stub, &args);
    ops.extend(entries::link_entries(guest, stub));
    xenstore::write_ops(xs, &ops).map_err(|e| target_err(e.to_string()))?;
    let guest_id = u16::try_from(guest).map_err(|e| target_err(e.to_string()))?;
    host.xen
        .set_target(stub_id, guest_id)
        .map_err(|e| target_err(e.to_string()))?;
    xs.set_target(stub, guest)
        .map_err(|e| target_err(format!("xenstore: {e}")))?;
    xenstore::write_ops(xs, &entries::device_model_dir_entries(stub, guest))
        .map_err(|e| target_err(e.to_string()))?;

    gate(StubStep::QmpProxy)?;
    let pid = proxy::start(xs, stub, guest, &plan.cfg.name)
        .map_err(|e| (StubStep::QmpProxy.name(), e))?;
    log::info(format_args!("qmp proxy (pid {pid}) running"));

    gate(StubStep::Unpause)?;
    host.xen
        .unpause_domain(stub_id)
        .map_err(|e| (StubStep::Unpause.name(), e.to_string()))?;

    gate(StubStep::Running)?;
    crate::support::progress::line(format_args!(
        "Waiting for the device model in stub domain {stub}"
    ));
    wait_stub_running(host, xs, stub_id, guest, &role)
        .map_err(|e| (StubStep::Running.name(), e))?;
    log::info(format_args!(
        "device model running in stub domain {stub} after {:.3} s",
        p.started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Waits (at most [`devmodel::stubdom::start_timeout`]) for the stub's QEMU to say `running`;
/// a stub that shut down or died first is an error at once. Either error quotes the end of
/// the stub's log (its console 0).
fn wait_stub_running(
    host: &Host,
    xs: &XsConnection,
    stub: u16,
    guest: u32,
    role: &StubRole,
) -> Result<(), String> {
    let path = devmodel::stubdom::entries::state_path(u32::from(stub), guest);
    let limit = devmodel::stubdom::start_timeout();
    let log_tail = || {
        let text = std::fs::read_to_string(role.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        format!(
            "{}: {}",
            role.log().display(),
            lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )
    };
    // Woken by a write of the state node or a domain's release (the stub stopping), as
    // libxl's xswait; the check runs at least every wait slice too.
    let mut stopped = None;
    let waited =
        crate::xenstore::wait_watched(xs, &[path.as_str(), "@releaseDomain"], Some(limit), || {
            if xs.read_opt(&path)?.as_deref() == Some("running") {
                return Ok(Some(()));
            }
            match host.xen.domain_info(stub) {
                Ok(i) if i.shutdown() || i.dying() => {
                    stopped = Some(format!(
                        "stub domain {stub} stopped before its device model was running; {}",
                        log_tail()
                    ));
                    Ok(Some(()))
                }
                Ok(_) => Ok(None),
                Err(e) => {
                    stopped = Some(format!("stub domain {stub}: {e}"));
                    Ok(Some(()))
                }
            }
        })
        .map_err(|e: crate::xenstore::XsError| format!("waiting for {path}: {e}"))?;
    match waited {
        crate::xenstore::Waited::Done(()) => stopped.map_or(Ok(()), Err),
        crate::xenstore::Waited::Interrupted => Err("interrupted".into()),
        crate::xenstore::Waited::TimedOut => Err(format!(
            "stub domain {stub}: device model not running after {} s; {}",
            limit.as_secs(),
            log_tail()
        )),
    }
}

#[cfg(test)]
mod tests;

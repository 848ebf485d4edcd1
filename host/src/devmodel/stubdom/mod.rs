//! An HVM guest's device model in a stub domain of its own (libxl's `libxl__spawn_stub_dm`;
//! Xen's docs/misc/stubdom.txt, "Toolstack to Linux ioemu stubdomain protocol").
//!
//! The stub domain is a PV domain named `<guest>-dm`, built by pvbuild's own PV builder from
//! the images `stubdomain_kernel` and `stubdomain_ramdisk` (stubdom/build.sh makes them from
//! Debian's packages). Its init starts QEMU with the arguments the toolstack wrote to the
//! guest's `/vm/<uuid>/image/dm-argv` ([`crate::devmodel::hvm::stub_qemu_args`]); the guest's
//! disks are the stub's own block devices, and each of its network interfaces a PV interface of
//! the stub ([`stub_vifs`]) that the stub's init bridges to the tap QEMU makes for the
//! guest's emulated NIC. What the toolstack does, in libxl's order:
//! 1. build the stub (paused), its consoles 0-2 and one per serial port served by a dom0
//!    QEMU (`-machine xenpv`), which also serves the stub's disks (the guest's disks, attached
//!    to the stub) — [`crate::build::domain::make_domain`] with a [`StubRole`];
//! 2. `dm-argv`, the guest's `image/device-model-domid`, the stub's `target`,
//!    `XEN_DOMCTL_set_target`, xenstore's `XS_SET_TARGET`, the stub's
//!    `device-model/<guest>` directory ([`entries`]);
//! 3. the QMP proxy in dom0 (`vchan-socket-proxy`, [`proxy`]);
//! 4. unpause the stub and wait for its QEMU to write `running` ([`start_timeout`]).
//!
//! Every step after the stub exists is undone by destroying the stub domain
//! ([`crate::commands::lifecycle::destroy_with`] destroys a guest's stub first, as libxl's
//! `libxl__destroy_device_model`).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, DomainConfig, HvmGuest, XlConfig};
use crate::devmodel::hvm::{atom, number};
use crate::xenstore::Vif;

pub mod entries;
pub mod proxy;
#[cfg(test)]
mod tests;

/// The stub's first console that carries a serial port (`STUBDOM_CONSOLE_SERIAL`): 0 is its
/// log, 1 and 2 the save and restore streams.
pub const SERIAL_CONSOLE: u32 = 3;
/// libxl's limit for the stub's QEMU to write `running` once the stub runs
/// (`LIBXL_STUBDOM_START_TIMEOUT`, 30 s): the floor of [`start_timeout`].
pub const LIBXL_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long pvbuild waits for the stub's QEMU to write `running` once the stub runs: the
/// limit a dom0 QEMU gets ([`crate::devmodel::START_TIMEOUT`], 60 s, or
/// `LIBXL_DEVICE_MODEL_START_TIMEOUT`), at least libxl's 30 s. The stub boots a kernel before
/// QEMU starts: under emulation (TCG, a loaded host) that took more than 30 s.
pub fn start_timeout() -> Duration {
    crate::devmodel::start_timeout().max(LIBXL_START_TIMEOUT)
}
/// The stub's memory when `stubdomain_memory` is absent, MiB (`LIBXL_LINUX_STUBDOM_MEM`).
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// libxl's default images for a Linux stub domain (`XENFIRMWAREDIR`); Debian ships none.
pub const DEFAULT_KERNEL: &str = "/usr/lib/xen-4.17/boot/qemu-stubdom-linux-kernel";
/// See [`DEFAULT_KERNEL`].
pub const DEFAULT_RAMDISK: &str = "/usr/lib/xen-4.17/boot/qemu-stubdom-linux-rootfs";

/// `device_model_stubdomain_override = 1` and the `stubdomain_*` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubdomSpec {
    /// `stubdomain_kernel`.
    pub kernel: PathBuf,
    /// `stubdomain_ramdisk`.
    pub ramdisk: PathBuf,
    /// `stubdomain_cmdline`.
    pub cmdline: Option<String>,
    /// `stubdomain_memory`, MiB.
    pub memory_mib: u64,
}

impl StubdomSpec {
    /// The stub domain an HVM guest's config asks for, if any. As libxl, the `stubdomain_*`
    /// keys ask for nothing without `device_model_stubdomain_override = 1`. With it, libxl's
    /// default device model is qemu-xen-traditional in a MiniOS stub, which pvbuild does not
    /// implement: `device_model_version = "qemu-xen"` (a Linux stub) must be given.
    pub fn from_xl(cfg: &XlConfig) -> Result<Option<Self>, ConfigError> {
        if number(cfg, "device_model_stubdomain_override", 0, 1)? != Some(1) {
            return Ok(None);
        }
        if atom(cfg, "device_model_version")?.map(|(v, _)| v) != Some("qemu-xen") {
            return Err(ConfigError::Invalid(
                "device_model_stubdomain_override = 1 without device_model_version = \
                 \"qemu-xen\": libxl would run qemu-xen-traditional in a MiniOS stub domain, \
                 which pvbuild does not implement"
                    .into(),
            ));
        }
        let path = |key: &str, default: &str| -> Result<PathBuf, ConfigError> {
            Ok(PathBuf::from(atom(cfg, key)?.map_or(default, |(v, _)| v)))
        };
        let memory_mib = number(cfg, "stubdomain_memory", 1, 1 << 20)?
            .map_or(DEFAULT_MEMORY_MIB, |m| m.unsigned_abs());
        Ok(Some(Self {
            kernel: path("stubdomain_kernel", DEFAULT_KERNEL)?,
            ramdisk: path("stubdomain_ramdisk", DEFAULT_RAMDISK)?,
            cmdline: atom(cfg, "stubdomain_cmdline")?.map(|(v, _)| v.to_owned()),
            memory_mib,
        }))
    }
}

/// The stub domain's name (`libxl__stub_dm_name`).
pub fn stub_name(guest: &str) -> String {
    format!("{guest}-dm")
}

/// Refuses, before Xen is touched, what pvbuild's stub path does not do (each would leave the
/// guest without what its config asks for).
pub fn check(cfg: &DomainConfig) -> Result<(), String> {
    let why = if cfg.kernel.is_some() {
        "direct kernel boot (`kernel`): the stub domain cannot read dom0's files; boot the \
         guest from its disk"
    } else if cfg.hvm.as_ref().is_some_and(|h| h.dm.vnc.is_some()) {
        "VNC (the stub's framebuffer) is not implemented for a stub domain"
    } else if cfg.dm_privileges.restrict || cfg.dm_privileges.user.is_some() {
        "dm_restrict and device_model_user restrict a dom0 QEMU; with a stub domain QEMU \
         runs in the stub"
    } else if cfg.disks.iter().any(|d| d.cdrom) {
        "CD-ROMs are not implemented for a stub domain"
    } else {
        return Ok(());
    };
    Err(format!("device_model_stubdomain_override: {why}"))
}

/// The stub domain's network interfaces, as `libxl__dm_vifs_from_hvm_guest_config` makes
/// them from the guest's: the same devid, MAC, bridge and script, each a PV interface
/// (`nictype` VIF, no emulated NIC), a `vifname` given `-emu` appended (the guest's own
/// interface keeps the name). Their backends are dom0's `vif<stub>.<devid>`, plugged into
/// the guest's bridge; inside the stub each is bridged to the tap of the guest's emulated NIC
/// (stubdom/init).
pub fn stub_vifs(guest: &[Vif]) -> Vec<Vif> {
    guest
        .iter()
        .map(|v| Vif {
            model: None,
            vifname: v.vifname.as_ref().map(|n| format!("{n}-emu")),
            ..v.clone()
        })
        .collect()
}

/// The stub domain's own config, as `libxl__spawn_stub_dm` makes it: a PV domain named
/// [`stub_name`], one vcpu, `stubdomain_memory` plus the guest's video memory, the stub's
/// images and command line, the guest's disks (the stub's block devices: an image file served
/// by the dom0 QEMU that serves its consoles, a block device by blkback), the guest's
/// `device_model_override` for that QEMU. Its network interfaces are [`stub_vifs`].
pub fn stub_config(guest: &DomainConfig, h: &HvmGuest, spec: &StubdomSpec) -> DomainConfig {
    let memory_mib = spec.memory_mib + h.video_memkb.div_ceil(1024);
    DomainConfig {
        name: stub_name(&guest.name),
        uuid: None,
        kernel: Some(spec.kernel.clone()),
        ramdisk: Some(spec.ramdisk.clone()),
        cmdline: spec.cmdline.clone(),
        memory_mib,
        maxmem_mib: memory_mib,
        vcpus: 1,
        max_vcpus: 1,
        on_poweroff: crate::config::Action::Destroy,
        on_reboot: crate::config::Action::Destroy,
        on_crash: crate::config::Action::Destroy,
        on_watchdog: crate::config::Action::Destroy,
        bootloader: None,
        bootloader_args: Vec::new(),
        bootloader_restrict: None,
        bootloader_user: None,
        disks: guest.disks.clone(),
        device_model: guest.device_model.clone(),
        dm_privileges: Default::default(),
        vifs: Vec::new(),
        placement: Default::default(),
        pvh: false,
        hvm: None,
    }
}

/// What makes a PV domain a stub domain in [`crate::build::domain::make_domain`]: its guest,
/// whose consoles it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubRole {
    /// The guest's domain id.
    pub guest_domid: u32,
    /// The guest's name (console 0's log is `qemu-dm-<name>.log`, as libxl's).
    pub guest_name: String,
    /// The guest's serial ports (`serial`), each the stub's console 3 and up.
    pub serials: Vec<String>,
}

impl StubRole {
    /// Console 0's output: the stub's log (`/var/log/xen/qemu-dm-<guest>.log`).
    pub fn log(&self) -> PathBuf {
        PathBuf::from(format!("/var/log/xen/qemu-dm-{}.log", self.guest_name))
    }
}

/// A step of the stub path that the test-only failure switch can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubStep {
    /// Building the stub domain (its xenstore entries, consoles and dom0 QEMU included).
    Build,
    /// `dm-argv`, the guest's and the stub's links, `set_target` (Xen and xenstore), the
    /// stub's `device-model/<guest>` directory.
    Target,
    /// Starting the QMP proxy.
    QmpProxy,
    /// Unpausing the stub.
    Unpause,
    /// Waiting for the stub's QEMU to say `running`.
    Running,
}

impl StubStep {
    /// Every step, in order.
    pub const ALL: [StubStep; 5] = [
        StubStep::Build,
        StubStep::Target,
        StubStep::QmpProxy,
        StubStep::Unpause,
        StubStep::Running,
    ];
    /// The step's name (`--fail-at`).
    pub fn name(self) -> &'static str {
        match self {
            StubStep::Build => "stubdom-build",
            StubStep::Target => "stubdom-target",
            StubStep::QmpProxy => "stubdom-qmp-proxy",
            StubStep::Unpause => "stubdom-unpause",
            StubStep::Running => "stubdom-running",
        }
    }
    /// The step called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The stub domain of guest `guest`, if it has one: `recorded` (its
/// `image/device-model-domid`, [`crate::devmodel::DmRecords`]), trusted only when that
/// domain's `target` names the guest back and its name is the guest's [`stub_name`] (a guest
/// that wrote another domain's id there gets nothing destroyed). One round trip.
pub fn stub_of(
    xs: &crate::xenstore::XsConnection,
    guest: u32,
    recorded: Option<u16>,
) -> Option<u16> {
    use crate::xenstore::dom_path;
    let stub = recorded.filter(|&s| s != 0)?;
    let v = xs
        .read_many(&[
            format!("{}/target", dom_path(u32::from(stub))),
            format!("{}/name", dom_path(guest)),
            format!("{}/name", dom_path(u32::from(stub))),
        ])
        .ok()?;
    let (target, name, stub_named) = match v.as_slice() {
        [Some(t), Some(n), Some(s)] => (t, n, s),
        _ => return None,
    };
    (target.trim() == guest.to_string() && *stub_named == stub_name(name)).then_some(stub)
}

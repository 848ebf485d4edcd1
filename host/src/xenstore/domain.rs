//! The xenstore entries of a PV domain, as libxl writes them, and their removal.
//!
//! Sources: `libxl__domain_make` (the skeleton and its permissions), `store_libxl_entry`
//! (`/libxl/<domid>/dm-version`), `libxl__build_post` (memory, store, cpus, and the `/vm`
//! image entries of `libxl__domain_build`), and `libxl__device_console_add` with
//! `libxl__device_generic_add` (the primary console's frontend, backend and libxl copies), all
//! in `tools/libs/light/`. libxl spreads them over several transactions; pvbuild writes them
//! in one, retried on EAGAIN, then introduces the domain to xenstored.

use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;
use uuid::Uuid;

use super::conn::{Access, Perm, Req, Transaction, XsConnection, XsError};

/// `LIBXL_XENCONSOLE_LIMIT`: the console output limit libxl advertises.
pub const XENCONSOLE_LIMIT: u64 = 1_048_576;
/// `LIBXL_XENCONSOLE_PROTOCOL`.
pub const XENCONSOLE_PROTOCOL: &str = "vt100";
/// `XenbusStateInitialising`.
const XENBUS_STATE_INITIALISING: u32 = 1;
/// What libxl writes at `/libxl/<domid>/dm-version` for a PV domain (its default
/// `LIBXL_DEVICE_MODEL_VERSION_QEMU_XEN`, even with no device model running).
pub const DM_VERSION_PV: &str = "qemu_xen";
/// Longest domain name accepted (xenstore values could be longer; names this long are abuse).
pub const NAME_MAX: usize = 256;
/// Most vcpus written under `cpu/` (Xen's `HVM_MAX_VCPUS`-sized bound; PV allows fewer).
pub const VCPUS_MAX: u32 = 512;

/// A domain's event-channel ring: the page's machine frame and the channel's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Machine frame of the ring page (written as `ring-ref`).
    pub mfn: u64,
    /// Unbound event channel port.
    pub port: u32,
}

/// What of a new domain's entries depends on its guest type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// A PV guest, its native ring protocol (`x86_64-abi`/`x86_32-abi`) written to each
    /// disk's frontend, as libxl does for PV guests.
    Pv {
        /// The protocol.
        protocol: &'static str,
    },
    /// A PVH guest: `/libxl/<domid>/type` is `pvh`; no `protocol` in the disk frontends and
    /// no `/vm/<uuid>/image/*` (libxl writes those for PV guests only).
    Pvh,
    /// An HVM guest: `/libxl/<domid>/type` is `hvm`; as for PVH no `protocol` and none of the
    /// PV guest's `/vm/<uuid>/image/*` (its own entries, `image/ostype = hvm` among them,
    /// are `crate::build::hvm::xenstore`'s).
    Hvm,
}

impl GuestKind {
    /// The disk frontends' `protocol`, if written.
    pub const fn protocol(self) -> Option<&'static str> {
        match self {
            GuestKind::Pv { protocol } => Some(protocol),
            GuestKind::Pvh | GuestKind::Hvm => None,
        }
    }
    /// `/libxl/<domid>/type` (libxl's `libxl_domain_type` name).
    pub const fn libxl_type(self) -> &'static str {
        match self {
            GuestKind::Pv { .. } => "pv",
            GuestKind::Pvh => "pvh",
            GuestKind::Hvm => "hvm",
        }
    }
}

/// Everything the xenstore entries of a new PV domain are made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDomain {
    /// The domain id.
    pub domid: u32,
    /// Its name (unique among domains).
    pub name: String,
    /// Its UUID (the `/vm/<uuid>` entry).
    pub uuid: Uuid,
    /// `memory/static-max`, in KiB.
    pub max_memkb: u64,
    /// `memory/target`, in KiB.
    pub target_memkb: u64,
    /// Number of vcpus the domain may have (`cpu/N` for each).
    pub max_vcpus: u32,
    /// How many of them start online.
    pub avail_vcpus: u32,
    /// The xenstore ring.
    pub store: Ring,
    /// The console ring.
    pub console: Ring,
    /// The domain of the xenstore and console backends (0: dom0).
    pub backend_domid: u32,
    /// Path of the kernel (`/vm/<uuid>/image/kernel`).
    pub kernel: String,
    /// Path of the ramdisk, if any.
    pub ramdisk: Option<String>,
    /// Kernel command line, if any.
    pub cmdline: Option<String>,
    /// When the build started (`/vm/<uuid>/start_time`).
    pub start_time: SystemTime,
    /// The guest's disks (qdisk backends, served by the device model).
    pub disks: Vec<Vbd>,
    /// The guest type, where its entries differ.
    pub guest: GuestKind,
    /// The guest's network interfaces (netback backends).
    pub vifs: Vec<Vif>,
    /// `Some` for a stub domain only: where its console 0's output goes, as a dom0 QEMU, not
    /// xenconsoled, serves it (libxl's `type = ioemu` and `output = file:<log>`). A stub
    /// domain also gets no `/libxl/<domid>/dm-version` (`libxl__spawn_stub_dm` builds it
    /// without the create path's `store_libxl_entry`). `None`: any other domain.
    pub stub_console_output: Option<String>,
}

/// `LIBXL_DEVICE_NIC_MTU_DEFAULT`: the MTU libxl writes to the backend only when it differs.
pub const NIC_MTU_DEFAULT: u32 = 1500;

/// One virtual network interface, as `libxl__device_nic_add` writes it for a PV guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vif {
    /// The device number (`handle`, and the directory's name).
    pub devid: u32,
    /// `mac`, as `LIBXL_MAC_FMT` prints it.
    pub mac: String,
    /// `bridge`.
    pub bridge: String,
    /// `script`: the hotplug script's absolute path.
    pub script: String,
    /// `ip`, if given.
    pub ip: Option<String>,
    /// `gatewaydev`, if given.
    pub gatewaydev: Option<String>,
    /// `vifname`, if given.
    pub vifname: Option<String>,
    /// `rate`, if given (`<bytes per interval>,<interval usecs>`).
    pub rate: Option<String>,
    /// The MTU.
    pub mtu: u32,
    /// `trusted` in the frontend.
    pub trusted: bool,
    /// An HVM guest's `vif_ioemu` interface: the model of the emulated NIC QEMU gives the
    /// guest beside this PV vif (backend `type = vif_ioemu`, as libxl writes it); `None`: a
    /// PV interface (`type = vif`).
    pub model: Option<String>,
}

#[cfg(test)]
impl Vif {
    /// A PV interface with xl's defaults (bridge `xenbr0`, vif-bridge, MTU 1500, trusted).
    pub(crate) fn bridged_for_test(devid: u32, mac: &str) -> Self {
        Self {
            devid,
            mac: mac.into(),
            bridge: "xenbr0".into(),
            script: "/etc/xen/scripts/vif-bridge".into(),
            ip: None,
            gatewaydev: None,
            vifname: None,
            rate: None,
            mtu: 1500,
            trusted: true,
            model: None,
        }
    }
}

impl Vif {
    /// The backend's `type`: libxl's `libxl_nic_type_to_string`.
    pub fn nictype(&self) -> &'static str {
        if self.model.is_some() {
            "vif_ioemu"
        } else {
            "vif"
        }
    }

    /// Its backend directory for guest `domid`, backend domain `be`.
    pub fn backend_path(&self, be: u32, domid: u32) -> String {
        format!("{}/{}", vif_backend_dir(be, domid), self.devid)
    }
}

/// The backend directory of a domain's network interfaces:
/// `/local/domain/<backend>/backend/vif/<domid>`.
pub fn vif_backend_dir(backend_domid: u32, domid: u32) -> String {
    format!("/local/domain/{backend_domid}/backend/vif/{domid}")
}

/// Who serves a virtual block device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VbdBackend {
    /// QEMU's xen-block (`backend/qdisk`), in the device model.
    Qdisk,
    /// The kernel's blkback (`backend/vbd`), on this block device (major, minor).
    Phy {
        /// The device's major number.
        major: u32,
        /// Its minor number.
        minor: u32,
    },
}

/// One virtual block device, as `libxl__device_disk_add` writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vbd {
    /// Who serves it.
    pub backend: VbdBackend,
    /// The device number (`virtual-device`, and the directory's name).
    pub devid: u32,
    /// The guest's name for it (`dev`), e.g. `xvda`.
    pub vdev: String,
    /// `params`: `<format>:<absolute path>` (`aio` for raw) for a qdisk, the device's
    /// absolute path for blkback.
    pub params: String,
    /// `mode` `r` instead of `w`.
    pub readonly: bool,
    /// `discard-enable`.
    pub discard: bool,
    /// `trusted` in the frontend.
    pub trusted: bool,
}

/// One step of writing the entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Remove a subtree (missing is fine).
    Rm(String),
    /// `libxl__xs_mknod`: create with an empty value, then set permissions.
    Mknod(String, Vec<Perm>),
    /// `xs_mkdir` then set permissions.
    MkdirPerms(String, Vec<Perm>),
    /// Write a value (new nodes inherit their parent's permissions).
    Write(String, String),
    /// Write a value, then set its permissions.
    WritePerms(String, String, Vec<Perm>),
}

/// Why the domain's entries could not be written.
#[derive(Debug, Error)]
pub enum DomainXsError {
    /// The name is refused by [`check_domain_name`].
    #[error("invalid domain name {0:?}")]
    BadName(String),
    /// Another domain already has the name.
    #[error("a domain named {name:?} already exists (domain {domid})")]
    NameTaken {
        /// The name.
        name: String,
        /// The domain that has it.
        domid: u32,
    },
    /// More vcpus than pvbuild writes, or more online than exist.
    #[error("invalid vcpu counts: {avail} online of {max}")]
    BadVcpus {
        /// max_vcpus.
        max: u32,
        /// avail_vcpus.
        avail: u32,
    },
    /// The domain's name changed between the lookup and the rename (libxl: "racing ?").
    #[error("domain {domid} is named {found:?}, not {expected:?} (renamed meanwhile?)")]
    Renamed {
        /// The domain.
        domid: u32,
        /// The name it was looked up by.
        expected: String,
        /// The name it has.
        found: String,
    },
    /// The domain already has a device of this number.
    #[error("device {0} already exists")]
    DevidTaken(u32),
    /// Domain 0 cannot be (re)made.
    #[error("domain id {0} is not a guest domain id")]
    BadDomid(u32),
    /// The domain's directory is gone (the domain was destroyed meanwhile).
    #[error("domain {0} has no /local/domain/{0} (destroyed meanwhile?)")]
    Gone(u32),
    /// A xenstore operation failed.
    #[error(transparent)]
    Xs(#[from] XsError),
}

/// The backend directory of a domain's qdisk disks:
/// `/local/domain/<backend>/backend/qdisk/<domid>`.
pub fn qdisk_backend_dir(backend_domid: u32, domid: u32) -> String {
    format!("/local/domain/{backend_domid}/backend/qdisk/{domid}")
}

/// Where the device model of `domid` reports (`state`), under the toolstack domain:
/// `/local/domain/0/device-model/<domid>`.
pub fn device_model_dir(domid: u32) -> String {
    format!("/local/domain/0/device-model/{domid}")
}

/// The backend directory of a domain's blkback disks:
/// `/local/domain/<backend>/backend/vbd/<domid>`.
pub fn vbd_backend_dir(backend_domid: u32, domid: u32) -> String {
    format!("/local/domain/{backend_domid}/backend/vbd/{domid}")
}

impl Vbd {
    /// Its backend directory for guest `domid`, backend domain `be`.
    pub fn backend_path(&self, be: u32, domid: u32) -> String {
        let dir = match self.backend {
            VbdBackend::Qdisk => qdisk_backend_dir(be, domid),
            VbdBackend::Phy { .. } => vbd_backend_dir(be, domid),
        };
        format!("{dir}/{}", self.devid)
    }
}

/// `/local/domain/<domid>`.
pub fn dom_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

/// `/libxl/<domid>`.
pub fn libxl_path(domid: u32) -> String {
    format!("/libxl/{domid}")
}

/// `/vm/<uuid>`.
pub fn vm_path(uuid: &Uuid) -> String {
    format!("/vm/{}", uuid.hyphenated())
}

/// The UUID of a domain's `vm` node (`/vm/<uuid>`): only a path of the form [`vm_path`]
/// writes, so a corrupted value names nothing.
pub fn uuid_of_vm_path(vm: &str) -> Option<Uuid> {
    vm.strip_prefix("/vm/")
        .and_then(|u| Uuid::parse_str(u).ok())
}

/// The primary console's backend directory, `/local/domain/<be>/backend/console/<domid>`.
pub fn console_backend_dir(backend_domid: u32, domid: u32) -> String {
    format!("/local/domain/{backend_domid}/backend/console/{domid}")
}

/// libxl's `start_time`: seconds, a dot, and hundredths.
pub fn start_time_string(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:02}", d.as_secs(), d.subsec_micros() / 10_000)
}

/// The first domid `>= 1` with no `/local/domain/<id>` (for callers without a hypervisor).
fn valid_guest_domid(domid: u32) -> bool {
    // DOMID_FIRST_RESERVED is 0x7ff0.
    (1..0x7ff0).contains(&domid)
}

/// Whether `name` may name a domain. The name is spliced into paths (xl's and pvbuild's
/// logs under `/var/log/xen`, `qemu-dm-<name>.log`, `pvbuild-<name>.log`), so on top of
/// being non-empty, at most [`NAME_MAX`] bytes and free of control characters, it has no
/// `/` and no `..`, and is not `.`: stricter than libxl 4.17, which checks only that a
/// name is not taken. Returns why not.
pub fn check_domain_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.len() > NAME_MAX {
        return Err(format!("name longer than {NAME_MAX} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err("name has control characters".into());
    }
    if name.contains('/') {
        return Err(format!(
            "name {name:?} has a '/' (it names files under /var/log/xen)"
        ));
    }
    if name == "." || name.contains("..") {
        return Err(format!(
            "name {name:?} is '.' or has '..' (it names files under /var/log/xen)"
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), DomainXsError> {
    check_domain_name(name).map_err(|_| DomainXsError::BadName(name.chars().take(64).collect()))
}

impl NewDomain {
    /// The ordered steps that write this domain's entries, libxl's order.
    pub fn ops(&self) -> Vec<Op> {
        let d = self.domid;
        let be = self.backend_domid;
        let dom = dom_path(d);
        let vm = vm_path(&self.uuid);
        let libxl = libxl_path(d);
        // libxl__domain_make's permission sets.
        let noperm = vec![Perm::new(0, Access::None)];
        let roperm = vec![Perm::new(0, Access::None), Perm::new(d, Access::Read)];
        let rwperm = vec![Perm::new(d, Access::None)];
        let mut ops = vec![
            Op::Rm(dom.clone()),
            Op::Mknod(dom.clone(), roperm.clone()),
            Op::Rm(vm.clone()),
            Op::Mknod(vm.clone(), roperm.clone()),
            Op::Rm(libxl.clone()),
            Op::Mknod(libxl.clone(), noperm.clone()),
            Op::Mknod(format!("{libxl}/device"), noperm),
            Op::Write(format!("{dom}/vm"), vm.clone()),
            Op::Write(format!("{dom}/name"), self.name.clone()),
            Op::Mknod(format!("{dom}/cpu"), roperm.clone()),
            Op::Mknod(format!("{dom}/memory"), roperm.clone()),
            Op::Mknod(format!("{dom}/device"), roperm.clone()),
            Op::Mknod(
                format!("{dom}/device/suspend/event-channel"),
                rwperm.clone(),
            ),
            Op::Mknod(format!("{dom}/control"), roperm.clone()),
        ];
        // libxl__domain_make: an HVM guest's control/ has feature-s3 and feature-s4 too.
        let hvm_features: &[&str] = match self.guest {
            GuestKind::Hvm => &["feature-s3", "feature-s4"],
            GuestKind::Pv { .. } | GuestKind::Pvh => &[],
        };
        let control = [
            "shutdown",
            "feature-poweroff",
            "feature-reboot",
            "feature-suspend",
        ];
        for n in control.iter().chain(hvm_features).chain(&["sysrq"]) {
            ops.push(Op::Mknod(format!("{dom}/control/{n}"), rwperm.clone()));
        }
        for n in ["data", "drivers", "feature", "attr", "error"] {
            ops.push(Op::Mknod(format!("{dom}/{n}"), rwperm.clone()));
        }
        ops.extend([
            Op::Write(format!("{vm}/uuid"), self.uuid.hyphenated().to_string()),
            Op::Write(format!("{vm}/name"), self.name.clone()),
            Op::Write(
                format!("{dom}/control/platform-feature-multiprocessor-suspend"),
                "1".into(),
            ),
            Op::Write(
                format!("{dom}/control/platform-feature-xs_reset_watches"),
                "1".into(),
            ),
            Op::Write(format!("{libxl}/type"), self.guest.libxl_type().into()),
        ]);
        // store_libxl_entry (not for a stub domain: libxl builds it outside the create path)
        if self.stub_console_output.is_none() {
            ops.push(Op::Write(
                format!("{libxl}/dm-version"),
                DM_VERSION_PV.into(),
            ));
        }
        ops.extend([
            // libxl__build_post
            Op::Write(
                format!("{dom}/memory/static-max"),
                self.max_memkb.to_string(),
            ),
            Op::Write(
                format!("{dom}/memory/target"),
                self.target_memkb.to_string(),
            ),
            Op::Write(format!("{dom}/memory/videoram"), "0".into()),
            Op::Write(format!("{dom}/domid"), d.to_string()),
            Op::Write(format!("{dom}/store/port"), self.store.port.to_string()),
            Op::Write(format!("{dom}/store/ring-ref"), self.store.mfn.to_string()),
        ]);
        for i in 0..self.max_vcpus {
            let state = if i < self.avail_vcpus {
                "online"
            } else {
                "offline"
            };
            ops.push(Op::Write(
                format!("{dom}/cpu/{i}/availability"),
                state.into(),
            ));
        }
        // libxl__build_pv's image entries: a PVH guest (libxl__build_hvm) has none.
        if let GuestKind::Pv { .. } = self.guest {
            ops.extend([
                Op::Write(format!("{vm}/image/ostype"), "linux".into()),
                Op::Write(format!("{vm}/image/kernel"), self.kernel.clone()),
            ]);
        }
        ops.push(Op::Write(
            format!("{vm}/start_time"),
            start_time_string(self.start_time),
        ));
        if let (Some(r), GuestKind::Pv { .. }) = (&self.ramdisk, self.guest) {
            ops.push(Op::Write(format!("{vm}/image/ramdisk"), r.clone()));
        }
        if let (Some(c), GuestKind::Pv { .. }) = (&self.cmdline, self.guest) {
            ops.push(Op::Write(format!("{vm}/image/cmdline"), c.clone()));
        }
        // The primary console (libxl__device_console_add + libxl__device_generic_add).
        let fe = format!("{dom}/console");
        let be_path = format!("{}/0", console_backend_dir(be, d));
        let lx = format!("{libxl}/device/console/0");
        let frontend_perms = vec![Perm::new(d, Access::None), Perm::new(be, Access::Read)];
        let ro_frontend_perms = vec![Perm::new(be, Access::None), Perm::new(d, Access::Read)];
        let backend_perms = ro_frontend_perms.clone();
        let bents: Vec<(&str, String)> = vec![
            ("frontend-id", d.to_string()),
            ("online", "1".into()),
            ("state", XENBUS_STATE_INITIALISING.to_string()),
            ("protocol", XENCONSOLE_PROTOCOL.into()),
        ];
        ops.extend([
            Op::Rm(lx.clone()),
            Op::Write(format!("{lx}/frontend"), fe.clone()),
            Op::Write(format!("{lx}/backend"), be_path.clone()),
            Op::Rm(fe.clone()),
            // Console 0's frontend directory is read-only for the guest.
            Op::MkdirPerms(fe.clone(), ro_frontend_perms.clone()),
            Op::Write(format!("{fe}/backend"), be_path.clone()),
            Op::WritePerms(format!("{fe}/backend-id"), be.to_string(), frontend_perms),
        ]);
        for (k, v) in [
            ("limit", XENCONSOLE_LIMIT.to_string()),
            (
                "type",
                if self.stub_console_output.is_some() {
                    "ioemu"
                } else {
                    "xenconsoled"
                }
                .to_owned(),
            ),
            (
                "output",
                self.stub_console_output
                    .clone()
                    .unwrap_or_else(|| "pty".into()),
            ),
            ("tty", String::new()),
            ("port", self.console.port.to_string()),
            ("ring-ref", self.console.mfn.to_string()),
        ] {
            ops.push(Op::WritePerms(
                format!("{fe}/{k}"),
                v,
                ro_frontend_perms.clone(),
            ));
        }
        ops.extend([
            Op::Rm(be_path.clone()),
            Op::MkdirPerms(be_path.clone(), backend_perms),
            Op::Write(format!("{be_path}/frontend"), fe),
        ]);
        for (k, v) in &bents {
            ops.push(Op::Write(format!("{be_path}/{k}"), v.clone()));
        }
        for (k, v) in &bents {
            ops.push(Op::Write(format!("{lx}/{k}"), v.clone()));
        }
        if self.guest == GuestKind::Hvm {
            ops.extend(vkbd_ops(d, be));
        }
        for disk in &self.disks {
            ops.extend(vbd_ops(
                self.domid,
                self.backend_domid,
                self.guest.protocol(),
                disk,
            ));
        }
        for vif in &self.vifs {
            ops.extend(vif_ops(self.domid, self.backend_domid, vif));
        }
        ops
    }

    fn validate(&self) -> Result<(), DomainXsError> {
        if !valid_guest_domid(self.domid) {
            return Err(DomainXsError::BadDomid(self.domid));
        }
        check_name(&self.name)?;
        if self.max_vcpus == 0 || self.max_vcpus > VCPUS_MAX || self.avail_vcpus > self.max_vcpus {
            return Err(DomainXsError::BadVcpus {
                max: self.max_vcpus,
                avail: self.avail_vcpus,
            });
        }
        Ok(())
    }
}

/// One interface's entries: `libxl__set_xenstore_nic` through
/// `libxl__device_generic_add` (libxl copy, frontend with its read-only `mtu`, backend).
/// `hotplug-status` starts empty so that netback waits for the hotplug script before it
/// connects.
pub fn vif_ops(d: u32, be: u32, v: &Vif) -> Vec<Op> {
    let mut bents: Vec<(&str, String)> = vec![
        ("frontend-id", d.to_string()),
        ("online", "1".into()),
        ("state", XENBUS_STATE_INITIALISING.to_string()),
        ("script", v.script.clone()),
    ];
    if let Some(n) = &v.vifname {
        bents.push(("vifname", n.clone()));
    }
    bents.push(("mac", v.mac.clone()));
    for (k, val) in [
        ("ip", &v.ip),
        ("gatewaydev", &v.gatewaydev),
        ("rate", &v.rate),
    ] {
        if let Some(val) = val {
            bents.push((k, val.clone()));
        }
    }
    if v.mtu != NIC_MTU_DEFAULT {
        bents.push(("mtu", v.mtu.to_string()));
    }
    bents.extend([
        ("bridge", v.bridge.clone()),
        ("handle", v.devid.to_string()),
        ("type", v.nictype().into()),
        ("hotplug-status", String::new()),
    ]);
    let fents: Vec<(&str, String)> = vec![
        ("backend-id", be.to_string()),
        ("state", XENBUS_STATE_INITIALISING.to_string()),
        ("handle", v.devid.to_string()),
        ("mac", v.mac.clone()),
        ("trusted", if v.trusted { "1" } else { "0" }.into()),
    ];
    // `ro_front`: the guest may read its MTU but not change it.
    let ro_fents = vec![("mtu", v.mtu.to_string())];
    generic_device_ops(
        (d, be),
        ("vif", v.devid),
        v.backend_path(be, d),
        (fents, ro_fents),
        bents,
    )
}

/// The backend directory of a domain's virtual keyboards:
/// `/local/domain/<backend>/backend/vkbd/<domid>`.
pub fn vkbd_backend_dir(backend_domid: u32, domid: u32) -> String {
    format!("/local/domain/{backend_domid}/backend/vkbd/{domid}")
}

/// The virtual keyboard and pointer libxl adds to every HVM guest (`vkb_device` defaults to
/// true; `domcreate_launch_dm`, before QEMU starts): device 0, served by QEMU (backend
/// `vkbd`), with `libxl__device_add`'s entries and none of `libxl__set_xenstore_vkb`'s (its
/// fields all default to unset).
pub fn vkbd_ops(d: u32, be: u32) -> Vec<Op> {
    let init = XENBUS_STATE_INITIALISING.to_string();
    generic_device_ops(
        (d, be),
        ("vkbd", 0),
        format!("{}/0", vkbd_backend_dir(be, d)),
        (
            vec![("backend-id", be.to_string()), ("state", init.clone())],
            Vec::new(),
        ),
        vec![
            ("frontend-id", d.to_string()),
            ("online", "1".into()),
            ("state", init),
        ],
    )
}

/// Key and value pairs of one directory, in writing order.
type Entries<'a> = Vec<(&'a str, String)>;

/// One device's entries as `libxl__device_generic_add` writes them, in its order: libxl's
/// copy (`/libxl/<guest>/device/<kind>/<devid>`: `frontend`, `backend` and the backend's
/// entries), the frontend (`/local/domain/<guest>/device/<kind>/<devid>`: owned by the guest,
/// readable by the backend; its `ro_fents` owned by the backend, readable by the guest), then
/// the backend directory `bp` (owned by the backend, readable by the guest). Each directory
/// is removed first.
fn generic_device_ops(
    (guest, backend): (u32, u32),
    (kind, devid): (&str, u32),
    bp: String,
    (fents, ro_fents): (Entries<'_>, Entries<'_>),
    bents: Entries<'_>,
) -> Vec<Op> {
    let fe = format!("{}/device/{kind}/{devid}", dom_path(guest));
    let lx = format!("{}/device/{kind}/{devid}", libxl_path(guest));
    let frontend_perms = vec![
        Perm::new(guest, Access::None),
        Perm::new(backend, Access::Read),
    ];
    let backend_perms = vec![
        Perm::new(backend, Access::None),
        Perm::new(guest, Access::Read),
    ];
    let mut ops = vec![
        Op::Rm(lx.clone()),
        Op::Write(format!("{lx}/frontend"), fe.clone()),
        Op::Write(format!("{lx}/backend"), bp.clone()),
        Op::Rm(fe.clone()),
        Op::MkdirPerms(fe.clone(), frontend_perms),
        Op::Write(format!("{fe}/backend"), bp.clone()),
    ];
    for (k, val) in fents {
        ops.push(Op::Write(format!("{fe}/{k}"), val));
    }
    for (k, val) in ro_fents {
        ops.push(Op::WritePerms(
            format!("{fe}/{k}"),
            val,
            backend_perms.clone(),
        ));
    }
    ops.extend([
        Op::Rm(bp.clone()),
        Op::MkdirPerms(bp.clone(), backend_perms),
        Op::Write(format!("{bp}/frontend"), fe),
    ]);
    for (k, val) in &bents {
        ops.push(Op::Write(format!("{bp}/{k}"), val.clone()));
    }
    for (k, val) in bents {
        ops.push(Op::Write(format!("{lx}/{k}"), val));
    }
    ops
}

fn apply(t: &Transaction<'_>, op: &Op) -> Result<(), XsError> {
    match op {
        Op::Rm(p) => t.rm_if_present(p),
        Op::Mknod(p, perms) => {
            t.write(p, "")?;
            t.set_perms(p, perms)
        }
        Op::MkdirPerms(p, perms) => {
            t.mkdir(p)?;
            t.set_perms(p, perms)
        }
        Op::Write(p, v) => t.write(p, v),
        Op::WritePerms(p, v, perms) => {
            t.write(p, v)?;
            t.set_perms(p, perms)
        }
    }
}

/// The transaction of [`write_new_domain`] without the introduction: every entry, in one
/// transaction retried on EAGAIN, after checking that no other domain has the name.
pub fn write_domain_entries(xs: &XsConnection, d: &NewDomain) -> Result<(), DomainXsError> {
    d.validate()?;
    let ops = d.ops();
    xs.with_transaction(|t| {
        if let Some(other) = name_owner(t, &d.name, d.domid)? {
            return Ok(Err(DomainXsError::NameTaken {
                name: d.name.clone(),
                domid: other,
            }));
        }
        apply_all(t, &ops)?;
        Ok(Ok(()))
    })?
}

/// `ops` in `t`, pipelined ([`XsConnection::pipeline`]): the requests [`apply`] makes one
/// by one, in the same order, in a few round trips, less each `set_perms` that would give a
/// node the permissions it already has ([`requests`]). The first request xenstored refused is
/// the error (a missing node of an [`Op::Rm`] is not one).
fn apply_all(t: &Transaction<'_>, ops: &[Op]) -> Result<(), XsError> {
    let reqs = requests(ops)?;
    let just: Vec<Req> = reqs.iter().map(|(r, _)| r.clone()).collect();
    for ((r, missing_ok), reply) in reqs.iter().zip(t.pipeline(&just)?) {
        match reply {
            Ok(p) => super::wire::parse_ok(&p).map_err(|source| XsError::Wire {
                op: r.op.name(),
                source,
            })?,
            Err(e) if *missing_ok && e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The requests of `ops` (each with whether a missing node is fine), in order. xenstored
/// gives a node it creates its parent's permissions (oxenstored's `Node.create name
/// node.perms`; C xenstored's `construct_node` for a privileged caller), so a node that `ops`
/// create under a parent whose permissions `ops` set already has any equal permissions it
/// is then given: that `set_perms` is left out (issue 17; libxl sends it, to the same
/// effect). Same nodes, same values, same permissions: `host/tests/xenstore_oxenstored.rs`
/// compares the tree with the one every request makes, on a real oxenstored.
fn requests(ops: &[Op]) -> Result<Vec<(Req, bool)>, XsError> {
    let perms_req = |p: &str, perms: &[Perm]| -> Result<(Req, bool), XsError> {
        if perms.is_empty() {
            return Err(XsError::Request {
                op: "XS_SET_PERMS",
                source: super::wire::WireError::BadArgument("empty permission list".into()),
            });
        }
        Ok((Req::set_perms(p, perms), false))
    };
    let mut known = KnownPerms::default();
    let mut reqs: Vec<(Req, bool)> = Vec::new();
    for op in ops {
        let (p, ps) = match op {
            Op::Rm(p) => {
                reqs.push((Req::rm(p), true));
                known.remove(p);
                continue;
            }
            Op::Write(p, v) => {
                reqs.push((Req::write(p, v), false));
                known.create(p);
                continue;
            }
            Op::Mknod(p, ps) => {
                reqs.push((Req::write(p, ""), false));
                (p, ps)
            }
            Op::MkdirPerms(p, ps) => {
                reqs.push((Req::mkdir(p), false));
                (p, ps)
            }
            Op::WritePerms(p, v, ps) => {
                reqs.push((Req::write(p, v), false));
                (p, ps)
            }
        };
        if known.create(p).as_deref() != Some(ps.as_slice()) {
            reqs.push(perms_req(p, ps)?);
            known.set(p, ps);
        }
    }
    Ok(reqs)
}

/// What a list of [`Op`]s is sure of, op by op: the permissions of the nodes it made or
/// gave permissions to (`None`: made, inheriting permissions it does not know), and the
/// subtrees it removed (absent until made again).
#[derive(Debug, Default)]
struct KnownPerms {
    made: std::collections::BTreeMap<String, Option<Vec<Perm>>>,
    removed: Vec<String>,
}

/// Whether `p` is `root` or below it.
fn is_under(p: &str, root: &str) -> bool {
    p.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The parent of an absolute path (`None` for `/` and relative paths).
fn parent_path(p: &str) -> Option<&str> {
    match p.rsplit_once('/') {
        Some(("", "")) | None => None,
        Some(("", _)) => Some("/"),
        Some((parent, _)) => Some(parent),
    }
}

impl KnownPerms {
    fn remove(&mut self, root: &str) {
        self.made.retain(|p, _| !is_under(p, root));
        self.removed.push(root.to_owned());
    }

    fn absent(&self, p: &str) -> bool {
        !self.made.contains_key(p) && self.removed.iter().any(|r| is_under(p, r))
    }

    /// A write or mkdir of `p`: makes it (and its missing parents) when absent, with the
    /// permissions of its nearest existing ancestor. Returns `p`'s permissions, if known.
    fn create(&mut self, p: &str) -> Option<Vec<Perm>> {
        if let Some(k) = self.made.get(p) {
            return k.clone();
        }
        if !self.absent(p) {
            // There before these ops, permissions unknown.
            self.made.insert(p.to_owned(), None);
            return None;
        }
        let mut chain = vec![p];
        let mut up = parent_path(p);
        let inherited = loop {
            match up {
                Some(a) if self.made.contains_key(a) => {
                    break self.made.get(a).cloned().flatten();
                }
                Some(a) if self.absent(a) => {
                    chain.push(a);
                    up = parent_path(a);
                }
                _ => break None,
            }
        };
        for c in chain {
            self.made.insert(c.to_owned(), inherited.clone());
        }
        inherited
    }

    fn set(&mut self, p: &str, perms: &[Perm]) {
        self.made.insert(p.to_owned(), Some(perms.to_vec()));
    }
}

/// The values of `paths` (`None`: no such node), read in one pipeline inside transaction
/// `tx` (0: none).
fn read_many(xs: &XsConnection, tx: u32, paths: &[String]) -> Result<Vec<Option<String>>, XsError> {
    let reqs: Vec<Req> = paths.iter().map(|p| Req::read(p)).collect();
    xs.pipeline(tx, &reqs)?
        .into_iter()
        .map(|reply| match reply {
            Ok(v) => String::from_utf8(v).map(Some).map_err(|_| XsError::Wire {
                op: "XS_READ",
                source: super::wire::WireError::NotUtf8,
            }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        })
        .collect()
}

/// The domain (other than `domid`) that already has `name`, read inside `t` (every
/// domain's name in one pipeline).
fn name_owner(t: &Transaction<'_>, name: &str, domid: u32) -> Result<Option<u32>, XsError> {
    let others: Vec<u32> = t
        .directory("/local/domain")?
        .iter()
        .filter_map(|c| c.parse::<u32>().ok())
        .filter(|&d| d != domid)
        .collect();
    let paths: Vec<String> = others
        .iter()
        .map(|d| format!("/local/domain/{d}/name"))
        .collect();
    let names = t.pipeline(&paths.iter().map(|p| Req::read(p)).collect::<Vec<_>>())?;
    for (other, reply) in others.into_iter().zip(names) {
        match reply {
            Ok(v) if v == name.as_bytes() => return Ok(Some(other)),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A new domain's name, found free in a transaction that stays open while the domain is built
/// ([`claim_name`]); its entries are then written in that same transaction
/// ([`write_new_domain_claimed`]). A create reads every domain's name once, not once before
/// the build (to refuse a taken name before Xen is touched) and again in the transaction that
/// writes the entries (issue 17: with 60 domains those reads were most of a create's growth).
#[derive(Debug)]
pub struct NameClaim<'a> {
    t: Transaction<'a>,
    name: String,
}

/// Starts the transaction of a new domain named `name` and checks, in it, that no domain has
/// the name: the claim, or the domain that has it.
pub fn claim_name<'a>(xs: &'a XsConnection, name: &str) -> Result<NameClaim<'a>, DomainXsError> {
    check_domain_name(name).map_err(|_| DomainXsError::BadName(name.to_owned()))?;
    let t = xs.transaction_start()?;
    // The new domain has no id yet: every domain counts (as the lookup by name before did).
    if let Some(domid) = name_owner(&t, name, u32::MAX)? {
        return Err(DomainXsError::NameTaken {
            name: name.to_owned(),
            domid,
        });
    }
    Ok(NameClaim {
        t,
        name: name.to_owned(),
    })
}

/// [`write_new_domain`] in the transaction of `claim`: the name was checked in it before the
/// build. If xenstored refuses the commit (EAGAIN: something the transaction read changed while
/// the domain was built, a domain made or renamed meanwhile), the entries are written as
/// [`write_new_domain`] writes them, in a new transaction that checks the name again.
pub fn write_new_domain_claimed(
    xs: &XsConnection,
    claim: NameClaim<'_>,
    d: &NewDomain,
) -> Result<(), DomainXsError> {
    if claim.name != d.name {
        drop(claim);
        return write_new_domain(xs, d);
    }
    d.validate()?;
    let ops = d.ops();
    apply_all(&claim.t, &ops)?;
    match claim.t.commit() {
        Ok(()) => crate::build::steps::lap("xenstore"),
        Err(e) if e.is_again() => {
            write_domain_entries(xs, d)?;
            crate::build::steps::lap("xenstore");
        }
        Err(e) => return Err(e.into()),
    }
    introduce(xs, d)
}

/// Write every entry of a new PV domain in one transaction (retried on EAGAIN), refusing a
/// name another domain has, then introduce the domain to xenstored (`XS_INTRODUCE` with the
/// store ring's mfn and port). On error nothing of the transaction is left; if the
/// introduction fails, the entries are removed again before the error is returned.
pub fn write_new_domain(xs: &XsConnection, d: &NewDomain) -> Result<(), DomainXsError> {
    write_domain_entries(xs, d)?;
    crate::build::steps::lap("xenstore");
    introduce(xs, d)
}

/// The introduction of a domain whose entries are written (`XS_INTRODUCE`); if it fails, the
/// entries are removed again.
fn introduce(xs: &XsConnection, d: &NewDomain) -> Result<(), DomainXsError> {
    if let Err(e) = xs.introduce(d.domid, d.store.mfn, d.store.port) {
        // Undo what was written; the introduction's error is the one to report.
        let _ = remove_domain(xs, d.domid, Some(&d.uuid), d.backend_domid, false);
        return Err(e.into());
    }
    crate::build::steps::lap("introduce");
    Ok(())
}

/// One disk's entries: `libxl__device_disk_add` (a qdisk or a blkback backend), through
/// `libxl__device_generic_add` (libxl copy, frontend, backend). `protocol`: the guest's ring
/// ABI (`x86_64-abi`), written for PV guests only, as libxl does.
pub fn vbd_ops(d: u32, be: u32, protocol: Option<&str>, v: &Vbd) -> Vec<Op> {
    let bool01 = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut bents: Vec<(&str, String)> = vec![
        ("frontend-id", d.to_string()),
        ("online", "1".into()),
        ("removable", "0".into()),
        ("bootable", "1".into()),
        ("state", XENBUS_STATE_INITIALISING.to_string()),
        ("dev", v.vdev.clone()),
        (
            "type",
            match v.backend {
                VbdBackend::Qdisk => "qdisk",
                VbdBackend::Phy { .. } => "phy",
            }
            .into(),
        ),
        ("mode", if v.readonly { "r" } else { "w" }.into()),
        ("device-type", "disk".into()),
        ("discard-enable", bool01(v.discard)),
        ("specification", "xen".into()),
        ("params", v.params.clone()),
    ];
    if let VbdBackend::Phy { major, minor } = v.backend {
        // What libxl's `block` hotplug script writes for a block device (pvbuild runs no
        // script: it knows the device): blkback opens the device these name.
        bents.push(("physical-device", format!("{major:x}:{minor:x}")));
        bents.push(("physical-device-path", v.params.clone()));
    }
    let mut fents: Vec<(&str, String)> = vec![
        ("backend-id", be.to_string()),
        ("state", XENBUS_STATE_INITIALISING.to_string()),
        ("virtual-device", v.devid.to_string()),
        ("device-type", "disk".into()),
        ("trusted", bool01(v.trusted)),
    ];
    if let Some(p) = protocol {
        fents.push(("protocol", p.into()));
    }
    generic_device_ops(
        (d, be),
        ("vbd", v.devid),
        v.backend_path(be, d),
        (fents, Vec::new()),
        bents,
    )
}

/// One secondary console of `d` (devid 1 and up) served by a QEMU in `be`, as
/// `libxl__device_console_add` writes it for a stub domain's consoles (`type = ioemu`; the
/// ring's `port` and `ring-ref` are the frontend's to write): `output` is QEMU's chardev for
/// it (`file:<path>`, `pipe:<path>`, `pty`), none when absent.
pub fn console_ops(d: u32, be: u32, devid: u32, output: Option<&str>) -> Vec<Op> {
    // The guest's own: its backend's id and its state (libxl's `front`).
    let fents: Vec<(&str, String)> = vec![
        ("backend-id", be.to_string()),
        ("state", XENBUS_STATE_INITIALISING.to_string()),
        ("protocol", XENCONSOLE_PROTOCOL.into()),
    ];
    // What the backend acts on, read-only for the guest (libxl's `ro_front`, owned by the
    // backend's domain): `output` names the file a dom0 QEMU writes the console to, so a
    // guest (a stub domain) that could rewrite it could make that QEMU write any file.
    let mut ro_fents: Vec<(&str, String)> = vec![
        ("limit", XENCONSOLE_LIMIT.to_string()),
        ("type", "ioemu".into()),
    ];
    if let Some(o) = output {
        ro_fents.push(("output", o.to_owned()));
    }
    ro_fents.push(("tty", String::new()));
    let bents: Vec<(&str, String)> = vec![
        ("frontend-id", d.to_string()),
        ("online", "1".into()),
        ("state", XENBUS_STATE_INITIALISING.to_string()),
        ("protocol", XENCONSOLE_PROTOCOL.into()),
    ];
    generic_device_ops(
        (d, be),
        ("console", devid),
        format!("{}/{devid}", console_backend_dir(be, d)),
        (fents, ro_fents),
        bents,
    )
}

/// Writes `ops` in one transaction (retried on EAGAIN).
pub fn write_ops(xs: &XsConnection, ops: &[Op]) -> Result<(), XsError> {
    xs.with_transaction(|t| apply_all(t, ops))
}

/// Adds one interface to running domain `domid` (`xl network-attach`): its entries
/// ([`vif_ops`]) in one transaction, retried on EAGAIN; refuses a device number the domain
/// already has.
pub fn add_vif(
    xs: &XsConnection,
    domid: u32,
    backend_domid: u32,
    v: &Vif,
) -> Result<(), DomainXsError> {
    if !valid_guest_domid(domid) {
        return Err(DomainXsError::BadDomid(domid));
    }
    add_device(xs, domid, "vif", v.devid, &vif_ops(domid, backend_domid, v))
}

/// Adds one disk to running domain `domid` (`xl block-attach`): its entries ([`vbd_ops`]) in
/// one transaction, retried on EAGAIN; refuses a device number the domain already has.
pub fn add_vbd(
    xs: &XsConnection,
    domid: u32,
    backend_domid: u32,
    protocol: Option<&str>,
    v: &Vbd,
) -> Result<(), DomainXsError> {
    if !valid_guest_domid(domid) {
        return Err(DomainXsError::BadDomid(domid));
    }
    add_device(
        xs,
        domid,
        "vbd",
        v.devid,
        &vbd_ops(domid, backend_domid, protocol, v),
    )
}

fn add_device(
    xs: &XsConnection,
    domid: u32,
    kind: &str,
    devid: u32,
    ops: &[Op],
) -> Result<(), DomainXsError> {
    let fe = format!("{}/device/{kind}/{devid}", dom_path(domid));
    let lx = format!("{}/device/{kind}/{devid}", libxl_path(domid));
    xs.with_transaction(|t| {
        // The domain's directory must be there: xenstored makes the missing parents of what
        // is written, so a device added to a domain destroyed meanwhile would bring back an
        // empty /local/domain/N (CI, 2026-12-07: a network-attach racing the destroy of a
        // guest that had rebooted). Read in the transaction, a destroy committed before this
        // one fails the commit (EAGAIN: oxenstored replays the reads), and the retry sees it.
        if t.read_opt(&dom_path(domid))?.is_none() {
            return Ok(Err(DomainXsError::Gone(domid)));
        }
        // The frontend is the guest's (it may remove it); dom0's copy under /libxl is not.
        if t.read_opt(&format!("{lx}/backend"))?.is_some()
            || t.read_opt(&format!("{fe}/backend"))?.is_some()
        {
            return Ok(Err(DomainXsError::DevidTaken(devid)));
        }
        for op in ops {
            apply(t, op)?;
        }
        Ok(Ok(()))
    })?
}

/// The device numbers of `domid`'s disks (its vbd frontends), sorted.
pub fn vbd_devids(xs: &XsConnection, domid: u32) -> Result<Vec<u32>, XsError> {
    device_ids(xs, domid, "vbd")
}

/// The first half of libxl's `libxl__initiate_device_generic_remove`: backend `bp` is told
/// to go (`online` 0, `state` Closing, in one transaction), and the wait (at most `timeout`,
/// woken by a watch) is for it to reach Closed (6), which it does once the guest's frontend
/// closed its side, or to vanish with its device. Returns whether it did in time.
pub fn close_backend(
    xs: &XsConnection,
    bp: &str,
    timeout: std::time::Duration,
) -> Result<bool, XsError> {
    let state_path = format!("{bp}/state");
    xs.with_transaction(|t| {
        t.write(&format!("{bp}/online"), "0")?;
        t.write(&state_path, "5")?;
        Ok(())
    })?;
    let waited = super::wait_watched(xs, &[&state_path], Some(timeout), || {
        let state = xs.read_opt(&state_path)?;
        Ok::<_, XsError>(
            state
                .as_deref()
                .is_none_or(|s| s.trim() == "6")
                .then_some(()),
        )
    })?;
    Ok(waited == super::Waited::Done(()))
}

/// Renames `domid` from `old` to `new` (libxl's `libxl__domain_rename`, as `xl rename`): in
/// one transaction, refusing a name another domain has or a domain no longer named `old`,
/// `/local/domain/<domid>/name` and `/vm/<uuid>/name` are rewritten.
pub fn rename_domain(
    xs: &XsConnection,
    domid: u32,
    old: &str,
    new: &str,
) -> Result<(), DomainXsError> {
    if !valid_guest_domid(domid) {
        return Err(DomainXsError::BadDomid(domid));
    }
    check_name(new)?;
    let dom = dom_path(domid);
    xs.with_transaction(|t| {
        if let Some(other) = name_owner(t, new, domid)? {
            return Ok(Err(DomainXsError::NameTaken {
                name: new.to_owned(),
                domid: other,
            }));
        }
        let found = t.read_opt(&format!("{dom}/name"))?.unwrap_or_default();
        if found != old {
            return Ok(Err(DomainXsError::Renamed {
                domid,
                expected: old.to_owned(),
                found,
            }));
        }
        t.write(&format!("{dom}/name"), new)?;
        if let Some(uuid) = t
            .read_opt(&format!("{dom}/vm"))?
            .and_then(|v| uuid_of_vm_path(&v))
        {
            t.write(&format!("{}/name", vm_path(&uuid)), new)?;
        }
        Ok(Ok(()))
    })?
}

/// Marks vcpus `0..online` of `domid` `online` and the rest up to `max` `offline` in
/// `cpu/N/availability`, in one transaction (libxl's `libxl__set_vcpuonline_xenstore`).
pub fn set_vcpus_online(
    xs: &XsConnection,
    domid: u32,
    online: u32,
    max: u32,
) -> Result<(), XsError> {
    let dom = dom_path(domid);
    xs.with_transaction(|t| {
        for i in 0..max {
            let v = if i < online { "online" } else { "offline" };
            t.write(&format!("{dom}/cpu/{i}/availability"), v)?;
        }
        Ok(())
    })
}

/// Removes one device of `domid` (`kind` `vif` or `vbd`, backend directory `bp`): its
/// frontend, backend and libxl copy, in one transaction, each with the parents it leaves
/// empty (as libxl's `libxl__device_destroy`); missing nodes are fine.
pub fn remove_device(
    xs: &XsConnection,
    domid: u32,
    kind: &str,
    devid: u32,
    bp: &str,
) -> Result<(), DomainXsError> {
    if !valid_guest_domid(domid) {
        return Err(DomainXsError::BadDomid(domid));
    }
    xs.with_transaction(|t| {
        t.rm_with_empty_parents(&format!("{}/device/{kind}/{devid}", dom_path(domid)))?;
        t.rm_with_empty_parents(bp)?;
        t.rm_with_empty_parents(&format!("{}/device/{kind}/{devid}", libxl_path(domid)))?;
        Ok(())
    })?;
    Ok(())
}

/// The device numbers of `domid`'s interfaces (its frontends), sorted.
pub fn vif_devids(xs: &XsConnection, domid: u32) -> Result<Vec<u32>, XsError> {
    device_ids(xs, domid, "vif")
}

/// From dom0's copy, `/libxl/<domid>/device/<kind>`, as libxl's `libxl__device_list`: the
/// frontend directories are the guest's to write, and a guest that removed one would hide
/// its device from `block-detach`/`network-detach` and give its number to the next attach.
fn device_ids(xs: &XsConnection, domid: u32, kind: &str) -> Result<Vec<u32>, XsError> {
    let dir = format!("{}/device/{kind}", libxl_path(domid));
    let mut ids: Vec<u32> = match xs.directory(&dir) {
        Ok(c) => c.iter().filter_map(|c| c.parse().ok()).collect(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    ids.sort_unstable();
    Ok(ids)
}

/// Remove everything [`write_new_domain`] wrote for `domid`: `/local/domain/<domid>`, its
/// `/vm/<uuid>` (read from the domain's `vm` node, or `uuid` when that is gone), `/libxl/<domid>`
/// and the backend directories, in one transaction; missing nodes are fine. With
/// `release`, xenstored is first told to forget the domain (`XS_RELEASE`; ENOENT ignored).
pub fn remove_domain(
    xs: &XsConnection,
    domid: u32,
    uuid: Option<&Uuid>,
    backend_domid: u32,
    release: bool,
) -> Result<(), DomainXsError> {
    if !valid_guest_domid(domid) {
        return Err(DomainXsError::BadDomid(domid));
    }
    let dom = dom_path(domid);
    // The reverse of `write_new_domain`: the introduction is undone before the entries go
    // (and they go even if the release fails; its error is reported after).
    let released = match release.then(|| xs.release(domid)) {
        Some(Err(e)) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    };
    xs.with_transaction(|t| {
        // The vm node is dom0-owned and read-only for the guest; still accept only a path of
        // the form libxl writes, so a corrupted value cannot make us remove something else.
        let from_store = t
            .read_opt(&format!("{dom}/vm"))?
            .and_then(|v| uuid_of_vm_path(&v));
        let mut vms: Vec<Uuid> = from_store.into_iter().collect();
        if let Some(u) = uuid {
            if !vms.contains(u) {
                vms.push(*u);
            }
        }
        // In one pipeline ([`apply_all`]), in this order.
        let mut rms = vec![Op::Rm(dom.clone())];
        rms.extend(vms.iter().map(|u| Op::Rm(vm_path(u))));
        rms.extend([
            Op::Rm(libxl_path(domid)),
            Op::Rm(console_backend_dir(backend_domid, domid)),
            Op::Rm(qdisk_backend_dir(backend_domid, domid)),
            Op::Rm(vbd_backend_dir(backend_domid, domid)),
            Op::Rm(vif_backend_dir(backend_domid, domid)),
            Op::Rm(vkbd_backend_dir(backend_domid, domid)),
            Op::Rm(device_model_dir(domid)),
        ]);
        apply_all(t, &rms)?;
        // The backend parents are created implicitly by the first domain's devices; drop them
        // again when no other domain uses them, so nothing of ours outlives the domain.
        // (`/local/domain/0/device-model` stays, as with libxl: other toolstacks' domains
        // use it too.)
        let backend = format!("/local/domain/{backend_domid}/backend");
        for dir in [
            format!("{backend}/console"),
            format!("{backend}/qdisk"),
            format!("{backend}/vbd"),
            format!("{backend}/vif"),
            format!("{backend}/vkbd"),
            backend,
        ] {
            match t.directory(&dir) {
                Ok(children) if children.is_empty() => t.rm_if_present(&dir)?,
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })?;
    released?;
    Ok(())
}

/// A domain as `pvbuild list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainEntry {
    /// The domain id.
    pub domid: u32,
    /// Its name, if it has one.
    pub name: Option<String>,
}

/// The domains under `/local/domain`, by domid, with their names.
pub fn list_domains(xs: &XsConnection) -> Result<Vec<DomainEntry>, XsError> {
    let mut ids: Vec<u32> = xs
        .directory("/local/domain")?
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    // Every name in one pipeline: a few round trips, not one per domain.
    let paths: Vec<String> = ids
        .iter()
        .map(|d| format!("/local/domain/{d}/name"))
        .collect();
    let names = read_many(xs, 0, &paths)?;
    Ok(ids
        .into_iter()
        .zip(names)
        .map(|(domid, name)| DomainEntry { domid, name })
        .collect())
}

/// The domid of the domain named `name`, if any (for `pvbuild destroy NAME`).
pub fn domid_by_name(xs: &XsConnection, name: &str) -> Result<Option<u32>, XsError> {
    Ok(list_domains(xs)?
        .into_iter()
        .find(|e| e.name.as_deref() == Some(name))
        .map(|e| e.domid))
}

#[cfg(test)]
mod path_cleanup_tests {
    use crate::xenstore::fake::FakeXenstore;

    #[test]
    fn removing_a_domains_last_device_takes_its_empty_parents_as_libxl_does() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        for p in [
            "/local/domain/7/device/vbd/51712/state",
            "/local/domain/7/name",
            "/local/domain/0/backend/qdisk/7/51712/state",
            "/local/domain/0/backend/vbd/8/51712/state",
            "/libxl/7/device/vbd/51712/params",
            "/libxl/7/type",
        ] {
            xs.write(p, "x").unwrap();
        }
        crate::xenstore::remove_device(
            &xs,
            7,
            "vbd",
            51712,
            "/local/domain/0/backend/qdisk/7/51712",
        )
        .unwrap();
        let left: Vec<String> = store.dump().into_keys().collect();
        for gone in [
            "/local/domain/7/device",
            "/local/domain/0/backend/qdisk",
            "/libxl/7/device",
        ] {
            assert!(
                !left.iter().any(|p| p.starts_with(gone)),
                "{gone} left: {left:?}"
            );
        }
        for kept in [
            "/local/domain/7/name",
            "/local/domain/0/backend/vbd/8/51712/state",
            "/libxl/7/type",
        ] {
            assert!(left.iter().any(|p| p == kept), "{kept} went: {left:?}");
        }
    }
}

#[cfg(test)]
mod inherited_perms_tests {
    use super::{requests, Op};
    use crate::xenstore::{Access, Perm};

    fn set_perms_paths(ops: &[Op]) -> Vec<String> {
        requests(ops)
            .unwrap()
            .iter()
            .filter(|(r, _)| r.op.name() == "XS_SET_PERMS")
            .map(|(r, _)| r.arg.clone())
            .collect()
    }

    #[test]
    fn a_set_perms_is_left_out_only_where_the_node_inherits_the_same() {
        let p = vec![Perm::new(0, Access::None), Perm::new(5, Access::Read)];
        let q = vec![Perm::new(5, Access::None)];
        let ops = vec![
            // Present before: its permissions are unknown, so they are set.
            Op::Mknod("/old".into(), p.clone()),
            Op::Rm("/a".into()),
            Op::Mknod("/a".into(), p.clone()),
            // New under /a (P): inherits P.
            Op::Mknod("/a/same".into(), p.clone()),
            // New under /a, other permissions: set.
            Op::Mknod("/a/other".into(), q.clone()),
            // New under /a/other (Q), its parent made on the way: inherits Q.
            Op::WritePerms("/a/other/x/y".into(), "v".into(), q.clone()),
            Op::MkdirPerms("/a/other/x/z".into(), p.clone()),
            // Removed again, then made again under a parent whose permissions are unknown.
            Op::Rm("/a".into()),
            Op::Mknod("/a/again".into(), p.clone()),
            // Set twice to the same: the second is left out.
            Op::Mknod("/a/again".into(), p.clone()),
        ];
        assert_eq!(
            set_perms_paths(&ops),
            ["/old", "/a", "/a/other", "/a/other/x/z", "/a/again"]
        );
        // Every other request is still made, in order.
        assert_eq!(requests(&ops).unwrap().len(), 10 + 5);
    }
}

#[cfg(test)]
mod vif_type_tests {
    use super::{vif_ops, Op, Vif};

    fn backend_type(v: &Vif) -> Vec<String> {
        vif_ops(3, 0, v)
            .into_iter()
            .filter_map(|op| match op {
                Op::Write(p, val) | Op::WritePerms(p, val, _)
                    if p == "/local/domain/0/backend/vif/3/0/type" =>
                {
                    Some(val)
                }
                _ => None,
            })
            .collect()
    }

    /// libxl writes `libxl_nic_type_to_string(nictype)`: `vif_ioemu` for an HVM guest's
    /// interface with an emulated NIC, `vif` otherwise (its model is not in xenstore).
    #[test]
    fn the_backend_type_is_libxls_nic_type() {
        let mut v = Vif::bridged_for_test(0, "00:16:3e:00:00:01");
        assert_eq!(backend_type(&v), ["vif"]);
        v.model = Some("e1000".into());
        assert_eq!(backend_type(&v), ["vif_ioemu"]);
        assert!(!vif_ops(3, 0, &v).iter().any(|op| matches!(op,
            Op::Write(p, _) | Op::WritePerms(p, _, _) if p.ends_with("/model"))));
    }
    /// libxl writes the frontend's `mtu` read-only for the guest (`ro_front`: the backend's,
    /// readable by the guest), as xl's trees show `(n0,r<domid>)`.
    #[test]
    fn the_frontends_mtu_is_read_only_for_the_guest() {
        use crate::xenstore::{Access, Perm};
        let v = Vif::bridged_for_test(0, "00:16:3e:00:00:01");
        let mtu: Vec<Op> = vif_ops(3, 0, &v)
            .into_iter()
            .filter(|op| {
                matches!(op, Op::Write(p, _) | Op::WritePerms(p, _, _)
                if p == "/local/domain/3/device/vif/0/mtu")
            })
            .collect();
        assert_eq!(
            mtu,
            [Op::WritePerms(
                "/local/domain/3/device/vif/0/mtu".into(),
                "1500".into(),
                vec![Perm::new(0, Access::None), Perm::new(3, Access::Read)]
            )]
        );
    }
}

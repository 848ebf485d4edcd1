//! The guest's network interfaces: `vif` entries become netback backends in dom0, and the
//! hotplug script (libxl's `vif-bridge` by default) plugs each backend interface into dom0's
//! network, as libxl runs it (`libxl__hotplug_nic` in `tools/libs/light/libxl_linux.c`).
//!
//! The order is libxl's: the entries are written with the domain's, netback takes the
//! backend (state InitWait), then `<script> online type_if=vif` runs with libxl's
//! environment and reports `hotplug-status = connected`; only then does the guest run. On
//! teardown `<script> offline type_if=vif` runs for every interface still in xenstore, and
//! removing the backend directory makes netback drop `vif<domid>.<devid>`.
//!
//! Checked before any domain exists: netback is loaded, the script is an executable file,
//! and (for `vif-bridge`) the bridge exists, so a typo fails in a line rather than in a
//! half-built domain.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::{Mac, VifSpec};
use crate::xenstore::{vif_backend_dir, Vif, XsConnection, NIC_MTU_DEFAULT};

/// Where libxl's hotplug scripts live (`libxl__xen_script_dir_path`); a relative `script=`
/// is taken from here.
pub const SCRIPT_DIR: &str = "/etc/xen/scripts";
/// libxl's default script.
pub const DEFAULT_SCRIPT: &str = "vif-bridge";
/// libxl's default bridge.
pub const DEFAULT_BRIDGE: &str = "xenbr0";
/// Where the kernel's netback registers once loaded (`xen-netback`).
pub const NETBACK_SYSFS: &str = "/sys/bus/xen-backend/drivers/vif";
/// How long netback may take to take an interface (libxl's `LIBXL_INIT_TIMEOUT` is 10 s; an
/// emulated dom0 is slower).
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a hotplug script may run (libxl's `LIBXL_HOTPLUG_TIMEOUT`), unless
/// [`HOTPLUG_TIMEOUT_ENV`] says otherwise.
pub const HOTPLUG_TIMEOUT: Duration = Duration::from_secs(40);
/// Seconds a hotplug script may run, instead of [`HOTPLUG_TIMEOUT`] (an emulated dom0 on a
/// loaded host can need more; libxl has no such knob).
pub const HOTPLUG_TIMEOUT_ENV: &str = "PVBUILD_HOTPLUG_TIMEOUT";

/// The hotplug scripts' limit: [`HOTPLUG_TIMEOUT_ENV`] when it holds a positive number of
/// seconds, else [`HOTPLUG_TIMEOUT`].
pub fn hotplug_timeout() -> Duration {
    std::env::var(HOTPLUG_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0 && s <= 3600)
        .map_or(HOTPLUG_TIMEOUT, Duration::from_secs)
}
/// Most bytes of a script's output kept for an error message.
const OUTPUT_MAX: usize = 4096;

/// An interface that cannot be attached, or a hotplug step that failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VifError {
    /// Two entries with one device number.
    #[error("vif {index}: devid {devid} already used by vif {first}")]
    DuplicateDevid {
        /// The second entry.
        index: usize,
        /// The device number.
        devid: u32,
        /// The entry that has it first.
        first: usize,
    },
    /// Two entries with one MAC address.
    #[error("vif {index}: mac {mac} already used by vif {first}")]
    DuplicateMac {
        /// The second entry.
        index: usize,
        /// The address.
        mac: String,
        /// The entry that has it first.
        first: usize,
    },
    /// Something pvbuild does not do (yet): named.
    #[error("vif {index}: {what} is not supported")]
    Unsupported {
        /// The entry.
        index: usize,
        /// What.
        what: String,
    },
    /// dom0 has no tap device for QEMU's emulated NICs.
    #[error("an emulated NIC needs {0} in dom0 (modprobe tun), or type=vif")]
    NoTun(String),
    /// dom0's kernel has no netback.
    #[error("vif {0}: dom0 has no netback (modprobe xen-netback)")]
    NoNetback(usize),
    /// The hotplug script cannot be run.
    #[error("vif {index}: script {path}: {msg}")]
    Script {
        /// The entry.
        index: usize,
        /// The script's absolute path.
        path: String,
        /// Why.
        msg: String,
    },
    /// `vif-bridge` with a bridge dom0 does not have.
    #[error("vif {index}: no bridge {bridge:?} in dom0")]
    NoBridge {
        /// The entry.
        index: usize,
        /// The bridge.
        bridge: String,
    },
    /// Netback did not take the backend.
    #[error("{vif}: {msg}")]
    Backend {
        /// The backend interface (`vif<domid>.<devid>`).
        vif: String,
        /// What went wrong.
        msg: String,
    },
    /// The domain has no interface of that number (or MAC).
    #[error("domain {domid} has no network interface {what}")]
    NoDevice {
        /// The domain.
        domid: u32,
        /// The device number or MAC asked for.
        what: String,
    },
    /// Reading or writing xenstore failed.
    #[error("xenstore: {0}")]
    Xenstore(String),
    /// The hotplug script failed or timed out.
    #[error("{vif}: hotplug script {action}: {msg}")]
    Hotplug {
        /// The backend interface (`vif<domid>.<devid>`).
        vif: String,
        /// `online` or `offline`.
        action: &'static str,
        /// What went wrong.
        msg: String,
    },
}

/// `libxl__abs_path(script, SCRIPT_DIR)`.
pub fn script_path(script: Option<&str>) -> String {
    match script.unwrap_or(DEFAULT_SCRIPT) {
        s if s.starts_with('/') => s.to_owned(),
        s => format!("{SCRIPT_DIR}/{s}"),
    }
}

/// `libxl__device_nic_devname` for a PV interface: the backend's default interface name.
pub fn devname(domid: u32, devid: u32) -> String {
    format!("vif{domid}.{devid}")
}

/// `libxl__device_nic_devname` for an emulated NIC (`LIBXL_NIC_TYPE_VIF_IOEMU`): the tap
/// QEMU makes, `vif<domid>.<devid>-emu` (`TAP_DEVICE_SUFFIX`), whatever `vifname=` says
/// (the script's `add` renames it to `<vifname>-emu`).
pub fn tap_name(domid: u32, devid: u32) -> String {
    format!("{}-emu", devname(domid, devid))
}

/// Longest `vifname=` of an interface with an emulated NIC: the script renames its tap to
/// `<vifname>-emu`, which Linux must take.
pub const IOEMU_VIFNAME_MAX: usize = crate::config::IFNAME_MAX - "-emu".len();

/// An HVM guest's interfaces as libxl settles them (`libxl__device_nic_setdefault` for
/// `LIBXL_DOMAIN_TYPE_HVM` at create): each is `vif_ioemu` (an emulated NIC of `model=`,
/// default `rtl8139`, beside the PV vif) unless its entry says `type=vif`. `vifs` are
/// [`plan_vifs`]'s for `specs`, in order. Refuses a `vifname=` too long for its tap's name.
pub fn emulate(vifs: &mut [Vif], specs: &[VifSpec]) -> Result<(), VifError> {
    for (index, (v, s)) in vifs.iter_mut().zip(specs).enumerate() {
        if s.ioemu != Some(false) {
            if let Some(n) = v.vifname.as_deref().filter(|n| n.len() > IOEMU_VIFNAME_MAX) {
                return Err(VifError::Unsupported {
                    index,
                    what: format!(
                        "vifname {n:?} with an emulated NIC (its tap {n}-emu would be longer \
                         than 15 characters; at most {IOEMU_VIFNAME_MAX}, or type=vif)"
                    ),
                });
            }
            v.model = Some(s.model.clone().unwrap_or_else(|| "rtl8139".into()));
        }
    }
    Ok(())
}

/// The interfaces of `specs` with libxl's defaults applied: device numbers by position
/// unless `devid=` is given, a random Xen-OUI address (from `random`) unless `mac=` is,
/// bridge `xenbr0`, script `vif-bridge` under [`SCRIPT_DIR`], MTU 1500. Refuses duplicate
/// device numbers and addresses, and a backend other than dom0. Pure: the host
/// checks are [`check_host`].
pub fn plan_vifs(
    specs: &[VifSpec],
    mut random: impl FnMut() -> [u8; 3],
) -> Result<Vec<Vif>, VifError> {
    let mut out: Vec<Vif> = Vec::with_capacity(specs.len());
    for (index, s) in specs.iter().enumerate() {
        let unsupported = |what: &str| VifError::Unsupported {
            index,
            what: what.to_owned(),
        };
        if let Some(b) = s.backend.as_deref() {
            if b != "0" && b != "Domain-0" {
                return Err(unsupported(&format!("backend={b} (a driver domain)")));
            }
        }
        let devid = s
            .devid
            .unwrap_or_else(|| u32::try_from(index).unwrap_or(u32::MAX));
        if let Some(first) = out.iter().position(|v| v.devid == devid) {
            return Err(VifError::DuplicateDevid {
                index,
                devid,
                first,
            });
        }
        let mac = s
            .mac
            .unwrap_or_else(|| Mac::random_xen(random()))
            .to_string();
        if let Some(first) = out.iter().position(|v| v.mac == mac) {
            return Err(VifError::DuplicateMac { index, mac, first });
        }
        out.push(Vif {
            devid,
            mac,
            bridge: s.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.into()),
            script: script_path(s.script.as_deref()),
            ip: s.ip.clone(),
            gatewaydev: s.gatewaydev.clone(),
            vifname: s.vifname.clone(),
            rate: s.rate.map(|(bytes, usecs)| format!("{bytes},{usecs}")),
            mtu: s.mtu.unwrap_or(NIC_MTU_DEFAULT),
            trusted: !s.untrusted,
            model: None,
        });
    }
    Ok(out)
}

/// Three random bytes for a MAC address (from a version 4 UUID, as libxl takes them from a
/// fresh UUID).
pub fn random_bytes() -> [u8; 3] {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    [b[0], b[1], b[2]]
}

/// Whether `vif-bridge` would find `bridge`: it exists, or (its compatibility rule) it is
/// `xenbrN`, missing, and `ethN` is a bridge.
pub fn bridge_exists(sys_class_net: &Path, bridge: &str) -> bool {
    if sys_class_net.join(bridge).exists() {
        return true;
    }
    match bridge.strip_prefix("xenbr") {
        Some(n) => sys_class_net.join(format!("eth{n}/bridge")).exists(),
        None => false,
    }
}

/// The checks made before any domain exists: netback is loaded, each script is an
/// executable regular file, and each `vif-bridge` interface's bridge exists.
pub fn check_host(vifs: &[Vif], netback: &Path, sys_class_net: &Path) -> Result<(), VifError> {
    if !vifs.is_empty() && !netback.exists() {
        return Err(VifError::NoNetback(0));
    }
    for (index, v) in vifs.iter().enumerate() {
        let script_err = |msg: String| VifError::Script {
            index,
            path: v.script.clone(),
            msg,
        };
        let meta = std::fs::metadata(&v.script).map_err(|e| script_err(e.to_string()))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(script_err("not an executable file".into()));
        }
        let is_bridge_script = Path::new(&v.script)
            .file_name()
            .is_some_and(|n| n == DEFAULT_SCRIPT);
        if is_bridge_script && !bridge_exists(sys_class_net, &v.bridge) {
            return Err(VifError::NoBridge {
                index,
                bridge: v.bridge.clone(),
            });
        }
    }
    Ok(())
}

/// Where QEMU opens the tap of an emulated NIC (module `tun`).
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// An HVM guest's emulated NICs need `tun` (QEMU's `-netdev type=tap` exits without it):
/// checked before any domain exists.
pub fn check_tun(tun: &Path) -> Result<(), VifError> {
    if tun.exists() {
        Ok(())
    } else {
        Err(VifError::NoTun(tun.display().to_string()))
    }
}

/// What a hotplug script is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotplugAction {
    /// Plug the new backend interface in (`online`).
    Online,
    /// Unplug it (`offline`).
    Offline,
}

impl HotplugAction {
    /// The script's argument.
    pub fn name(self) -> &'static str {
        match self {
            HotplugAction::Online => "online",
            HotplugAction::Offline => "offline",
        }
    }
}

/// One interface as its hotplug script sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hotplug {
    /// The script's absolute path.
    pub script: String,
    /// The guest.
    pub domid: u32,
    /// The interface's device number.
    pub devid: u32,
    /// `gatewaydev`, if set (the script's `netdev`).
    pub gatewaydev: Option<String>,
    /// `vifname`, if set: the script renames the interface to it.
    pub vifname: Option<String>,
    /// A `vif_ioemu` interface's tap ([`tap_name`]): the script's `INTERFACE` in both of its
    /// runs, as libxl's `get_hotplug_env` sets it.
    pub tap: Option<String>,
    /// This run is the tap's (libxl's second `num_exec` of a `vif_ioemu` interface:
    /// `add`/`remove type_if=tap`), not the vif's.
    pub for_tap: bool,
}

impl Hotplug {
    /// The script's arguments: `online|offline type_if=vif`, or for the tap's run
    /// `add|remove type_if=tap` (`libxl__hotplug_nic`).
    pub fn args(&self, action: HotplugAction) -> Vec<String> {
        if self.for_tap {
            vec![self.action_word(action).into(), "type_if=tap".into()]
        } else {
            vec![action.name().into(), "type_if=vif".into()]
        }
    }

    /// The action's word for this run: `online`/`offline`, or `add`/`remove` for a tap
    /// (`libxl__device_action_to_string`).
    pub fn action_word(&self, action: HotplugAction) -> &'static str {
        match (self.for_tap, action) {
            (false, a) => a.name(),
            (true, HotplugAction::Online) => "add",
            (true, HotplugAction::Offline) => "remove",
        }
    }

    /// The tap's run of a `vif_ioemu` interface (after the vif's, as libxl runs them);
    /// `None` for a PV interface.
    pub fn tap_run(&self) -> Option<Hotplug> {
        self.tap.as_ref().map(|_| Hotplug {
            for_tap: true,
            ..self.clone()
        })
    }

    /// The interface this run plugs: the tap, or the backend's `vif<domid>.<devid>` (as
    /// QEMU and netback name them, before the script renames them to `vifname=`).
    pub fn ifname(&self) -> String {
        match (&self.tap, self.for_tap) {
            (Some(t), true) => t.clone(),
            _ => devname(self.domid, self.devid),
        }
    }

    /// The variables libxl's `get_hotplug_env` sets for an interface (on top of the
    /// toolstack's own environment): `INTERFACE` too for a `vif_ioemu` one.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("script", self.script.clone()),
            ("XENBUS_TYPE", "vif".into()),
            (
                "XENBUS_PATH",
                format!("backend/vif/{}/{}", self.domid, self.devid),
            ),
            ("XENBUS_BASE_PATH", "backend".into()),
            ("netdev", self.gatewaydev.clone().unwrap_or_default()),
        ]
        .into_iter()
        .chain(self.tap.clone().map(|t| ("INTERFACE", t)))
        .chain([("vif", devname(self.domid, self.devid))])
        .collect()
    }

    /// Runs the script for `action` in a process group of its own, its output collected
    /// (bounded); past `timeout` the whole group is killed. On failure the error carries
    /// the script's `hotplug-error` (read through `xs`, when given) or its last output line.
    pub fn run(
        &self,
        action: HotplugAction,
        timeout: Duration,
        xs: Option<&XsConnection>,
    ) -> Result<(), VifError> {
        let result = self.run_script(action, timeout, xs);
        if let (Some(xs), Some(name)) = (xs, &self.vifname) {
            remove_script_stray(xs, name);
        }
        result
    }

    fn run_script(
        &self,
        action: HotplugAction,
        timeout: Duration,
        xs: Option<&XsConnection>,
    ) -> Result<(), VifError> {
        let fail = |msg: String| VifError::Hotplug {
            vif: self.ifname(),
            action: self.action_word(action),
            msg,
        };
        // libxl logs the same at debug level ("calling hotplug script: ...").
        crate::support::log::debug(format_args!(
            "calling hotplug script: {} {}",
            self.script,
            self.args(action).join(" ")
        ));
        let mut cmd = Command::new(&self.script);
        cmd.args(self.args(action))
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        crate::build::journal::record_child(&mut cmd, "hotplug");
        let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
        if action == HotplugAction::Online {
            crate::support::testhook::stop_at("vif-hotplug-spawned");
        }
        // Both pipes drained on threads so that a chatty script cannot block on a full pipe.
        // What they kept arrives over a channel: a background child of the script that holds
        // a pipe open cannot make the wait for the output hang.
        let (tx, rx) = std::sync::mpsc::channel::<(bool, Vec<u8>)>();
        let drain = |r: Option<Box<dyn Read + Send>>,
                     is_err: bool,
                     tx: std::sync::mpsc::Sender<(bool, Vec<u8>)>| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                if let Some(mut r) = r {
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = r.read(&mut buf) {
                        let room = OUTPUT_MAX.saturating_sub(kept.len());
                        kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
                    }
                }
                let _ = tx.send((is_err, kept));
            });
        };
        drain(
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            false,
            tx.clone(),
        );
        drain(
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
            true,
            tx,
        );
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() >= deadline => break None,
                // Ctrl-C while plugging in: the script's group goes (it does not get the
                // terminal's signal: it is in a group of its own), and the caller undoes what
                // was plugged. Unplugging is that undo: it runs to its end (or its timeout).
                Ok(None)
                    if action == HotplugAction::Online
                        && crate::support::interrupt::requested() =>
                {
                    crate::support::procgroup::stop_group(&mut child, Duration::from_secs(1));
                    return Err(fail("interrupted".into()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(fail(e.to_string())),
            }
        };
        let Some(status) = status else {
            // Past libxl's limit the whole group goes at once (libxl kills it too).
            crate::support::procgroup::stop_group(&mut child, Duration::ZERO);
            return Err(fail(format!("still running after {} s", timeout.as_secs())));
        };
        if status.success() {
            return Ok(());
        }
        // The last line the script printed: on stderr if any, else on stdout.
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok((true, part)) => stderr = part,
                Ok((false, part)) => stdout = part,
                Err(_) => break,
            }
        }
        let last_line = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        };
        let hotplug_error = xs.and_then(|xs| {
            let be = format!(
                "{}/{}/hotplug-error",
                vif_backend_dir(0, self.domid),
                self.devid
            );
            xs.read_opt(&be).ok().flatten()
        });
        let why = hotplug_error
            .or_else(|| last_line(&stderr))
            .or_else(|| last_line(&stdout))
            .unwrap_or_default();
        Err(fail(format!("{status}: {}", why.trim())))
    }
}

/// Where Xen 4.17's `vif-common.sh` writes a frontend `mtu` for an interface renamed to
/// `vifname`: its `set_mtu` takes the domain and device numbers apart from the interface's
/// name (`vif<domid>.<devid>`), so a renamed one yields a path such as
/// `/local/domain/web0/device/vif/web0/mtu`, under no domain, that nothing removes (libxl
/// leaves it behind). Returns that path's domain directory and the whole entry's path, as
/// the script's shell expansions compute them; `None` when the "domain" part is empty or a
/// number (then the path names a real domain's frontend, which is not ours to remove).
pub fn script_stray(vifname: &str) -> Option<(String, String)> {
    let dev = vifname.strip_prefix("vif").unwrap_or(vifname);
    // ${dev_%.*}: up to the last '.'; ${dev_#*.}: after the first '.'.
    let domid = dev.rsplit_once('.').map_or(dev, |(d, _)| d);
    let devid = dev.split_once('.').map_or(dev, |(_, d)| d);
    if domid.is_empty() || domid.bytes().all(|b| b.is_ascii_digit()) || domid.contains('/') {
        return None;
    }
    let top = format!("/local/domain/{domid}");
    let entry = format!("{top}/device/vif/{devid}/mtu");
    Some((top, entry))
}

/// Removes what [`script_stray`] says the script wrote for `vifname`, if that directory
/// holds nothing else (anything more is someone else's and stays).
pub fn remove_script_stray(xs: &XsConnection, vifname: &str) {
    let Some((top, entry)) = script_stray(vifname) else {
        return;
    };
    let mut dir = entry.as_str();
    // Every level from the entry's parent up to `top` must hold exactly the one child.
    while let Some((parent, child)) = dir.rsplit_once('/') {
        if parent.len() < top.len() {
            break;
        }
        match xs.directory(parent) {
            Ok(children) if children.len() == 1 && children.first().is_some_and(|c| c == child) => {
            }
            _ => return,
        }
        dir = parent;
    }
    let _ = xs.rm(&top);
}

/// Plugs one interface in, as libxl does: waits (up to [`BACKEND_TIMEOUT`]) for netback to
/// take the backend (InitWait), then runs the script's `online` (up to [`hotplug_timeout`]).
/// `offline` just runs the script.
pub fn run_hotplug(xs: &XsConnection, h: &Hotplug, action: HotplugAction) -> Result<(), VifError> {
    // (A tap's run follows its vif's, which waited.)
    if action == HotplugAction::Online && !h.for_tap {
        let backend = format!("{}/{}", vif_backend_dir(0, h.domid), h.devid);
        crate::devices::disk::wait_backends(xs, &[backend], BACKEND_TIMEOUT).map_err(|e| {
            VifError::Backend {
                vif: devname(h.domid, h.devid),
                msg: e.to_string(),
            }
        })?;
    }
    h.run(action, hotplug_timeout(), Some(xs))
}

/// The hotplug view of an interface of guest `domid`. An emulated NIC's tap gets its own run
/// only when it is dom0's (`taps_in_dom0`): with the device model in a stub domain the tap
/// is the stub's, and libxl runs no script for it (`libxl__get_hotplug_script_info`).
pub fn hotplug_for(v: &Vif, domid: u32, taps_in_dom0: bool) -> Hotplug {
    Hotplug {
        script: v.script.clone(),
        domid,
        devid: v.devid,
        gatewaydev: v.gatewaydev.clone(),
        vifname: v.vifname.clone(),
        tap: v
            .model
            .as_ref()
            .filter(|_| taps_in_dom0)
            .map(|_| tap_name(domid, v.devid)),
        for_tap: false,
    }
}

/// The interfaces of `domid` that xenstore still lists under dom0's backend directory, as
/// libxl finds them at destroy time: device number, script, gatewaydev.
pub fn from_xenstore(xs: &XsConnection, domid: u32) -> Result<Vec<Hotplug>, String> {
    let dir = vif_backend_dir(0, domid);
    let children = match xs.directory(&dir) {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(format!("{dir}: {e}")),
    };
    let mut out = Vec::new();
    for c in children {
        let Ok(devid) = c.parse::<u32>() else {
            continue;
        };
        // An entry that cannot be read is skipped: the others are still unplugged. A
        // `vif_ioemu` interface's tap is unplugged after its vif, as libxl runs them.
        if let Some(h) = hotplug_in_xenstore(xs, domid, devid).ok().flatten() {
            let tap = h.tap_run();
            out.push(h);
            out.extend(tap);
        }
    }
    Ok(out)
}

/// Interface `devid` of `domid` as its backend entries record it, which is what libxl reads
/// at teardown: `None` without a backend `script`, or with one that is not an absolute path
/// (the form pvbuild and libxl write).
pub fn hotplug_in_xenstore(
    xs: &XsConnection,
    domid: u32,
    devid: u32,
) -> Result<Option<Hotplug>, crate::xenstore::XsError> {
    let bp = format!("{}/{devid}", vif_backend_dir(0, domid));
    // One round trip: the backend's entries and the guest's stub link.
    let v = xs.read_many(&[
        format!("{bp}/script"),
        format!("{bp}/gatewaydev"),
        format!("{bp}/vifname"),
        format!("{bp}/type"),
        format!(
            "{}/image/device-model-domid",
            crate::xenstore::dom_path(domid)
        ),
    ])?;
    let mut v = v.into_iter();
    let mut next = || v.next().flatten();
    let (script, gatewaydev, vifname, kind, stub) = (next(), next(), next(), next(), next());
    let Some(script) = script.filter(|s| s.starts_with('/')) else {
        return Ok(None);
    };
    let gatewaydev = gatewaydev.filter(|g| !g.is_empty());
    let vifname = vifname.filter(|n| !n.is_empty());
    // An emulated NIC's tap is dom0's only when the guest's device model is: with a stub
    // domain (`image/device-model-domid`) it was the stub's, and libxl runs no script for it
    // (`libxl__get_hotplug_script_info`, `libxl_get_stubdom_id`).
    let ioemu = kind.as_deref() == Some("vif_ioemu")
        && stub.is_none_or(|s| s.trim().parse::<u32>().unwrap_or(0) == 0);
    Ok(Some(Hotplug {
        script,
        domid,
        devid,
        gatewaydev,
        tap: ioemu.then(|| tap_name(domid, devid)),
        vifname,
        for_tap: false,
    }))
}

/// The MAC of interface `devid` of `domid`, as its backend records it.
pub fn backend_mac(
    xs: &XsConnection,
    domid: u32,
    devid: u32,
) -> Result<Option<Mac>, crate::xenstore::XsError> {
    Ok(xs
        .read_opt(&format!("{}/{devid}/mac", vif_backend_dir(0, domid)))?
        .and_then(|m| Mac::parse(&m)))
}

/// Runs `offline` for every interface of `domid` in xenstore (before its entries go);
/// failures are returned as messages, not stopping the others.
pub fn unplug_all(xs: &XsConnection, domid: u32) -> Vec<String> {
    match from_xenstore(xs, domid) {
        Ok(list) => list
            .iter()
            .filter_map(|h| {
                h.run(HotplugAction::Offline, hotplug_timeout(), Some(xs))
                    .err()
                    .map(|e| e.to_string())
            })
            .collect(),
        Err(e) => vec![e],
    }
}

/// How long a detached interface's backend may take to close (libxl's
/// `LIBXL_DESTROY_TIMEOUT` is 10 s; an emulated dom0 is slower). Past it the interface is
/// removed anyway, as libxl forces it.
pub const DETACH_TIMEOUT: Duration = Duration::from_secs(20);

/// Plugs or unplugs one interface (the seam the fault tests replace; [`run_hotplug`]).
pub type Runner<'a> = &'a dyn Fn(&XsConnection, &Hotplug, HotplugAction) -> Result<(), VifError>;

/// What [`attach`] needs from the host besides xenstore: where netback and the interfaces
/// show in sysfs, random bytes for a MAC, and the hotplug runner.
pub struct AttachHost<'a> {
    /// [`NETBACK_SYSFS`].
    pub netback: &'a Path,
    /// [`sys_class_net`].
    pub sys_class_net: &'a Path,
    /// Three random bytes.
    pub random: &'a mut dyn FnMut() -> [u8; 3],
    /// Plugs it in.
    pub run: Runner<'a>,
}

impl std::fmt::Debug for AttachHost<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachHost")
            .field("netback", &self.netback)
            .field("sys_class_net", &self.sys_class_net)
            .finish_non_exhaustive()
    }
}

/// `xl network-attach`: adds the interface `spec` describes to running domain `domid`. Its
/// device number is `devid=` or one past the domain's highest (libxl's next id); its MAC
/// must not be one the domain has. Checked as at `create` ([`check_host`]), written in one
/// transaction, plugged in ([`run_hotplug`]: netback's InitWait, the script's `online`); a
/// failure unplugs it again and removes its entries. Returns the interface.
pub fn attach(
    xs: &XsConnection,
    domid: u32,
    spec: &VifSpec,
    host: AttachHost<'_>,
) -> Result<Vif, VifError> {
    let xs_err = |e: &dyn std::fmt::Display| VifError::Xenstore(e.to_string());
    // libxl makes a hot-plugged interface PV (`nictype` vif): QEMU, already running, has
    // no NIC for it.
    if spec.ioemu == Some(true) {
        return Err(VifError::Unsupported {
            index: 0,
            what: "type=ioemu on a running guest (hot-plugged interfaces are PV)".into(),
        });
    }
    let existing = crate::xenstore::vif_devids(xs, domid).map_err(|e| xs_err(&e))?;
    let mut spec = spec.clone();
    if spec.devid.is_none() {
        let next = existing.last().map_or(Some(0), |d| d.checked_add(1));
        spec.devid = Some(next.ok_or_else(|| VifError::Xenstore("no device number left".into()))?);
    }
    let mut vifs = plan_vifs(std::slice::from_ref(&spec), &mut *host.random)?;
    let Some(v) = vifs.pop() else {
        return Err(VifError::Xenstore("nothing planned".into()));
    };
    for (first, devid) in existing.iter().enumerate() {
        if *devid == v.devid {
            return Err(VifError::DuplicateDevid {
                index: 0,
                devid: v.devid,
                first,
            });
        }
        let mac = backend_mac(xs, domid, *devid).map_err(|e| xs_err(&e))?;
        if mac.is_some_and(|m| m.to_string() == v.mac) {
            return Err(VifError::DuplicateMac {
                index: 0,
                mac: v.mac.clone(),
                first,
            });
        }
    }
    check_host(std::slice::from_ref(&v), host.netback, host.sys_class_net)?;
    crate::xenstore::add_vif(xs, domid, 0, &v).map_err(|e| xs_err(&e))?;
    // (A hot-plugged interface is PV: no emulated NIC, no tap.)
    let h = hotplug_for(&v, domid, true);
    if let Err(e) = (host.run)(xs, &h, HotplugAction::Online) {
        let _ = (host.run)(xs, &h, HotplugAction::Offline);
        let _ =
            crate::xenstore::remove_device(xs, domid, "vif", v.devid, &v.backend_path(0, domid));
        return Err(e);
    }
    Ok(v)
}

/// The interface of `domid` that `which` names: a device number, or a MAC.
pub fn find(xs: &XsConnection, domid: u32, which: &str) -> Result<u32, VifError> {
    let ids =
        crate::xenstore::vif_devids(xs, domid).map_err(|e| VifError::Xenstore(e.to_string()))?;
    let found = match (which.parse::<u32>(), Mac::parse(which)) {
        (Ok(d), _) => ids.contains(&d).then_some(d),
        (_, Some(m)) => ids
            .into_iter()
            .find(|&d| backend_mac(xs, domid, d).ok().flatten() == Some(m)),
        _ => None,
    };
    found.ok_or_else(|| VifError::NoDevice {
        domid,
        what: which.to_owned(),
    })
}

/// `xl network-detach`, as `libxl__initiate_device_generic_remove`: the backend is told to
/// go (`online` 0, `state` Closing) and the guest's netfront closes its side, which closes
/// the backend (Closed); past [`DETACH_TIMEOUT`] (a guest that does not answer) it goes on
/// anyway. Then the script's `offline`, and the entries are removed, which makes netback
/// drop the interface. Returns whether the backend closed in time.
pub fn detach(
    xs: &XsConnection,
    domid: u32,
    devid: u32,
    timeout: Duration,
    run: Runner<'_>,
) -> Result<bool, VifError> {
    let xs_err = |e: &dyn std::fmt::Display| VifError::Xenstore(e.to_string());
    let bp = format!("{}/{devid}", vif_backend_dir(0, domid));
    let state_path = format!("{bp}/state");
    if xs.read_opt(&state_path).map_err(|e| xs_err(&e))?.is_none() {
        return Err(VifError::NoDevice {
            domid,
            what: devid.to_string(),
        });
    }
    let closed = crate::xenstore::close_backend(xs, &bp, timeout).map_err(|e| xs_err(&e))?;
    let unplugged = match hotplug_in_xenstore(xs, domid, devid).map_err(|e| xs_err(&e))? {
        Some(h) => {
            let vif = run(xs, &h, HotplugAction::Offline);
            let tap = h
                .tap_run()
                .map_or(Ok(()), |t| run(xs, &t, HotplugAction::Offline));
            vif.and(tap)
        }
        None => Ok(()),
    };
    crate::xenstore::remove_device(xs, domid, "vif", devid, &bp).map_err(|e| xs_err(&e))?;
    unplugged.map(|()| closed)
}

/// One line per interface of `domid`, as `xl network-list` shows them: index, backend
/// domain, MAC, handle, backend state, the backend's path.
pub fn list(xs: &XsConnection, domid: u32) -> Result<String, VifError> {
    let xs_err = |e: &dyn std::fmt::Display| VifError::Xenstore(e.to_string());
    let mut out = format!(
        "{:<4} {:<3} {:<18} {:<7} {:<6} {}\n",
        "Idx", "BE", "Mac Addr.", "handle", "state", "BE-path"
    );
    for devid in crate::xenstore::vif_devids(xs, domid).map_err(|e| xs_err(&e))? {
        let bp = format!("{}/{devid}", vif_backend_dir(0, domid));
        let read = |k: &str| -> Result<String, VifError> {
            Ok(xs
                .read_opt(&format!("{bp}/{k}"))
                .map_err(|e| xs_err(&e))?
                .unwrap_or_else(|| "-".into()))
        };
        out.push_str(&format!(
            "{devid:<4} {:<3} {:<18} {:<7} {:<6} {bp}\n",
            0,
            read("mac")?,
            read("handle")?,
            read("state")?
        ));
    }
    Ok(out)
}

/// Default sysfs directory of network interfaces.
pub fn sys_class_net() -> PathBuf {
    PathBuf::from("/sys/class/net")
}

#[cfg(test)]
mod tests;

/// How long the undo of a failed create waits for netback to finish probing a new backend.
pub const PROBE_SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Before a failed create removes its entries: waits (up to `timeout`, for all together) until
/// netback has finished probing each of `devids`' new backends of `domid` (its `state` past
/// Initialising), when netback is loaded. Its probe writes the backend's feature keys with
/// plain writes: entries removed in the middle of it were seen written again, with an
/// `error/backend/vif/<domid>` node beside them (pvbuild-hvm-fail at `device-model`, 18:10 on
/// 2026-12-06). libxl avoids it by closing a backend and waiting for Closed; a backend that
/// netback is done with can be removed at once. Best effort: on a timeout the removal goes on.
pub fn settle_backends(
    xs: &crate::xenstore::XsConnection,
    backend_domid: u32,
    domid: u32,
    devids: &[u32],
    timeout: std::time::Duration,
) {
    if devids.is_empty() || !std::path::Path::new(NETBACK_SYSFS).is_dir() {
        return;
    }
    let probing: Vec<String> = devids
        .iter()
        .map(|d| format!("/local/domain/{backend_domid}/backend/vif/{domid}/{d}"))
        .filter(|b| {
            matches!(xs.read_opt(&format!("{b}/state")), Ok(Some(s)) if !crate::devices::disk::backend_taken(Some(&s)))
        })
        .collect();
    if !probing.is_empty() {
        let _ = crate::devices::disk::wait_backends(xs, &probing, timeout);
    }
}

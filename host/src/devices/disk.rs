//! The guest's disks: which `disk` entries pvbuild attaches and how, their device numbers,
//! and the checks made before any domain exists.
//!
//! A raw block device goes to the kernel's blkback (`backend/vbd`) when dom0 has it loaded,
//! as libxl picks `phy` first; pvbuild writes the `physical-device` that libxl's `block`
//! hotplug script would. Everything else (image files, the formats only QEMU reads, and
//! devices when blkback is absent) is a qdisk, served by the device model (QEMU's `xenpv`
//! machine, see [`crate::devmodel`]). libxl also gives raw *files* to blkback, through a loop
//! device its `block` hotplug script sets up; pvbuild runs no block script (it makes no loop
//! devices), so it serves files through QEMU and refuses `backendtype=phy` on a file, `tap`,
//! and `script=`. The harness's `pvbuild-phy` boots a guest from a loop device through
//! blkback.

use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};
use thiserror::Error;

use crate::config::{DiskFormat, DiskSpec};
use crate::xenstore::{Vbd, VbdBackend};

pub mod sharing;

/// Where the kernel's blkback registers once loaded (`xen-blkback`).
pub const BLKBACK_SYSFS: &str = "/sys/bus/xen-backend/drivers/vbd";

/// Whether dom0's kernel has blkback loaded.
pub fn blkback_available() -> bool {
    Path::new(BLKBACK_SYSFS).exists()
}

/// A `disk` entry that cannot be attached.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DiskError {
    /// No `vdev`: the guest needs a name for the disk.
    #[error("disk {0}: no vdev (the guest's name for it, e.g. xvda)")]
    NoVdev(usize),
    /// A `vdev` libxl would not accept.
    #[error("disk {index}: invalid vdev {vdev:?}")]
    BadVdev {
        /// The entry.
        index: usize,
        /// Its vdev.
        vdev: String,
    },
    /// Two entries with one device number.
    #[error("disk {index}: vdev {vdev:?} is device {devid}, already used by disk {first}")]
    DuplicateVdev {
        /// The second entry.
        index: usize,
        /// Its vdev.
        vdev: String,
        /// The device number.
        devid: u32,
        /// The entry that has it first.
        first: usize,
    },
    /// An empty drive or a CD-ROM, which a PV guest gets no backend for here.
    #[error("disk {0}: empty drives and CD-ROMs are not supported for PV guests")]
    Cdrom(usize),
    /// Something pvbuild does not do (yet): named.
    #[error("disk {index}: {what} is not supported")]
    Unsupported {
        /// The entry.
        index: usize,
        /// What it asked for.
        what: String,
    },
    /// `backendtype=phy` with no blkback in dom0's kernel.
    #[error("disk {0}: backendtype=phy needs the kernel's blkback (modprobe xen-blkback)")]
    NoBlkback(usize),
    /// A backend that did not get past Initialising in time.
    #[error("{backend} not ready within {secs} s (state {state})")]
    NotReady {
        /// The backend directory.
        backend: String,
        /// The limit.
        secs: u64,
        /// Its last state.
        state: String,
    },
    /// Reading a backend's state failed.
    #[error("reading {0}: {1}")]
    Xenstore(String, String),
    /// The device model started for an attach did not come up.
    #[error("device-model: {0}")]
    DeviceModel(String),
    /// A signal asked pvbuild to stop.
    #[error("interrupted")]
    Interrupted,
    /// `block-attach` of a device number the domain already has.
    #[error("domain {domid} already has disk {vdev} (device {devid})")]
    Taken {
        /// The domain.
        domid: u32,
        /// The vdev asked for.
        vdev: String,
        /// Its device number.
        devid: u32,
    },
    /// `block-detach` of a disk the domain does not have.
    #[error("domain {domid} has no disk {what}")]
    NoDevice {
        /// The domain.
        domid: u32,
        /// What was asked for.
        what: String,
    },
    /// A block device that dom0 or another guest has in a conflicting mode (the `block`
    /// script's sharing check: [`sharing`]).
    #[error("disk {index}: {path}: {msg}")]
    Shared {
        /// The entry.
        index: usize,
        /// The device.
        path: String,
        /// Who has it, and how.
        msg: String,
    },
    /// The target cannot be used.
    #[error("disk {index}: {path}: {msg}")]
    Target {
        /// The entry.
        index: usize,
        /// The target as given.
        path: String,
        /// Why.
        msg: String,
    },
}

/// Decodes the drive letters and partition of `rest` (after the `xvd`/`hd`/`sd` prefix) as
/// libxl's `device_virtdisk_matches`: letters in bijective base 26 (`a`=0, `z`=25, `aa`=26),
/// then an optional partition number without leading zeros.
fn letters_and_partition(rest: &str, max_index: u32, max_partition: u32) -> Option<(u32, u32)> {
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 {
        return None;
    }
    let mut index: i64 = -1;
    for c in rest.bytes().take(letters) {
        index = (index + 1) * 26 + i64::from(c - b'a');
        if index > i64::from(max_index) {
            return None;
        }
    }
    let index = u32::try_from(index).ok()?;
    let part = rest.get(letters..)?;
    if part.is_empty() {
        return Some((index, 0));
    }
    if part.starts_with('0') || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let p: u32 = part.parse().ok()?;
    (p <= max_partition).then_some((index, p))
}

/// A Xen virtual disk number for (disk, partition): the `xvd` major 202 for small ones, the
/// extended `1 << 28` form otherwise.
fn xvd_number(disk: u32, partition: u32) -> u32 {
    if disk <= 15 && partition <= 15 {
        (202 << 8) | (disk << 4) | partition
    } else {
        (1 << 28) | (disk << 8) | partition
    }
}

/// The device number of a `vdev`, as libxl's `libxl__device_disk_dev_number`: `xvdX[N]`,
/// `dNpM`, a plain number, `hdX[N]` (IDE majors 3 and 22) or `sdX[N]` (SCSI major 8).
pub fn devid(vdev: &str) -> Option<u32> {
    if let Some(rest) = vdev.strip_prefix('d') {
        if let Some((d, p)) = rest.split_once('p') {
            let num = |s: &str| {
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse::<u32>().ok())
                    .flatten()
            };
            if let (Some(d), Some(p)) = (num(d), num(p)) {
                if d < (1 << 20) && p < 256 {
                    return Some(xvd_number(d, p));
                }
            }
        }
    }
    if let Some(rest) = vdev.strip_prefix("xvd") {
        if let Some((d, p)) = letters_and_partition(rest, (1 << 20) - 1, 255) {
            return Some(xvd_number(d, p));
        }
    }
    if let Some(n) = parse_c_ulong(vdev) {
        return u32::try_from(n).ok().filter(|&n| n <= i32::MAX as u32);
    }
    if let Some(rest) = vdev.strip_prefix("hd") {
        if let Some((d, p)) = letters_and_partition(rest, 3, 63) {
            let major = if d < 2 { 3 } else { 22 };
            return Some((major << 8) | ((d & 1) << 6) | p);
        }
    }
    if let Some(rest) = vdev.strip_prefix("sd") {
        if let Some((d, p)) = letters_and_partition(rest, 15, 15) {
            return Some((8 << 8) | (d << 4) | p);
        }
    }
    None
}

/// `strtoul(s, &end, 0)` with the whole string consumed (decimal, `0x` hex, `0` octal).
fn parse_c_ulong(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(o) = s.strip_prefix('0').filter(|o| !o.is_empty()) {
        (o, 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The format word of a qdisk's `params` (`libxl__device_disk_string_of_format`).
pub fn qdisk_format(f: DiskFormat) -> &'static str {
    match f {
        DiskFormat::Raw => "aio",
        DiskFormat::Qcow => "qcow",
        DiskFormat::Qcow2 => "qcow2",
        DiskFormat::Vhd => "vhd",
        DiskFormat::Qed => "qed",
        DiskFormat::Empty => "empty",
    }
}

/// What [`check_target`] found.
struct Target {
    /// The absolute path.
    abs: PathBuf,
    /// (major, minor) of a block device.
    block: Option<(u32, u32)>,
}

/// Checks that `path` is a regular file or a block device this process may open as the
/// disk's mode asks; returns its absolute path (the backends run elsewhere) and, for a
/// block device, its numbers.
fn check_target(index: usize, path: &str, readonly: bool) -> Result<Target, DiskError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let err = |msg: String| DiskError::Target {
        index,
        path: path.to_owned(),
        msg,
    };
    let abs = std::fs::canonicalize(Path::new(path)).map_err(|e| err(e.to_string()))?;
    let meta = std::fs::metadata(&abs).map_err(|e| err(e.to_string()))?;
    let ft = meta.file_type();
    if !(ft.is_file() || ft.is_block_device()) {
        return Err(err("not a regular file or block device".into()));
    }
    let mode = if readonly {
        AccessFlags::R_OK
    } else {
        AccessFlags::R_OK | AccessFlags::W_OK
    };
    access(&abs, mode).map_err(|e| {
        err(format!(
            "cannot open it {}: {}",
            if readonly {
                "for reading"
            } else {
                "for writing"
            },
            e.desc()
        ))
    })?;
    let block = ft.is_block_device().then(|| {
        let rdev = meta.rdev();
        (
            u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX),
            u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX),
        )
    });
    Ok(Target { abs, block })
}

/// The disks of `specs` as the guest gets them, checked: a vdev each, distinct device
/// numbers, options a backend here can serve, and targets that exist and may be opened in
/// their mode. `blkback`: whether dom0's kernel serves block devices ([`blkback_available`]).
/// Nothing here touches Xen: a bad entry is refused before any domain exists.
pub fn plan_disks(specs: &[DiskSpec], blkback: bool) -> Result<Vec<Vbd>, DiskError> {
    let mut out: Vec<Vbd> = Vec::with_capacity(specs.len());
    for (index, d) in specs.iter().enumerate() {
        if d.cdrom || d.format == DiskFormat::Empty || d.target.is_empty() {
            return Err(DiskError::Cdrom(index));
        }
        let unsupported = |what: String| DiskError::Unsupported { index, what };
        if !matches!(d.backendtype.as_deref(), None | Some("qdisk") | Some("phy")) {
            let b = d.backendtype.clone().unwrap_or_default();
            return Err(unsupported(format!("backendtype={b}")));
        }
        if let Some(s) = &d.script {
            return Err(unsupported(format!(
                "script={s} (pvbuild runs no block hotplug scripts)"
            )));
        }
        if let Some(b) = &d.backend {
            if !matches!(b.as_str(), "0" | "Domain-0") {
                return Err(unsupported(format!("backend={b} (driver domains)")));
            }
        }
        let vdev = d.vdev.clone().ok_or(DiskError::NoVdev(index))?;
        let devid = devid(&vdev).ok_or_else(|| DiskError::BadVdev {
            index,
            vdev: vdev.clone(),
        })?;
        if let Some(first) = out.iter().position(|v| v.devid == devid) {
            return Err(DiskError::DuplicateVdev {
                index,
                vdev,
                devid,
                first,
            });
        }
        // libxl's default: discard on read-write disks only. QEMU refuses a read-only
        // drive with discard (the guest would silently go without the disk).
        let discard = d.discard.unwrap_or(!d.readonly);
        if discard && d.readonly {
            return Err(unsupported("discard on a read-only disk".into()));
        }
        let t = check_target(index, &d.target, d.readonly)?;
        let raw_block = t.block.filter(|_| d.format == DiskFormat::Raw);
        let backend = match (d.backendtype.as_deref(), raw_block) {
            (Some("phy"), None) => {
                return Err(unsupported(
                    "backendtype=phy on an image file or a non-raw format (blkback serves raw \
                     block devices; pvbuild makes no loop devices)"
                        .into(),
                ))
            }
            (Some("phy"), Some(_)) if !blkback => return Err(DiskError::NoBlkback(index)),
            (Some("phy"), Some((major, minor))) => VbdBackend::Phy { major, minor },
            // libxl's choice for a raw block device when nothing is asked for: blkback.
            (None, Some((major, minor))) if blkback => VbdBackend::Phy { major, minor },
            _ => VbdBackend::Qdisk,
        };
        let params = match backend {
            VbdBackend::Qdisk => format!("{}:{}", qdisk_format(d.format), t.abs.display()),
            VbdBackend::Phy { .. } => t.abs.display().to_string(),
        };
        out.push(Vbd {
            backend,
            devid,
            vdev,
            params,
            readonly: d.readonly,
            discard,
            trusted: !d.untrusted,
        });
    }
    Ok(out)
}

/// The sharing check ([`sharing::check`]) of every disk of `disks` on a block device, for
/// domain `own` (`None`: one not made yet). blkback's disks carry their numbers; a block
/// device QEMU serves is checked by the numbers its path has now.
pub fn check_sharing(
    xs: &crate::xenstore::XsConnection,
    disks: &[Vbd],
    own: Option<u32>,
) -> Result<(), DiskError> {
    for (index, v) in disks.iter().enumerate() {
        let dev = match v.backend {
            VbdBackend::Phy { major, minor } => Some((major, minor)),
            VbdBackend::Qdisk => v
                .params
                .split_once(':')
                .and_then(|(_, path)| check_target(index, path, true).ok()?.block),
        };
        if let Some(dev) = dev {
            sharing::check(xs, index, &v.params, dev, v.readonly, own)?;
        }
    }
    Ok(())
}

/// How long the kernel's blkback may take to take a disk (libxl's `LIBXL_INIT_TIMEOUT` is
/// 10 s; an emulated dom0 is slower).
pub const BLKBACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a backend's `state` value says it took its device: past Initialising (1), i.e.
/// InitWait (2) or later. The one test of readiness, for blkback's and QEMU's backends alike.
pub fn backend_taken(state: Option<&str>) -> bool {
    state
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|s| s >= 2)
}

/// Waits until every backend directory of `backends` has its `state` past Initialising
/// (blkback's InitWait, 2), as libxl waits for a vbd's backend: woken by a watch on each
/// `state` ([`crate::xenstore::wait_watched`]), bounded by `timeout` for all of them together,
/// and by a signal.
pub fn wait_backends(
    xs: &crate::xenstore::XsConnection,
    backends: &[String],
    timeout: std::time::Duration,
) -> Result<(), DiskError> {
    use crate::xenstore::{wait_watched, Waited};
    let deadline = std::time::Instant::now() + timeout;
    for b in backends {
        let path = format!("{b}/state");
        let mut last = String::new();
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let waited = wait_watched(xs, &[&path], Some(left), || {
            last = xs.read_opt(&path)?.unwrap_or_default();
            Ok(backend_taken(Some(&last)).then_some(()))
        })
        .map_err(|e: crate::xenstore::XsError| DiskError::Xenstore(path.clone(), e.to_string()))?;
        match waited {
            Waited::Done(()) => {}
            Waited::Interrupted => return Err(DiskError::Interrupted),
            Waited::TimedOut => {
                return Err(DiskError::NotReady {
                    backend: b.clone(),
                    secs: timeout.as_secs(),
                    state: last,
                })
            }
        }
    }
    Ok(())
}

/// How long a guest has to close a disk being detached before it is removed anyway (libxl's
/// `LIBXL_DESTROY_TIMEOUT`).
pub const DETACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `domid`'s device model runs (it wrote `running`): a qdisk added to the domain
/// later is taken by it, as QEMU's xen-bus watches its backend directory.
pub fn device_model_running(
    xs: &crate::xenstore::XsConnection,
    domid: u32,
) -> Result<bool, DiskError> {
    let path = format!("{}/state", crate::xenstore::device_model_dir(domid));
    Ok(xs
        .read_opt(&path)
        .map_err(|e| DiskError::Xenstore(path.clone(), e.to_string()))?
        .as_deref()
        == Some("running"))
}

/// The device model an attach may need: a qdisk goes to the domain's QEMU.
#[derive(Clone, Copy)]
pub enum AttachDm<'a> {
    /// It runs (wrote `running`): its xen-bus takes a new backend.
    Running,
    /// None runs; a qdisk is refused.
    Refuse,
    /// None runs; a qdisk starts one with this first, as libxl's `libxl__dm_check_start`
    /// does for a PV domain.
    Start(&'a dyn Fn() -> Result<crate::devmodel::RunningDm, DiskError>),
}

impl std::fmt::Debug for AttachDm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Running => "Running",
            Self::Refuse => "Refuse",
            Self::Start(_) => "Start",
        })
    }
}

/// How long an attach being undone waits for a running device model to drop the disk.
const UNDO_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tells a running device model to drop the qdisk at `bp` (`online` 0, `state` Closing)
/// and waits, at most [`UNDO_CLOSE_WAIT`], for QEMU to remove its backend directory. It
/// polls rather than waits on a watch: an undo runs after a signal, which ends every watched
/// wait at once.
fn undo_qdisk_close(xs: &crate::xenstore::XsConnection, bp: &str) {
    let state = format!("{bp}/state");
    let closed = xs.with_transaction(|t| {
        t.write(&format!("{bp}/online"), "0")?;
        t.write(&state, "5")
    });
    if closed.is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + UNDO_CLOSE_WAIT;
    while std::time::Instant::now() < deadline {
        if !matches!(xs.read_opt(&state), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `xl block-attach`: one disk spec, planned and checked as `create` plans its disks, added
/// to running domain `domid` (its entries in one transaction) and waited for until its
/// backend took it (blkback's InitWait, or the device model's). A qdisk needs the domain's
/// device model: see [`AttachDm`]. On any failure the entries are removed again, and a
/// device model started for this disk is stopped and its entries removed. Returns the disk
/// and the pid of the device model started for it, if one was.
pub fn attach(
    xs: &crate::xenstore::XsConnection,
    domid: u32,
    spec: &DiskSpec,
    blkback: bool,
    dm: AttachDm<'_>,
    protocol: Option<&str>,
    timeout: std::time::Duration,
) -> Result<(Vbd, Option<u32>), DiskError> {
    let xs_err =
        |what: &str, e: &dyn std::fmt::Display| DiskError::Xenstore(what.into(), e.to_string());
    let mut planned = plan_disks(std::slice::from_ref(spec), blkback)?;
    let Some(v) = planned.pop() else {
        return Err(DiskError::NoVdev(0));
    };
    check_sharing(xs, std::slice::from_ref(&v), Some(domid))?;
    let existing = crate::xenstore::vbd_devids(xs, domid).map_err(|e| xs_err("its disks", &e))?;
    if existing.contains(&v.devid) {
        return Err(DiskError::Taken {
            domid,
            vdev: v.vdev,
            devid: v.devid,
        });
    }
    let started = match (v.backend, dm) {
        (VbdBackend::Qdisk, AttachDm::Refuse) => {
            return Err(DiskError::Unsupported {
                index: 0,
                what: format!(
                    "attaching {} (a disk QEMU serves) to a domain without a running device \
                     model",
                    v.params
                ),
            })
        }
        (VbdBackend::Qdisk, AttachDm::Start(start)) => match start() {
            Ok(dm) => Some(dm),
            Err(e) => {
                // What a start that failed wrote (its directory, its pid) goes too.
                crate::devmodel::remove_entries(xs, domid);
                return Err(e);
            }
        },
        _ => None,
    };
    // Undoes the device model started for this disk (stopped, its entries removed).
    let undo_dm = |started: Option<crate::devmodel::RunningDm>| {
        if let Some(dm) = started {
            let _ = dm.stop();
            crate::devmodel::remove_entries(xs, domid);
        }
    };
    let bp = v.backend_path(0, domid);
    if let Err(e) = crate::xenstore::add_vbd(xs, domid, 0, protocol, &v) {
        undo_dm(started);
        return Err(match e {
            crate::xenstore::DomainXsError::DevidTaken(devid) => DiskError::Taken {
                domid,
                vdev: v.vdev.clone(),
                devid,
            },
            e => xs_err("adding its entries", &e),
        });
    }
    if let Err(e) = wait_backends(xs, std::slice::from_ref(&bp), timeout) {
        // A device model started for this disk is stopped first: a QEMU still running when
        // the entries go rewrites its `state` (bringing the directory back) before it drops
        // the device. One that was already running is told to close the device and waited
        // for briefly, as `block-detach` does.
        if started.is_some() {
            undo_dm(started);
        } else if v.backend == VbdBackend::Qdisk {
            undo_qdisk_close(xs, &bp);
        }
        let _ = crate::xenstore::remove_device(xs, domid, "vbd", v.devid, &bp);
        return Err(e);
    }
    // A device model that serves the disk stays, as one `create` starts does.
    let pid = started.map(|dm| dm.pid);
    Ok((v, pid))
}

/// The disk of `domid` that `which` names: its vdev (`xvdb`) or its device number.
pub fn find(
    xs: &crate::xenstore::XsConnection,
    domid: u32,
    which: &str,
) -> Result<(u32, String), DiskError> {
    let ids = crate::xenstore::vbd_devids(xs, domid)
        .map_err(|e| DiskError::Xenstore("its disks".into(), e.to_string()))?;
    let want = which.parse::<u32>().ok().or_else(|| devid(which));
    match want.filter(|d| ids.contains(d)) {
        Some(d) => {
            let fe = format!(
                "{}/device/vbd/{d}/backend",
                crate::xenstore::dom_path(domid)
            );
            let bp = xs
                .read_opt(&fe)
                .map_err(|e| DiskError::Xenstore(fe.clone(), e.to_string()))?
                .filter(|b| is_our_vbd_backend(b, domid, d))
                .ok_or_else(|| DiskError::NoDevice {
                    domid,
                    what: format!("{which} (its frontend names no backend of ours)"),
                })?;
            Ok((d, bp))
        }
        None => Err(DiskError::NoDevice {
            domid,
            what: which.to_owned(),
        }),
    }
}

/// Whether `path` (read from a guest-writable frontend) is dom0's vbd or qdisk backend of
/// `domid`'s device `devid`: nothing else is ever removed on its word.
fn is_our_vbd_backend(path: &str, domid: u32, devid: u32) -> bool {
    path == format!("{}/{devid}", crate::xenstore::vbd_backend_dir(0, domid))
        || path == format!("{}/{devid}", crate::xenstore::qdisk_backend_dir(0, domid))
}

/// `xl block-detach`, as `libxl__initiate_device_generic_remove`: the backend is told to go
/// (`online` 0, `state` Closing), the guest's blkfront closes its side, which closes the
/// backend (Closed); past `timeout` (a guest that does not answer) it goes on anyway. Then the
/// entries are removed, which makes blkback drop the device. QEMU drops a closed, offline
/// device by itself and removes its backend directory (and until then rewrites its `state`,
/// which would bring back what was removed): for a QEMU-served disk the wait (at most
/// `timeout` more) is for that directory to go before the rest is removed. Returns whether
/// the backend closed in time.
pub fn detach(
    xs: &crate::xenstore::XsConnection,
    domid: u32,
    devid: u32,
    bp: &str,
    timeout: std::time::Duration,
) -> Result<bool, DiskError> {
    let xs_err = |e: &dyn std::fmt::Display| DiskError::Xenstore(bp.to_owned(), e.to_string());
    let closed = crate::xenstore::close_backend(xs, bp, timeout).map_err(|e| xs_err(&e))?;
    if bp.starts_with(&crate::xenstore::qdisk_backend_dir(0, domid)) {
        let state = format!("{bp}/state");
        // Gone, or past the wait: removed below either way.
        let _ = crate::xenstore::wait_watched(xs, &[&state], Some(timeout), || {
            Ok::<_, crate::xenstore::XsError>(xs.read_opt(&state)?.is_none().then_some(()))
        })
        .map_err(|e| xs_err(&e))?;
    }
    crate::xenstore::remove_device(xs, domid, "vbd", devid, bp).map_err(|e| xs_err(&e))?;
    Ok(closed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_disk_spec;

    #[test]
    fn device_numbers_as_libxl_computes_them() {
        // Values from libxl__device_disk_dev_number and Xen's docs/misc/vbd-interface.txt.
        for (vdev, want) in [
            ("xvda", Some(51712)),
            ("xvdb", Some(51728)),
            ("xvda1", Some(51713)),
            ("xvdp15", Some((202 << 8) | (15 << 4) | 15)),
            ("xvdq", Some((1 << 28) | (16 << 8))),
            ("xvda16", Some((1 << 28) | 16)),
            ("xvdaa", Some((1 << 28) | (26 << 8))),
            ("d0p0", Some(51712)),
            ("d3p2", Some((202 << 8) | (3 << 4) | 2)),
            ("d16p0", Some((1 << 28) | (16 << 8))),
            ("hda", Some(3 << 8)),
            ("hdb", Some((3 << 8) | (1 << 6))),
            ("hdc", Some(22 << 8)),
            ("hdd1", Some((22 << 8) | (1 << 6) | 1)),
            ("sda", Some(8 << 8)),
            ("sdb2", Some((8 << 8) | (1 << 4) | 2)),
            ("51712", Some(51712)),
            ("0xca00", Some(51712)),
            ("xvda0", None),
            ("xvda01", None),
            ("xvda256", None),
            ("hde", None),
            ("sdq", None),
            ("xvd", None),
            ("xvdA", None),
            ("d1p256", None),
            ("", None),
            ("99999999999", None),
        ] {
            assert_eq!(devid(vdev), want, "{vdev}");
        }
    }

    fn temp_image(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pvbuild-disk-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, b"image").unwrap();
        p
    }

    #[test]
    fn planned_disks_carry_libxl_params_and_modes() {
        let a = temp_image("a.img");
        let b = temp_image("b.qcow2");
        let specs = [
            parse_disk_spec(&format!("file:{},xvda,w", a.display())).unwrap(),
            parse_disk_spec(&format!(
                "format=qcow2,vdev=xvdb,access=ro,target={}",
                b.display()
            ))
            .unwrap(),
        ];
        let v = plan_disks(&specs, true).unwrap();
        assert_eq!(
            v[0].backend,
            VbdBackend::Qdisk,
            "an image file is a qdisk even with blkback"
        );
        assert_eq!(v[0].devid, 51712);
        assert_eq!(v[0].params, format!("aio:{}", a.display()));
        assert!(!v[0].readonly && v[0].discard && v[0].trusted);
        assert_eq!(v[1].params, format!("qcow2:{}", b.display()));
        assert!(v[1].readonly && !v[1].discard);
    }

    #[test]
    fn a_raw_block_device_goes_to_blkback_when_it_is_there() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        // Any block device this machine has and the test may open (loop devices usually).
        let Some(dev) = std::fs::read_dir("/dev").ok().and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                std::fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device())
                    && access(p.as_path(), AccessFlags::R_OK).is_ok()
            })
        }) else {
            eprintln!("no readable block device: skipped");
            return;
        };
        let rdev = std::fs::metadata(&dev).unwrap().rdev();
        let (major, minor) = (
            nix::sys::stat::major(rdev) as u32,
            nix::sys::stat::minor(rdev) as u32,
        );
        let p = dev.display();
        let spec = |s: String| [parse_disk_spec(&s).unwrap()];
        // By default, as libxl (the harness's pvbuild-phy boots a guest this way), and when
        // asked for.
        let v = plan_disks(&spec(format!("phy:{p},xvda,r")), true).unwrap();
        assert_eq!(v[0].backend, VbdBackend::Phy { major, minor });
        let v = plan_disks(
            &spec(format!("vdev=xvda,access=r,backendtype=phy,target={p}")),
            true,
        )
        .unwrap();
        assert_eq!(v[0].backend, VbdBackend::Phy { major, minor });
        assert_eq!(v[0].params, p.to_string());
        // Without blkback: QEMU serves it; asked for phy explicitly: refused, named.
        let v = plan_disks(&spec(format!("phy:{p},xvda,r")), false).unwrap();
        assert_eq!(v[0].backend, VbdBackend::Qdisk);
        assert_eq!(
            plan_disks(
                &spec(format!("vdev=xvda,access=r,backendtype=phy,target={p}")),
                false
            ),
            Err(DiskError::NoBlkback(0))
        );
        // backendtype=qdisk keeps it in QEMU even with blkback.
        let v = plan_disks(
            &spec(format!("vdev=xvda,access=r,backendtype=qdisk,target={p}")),
            true,
        )
        .unwrap();
        assert_eq!(v[0].backend, VbdBackend::Qdisk);
    }

    #[test]
    fn bad_entries_are_refused_with_their_reason() {
        let a = temp_image("c.img");
        let p = a.display();
        let refuse =
            |spec: String| plan_disks(&[parse_disk_spec(&spec).unwrap()], true).unwrap_err();
        assert_eq!(refuse(format!("target={p}")), DiskError::NoVdev(0));
        assert!(matches!(
            refuse(format!("{p},raw,xvda0")),
            DiskError::BadVdev { .. }
        ));
        assert!(matches!(
            refuse(format!("vdev=xvda,backendtype=tap,target={p}")),
            DiskError::Unsupported { .. }
        ));
        assert!(matches!(
            refuse(format!("vdev=xvda,backendtype=phy,target={p}")),
            DiskError::Unsupported { .. }
        ));
        assert!(matches!(
            refuse(format!("vdev=xvda,access=ro,discard,target={p}")),
            DiskError::Unsupported { .. }
        ));
        assert!(matches!(
            refuse(format!("vdev=xvda,script=block,target={p}")),
            DiskError::Unsupported { .. }
        ));
        assert!(matches!(
            refuse(format!("vdev=xvda,backend=driverdom,target={p}")),
            DiskError::Unsupported { .. }
        ));
        assert_eq!(refuse(",,hdc:cdrom,r".into()), DiskError::Cdrom(0));
        assert!(matches!(
            refuse("/nonexistent/pvbuild.img,raw,xvda,w".into()),
            DiskError::Target { .. }
        ));
        assert!(matches!(
            refuse("/dev/null,raw,xvda,w".into()),
            DiskError::Target { .. }
        ));
        assert!(matches!(
            refuse(format!("{}/..,raw,xvda,w", a.display())),
            DiskError::Target { .. }
        ));
        let two = [
            parse_disk_spec(&format!("{p},raw,xvda,w")).unwrap(),
            parse_disk_spec(&format!("{p},raw,d0p0,w")).unwrap(),
        ];
        assert!(matches!(
            plan_disks(&two, true).unwrap_err(),
            DiskError::DuplicateVdev {
                index: 1,
                first: 0,
                ..
            }
        ));
    }

    /// A backend that moves its state as QEMU's does: to InitWait (2) once written, and to
    /// Closed (6) once told Closing (5), after which it removes its directory. Runs until
    /// `stop` is set.
    fn fake_backend(
        store: &crate::xenstore::fake::FakeXenstore,
        bp: String,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        let xs = store.connect();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match xs.read_opt(&format!("{bp}/state")).unwrap().as_deref() {
                    Some("1") => xs.write(&format!("{bp}/state"), "2").unwrap(),
                    Some("5") => {
                        xs.write(&format!("{bp}/state"), "6").unwrap();
                        // As QEMU: an offline, closed device goes, its directory with it.
                        xs.rm(&bp).unwrap();
                    }
                    _ => {}
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    }

    /// [`attach`] of `spec` to domain 4 (a 64-bit guest, blkback loaded), waiting `secs`.
    fn attach_to_4(
        xs: &crate::xenstore::XsConnection,
        spec: &DiskSpec,
        dm: AttachDm<'_>,
        secs: f64,
    ) -> Result<(Vbd, Option<u32>), DiskError> {
        let wait = std::time::Duration::from_secs_f64(secs);
        attach(xs, 4, spec, true, dm, Some("x86_64-abi"), wait)
    }

    #[test]
    fn attach_and_detach_a_qdisk_of_a_domain_with_a_device_model() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::time::Duration;
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        // The running domain (an attach refuses one whose directory is gone).
        xs.write("/local/domain/4/name", "guest").unwrap();
        let img = temp_image("hot.img");
        let spec = parse_disk_spec(&format!("{},raw,xvdb,w", img.display())).unwrap();
        let bp = "/local/domain/0/backend/qdisk/4/51728".to_owned();
        let attach_to =
            |dm: AttachDm<'_>, secs: f64| attach_to_4(&xs, &spec, dm, secs).map(|(v, _)| v);
        // Without a device model: refused, nothing written.
        let e = attach_to(AttachDm::Refuse, 5.0).unwrap_err();
        assert!(
            e.to_string().contains("without a running device model"),
            "{e}"
        );
        assert_eq!(xs.read_opt(&format!("{bp}/state")).unwrap(), None);
        // Nobody takes it: NotReady, and the entries are gone again.
        let e = attach_to(AttachDm::Running, 0.3).unwrap_err();
        assert!(matches!(e, DiskError::NotReady { .. }), "{e}");
        assert_eq!(xs.read_opt(&format!("{bp}/state")).unwrap(), None);
        assert_eq!(
            xs.read_opt("/local/domain/4/device/vbd/51728/backend")
                .unwrap(),
            None
        );
        // A backend that takes it.
        let stop = Arc::new(AtomicBool::new(false));
        let be = fake_backend(&store, bp.clone(), stop.clone());
        let v = attach_to(AttachDm::Running, 10.0).unwrap();
        assert_eq!((v.devid, v.backend), (51728, VbdBackend::Qdisk));
        assert_eq!(
            xs.read("/local/domain/4/device/vbd/51728/protocol")
                .unwrap(),
            "x86_64-abi"
        );
        // Twice: refused by its device number, by vdev or number.
        let e = attach_to(AttachDm::Running, 1.0).unwrap_err();
        assert!(matches!(e, DiskError::Taken { devid: 51728, .. }), "{e}");
        assert_eq!(find(&xs, 4, "xvdb").unwrap(), (51728, bp.clone()));
        assert_eq!(find(&xs, 4, "51728").unwrap(), (51728, bp.clone()));
        assert!(matches!(
            find(&xs, 4, "xvdc"),
            Err(DiskError::NoDevice { .. })
        ));
        // Detach: closed in time, everything removed.
        assert!(detach(&xs, 4, 51728, &bp, Duration::from_secs(10)).unwrap());
        stop.store(true, Ordering::SeqCst);
        be.join().unwrap();
        assert_eq!(xs.read_opt(&format!("{bp}/state")).unwrap(), None);
        assert_eq!(xenstore_devids(&xs, 4), Vec::<u32>::new());
    }

    #[test]
    fn an_attach_starts_the_device_model_and_stops_it_again_when_the_disk_fails() {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        use std::sync::Arc;
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        let img = temp_image("started.img");
        let spec = parse_disk_spec(&format!("{},raw,xvdb,w", img.display())).unwrap();
        let bp = "/local/domain/0/backend/qdisk/4/51728".to_owned();
        let dm_dir = crate::xenstore::device_model_dir(4);
        let (starts, stops) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        // A fake launch: what `devmodel::launch` leaves in xenstore, and a stop that counts.
        let start = || {
            starts.fetch_add(1, Ordering::SeqCst);
            xs.write(&format!("{dm_dir}/state"), "running").unwrap();
            xs.write(&crate::devmodel::pid_path(4), "4242").unwrap();
            let stops = stops.clone();
            Ok(crate::devmodel::RunningDm::new(4242, move || {
                stops.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }))
        };
        let attach_with = |dm: AttachDm<'_>, secs: f64| attach_to_4(&xs, &spec, dm, secs);
        // A device model that does not come up: its error, no disk entries, and nothing of
        // what its start wrote (as `launch`: the directory, then the pid) is left.
        let fail = || {
            xs.mkdir(&dm_dir).unwrap();
            xs.write(&crate::devmodel::pid_path(4), "4241").unwrap();
            Err(DiskError::DeviceModel("device model exited (1)".into()))
        };
        let e = attach_with(AttachDm::Start(&fail), 1.0).unwrap_err();
        assert_eq!(e.to_string(), "device-model: device model exited (1)");
        assert_eq!(xenstore_devids(&xs, 4), Vec::<u32>::new());
        assert_eq!(xs.read_opt(&dm_dir).unwrap(), None);
        assert_eq!(xs.read_opt(&crate::devmodel::pid_path(4)).unwrap(), None);
        // Started, but the disk is not taken: the device model is stopped, its entries go.
        let e = attach_with(AttachDm::Start(&start), 0.3).unwrap_err();
        assert!(matches!(e, DiskError::NotReady { .. }), "{e}");
        assert_eq!(
            (starts.load(Ordering::SeqCst), stops.load(Ordering::SeqCst)),
            (1, 1)
        );
        assert_eq!(xs.read_opt(&format!("{dm_dir}/state")).unwrap(), None);
        assert_eq!(xs.read_opt(&crate::devmodel::pid_path(4)).unwrap(), None);
        assert_eq!(xenstore_devids(&xs, 4), Vec::<u32>::new());
        // Started and taken: it stays, and its pid is reported.
        let done = Arc::new(AtomicBool::new(false));
        let be = fake_backend(&store, bp.clone(), done.clone());
        let (v, pid) = attach_with(AttachDm::Start(&start), 10.0).unwrap();
        done.store(true, Ordering::SeqCst);
        be.join().unwrap();
        assert_eq!((v.devid, pid), (51728, Some(4242)));
        assert_eq!(
            (starts.load(Ordering::SeqCst), stops.load(Ordering::SeqCst)),
            (2, 1)
        );
        assert_eq!(
            xs.read_opt(&format!("{dm_dir}/state")).unwrap().as_deref(),
            Some("running")
        );
    }

    fn xenstore_devids(xs: &crate::xenstore::XsConnection, domid: u32) -> Vec<u32> {
        crate::xenstore::vbd_devids(xs, domid).unwrap()
    }

    #[test]
    fn a_frontend_naming_another_backend_is_not_followed() {
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        // A disk dom0 knows (its copy under /libxl), whose frontend the guest owns: it may
        // point `backend` anywhere.
        xs.write(
            "/libxl/4/device/vbd/51728/backend",
            "/local/domain/0/backend/qdisk/4/51728",
        )
        .unwrap();
        xs.write(
            "/local/domain/4/device/vbd/51728/backend",
            "/local/domain/0/name",
        )
        .unwrap();
        assert!(matches!(
            find(&xs, 4, "xvdb"),
            Err(DiskError::NoDevice { .. })
        ));
    }

    #[test]
    fn detach_goes_on_when_the_guest_does_not_close() {
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        let bp = "/local/domain/0/backend/vbd/4/51728";
        xs.write(&format!("{bp}/state"), "4").unwrap();
        xs.write("/local/domain/4/device/vbd/51728/backend", bp)
            .unwrap();
        let closed = detach(&xs, 4, 51728, bp, std::time::Duration::from_millis(300)).unwrap();
        assert!(!closed);
        assert_eq!(xs.read_opt(&format!("{bp}/state")).unwrap(), None);
        assert_eq!(
            xs.read_opt("/local/domain/4/device/vbd/51728/backend")
                .unwrap(),
            None
        );
    }
}

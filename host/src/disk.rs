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
    /// A signal asked pvbuild to stop.
    #[error("interrupted")]
    Interrupted,
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
}

//! The sharing check of libxl's `block` hotplug script (`check_sharing` in
//! `/etc/xen/scripts/block`), which pvbuild does not run: a block device is refused when
//! giving it to a guest would let two writers, or a writer and a reader that trusts the data,
//! see it at once.
//!
//! The script's rules, kept:
//! - read-write (`w`): refused if dom0 has the device mounted at all, or if any other guest has
//!   it (any mode);
//! - read-only (`r`): refused if dom0 has it mounted read-write, or another guest has it
//!   read-write.
//!
//! What differs: the device numbers of dom0's mounts are read from `/proc/self/mountinfo`
//! (the script stats each source named in `/proc/mounts`, which misses a mount whose source
//! is not a device path); and disks QEMU serves (`backend/qdisk`, whose `params` name the
//! device) count as well as blkback's (`backend/vbd`, by `physical-device`): the script only
//! sees blkback's. The same guest's own disks are not a conflict, as the script's `same_vm`.

use super::DiskError;

/// A block device, by number.
pub type DevNum = (u32, u32);

/// Where dom0 has `dev` mounted in a way that conflicts with a guest's use in this mode: any
/// mount for a writable disk, a read-write mount for a read-only one. `mountinfo` is the text
/// of `/proc/self/mountinfo` (proc(5): field 3 `major:minor`, field 5 the mount point, field 6
/// the mount options).
pub fn conflicting_mount(mountinfo: &str, dev: DevNum, readonly: bool) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        let (mm, point, opts) = (f.get(2)?, f.get(4)?, f.get(5)?);
        let (ma, mi) = mm.split_once(':')?;
        let same = ma.parse::<u32>().ok()? == dev.0 && mi.parse::<u32>().ok()? == dev.1;
        let writable = opts.split(',').any(|o| o == "rw");
        (same && (!readonly || writable)).then(|| (*point).to_owned())
    })
}

/// `physical-device` as blkback's backends hold it (`%x:%x`, the script's `stat -c %t:%T`).
fn parse_physical_device(s: &str) -> Option<DevNum> {
    let (ma, mi) = s.trim().split_once(':')?;
    Some((
        u32::from_str_radix(ma, 16).ok()?,
        u32::from_str_radix(mi, 16).ok()?,
    ))
}

/// A qdisk's `params` (`FORMAT:PATH`, or a bare path): the block device it names, if any.
fn qdisk_device(params: &str) -> Option<DevNum> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let path = match params.split_once(':') {
        Some((_, p)) if p.starts_with('/') => p,
        _ => params,
    };
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type().is_block_device().then(|| {
        let rdev = meta.rdev();
        (
            u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX),
            u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX),
        )
    })
}

/// A guest's disk on a device: who has it and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestUse {
    /// The guest.
    pub domid: u32,
    /// Its backend directory.
    pub backend: String,
    /// Whether it has the device read-only.
    pub readonly: bool,
}

/// The guests other than `own` whose disks (blkback's or QEMU's) are on `dev`, as dom0's
/// backend directories say.
pub fn guest_uses(
    xs: &crate::xenstore::XsConnection,
    dev: DevNum,
    own: Option<u32>,
) -> Result<Vec<GuestUse>, crate::xenstore::XsError> {
    let mut uses = Vec::new();
    for kind in ["vbd", "qdisk"] {
        let base = format!("/local/domain/0/backend/{kind}");
        for dom in xs.directory(&base).unwrap_or_default() {
            let Ok(domid) = dom.parse::<u32>() else {
                continue;
            };
            if Some(domid) == own {
                continue;
            }
            for devid in xs.directory(&format!("{base}/{dom}")).unwrap_or_default() {
                let backend = format!("{base}/{dom}/{devid}");
                let on = if kind == "vbd" {
                    xs.read_opt(&format!("{backend}/physical-device"))?
                        .and_then(|p| parse_physical_device(&p))
                } else {
                    xs.read_opt(&format!("{backend}/params"))?
                        .and_then(|p| qdisk_device(&p))
                };
                if on != Some(dev) {
                    continue;
                }
                let mode = xs.read_opt(&format!("{backend}/mode"))?.unwrap_or_default();
                uses.push(GuestUse {
                    domid,
                    backend,
                    readonly: !mode.trim().starts_with('w'),
                });
            }
        }
    }
    Ok(uses)
}

/// The script's verdict for disk `index` on block device `dev` (`path` for messages) in this
/// mode, for domain `own` (`None`: one not made yet).
pub fn check(
    xs: &crate::xenstore::XsConnection,
    index: usize,
    path: &str,
    dev: DevNum,
    readonly: bool,
    own: Option<u32>,
) -> Result<(), DiskError> {
    let shared = |msg: String| DiskError::Shared {
        index,
        path: path.to_owned(),
        msg,
    };
    let mode = if readonly { "read-only" } else { "read-write" };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(point) = conflicting_mount(&mountinfo, dev, readonly) {
        return Err(shared(format!(
            "it is mounted {}in dom0 (at {point}), and so cannot be given to a guest {mode}",
            if readonly { "read-write " } else { "" }
        )));
    }
    let uses = guest_uses(xs, dev, own)
        .map_err(|e| DiskError::Xenstore("the guests' disks".into(), e.to_string()))?;
    if let Some(u) = uses.iter().find(|u| !readonly || !u.readonly) {
        return Err(shared(format!(
            "domain {} has it {} ({}), and so it cannot be given to another guest {mode}",
            u.domid,
            if u.readonly {
                "read-only"
            } else {
                "read-write"
            },
            u.backend
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 7:3 / /mnt/ro ro,relatime shared:2 - ext2 /dev/loop3 ro
31 22 7:4 / /mnt/rw rw,nosuid shared:3 - ext2 /dev/loop4 rw
32 22 0:25 / /tmp rw shared:4 - tmpfs tmpfs rw
";

    #[test]
    fn dom0_mounts_conflict_as_the_block_script_says() {
        // Writable: any mount conflicts.
        assert_eq!(
            conflicting_mount(MOUNTINFO, (7, 3), false).as_deref(),
            Some("/mnt/ro")
        );
        assert_eq!(
            conflicting_mount(MOUNTINFO, (7, 4), false).as_deref(),
            Some("/mnt/rw")
        );
        // Read-only: only a read-write mount does.
        assert_eq!(conflicting_mount(MOUNTINFO, (7, 3), true), None);
        assert_eq!(
            conflicting_mount(MOUNTINFO, (7, 4), true).as_deref(),
            Some("/mnt/rw")
        );
        // Another device, or numbers that only look alike.
        assert_eq!(conflicting_mount(MOUNTINFO, (7, 5), false), None);
        assert_eq!(conflicting_mount(MOUNTINFO, (8, 11), false), None);
        assert_eq!(conflicting_mount("garbage\n\n1 2\n", (7, 3), false), None);
    }

    #[test]
    fn numbers_as_backends_hold_them() {
        assert_eq!(parse_physical_device("7:3"), Some((7, 3)));
        assert_eq!(parse_physical_device("fd:1a\n"), Some((253, 26)));
        assert_eq!(parse_physical_device("7"), None);
        assert_eq!(parse_physical_device("x:1"), None);
        // /dev/null is a character device, /nonexistent nothing.
        assert_eq!(qdisk_device("raw:/dev/null"), None);
        assert_eq!(qdisk_device("raw:/nonexistent"), None);
    }

    fn backend(
        xs: &crate::xenstore::XsConnection,
        kind: &str,
        domid: u32,
        entries: &[(&str, &str)],
    ) {
        for (k, v) in entries {
            xs.write(
                &format!("/local/domain/0/backend/{kind}/{domid}/51712/{k}"),
                v,
            )
            .unwrap();
        }
    }

    #[test]
    fn other_guests_disks_conflict_as_the_block_script_says() {
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        backend(&xs, "vbd", 5, &[("physical-device", "7:3"), ("mode", "r")]);
        backend(&xs, "vbd", 6, &[("physical-device", "7:4"), ("mode", "w")]);
        // Read-only beside read-only: allowed; anything beside a writer, or a writer beside
        // anything: refused.
        assert!(check(&xs, 0, "/dev/loop3", (7, 3), true, None).is_ok());
        let e = check(&xs, 0, "/dev/loop3", (7, 3), false, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("domain 5 has it read-only"), "{e}");
        let e = check(&xs, 1, "/dev/loop4", (7, 4), true, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("disk 1: /dev/loop4: domain 6 has it read-write"),
            "{e}"
        );
        // The guest's own disk is no conflict (the script's same_vm).
        assert!(check(&xs, 0, "/dev/loop4", (7, 4), false, Some(6)).is_ok());
        assert_eq!(
            guest_uses(&xs, (7, 4), None).unwrap(),
            [GuestUse {
                domid: 6,
                backend: "/local/domain/0/backend/vbd/6/51712".into(),
                readonly: false
            }]
        );
    }
}

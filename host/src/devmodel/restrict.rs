//! A restricted device model (`dm_restrict`, `device_model_user`), as libxl 4.17 runs one
//! (`libxl__domain_get_device_model_uid`, the `dm_restrict` branch of
//! `libxl__build_device_model_args_new`, `libxl__local_dm_preexec_restrict`):
//!
//! - **its user**: `device_model_user` if given (with or without `dm_restrict`); else, with
//!   `dm_restrict`, the uid `xen-qemuuser-range-base` + domid (refused if another user has
//!   that uid), else `xen-qemuuser-shared`; none of them is an error, and so is root.
//!   QEMU drops to it with `-runas` once it has set itself up (its disks and sockets open).
//! - **`-xen-domid-restrict`**: QEMU restricts its privcmd, evtchn, gntdev and
//!   devicemodel handles to the guest's domain id before it runs the guest.
//! - **`-chroot /var/run/xen/qemu-root-<domid>`**: an empty directory (mode 0000, root's),
//!   made fresh for each start and removed when QEMU stops.
//! - **before the exec**: new mount and IPC namespaces, and the rlimits libxl sets
//!   ([`RLIMITS`]).
//!
//! Where pvbuild differs from libxl: libxl adds `-runas` only for HVM guests, so its QEMU
//! for a PV guest's qdisks stays root (chrooted, restricted to the domain); pvbuild passes
//! `-runas` for PV guests too. libxl pre-opens the QMP socket and starts QEMU with `-S`
//! (it then knows QEMU is up over QMP); pvbuild has no QMP conversation and keeps the
//! socket paths QEMU itself creates before it chroots, and waits for `running` in xenstore.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::devices::bootloader::{USER_RANGE_BASE, USER_SHARED};

/// Where libxl makes the chroot directories (`libxl__run_dir_path()`).
pub const RUN_DIR: &str = "/var/run/xen";

/// What a config asks of the device model's privileges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DmPrivileges {
    /// `dm_restrict = 1`.
    pub restrict: bool,
    /// `device_model_user`.
    pub user: Option<String>,
}

impl DmPrivileges {
    /// Whether QEMU runs as root and unrestricted (the default).
    pub fn is_default(&self) -> bool {
        !self.restrict && self.user.is_none()
    }
}

/// One user as the user database has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEntry {
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
}

/// The user database (the system's, or a test's).
pub trait UserDb {
    /// The user called `name`, if one is.
    fn by_name(&self, name: &str) -> Result<Option<UserEntry>, String>;
    /// The user with `uid`, if one is.
    fn by_uid(&self, uid: u32) -> Result<Option<UserEntry>, String>;
}

/// The system's user database (`getpwnam_r`, `getpwuid_r`).
#[derive(Debug)]
pub struct SystemUsers;

fn entry(u: nix::unistd::User) -> UserEntry {
    UserEntry {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }
}

impl UserDb for SystemUsers {
    fn by_name(&self, name: &str) -> Result<Option<UserEntry>, String> {
        nix::unistd::User::from_name(name)
            .map(|u| u.map(entry))
            .map_err(|e| e.desc().to_owned())
    }
    fn by_uid(&self, uid: u32) -> Result<Option<UserEntry>, String> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map(|u| u.map(entry))
            .map_err(|e| e.desc().to_owned())
    }
}

/// Why the device model cannot be restricted as asked.
#[derive(Debug, Error)]
pub enum RestrictError {
    /// The user database failed.
    #[error("looking up user {name:?}: {msg}")]
    Lookup {
        /// Whom.
        name: String,
        /// Why.
        msg: String,
    },
    /// `device_model_user` names nobody.
    #[error("device_model_user: no user {0:?} on this host")]
    NoSuchUser(String),
    /// `dm_restrict` without any of libxl's users.
    #[error(
        "dm_restrict: neither {USER_RANGE_BASE} nor {USER_SHARED} exists, so the device model \
         cannot run unprivileged (create one: useradd --system --no-create-home {USER_SHARED}; \
         or name one with device_model_user)"
    )]
    NoUser,
    /// The range's uid for this domain is someone else's.
    #[error("dm_restrict: uid {uid} ({USER_RANGE_BASE} + domain {domid}) is user {name:?}")]
    UidTaken {
        /// The uid.
        uid: u32,
        /// The domain.
        domid: u32,
        /// Its owner.
        name: String,
    },
    /// The uid would overflow.
    #[error("dm_restrict: {USER_RANGE_BASE}'s uid {base} + domain {domid} overflows")]
    UidRange {
        /// The base.
        base: u32,
        /// The domain.
        domid: u32,
    },
    /// The user found is root.
    #[error("{key}: the device model's user {name:?} is root (uid 0)")]
    Root {
        /// The config key that chose it.
        key: &'static str,
        /// The user.
        name: String,
    },
    /// dm_restrict for a device model that would serve a PV guest's disks.
    #[error(
        "dm_restrict: a device model restricted to its domain (-xen-domid-restrict) cannot \
         serve a PV guest's qdisk disks: the restriction closes its xenstore connections \
         (libxentoolcore), and its disk backends work through xenstore (libxl's restricted \
         QEMU serves none either); give the guest blkback disks (phy:) or set dm_restrict = 0 \
         ({TRY_ENV}=1 starts it anyway)"
    )]
    Unservable,
    /// The user cannot open a disk QEMU is to serve.
    #[error("{key}: the device model's user {who} cannot open {path} {mode}: {msg} ({hint})")]
    NoAccess {
        /// The key that chose the user.
        key: &'static str,
        /// The user (`-runas`'s argument, and the uid).
        who: String,
        /// The image.
        path: PathBuf,
        /// `read-write` or `read-only`.
        mode: &'static str,
        /// Why.
        msg: String,
        /// What to do.
        hint: &'static str,
    },
    /// The chroot directory could not be made (or an old one removed).
    #[error("device model chroot {path}: {msg}")]
    Chroot {
        /// The directory.
        path: PathBuf,
        /// Why.
        msg: String,
    },
}

/// Whom QEMU runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// The `-runas` argument: a user name, or `uid:gid` for the range.
    pub arg: String,
    /// The uid it runs under.
    pub uid: u32,
    /// Whether that uid is this device model's alone (`device_model_user` or the range; libxl
    /// then records it at `image/device-model-kill-uid`), not shared by every restricted QEMU.
    pub own_uid: bool,
    /// The gid it runs under.
    pub gid: u32,
    /// The user's name, when QEMU is given one (it then takes the user's groups too).
    pub name: Option<String>,
    /// The config key that chose the user.
    pub key: &'static str,
}

fn lookup_err(name: &str) -> impl FnOnce(String) -> RestrictError + '_ {
    move |msg| RestrictError::Lookup {
        name: name.to_owned(),
        msg,
    }
}

/// The user QEMU for `domid` runs as, by libxl's rules: `None` when it stays root.
pub fn resolve_user(
    domid: u32,
    privs: &DmPrivileges,
    db: &dyn UserDb,
) -> Result<Option<RunAs>, RestrictError> {
    let not_root = |key: &'static str, run: RunAs, name: &str| {
        if run.uid == 0 {
            Err(RestrictError::Root {
                key,
                name: name.to_owned(),
            })
        } else {
            Ok(Some(run))
        }
    };
    // A named user is used even without dm_restrict (libxl: "set -runas even if
    // dm_restrict isn't in use").
    if let Some(name) = &privs.user {
        let u = db
            .by_name(name)
            .map_err(lookup_err(name))?
            .ok_or_else(|| RestrictError::NoSuchUser(name.clone()))?;
        let run = RunAs {
            arg: name.clone(),
            uid: u.uid,
            own_uid: true,
            gid: u.gid,
            name: Some(name.clone()),
            key: "device_model_user",
        };
        return not_root("device_model_user", run, name);
    }
    if !privs.restrict {
        return Ok(None);
    }
    if let Some(base) = db
        .by_name(USER_RANGE_BASE)
        .map_err(lookup_err(USER_RANGE_BASE))?
    {
        let uid = base.uid.checked_add(domid).ok_or(RestrictError::UidRange {
            base: base.uid,
            domid,
        })?;
        if let Some(other) = db.by_uid(uid).map_err(lookup_err(&format!("uid {uid}")))? {
            return Err(RestrictError::UidTaken {
                uid,
                domid,
                name: other.name,
            });
        }
        let run = RunAs {
            arg: format!("{uid}:{}", base.gid),
            uid,
            own_uid: true,
            gid: base.gid,
            name: None,
            key: "dm_restrict",
        };
        return not_root("dm_restrict", run, USER_RANGE_BASE);
    }
    match db.by_name(USER_SHARED).map_err(lookup_err(USER_SHARED))? {
        Some(shared) => {
            let run = RunAs {
                arg: USER_SHARED.to_owned(),
                uid: shared.uid,
                own_uid: false,
                gid: shared.gid,
                name: Some(USER_SHARED.to_owned()),
                key: "dm_restrict",
            };
            not_root("dm_restrict", run, USER_SHARED)
        }
        None => Err(RestrictError::NoUser),
    }
}

/// Checks, before any domain exists, that the user [`resolve_user`] will want exists: the
/// domain id is not known yet, so the range's uid for it is checked at the start.
pub fn check_users(privs: &DmPrivileges, db: &dyn UserDb) -> Result<(), RestrictError> {
    // Domain 1 stands in for any: whether the users exist does not depend on it.
    match resolve_user(1, privs, db) {
        Err(RestrictError::UidTaken { .. } | RestrictError::UidRange { .. }) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// `/libxl/<domid>/dm-restrict` and `/libxl/<domid>/device-model-user`: where `create`
/// records a domain's [`DmPrivileges`] for a device model started later (`block-attach`),
/// as libxl keeps the domain's config. dom0's own subtree: the guest cannot change them.
fn record_paths(domid: u32) -> (String, String) {
    let base = crate::xenstore::libxl_path(domid);
    (
        format!("{base}/dm-restrict"),
        format!("{base}/device-model-user"),
    )
}

/// Records `privs` for `domid` (nothing when they are the default).
pub fn record(
    xs: &crate::xenstore::XsConnection,
    domid: u32,
    privs: &DmPrivileges,
) -> Result<(), crate::xenstore::XsError> {
    let (restrict, user) = record_paths(domid);
    if privs.restrict {
        xs.write(&restrict, "1")?;
    }
    if let Some(u) = &privs.user {
        xs.write(&user, u)?;
    }
    Ok(())
}

/// What [`record`] recorded for `domid` (the default when nothing was).
pub fn recorded(
    xs: &crate::xenstore::XsConnection,
    domid: u32,
) -> Result<DmPrivileges, crate::xenstore::XsError> {
    let (restrict, user) = record_paths(domid);
    Ok(DmPrivileges {
        restrict: xs.read_opt(&restrict)?.as_deref() == Some("1"),
        user: xs.read_opt(&user)?.filter(|u| !u.is_empty()),
    })
}

/// The environment variable that makes pvbuild start a restricted device model for a PV
/// guest's disks although [`check_servable`] knows it cannot serve them (to see it fail, or
/// with a QEMU that can).
pub const TRY_ENV: &str = "PVBUILD_DM_RESTRICT_TRY";

/// Refuses `dm_restrict` for a device model that is to serve a PV guest's disks, unless
/// [`TRY_ENV`] is `1` (`env` reads the environment). QEMU's `-xen-domid-restrict` calls
/// `xentoolcore_restrict_all`, which puts `/dev/null` under every xenstore handle; QEMU's
/// xen-bus finds, creates and connects its qdisk backends through xenstore watches after
/// that, so a restricted QEMU never takes a disk (shown on the harness's Xen for libxl's
/// and pvbuild's QEMU alike: `pvbuild-dm-restrict`).
pub fn check_servable(
    privs: &DmPrivileges,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), RestrictError> {
    if privs.restrict && env(TRY_ENV).as_deref() != Some("1") {
        return Err(RestrictError::Unservable);
    }
    Ok(())
}

/// Checks that `run`'s user can open each image of `images` (`(path, read_only)`) as QEMU
/// will once it dropped to that user: one child process per image takes the user's groups
/// (its supplementary groups when QEMU gets a name, as QEMU's `initgroups`; else only the
/// gid), gid and uid, and `access(2)`s the path (read, and write unless read-only) before it
/// execs `/bin/true`. A disk QEMU could not open is then refused at once, not after the
/// start timeout with QEMU's "Permission denied".
pub fn check_access(run: &RunAs, images: &[(PathBuf, bool)]) -> Result<(), RestrictError> {
    for (path, read_only) in images {
        check_one(run, path, *read_only, "give that user the image")?;
    }
    Ok(())
}

/// What QEMU 7.2's xen-bus opens for each PV device it creates, after it dropped to its
/// user: a xenstore connection (`xs_open`: xenstored's socket, else `/dev/xen/xenbus`),
/// `/dev/xen/gntdev`, and `/dev/xen/evtchn` when the guest connects. Checked as that user
/// like the images ([`check_access`]): a dom0 where they are root's alone (Debian's
/// default, mode 0600 and a socket `srwxr-xr-x`) is refused before QEMU starts.
pub fn check_devices(run: &RunAs) -> Result<(), RestrictError> {
    const XS_SOCKET: &str = "/var/run/xenstored/socket";
    const XS_DEV: &str = "/dev/xen/xenbus";
    let hint = "QEMU's PV backends open it after -runas; give that user access to \
                xenstored's socket or /dev/xen/xenbus, /dev/xen/gntdev and /dev/xen/evtchn";
    // xs_open tries the socket, then the device: one of them will do.
    let socket = Path::new(XS_SOCKET);
    if !(socket.exists() && check_one(run, socket, false, hint).is_ok()) {
        check_one(run, Path::new(XS_DEV), false, hint)?;
    }
    for dev in ["/dev/xen/gntdev", "/dev/xen/evtchn"] {
        check_one(run, Path::new(dev), false, hint)?;
    }
    Ok(())
}

/// [`check_access`] for one path.
fn check_one(
    run: &RunAs,
    path: &Path,
    read_only: bool,
    hint: &'static str,
) -> Result<(), RestrictError> {
    use nix::unistd::{access, setgid, setgroups, setuid, AccessFlags, Gid, Uid};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let gid = Gid::from_raw(run.gid);
    let groups: Vec<Gid> = match &run.name {
        Some(n) => std::ffi::CString::new(n.as_bytes())
            .ok()
            .and_then(|c| nix::unistd::getgrouplist(&c, gid).ok())
            .unwrap_or_else(|| vec![gid]),
        None => vec![gid],
    };
    let uid = Uid::from_raw(run.uid);
    {
        let (flags, mode) = if read_only {
            (AccessFlags::R_OK, "read-only")
        } else {
            (AccessFlags::R_OK | AccessFlags::W_OK, "read-write")
        };
        let err = |msg: String| RestrictError::NoAccess {
            key: run.key,
            who: format!("{} (uid {})", run.arg, run.uid),
            path: path.to_path_buf(),
            mode,
            msg,
            hint,
        };
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| err("a NUL in the path".into()))?;
        let groups = groups.clone();
        let mut cmd = std::process::Command::new("/bin/true");
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec; it makes only
        // async-signal-safe system calls (setgroups, setgid, setuid, access) on values made
        // before the fork, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                setgroups(&groups)?;
                setgid(gid)?;
                setuid(uid)?;
                access(c.as_c_str(), flags)?;
                Ok(())
            });
        }
        match cmd.status() {
            Ok(st) if st.success() => {}
            Ok(st) => return Err(err(format!("the check exited {st}"))),
            Err(e) => return Err(err(e.to_string())),
        }
    }
    Ok(())
}

/// How QEMU is restricted on its command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restriction {
    /// `-xen-domid-restrict -chroot DIR` (dm_restrict).
    pub chroot: Option<PathBuf>,
    /// `-runas ARG`.
    pub runas: Option<String>,
}

/// `/var/run/xen/qemu-root-<domid>`.
pub fn chroot_dir(domid: u32) -> PathBuf {
    Path::new(RUN_DIR).join(format!("qemu-root-{domid}"))
}

/// Makes the empty chroot directory for `domid` afresh, as libxl: an old one is removed
/// first (it can only be empty: QEMU ran in it unprivileged, and it is root's, mode 0000;
/// anything else in it is an error), then made with mode 0000.
pub fn make_chroot(domid: u32) -> Result<PathBuf, RestrictError> {
    let path = chroot_dir(domid);
    let err = |e: std::io::Error| RestrictError::Chroot {
        path: path.clone(),
        msg: e.to_string(),
    };
    remove_chroot_at(&path).map_err(err)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o000)
        .create(&path)
        .map_err(err)?;
    Ok(path)
}

/// Removes `path` if it is there (an empty directory: `rmdir`, never recursive).
pub fn remove_chroot_at(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes the chroot directory of `domid`'s device model, if there is one.
pub fn remove_chroot(domid: u32) -> std::io::Result<()> {
    remove_chroot_at(&chroot_dir(domid))
}

/// The rlimits libxl sets before it execs a restricted QEMU (`libxl_linux.c`), soft and hard:
/// file size 256 KiB ("big enough for log files, not big enough for a DoS"), and no core
/// dumps, POSIX message queues, file locks or locked memory.
pub const RLIMITS: &[(nix::sys::resource::Resource, u64)] = &[
    (nix::sys::resource::Resource::RLIMIT_FSIZE, 256 * 1024),
    (nix::sys::resource::Resource::RLIMIT_CORE, 0),
    (nix::sys::resource::Resource::RLIMIT_MSGQUEUE, 0),
    (nix::sys::resource::Resource::RLIMIT_LOCKS, 0),
    (nix::sys::resource::Resource::RLIMIT_MEMLOCK, 0),
];

/// What libxl's `libxl__local_dm_preexec_restrict` does in the child before the exec: new
/// mount and IPC namespaces (QEMU uses neither), then [`RLIMITS`]. Only async-signal-safe
/// system calls: it runs between fork and exec.
pub fn preexec(rlimits: &[(nix::sys::resource::Resource, u64)]) -> std::io::Result<()> {
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC).map_err(std::io::Error::from)?;
    for &(res, limit) in rlimits {
        nix::sys::resource::setrlimit(res, limit, limit).map_err(std::io::Error::from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    /// A user database from a list.
    struct Users(Vec<(&'static str, u32, u32)>);
    impl UserDb for Users {
        fn by_name(&self, name: &str) -> Result<Option<UserEntry>, String> {
            Ok(self
                .0
                .iter()
                .find(|u| u.0 == name)
                .map(|&(n, uid, gid)| UserEntry {
                    name: n.into(),
                    uid,
                    gid,
                }))
        }
        fn by_uid(&self, uid: u32) -> Result<Option<UserEntry>, String> {
            Ok(self
                .0
                .iter()
                .find(|u| u.1 == uid)
                .map(|&(n, uid, gid)| UserEntry {
                    name: n.into(),
                    uid,
                    gid,
                }))
        }
    }
    struct Broken;
    impl UserDb for Broken {
        fn by_name(&self, _: &str) -> Result<Option<UserEntry>, String> {
            Err("I/O error".into())
        }
        fn by_uid(&self, _: u32) -> Result<Option<UserEntry>, String> {
            Err("I/O error".into())
        }
    }

    fn restrict() -> DmPrivileges {
        DmPrivileges {
            restrict: true,
            user: None,
        }
    }

    #[test]
    fn unrestricted_stays_root() {
        let db = Users(vec![("xen-qemuuser-shared", 120, 130)]);
        assert_eq!(
            resolve_user(3, &DmPrivileges::default(), &db).unwrap(),
            None
        );
    }

    #[test]
    fn the_range_comes_first_with_base_plus_domid_and_the_bases_gid() {
        let db = Users(vec![
            ("xen-qemuuser-shared", 120, 130),
            ("xen-qemuuser-range-base", 131072, 131072),
        ]);
        let r = resolve_user(5, &restrict(), &db).unwrap().unwrap();
        assert_eq!(r.arg, "131077:131072");
        assert_eq!(r.uid, 131077);
        assert!(r.own_uid);
    }

    #[test]
    fn a_range_uid_that_is_someone_elses_is_refused() {
        let db = Users(vec![
            ("xen-qemuuser-range-base", 131072, 131072),
            ("mallory", 131077, 100),
        ]);
        let e = resolve_user(5, &restrict(), &db).unwrap_err().to_string();
        assert!(e.contains("uid 131077") && e.contains("mallory"), "{e}");
    }

    #[test]
    fn the_shared_user_is_the_fallback_by_name() {
        let db = Users(vec![("xen-qemuuser-shared", 120, 130)]);
        let r = resolve_user(5, &restrict(), &db).unwrap().unwrap();
        assert_eq!(r.arg, "xen-qemuuser-shared");
        assert_eq!(r.uid, 120);
        assert!(!r.own_uid);
    }

    #[test]
    fn no_user_at_all_is_an_error_naming_dm_restrict() {
        let e = resolve_user(5, &restrict(), &Users(vec![]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("dm_restrict:"), "{e}");
        assert!(e.contains("xen-qemuuser-shared"), "{e}");
    }

    #[test]
    fn device_model_user_wins_with_or_without_dm_restrict() {
        let db = Users(vec![
            ("xen-qemuuser-range-base", 131072, 131072),
            ("qemu-g", 2000, 2000),
        ]);
        for restrict in [false, true] {
            let p = DmPrivileges {
                restrict,
                user: Some("qemu-g".into()),
            };
            let r = resolve_user(5, &p, &db).unwrap().unwrap();
            assert_eq!((r.arg.as_str(), r.uid, r.own_uid), ("qemu-g", 2000, true));
        }
    }

    #[test]
    fn a_missing_device_model_user_names_the_key() {
        let p = DmPrivileges {
            restrict: true,
            user: Some("nobody-here".into()),
        };
        let e = resolve_user(5, &p, &Users(vec![("xen-qemuuser-shared", 120, 130)]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "device_model_user: no user \"nobody-here\" on this host");
    }

    #[test]
    fn root_is_refused_whichever_way_it_was_found() {
        let p = DmPrivileges {
            restrict: false,
            user: Some("toor".into()),
        };
        let e = resolve_user(1, &p, &Users(vec![("toor", 0, 0)])).unwrap_err();
        assert!(e.to_string().starts_with("device_model_user:"), "{e}");
        let e =
            resolve_user(1, &restrict(), &Users(vec![("xen-qemuuser-shared", 0, 0)])).unwrap_err();
        assert!(e.to_string().contains("root"), "{e}");
        // Range base 0 + domid 0 is uid 0: refused too (as the base's own uid).
        assert!(resolve_user(
            0,
            &restrict(),
            &Users(vec![("xen-qemuuser-range-base", 0, 0)]),
        )
        .is_err());
    }

    #[test]
    fn the_range_does_not_overflow() {
        let db = Users(vec![("xen-qemuuser-range-base", u32::MAX - 1, 1)]);
        assert!(matches!(
            resolve_user(5, &restrict(), &db),
            Err(RestrictError::UidRange { .. })
        ));
    }

    #[test]
    fn a_failing_user_database_is_an_error_not_root() {
        assert!(matches!(
            resolve_user(5, &restrict(), &Broken),
            Err(RestrictError::Lookup { .. })
        ));
    }

    #[test]
    fn the_privileges_are_recorded_for_a_later_device_model() {
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        assert_eq!(recorded(&xs, 4).unwrap(), DmPrivileges::default());
        record(&xs, 4, &DmPrivileges::default()).unwrap();
        assert_eq!(recorded(&xs, 4).unwrap(), DmPrivileges::default());
        let p = DmPrivileges {
            restrict: true,
            user: Some("qemu-g".into()),
        };
        record(&xs, 4, &p).unwrap();
        assert_eq!(recorded(&xs, 4).unwrap(), p);
        assert_eq!(xs.read("/libxl/4/dm-restrict").unwrap(), "1");
        assert_eq!(recorded(&xs, 5).unwrap(), DmPrivileges::default());
    }

    #[test]
    fn dm_restrict_for_disks_is_refused_unless_tried() {
        let none = |_: &str| None;
        let tried = |k: &str| (k == TRY_ENV).then(|| "1".to_string());
        check_servable(&DmPrivileges::default(), none).unwrap();
        let user = DmPrivileges {
            restrict: false,
            user: Some("qemu".into()),
        };
        check_servable(&user, none).unwrap();
        let e = check_servable(&restrict(), none).unwrap_err().to_string();
        assert!(e.starts_with("dm_restrict: ") && e.contains("phy:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        check_servable(&restrict(), tried).unwrap();
        let other = |k: &str| (k == TRY_ENV).then(|| "yes".to_string());
        assert!(check_servable(&restrict(), other).is_err());
    }

    #[test]
    fn access_is_checked_as_the_user() {
        // Needs root to change user; as another user, the check of our own file passes.
        let dir = std::env::temp_dir().join(format!("pvbuild-access-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("disk.img");
        std::fs::write(&img, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let run = |uid: u32| RunAs {
            arg: format!("{uid}:{uid}"),
            uid,
            own_uid: true,
            gid: uid,
            name: None,
            key: "device_model_user",
        };
        // The owner may read and write.
        check_access(&run(me), &[(img.clone(), false)]).unwrap();
        assert!(
            me == 0 || std::env::var("CI").as_deref() != Ok("true"),
            "changing user needs root"
        );
        if me == 0 {
            // Someone else may read a 0644 file, not write it.
            check_access(&run(65534), &[(img.clone(), true)]).unwrap();
            let e = check_access(&run(65534), &[(img.clone(), false)])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("device_model_user: the device model's user 65534:65534 (uid 65534) cannot open")
                    && e.contains("read-write"),
                "{e}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_xen_devices_are_checked_as_the_user() {
        let run = RunAs {
            arg: "65534:65534".into(),
            uid: 65534,
            own_uid: true,
            gid: 65534,
            name: None,
            key: "device_model_user",
        };
        match check_devices(&run) {
            // No Xen here, or Xen's devices root's alone: refused, naming the first one.
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.starts_with("device_model_user: the device model's user 65534:65534 (uid 65534) cannot open /dev/xen/"),
                    "{e}"
                );
                assert!(e.contains("give that user access"), "{e}");
            }
            // A dom0 that gives everyone its devices.
            Ok(()) => assert!(Path::new("/dev/xen/evtchn").exists()),
        }
    }

    #[test]
    fn the_chroot_is_libxls_path() {
        assert_eq!(chroot_dir(12), PathBuf::from("/var/run/xen/qemu-root-12"));
    }

    #[test]
    fn removing_a_missing_chroot_is_fine_and_a_non_empty_one_is_not_emptied() {
        let dir = std::env::temp_dir().join(format!("pvbuild-chroot-test-{}", std::process::id()));
        remove_chroot_at(&dir).unwrap();
        std::fs::create_dir_all(dir.join("x")).unwrap();
        assert!(remove_chroot_at(&dir).is_err());
        assert!(dir.join("x").exists());
        std::fs::remove_dir(dir.join("x")).unwrap();
        remove_chroot_at(&dir).unwrap();
        assert!(!dir.exists());
    }
}

//! libxl's per-domain userdata: the files under `/var/lib/xen` where libxl keeps what it
//! knows of a domain, above all its configuration (`libxl-json`), which `xl list -l`,
//! `xl block-attach`, `xl network-attach` and xl's monitor (when it restarts a guest) read
//! and update. pvbuild writes it for the domains it makes, in libxl's format
//! ([`crate::config::libxl_json`]), keeps it in step with `block-attach`/`network-attach`, reads it
//! back when its monitor restarts a guest, and removes it on destroy.
//!
//! The files, as libxl names them (`libxl__userdata_path`, libxl_dom.c):
//! `/var/lib/xen/userdata-<wh>.<domid>.<uuid>.<userid>`, `wh` being `d` for the data,
//! `n` for a new copy being written (renamed over `d`), `l` for the lock file. The data ends
//! in a NUL byte (libxl stores `strlen + 1`). Writers take libxl's lock
//! (`libxl__lock_domain_userdata`, libxl_internal.c): `flock(LOCK_EX)` on
//! `userdata-l.<domid>.<uuid>.domain-userdata-lock`, retried until the file locked is the
//! one at the path, and unlinked before it is closed; so pvbuild and xl never write over
//! each other's changes.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::xenstore::Uuid;

/// Where libxl keeps userdata (`XEN_LIB_DIR`; Debian's xen-utils: `/var/lib/xen`).
pub const XEN_LIB_DIR: &str = "/var/lib/xen";

/// The userdata id of the domain configuration.
pub const LIBXL_JSON: &str = "libxl-json";

/// The userdata id of libxl's lock.
const LOCK_ID: &str = "domain-userdata-lock";

/// A userdata step that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct UserdataError {
    /// What was being done.
    pub step: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// One domain's userdata files in a directory.
#[derive(Debug, Clone)]
pub struct Userdata {
    dir: PathBuf,
    domid: u32,
    uuid: Uuid,
}

impl Userdata {
    /// Domain `domid` (of UUID `uuid`)'s userdata in libxl's directory.
    pub fn new(domid: u32, uuid: Uuid) -> Self {
        Self::in_dir(Path::new(XEN_LIB_DIR), domid, uuid)
    }

    /// The same in another directory (tests).
    pub fn in_dir(dir: &Path, domid: u32, uuid: Uuid) -> Self {
        Self {
            dir: dir.to_owned(),
            domid,
            uuid,
        }
    }

    /// `libxl__userdata_path`.
    pub fn path(&self, wh: char, userid: &str) -> PathBuf {
        self.dir.join(format!(
            "userdata-{wh}.{}.{}.{userid}",
            self.domid,
            self.uuid.hyphenated()
        ))
    }

    /// Takes libxl's userdata lock of the domain (waiting while xl or another pvbuild holds
    /// it); released when the guard drops.
    pub fn lock(&self) -> Result<UserdataLock, UserdataError> {
        let path = self.path('l', LOCK_ID);
        let err = |step, source| UserdataError {
            step,
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&self.dir)
            .map_err(|e| err("creating the directory of", e))?;
        loop {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o666)
                .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| err("opening", e))?;
            let held = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, e)| err("locking", e.into()))?;
            let ours = held.metadata().map_err(|e| err("reading", e))?;
            // The holder before us unlinks the file before it unlocks: the file we locked
            // may be gone, or replaced by a newer one. Only the one at the path counts.
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.dev() == ours.dev() && m.ino() == ours.ino() => {
                    return Ok(UserdataLock { held, path });
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err("checking", e)),
            }
        }
    }

    /// The stored configuration (without libxl's trailing NUL), if any.
    pub fn retrieve(&self, userid: &str) -> Result<Option<String>, UserdataError> {
        let path = self.path('d', userid);
        match std::fs::read(&path) {
            Ok(mut bytes) => {
                if bytes.last() == Some(&0) {
                    bytes.pop();
                }
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|e| UserdataError {
                        step: "reading",
                        path,
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(UserdataError {
                step: "reading",
                path,
                source: e,
            }),
        }
    }

    /// `libxl__userdata_store`: `data` and a NUL into the `n` file (mode 0600), renamed over
    /// the `d` file. The caller holds [`Self::lock`].
    pub fn store(
        &self,
        _lock: &UserdataLock,
        userid: &str,
        data: &str,
    ) -> Result<(), UserdataError> {
        let new = self.path('n', userid);
        let err = |step, source| UserdataError {
            step,
            path: new.clone(),
            source,
        };
        let mut f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
            .open(&new)
            .map_err(|e| err("creating", e))?;
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.extend_from_slice(data.as_bytes());
        bytes.push(0);
        f.write_all(&bytes).map_err(|e| err("writing", e))?;
        drop(f);
        std::fs::rename(&new, self.path('d', userid)).map_err(|e| {
            let _ = std::fs::remove_file(&new);
            err("renaming", e)
        })
    }
}

/// Domain `domid`'s stored configuration in `dir`, changed by `change` under libxl's lock,
/// as libxl changes it when a device is added. `Ok(false)` when there is none (a domain
/// made by an older pvbuild): nothing is written then.
pub fn update_config_in(
    dir: &Path,
    domid: u32,
    uuid: Uuid,
    change: impl FnOnce(&str) -> Result<String, String>,
) -> Result<bool, UserdataError> {
    let u = Userdata::in_dir(dir, domid, uuid);
    let lock = u.lock()?;
    let Some(old) = u.retrieve(LIBXL_JSON)? else {
        return Ok(false);
    };
    let new = change(&old).map_err(|m| UserdataError {
        step: "updating",
        path: u.path('d', LIBXL_JSON),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, m),
    })?;
    u.store(&lock, LIBXL_JSON, &new)?;
    Ok(true)
}

/// The UUID of domain `domid` from its xenstore `vm` node (libxl's and pvbuild's domains
/// both have it), for naming its userdata.
pub fn domain_uuid(xs: &crate::xenstore::XsConnection, domid: u32) -> Option<Uuid> {
    xs.read_opt(&format!("{}/vm", crate::xenstore::dom_path(domid)))
        .ok()
        .flatten()
        .and_then(|v| crate::xenstore::uuid_of_vm_path(&v))
}

/// libxl's userdata lock, held.
#[derive(Debug)]
pub struct UserdataLock {
    held: Flock<File>,
    path: PathBuf,
}

impl Drop for UserdataLock {
    fn drop(&mut self) {
        // As libxl__unlock_file: unlinked first, so that no one locks a file about to be
        // released and thinks it holds the lock.
        let _ = std::fs::remove_file(&self.path);
        let _ = &self.held;
    }
}

/// `libxl__userdata_destroyall`: removes every userdata file of domain `domid` in `dir` (its
/// data, whoever wrote it, and any half-written copy), but not a lock file, which its holder
/// removes. Matched by domain id alone, as the domain (and so its UUID) may be gone already.
/// Returns what could not be removed.
pub fn remove_all_in(dir: &Path, domid: u32) -> Vec<UserdataError> {
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return errors;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_domain_file(name, domid) || name.ends_with(LOCK_ID) {
            continue;
        }
        let path = e.path();
        if let Err(source) = std::fs::remove_file(&path) {
            if source.kind() != std::io::ErrorKind::NotFound {
                errors.push(UserdataError {
                    step: "removing",
                    path,
                    source,
                });
            }
        }
    }
    errors
}

/// [`remove_all_in`] libxl's directory.
pub fn remove_all(domid: u32) -> Vec<UserdataError> {
    remove_all_in(Path::new(XEN_LIB_DIR), domid)
}

/// Whether `name` is a userdata file of domain `domid`: `userdata-?.<domid>.<uuid>.<id>`.
fn is_domain_file(name: &str, domid: u32) -> bool {
    let Some(rest) = name.strip_prefix("userdata-") else {
        return false;
    };
    let mut parts = rest.splitn(4, '.');
    let (Some(wh), Some(id), Some(uuid), Some(_userid)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    wh.len() == 1 && id.parse::<u32>().ok() == Some(domid) && Uuid::parse_str(uuid).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "pvbuild-userdata-test.{}.{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const U: &str = "5ad2b2b0-6b6c-4c2a-9d8e-0a1b2c3d4e5f";

    #[test]
    fn names_and_stores_as_libxl() {
        let d = dir("store");
        let u = Userdata::in_dir(&d, 7, Uuid::parse_str(U).unwrap());
        assert_eq!(
            u.path('d', LIBXL_JSON),
            d.join(format!("userdata-d.7.{U}.libxl-json"))
        );
        assert_eq!(u.retrieve(LIBXL_JSON).unwrap(), None);
        {
            let l = u.lock().unwrap();
            assert!(d
                .join(format!("userdata-l.7.{U}.domain-userdata-lock"))
                .exists());
            u.store(&l, LIBXL_JSON, "{}").unwrap();
        }
        // Unlinked on release, as libxl's.
        assert!(!d
            .join(format!("userdata-l.7.{U}.domain-userdata-lock"))
            .exists());
        let raw = std::fs::read(u.path('d', LIBXL_JSON)).unwrap();
        assert_eq!(raw, b"{}\0");
        assert!(!u.path('n', LIBXL_JSON).exists());
        assert_eq!(u.retrieve(LIBXL_JSON).unwrap().as_deref(), Some("{}"));
        let mode = std::fs::metadata(u.path('d', LIBXL_JSON)).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn remove_all_takes_only_that_domains_files() {
        let d = dir("remove");
        for n in [
            format!("userdata-d.7.{U}.libxl-json"),
            format!("userdata-d.7.{U}.xl"),
            format!("userdata-n.7.{U}.libxl-json"),
            format!("userdata-l.7.{U}.domain-userdata-lock"),
            format!("userdata-d.17.{U}.libxl-json"),
            format!("userdata-d.7x.{U}.libxl-json"),
            "domid-history".to_owned(),
        ] {
            std::fs::write(d.join(n), b"x").unwrap();
        }
        assert!(remove_all_in(&d, 7).is_empty());
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "domid-history".to_owned(),
                format!("userdata-d.17.{U}.libxl-json"),
                format!("userdata-d.7x.{U}.libxl-json"),
                format!("userdata-l.7.{U}.domain-userdata-lock"),
            ]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_lock_excludes_flock1() {
        // Another process (flock(1), standing in for libxl) holding the lock file keeps us
        // waiting; we get it once it lets go.
        let d = dir("lock");
        let u = Userdata::in_dir(&d, 3, Uuid::parse_str(U).unwrap());
        let path = u.path('l', LOCK_ID);
        std::fs::write(&path, b"").unwrap();
        let mut child = std::process::Command::new("flock")
            .arg(&path)
            .args(["sleep", "1"])
            .spawn()
            .expect("flock(1) from util-linux");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let t = std::time::Instant::now();
        let l = u.lock().unwrap();
        assert!(t.elapsed() >= std::time::Duration::from_millis(300));
        drop(l);
        child.wait().unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }
}

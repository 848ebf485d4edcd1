//! One device change at a time per domain: `block-attach`, `block-detach`,
//! `network-attach` and `network-detach` of one domain take this lock, so that two attaches
//! to a domain without a device model cannot both start one, and two changes cannot pick
//! the same device number.
//!
//! It is an `flock(2)` on `/run/pvbuild/lock/domain-N`: the kernel releases it when its
//! holder exits however it exits (SIGKILL included), so a crashed holder never leaves it
//! stuck; the file itself means nothing and may stay.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the lock files live (tmpfs: gone at reboot, as the domains are).
pub const LOCK_DIR: &str = "/run/pvbuild/lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[error("locking domain {domid} ({path}): {source}")]
pub struct LockError {
    /// The domain.
    pub domid: u32,
    /// The lock file.
    pub path: PathBuf,
    /// What failed.
    pub source: std::io::Error,
}

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DomainLock {
    _lock: Flock<File>,
}

impl DomainLock {
    /// Takes domain `domid`'s lock in `dir`, waiting while another process holds it.
    pub fn acquire_in(dir: &Path, domid: u32) -> Result<Self, LockError> {
        Self::take(dir, domid, FlockArg::LockExclusive)
    }

    /// Takes domain `domid`'s lock, waiting while another process holds it.
    pub fn acquire(domid: u32) -> Result<Self, LockError> {
        Self::acquire_in(Path::new(LOCK_DIR), domid)
    }

    /// Takes the lock if it is free; `Ok(None)` when another holds it.
    pub fn try_acquire_in(dir: &Path, domid: u32) -> Result<Option<Self>, LockError> {
        match Self::take(dir, domid, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.source.raw_os_error() == Some(nix::libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn take(dir: &Path, domid: u32, how: FlockArg) -> Result<Self, LockError> {
        let path = dir.join(format!("domain-{domid}"));
        let err = |source| LockError {
            domid,
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(err)?;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
            .open(&path)
            .map_err(err)?;
        let lock = Flock::lock(file, how).map_err(|(_, e)| err(e.into()))?;
        Ok(Self { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("pvbuild-lock-test.{}.{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn one_holder_per_domain() {
        let d = dir("one");
        let a = DomainLock::acquire_in(&d, 7).unwrap();
        assert!(DomainLock::try_acquire_in(&d, 7).unwrap().is_none());
        // Another domain's lock is another lock.
        assert!(DomainLock::try_acquire_in(&d, 8).unwrap().is_some());
        drop(a);
        assert!(DomainLock::try_acquire_in(&d, 7).unwrap().is_some());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_holder_killed_by_sigkill_leaves_it_free() {
        let d = dir("killed");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("domain-9");
        // A process that takes the lock (flock(1), which keeps it to itself with -o) and
        // would hold it for a long time, in a process group of its own.
        let mut child = std::process::Command::new("flock")
            .arg("-o")
            .arg(&path)
            .args(["sleep", "1000"])
            .process_group(0)
            .spawn()
            .expect("flock(1) from util-linux");
        let held = || DomainLock::try_acquire_in(&d, 9).unwrap().is_none();
        let t = std::time::Instant::now();
        while !held() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "flock(1) never took it"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        let t = std::time::Instant::now();
        while held() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "still held"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}

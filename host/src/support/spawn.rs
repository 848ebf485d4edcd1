//! Starting a detached helper with `posix_spawn(3)` (issue 17): the background monitor that
//! `create` leaves behind.
//!
//! `std::process::Command` with a `pre_exec` hook (the `setsid` a detached child needs) must
//! `fork(2)`, which copies this process's page tables: in a PV dom0 every page-table page is
//! validated by Xen, and under emulation that fork and the child's exec cost about half a
//! second of a small guest's create (docs/timings.md). glibc's `posix_spawn` clones without
//! copying the address space (`CLONE_VM | CLONE_VFORK`) and makes the new session itself
//! (`POSIX_SPAWN_SETSID`, glibc 2.26), so the child is detached from the first instruction it
//! runs, as the forked one was.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::libc;

/// Why a helper could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// An argument or environment entry holds a NUL byte.
    Nul(String),
    /// A `posix_spawn*` call failed.
    Call { call: &'static str, errno: Errno },
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Nul(s) => write!(f, "{s:?} holds a NUL byte"),
            SpawnError::Call { call, errno } => write!(f, "{call}: {}", errno.desc()),
        }
    }
}

impl std::error::Error for SpawnError {}

fn cstring(s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Nul(s.to_string_lossy().into_owned()))
}

fn check(call: &'static str, rc: libc::c_int) -> Result<(), SpawnError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(SpawnError::Call {
            call,
            errno: Errno::from_raw(rc),
        })
    }
}

/// `posix_spawn_file_actions_t`, destroyed when dropped.
struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> Result<Box<Self>, SpawnError> {
        // SAFETY: all-zero bytes are a valid placeholder for this plain C struct; `init`
        // below initialises it before any other use.
        let mut fa = Box::new(FileActions(unsafe { std::mem::zeroed() }));
        // SAFETY: `fa.0` is writable memory of the right type, not yet initialised.
        check("posix_spawn_file_actions_init", unsafe {
            libc::posix_spawn_file_actions_init(&mut fa.0)
        })?;
        Ok(fa)
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised by `new` (the only constructor), destroyed once, here.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// `posix_spawnattr_t`, destroyed when dropped.
struct Attr(libc::posix_spawnattr_t);

impl Attr {
    fn new() -> Result<Box<Self>, SpawnError> {
        // SAFETY: as for `FileActions::new`: a placeholder that `init` initialises.
        let mut a = Box::new(Attr(unsafe { std::mem::zeroed() }));
        // SAFETY: `a.0` is writable memory of the right type, not yet initialised.
        check("posix_spawnattr_init", unsafe {
            libc::posix_spawnattr_init(&mut a.0)
        })?;
        Ok(a)
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialised by `new` (the only constructor), destroyed once, here.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

/// Starts `program` with `args` (after argv\[0\], which is `program`) and this process's
/// environment, in a new session (no controlling terminal, its own process group), with no
/// signal blocked, SIGPIPE at its default (as `std::process::Command` leaves it), stdin on
/// `/dev/null` and stdout/stderr on `out`/`err`. Other descriptors follow their close-on-exec
/// flags (Rust opens every file with it). Not waited for. Returns the child's pid.
pub fn spawn_detached<I, S>(
    program: &Path,
    args: I,
    out: &File,
    err: &File,
) -> Result<u32, SpawnError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    spawn_detached_in(program, args, out, err, None)
}

/// [`spawn_detached`], the child starting in the directory `cwd` when given (else this
/// process's): what a thread needs that must not depend on the process's current directory.
pub fn spawn_detached_in<I, S>(
    program: &Path,
    args: I,
    out: &File,
    err: &File,
    cwd: Option<BorrowedFd<'_>>,
) -> Result<u32, SpawnError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let path = cstring(program.as_os_str())?;
    let mut argv_owned = vec![path.clone()];
    for a in args {
        argv_owned.push(cstring(a.as_ref())?);
    }
    let mut envp_owned = Vec::new();
    for (k, v) in std::env::vars_os() {
        let mut kv = k;
        kv.push("=");
        kv.push(v);
        envp_owned.push(cstring(&kv)?);
    }
    let mut argv: Vec<*mut libc::c_char> =
        argv_owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let mut envp: Vec<*mut libc::c_char> =
        envp_owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());

    let mut fa = FileActions::new()?;
    let devnull = c"/dev/null";
    // SAFETY: `fa` is initialised; the path is a NUL-terminated string that outlives the
    // spawn (glibc copies it anyway).
    check("posix_spawn_file_actions_addopen", unsafe {
        libc::posix_spawn_file_actions_addopen(&mut fa.0, 0, devnull.as_ptr(), libc::O_RDONLY, 0)
    })?;
    // SAFETY: `fa` is initialised; both descriptors are open for as long as `out` and `err`
    // are borrowed, which covers the spawn.
    check("posix_spawn_file_actions_adddup2", unsafe {
        libc::posix_spawn_file_actions_adddup2(&mut fa.0, out.as_raw_fd(), 1)
    })?;
    // SAFETY: as above.
    check("posix_spawn_file_actions_adddup2", unsafe {
        libc::posix_spawn_file_actions_adddup2(&mut fa.0, err.as_raw_fd(), 2)
    })?;

    if let Some(dir) = cwd {
        // SAFETY: `fa` is initialised; `dir` is an open descriptor borrowed for the whole
        // spawn.
        check("posix_spawn_file_actions_addfchdir_np", unsafe {
            libc::posix_spawn_file_actions_addfchdir_np(&mut fa.0, dir.as_raw_fd())
        })?;
    }

    let mut attr = Attr::new()?;
    // SAFETY: all-zero bytes are a valid `sigset_t`; `sigemptyset` initialises it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `empty` is a writable `sigset_t`.
    unsafe { libc::sigemptyset(&mut empty) };
    // SAFETY: as above.
    let mut pipe: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pipe` is a writable `sigset_t`; SIGPIPE is a valid signal number.
    unsafe {
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
    }
    // SAFETY: `attr` is initialised; the sets are initialised and only read.
    check("posix_spawnattr_setsigmask", unsafe {
        libc::posix_spawnattr_setsigmask(&mut attr.0, &empty)
    })?;
    // SAFETY: as above.
    check("posix_spawnattr_setsigdefault", unsafe {
        libc::posix_spawnattr_setsigdefault(&mut attr.0, &pipe)
    })?;
    // (libc gives POSIX_SPAWN_SETSID as a c_short and the others as c_int; all fit a short.)
    let flags = i32::from(libc::POSIX_SPAWN_SETSID)
        | libc::POSIX_SPAWN_SETSIGMASK
        | libc::POSIX_SPAWN_SETSIGDEF;
    let flags = libc::c_short::try_from(flags).map_err(|_| SpawnError::Call {
        call: "posix_spawnattr_setflags",
        errno: Errno::EINVAL,
    })?;
    // SAFETY: `attr` is initialised; the flags are the ones glibc defines.
    check("posix_spawnattr_setflags", unsafe {
        libc::posix_spawnattr_setflags(&mut attr.0, flags)
    })?;

    let mut pid: libc::pid_t = 0;
    // SAFETY: `path` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of
    // NUL-terminated strings, all owned by `argv_owned`/`envp_owned`, alive until after the
    // call; `fa` and `attr` are initialised; `pid` is writable.
    check("posix_spawn", unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &fa.0,
            &attr.0,
            argv.as_ptr(),
            envp.as_ptr(),
        )
    })?;
    u32::try_from(pid).map_err(|_| SpawnError::Call {
        call: "posix_spawn",
        errno: Errno::EINVAL,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use std::io::Read;

    /// Runs `program args` through [`spawn_detached`], reaps it, returns its pid and output.
    fn run(program: &str, args: &[&str]) -> (u32, String) {
        let dir = std::env::temp_dir().join(format!("pvbuild-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join(format!("out-{}", args.join("_").replace('/', "_")));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let pid = spawn_detached(Path::new(program), args, &out, &err).unwrap();
        // It is our child until it exits: reap it.
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None).unwrap();
        assert!(
            matches!(st, nix::sys::wait::WaitStatus::Exited(_, 0)),
            "{st:?}"
        );
        let mut text = String::new();
        File::open(&log).unwrap().read_to_string(&mut text).unwrap();
        let _ = std::fs::remove_file(&log);
        (pid, text)
    }

    /// The child leads a session of its own (session id = its pid, in /proc's `stat` and
    /// `NSsid`), with no signal blocked, its stdin on /dev/null and its output where it was
    /// sent.
    #[test]
    fn the_child_leads_a_new_session() {
        let (pid, text) = run("/bin/cat", &["/proc/self/stat", "/proc/self/status"]);
        let stat = text.lines().next().unwrap();
        let fields: Vec<&str> = stat.split(' ').collect();
        assert_eq!(fields[0], pid.to_string(), "{stat}");
        assert_eq!(fields[1], "(cat)", "{stat}");
        assert_eq!(fields[5], pid.to_string(), "session: {stat}");
        let status = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
                .unwrap_or_else(|| panic!("no {key} in {text}"))
                .to_string()
        };
        assert_eq!(status("NSsid:"), pid.to_string(), "{text}");
        assert_eq!(status("SigBlk:"), "0000000000000000", "{text}");
        let (_, stdin) = run("/bin/readlink", &["/proc/self/fd/0"]);
        assert_eq!(stdin, "/dev/null\n");
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let f = File::create("/dev/null").unwrap();
        let e = spawn_detached(Path::new("/nonexistent/pvbuild"), ["x"], &f, &f).unwrap_err();
        assert!(e.to_string().starts_with("posix_spawn: "), "{e}");
    }
}

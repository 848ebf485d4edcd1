//! `pvbuild serve`: the listening socket, who may use it, and one request's run with the
//! client's descriptors in place of the server's.
//!
//! Requests run one at a time, in this process: the command's code is the one a `pvbuild`
//! process runs, with the client's standard input, output and error dup'ed onto 0, 1 and 2
//! and the client's working directory as the current one; both are put back once the reply
//! has gone out and what the request deferred until then (a create's monitor) has started. Between requests the server reaps the children a request left running (device
//! models, monitors), which a `pvbuild` process would have left to init.

use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use nix::sys::time::TimeVal;

use super::wire;

/// How long a connection may stay silent between two requests before the server drops it
/// (a batch client sends its next request as soon as the reply comes).
pub const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Why the server could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket's directory is not one only its owner can write to.
    #[error(
        "{path}: {why}: the socket's directory must be the server user's, written by no one else"
    )]
    UnsafeDir { path: PathBuf, why: String },
    /// Something is already at the socket's path.
    #[error("{path}: {why}")]
    Occupied { path: PathBuf, why: String },
    /// A system call on the way failed.
    #[error("{step} {path}: {errno}")]
    Sys {
        step: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    /// Creating the socket's directory failed.
    #[error("creating {path}: {err}")]
    Dir { path: PathBuf, err: std::io::Error },
}

/// The server's listening socket. Dropping it removes the socket's path.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    uid: u32,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Checks `dir` as the socket's directory: a directory of `uid`, not a link, that no one else
/// may write (else another user could swap the socket for one of their own).
fn check_dir(dir: &Path, uid: u32) -> Result<(), ServeError> {
    let m = fs::symlink_metadata(dir).map_err(|e| ServeError::Dir {
        path: dir.to_path_buf(),
        err: e,
    })?;
    match crate::support::privdir::why_not_private(&m, uid) {
        Some(why) => Err(ServeError::UnsafeDir {
            path: dir.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

fn sys<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> ServeError + 'a {
    move |errno| ServeError::Sys {
        step,
        path: path.to_path_buf(),
        errno,
    }
}

/// A `SOCK_SEQPACKET` Unix socket, close-on-exec.
pub(crate) fn seqpacket(path: &Path) -> Result<OwnedFd, ServeError> {
    socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(sys("socket for", path))
}

impl Listener {
    /// Listens at `path`, creating its directory (mode 0700) when missing. A socket left there
    /// by a server that is gone is replaced; one a server still answers at is not.
    pub fn bind(path: &Path) -> Result<Self, ServeError> {
        let uid = nix::unistd::geteuid().as_raw();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| ServeError::Dir {
                    path: dir.clone(),
                    err: e,
                })?;
        }
        check_dir(&dir, uid)?;
        let addr = UnixAddr::new(path).map_err(sys("the address", path))?;
        if let Ok(m) = fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(ServeError::Occupied {
                    path: path.to_path_buf(),
                    why: "exists and is not a socket".to_owned(),
                });
            }
            let probe = seqpacket(path)?;
            match socket::connect(probe.as_raw_fd(), &addr) {
                Ok(()) => {
                    return Err(ServeError::Occupied {
                        path: path.to_path_buf(),
                        why: "another pvbuild serve answers there".to_owned(),
                    })
                }
                // Nobody listens: a stale socket of a server that is gone.
                Err(Errno::ECONNREFUSED) => {
                    fs::remove_file(path).map_err(|e| ServeError::Occupied {
                        path: path.to_path_buf(),
                        why: format!("removing the stale socket: {e}"),
                    })?
                }
                Err(e) => return Err(sys("probing", path)(e)),
            }
        }
        let fd = seqpacket(path)?;
        socket::bind(fd.as_raw_fd(), &addr).map_err(sys("binding", path))?;
        let listener = Listener {
            fd,
            path: path.to_path_buf(),
            uid,
        };
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| {
            ServeError::Dir {
                path: path.to_path_buf(),
                err: e,
            }
        })?;
        let backlog = Backlog::new(16).map_err(sys("listening at", path))?;
        socket::listen(&listener.fd, backlog).map_err(sys("listening at", path))?;
        Ok(listener)
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until a signal asks it to stop (SIGINT, SIGTERM, SIGHUP: the request running then
    /// sees it as `pvbuild` would, and stops at its next safe point). `run` runs one command
    /// and returns its exit status; `log` gets one line per request and per refused peer.
    /// `idle` does one piece of the server's own work (a pool's next domain) when no client
    /// has come for [`IDLE_WORK_AFTER`], and says whether there is more.
    pub fn serve(
        &self,
        run: &mut dyn FnMut(Vec<OsString>) -> u8,
        idle: &mut IdleWork<'_>,
        log: &mut dyn FnMut(std::fmt::Arguments<'_>),
    ) -> Result<(), ServeError> {
        // Whether `idle` may have work: asked after every connection and every quiet wait.
        let mut more = true;
        let root = fs::File::open("/").map_err(|e| ServeError::Dir {
            path: PathBuf::from("/"),
            err: e,
        })?;
        let mut spawners = Spawners::default();
        loop {
            reap_children();
            spawners.log_done(log, false);
            if crate::support::interrupt::requested() {
                // The monitors being started are let start: their guests are made.
                spawners.log_done(log, true);
                return Ok(());
            }
            let mut fds = [nix::poll::PollFd::new(
                self.fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let wait = if more {
                IDLE_WORK_AFTER
            } else {
                Duration::from_secs(1)
            };
            let wait_ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(wait_ms)) {
                Ok(0) => {
                    more = !crate::support::interrupt::requested() && idle(log);
                    continue;
                }
                Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(sys("waiting at", &self.path)(e)),
            }
            let conn = match socket::accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
                Err(Errno::EINTR | Errno::ECONNABORTED | Errno::EAGAIN) => continue,
                Err(e) => return Err(sys("accepting at", &self.path)(e)),
            };
            match socket::getsockopt(&conn, sockopt::PeerCredentials) {
                Ok(c) if authorised(c.uid(), self.uid) => {}
                Ok(c) => {
                    log(format_args!(
                        "refused a client of uid {} (pid {}): only uid {} may use this server",
                        c.uid(),
                        c.pid(),
                        self.uid
                    ));
                    continue;
                }
                Err(e) => {
                    log(format_args!("refused a client: its credentials: {e}"));
                    continue;
                }
            }
            let _ = socket::setsockopt(
                &conn,
                sockopt::ReceiveTimeout,
                &TimeVal::new(IDLE_LIMIT.as_secs() as _, 0),
            );
            serve_connection(&conn, &root, run, log, &mut spawners);
            more = true;
        }
    }
}

/// The server's own work between clients: one piece of it, given the server's log; whether
/// there is more.
pub type IdleWork<'a> = dyn FnMut(&mut dyn FnMut(std::fmt::Arguments<'_>)) -> bool + 'a;

/// How long the server waits for a client before it does its own work (a pool's refill):
/// a batch client's next request, or the next of a script's clients, comes sooner.
pub const IDLE_WORK_AFTER: Duration = Duration::from_millis(100);

/// Whether a peer of `peer_uid` may use a server running as `server_uid`: only the same user
/// (root, for a server that builds domains), as only root may run `pvbuild create`.
pub fn authorised(peer_uid: u32, server_uid: u32) -> bool {
    peer_uid == server_uid
}

/// Reaps every child that has ended (device models, monitors and helpers that requests left
/// running), without waiting for the others.
fn reap_children() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The threads starting the monitors of served creates after their replies.
#[derive(Default)]
struct Spawners(Vec<std::thread::JoinHandle<Vec<String>>>);

impl Spawners {
    fn start(&mut self, d: crate::commands::create::DeferredMonitors) {
        self.0.push(std::thread::spawn(move || d.start()));
    }

    /// Writes what the finished threads (all of them, waiting, when `all`) said to `log`.
    fn log_done(&mut self, log: &mut dyn FnMut(std::fmt::Arguments<'_>), all: bool) {
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|h| all || h.is_finished());
        self.0 = running;
        for h in done {
            match h.join() {
                Ok(lines) => lines.iter().for_each(|l| log(format_args!("{l}"))),
                Err(_) => log(format_args!("warning: a monitor's start panicked")),
            }
        }
    }
}

impl Drop for Spawners {
    /// However the server ends, the monitors being started are let start: their guests are
    /// made.
    fn drop(&mut self) {
        for h in self.0.drain(..) {
            let _ = h.join();
        }
    }
}

/// One received packet: its bytes and the descriptors that came with it (owned, so that every
/// path closes them).
struct Packet {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    truncated: bool,
}

/// Receives one packet; `None` at the end of the connection (or when it stayed idle too long).
fn receive(conn: &OwnedFd) -> Option<Result<Packet, Errno>> {
    let mut buf = vec![0u8; wire::MAX_REQUEST + 1];
    // Room for more descriptors than a request carries, so that extra ones are seen (and
    // closed) rather than silently cut.
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 2 * wire::REQUEST_FDS]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = match socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    ) {
        Ok(m) => m,
        Err(Errno::EAGAIN) => return None,
        Err(e) => return Some(Err(e)),
    };
    let mut fds = Vec::new();
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel installed these descriptors in this process for this
                // message; nothing else owns them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
    }
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    let n = msg.bytes;
    if n == 0 && fds.is_empty() {
        return None;
    }
    buf.truncate(n);
    Some(Ok(Packet {
        bytes: buf,
        fds,
        truncated,
    }))
}

/// Serves one client's requests until it hangs up.
fn serve_connection(
    conn: &OwnedFd,
    root: &fs::File,
    run: &mut dyn FnMut(Vec<OsString>) -> u8,
    log: &mut dyn FnMut(std::fmt::Arguments<'_>),
    spawners: &mut Spawners,
) {
    while let Some(p) = receive(conn) {
        let p = match p {
            Ok(p) => p,
            Err(e) => {
                log(format_args!("a client's request: {e}"));
                return;
            }
        };
        let args = match check_request(&p) {
            Ok(a) => a,
            Err(why) => {
                // The client's stderr may not have come: the reason goes to the server's log,
                // the status to the client.
                log(format_args!("refused a request: {why}"));
                let _ = reply(conn, 2);
                return;
            }
        };
        let started = Instant::now();
        let (code, sent, took) = match Redirect::install(&p.fds, root) {
            Ok(r) => {
                let code = run(args.clone());
                flush();
                let sent = reply(conn, code);
                let took = started.elapsed();
                // What the request left for after its reply (a create's monitor), with its
                // command line and the client's directory, in a thread: the next request
                // does not wait for the spawn.
                let cwd = p.fds.get(3).map(AsFd::as_fd);
                match cwd.map(crate::commands::create::DeferredMonitors::take) {
                    Some(Ok(Some(d))) => spawners.start(d),
                    Some(Err(e)) => log(format_args!("the request's monitors: {e}")),
                    _ => {}
                }
                drop(r);
                (code, sent, took)
            }
            Err(e) => {
                log(format_args!("a request's descriptors: {e}"));
                (2, reply(conn, 2), started.elapsed())
            }
        };
        log(format_args!(
            "{} -> exit {code} in {:.3} ms",
            wire::shown(&args),
            took.as_secs_f64() * 1e3
        ));
        spawners.log_done(log, false);
        if sent.is_err() {
            return;
        }
    }
}

/// A request's arguments, if the packet is a whole request with its four descriptors.
fn check_request(p: &Packet) -> Result<Vec<OsString>, String> {
    if p.truncated {
        return Err("it was cut short (too large, or too many descriptors)".to_owned());
    }
    if p.fds.len() != wire::REQUEST_FDS {
        return Err(format!(
            "it came with {} descriptors, not {}",
            p.fds.len(),
            wire::REQUEST_FDS
        ));
    }
    wire::decode_request(&p.bytes).map_err(|e| e.to_string())
}

fn reply(conn: &OwnedFd, code: u8) -> Result<usize, Errno> {
    let r = wire::encode_reply(code);
    socket::send(conn.as_raw_fd(), &r, MsgFlags::MSG_NOSIGNAL)
}

/// The client's stdin, stdout, stderr and working directory in place of the server's, for
/// the length of one request. Dropping it flushes what the command left buffered and puts
/// the server's back.
struct Redirect<'a> {
    saved: [OwnedFd; 3],
    root: &'a fs::File,
}

impl<'a> Redirect<'a> {
    fn install(fds: &[OwnedFd], root: &'a fs::File) -> Result<Self, String> {
        let [stdin, stdout, stderr, cwd] = fds else {
            return Err(format!("{} descriptors, not 4", fds.len()));
        };
        flush();
        let dup = |fd: std::os::fd::BorrowedFd<'_>, what: &str| {
            fd.try_clone_to_owned()
                .map_err(|e| format!("saving the server's {what}: {e}"))
        };
        let saved = [
            dup(std::io::stdin().as_fd(), "stdin")?,
            dup(std::io::stdout().as_fd(), "stdout")?,
            dup(std::io::stderr().as_fd(), "stderr")?,
        ];
        let r = Redirect { saved, root };
        for (i, fd) in [stdin, stdout, stderr].into_iter().enumerate() {
            // i is 0, 1 or 2: the standard descriptors.
            nix::unistd::dup2(fd.as_raw_fd(), i as i32)
                .map_err(|e| format!("dup2 onto descriptor {i}: {e}"))?;
        }
        nix::unistd::fchdir(cwd.as_raw_fd())
            .map_err(|e| format!("the client's working directory: {e}"))?;
        Ok(r)
    }
}

impl Drop for Redirect<'_> {
    fn drop(&mut self) {
        flush();
        for (i, fd) in self.saved.iter().enumerate() {
            let _ = nix::unistd::dup2(fd.as_raw_fd(), i as i32);
        }
        let _ = nix::unistd::fchdir(self.root.as_raw_fd());
    }
}

fn flush() {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_own_user_is_served() {
        assert!(authorised(0, 0));
        assert!(!authorised(1000, 0));
        assert!(authorised(1000, 1000));
        assert!(!authorised(0, 1000));
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let d = std::env::temp_dir().join(format!("pvbuild-serve-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::DirBuilder::new().mode(0o700).create(&d).unwrap();
        let uid = nix::unistd::geteuid().as_raw();
        check_dir(&d, uid).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir(&d, uid).unwrap_err().to_string();
        assert!(e.contains("mode 777 lets others write"), "{e}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        let e = check_dir(&d, uid + 1).unwrap_err().to_string();
        assert!(e.contains("owned by uid"), "{e}");
        let f = d.join("file");
        fs::write(&f, b"").unwrap();
        let e = check_dir(&f, uid).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_live_server_is_not_replaced_and_a_stale_socket_is() {
        let d = std::env::temp_dir().join(format!("pvbuild-serve-bind-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let path = d.join("serve.sock");
        let l = Listener::bind(&path).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = Listener::bind(&path).unwrap_err().to_string();
        assert!(e.contains("another pvbuild serve answers there"), "{e}");
        drop(l);
        assert!(
            !path.exists(),
            "the socket's path is removed when the server ends"
        );
        // A socket nobody listens at any more: what a killed server leaves.
        let stale = seqpacket(&path).unwrap();
        socket::bind(stale.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
        drop(stale);
        assert!(path.exists());
        let l2 = Listener::bind(&path).unwrap();
        drop(l2);
        assert!(
            !path.exists(),
            "the socket's path is removed when the server ends"
        );
        fs::write(&path, b"x").unwrap();
        let e = Listener::bind(&path).unwrap_err().to_string();
        assert!(e.contains("exists and is not a socket"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}

//! `pvbuild console DOMID`: attach the terminal to a guest's console through xenconsoled.
//!
//! xenconsoled serves each guest's console ring on a pty and writes the pty's path to
//! `/local/domain/<domid>/console/tty`. Like `xl console` (tools/console/client/main.c) we wait
//! for that node, open the pty, put it and our terminal in raw mode, and relay bytes both ways
//! until the guest's side closes or the user types Ctrl-] ([`ESCAPE`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};
use thiserror::Error;

use crate::xenstore::{XsConnection, XsError};

/// Ctrl-]: detaches, as in `xl console`.
pub const ESCAPE: u8 = 0x1d;
/// How long [`console_attach`] waits for xenconsoled to publish the pty by default.
pub const DEFAULT_TTY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes moved per read.
const CHUNK: usize = 4096;

/// Why the console could not be attached or relayed.
#[derive(Debug, Error)]
pub enum ConsoleError {
    /// xenstore failed.
    #[error(transparent)]
    Xs(#[from] XsError),
    /// The domain has no console node (no such domain, or not built by a toolstack).
    #[error("domain {0} has no console in xenstore")]
    NoConsole(u32),
    /// xenconsoled did not publish a pty in time (is xenconsoled running?).
    #[error("no console pty for domain {domid} after {secs}s: is xenconsoled running?")]
    NoTty {
        /// The domain.
        domid: u32,
        /// Seconds waited.
        secs: u64,
    },
    /// The tty node holds something that is not a pty path.
    #[error("console tty of domain {domid} is not a device path: {path:?}")]
    BadTty {
        /// The domain.
        domid: u32,
        /// The value found.
        path: String,
    },
    /// Opening or configuring the pty or the terminal failed.
    #[error("console {what} {path}: {source}")]
    Open {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Relaying failed.
    #[error("console relay: {0}")]
    Io(#[from] io::Error),
}

/// How a relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// The user typed the escape byte.
    Detached,
    /// The console's side closed (the guest is gone or xenconsoled let go).
    ConsoleClosed,
}

/// Wait until xenconsoled has written the pty path of `domid`'s console, at most `timeout`.
pub fn wait_for_tty(
    xs: &XsConnection,
    domid: u32,
    timeout: Duration,
) -> Result<PathBuf, ConsoleError> {
    let node = format!("/local/domain/{domid}/console/tty");
    let token = format!("pvbuild-console-{domid}");
    let deadline = Instant::now() + timeout;
    xs.watch(&node, &token)?;
    let result = loop {
        match xs.read_opt(&node)? {
            Some(v) if !v.is_empty() => break check_tty(domid, v),
            Some(_) => {}
            None => {
                if xs
                    .read_opt(&format!("/local/domain/{domid}/console"))?
                    .is_none()
                {
                    break Err(ConsoleError::NoConsole(domid));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || xs.next_event(Some(left))?.is_none() {
            break Err(ConsoleError::NoTty {
                domid,
                secs: timeout.as_secs(),
            });
        }
    };
    let _ = xs.unwatch(&node, &token);
    result
}

fn check_tty(domid: u32, v: String) -> Result<PathBuf, ConsoleError> {
    // The node is dom0-owned and read-only for the guest; still accept only device paths.
    if v.starts_with("/dev/") && !v.contains("/../") && !v.contains('\0') {
        Ok(PathBuf::from(v))
    } else {
        Err(ConsoleError::BadTty {
            domid,
            path: v.chars().take(128).collect(),
        })
    }
}

/// Put a terminal in raw mode; the previous mode comes back when this is dropped.
#[derive(Debug)]
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// Make `fd` raw (`cfmakeraw`), remembering its mode.
    pub fn enter(fd: BorrowedFd<'a>) -> io::Result<Self> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(Self { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Relay between `input`/`output` (the user) and `console` (the pty) until the escape byte
/// arrives on `input` or the console closes. Input that ends (EOF) stops being read; console
/// output keeps flowing until the console closes.
pub fn relay(
    input: &mut File,
    output: &mut impl Write,
    console: &mut File,
    escape: Option<u8>,
) -> Result<RelayEnd, ConsoleError> {
    let mut buf = [0u8; CHUNK];
    let mut input_open = true;
    loop {
        let (in_ready, con_ready) = {
            let mut fds = vec![PollFd::new(console.as_fd(), PollFlags::POLLIN)];
            if input_open {
                fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
            }
            let ready =
                |f: Option<&PollFd<'_>>| f.and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            (ready(fds.get(1)), ready(fds.first()))
        };
        if con_ready {
            match console.read(&mut buf) {
                Ok(0) => return Ok(RelayEnd::ConsoleClosed),
                // A pty whose other side has closed reads EIO.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    return Ok(RelayEnd::ConsoleClosed)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
                Ok(n) => {
                    output.write_all(buf.get(..n).unwrap_or(&[]))?;
                    output.flush()?;
                }
            }
        }
        if in_ready {
            match input.read(&mut buf) {
                Ok(0) => input_open = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or(&[]);
                    let cut = escape.and_then(|e| data.iter().position(|b| *b == e));
                    console.write_all(data.get(..cut.unwrap_or(n)).unwrap_or(&[]))?;
                    if cut.is_some() {
                        return Ok(RelayEnd::Detached);
                    }
                }
            }
        }
    }
}

/// Open the console pty at `path` in raw mode and relay it with `input`/`output`.
pub fn attach_path(
    path: &Path,
    input: &mut File,
    output: &mut impl Write,
    escape: Option<u8>,
) -> Result<RelayEnd, ConsoleError> {
    use std::os::unix::fs::OpenOptionsExt;
    let open_err = |what, source| ConsoleError::Open {
        what,
        path: path.to_owned(),
        source,
    };
    let mut pty = File::options()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| open_err("open", e))?;
    // xenconsole makes the pty raw too (and leaves it so), so nothing is echoed or translated
    // on the way.
    make_raw(pty.as_fd()).map_err(|e| open_err("set raw mode on", e))?;
    relay(input, output, &mut pty, escape)
}

fn make_raw(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut t = termios::tcgetattr(fd)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(fd, SetArg::TCSANOW, &t)?;
    Ok(())
}

/// `pvbuild console DOMID`: wait for xenconsoled's pty (at most `tty_timeout`), then relay it
/// with this process's stdin and stdout (stdin in raw mode when it is a terminal) until
/// Ctrl-] or the guest's console closes.
pub fn console_attach(domid: u32, tty_timeout: Duration) -> Result<RelayEnd, ConsoleError> {
    let xs = XsConnection::open()?;
    let path = wait_for_tty(&xs, domid, tty_timeout)?;
    drop(xs);
    let stdin = io::stdin();
    let mut input =
        File::from(
            stdin
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| ConsoleError::Open {
                    what: "duplicate",
                    path: PathBuf::from("/dev/stdin"),
                    source: e,
                })?,
        );
    let is_tty = std::io::IsTerminal::is_terminal(&stdin);
    let _raw = if is_tty {
        Some(
            RawMode::enter(stdin.as_fd()).map_err(|e| ConsoleError::Open {
                what: "set raw mode on",
                path: PathBuf::from("/dev/stdin"),
                source: e,
            })?,
        )
    } else {
        None
    };
    let mut out = io::stdout().lock();
    attach_path(&path, &mut input, &mut out, Some(ESCAPE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::fake::FakeXenstore;
    use std::os::fd::OwnedFd;

    fn pipe() -> (File, File) {
        let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn relays_a_real_pty_and_detaches_on_ctrl_bracket() {
        // The master is xenconsoled's side; the relay opens the slave by path, as from xenstore.
        // xenconsoled makes its pty raw (cfmakeraw) before publishing it: so does the test, or
        // the line discipline would echo the guest's output back to it.
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut t = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
        let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
        let mut master = File::from(pty.master);
        let (mut in_r, mut in_w) = pipe();
        let (mut out_r, out_w) = pipe();
        let t = std::thread::spawn(move || {
            let mut out_w = out_w;
            attach_path(&slave_path, &mut in_r, &mut out_w, Some(ESCAPE))
        });
        // Guest output reaches our output untouched (raw: no \n -> \r\n translation).
        master.write_all(b"login: \n").unwrap();
        let mut got = [0u8; 8];
        out_r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"login: \n");
        // Our input reaches the guest, without echo back to us.
        in_w.write_all(b"root\r").unwrap();
        let mut got = [0u8; 5];
        master.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"root\r");
        // Bytes before Ctrl-] still go; the relay then ends.
        in_w.write_all(b"x\x1dignored").unwrap();
        assert_eq!(t.join().unwrap().unwrap(), RelayEnd::Detached);
        let mut got = [0u8; 1];
        master.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
        drop(pty.slave);
    }

    #[test]
    fn ends_when_the_console_side_closes() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
        drop(pty.slave);
        let mut master = File::from(pty.master);
        let (mut in_r, _in_w) = pipe();
        let (mut out_r, out_w) = pipe();
        let t = std::thread::spawn(move || {
            let mut out_w = out_w;
            attach_path(&slave_path, &mut in_r, &mut out_w, Some(ESCAPE))
        });
        master.write_all(b"bye").unwrap();
        let mut got = [0u8; 3];
        out_r.read_exact(&mut got).unwrap();
        drop(master);
        assert_eq!(t.join().unwrap().unwrap(), RelayEnd::ConsoleClosed);
    }

    #[test]
    fn waits_for_xenconsoled_to_publish_the_tty() {
        let fake = FakeXenstore::new();
        let xs = fake.connect();
        xs.write("/local/domain/4/console/tty", "").unwrap();
        // Published before the wait: found at once.
        fake.poke("/local/domain/4/console/tty", "/dev/pts/7");
        assert_eq!(
            wait_for_tty(&xs, 4, Duration::from_millis(10)).unwrap(),
            PathBuf::from("/dev/pts/7")
        );
        // Published while waiting: the watch wakes the wait.
        xs.write("/local/domain/8/console/tty", "").unwrap();
        let poker = fake.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            poker.poke("/local/domain/8/console/tty", "/dev/pts/8");
        });
        let start = Instant::now();
        assert_eq!(
            wait_for_tty(&xs, 8, Duration::from_secs(10)).unwrap(),
            PathBuf::from("/dev/pts/8")
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        // Not published: a timeout error naming xenconsoled.
        xs.write("/local/domain/5/console/tty", "").unwrap();
        let e = wait_for_tty(&xs, 5, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("xenconsoled"), "{e}");
        // No console at all.
        assert!(matches!(
            wait_for_tty(&xs, 6, Duration::ZERO),
            Err(ConsoleError::NoConsole(6))
        ));
        // Not a device path.
        xs.write("/local/domain/7/console/tty", "/etc/shadow")
            .unwrap();
        assert!(matches!(
            wait_for_tty(&xs, 7, Duration::ZERO),
            Err(ConsoleError::BadTty { .. })
        ));
    }
}

//! The client's side: one connection to `pvbuild serve`, over which each request passes this
//! process's standard descriptors and working directory and waits for the command's status.

use std::ffi::OsString;
use std::io::BufRead as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, ControlMessage, MsgFlags, UnixAddr};

use super::server::seqpacket;
use super::wire;

/// Why a request did not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No server listens at the path.
    #[error("no pvbuild serve at {path}: {errno}")]
    Connect { path: PathBuf, errno: Errno },
    /// The socket could not be made.
    #[error("{0}")]
    Socket(#[from] super::server::ServeError),
    /// The request cannot be sent as it is.
    #[error("{0}")]
    Wire(#[from] wire::WireError),
    /// Sending or receiving failed.
    #[error("{step}: {errno}")]
    Io { step: &'static str, errno: Errno },
    /// The server hung up before replying (it stopped, or refused the request: its log says
    /// why).
    #[error("the server hung up without a reply (its log says why)")]
    HungUp,
    /// The working directory cannot be passed.
    #[error("opening the working directory: {0}")]
    Cwd(std::io::Error),
    /// A batch file could not be read, or a line of it split.
    #[error("{0}")]
    Batch(String),
}

/// A connection to a server.
#[derive(Debug)]
pub struct Client {
    conn: OwnedFd,
}

impl Client {
    /// Connects to the server at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let conn = seqpacket(path)?;
        let addr = UnixAddr::new(path).map_err(|errno| ClientError::Connect {
            path: path.to_path_buf(),
            errno,
        })?;
        socket::connect(conn.as_raw_fd(), &addr).map_err(|errno| ClientError::Connect {
            path: path.to_path_buf(),
            errno,
        })?;
        Ok(Client { conn })
    }

    /// Runs `args` (the words after `pvbuild`) in the server, with this process's stdin,
    /// stdout, stderr and working directory; returns its exit status and the time from the
    /// request's sending to its reply.
    pub fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[S],
    ) -> Result<(u8, Duration), ClientError> {
        let packet = wire::encode_request(args)?;
        let cwd = std::fs::File::open(".").map_err(ClientError::Cwd)?;
        let fds = [
            std::io::stdin().as_fd().as_raw_fd(),
            std::io::stdout().as_fd().as_raw_fd(),
            std::io::stderr().as_fd().as_raw_fd(),
            cwd.as_raw_fd(),
        ];
        let started = Instant::now();
        let iov = [std::io::IoSlice::new(&packet)];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        socket::sendmsg::<()>(
            self.conn.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|errno| ClientError::Io {
            step: "sending the request",
            errno,
        })?;
        let mut buf = [0u8; wire::REPLY_LEN + 1];
        let n = loop {
            match socket::recv(self.conn.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                r => {
                    break r.map_err(|errno| ClientError::Io {
                        step: "waiting for the reply",
                        errno,
                    })?
                }
            }
        };
        if n == 0 {
            return Err(ClientError::HungUp);
        }
        let reply = buf.get(..n).unwrap_or(&buf);
        Ok((wire::decode_reply(reply)?, started.elapsed()))
    }
}

/// The commands of a batch: one per line, split as a POSIX shell splits words (quotes and
/// backslashes; no variables, no globs); empty lines and lines starting with `#` skipped.
pub fn batch_lines(text: &str) -> Result<Vec<(usize, Vec<String>)>, ClientError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let words = shlex::split(t)
            .ok_or_else(|| ClientError::Batch(format!("line {}: unbalanced quotes: {t}", i + 1)))?;
        out.push((i + 1, words));
    }
    Ok(out)
}

/// Reads a batch from `path` (`-`: standard input).
pub fn read_batch(path: &Path) -> Result<String, ClientError> {
    if path == Path::new("-") {
        let mut s = String::new();
        for l in std::io::stdin().lock().lines() {
            let l = l.map_err(|e| ClientError::Batch(format!("reading stdin: {e}")))?;
            s.push_str(&l);
            s.push('\n');
        }
        Ok(s)
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| ClientError::Batch(format!("{}: {e}", path.display())))
    }
}

/// Converts a batch line's words for [`Client::run`].
pub fn to_args(words: &[String]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_split_as_a_shell_splits_it() {
        let b = "# a comment\n\ncreate -p /etc/xen/a.cfg 'name=\"x y\"'\n  destroy x\\ y\n";
        let l = batch_lines(b).unwrap();
        assert_eq!(
            l,
            vec![
                (
                    3,
                    vec![
                        "create".to_owned(),
                        "-p".to_owned(),
                        "/etc/xen/a.cfg".to_owned(),
                        "name=\"x y\"".to_owned()
                    ]
                ),
                (4, vec!["destroy".to_owned(), "x y".to_owned()]),
            ]
        );
        let e = batch_lines("list\ncreate 'x\n").unwrap_err().to_string();
        assert_eq!(e, "line 2: unbalanced quotes: create 'x");
    }
}

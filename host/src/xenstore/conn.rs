//! A connection to xenstored: the one xenstore interface of pvbuild.
//!
//! It speaks [`super::wire`] over xenstored's Unix socket or `/dev/xen/xenbus`, and offers
//! every operation the toolstack needs (read, write, mkdir, rm, directory, permissions,
//! transactions with EAGAIN retry, watches, introduce, release, get domain path). It implements
//! `xenstore-rs`'s traits ([`xenstore_rs::Xs`], [`xenstore_rs::XsTransaction`],
//! [`xenstore_rs::XsTransactionSpan`]) so code written against that crate runs on it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use thiserror::Error;

use super::wire::{self, Errno, Message, MsgType, WireError, HEADER_LEN, PAYLOAD_MAX};

/// Default socket of xenstored (libxenstore's `xs_daemon_socket()`).
pub const DEFAULT_SOCKET: &str = "/var/run/xenstored/socket";
/// The kernel's xenbus device, used when no socket answers.
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";
/// How many times a transaction is retried after EAGAIN before giving up (libxl retries
/// forever; a bound turns a livelock into an error).
pub const MAX_TRANSACTION_RETRIES: u32 = 128;
/// Watch events kept while waiting for a reply; older ones are dropped beyond this.
pub const MAX_QUEUED_EVENTS: usize = 1024;
/// Children accepted from one `XS_DIRECTORY_PART` listing.
pub const MAX_DIRECTORY_ENTRIES: usize = 65536;

/// A failed xenstore operation.
#[derive(Debug, Error)]
pub enum XsError {
    /// Neither the socket nor the xenbus device could be opened.
    #[error("cannot connect to xenstore at {path}: {source}")]
    Connect {
        /// The path tried last.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("xenstore i/o error during {op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// xenstored answered with bytes that are not a valid reply.
    #[error("bad reply from xenstore to {op}: {source}")]
    Wire {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        source: WireError,
    },
    /// A request we refused to send.
    #[error("cannot send {op}: {source}")]
    Request {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        source: WireError,
    },
    /// xenstored answered with an error.
    #[error("xenstore {op} {arg}: {errno}")]
    Daemon {
        /// The operation.
        op: &'static str,
        /// Its first argument (a path or a domid).
        arg: String,
        /// xenstored's errno.
        errno: Errno,
    },
    /// A reply that is valid but does not answer the request (wrong id or type).
    #[error("unexpected reply from xenstore to {op}: {what}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// What was unexpected.
        what: String,
    },
    /// A transaction still conflicted after [`MAX_TRANSACTION_RETRIES`] attempts.
    #[error("xenstore transaction still conflicting after {0} attempts")]
    TooManyRetries(u32),
}

impl XsError {
    /// The errno xenstored answered with, if this is a daemon error.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Daemon { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// xenstored said ENOENT.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(Errno::ENOENT)
    }

    /// xenstored said EAGAIN (a transaction conflict).
    pub fn is_again(&self) -> bool {
        self.errno() == Some(Errno::EAGAIN)
    }
}

impl From<XsError> for io::Error {
    fn from(e: XsError) -> Self {
        let kind = match e.errno() {
            Some(Errno::ENOENT) => io::ErrorKind::NotFound,
            Some(Errno::EACCES | Errno::EPERM | Errno::EROFS) => io::ErrorKind::PermissionDenied,
            Some(Errno::EEXIST | Errno::EISCONN) => io::ErrorKind::AlreadyExists,
            Some(Errno::EAGAIN) => io::ErrorKind::WouldBlock,
            Some(Errno::EINVAL) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// The byte stream under a connection: the socket, the xenbus device, or a test fake.
pub trait Transport: Read + Write + Send {
    /// Wait until a read would not block, `timeout` passes or a signal comes: whether data is
    /// ready.
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool>;
}

fn poll_fd(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let t = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX),
    };
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut fds, t) {
        Ok(n) => Ok(n > 0),
        // A signal: nothing ready yet, so that the caller looks at the interrupt flag
        // ([`crate::support::interrupt`]) now rather than at the end of its timeout.
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Transport for UnixStream {
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        poll_fd(self.as_fd(), timeout)
    }
}

impl Transport for File {
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        poll_fd(self.as_fd(), timeout)
    }
}

/// A permission of a node: who, and what they may do. The first entry of a node's list names
/// its owner, and its access is what every domain not listed gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain.
    pub domid: u32,
    /// Its access.
    pub access: Access,
}

/// Access letters of xenstore permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: both.
    Both,
}

impl Perm {
    /// Owner or grantee `domid` with `access`.
    pub const fn new(domid: u32, access: Access) -> Self {
        Self { domid, access }
    }

    /// The wire form, e.g. `r5`.
    pub fn to_wire(self) -> String {
        let c = match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        };
        format!("{c}{}", self.domid)
    }

    /// Parse the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        let mut chars = s.chars();
        let access = match chars.next()? {
            'n' => Access::None,
            'r' => Access::Read,
            'w' => Access::Write,
            'b' => Access::Both,
            _ => return None,
        };
        let rest = chars.as_str();
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            domid: rest.parse().ok()?,
            access,
        })
    }
}

/// A watch firing: the path that changed and the token given to [`XsConnection::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed (or the watched path, for the initial event).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

struct Inner {
    transport: Box<dyn Transport>,
    next_req: u32,
    events: VecDeque<WatchEvent>,
    dropped_events: u64,
    retries: u64,
}

/// At most this many requests are in flight on a connection ([`XsConnection::pipeline`]):
/// well under oxenstored's default quota of outstanding requests (1024).
pub const PIPELINE_MAX: usize = 64;

/// One request of a [`XsConnection::pipeline`]: its type, its NUL-separated parts (the last
/// NUL-terminated when `nul_last`) and the path it names (for checks and messages).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) op: MsgType,
    pub(crate) parts: Vec<Vec<u8>>,
    pub(crate) nul_last: bool,
    pub(crate) arg: String,
}

impl Req {
    /// `XS_READ path`.
    pub(crate) fn read(path: &str) -> Self {
        Self::on(MsgType::Read, path, Vec::new(), true)
    }
    /// `XS_WRITE path value`.
    pub(crate) fn write(path: &str, value: &str) -> Self {
        Self::on(MsgType::Write, path, vec![value.as_bytes().to_vec()], false)
    }
    /// `XS_MKDIR path`.
    pub(crate) fn mkdir(path: &str) -> Self {
        Self::on(MsgType::Mkdir, path, Vec::new(), true)
    }
    /// `XS_RM path`.
    pub(crate) fn rm(path: &str) -> Self {
        Self::on(MsgType::Rm, path, Vec::new(), true)
    }
    /// `XS_SET_PERMS path perms...` (`perms` must not be empty).
    pub(crate) fn set_perms(path: &str, perms: &[Perm]) -> Self {
        let rest = perms.iter().map(|p| p.to_wire().into_bytes()).collect();
        Self::on(MsgType::SetPerms, path, rest, true)
    }
    fn on(op: MsgType, path: &str, rest: Vec<Vec<u8>>, nul_last: bool) -> Self {
        let mut parts = vec![path.as_bytes().to_vec()];
        parts.extend(rest);
        Self {
            op,
            parts,
            nul_last,
            arg: path.to_owned(),
        }
    }
}

/// A connection to xenstored.
pub struct XsConnection {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for XsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XsConnection").finish_non_exhaustive()
    }
}

const NO_TX: u32 = 0;

impl XsConnection {
    /// Connect as libxenstore does: `$XENSTORED_PATH` if set, else [`DEFAULT_SOCKET`], else
    /// [`XENBUS_DEVICE`].
    pub fn open() -> Result<Self, XsError> {
        let sock = std::env::var_os("XENSTORED_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        match Self::open_socket(&sock) {
            Ok(c) => Ok(c),
            Err(_) => Self::open_device(Path::new(XENBUS_DEVICE)),
        }
    }

    /// Connect to xenstored's Unix socket at `path`.
    pub fn open_socket(path: &Path) -> Result<Self, XsError> {
        let s = UnixStream::connect(path).map_err(|source| XsError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::with_transport(Box::new(s)))
    }

    /// Open the xenbus device at `path` (normally [`XENBUS_DEVICE`]).
    pub fn open_device(path: &Path) -> Result<Self, XsError> {
        let f = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| XsError::Connect {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self::with_transport(Box::new(f)))
    }

    /// A connection over any transport (tests use [`super::fake`]).
    pub fn with_transport(transport: Box<dyn Transport>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                transport,
                next_req: 1,
                events: VecDeque::new(),
                dropped_events: 0,
                retries: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the stream mid-message in a way we could
        // repair; keep going with whatever state there is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send one request and wait for its reply: the reply's payload.
    fn request(
        &self,
        op: MsgType,
        tx: u32,
        parts: &[&[u8]],
        nul_last: bool,
        arg: &str,
    ) -> Result<Vec<u8>, XsError> {
        let name = op.name();
        crate::build::steps::count_xs_request();
        let mut inner = self.lock();
        let req_id = inner.next_req;
        inner.next_req = inner.next_req.wrapping_add(1);
        let bytes = wire::encode(op, req_id, tx, parts, nul_last)
            .map_err(|source| XsError::Request { op: name, source })?;
        inner
            .transport
            .write_all(&bytes)
            .and_then(|()| inner.transport.flush())
            .map_err(|source| XsError::Io { op: name, source })?;
        inner.reply(op, req_id, arg)?
    }

    /// Sends `reqs` inside transaction `tx` without waiting between them, then reads their
    /// replies: one round trip to xenstored for up to [`PIPELINE_MAX`] requests instead of
    /// one each. xenstored answers a connection's requests in order (each is done before the
    /// next is read), so the effects are those of the same requests sent one by one. Each
    /// reply is `Ok(payload)` or the daemon's error for that request; the outer error is a
    /// broken connection or protocol, after which nothing more can be read.
    pub(crate) fn pipeline(
        &self,
        tx: u32,
        reqs: &[Req],
    ) -> Result<Vec<Result<Vec<u8>, XsError>>, XsError> {
        let mut out = Vec::with_capacity(reqs.len());
        let mut inner = self.lock();
        for chunk in reqs.chunks(PIPELINE_MAX) {
            let mut bytes = Vec::new();
            let mut ids = Vec::with_capacity(chunk.len());
            for r in chunk {
                let name = r.op.name();
                Self::path_arg(r.op, &r.arg)?;
                let parts: Vec<&[u8]> = r.parts.iter().map(Vec::as_slice).collect();
                let req_id = inner.next_req;
                let enc = wire::encode(r.op, req_id, tx, &parts, r.nul_last)
                    .map_err(|source| XsError::Request { op: name, source })?;
                inner.next_req = inner.next_req.wrapping_add(1);
                bytes.extend_from_slice(&enc);
                ids.push(req_id);
            }
            let first = chunk.first().map_or("XS_PIPELINE", |r| r.op.name());
            inner
                .transport
                .write_all(&bytes)
                .and_then(|()| inner.transport.flush())
                .map_err(|source| XsError::Io { op: first, source })?;
            for (r, req_id) in chunk.iter().zip(ids) {
                crate::build::steps::count_xs_request();
                out.push(inner.reply(r.op, req_id, &r.arg)?);
            }
        }
        Ok(out)
    }

    fn request_ok(&self, op: MsgType, tx: u32, parts: &[&[u8]], arg: &str) -> Result<(), XsError> {
        let p = self.request(op, tx, parts, true, arg)?;
        wire::parse_ok(&p).map_err(|source| XsError::Wire {
            op: op.name(),
            source,
        })
    }

    fn path_arg(op: MsgType, path: &str) -> Result<(), XsError> {
        wire::check_path(path).map_err(|source| XsError::Request {
            op: op.name(),
            source,
        })
    }

    pub(crate) fn read_in(&self, tx: u32, path: &str) -> Result<String, XsError> {
        Self::path_arg(MsgType::Read, path)?;
        let p = self.request(MsgType::Read, tx, &[path.as_bytes()], true, path)?;
        // Values are raw bytes without a terminating NUL; pvbuild only stores text.
        String::from_utf8(p).map_err(|_| XsError::Wire {
            op: "XS_READ",
            source: WireError::NotUtf8,
        })
    }

    pub(crate) fn read_opt_in(&self, tx: u32, path: &str) -> Result<Option<String>, XsError> {
        match self.read_in(tx, path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn write_in(&self, tx: u32, path: &str, value: &str) -> Result<(), XsError> {
        Self::path_arg(MsgType::Write, path)?;
        let p = self.request(
            MsgType::Write,
            tx,
            &[path.as_bytes(), value.as_bytes()],
            false,
            path,
        )?;
        wire::parse_ok(&p).map_err(|source| XsError::Wire {
            op: "XS_WRITE",
            source,
        })
    }

    pub(crate) fn mkdir_in(&self, tx: u32, path: &str) -> Result<(), XsError> {
        Self::path_arg(MsgType::Mkdir, path)?;
        self.request_ok(MsgType::Mkdir, tx, &[path.as_bytes()], path)
    }

    pub(crate) fn rm_in(&self, tx: u32, path: &str) -> Result<(), XsError> {
        Self::path_arg(MsgType::Rm, path)?;
        self.request_ok(MsgType::Rm, tx, &[path.as_bytes()], path)
    }

    pub(crate) fn set_perms_in(&self, tx: u32, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        Self::path_arg(MsgType::SetPerms, path)?;
        if perms.is_empty() {
            return Err(XsError::Request {
                op: "XS_SET_PERMS",
                source: WireError::BadArgument("empty permission list".into()),
            });
        }
        let strs: Vec<String> = perms.iter().map(|p| p.to_wire()).collect();
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(strs.iter().map(|s| s.as_bytes()));
        self.request_ok(MsgType::SetPerms, tx, &parts, path)
    }

    pub(crate) fn get_perms_in(&self, tx: u32, path: &str) -> Result<Vec<Perm>, XsError> {
        Self::path_arg(MsgType::GetPerms, path)?;
        let p = self.request(MsgType::GetPerms, tx, &[path.as_bytes()], true, path)?;
        let bad = |what| XsError::Wire {
            op: "XS_GET_PERMS",
            source: WireError::Malformed(what),
        };
        let list = wire::parse_list(&p).map_err(|source| XsError::Wire {
            op: "XS_GET_PERMS",
            source,
        })?;
        let perms = list
            .iter()
            .map(|s| Perm::parse(s).ok_or_else(|| bad("permission is not [nrwb]<domid>")))
            .collect::<Result<Vec<_>, _>>()?;
        if perms.is_empty() {
            return Err(bad("empty permission list"));
        }
        Ok(perms)
    }

    pub(crate) fn directory_in(&self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        Self::path_arg(MsgType::Directory, path)?;
        match self.request(MsgType::Directory, tx, &[path.as_bytes()], true, path) {
            Ok(p) => wire::parse_list(&p).map_err(|source| XsError::Wire {
                op: "XS_DIRECTORY",
                source,
            }),
            Err(e) if e.errno() == Some(Errno::E2BIG) => self.directory_part(tx, path),
            Err(e) => Err(e),
        }
    }

    /// A listing too long for one reply, through `XS_DIRECTORY_PART` (as libxenstore does):
    /// each reply is the node's generation then children from `offset`; an empty child ends.
    fn directory_part(&self, tx: u32, path: &str) -> Result<Vec<String>, XsError> {
        const OP: &str = "XS_DIRECTORY_PART";
        let wire_err = |source| XsError::Wire { op: OP, source };
        'restart: for _ in 0..MAX_TRANSACTION_RETRIES {
            let mut out: Vec<String> = Vec::new();
            let mut generation: Option<String> = None;
            let mut offset: usize = 0;
            loop {
                let off = offset.to_string();
                let p = self.request(
                    MsgType::DirectoryPart,
                    tx,
                    &[path.as_bytes(), off.as_bytes()],
                    true,
                    path,
                )?;
                // "gen\0a\0b\0" ... the last part ends "\0\0" (an empty name).
                let done = p.ends_with(&[0, 0]) || p.len() <= 1;
                let mut list = wire::parse_list(&p).map_err(wire_err)?.into_iter();
                let gen = list
                    .next()
                    .ok_or(WireError::Malformed("no generation"))
                    .map_err(wire_err)?;
                match &generation {
                    None => generation = Some(gen),
                    Some(g) if *g != gen => continue 'restart,
                    Some(_) => {}
                }
                let before = out.len();
                for name in list.filter(|n| !n.is_empty()) {
                    offset = offset.saturating_add(name.len() + 1);
                    out.push(name);
                }
                if out.len() > MAX_DIRECTORY_ENTRIES {
                    return Err(wire_err(WireError::Malformed("directory listing too long")));
                }
                if done {
                    return Ok(out);
                }
                if out.len() == before {
                    return Err(wire_err(WireError::Malformed(
                        "directory part made no progress",
                    )));
                }
            }
        }
        Err(XsError::TooManyRetries(MAX_TRANSACTION_RETRIES))
    }

    // ---- operations outside a transaction ----

    /// Read a node's value.
    pub fn read(&self, path: &str) -> Result<String, XsError> {
        self.read_in(NO_TX, path)
    }

    /// Read a node's value; `None` if it does not exist.
    pub fn read_opt(&self, path: &str) -> Result<Option<String>, XsError> {
        self.read_opt_in(NO_TX, path)
    }

    /// Write a node, creating it and its missing parents.
    pub fn write(&self, path: &str, value: &str) -> Result<(), XsError> {
        self.write_in(NO_TX, path, value)
    }

    /// Create a node (and missing parents) with an empty value; no error if it exists.
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.mkdir_in(NO_TX, path)
    }

    /// Remove a node and everything below it.
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        self.rm_in(NO_TX, path)
    }

    /// The names of a node's children.
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.directory_in(NO_TX, path)
    }

    /// Reads `paths` in one round trip (pipelined): each value, `None` for a missing node.
    pub fn read_many(&self, paths: &[String]) -> Result<Vec<Option<String>>, XsError> {
        let reqs: Vec<Req> = paths.iter().map(|p| Req::read(p)).collect();
        self.pipeline(NO_TX, &reqs)?
            .into_iter()
            .map(|r| match r {
                Ok(bytes) => String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| XsError::Wire {
                        op: "XS_READ",
                        source: WireError::NotUtf8,
                    }),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Set a node's permissions: `perms[0]` is the owner and the default for others.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.set_perms_in(NO_TX, path, perms)
    }

    /// A node's permissions.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.get_perms_in(NO_TX, path)
    }

    /// `XS_GET_DOMAIN_PATH`: where a domain's subtree lives (`/local/domain/<domid>`).
    pub fn get_domain_path(&self, domid: u32) -> Result<String, XsError> {
        let d = domid.to_string();
        let p = self.request(MsgType::GetDomainPath, NO_TX, &[d.as_bytes()], true, &d)?;
        wire::parse_string(&p).map_err(|source| XsError::Wire {
            op: "XS_GET_DOMAIN_PATH",
            source,
        })
    }

    /// `XS_INTRODUCE`: tell xenstored about a new domain's store page and event channel.
    pub fn introduce(&self, domid: u32, store_mfn: u64, store_port: u32) -> Result<(), XsError> {
        let (d, m, p) = (
            domid.to_string(),
            store_mfn.to_string(),
            store_port.to_string(),
        );
        self.request_ok(
            MsgType::Introduce,
            NO_TX,
            &[d.as_bytes(), m.as_bytes(), p.as_bytes()],
            &d,
        )
    }

    /// `XS_SET_TARGET`: xenstored gives `domid` (a stub domain) the rights over `target`'s
    /// nodes that `target` has (`xs_set_target`).
    pub fn set_target(&self, domid: u32, target: u32) -> Result<(), XsError> {
        let (d, t) = (domid.to_string(), target.to_string());
        self.request_ok(MsgType::SetTarget, NO_TX, &[d.as_bytes(), t.as_bytes()], &d)
    }

    /// `XS_RELEASE`: make xenstored forget a domain.
    pub fn release(&self, domid: u32) -> Result<(), XsError> {
        let d = domid.to_string();
        self.request_ok(MsgType::Release, NO_TX, &[d.as_bytes()], &d)
    }

    /// `XS_IS_DOMAIN_INTRODUCED`.
    pub fn is_domain_introduced(&self, domid: u32) -> Result<bool, XsError> {
        let d = domid.to_string();
        let p = self.request(
            MsgType::IsDomainIntroduced,
            NO_TX,
            &[d.as_bytes()],
            true,
            &d,
        )?;
        match p.as_slice() {
            b"T\0" | b"T" => Ok(true),
            b"F\0" | b"F" => Ok(false),
            _ => Err(XsError::Wire {
                op: "XS_IS_DOMAIN_INTRODUCED",
                source: WireError::Malformed("expected T or F"),
            }),
        }
    }

    /// `XS_WATCH`: xenstored reports changes under `path` with `token`, and fires once at once.
    pub fn watch(&self, path: &str, token: &str) -> Result<(), XsError> {
        Self::path_arg(MsgType::Watch, path)?;
        self.request_ok(
            MsgType::Watch,
            NO_TX,
            &[path.as_bytes(), token.as_bytes()],
            path,
        )
    }

    /// `XS_UNWATCH`.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<(), XsError> {
        Self::path_arg(MsgType::Unwatch, path)?;
        self.request_ok(
            MsgType::Unwatch,
            NO_TX,
            &[path.as_bytes(), token.as_bytes()],
            path,
        )
    }

    /// The next watch event, waiting at most `timeout` (`None`: forever). `Ok(None)` on timeout.
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Option<WatchEvent>, XsError> {
        const OP: &str = "XS_WATCH_EVENT";
        let mut inner = self.lock();
        if let Some(ev) = inner.events.pop_front() {
            return Ok(Some(ev));
        }
        let ready = inner
            .transport
            .wait_readable(timeout)
            .map_err(|source| XsError::Io { op: OP, source })?;
        if !ready {
            return Ok(None);
        }
        let msg = read_message(inner.transport.as_mut(), OP)?;
        if msg.msg_type != MsgType::WatchEvent {
            return Err(XsError::Protocol {
                op: OP,
                what: format!("unsolicited {} while idle", msg.msg_type.name()),
            });
        }
        let (path, token) = wire::parse_watch_event(&msg.payload)
            .map_err(|source| XsError::Wire { op: OP, source })?;
        Ok(Some(WatchEvent { path, token }))
    }

    /// Transactions started over after EAGAIN on this connection so far.
    pub fn transaction_retries(&self) -> u64 {
        self.lock().retries
    }

    /// Watch events dropped because more than [`MAX_QUEUED_EVENTS`] were pending.
    pub fn dropped_events(&self) -> u64 {
        self.lock().dropped_events
    }

    // ---- transactions ----

    /// `XS_TRANSACTION_START`: a transaction, aborted when dropped uncommitted.
    pub fn transaction_start(&self) -> Result<Transaction<'_>, XsError> {
        const OP: &str = "XS_TRANSACTION_START";
        let p = self.request(MsgType::TransactionStart, NO_TX, &[b""], true, "")?;
        let s = wire::parse_string(&p).map_err(|source| XsError::Wire { op: OP, source })?;
        let id = s
            .parse::<u32>()
            .ok()
            .filter(|id| *id != NO_TX)
            .ok_or(XsError::Wire {
                op: OP,
                source: WireError::Malformed("transaction id"),
            })?;
        Ok(Transaction {
            conn: self,
            id,
            finished: false,
        })
    }

    fn transaction_end(&self, id: u32, commit: bool) -> Result<(), XsError> {
        let flag: &[u8] = if commit { b"T" } else { b"F" };
        self.request_ok(
            MsgType::TransactionEnd,
            id,
            &[flag],
            if commit { "commit" } else { "abort" },
        )
    }

    /// Run `body` in a transaction and commit it, starting over when xenstored reports a
    /// conflict (EAGAIN, at commit or on any operation), at most [`MAX_TRANSACTION_RETRIES`]
    /// times. An error from `body` aborts the transaction and is returned.
    pub fn with_transaction<T>(
        &self,
        mut body: impl FnMut(&Transaction<'_>) -> Result<T, XsError>,
    ) -> Result<T, XsError> {
        for attempt in 0..MAX_TRANSACTION_RETRIES {
            if attempt > 0 {
                let mut inner = self.lock();
                inner.retries = inner.retries.saturating_add(1);
            }
            let t = self.transaction_start()?;
            match body(&t) {
                Ok(v) => match t.commit() {
                    Ok(()) => return Ok(v),
                    Err(e) if e.is_again() => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    // The abort's own failure matters less than the body's.
                    let _ = t.abort();
                    if e.is_again() {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(XsError::TooManyRetries(MAX_TRANSACTION_RETRIES))
    }
}

impl Inner {
    /// Reads the reply to request `req_id` (an `op`), queueing the watch events before it:
    /// `Ok(Ok(payload))`, `Ok(Err(daemon error))`, or `Err` when the stream is broken or out
    /// of step.
    fn reply(
        &mut self,
        op: MsgType,
        req_id: u32,
        arg: &str,
    ) -> Result<Result<Vec<u8>, XsError>, XsError> {
        let name = op.name();
        loop {
            let msg = read_message(self.transport.as_mut(), name)?;
            if msg.msg_type == MsgType::WatchEvent {
                self.queue_event(&msg, name)?;
                continue;
            }
            if msg.req_id != req_id {
                return Err(XsError::Protocol {
                    op: name,
                    what: format!("reply to request {} while waiting for {req_id}", msg.req_id),
                });
            }
            if msg.msg_type == MsgType::Error {
                let errno = wire::parse_error(&msg.payload)
                    .map_err(|source| XsError::Wire { op: name, source })?;
                return Ok(Err(XsError::Daemon {
                    op: name,
                    arg: arg.to_owned(),
                    errno,
                }));
            }
            if msg.msg_type != op {
                return Err(XsError::Protocol {
                    op: name,
                    what: format!("{} reply", msg.msg_type.name()),
                });
            }
            return Ok(Ok(msg.payload));
        }
    }

    fn queue_event(&mut self, msg: &Message, op: &'static str) -> Result<(), XsError> {
        let (path, token) =
            wire::parse_watch_event(&msg.payload).map_err(|source| XsError::Wire { op, source })?;
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
        self.events.push_back(WatchEvent { path, token });
        Ok(())
    }
}

/// Read one whole message: the header, then at most [`PAYLOAD_MAX`] bytes of payload.
fn read_message(t: &mut dyn Transport, op: &'static str) -> Result<Message, XsError> {
    let mut buf = [0u8; HEADER_LEN + PAYLOAD_MAX];
    let io_err = |source| XsError::Io { op, source };
    let (head, rest) = buf.split_at_mut(HEADER_LEN);
    t.read_exact(head).map_err(io_err)?;
    let h = wire::parse_header(head).map_err(|source| XsError::Wire { op, source })?;
    let body = rest.get_mut(..h.len).ok_or(XsError::Wire {
        op,
        source: WireError::PayloadTooLong { len: h.len as u64 },
    })?;
    t.read_exact(body).map_err(io_err)?;
    let whole = buf.get(..HEADER_LEN + h.len).unwrap_or(&[]);
    let (msg, _) = wire::parse_reply(whole).map_err(|source| XsError::Wire { op, source })?;
    Ok(msg)
}

/// An open transaction. Its operations see and change the store as of its start; nothing is
/// visible to others until [`Transaction::commit`]. Dropped uncommitted, it is aborted.
pub struct Transaction<'a> {
    conn: &'a XsConnection,
    id: u32,
    finished: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction").field("id", &self.id).finish()
    }
}

impl Transaction<'_> {
    /// The transaction id xenstored gave.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Read a node.
    pub fn read(&self, path: &str) -> Result<String, XsError> {
        self.conn.read_in(self.id, path)
    }
    /// Read a node; `None` if it does not exist.
    pub fn read_opt(&self, path: &str) -> Result<Option<String>, XsError> {
        self.conn.read_opt_in(self.id, path)
    }
    /// Write a node.
    pub fn write(&self, path: &str, value: &str) -> Result<(), XsError> {
        self.conn.write_in(self.id, path, value)
    }
    /// Create a node.
    pub fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.conn.mkdir_in(self.id, path)
    }
    /// Remove a subtree.
    pub fn rm(&self, path: &str) -> Result<(), XsError> {
        self.conn.rm_in(self.id, path)
    }
    /// Remove a subtree; a missing node is not an error.
    pub fn rm_if_present(&self, path: &str) -> Result<(), XsError> {
        match self.rm(path) {
            Err(e) if e.is_not_found() => Ok(()),
            r => r,
        }
    }
    /// List children.
    pub fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        self.conn.directory_in(self.id, path)
    }
    /// Remove a subtree (missing is fine), then each parent left empty, as libxl's
    /// `libxl__xs_path_cleanup`: `backend/qdisk/7/51712` takes `backend/qdisk/7` with it when
    /// it was the domain's last disk. The walk stops at the first parent with children and
    /// never removes a top-level directory or a domain's own (`/local/domain/<id>`,
    /// `/libxl/<id>`, `/vm/<uuid>`).
    pub fn rm_with_empty_parents(&self, path: &str) -> Result<(), XsError> {
        self.rm_if_present(path)?;
        let mut dir = path;
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if !removable_parent(parent) {
                break;
            }
            match self.directory(parent) {
                Ok(children) if children.is_empty() => self.rm_if_present(parent)?,
                Ok(_) => break,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            dir = parent;
        }
        Ok(())
    }
    /// Set permissions.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<(), XsError> {
        self.conn.set_perms_in(self.id, path, perms)
    }
    /// [`XsConnection::pipeline`] inside this transaction.
    pub(crate) fn pipeline(&self, reqs: &[Req]) -> Result<Vec<Result<Vec<u8>, XsError>>, XsError> {
        self.conn.pipeline(self.id, reqs)
    }
    /// Get permissions.
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>, XsError> {
        self.conn.get_perms_in(self.id, path)
    }
    /// Commit: EAGAIN ([`XsError::is_again`]) means another writer got in first; start over.
    pub fn commit(mut self) -> Result<(), XsError> {
        self.finished = true;
        self.conn.transaction_end(self.id, true)
    }
    /// Abort.
    pub fn abort(mut self) -> Result<(), XsError> {
        self.finished = true;
        self.conn.transaction_end(self.id, false)
    }
}

/// Whether [`Transaction::rm_with_empty_parents`] may remove `parent` once empty: not a
/// root-level directory, not `/local/domain` nor a domain's own directory under it.
fn removable_parent(parent: &str) -> bool {
    let depth = parent.split('/').filter(|c| !c.is_empty()).count();
    if parent.starts_with("/local/domain/") || parent == "/local/domain" || parent == "/local" {
        depth > 3
    } else {
        depth > 2
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.conn.transaction_end(self.id, false);
        }
    }
}

// ---- xenstore-rs's interface ----

impl xenstore_rs::Xs for XsConnection {
    fn directory(&self, path: &str) -> io::Result<Vec<Box<str>>> {
        Ok(XsConnection::directory(self, path)?
            .into_iter()
            .map(String::into_boxed_str)
            .collect())
    }
    fn read(&self, path: &str) -> io::Result<Box<str>> {
        Ok(XsConnection::read(self, path)?.into_boxed_str())
    }
    fn write(&self, path: &str, data: &str) -> io::Result<()> {
        Ok(XsConnection::write(self, path, data)?)
    }
    fn rm(&self, path: &str) -> io::Result<()> {
        Ok(XsConnection::rm(self, path)?)
    }
}

impl xenstore_rs::Xs for Transaction<'_> {
    fn directory(&self, path: &str) -> io::Result<Vec<Box<str>>> {
        Ok(Transaction::directory(self, path)?
            .into_iter()
            .map(String::into_boxed_str)
            .collect())
    }
    fn read(&self, path: &str) -> io::Result<Box<str>> {
        Ok(Transaction::read(self, path)?.into_boxed_str())
    }
    fn write(&self, path: &str, data: &str) -> io::Result<()> {
        Ok(Transaction::write(self, path, data)?)
    }
    fn rm(&self, path: &str) -> io::Result<()> {
        Ok(Transaction::rm(self, path)?)
    }
}

impl xenstore_rs::XsTransactionSpan for Transaction<'_> {
    fn commit(self) -> io::Result<()> {
        Ok(Transaction::commit(self)?)
    }
}

impl<'a> xenstore_rs::XsTransaction for &'a XsConnection {
    type Span = Transaction<'a>;
    fn transaction(&self) -> io::Result<Transaction<'a>> {
        Ok(XsConnection::transaction_start(self)?)
    }
}

impl xenstore_rs::Xs for &XsConnection {
    fn directory(&self, path: &str) -> io::Result<Vec<Box<str>>> {
        <XsConnection as xenstore_rs::Xs>::directory(self, path)
    }
    fn read(&self, path: &str) -> io::Result<Box<str>> {
        <XsConnection as xenstore_rs::Xs>::read(self, path)
    }
    fn write(&self, path: &str, data: &str) -> io::Result<()> {
        <XsConnection as xenstore_rs::Xs>::write(self, path, data)
    }
    fn rm(&self, path: &str) -> io::Result<()> {
        <XsConnection as xenstore_rs::Xs>::rm(self, path)
    }
}

#[cfg(test)]
mod pipeline_tests {
    use super::*;
    use crate::xenstore::fake::FakeXenstore;

    #[test]
    fn pipelined_requests_answer_as_one_by_one_and_the_stream_stays_in_step() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        // More than one window's worth: the chunks follow each other.
        let n = PIPELINE_MAX + 7;
        let mut reqs: Vec<Req> = (0..n)
            .map(|i| Req::write(&format!("/t/k{i}"), &i.to_string()))
            .collect();
        reqs.push(Req::read("/t/k3"));
        reqs.push(Req::read("/t/missing"));
        reqs.push(Req::rm("/t/missing"));
        reqs.push(Req::set_perms("/t/k1", &[Perm::new(0, Access::None)]));
        let before = store.requests();
        let replies = xs.pipeline(0, &reqs).unwrap();
        assert_eq!(store.requests() - before, reqs.len() as u64);
        assert_eq!(replies.len(), reqs.len());
        for r in replies.get(..n).unwrap() {
            assert_eq!(r.as_ref().unwrap().as_slice(), b"OK\0");
        }
        let tail: Vec<_> = replies.get(n..).unwrap().iter().collect();
        assert_eq!(tail[0].as_ref().unwrap().as_slice(), b"3");
        assert!(tail[1].as_ref().unwrap_err().is_not_found());
        // (xenstoreds differ on removing a missing node: OK or ENOENT; either is a reply.)
        assert!(tail[2]
            .as_ref()
            .map_or_else(XsError::is_not_found, |_| true));
        assert!(tail[3].is_ok());
        // The next plain request gets its own reply.
        assert_eq!(
            xs.read(&format!("/t/k{}", n - 1)).unwrap(),
            (n - 1).to_string()
        );
        // Inside a transaction: nothing is seen until the commit.
        let t = xs.transaction_start().unwrap();
        let r = t
            .pipeline(&[Req::write("/u/a", "1"), Req::read("/u/a")])
            .unwrap();
        assert_eq!(r[1].as_ref().unwrap().as_slice(), b"1");
        assert!(xs.read_opt("/u/a").unwrap().is_none());
        t.commit().unwrap();
        assert_eq!(xs.read("/u/a").unwrap(), "1");
    }
}

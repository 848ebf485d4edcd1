//! The xenstore wire protocol, as `xen/include/public/io/xs_wire.h` defines it.
//!
//! Every message is a 16-byte header (`struct xsd_sockmsg`: type, req_id, tx_id, len, all
//! native-endian u32) followed by `len` bytes of payload, at most [`PAYLOAD_MAX`]. Payloads are
//! NUL-separated strings. This module is pure: it encodes requests and parses replies from byte
//! slices, so the parser can be fuzzed without a socket ([`parse_reply`]). Every length that
//! comes from the wire is checked before it is used; nothing here allocates more than
//! [`PAYLOAD_MAX`] bytes per message.

use thiserror::Error;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest payload either side may send.
pub const PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path xenstored accepts.
pub const ABS_PATH_MAX: usize = 3072;
/// Longest `XS_ERROR` payload we keep in an error value (the longest real one is 9 bytes).
const ERRNO_NAME_MAX: usize = 16;

/// `enum xsd_sockmsg_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_GET_PERMS`.
    GetPerms = 3,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT`: asynchronous, never a reply to a request.
    WatchEvent = 15,
    /// `XS_ERROR`: the reply to a failed request, payload an errno name.
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (`XS_SET_TARGET + 2`: `XS_RESTRICT` was removed).
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
}

/// Every message type, for tables and tests.
pub const ALL_TYPES: [MsgType; 22] = [
    MsgType::Control,
    MsgType::Directory,
    MsgType::Read,
    MsgType::GetPerms,
    MsgType::Watch,
    MsgType::Unwatch,
    MsgType::TransactionStart,
    MsgType::TransactionEnd,
    MsgType::Introduce,
    MsgType::Release,
    MsgType::GetDomainPath,
    MsgType::Write,
    MsgType::Mkdir,
    MsgType::Rm,
    MsgType::SetPerms,
    MsgType::WatchEvent,
    MsgType::Error,
    MsgType::IsDomainIntroduced,
    MsgType::Resume,
    MsgType::SetTarget,
    MsgType::ResetWatches,
    MsgType::DirectoryPart,
];

impl MsgType {
    /// The type with this wire number, if there is one.
    pub fn from_u32(v: u32) -> Option<Self> {
        ALL_TYPES.iter().copied().find(|t| *t as u32 == v)
    }

    /// The C name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Control => "XS_CONTROL",
            Self::Directory => "XS_DIRECTORY",
            Self::Read => "XS_READ",
            Self::GetPerms => "XS_GET_PERMS",
            Self::Watch => "XS_WATCH",
            Self::Unwatch => "XS_UNWATCH",
            Self::TransactionStart => "XS_TRANSACTION_START",
            Self::TransactionEnd => "XS_TRANSACTION_END",
            Self::Introduce => "XS_INTRODUCE",
            Self::Release => "XS_RELEASE",
            Self::GetDomainPath => "XS_GET_DOMAIN_PATH",
            Self::Write => "XS_WRITE",
            Self::Mkdir => "XS_MKDIR",
            Self::Rm => "XS_RM",
            Self::SetPerms => "XS_SET_PERMS",
            Self::WatchEvent => "XS_WATCH_EVENT",
            Self::Error => "XS_ERROR",
            Self::IsDomainIntroduced => "XS_IS_DOMAIN_INTRODUCED",
            Self::Resume => "XS_RESUME",
            Self::SetTarget => "XS_SET_TARGET",
            Self::ResetWatches => "XS_RESET_WATCHES",
            Self::DirectoryPart => "XS_DIRECTORY_PART",
        }
    }
}

/// The errors xenstored reports (`xsd_errors[]`, in the header's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Errno {
    /// Invalid argument.
    EINVAL,
    /// Permission denied.
    EACCES,
    /// Node exists.
    EEXIST,
    /// Is a directory.
    EISDIR,
    /// No such node.
    ENOENT,
    /// Out of memory.
    ENOMEM,
    /// Quota exceeded.
    ENOSPC,
    /// I/O error.
    EIO,
    /// Directory not empty.
    ENOTEMPTY,
    /// Operation not supported.
    ENOSYS,
    /// Read-only.
    EROFS,
    /// Busy.
    EBUSY,
    /// Transaction conflict: retry.
    EAGAIN,
    /// Already connected (domain already introduced).
    EISCONN,
    /// Reply or request too big.
    E2BIG,
    /// Not permitted.
    EPERM,
}

/// Every errno xenstored sends, in `xsd_errors[]` order.
pub const ALL_ERRNOS: [Errno; 16] = [
    Errno::EINVAL,
    Errno::EACCES,
    Errno::EEXIST,
    Errno::EISDIR,
    Errno::ENOENT,
    Errno::ENOMEM,
    Errno::ENOSPC,
    Errno::EIO,
    Errno::ENOTEMPTY,
    Errno::ENOSYS,
    Errno::EROFS,
    Errno::EBUSY,
    Errno::EAGAIN,
    Errno::EISCONN,
    Errno::E2BIG,
    Errno::EPERM,
];

impl Errno {
    /// The name as it travels on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::EINVAL => "EINVAL",
            Self::EACCES => "EACCES",
            Self::EEXIST => "EEXIST",
            Self::EISDIR => "EISDIR",
            Self::ENOENT => "ENOENT",
            Self::ENOMEM => "ENOMEM",
            Self::ENOSPC => "ENOSPC",
            Self::EIO => "EIO",
            Self::ENOTEMPTY => "ENOTEMPTY",
            Self::ENOSYS => "ENOSYS",
            Self::EROFS => "EROFS",
            Self::EBUSY => "EBUSY",
            Self::EAGAIN => "EAGAIN",
            Self::EISCONN => "EISCONN",
            Self::E2BIG => "E2BIG",
            Self::EPERM => "EPERM",
        }
    }

    /// The errno with this wire name.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        ALL_ERRNOS
            .iter()
            .copied()
            .find(|e| e.name().as_bytes() == name)
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with bytes that came off the wire, or with a request we were asked to build.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than a whole message: `need` bytes in all are needed.
    #[error("truncated xenstore message: {have} bytes, {need} needed")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header says the message has.
        need: usize,
    },
    /// The header announces a payload longer than `XENSTORE_PAYLOAD_MAX`.
    #[error("xenstore payload of {len} bytes exceeds the {PAYLOAD_MAX}-byte maximum")]
    PayloadTooLong {
        /// The announced length.
        len: u64,
    },
    /// The header's type is no `XS_*` value.
    #[error("unknown xenstore message type {0}")]
    UnknownType(u32),
    /// An `XS_ERROR` payload names no errno of `xsd_errors[]`.
    #[error("unknown xenstore error {0:?}")]
    UnknownErrno(String),
    /// A string in the payload is not UTF-8.
    #[error("xenstore payload is not UTF-8")]
    NotUtf8,
    /// The payload does not have the shape the message type requires.
    #[error("malformed xenstore payload: {0}")]
    Malformed(&'static str),
    /// A request would not fit in one message.
    #[error("xenstore request of {len} bytes exceeds the {PAYLOAD_MAX}-byte maximum")]
    RequestTooLong {
        /// Payload length of the request.
        len: usize,
    },
    /// A path or value that cannot be sent (empty path, embedded NUL, too long).
    #[error("invalid xenstore path or value {0:?}")]
    BadArgument(String),
}

/// A parsed message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub msg_type: MsgType,
    /// Request id, echoed by the daemon.
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Payload length, already checked against [`PAYLOAD_MAX`].
    pub len: usize,
}

/// One whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Type of the message.
    pub msg_type: MsgType,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// The payload, at most [`PAYLOAD_MAX`] bytes.
    pub payload: Vec<u8>,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_ne_bytes(b))
}

/// Parse a header from the first [`HEADER_LEN`] bytes of `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<Header, WireError> {
    let field = |i: usize| {
        u32_at(bytes, i * 4).ok_or(WireError::Truncated {
            have: bytes.len(),
            need: HEADER_LEN,
        })
    };
    let (ty, req_id, tx_id, len) = (field(0)?, field(1)?, field(2)?, field(3)?);
    let len_usize =
        usize::try_from(len).map_err(|_| WireError::PayloadTooLong { len: len.into() })?;
    if len_usize > PAYLOAD_MAX {
        return Err(WireError::PayloadTooLong { len: len.into() });
    }
    let msg_type = MsgType::from_u32(ty).ok_or(WireError::UnknownType(ty))?;
    Ok(Header {
        msg_type,
        req_id,
        tx_id,
        len: len_usize,
    })
}

/// Parse one whole message from the front of `bytes`: the message and how many bytes it took.
///
/// This is the parser every reply from xenstored goes through; it never panics and never
/// allocates more than [`PAYLOAD_MAX`] bytes, whatever `bytes` holds.
pub fn parse_reply(bytes: &[u8]) -> Result<(Message, usize), WireError> {
    let h = parse_header(bytes)?;
    let total = HEADER_LEN + h.len;
    let payload = bytes.get(HEADER_LEN..total).ok_or(WireError::Truncated {
        have: bytes.len(),
        need: total,
    })?;
    let msg = Message {
        msg_type: h.msg_type,
        req_id: h.req_id,
        tx_id: h.tx_id,
        payload: payload.to_vec(),
    };
    Ok((msg, total))
}

/// Encode a message whose payload is `parts` each followed by a NUL, except the last when
/// `nul_last` is false (`XS_WRITE`'s value is not NUL-terminated).
pub fn encode(
    msg_type: MsgType,
    req_id: u32,
    tx_id: u32,
    parts: &[&[u8]],
    nul_last: bool,
) -> Result<Vec<u8>, WireError> {
    let mut payload = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        payload.extend_from_slice(p);
        if nul_last || i + 1 < parts.len() {
            payload.push(0);
        }
    }
    encode_raw(msg_type, req_id, tx_id, &payload)
}

/// Encode a message with the given payload bytes.
pub fn encode_raw(
    msg_type: MsgType,
    req_id: u32,
    tx_id: u32,
    payload: &[u8],
) -> Result<Vec<u8>, WireError> {
    if payload.len() > PAYLOAD_MAX {
        return Err(WireError::RequestTooLong { len: payload.len() });
    }
    let len = u32::try_from(payload.len())
        .map_err(|_| WireError::RequestTooLong { len: payload.len() })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    for v in [msg_type as u32, req_id, tx_id, len] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.extend_from_slice(payload);
    Ok(out)
}

/// Check a path before it is sent: not empty, no NUL, not longer than [`ABS_PATH_MAX`].
pub fn check_path(path: &str) -> Result<(), WireError> {
    if path.is_empty() || path.len() > ABS_PATH_MAX || path.contains('\0') {
        let shown: String = path.chars().take(64).collect();
        return Err(WireError::BadArgument(shown));
    }
    Ok(())
}

/// The errno of an `XS_ERROR` payload (`"EAGAIN\0"`).
pub fn parse_error(payload: &[u8]) -> Result<Errno, WireError> {
    let name = payload.strip_suffix(&[0]).unwrap_or(payload);
    Errno::from_name(name).ok_or_else(|| {
        let shown = name.get(..ERRNO_NAME_MAX).unwrap_or(name);
        WireError::UnknownErrno(String::from_utf8_lossy(shown).into_owned())
    })
}

/// A single string payload, with at most one trailing NUL removed (`XS_READ` values have none,
/// `XS_GET_DOMAIN_PATH` and `XS_TRANSACTION_START` replies have one).
pub fn parse_string(payload: &[u8]) -> Result<String, WireError> {
    let s = payload.strip_suffix(&[0]).unwrap_or(payload);
    if s.contains(&0) {
        return Err(WireError::Malformed("NUL inside a single-string payload"));
    }
    String::from_utf8(s.to_vec()).map_err(|_| WireError::NotUtf8)
}

/// A list payload: NUL-terminated strings (`XS_DIRECTORY`, `XS_GET_PERMS`, `XS_WATCH_EVENT`).
/// An empty payload is an empty list; a last string without its NUL is accepted.
pub fn parse_list(payload: &[u8]) -> Result<Vec<String>, WireError> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if payload.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|b| *b == 0)
        .map(|s| String::from_utf8(s.to_vec()).map_err(|_| WireError::NotUtf8))
        .collect()
}

/// The `"OK\0"` acknowledgement of writes, removals and the like.
pub fn parse_ok(payload: &[u8]) -> Result<(), WireError> {
    match payload {
        b"OK\0" | b"OK" => Ok(()),
        _ => Err(WireError::Malformed("expected OK")),
    }
}

/// A watch event: `path\0token\0`.
pub fn parse_watch_event(payload: &[u8]) -> Result<(String, String), WireError> {
    let mut l = parse_list(payload)?.into_iter();
    match (l.next(), l.next(), l.next()) {
        (Some(path), Some(token), None) => Ok((path, token)),
        _ => Err(WireError::Malformed("watch event is not path and token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = encode(MsgType::Write, 7, 3, &[b"/a/b", b"value"], false).unwrap();
        let (msg, used) = parse_reply(&m).unwrap();
        assert_eq!(used, m.len());
        assert_eq!(msg.msg_type, MsgType::Write);
        assert_eq!((msg.req_id, msg.tx_id), (7, 3));
        assert_eq!(msg.payload, b"/a/b\0value");
    }

    #[test]
    fn hostile_headers_refused_without_allocating() {
        let mut m = encode_raw(MsgType::Read, 1, 0, b"x").unwrap();
        m[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(
            parse_reply(&m),
            Err(WireError::PayloadTooLong {
                len: u32::MAX.into()
            })
        );
        m[12..16].copy_from_slice(&4097u32.to_ne_bytes());
        assert!(matches!(
            parse_reply(&m),
            Err(WireError::PayloadTooLong { .. })
        ));
        m[12..16].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(
            parse_reply(&m),
            Err(WireError::Truncated { have: 17, need: 18 })
        );
        m[0..4].copy_from_slice(&20u32.to_ne_bytes());
        assert_eq!(parse_reply(&m), Err(WireError::UnknownType(20)));
        for n in 0..HEADER_LEN {
            assert!(matches!(
                parse_reply(&m[..n]),
                Err(WireError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn payload_shapes() {
        assert_eq!(parse_error(b"EAGAIN\0"), Ok(Errno::EAGAIN));
        assert!(matches!(
            parse_error(b"EWHAT\0"),
            Err(WireError::UnknownErrno(_))
        ));
        assert_eq!(parse_list(b"a\0b\0").unwrap(), vec!["a", "b"]);
        assert_eq!(parse_list(b"").unwrap(), Vec::<String>::new());
        assert_eq!(parse_list(b"\0").unwrap(), vec![""]);
        assert_eq!(
            parse_string(b"/local/domain/3\0").unwrap(),
            "/local/domain/3"
        );
        assert!(parse_string(b"a\0b").is_err());
        assert!(parse_string(&[0xff, 0xfe]).is_err());
        assert!(parse_ok(b"NO\0").is_err());
        assert_eq!(
            parse_watch_event(b"/p\0tok\0").unwrap(),
            ("/p".into(), "tok".into())
        );
        assert!(parse_watch_event(b"/p\0").is_err());
        assert!(encode_raw(MsgType::Write, 0, 0, &[b'a'; PAYLOAD_MAX + 1]).is_err());
    }
}

//! The resident toolstack's messages: what a client sends and what it gets back.
//!
//! One request is one `SOCK_SEQPACKET` packet: the magic [`MAGIC`], then the command's
//! arguments (those after `pvbuild`), each ended by a NUL byte. Its ancillary data carries
//! exactly [`REQUEST_FDS`] descriptors: the client's standard input, output and error, and
//! its working directory. The reply is one packet: [`MAGIC`] and the command's exit status.
//! Pure functions over bytes; the socket calls are in [`super::server`] and [`super::client`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The first bytes of every packet (`pvbuild serve`, protocol 1).
pub const MAGIC: &[u8; 4] = b"PVB1";

/// The largest request accepted: a command line of 64 KiB (Linux allows more; no pvbuild
/// command needs it, and the server's buffer stays bounded).
pub const MAX_REQUEST: usize = 64 * 1024;

/// The most arguments one request may carry.
pub const MAX_ARGS: usize = 4096;

/// Descriptors passed with a request: stdin, stdout, stderr, the working directory.
pub const REQUEST_FDS: usize = 4;

/// A reply's length: [`MAGIC`] and one status byte.
pub const REPLY_LEN: usize = MAGIC.len() + 1;

/// Why a packet is not a request or a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// It does not start with [`MAGIC`].
    #[error("not a pvbuild request (its first bytes are not {MAGIC:?})")]
    BadMagic,
    /// The command line is larger than [`MAX_REQUEST`].
    #[error("the request is {0} bytes, more than the {MAX_REQUEST} accepted")]
    TooLarge(usize),
    /// An argument is not ended by its NUL byte.
    #[error("the request's last argument is not ended by a NUL byte")]
    Unterminated,
    /// An argument holds a NUL byte (it could not have come from a command line).
    #[error("argument {0} holds a NUL byte")]
    NulInArgument(usize),
    /// More than [`MAX_ARGS`] arguments.
    #[error("the request has more than {MAX_ARGS} arguments")]
    TooManyArgs,
    /// No command at all.
    #[error("the request names no command")]
    Empty,
    /// A reply that is not [`REPLY_LEN`] bytes.
    #[error("a reply of {0} bytes (expected {REPLY_LEN})")]
    BadReply(usize),
}

/// The packet asking the server to run `args` (the words after `pvbuild`).
pub fn encode_request<S: AsRef<OsStr>>(args: &[S]) -> Result<Vec<u8>, WireError> {
    if args.is_empty() {
        return Err(WireError::Empty);
    }
    if args.len() > MAX_ARGS {
        return Err(WireError::TooManyArgs);
    }
    let mut out = MAGIC.to_vec();
    for (i, a) in args.iter().enumerate() {
        let b = a.as_ref().as_bytes();
        if b.contains(&0) {
            return Err(WireError::NulInArgument(i));
        }
        out.extend_from_slice(b);
        out.push(0);
    }
    if out.len() > MAX_REQUEST {
        return Err(WireError::TooLarge(out.len()));
    }
    Ok(out)
}

/// The arguments of a request packet.
pub fn decode_request(packet: &[u8]) -> Result<Vec<OsString>, WireError> {
    if packet.len() > MAX_REQUEST {
        return Err(WireError::TooLarge(packet.len()));
    }
    let body = packet.strip_prefix(MAGIC).ok_or(WireError::BadMagic)?;
    if body.is_empty() {
        return Err(WireError::Empty);
    }
    let body = body.strip_suffix(&[0]).ok_or(WireError::Unterminated)?;
    let args: Vec<OsString> = body
        .split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    if args.len() > MAX_ARGS {
        return Err(WireError::TooManyArgs);
    }
    Ok(args)
}

/// The reply carrying exit status `code`.
pub fn encode_reply(code: u8) -> [u8; REPLY_LEN] {
    let [a, b, c, d] = *MAGIC;
    [a, b, c, d, code]
}

/// The exit status a reply carries.
pub fn decode_reply(packet: &[u8]) -> Result<u8, WireError> {
    if packet.len() != REPLY_LEN {
        return Err(WireError::BadReply(packet.len()));
    }
    match packet.strip_prefix(MAGIC) {
        Some(&[code]) => Ok(code),
        _ => Err(WireError::BadMagic),
    }
}

/// A request's words as one line for a log or a terminal (the server's log, the client's
/// `--times`): lossy UTF-8, control characters as `?`, at most 200 characters.
pub fn shown<S: AsRef<OsStr>>(args: &[S]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    crate::commands::printable(&words.join(" "), 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_goes_and_comes_back_whole() {
        let args = ["create", "-p", "", "name=\"a b\"", "/etc/xen/x.cfg"];
        let p = encode_request(&args).unwrap();
        assert_eq!(&p[..4], b"PVB1");
        assert_eq!(&p[4..11], b"create\0");
        let back = decode_request(&p).unwrap();
        assert_eq!(back, args.iter().map(OsString::from).collect::<Vec<_>>());
        // Not UTF-8: passed as bytes, as a command line passes them.
        let odd = OsString::from_vec(vec![0xff, b'x']);
        let p = encode_request(std::slice::from_ref(&odd)).unwrap();
        assert_eq!(decode_request(&p).unwrap(), vec![odd]);
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(decode_request(b"PVB2list\0"), Err(WireError::BadMagic));
        assert_eq!(decode_request(b"PV"), Err(WireError::BadMagic));
        assert_eq!(decode_request(b"PVB1"), Err(WireError::Empty));
        assert_eq!(decode_request(b"PVB1list"), Err(WireError::Unterminated));
        let mut big = MAGIC.to_vec();
        big.resize(MAX_REQUEST + 1, b'a');
        assert_eq!(
            decode_request(&big),
            Err(WireError::TooLarge(MAX_REQUEST + 1))
        );
        let mut many = MAGIC.to_vec();
        many.extend(std::iter::repeat_n(0u8, MAX_ARGS + 1));
        assert_eq!(decode_request(&many), Err(WireError::TooManyArgs));
        assert_eq!(
            encode_request(&["a", "b\0c"]),
            Err(WireError::NulInArgument(1))
        );
        assert_eq!(encode_request::<&str>(&[]), Err(WireError::Empty));
        let long = "x".repeat(MAX_REQUEST);
        assert!(matches!(
            encode_request(&[long]),
            Err(WireError::TooLarge(_))
        ));
    }

    #[test]
    fn replies_carry_the_status() {
        for code in [0u8, 1, 2, 255] {
            assert_eq!(decode_reply(&encode_reply(code)), Ok(code));
        }
        assert_eq!(decode_reply(b"PVB1"), Err(WireError::BadReply(4)));
        assert_eq!(decode_reply(b"XVB1\0"), Err(WireError::BadMagic));
    }
}

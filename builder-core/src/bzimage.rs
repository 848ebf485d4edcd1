//! The Linux bzImage container (Documentation/arch/x86/boot.rst): a real-mode setup part of
//! `setup_sects + 1` sectors whose header (at 0x1f1, magic "HdrS" at 0x202) says where the
//! compressed protected-mode kernel, the payload, lies. libxenguest's bzImage loader
//! (`xc_dom_probe_bzimage_kernel`, xg_dom_bzimageloader.c) needs boot protocol 2.08 or later,
//! the first with `payload_offset` / `payload_length`.

use crate::decompress::Compression;

/// Offset of `setup_sects` in the file.
const SETUP_SECTS: usize = 0x1f1;
/// Offset of the "HdrS" magic.
const HEADER: usize = 0x202;
/// Offset of the boot protocol version.
const VERSION: usize = 0x206;
/// Offset of `payload_offset` (relative to the start of the protected-mode code).
const PAYLOAD_OFFSET: usize = 0x248;
/// Offset of `payload_length`.
const PAYLOAD_LENGTH: usize = 0x24c;
/// Size of the part of the setup header libxenguest reads (`sizeof(struct setup_header)`).
pub const SETUP_HEADER_END: usize = 0x250;
/// The oldest boot protocol with a payload: 2.08.
pub const MIN_VERSION: u16 = 0x0208;

/// Why a bzImage header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BzImageError {
    /// Shorter than the setup header, or no "HdrS" magic.
    NotBzImage,
    /// Boot protocol older than 2.08.
    ProtocolTooOld {
        /// The header's version field.
        version: u16,
    },
    /// `(setup_sects + 1) * 512 + payload_offset` is at or beyond the end of the file.
    PayloadOffsetOutOfFile {
        /// The computed file offset.
        offset: u64,
        /// File size.
        file_len: u64,
    },
    /// The payload runs past the end of the file.
    PayloadLengthOutOfFile {
        /// The payload's file offset.
        offset: u64,
        /// `payload_length`.
        length: u64,
        /// File size.
        file_len: u64,
    },
    /// The payload starts with no magic libxenguest knows.
    UnknownCompression,
}

impl core::fmt::Display for BzImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BzImageError::NotBzImage => f.write_str("not a bzImage (no HdrS setup header)"),
            BzImageError::ProtocolTooOld { version } => {
                write!(f, "boot protocol too old ({version:04x}, need 0208)")
            }
            BzImageError::PayloadOffsetOutOfFile { offset, file_len } => write!(
                f,
                "payload offset {offset:#x} is beyond the file ({file_len:#x} bytes)"
            ),
            BzImageError::PayloadLengthOutOfFile {
                offset,
                length,
                file_len,
            } => write!(
                f,
                "payload {offset:#x}+{length:#x} runs past the file ({file_len:#x} bytes)"
            ),
            BzImageError::UnknownCompression => f.write_str("unknown payload compression"),
        }
    }
}

/// A parsed bzImage: where its payload is and how it is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BzImage<'a> {
    /// Boot protocol version.
    pub version: u16,
    /// File offset of the payload.
    pub payload_offset: u64,
    /// The payload bytes (`payload_length` of them).
    pub payload: &'a [u8],
    /// The payload's compression, by magic; `None` if unknown.
    pub compression: Option<Compression>,
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2)
        .and_then(|w| <[u8; 2]>::try_from(w).ok())
        .map(u16::from_le_bytes)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_le_bytes)
}

/// Whether `file` carries the bzImage setup header magic (does not validate it).
pub fn has_magic(file: &[u8]) -> bool {
    file.len() >= SETUP_HEADER_END && file.get(HEADER..HEADER + 4) == Some(b"HdrS".as_slice())
}

/// Parse the setup header and locate the payload, with libxenguest's checks.
pub fn parse(file: &[u8]) -> Result<BzImage<'_>, BzImageError> {
    if !has_magic(file) {
        return Err(BzImageError::NotBzImage);
    }
    let version = le16(file, VERSION).ok_or(BzImageError::NotBzImage)?;
    if version < MIN_VERSION {
        return Err(BzImageError::ProtocolTooOld { version });
    }
    let setup_sects = u64::from(file.get(SETUP_SECTS).copied().unwrap_or(0));
    let rel = u64::from(le32(file, PAYLOAD_OFFSET).ok_or(BzImageError::NotBzImage)?);
    let length = u64::from(le32(file, PAYLOAD_LENGTH).ok_or(BzImageError::NotBzImage)?);
    // All in 64 bits: (255 + 1) * 512 + u32::MAX cannot overflow.
    let offset = (setup_sects + 1) * 512 + rel;
    let file_len = file.len() as u64;
    if offset >= file_len {
        return Err(BzImageError::PayloadOffsetOutOfFile { offset, file_len });
    }
    if offset + length > file_len {
        return Err(BzImageError::PayloadLengthOutOfFile {
            offset,
            length,
            file_len,
        });
    }
    let payload = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(offset + length).ok())
        .and_then(|(s, e)| file.get(s..e))
        .ok_or(BzImageError::PayloadLengthOutOfFile {
            offset,
            length,
            file_len,
        })?;
    Ok(BzImage {
        version,
        payload_offset: offset,
        payload,
        compression: Compression::detect(payload),
    })
}

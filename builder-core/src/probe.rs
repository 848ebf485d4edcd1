//! What kind of kernel image a file is, tried in libxenguest's order: a gzip wrapper is
//! undone first (`xc_dom_try_gunzip` runs before any loader probes), then the loaders in
//! registration order: 'bin' (multiboot-binary), Linux bzImage, ELF.

use crate::decompress::Compression;
use crate::{bin, bzimage};

/// The format of a kernel file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An uncompressed ELF image.
    Elf,
    /// A gzip-wrapped kernel (decompress, then probe again).
    Gzip,
    /// A Linux bzImage with a valid setup header and a known payload compression.
    BzImage {
        /// File offset of the payload.
        payload_offset: u64,
        /// Length of the payload.
        payload_len: u64,
        /// Its compression.
        compression: Compression,
    },
    /// A 'bin' image with Xen's multiboot-style header table.
    Bin,
    /// None of these (including a bzImage whose header or payload is invalid: see
    /// [`bzimage::parse`] for why).
    Unknown,
}

/// Identify a kernel file. Never fails: what it cannot place is [`Format::Unknown`].
pub fn identify(bytes: &[u8]) -> Format {
    if bytes.starts_with(b"\x1f\x8b") {
        return Format::Gzip;
    }
    if bin::find_table(bytes).is_some() {
        return Format::Bin;
    }
    if bzimage::has_magic(bytes) {
        return match bzimage::parse(bytes) {
            Ok(bzimage::BzImage {
                payload_offset,
                payload,
                compression: Some(compression),
                ..
            }) => Format::BzImage {
                payload_offset,
                payload_len: payload.len() as u64,
                compression,
            },
            _ => Format::Unknown,
        };
    }
    if bytes.starts_with(b"\x7fELF") {
        return Format::Elf;
    }
    Format::Unknown
}

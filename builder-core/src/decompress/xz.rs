//! The xz container (tukaani's `.xz` file format 1.2.1): stream header, blocks, index and
//! stream footer, read here; each block's filter chain (an optional BCJ filter, then LZMA2)
//! decoded by `lzma-rust2`; each block's check verified here.
//!
//! Why not `lzma_rust2::XzStream`: it computes CRC32 and CRC64 one byte at a time, which was
//! two thirds of the time spent on an xz stream of zeros and a sixth of `pvbuild plan` on
//! Debian's kernel (`perf`, docs/limits.md). `crc32fast` and `crc`'s slice-by-16 tables do
//! the same checks several times faster. Reading the container ourselves also lets each
//! block's dictionary be no larger than the output it may still produce: LZMA2 cannot refer
//! further back than the block's start, so a 32 MiB dictionary for a 4 MiB output is 28 MiB
//! of zeroed memory nobody reads.
//!
//! Like Linux's boot decompressor and libxenguest, one stream is decoded and whatever follows
//! its footer is ignored. Unlike them, CRC64 and SHA-256 checks are verified rather than
//! refused, and a reserved check ID is refused rather than skipped.

use super::{Compression, DecompressError, Output};
use crate::limits::MAX_DECODER_MEMORY;
use lzma_rust2::filter::bcj::BcjReader;
use lzma_rust2::{Lzma2Reader, Read};
use sha2::Digest;

const FMT: Compression = Compression::Xz;
const HEADER_MAGIC: &[u8; 6] = b"\xfd7zXZ\x00";
const FOOTER_MAGIC: &[u8; 2] = b"YZ";
/// Stream header and footer are both 12 bytes.
const HEADER_LEN: usize = 12;
/// The largest value a variable-length integer may have (`LZMA_VLI_MAX`).
const VLI_MAX: u64 = u64::MAX / 2;
/// Filter IDs (format spec 5.3).
const FILTER_LZMA2: u64 = 0x21;
const FILTER_DELTA: u64 = 0x03;

fn corrupt(reason: &'static str) -> DecompressError {
    DecompressError::Corrupt {
        format: FMT,
        reason,
    }
}

fn truncated() -> DecompressError {
    DecompressError::Truncated { format: FMT }
}

fn map_err(e: lzma_rust2::Error) -> DecompressError {
    super::lzma::map_err(FMT, e)
}

/// The integrity check a stream's blocks carry (stream flags, low nibble).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckKind {
    None,
    Crc32,
    Crc64,
    Sha256,
}

impl CheckKind {
    fn from_id(id: u8) -> Result<Self, DecompressError> {
        match id {
            0x00 => Ok(CheckKind::None),
            0x01 => Ok(CheckKind::Crc32),
            0x04 => Ok(CheckKind::Crc64),
            0x0a => Ok(CheckKind::Sha256),
            _ => Err(corrupt("unsupported integrity check")),
        }
    }

    const fn len(self) -> usize {
        match self {
            CheckKind::None => 0,
            CheckKind::Crc32 => 4,
            CheckKind::Crc64 => 8,
            CheckKind::Sha256 => 32,
        }
    }
}

static CRC64_XZ: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_XZ);

/// A running check over one block's output.
enum Check {
    None,
    Crc32(crc32fast::Hasher),
    Crc64(crc::Digest<'static, u64, crc::Table<16>>),
    Sha256(sha2::Sha256),
}

impl Check {
    fn new(kind: CheckKind) -> Self {
        match kind {
            CheckKind::None => Check::None,
            CheckKind::Crc32 => Check::Crc32(crc32fast::Hasher::new()),
            CheckKind::Crc64 => Check::Crc64(CRC64_XZ.digest()),
            CheckKind::Sha256 => Check::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Check::None => {}
            Check::Crc32(h) => h.update(data),
            Check::Crc64(d) => d.update(data),
            Check::Sha256(s) => s.update(data),
        }
    }

    /// Whether the check equals `stored` (the field after the block, of the kind's length).
    fn matches(self, stored: &[u8]) -> bool {
        match self {
            Check::None => stored.is_empty(),
            Check::Crc32(h) => stored == h.finalize().to_le_bytes(),
            Check::Crc64(d) => stored == d.finalize().to_le_bytes(),
            Check::Sha256(s) => stored == s.finalize().as_slice(),
        }
    }
}

/// A cursor over the input that never reads past its end.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecompressError> {
        let end = self.pos.checked_add(n).ok_or_else(truncated)?;
        let bytes = self.data.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, DecompressError> {
        self.take(1).map(|b| b.first().copied().unwrap_or(0))
    }

    fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// Skip the zero bytes that pad what started at `start` to a multiple of four.
    fn padding(&mut self, start: usize, what: &'static str) -> Result<(), DecompressError> {
        let len = self.pos.wrapping_sub(start);
        let pad = (4 - len % 4) % 4;
        if self.take(pad)?.iter().any(|&b| b != 0) {
            return Err(corrupt(what));
        }
        Ok(())
    }
}

fn le32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    for (d, s) in w.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(w)
}

/// A variable-length integer (format spec 1.2): 7 bits per byte, at most 9 bytes, no
/// trailing zero byte, at most [`VLI_MAX`].
fn vli(c: &mut Cursor<'_>) -> Result<u64, DecompressError> {
    let mut value = 0u64;
    for i in 0..9u32 {
        let b = c.byte()?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(corrupt("non-minimal integer"));
            }
            return if value <= VLI_MAX {
                Ok(value)
            } else {
                Err(corrupt("integer too large"))
            };
        }
    }
    Err(corrupt("integer too long"))
}

/// Stream header or footer flags: a zero byte, then the check ID in the low nibble.
fn stream_flags(flags: &[u8]) -> Result<CheckKind, DecompressError> {
    match flags {
        [0, id] if id & 0xf0 == 0 => CheckKind::from_id(*id),
        _ => Err(corrupt("unsupported stream flags")),
    }
}

/// One block's header (format spec 3.1), as far as decoding needs it.
#[derive(Debug)]
struct BlockHeader {
    /// Size of the header itself.
    len: usize,
    compressed: Option<u64>,
    uncompressed: Option<u64>,
    /// The BCJ filter before LZMA2, with its start offset.
    bcj: Option<(u64, u32)>,
    /// LZMA2's dictionary size.
    dict_size: u32,
}

/// LZMA2's one property byte: the dictionary size (format spec 5.3.1).
fn lzma2_dict_size(props: &[u8]) -> Result<u32, DecompressError> {
    match props {
        [40] => Ok(u32::MAX),
        [b @ 0..=39] => Ok((2 | u32::from(b & 1)) << (b / 2 + 11)),
        _ => Err(corrupt("bad LZMA2 properties")),
    }
}

fn block_header(c: &mut Cursor<'_>, size_byte: u8) -> Result<BlockHeader, DecompressError> {
    // The size byte has been read; the header is (size_byte + 1) * 4 bytes in all.
    let len = (usize::from(size_byte) + 1) * 4;
    let start = c.pos.saturating_sub(1);
    let all = c
        .data
        .get(start..)
        .and_then(|d| d.get(..len))
        .ok_or_else(truncated)?;
    let (covered, crc) = all.split_at(len - 4);
    if crc32fast::hash(covered) != le32(crc) {
        return Err(corrupt("block header CRC32 mismatch"));
    }
    let mut h = Cursor {
        data: covered,
        pos: 1,
    };
    let flags = h.byte()?;
    if flags & 0x3c != 0 {
        return Err(corrupt("unsupported block flags"));
    }
    let compressed = if flags & 0x40 != 0 {
        Some(vli(&mut h)?)
    } else {
        None
    };
    let uncompressed = if flags & 0x80 != 0 {
        Some(vli(&mut h)?)
    } else {
        None
    };
    let filters = usize::from(flags & 3) + 1;
    let mut bcj = None;
    let mut dict_size = None;
    for i in 0..filters {
        let id = vli(&mut h)?;
        let props_len =
            usize::try_from(vli(&mut h)?).map_err(|_| corrupt("bad filter properties"))?;
        let props = h.take(props_len)?;
        let last = i + 1 == filters;
        match id {
            FILTER_LZMA2 if last => dict_size = Some(lzma2_dict_size(props)?),
            FILTER_LZMA2 => return Err(corrupt("LZMA2 is not the last filter")),
            0x04..=0x0b if !last && bcj.is_none() => {
                let start = match props {
                    [] => 0,
                    [_, _, _, _] => le32(props),
                    _ => return Err(corrupt("bad BCJ properties")),
                };
                bcj = Some((id, start));
            }
            FILTER_DELTA => return Err(corrupt("unsupported filter (delta)")),
            _ => return Err(corrupt("unsupported filter chain")),
        }
    }
    if h.rest().iter().any(|&b| b != 0) {
        return Err(corrupt("non-zero block header padding"));
    }
    c.pos = start + len;
    Ok(BlockHeader {
        len,
        compressed,
        uncompressed,
        bcj,
        dict_size: dict_size.ok_or_else(|| corrupt("no LZMA2 filter"))?,
    })
}

/// A block's filter chain over its compressed data.
enum Chain<'a> {
    Lzma2(Lzma2Reader<&'a [u8]>),
    Bcj(BcjReader<Lzma2Reader<&'a [u8]>>),
}

impl<'a> Chain<'a> {
    fn new(header: &BlockHeader, data: &'a [u8], room: usize) -> Result<Self, DecompressError> {
        // The dictionary need not be larger than what the block may still write.
        let room = u32::try_from(room).unwrap_or(u32::MAX);
        let dict = header.dict_size.min(room.max(4096));
        let mem_kb = u32::try_from(MAX_DECODER_MEMORY / 1024).unwrap_or(u32::MAX);
        let lzma2 = Lzma2Reader::new_mem_limit(data, dict, mem_kb, None).map_err(map_err)?;
        let Some((id, start)) = header.bcj else {
            return Ok(Chain::Lzma2(lzma2));
        };
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        Ok(Chain::Bcj(match id {
            0x04 => BcjReader::new_x86(lzma2, start),
            0x05 => BcjReader::new_ppc(lzma2, start),
            0x06 => BcjReader::new_ia64(lzma2, start),
            0x07 => BcjReader::new_arm(lzma2, start),
            0x08 => BcjReader::new_arm_thumb(lzma2, start),
            0x09 => BcjReader::new_sparc(lzma2, start),
            0x0a => BcjReader::new_arm64(lzma2, start),
            _ => BcjReader::new_riscv(lzma2, start),
        }))
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, DecompressError> {
        match self {
            Chain::Lzma2(r) => r.read(buf),
            Chain::Bcj(r) => r.read(buf),
        }
        .map_err(map_err)
    }

    /// The compressed data the chain has not read.
    fn unread(&self) -> usize {
        match self {
            Chain::Lzma2(r) => r.inner().len(),
            Chain::Bcj(r) => r.inner().inner().len(),
        }
    }
}

/// What the blocks and the index must agree on (as xz-embedded compares them): the number
/// of blocks, the sums of their unpadded and uncompressed sizes, and a CRC32 over the pairs.
#[derive(Default)]
struct Tally {
    count: u64,
    unpadded: u64,
    uncompressed: u64,
    pairs: crc32fast::Hasher,
}

impl Tally {
    fn add(&mut self, unpadded: u64, uncompressed: u64) -> Result<(), DecompressError> {
        let too_big = || corrupt("sizes overflow");
        self.count = self.count.checked_add(1).ok_or_else(too_big)?;
        self.unpadded = self.unpadded.checked_add(unpadded).ok_or_else(too_big)?;
        self.uncompressed = self
            .uncompressed
            .checked_add(uncompressed)
            .ok_or_else(too_big)?;
        self.pairs.update(&unpadded.to_le_bytes());
        self.pairs.update(&uncompressed.to_le_bytes());
        Ok(())
    }

    fn same(self, other: Tally) -> bool {
        (self.count, self.unpadded, self.uncompressed)
            == (other.count, other.unpadded, other.uncompressed)
            && self.pairs.finalize() == other.pairs.finalize()
    }
}

/// Decode one block's data into `out` from `outp`; returns the new end of output and what
/// the chain consumed.
fn block_data(
    header: &BlockHeader,
    data: &[u8],
    out: &mut Output<'_>,
    mut outp: usize,
    check: &mut Check,
) -> Result<(usize, usize), DecompressError> {
    let mut chain = Chain::new(header, data, out.max_len().saturating_sub(outp))?;
    let mut probe = [0u8; 1];
    loop {
        if outp < out.len() {
            let room = out.buf().get_mut(outp..).unwrap_or_default();
            let n = chain.read(room)?;
            if n == 0 {
                break;
            }
            let end = outp.saturating_add(n).min(out.len());
            check.update(out.buf().get(outp..end).unwrap_or_default());
            outp = end;
        } else {
            // Full: one more byte tells the end of the block from an overflow.
            if chain.read(&mut probe)? == 0 {
                break;
            }
            if !out.push_at(outp, probe[0]) {
                return Err(DecompressError::OutputOverflow {
                    format: FMT,
                    capacity: out.len(),
                });
            }
            check.update(&probe);
            outp = outp.saturating_add(1);
        }
    }
    Ok((outp, data.len().saturating_sub(chain.unread())))
}

/// Decode one xz stream (`body`, Linux's size trailer already removed) into `out`.
pub(super) fn decode(body: &[u8], out: &mut Output<'_>) -> Result<usize, DecompressError> {
    let mut c = Cursor { data: body, pos: 0 };
    let header = c.take(HEADER_LEN)?;
    let (magic, rest) = header.split_at(6);
    let (flags, crc) = rest.split_at(2);
    if magic != HEADER_MAGIC {
        return Err(corrupt("bad stream header magic"));
    }
    if crc32fast::hash(flags) != le32(crc) {
        return Err(corrupt("stream header CRC32 mismatch"));
    }
    let kind = stream_flags(flags)?;

    let mut outp = 0usize;
    let mut blocks = Tally::default();
    loop {
        let size_byte = c.byte()?;
        if size_byte == 0 {
            break; // the index indicator
        }
        let block_start = c.pos - 1;
        let h = block_header(&mut c, size_byte)?;
        let data = match h.compressed {
            Some(n) => c.take(usize::try_from(n).map_err(|_| truncated())?)?,
            None => c.rest(),
        };
        let mut check = Check::new(kind);
        let before = outp;
        let (end, used) = block_data(&h, data, out, outp, &mut check)?;
        outp = end;
        let used_u64 = u64::try_from(used).map_err(|_| corrupt("block too large"))?;
        if h.compressed.is_some_and(|n| n != used_u64) {
            return Err(corrupt("compressed size differs from the block header's"));
        }
        if h.compressed.is_none() {
            c.pos = c.pos.saturating_add(used);
        }
        let produced = u64::try_from(outp - before).map_err(|_| corrupt("block too large"))?;
        if h.uncompressed.is_some_and(|n| n != produced) {
            return Err(corrupt("uncompressed size differs from the block header's"));
        }
        c.padding(block_start, "non-zero block padding")?;
        if !check.matches(c.take(kind.len())?) {
            return Err(corrupt("block check mismatch"));
        }
        let unpadded = (h.len as u64)
            .checked_add(used_u64)
            .and_then(|n| n.checked_add(kind.len() as u64))
            .ok_or_else(|| corrupt("block too large"))?;
        blocks.add(unpadded, produced)?;
    }

    // The index: its indicator (read above), the record count, the records, padding, CRC32.
    let index_start = c.pos - 1;
    let count = vli(&mut c)?;
    let mut index = Tally::default();
    // Each record is at least two bytes: a count beyond the input is refused up front.
    if count > (c.rest().len() / 2) as u64 {
        return Err(corrupt("index record count beyond the input"));
    }
    for _ in 0..count {
        let unpadded = vli(&mut c)?;
        let uncompressed = vli(&mut c)?;
        index.add(unpadded, uncompressed)?;
    }
    c.padding(index_start, "non-zero index padding")?;
    let index_bytes = body.get(index_start..c.pos).unwrap_or_default();
    if crc32fast::hash(index_bytes) != le32(c.take(4)?) {
        return Err(corrupt("index CRC32 mismatch"));
    }
    if !blocks.same(index) {
        return Err(corrupt("index does not match the blocks"));
    }
    let index_len = c.pos - index_start;

    // The footer: CRC32 of backward size and flags, the backward size, flags, magic.
    let footer = c.take(HEADER_LEN)?;
    let (crc, rest) = footer.split_at(4);
    let (covered, magic) = rest.split_at(6);
    let (backward, footer_flags) = covered.split_at(4);
    if magic != FOOTER_MAGIC {
        return Err(corrupt("bad stream footer magic"));
    }
    if crc32fast::hash(covered) != le32(crc) {
        return Err(corrupt("stream footer CRC32 mismatch"));
    }
    if footer_flags != flags {
        return Err(corrupt("stream footer flags differ from the header's"));
    }
    if (u64::from(le32(backward)) + 1) * 4 != index_len as u64 {
        return Err(corrupt("backward size differs from the index size"));
    }
    Ok(outp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(data: &[u8]) -> Cursor<'_> {
        Cursor { data, pos: 0 }
    }

    #[test]
    fn variable_length_integers() {
        assert_eq!(vli(&mut cursor(&[0x00])), Ok(0));
        assert_eq!(vli(&mut cursor(&[0x7f])), Ok(0x7f));
        assert_eq!(vli(&mut cursor(&[0x80, 0x01])), Ok(0x80));
        assert!(vli(&mut cursor(&[0x80, 0x00])).is_err(), "non-minimal");
        assert!(vli(&mut cursor(&[0xff; 9])).is_err(), "too long");
        assert!(vli(&mut cursor(&[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
        ]))
        .is_ok());
        assert!(vli(&mut cursor(&[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80
        ]))
        .is_err());
        assert!(vli(&mut cursor(&[0x80])).is_err(), "truncated");
    }

    #[test]
    fn lzma2_dictionary_sizes() {
        assert_eq!(lzma2_dict_size(&[0]), Ok(4096));
        assert_eq!(lzma2_dict_size(&[1]), Ok(6144));
        assert_eq!(lzma2_dict_size(&[26]), Ok(32 << 20));
        assert_eq!(lzma2_dict_size(&[40]), Ok(u32::MAX));
        assert!(lzma2_dict_size(&[41]).is_err());
        assert!(lzma2_dict_size(&[]).is_err());
    }

    #[test]
    fn check_kinds() {
        assert_eq!(stream_flags(&[0, 1]), Ok(CheckKind::Crc32));
        assert_eq!(stream_flags(&[0, 4]), Ok(CheckKind::Crc64));
        assert_eq!(stream_flags(&[0, 10]), Ok(CheckKind::Sha256));
        assert!(stream_flags(&[0, 2]).is_err(), "reserved check ID");
        assert!(stream_flags(&[1, 1]).is_err());
        assert!(stream_flags(&[0, 0x11]).is_err());
    }

    #[test]
    fn crc64_is_xzs() {
        // The CRC-64 of "123456789" in xz's polynomial (the `crc` catalogue's check value).
        assert_eq!(CRC64_XZ.checksum(b"123456789"), 0x995d_c9bb_df19_39fa);
    }
}

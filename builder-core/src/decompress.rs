//! Decompressing kernels and ramdisks, as libxenguest's bzImage loader and
//! `xc_dom_do_gunzip` do, with well-kept decoders and every size bounded by [`crate::limits`].
//!
//! The compressed inputs are the ones Linux writes: a bzImage payload (arch/x86/boot/
//! compressed/Makefile) is `gzip -9` output, or the output of bzip2, lzma, `xz --check=crc32
//! --x86 --lzma2`, `lz4 -l` (the legacy frame) or `zstd -22` followed by the decompressed size
//! as a little-endian 32-bit word (`size_append`). gzip carries that size itself: the ISIZE
//! field of its trailer. Either way the size is the last four bytes of the input, which is what
//! [`output_size`] reads, as libxenguest does.
//!
//! Decoders, chosen by speed measured on Debian's 6.1 payload (docs/decompress.md):
//! gzip → `miniz_oxide` (no allocation), lz4 → `lz4_flex` block decoder (no allocation),
//! xz and lzma → `lzma-rust2` (the xz container and its checks read in [`xz`]), zstd → `ruzstd` (both need `alloc`), bzip2 → `bzip2-rs` (needs
//! std: feature `bzip2`).

use crate::limits;

/// A compression format, as libxenguest's bzImage loader recognises it by magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`1f 8b`).
    Gzip,
    /// bzip2 (`BZh`).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`), with the x86 BCJ filter as Linux uses it.
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// The legacy `.lzma` format (`5d 00`).
    Lzma,
    /// lzop (`89 4c 5a 4f`): recognised, but no decoder is built in.
    Lzo,
    /// lz4 legacy frame (`02 21 4c 18`, magic 0x184C2102).
    Lz4,
}

impl Compression {
    /// Recognise a compressed stream by its magic, in libxenguest's order
    /// (`xc_dom_probe_bzimage_kernel`).
    pub fn detect(data: &[u8]) -> Option<Compression> {
        const MAGICS: [(&[u8], Compression); 7] = [
            (b"\x1f\x8b", Compression::Gzip),
            (b"BZh", Compression::Bzip2),
            (b"\xfd7zXZ\x00", Compression::Xz),
            (b"\x28\xb5\x2f\xfd", Compression::Zstd),
            (b"\x5d\x00", Compression::Lzma),
            (b"\x89LZO", Compression::Lzo),
            (b"\x02\x21", Compression::Lz4),
        ];
        MAGICS
            .iter()
            .find(|(magic, _)| data.starts_with(magic))
            .map(|&(_, c)| c)
    }

    /// The name libxenguest logs for this format.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "BZIP2",
            Compression::Xz => "XZ",
            Compression::Zstd => "ZSTD",
            Compression::Lzma => "LZMA",
            Compression::Lzo => "LZO",
            Compression::Lz4 => "LZ4",
        }
    }

    /// Whether this build of the crate can decode the format.
    pub const fn supported(self) -> bool {
        match self {
            Compression::Gzip | Compression::Lz4 => true,
            Compression::Xz | Compression::Lzma | Compression::Zstd => cfg!(feature = "alloc"),
            Compression::Bzip2 => cfg!(feature = "bzip2"),
            Compression::Lzo => false,
        }
    }
}

/// Why a compressed stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecompressError {
    /// The input is too short to hold the format's header and size trailer.
    TooShort {
        /// The format.
        format: Compression,
        /// Bytes given.
        len: usize,
    },
    /// The declared decompressed size is beyond the limit.
    TooLarge {
        /// Declared size.
        size: u64,
        /// The limit ([`limits::MAX_DECOMPRESSED_KERNEL`] or [`limits::MAX_RAMDISK`]).
        limit: u64,
    },
    /// The stream produces more than the output buffer (the declared size) holds: a lying
    /// size field or a decompression bomb.
    OutputOverflow {
        /// The format.
        format: Compression,
        /// Size of the output buffer.
        capacity: usize,
    },
    /// The stream ended before its end marker.
    Truncated {
        /// The format.
        format: Compression,
    },
    /// The stream is corrupt (bad header, bad code, failed checksum).
    Corrupt {
        /// The format.
        format: Compression,
        /// What the decoder found.
        reason: &'static str,
    },
    /// The stream decoded to a different size than it declared.
    SizeMismatch {
        /// The format.
        format: Compression,
        /// Declared size.
        expected: u64,
        /// Decoded size.
        got: u64,
    },
    /// This format is recognised but this build has no decoder for it.
    Unsupported(Compression),
    /// The decoder needs more memory than [`limits::MAX_DECODER_MEMORY`] or the allocator has.
    OutOfMemory {
        /// The format.
        format: Compression,
    },
}

impl core::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            DecompressError::TooShort { format, len } => {
                write!(f, "{} stream too short ({len} bytes)", format.name())
            }
            DecompressError::TooLarge { size, limit } => {
                write!(
                    f,
                    "decompressed size {size:#x} exceeds the limit {limit:#x}"
                )
            }
            DecompressError::OutputOverflow { format, capacity } => write!(
                f,
                "{} stream decodes to more than its declared size {capacity:#x}",
                format.name()
            ),
            DecompressError::Truncated { format } => {
                write!(f, "{} stream truncated", format.name())
            }
            DecompressError::Corrupt { format, reason } => {
                write!(f, "{} stream corrupt: {reason}", format.name())
            }
            DecompressError::SizeMismatch {
                format,
                expected,
                got,
            } => write!(
                f,
                "{} stream decoded to {got:#x} bytes instead of {expected:#x}",
                format.name()
            ),
            DecompressError::Unsupported(c) => {
                write!(f, "{} decompression is not built in", c.name())
            }
            DecompressError::OutOfMemory { format } => {
                write!(f, "{} decoder needs too much memory", format.name())
            }
        }
    }
}

/// The last four bytes as a little-endian word: gzip's ISIZE, or the size Linux appends.
fn trailer_le32(format: Compression, input: &[u8], min: usize) -> Result<u32, DecompressError> {
    let too_short = DecompressError::TooShort {
        format,
        len: input.len(),
    };
    if input.len() < min {
        return Err(too_short);
    }
    let start = input.len().checked_sub(4).ok_or(too_short)?;
    let word: [u8; 4] = input
        .get(start..)
        .and_then(|s| s.try_into().ok())
        .ok_or(too_short)?;
    Ok(u32::from_le_bytes(word))
}

/// Smallest input each format can be: its header plus the size trailer.
const fn min_len(c: Compression) -> usize {
    match c {
        // 10-byte header, empty deflate block (2), CRC32 + ISIZE (8).
        Compression::Gzip => 18,
        // Magic, descriptor byte and trailing size field (libxenguest's check is `<= 9`).
        Compression::Zstd => 10,
        // Magic and trailing size (libxenguest: `<= 8`).
        Compression::Lz4 => 9,
        // 12-byte stream header, 12-byte footer, trailer.
        Compression::Xz => 28,
        // 13-byte header, trailer.
        Compression::Lzma => 17,
        // "BZh9" + end-of-stream marker (10) + trailer.
        Compression::Bzip2 => 18,
        Compression::Lzo => 16,
    }
}

/// The decompressed size a stream declares (the last four bytes, see the module docs),
/// refused beyond [`limits::MAX_DECOMPRESSED_KERNEL`].
pub fn output_size(c: Compression, input: &[u8]) -> Result<u64, DecompressError> {
    output_size_limited(c, input, limits::MAX_DECOMPRESSED_KERNEL)
}

fn output_size_limited(c: Compression, input: &[u8], limit: u64) -> Result<u64, DecompressError> {
    let size = u64::from(trailer_le32(c, input, min_len(c))?);
    if size > limit {
        return Err(DecompressError::TooLarge { size, limit });
    }
    Ok(size)
}

/// Decode `input` (a whole stream as Linux writes it, see the module docs) into `out`, which
/// must hold the whole output: a stream that would write past its end is refused with
/// [`DecompressError::OutputOverflow`]. Returns the number of bytes written.
///
/// `out.len()` is also bounded by [`limits::MAX_DECOMPRESSED_KERNEL`]; callers size it with
/// [`output_size`].
pub fn decompress_into(
    c: Compression,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, DecompressError> {
    decode_to(c, input, &mut Output::Fixed(out))
}

/// [`decompress_into`] into either kind of [`Output`].
fn decode_to(c: Compression, input: &[u8], out: &mut Output<'_>) -> Result<usize, DecompressError> {
    if input.len() < min_len(c) {
        return Err(DecompressError::TooShort {
            format: c,
            len: input.len(),
        });
    }
    let cap = u64::try_from(out.len()).unwrap_or(u64::MAX);
    if cap > limits::MAX_DECOMPRESSED_KERNEL.max(limits::MAX_RAMDISK) {
        return Err(DecompressError::TooLarge {
            size: cap,
            limit: limits::MAX_DECOMPRESSED_KERNEL,
        });
    }
    // Every format but gzip carries Linux's appended size after the stream.
    let body = if c == Compression::Gzip {
        input
    } else {
        input
            .get(..input.len().saturating_sub(4))
            .unwrap_or_default()
    };
    match c {
        Compression::Gzip => gzip::decode(input, out),
        Compression::Lz4 => lz4::decode(body, out),
        #[cfg(feature = "alloc")]
        Compression::Xz => xz::decode(body, out),
        #[cfg(feature = "alloc")]
        Compression::Lzma => lzma::decode_lzma(body, out),
        #[cfg(feature = "alloc")]
        // ruzstd cannot resume into a larger buffer: `unpack` decodes zstd again instead.
        Compression::Zstd => zstd::decode(body, out.buf()),
        #[cfg(feature = "bzip2")]
        Compression::Bzip2 => bzip2::decode(body, out),
        #[allow(unreachable_patterns)]
        other => Err(DecompressError::Unsupported(other)),
    }
}

/// Factor by which a growing output buffer grows (up to its bound).
#[cfg(feature = "alloc")]
const GROWTH: usize = 4;

/// Where a decoder writes: the caller's fixed slice ([`decompress_into`]), or (for the
/// `unpack_*` helpers) a buffer that starts small and grows, up to the declared size, as the
/// stream really produces output. Decoders that can resume (gzip, lz4, xz, lzma, bzip2)
/// continue into the grown buffer; memory follows the real output and nothing is decoded
/// twice.
#[derive(Debug)]
enum Output<'a> {
    /// Exactly this much room.
    Fixed(&'a mut [u8]),
    /// Room that may grow to `max` bytes.
    #[cfg(feature = "alloc")]
    Growing {
        /// The buffer; its length is the room so far.
        buf: &'a mut alloc::vec::Vec<u8>,
        /// Largest length it may grow to.
        max: usize,
    },
}

impl Output<'_> {
    /// The room so far.
    fn buf(&mut self) -> &mut [u8] {
        match self {
            Output::Fixed(b) => b,
            #[cfg(feature = "alloc")]
            Output::Growing { buf, .. } => buf.as_mut_slice(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Output::Fixed(b) => b.len(),
            #[cfg(feature = "alloc")]
            Output::Growing { buf, .. } => buf.len(),
        }
    }

    /// The most room there can ever be.
    #[cfg(feature = "alloc")]
    fn max_len(&self) -> usize {
        match self {
            Output::Fixed(b) => b.len(),
            Output::Growing { buf, max } => buf.len().max(*max),
        }
    }

    /// Make more room, keeping what was written; false when there can be no more.
    fn grow(&mut self) -> bool {
        match self {
            Output::Fixed(_) => false,
            #[cfg(feature = "alloc")]
            Output::Growing { buf, max } => {
                if buf.len() >= *max {
                    return false;
                }
                let next = buf.len().saturating_mul(GROWTH).clamp(1, *max);
                buf.resize(next, 0);
                true
            }
        }
    }

    #[cfg(feature = "alloc")]
    /// Store `byte` (decoded into a probe buffer while this one was full) at `at`, growing
    /// first; false when there is no more room.
    fn push_at(&mut self, at: usize, byte: u8) -> bool {
        if at >= self.len() && !self.grow() {
            return false;
        }
        match self.buf().get_mut(at) {
            Some(b) => {
                *b = byte;
                true
            }
            None => false,
        }
    }
}

/// Output reached a window at a time: guest pages, which a host maps a run at a time and
/// which need not all be addressable at once.
pub trait WindowedOutput {
    /// Why a window could not be had (a failed mapping).
    type Error;
    /// The output bytes `[offset, offset + len)`. `offset` is a multiple of 4096; bytes
    /// written through an earlier window keep their values.
    fn window(&mut self, offset: usize, len: usize) -> Result<&mut [u8], Self::Error>;
}

/// Why [`gunzip_member`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GunzipError<E> {
    /// The stream is not a gzip member that fits the room (zlib would not return
    /// `Z_STREAM_END`).
    Stream(DecompressError),
    /// The output could not be reached.
    Output(E),
}

impl<E> From<DecompressError> for GunzipError<E> {
    fn from(e: DecompressError) -> Self {
        GunzipError::Stream(e)
    }
}

/// Bytes of output before the write position that each window repeats: deflate's largest
/// back-reference distance.
const HISTORY: usize = 32 << 10;
/// Bytes of output each window of [`gunzip_member`] spans (history included).
pub const WINDOW: usize = 16 << 20;

/// Decode the first gzip member of `input` straight into `out`, at most `limit` bytes, as
/// libxenguest's `xc_dom_do_gunzip` does with zlib (`inflateInit2(MAX_WBITS + 32)`, then one
/// `inflate(Z_FINISH)` into `limit` bytes): success when the member ends, its header CRC16
/// (if any), CRC32 and ISIZE check, and its output fits `limit`; whatever follows the member
/// is not read. Output goes through windows of [`WINDOW`] bytes, each repeating the last
/// 32 KiB of the one before (deflate's history), so no copy of the output is kept anywhere
/// else. `consumed_input(n)` is called as the bytes of `input` below `n` have been read.
/// Returns the number of bytes written.
pub fn gunzip_member<O: WindowedOutput>(
    input: &[u8],
    limit: usize,
    out: &mut O,
    consumed_input: &mut dyn FnMut(usize),
) -> Result<usize, GunzipError<O::Error>> {
    gzip::decode_windowed(input, limit, out, consumed_input)
}

mod gzip {
    //! RFC 1952 framing around a raw deflate stream decoded by `miniz_oxide`.
    use super::{Compression, DecompressError, Output};
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;

    const FMT: Compression = Compression::Gzip;
    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    const FRESERVED: u8 = 0xe0;

    fn corrupt(reason: &'static str) -> DecompressError {
        DecompressError::Corrupt {
            format: FMT,
            reason,
        }
    }
    const TRUNCATED: DecompressError = DecompressError::Truncated { format: FMT };

    /// Length of the member header (magic, method, flags and the optional fields).
    fn header_len(input: &[u8]) -> Result<usize, DecompressError> {
        let fixed = input.get(..10).ok_or(TRUNCATED)?;
        if fixed.get(..2) != Some(b"\x1f\x8b".as_slice()) {
            return Err(corrupt("bad magic"));
        }
        if fixed.get(2) != Some(&8) {
            return Err(corrupt("compression method is not deflate"));
        }
        let flags = fixed.get(3).copied().unwrap_or(0);
        if flags & FRESERVED != 0 {
            return Err(corrupt("reserved flag bits set"));
        }
        let mut pos = 10usize;
        if flags & FEXTRA != 0 {
            let xlen = input.get(pos..pos + 2).ok_or(TRUNCATED)?;
            let xlen = usize::from(u16::from_le_bytes([
                xlen.first().copied().unwrap_or(0),
                xlen.get(1).copied().unwrap_or(0),
            ]));
            pos = pos.checked_add(2 + xlen).ok_or(TRUNCATED)?;
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                let rest = input.get(pos..).ok_or(TRUNCATED)?;
                let nul = rest.iter().position(|&b| b == 0).ok_or(TRUNCATED)?;
                pos = pos.checked_add(nul + 1).ok_or(TRUNCATED)?;
            }
        }
        if flags & FHCRC != 0 {
            // zlib (which libxenguest inflates with) checks the header's CRC16: the low
            // half of the CRC32 of the header bytes before it.
            let crc = input
                .get(pos..pos.checked_add(2).ok_or(TRUNCATED)?)
                .ok_or(TRUNCATED)?;
            let header = input.get(..pos).ok_or(TRUNCATED)?;
            let want = u16::from_le_bytes([
                crc.first().copied().unwrap_or(0),
                crc.get(1).copied().unwrap_or(0),
            ]);
            if (crc32fast::hash(header) & 0xffff) as u16 != want {
                return Err(corrupt("header CRC16 mismatch"));
            }
            pos = pos.checked_add(2).ok_or(TRUNCATED)?;
        }
        if pos > input.len() {
            return Err(TRUNCATED);
        }
        Ok(pos)
    }

    /// The CRC32 and ISIZE words of the member trailer at `at`.
    fn trailer(input: &[u8], at: usize) -> Result<(u32, u32), DecompressError> {
        let trailer = input
            .get(at..at.checked_add(8).ok_or(TRUNCATED)?)
            .ok_or(TRUNCATED)?;
        let word = |i: usize| {
            trailer
                .get(i..i + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .map(u32::from_le_bytes)
                .unwrap_or(0)
        };
        Ok((word(0), word(4)))
    }

    /// Decode the first gzip member of `input` into `out` as zlib's `inflate(Z_FINISH)` does
    /// for `xc_dom_do_gunzip` (see [`super::gunzip_member`]).
    pub(super) fn decode_windowed<O: super::WindowedOutput>(
        input: &[u8],
        limit: usize,
        out: &mut O,
        consumed_input: &mut dyn FnMut(usize),
    ) -> Result<usize, super::GunzipError<O::Error>> {
        use super::{GunzipError, HISTORY, WINDOW};
        let start = header_len(input)?;
        let deflate = input.get(start..).ok_or(TRUNCATED)?;
        let mut state = DecompressorOxide::new();
        let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
        let mut crc = crc32fast::Hasher::new();
        let (mut consumed, mut total) = (0usize, 0usize);
        loop {
            // Each window starts up to HISTORY bytes (page-aligned) before the output so
            // far: deflate's back-references reach that far, and miniz reads them from the
            // buffer it writes.
            let base = total.saturating_sub(HISTORY) & !(WINDOW_ALIGN - 1);
            let end = base.saturating_add(WINDOW).min(limit);
            if end <= total {
                return Err(DecompressError::OutputOverflow {
                    format: FMT,
                    capacity: limit,
                }
                .into());
            }
            let buf = out.window(base, end - base).map_err(GunzipError::Output)?;
            let pos = total - base;
            let src = deflate.get(consumed..).unwrap_or_default();
            let (status, used, n) = decompress(&mut state, src, buf, pos, flags);
            crc.update(buf.get(pos..pos.saturating_add(n)).unwrap_or_default());
            consumed = consumed.saturating_add(used);
            total = total.saturating_add(n);
            consumed_input(start.saturating_add(consumed));
            match status {
                TINFLStatus::Done => break,
                TINFLStatus::HasMoreOutput => {}
                TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                    return Err(TRUNCATED.into())
                }
                TINFLStatus::Failed | TINFLStatus::BadParam | TINFLStatus::Adler32Mismatch => {
                    return Err(corrupt("invalid deflate data").into())
                }
            }
        }
        let (want_crc, want_size) = trailer(input, start.checked_add(consumed).ok_or(TRUNCATED)?)?;
        if crc.finalize() != want_crc {
            return Err(corrupt("CRC32 mismatch").into());
        }
        if want_size != (total as u64 & 0xffff_ffff) as u32 {
            return Err(corrupt("ISIZE does not match the decoded size").into());
        }
        Ok(total)
    }

    /// Windows start on page boundaries (the output is guest pages).
    const WINDOW_ALIGN: usize = 4096;

    /// Decode one gzip member into `out`, checking its CRC32 and ISIZE.
    pub(super) fn decode(input: &[u8], out: &mut Output<'_>) -> Result<usize, DecompressError> {
        let start = header_len(input)?;
        let deflate = input.get(start..).ok_or(TRUNCATED)?;
        let mut state = DecompressorOxide::new();
        // The whole output so far stays in `out` (back-references read it), so a full
        // buffer can grow and the same state continue.
        let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
        let (mut consumed, mut written) = (0usize, 0usize);
        loop {
            let src = deflate.get(consumed..).unwrap_or_default();
            let (status, used, n) = decompress(&mut state, src, out.buf(), written, flags);
            consumed = consumed.saturating_add(used);
            written = written.saturating_add(n);
            match status {
                TINFLStatus::Done => break,
                TINFLStatus::HasMoreOutput => {
                    if !out.grow() {
                        return Err(DecompressError::OutputOverflow {
                            format: FMT,
                            capacity: out.len(),
                        });
                    }
                }
                TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                    return Err(TRUNCATED)
                }
                TINFLStatus::Failed | TINFLStatus::BadParam | TINFLStatus::Adler32Mismatch => {
                    return Err(corrupt("invalid deflate data"))
                }
            }
        }
        let (want_crc, want_size) = trailer(input, start.checked_add(consumed).ok_or(TRUNCATED)?)?;
        let decoded = out.buf().get(..written).ok_or(TRUNCATED)?;
        if crc32fast::hash(decoded) != want_crc {
            return Err(corrupt("CRC32 mismatch"));
        }
        // ISIZE is the size modulo 2^32.
        if want_size != (written as u64 & 0xffff_ffff) as u32 {
            return Err(corrupt("ISIZE does not match the decoded size"));
        }
        Ok(written)
    }
}

mod lz4 {
    //! The legacy lz4 frame `lz4 -l` writes and Linux's `unlz4` and libxenguest's
    //! `xc_try_lz4_decode` read: magic 0x184C2102, then blocks each prefixed by its le32
    //! compressed size (a repeated magic starts a new frame).
    use super::{Compression, DecompressError, Output};

    const FMT: Compression = Compression::Lz4;
    const ARCHIVE_MAGICNUMBER: u32 = 0x184C_2102;
    /// The legacy format's block size: no block decodes to more.
    const LEGACY_BLOCK: usize = 8 << 20;

    fn le32(data: &[u8], at: usize) -> Option<u32> {
        data.get(at..at.checked_add(4)?)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_le_bytes)
    }

    pub(super) fn decode(body: &[u8], out: &mut Output<'_>) -> Result<usize, DecompressError> {
        if le32(body, 0) != Some(ARCHIVE_MAGICNUMBER) {
            return Err(DecompressError::Corrupt {
                format: FMT,
                reason: "invalid header",
            });
        }
        let mut inp = 4usize;
        let mut outp = 0usize;
        loop {
            let chunk = le32(body, inp).ok_or(DecompressError::Truncated { format: FMT })?;
            inp += 4;
            if chunk == ARCHIVE_MAGICNUMBER {
                continue;
            }
            let chunk = usize::try_from(chunk).unwrap_or(usize::MAX);
            let end = inp
                .checked_add(chunk)
                .filter(|&e| e <= body.len())
                .ok_or(DecompressError::Truncated { format: FMT })?;
            let block = body.get(inp..end).unwrap_or_default();
            // Blocks are independent: one that does not fit is decoded again after the
            // buffer grows.
            let n = loop {
                let room = out.buf().get_mut(outp..).unwrap_or_default();
                let room_len = room.len();
                let dest = room
                    .get_mut(..room_len.min(LEGACY_BLOCK))
                    .unwrap_or_default();
                match lz4_flex::block::decompress_into(block, dest) {
                    Ok(n) => break n,
                    Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
                        if room_len >= LEGACY_BLOCK || !out.grow() {
                            return Err(DecompressError::OutputOverflow {
                                format: FMT,
                                capacity: out_len_hint(outp, room_len),
                            });
                        }
                    }
                    Err(_) => {
                        return Err(DecompressError::Corrupt {
                            format: FMT,
                            reason: "invalid block",
                        })
                    }
                }
            };
            outp += n;
            inp = end;
            if inp == body.len() {
                return Ok(outp);
            }
        }
    }

    fn out_len_hint(done: usize, room: usize) -> usize {
        done.saturating_add(room)
    }
}

#[cfg(feature = "alloc")]
mod xz;

#[cfg(feature = "alloc")]
mod lzma {
    //! Legacy `.lzma`, by `lzma-rust2`'s sans-I/O decoder (xz is in [`super::xz`]).
    use super::{Compression, DecompressError, Output};
    use crate::limits::MAX_DECODER_MEMORY;
    use lzma_rust2::{Action, Status, StreamResult};

    fn mem_limit_kb() -> u32 {
        u32::try_from(MAX_DECODER_MEMORY / 1024).unwrap_or(u32::MAX)
    }

    pub(super) fn map_err(format: Compression, e: lzma_rust2::Error) -> DecompressError {
        match e {
            lzma_rust2::Error::OutOfMemory(_) => DecompressError::OutOfMemory { format },
            lzma_rust2::Error::Eof => DecompressError::Truncated { format },
            lzma_rust2::Error::InvalidData(reason)
            | lzma_rust2::Error::InvalidInput(reason)
            | lzma_rust2::Error::Unsupported(reason)
            | lzma_rust2::Error::Other(reason)
            | lzma_rust2::Error::WriteZero(reason) => DecompressError::Corrupt { format, reason },
            lzma_rust2::Error::Interrupted => DecompressError::Corrupt {
                format,
                reason: "interrupted",
            },
        }
    }

    /// Drive a sans-I/O decoder over all of `input` into `out`.
    ///
    /// Once `out` is full the decoder is given a one-byte probe buffer: its end marker may
    /// still be unread (the decoder stops as soon as its output is full, before it looks
    /// at what follows), so a stream that exactly fills its buffer reaches its end there,
    /// and one with more to give shows it. A probed byte goes into the grown buffer, or
    /// is an overflow.
    fn drive(
        format: Compression,
        input: &[u8],
        out: &mut Output<'_>,
        mut step: impl FnMut(&[u8], &mut [u8]) -> Result<StreamResult, lzma_rust2::Error>,
    ) -> Result<usize, DecompressError> {
        let (mut inp, mut outp) = (0usize, 0usize);
        let mut probe = [0u8; 1];
        loop {
            let src = input.get(inp..).unwrap_or_default();
            let full = outp >= out.len();
            let r = if full {
                step(src, &mut probe)
            } else {
                step(src, out.buf().get_mut(outp..).unwrap_or_default())
            }
            .map_err(|e| map_err(format, e))?;
            inp = inp.saturating_add(r.bytes_consumed).min(input.len());
            if !full {
                outp = outp.saturating_add(r.bytes_produced).min(out.len());
            } else if r.bytes_produced > 0 {
                if !out.push_at(outp, probe[0]) {
                    return Err(DecompressError::OutputOverflow {
                        format,
                        capacity: out.len(),
                    });
                }
                outp = outp.saturating_add(1);
            }
            if r.status == Status::StreamEnd {
                return Ok(outp);
            }
            if r.bytes_consumed == 0 && r.bytes_produced == 0 {
                return Err(DecompressError::Truncated { format });
            }
        }
    }

    pub(super) fn decode_lzma(body: &[u8], out: &mut Output<'_>) -> Result<usize, DecompressError> {
        let mut stream = lzma_rust2::LzmaStream::new_mem_limit(mem_limit_kb(), None);
        drive(Compression::Lzma, body, out, |i, o| {
            stream.process(i, o, Action::Finish)
        })
    }
}

#[cfg(feature = "alloc")]
mod zstd {
    //! zstd frames by `ruzstd`, content checksum verified when the frame has one.
    use super::{Compression, DecompressError};
    use crate::limits::MAX_DECODER_MEMORY;
    use ruzstd::decoding::errors::FrameDecoderError;
    use ruzstd::decoding::FrameDecoder;

    const FMT: Compression = Compression::Zstd;

    pub(super) fn decode(body: &[u8], out: &mut [u8]) -> Result<usize, DecompressError> {
        let mut dec = FrameDecoder::new();
        dec.set_max_window_size(MAX_DECODER_MEMORY);
        let n = dec.decode_all(body, out).map_err(|e| match e {
            FrameDecoderError::TargetTooSmall => DecompressError::OutputOverflow {
                format: FMT,
                capacity: out.len(),
            },
            FrameDecoderError::WindowSizeTooBig { .. } => {
                DecompressError::OutOfMemory { format: FMT }
            }
            FrameDecoderError::FailedToReadBlockHeader(_)
            | FrameDecoderError::FailedToReadBlockBody(_)
            | FrameDecoderError::FailedToDrainDecodebuffer(_)
            | FrameDecoderError::NotYetInitialized => DecompressError::Truncated { format: FMT },
            _ => DecompressError::Corrupt {
                format: FMT,
                reason: "invalid frame",
            },
        })?;
        if !dec.is_finished() {
            return Err(if n == out.len() {
                DecompressError::OutputOverflow {
                    format: FMT,
                    capacity: out.len(),
                }
            } else {
                DecompressError::Truncated { format: FMT }
            });
        }
        if let (Some(read), Some(calc)) =
            (dec.get_checksum_from_data(), dec.get_calculated_checksum())
        {
            if read != calc {
                return Err(DecompressError::Corrupt {
                    format: FMT,
                    reason: "content checksum mismatch",
                });
            }
        }
        Ok(n)
    }
}

#[cfg(feature = "bzip2")]
mod bzip2 {
    //! bzip2 by `bzip2-rs` (std only: see the `bzip2` feature in Cargo.toml).
    use super::{Compression, DecompressError, Output};
    use bzip2_rs::decoder::{Decoder, ReadState, WriteState};

    const FMT: Compression = Compression::Bzip2;

    pub(super) fn decode(body: &[u8], out: &mut Output<'_>) -> Result<usize, DecompressError> {
        let corrupt = |_| DecompressError::Corrupt {
            format: FMT,
            reason: "invalid bzip2 data",
        };
        let mut dec = Decoder::new();
        let (mut inp, mut outp) = (0usize, 0usize);
        let mut spare = [0u8; 1];
        let mut idle_eof = 0u8;
        loop {
            let full = outp >= out.len();
            let dst = if full {
                // Output full: probe whether the stream has more to give.
                &mut spare[..]
            } else {
                out.buf().get_mut(outp..).unwrap_or_default()
            };
            match dec.read(dst).map_err(corrupt)? {
                ReadState::NeedsWrite(_) => {
                    let src = body.get(inp..).unwrap_or_default();
                    if src.is_empty() {
                        // An empty write tells the decoder the input has ended (it needs one
                        // per remaining block); asked again and again with nothing decoded in
                        // between, the stream is cut short.
                        // (The decoder reports its end only on the read after the empty
                        // write that follows its last block, so allow two.)
                        if idle_eof >= 2 {
                            return Err(DecompressError::Truncated { format: FMT });
                        }
                        idle_eof += 1;
                    }
                    match dec.write(src).map_err(corrupt)? {
                        WriteState::Written(n) => inp = inp.saturating_add(n).min(body.len()),
                        WriteState::NeedsRead => {}
                    }
                }
                ReadState::Read(n) => {
                    if full {
                        if n > 0 && !out.push_at(outp, spare[0]) {
                            return Err(DecompressError::OutputOverflow {
                                format: FMT,
                                capacity: out.len(),
                            });
                        }
                        outp = outp.saturating_add(n.min(1));
                    } else {
                        outp = outp.saturating_add(n).min(out.len());
                    }
                    if n > 0 {
                        idle_eof = 0;
                    }
                }
                ReadState::Eof => return Ok(outp),
            }
        }
    }
}

#[cfg(feature = "alloc")]
pub use unpack::{unpack_kernel, UnpackError};

#[cfg(feature = "alloc")]
mod unpack {
    use super::{decode_to, output_size_limited, Compression, DecompressError, Output, GROWTH};
    use crate::bzimage::{self, BzImageError};
    use crate::limits;
    use crate::probe::{self, Format};
    use alloc::borrow::Cow;
    use alloc::vec;

    /// Why a kernel or ramdisk file could not be unpacked.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum UnpackError {
        /// The file is larger than the limit.
        FileTooLarge {
            /// File size.
            size: u64,
            /// [`limits::MAX_KERNEL_FILE`] or [`limits::MAX_RAMDISK`].
            limit: u64,
        },
        /// Not an ELF, gzip, bzImage or 'bin' kernel.
        UnknownFormat,
        /// A bzImage whose setup header is invalid.
        BzImage(BzImageError),
        /// Decompression failed.
        Decompress(DecompressError),
    }

    impl From<DecompressError> for UnpackError {
        fn from(e: DecompressError) -> Self {
            UnpackError::Decompress(e)
        }
    }

    impl core::fmt::Display for UnpackError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                UnpackError::FileTooLarge { size, limit } => {
                    write!(f, "file of {size:#x} bytes exceeds the limit {limit:#x}")
                }
                UnpackError::UnknownFormat => {
                    f.write_str("not an ELF, gzip, bzImage or 'bin' kernel")
                }
                UnpackError::BzImage(e) => write!(f, "bzImage: {e}"),
                UnpackError::Decompress(e) => write!(f, "{e}"),
            }
        }
    }

    /// Output bytes allowed per input byte for the first output buffer; see
    /// [`initial_capacity`].
    const INITIAL_RATIO: u64 = 64;
    /// Smallest first output buffer (unless the stream declares less).
    const INITIAL_MIN: u64 = 4 << 20;

    /// The first output buffer for a stream of `input_len` bytes that declares `declared`
    /// bytes: the declared size, but no more than [`INITIAL_RATIO`] times the input (at
    /// least [`INITIAL_MIN`]), so that a short stream which lies about its size (100 bytes
    /// declaring 1 GiB) costs memory in proportion to what it really decodes to.
    fn initial_capacity(declared: u64, input_len: usize) -> u64 {
        let by_ratio = (input_len as u64)
            .saturating_mul(INITIAL_RATIO)
            .max(INITIAL_MIN);
        declared.min(by_ratio)
    }

    /// Decode a whole stream whose declared size is at most `limit` into a new buffer.
    fn decode_owned(
        c: Compression,
        input: &[u8],
        limit: u64,
    ) -> Result<Cow<'static, [u8]>, DecompressError> {
        let size = output_size_limited(c, input, limit)?;
        decode_growing(c, input, size, initial_capacity(size, input.len()))
    }

    /// Decode `input`, which declares `size` bytes, into a buffer that starts at `first`
    /// bytes and grows (by [`GROWTH`]) while the stream fills it, up to `size`: memory
    /// follows the real output and never exceeds the declared size. The decoders that can
    /// resume continue into the grown buffer. zstd's (ruzstd cannot resume) starts again
    /// at each step: the earlier steps add at most `1 / (GROWTH - 1)` of the last full
    /// buffer, so a stream decodes at most about 2.3 times its output (the measured 1 GiB
    /// zstd bomb: 1.2 s, docs/limits.md).
    fn decode_growing(
        c: Compression,
        input: &[u8],
        size: u64,
        first: u64,
    ) -> Result<Cow<'static, [u8]>, DecompressError> {
        let too_large = DecompressError::TooLarge {
            size,
            limit: usize::MAX as u64,
        };
        let len = usize::try_from(size).map_err(|_| too_large)?;
        let first = usize::try_from(first.clamp(1, size.max(1)))
            .map_err(|_| too_large)?
            .min(len);
        // `vec![0; n]` asks the allocator for zeroed memory, which it maps lazily.
        let mut buf = vec![0u8; first];
        let got = loop {
            match decode_to(
                c,
                input,
                &mut Output::Growing {
                    buf: &mut buf,
                    max: len,
                },
            ) {
                Err(DecompressError::OutputOverflow { .. })
                    if c == Compression::Zstd && buf.len() < len =>
                {
                    let next = buf.len().saturating_mul(GROWTH).min(len);
                    buf = vec![0u8; next];
                }
                other => break other?,
            }
        };
        if got != len {
            return Err(DecompressError::SizeMismatch {
                format: c,
                expected: size,
                got: got as u64,
            });
        }
        buf.truncate(got);
        Ok(Cow::Owned(buf))
    }

    /// Turn any accepted kernel file (ELF, gzip-wrapped ELF, bzImage with any payload, 'bin')
    /// into the bytes [`crate::kernel::parse_kernel`] takes: borrowed when already
    /// uncompressed, else a new buffer of exactly the declared decompressed size.
    pub fn unpack_kernel(file: &[u8]) -> Result<Cow<'_, [u8]>, UnpackError> {
        let size = file.len() as u64;
        if size > limits::MAX_KERNEL_FILE {
            return Err(UnpackError::FileTooLarge {
                size,
                limit: limits::MAX_KERNEL_FILE,
            });
        }
        match probe::identify(file) {
            Format::Elf | Format::Bin => Ok(Cow::Borrowed(file)),
            Format::Gzip => Ok(decode_owned(
                Compression::Gzip,
                file,
                limits::MAX_DECOMPRESSED_KERNEL,
            )?),
            Format::BzImage { compression, .. } => {
                let bz = bzimage::parse(file).map_err(UnpackError::BzImage)?;
                debug_assert_eq!(Some(compression), bz.compression);
                let c = bz
                    .compression
                    .ok_or(UnpackError::BzImage(BzImageError::UnknownCompression))?;
                Ok(decode_owned(
                    c,
                    bz.payload,
                    limits::MAX_DECOMPRESSED_KERNEL,
                )?)
            }
            Format::Unknown => match bzimage::parse(file) {
                // A file with the bzImage magic gets the header's own error.
                Err(e) if e != BzImageError::NotBzImage => Err(UnpackError::BzImage(e)),
                Ok(bz) if bz.compression.is_none() => {
                    Err(UnpackError::BzImage(BzImageError::UnknownCompression))
                }
                _ => Err(UnpackError::UnknownFormat),
            },
        }
    }

    #[cfg(test)]
    mod tests {
        use super::{decode_growing, initial_capacity, DecompressError};
        use crate::bzimage;

        const FIXTURES: &[&[u8]] = &[
            include_bytes!("../tests/data/bz-gz.bin"),
            include_bytes!("../tests/data/bz-lz4.bin"),
            include_bytes!("../tests/data/bz-lzma.bin"),
            include_bytes!("../tests/data/bz-xz.bin"),
            include_bytes!("../tests/data/bz-zst.bin"),
            #[cfg(feature = "bzip2")]
            include_bytes!("../tests/data/bz-bz2.bin"),
        ];

        #[test]
        fn first_buffer_follows_the_input_not_the_declared_size() {
            assert_eq!(initial_capacity(1 << 30, 100), 4 << 20);
            assert_eq!(initial_capacity(1 << 30, 1 << 20), 64 << 20);
            assert_eq!(initial_capacity(1000, 100), 1000);
        }

        /// Every format decodes the same whether the buffer starts whole or at one byte and
        /// grows: each decoder reports a full buffer as `OutputOverflow`, nothing else.
        #[test]
        fn growing_from_one_byte_gives_the_same_output() {
            for file in FIXTURES {
                let bz = bzimage::parse(file).unwrap();
                let c = bz.compression.unwrap();
                let size = super::super::output_size(c, bz.payload).unwrap();
                let whole = decode_growing(c, bz.payload, size, size).unwrap();
                for first in [1, 4095, 4096, size / 3] {
                    let grown = decode_growing(c, bz.payload, size, first).unwrap();
                    assert_eq!(grown, whole, "{} from {first}", c.name());
                }
            }
        }

        /// A stream that declares more than it holds fails the same way from any start.
        #[test]
        fn a_lying_size_is_refused_after_growing() {
            for file in FIXTURES {
                let bz = bzimage::parse(file).unwrap();
                let c = bz.compression.unwrap();
                let size = super::super::output_size(c, bz.payload).unwrap();
                let lie = size * 10;
                let err = decode_growing(c, bz.payload, lie, 1).unwrap_err();
                assert!(
                    matches!(
                        err,
                        DecompressError::SizeMismatch { got, .. } if got == size
                    ),
                    "{}: {err:?}",
                    c.name()
                );
            }
        }
    }
}

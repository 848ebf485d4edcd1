//! Boot modules (the ramdisk) as libxenguest loads them (tools/libs/guest/xg_dom_core.c).
//!
//! `xc_dom_module_file` maps the file and refuses an empty one or one larger than
//! `max_module_size` (`XC_DOM_DECOMPRESS_MAX`, 1 GiB, set by `xc_dom_allocate`).
//! `xc_dom_build_module` then sizes the module's segment and fills it:
//!
//! 1. `xc_dom_check_gzip`: a blob of at least 6 bytes starting with the gzip magic, whose
//!    last four bytes (gzip's ISIZE) claim at most 1 GiB, may be unzipped into
//!    `unziplen = ISIZE + 16` bytes; anything else never is.
//! 2. The segment is `max(unziplen, size)` bytes; if that exceeds `max_module_size` it is
//!    `min(unziplen, size)` and, when that drops below `unziplen`, no unzip is tried. A
//!    segment still over the limit is refused.
//! 3. With `unziplen`, `xc_dom_do_gunzip` inflates into the segment with zlib: one
//!    `inflate(Z_FINISH)` into `unziplen` bytes, which succeeds when the *first* gzip member
//!    ends (checked) inside that room; anything after the first member is never read.
//! 4. Otherwise (no unzip, or the inflate failed: a corrupt or truncated stream, a trailer
//!    that does not match, output that does not fit), the raw blob is copied in and the rest
//!    of the segment is zero: "Fall back to handing over the raw blob".
//!
//! So a concatenated initramfs (`a.cpio.gz` + `b.cpio.gz`), whose ISIZE is `b`'s, boots: when
//! `a` decodes to more than `b`'s size + 16 the inflate runs out of room and the guest gets
//! the raw blob, which Linux unpacks member by member; when it fits, the guest gets `a`
//! alone, unzipped (and `b` is lost, as under xl).
//!
//! [`load`] writes straight into guest pages, a window of at most [`decompress::WINDOW`]
//! bytes at a time, so no copy of the module's contents is held anywhere but in the guest.

use crate::addr::{Pfn, PAGE_SIZE};
use crate::decompress::{self, DecompressError, GunzipError, WindowedOutput};
use crate::limits::MAX_RAMDISK;
use crate::mem::GuestMemory;

/// Bytes `xc_dom_check_gzip` adds to a gzip module's claimed size (its `unziplen + 16`).
pub const GZIP_SLACK: u64 = 16;

/// Why a module was refused before anything was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleError {
    /// A zero-length file (`xc_dom_malloc_filemap`: "zero length file").
    Empty,
    /// The file, or the segment it needs, is larger than `max_module_size` (1 GiB).
    TooLarge {
        /// Bytes of the file or of its segment.
        size: u64,
        /// [`MAX_RAMDISK`].
        limit: u64,
    },
}

impl core::fmt::Display for ModuleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ModuleError::Empty => f.write_str("zero length file"),
            ModuleError::TooLarge { size, limit } => {
                write!(f, "{size:#x} bytes exceed the module limit of {limit:#x}")
            }
        }
    }
}

/// `xc_dom_check_gzip`: the bytes an unzip of `blob` may produce (ISIZE + 16), or 0 when
/// the blob is not to be unzipped (shorter than 6 bytes, no gzip magic, or an ISIZE over
/// 1 GiB, which libxenguest logs as "looks insane").
pub fn check_gzip(blob: &[u8]) -> u64 {
    if blob.len() < 6 || !blob.starts_with(&[0x1f, 0x8b]) {
        return 0;
    }
    let isize = blob
        .len()
        .checked_sub(4)
        .and_then(|at| blob.get(at..))
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map_or(0, |w| u64::from(u32::from_le_bytes(w)));
    if isize > MAX_RAMDISK {
        return 0;
    }
    isize + GZIP_SLACK
}

/// How a module will be loaded: the length of its segment and whether an unzip is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModulePlan {
    size: u64,
    segment_len: u64,
    unzip_room: Option<u64>,
}

impl ModulePlan {
    /// Bytes of the file.
    pub const fn size(&self) -> u64 {
        self.size
    }
    /// Bytes of the module's segment (`modulelen`).
    pub const fn segment_len(&self) -> u64 {
        self.segment_len
    }
    /// The room an unzip is tried in (`unziplen`), if one is.
    pub const fn unzip_room(&self) -> Option<u64> {
        self.unzip_room
    }
}

/// The segment length `xc_dom_build_module` gives `blob`, without the file checks of
/// [`plan`] (what the layout solver needs to know of a module).
pub fn segment_len(blob: &[u8]) -> u64 {
    sizes(blob).0
}

/// `(modulelen, unziplen)` as `xc_dom_build_module` computes them.
fn sizes(blob: &[u8]) -> (u64, u64) {
    let size = blob.len() as u64;
    let mut unziplen = check_gzip(blob);
    let mut modulelen = unziplen.max(size);
    if unziplen != 0 && modulelen > MAX_RAMDISK {
        modulelen = unziplen.min(size);
        if unziplen > modulelen {
            unziplen = 0;
        }
    }
    (modulelen, unziplen)
}

/// Check and size a module file's contents as `xc_dom_module_file` and
/// `xc_dom_build_module` do.
pub fn plan(blob: &[u8]) -> Result<ModulePlan, ModuleError> {
    let size = blob.len() as u64;
    if size > MAX_RAMDISK {
        return Err(ModuleError::TooLarge {
            size,
            limit: MAX_RAMDISK,
        });
    }
    if size == 0 {
        return Err(ModuleError::Empty);
    }
    let (segment_len, unziplen) = sizes(blob);
    if segment_len > MAX_RAMDISK {
        return Err(ModuleError::TooLarge {
            size: segment_len,
            limit: MAX_RAMDISK,
        });
    }
    Ok(ModulePlan {
        size,
        segment_len,
        unzip_room: (unziplen != 0).then_some(unziplen),
    })
}

/// What [`load`] put in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The first gzip member, unzipped: this many bytes, then zeros.
    Gunzipped {
        /// Bytes the member decoded to.
        bytes: u64,
    },
    /// The file as it is, then zeros.
    Raw {
        /// Bytes of the file.
        bytes: u64,
        /// Why the unzip that was tried failed (libxenguest logs it and falls back), if one
        /// was tried.
        gunzip_failed: Option<DecompressError>,
    },
}

/// Why [`load`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError<M> {
    /// The plan's segment is longer than the pages given for it.
    SegmentTooSmall {
        /// Bytes the plan needs.
        need: u64,
        /// Bytes of the pages given.
        have: u64,
    },
    /// A size that does not fit this machine's address space.
    Overflow,
    /// Guest memory could not be reached.
    Memory(M),
}

/// The module's pages, `[first, first + pages)`, as windows of bytes.
struct Segment<'m, M> {
    mem: &'m mut M,
    first: Pfn,
    pages: u64,
}

impl<M: GuestMemory> Segment<'_, M> {
    /// Pages `[offset, offset + len)` (byte offsets, `offset` page-aligned) of the segment.
    fn bytes(&mut self, offset: usize, len: usize) -> Result<&mut [u8], LoadError<M::Error>> {
        let page = offset as u64 / PAGE_SIZE;
        let count = (len as u64).div_ceil(PAGE_SIZE);
        if page.checked_add(count).is_none_or(|end| end > self.pages) {
            return Err(LoadError::Overflow);
        }
        let first = self
            .first
            .checked_add(page)
            .map_err(|_| LoadError::Overflow)?;
        let view = self
            .mem
            .pages_mut(first, count)
            .map_err(LoadError::Memory)?;
        view.get_mut(..len).ok_or(LoadError::Overflow)
    }

    fn len(&self) -> Result<usize, LoadError<M::Error>> {
        usize::try_from(self.pages.saturating_mul(PAGE_SIZE)).map_err(|_| LoadError::Overflow)
    }

    /// Write `data` at the start of the segment, leave the bytes from there up to `keep`
    /// as they are, and zero the rest to the segment's end, a window at a time; `done(n)`
    /// after each window, with the bytes of `data` below `n` written.
    fn fill(
        &mut self,
        data: &[u8],
        keep: usize,
        done: &mut dyn FnMut(usize),
    ) -> Result<(), LoadError<M::Error>> {
        let end = self.len()?;
        let page = PAGE_SIZE as usize;
        let zero_from = keep.max(data.len());
        let mut at = if data.is_empty() {
            zero_from / page * page
        } else {
            0
        };
        while at < end {
            let len = decompress::WINDOW.min(end - at);
            let dst = self.bytes(at, len)?;
            let n = data.len().saturating_sub(at).min(len);
            let z = zero_from.saturating_sub(at).min(len);
            if let (Some(d), Some(s)) = (dst.get_mut(..n), data.get(at..at + n)) {
                d.copy_from_slice(s);
            }
            if let Some(t) = dst.get_mut(z..) {
                t.fill(0);
            }
            at += len;
            done(at.min(data.len()));
        }
        Ok(())
    }
}

impl<M: GuestMemory> WindowedOutput for Segment<'_, M> {
    type Error = LoadError<M::Error>;
    fn window(&mut self, offset: usize, len: usize) -> Result<&mut [u8], Self::Error> {
        self.bytes(offset, len)
    }
}

/// Fill the module's segment, the `pages` guest pages from `first`, with `blob` as
/// `xc_dom_build_module` does (see the module docs): unzipped when `plan` says an unzip is
/// tried and it succeeds, else the raw blob; every other byte of the segment is zero.
/// `consumed(n)` tells the caller as the bytes of `blob` below `n` have been read (a host
/// that maps the file may drop them; they may be read again after a failed unzip).
pub fn load<M: GuestMemory>(
    blob: &[u8],
    plan: &ModulePlan,
    first: Pfn,
    pages: u64,
    mem: &mut M,
    consumed: &mut dyn FnMut(usize),
) -> Result<Loaded, LoadError<M::Error>> {
    let have = pages.saturating_mul(PAGE_SIZE);
    if plan.segment_len > have || plan.size != blob.len() as u64 {
        return Err(LoadError::SegmentTooSmall {
            need: plan.segment_len.max(blob.len() as u64),
            have,
        });
    }
    let mut seg = Segment { mem, first, pages };
    let mut gunzip_failed = None;
    if let Some(room) = plan.unzip_room {
        let room = usize::try_from(room).map_err(|_| LoadError::Overflow)?;
        match decompress::gunzip_member(blob, room, &mut seg, consumed) {
            Ok(n) => {
                // The member's bytes are in place: zero the rest of the segment.
                seg.fill(&[], n, &mut |_| {})?;
                return Ok(Loaded::Gunzipped { bytes: n as u64 });
            }
            Err(GunzipError::Output(e)) => return Err(e),
            Err(GunzipError::Stream(e)) => gunzip_failed = Some(e),
        }
    }
    // "Fall back to handing over the raw blob": the blob, then zeros over whatever the
    // failed unzip wrote and the rest of the segment.
    seg.fill(blob, blob.len(), consumed)?;
    Ok(Loaded::Raw {
        bytes: blob.len() as u64,
        gunzip_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_xc_dom_build_module() {
        // Not gzip, too short, or an insane ISIZE: the blob as is, no unzip.
        assert_eq!(sizes(b"plain data"), (10, 0));
        assert_eq!(sizes(&[0x1f, 0x8b, 0, 0, 0]), (5, 0));
        let mut gz = alloc_gz(0x1e4400);
        assert_eq!(sizes(&gz), (0x1e4410, 0x1e4410));
        let n = gz.len();
        gz[n - 4..].copy_from_slice(&((1u32 << 30) + 1).to_le_bytes());
        assert_eq!(sizes(&gz), (n as u64, 0));
        // An ISIZE within 16 bytes of the limit: unziplen is over it, so the segment is
        // min(unziplen, size) = size and no unzip is tried.
        gz[n - 4..].copy_from_slice(&((1u32 << 30) - 8).to_le_bytes());
        assert_eq!(sizes(&gz), (n as u64, 0));
    }

    fn alloc_gz(isize: u32) -> [u8; 20] {
        let mut gz = [0u8; 20];
        gz[..4].copy_from_slice(&[0x1f, 0x8b, 8, 0]);
        gz[16..].copy_from_slice(&isize.to_le_bytes());
        gz
    }

    #[test]
    fn empty_and_oversized_files_are_refused() {
        assert_eq!(plan(b""), Err(ModuleError::Empty));
        assert!(plan(b"x").is_ok());
    }
}

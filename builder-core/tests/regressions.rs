//! Regressions from hostile input (issue 4): what the fuzzers and the limit review found,
//! each with the input that showed it.
//!
//! - Decompression allocated the size a stream *declares* before decoding a byte: a few
//!   hundred bytes claiming 1 GiB cost 1 GiB. The output buffer now starts in proportion to
//!   the input and grows with what the stream really produces. The allocator below counts
//!   each thread's peak, so the tests measure it.
//! - An lzma (or xz) stream whose output exactly fills its buffer was refused as an overflow:
//!   found measuring decompression bombs (fuzz/bombs.sh). Its inputs are in
//!   `tests/data/regressions/` (fuzz/seed-corpus.sh also seeds the fuzzers with them).

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pvbuild_core::bzimage;
use pvbuild_core::decompress::{self, Compression, DecompressError, UnpackError};

/// The system allocator, counting the bytes each thread holds and its peak.
struct Counting;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    // `try_with`: thread-local storage may already be gone while a thread exits.
    let _ = HELD.try_with(|h| {
        let now = h.get().saturating_add_signed(delta);
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds as it does for `System`; the counting touches no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        // SAFETY: the caller upholds `realloc`'s contract for `ptr`, `layout`, `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Run `f` and return its result and the most memory this thread held above what it held
/// before.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(Cell::get).saturating_sub(base))
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const MIB: usize = 1 << 20;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{name}")).unwrap()
}

/// The bzImage fixtures this build can decode, by payload format.
fn bz_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("gz", fixture("bz-gz.bin")),
        ("lz4", fixture("bz-lz4.bin")),
        ("lzma", fixture("bz-lzma.bin")),
        ("xz", fixture("bz-xz.bin")),
        ("zst", fixture("bz-zst.bin")),
    ];
    if decompress::decompress_into(Compression::Bzip2, &[0; 64], &mut [])
        != Err(DecompressError::Unsupported(Compression::Bzip2))
    {
        v.push(("bz2", fixture("bz-bz2.bin")));
    }
    v
}

/// The same bzImage with its payload's last four bytes (Linux's appended size, or gzip's
/// ISIZE) set to `size`.
fn claiming(file: &[u8], size: u32) -> Vec<u8> {
    let bz = bzimage::parse(file).unwrap();
    let end = bz.payload.as_ptr() as usize - file.as_ptr() as usize + bz.payload.len();
    let mut out = file.to_vec();
    out[end - 4..end].copy_from_slice(&size.to_le_bytes());
    out
}

#[test]
fn a_small_stream_claiming_1gib_costs_memory_in_proportion_to_itself() {
    for (fmt, file) in bz_fixtures() {
        let lying = claiming(&file, 1 << 30);
        let (r, peak) = peak_of(|| decompress::unpack_kernel(&lying).map(|c| c.len()));
        // The stream decodes to its real ~45 KiB, not the 1 GiB it claims.
        match r {
            Err(UnpackError::Decompress(
                DecompressError::SizeMismatch { .. } | DecompressError::Corrupt { .. },
            )) => {}
            other => panic!("{fmt}: {other:?}"),
        }
        // First buffer: max(4 MiB, 64 x a 20 KiB input); decoders' own state on top
        // (the xz fixture's 32 MiB dictionary is allocated as the stream needs it).
        assert!(peak < 40 * MIB, "{fmt}: peak {} MiB", peak / MIB);
    }
}

#[test]
fn a_gzip_ramdisk_claiming_1gib_costs_memory_in_proportion_to_itself() {
    // Its ISIZE + 16 is over the 1 GiB module limit, so (as xc_dom_build_module) no unzip
    // is tried and its segment is its own size; the load writes into guest pages.
    let mut rd = fixture("initrd.gz");
    let n = rd.len();
    rd[n - 4..].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let (r, peak) = peak_of(|| pvbuild_core::module::plan(&rd));
    let plan = r.unwrap();
    assert_eq!((plan.unzip_room(), plan.segment_len()), (None, n as u64));
    assert!(peak <= 5 * MIB, "peak {} MiB", peak / MIB);
}

/// Growing the buffer changes nothing for an honest stream: every format still unpacks to
/// the fixture ELF, in one buffer of exactly its size.
#[test]
fn honest_streams_still_unpack_exactly() {
    let elf = fixture("xen-pv64.elf");
    for (fmt, file) in bz_fixtures() {
        let (r, peak) = peak_of(|| decompress::unpack_kernel(&file).unwrap().into_owned());
        assert_eq!(r, elf, "{fmt}");
        assert!(peak < 40 * MIB, "{fmt}: peak {} MiB", peak / MIB);
    }
}

/// Found measuring 1 GiB bombs: an lzma stream with an end marker whose output exactly
/// fills its buffer was refused as "decodes to more than its declared size" (the decoder
/// stops when its output is full, before it reads the end marker). 8 MiB of zeros by
/// `lzma -0` (dictionary 256 KiB) shows it; the xz one is its sibling.
#[test]
fn a_stream_that_exactly_fills_its_buffer_reaches_its_end() {
    for (name, c) in [
        ("lzma-eos-zeros-8m.lzma", Compression::Lzma),
        ("xz-zeros-8m.xz", Compression::Xz),
    ] {
        let input = fixture(&format!("regressions/{name}"));
        let size = decompress::output_size(c, &input).unwrap();
        assert_eq!(size, 8 << 20);
        let mut out = vec![0xaau8; size as usize];
        assert_eq!(
            decompress::decompress_into(c, &input, &mut out),
            Ok(size as usize),
            "{name}"
        );
        assert!(out.iter().all(|&b| b == 0), "{name}");
        // One byte short is an overflow, not a truncation.
        let mut short = vec![0u8; size as usize - 1];
        assert!(
            matches!(
                decompress::decompress_into(c, &input, &mut short),
                Err(DecompressError::OutputOverflow { .. })
            ),
            "{name}"
        );
    }
}

//! Regressions from hostile input (issue 4), through the host's whole `plan` path: a kernel
//! or ramdisk that claims a huge decompressed size but holds little costs memory in
//! proportion to what it holds, and is refused with an error naming the file. A counting
//! allocator measures each thread's peak.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use pvbuild::plan::{plan, PlanArgs, PlanError};

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

fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    (r, PEAK.with(Cell::get).saturating_sub(base))
}

const MIB: usize = 1 << 20;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../builder-core/tests/data")
        .join(name)
}

/// `file` with its last four bytes (a payload's appended size, or gzip's ISIZE) set to
/// 1 GiB, written to a temporary file.
fn claiming_1gib(file: &[u8], tag: &str) -> PathBuf {
    let mut out = file.to_vec();
    let n = out.len();
    out[n - 4..].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let path = std::env::temp_dir().join(format!("pvbuild-regress-{}-{tag}", std::process::id()));
    std::fs::write(&path, out).unwrap();
    path
}

fn args(kernel: PathBuf, ramdisk: Option<PathBuf>) -> PlanArgs {
    PlanArgs {
        kernel,
        ramdisk,
        cmdline: String::new(),
        memory_mib: 32,
        vcpus: 1,
    }
}

/// The bzImage fixtures end with their payload, so their last four bytes are the payload's
/// declared size. Before the fix each of these allocated 1 GiB.
#[test]
fn plan_of_a_kernel_claiming_1gib_stays_small() {
    for fmt in ["gz", "bz2", "lz4", "lzma", "xz", "zst"] {
        let file = std::fs::read(data(&format!("bz-{fmt}.bin"))).unwrap();
        let kernel = claiming_1gib(&file, fmt);
        let (r, peak) = peak_of(|| plan(&args(kernel.clone(), None)));
        std::fs::remove_file(&kernel).unwrap();
        match r {
            Err(PlanError::Kernel { path, msg }) => {
                assert_eq!(path, kernel);
                assert!(
                    msg.contains("instead of 0x40000000") || msg.contains("ISIZE"),
                    "{fmt}: {msg}"
                );
            }
            other => panic!("{fmt}: {other:?}"),
        }
        assert!(peak < 48 * MIB, "{fmt}: peak {} MiB", peak / MIB);
    }
}

#[test]
fn plan_with_a_gzip_ramdisk_claiming_1gib_stays_small() {
    let file = std::fs::read(data("initrd.gz")).unwrap();
    let ramdisk = claiming_1gib(&file, "initrd");
    let (r, peak) = peak_of(|| plan(&args(data("xen-pv64.elf"), Some(ramdisk.clone()))));
    std::fs::remove_file(&ramdisk).unwrap();
    match r {
        Err(PlanError::Ramdisk { path, msg }) => {
            assert_eq!(path, ramdisk);
            assert!(msg.contains("ISIZE"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(peak < 8 * MIB, "peak {} MiB", peak / MIB);
}

/// The honest inputs still plan, within the guest's own memory plus a little.
#[test]
fn plan_of_the_fixtures_costs_about_the_guest() {
    for k in ["bz-xz.bin", "bz-gz.bin", "xen-pv64.elf"] {
        let (r, peak) = peak_of(|| plan(&args(data(k), Some(data("initrd.gz")))));
        let p = r.unwrap_or_else(|e| panic!("{k}: {e}"));
        assert!(p.walk.pages_mapped > 0);
        // 32 MiB of guest, its p2m, the unpacked kernel and ramdisk, the xz dictionary.
        assert!(peak < 80 * MIB, "{k}: peak {} MiB", peak / MIB);
    }
}

/// An endless "kernel" or "ramdisk" (a character device) is refused once it passes its size
/// limit, without reading it to the end of memory.
#[test]
fn plan_of_an_endless_file_is_refused_at_the_limit() {
    let (r, peak) = peak_of(|| plan(&args(PathBuf::from("/dev/zero"), None)));
    match r {
        Err(PlanError::Argument(msg)) => assert!(msg.contains("/dev/zero"), "{msg}"),
        other => panic!("expected a size refusal, got {other:?}"),
    }
    let limit = pvbuild_core::limits::MAX_KERNEL_FILE as usize;
    assert!(peak <= 2 * limit + (16 << 20), "peak {peak} bytes");
}

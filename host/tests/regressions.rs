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
    // ISIZE + 16 is over the 1 GiB module limit: as xc_dom_build_module, no unzip is tried
    // and the blob is loaded as it is (issue 12; it was refused before).
    let p = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.ramdisk_loaded,
        Some(pvbuild_core::module::Loaded::Raw {
            bytes: file.len() as u64,
            gunzip_failed: None
        })
    );
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

fn temp_file(tag: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("pvbuild-regress-{}-{tag}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// gzip by the `gzip` tool (an oracle outside pvbuild).
fn gzip_tool(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the gzip tool is needed");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn sha256_padded(bytes: &[u8], len: usize) -> [u8; 32] {
    use sha2::Digest as _;
    let mut v = bytes.to_vec();
    v.resize(len, 0);
    sha2::Sha256::digest(&v).into()
}

/// Issue 12: `a.cpio.gz` + `b.cpio.gz` (the fixture initrd, then a small member) was refused
/// ("decoded to ... bytes instead of ..."); libxenguest's unzip into b's ISIZE + 16 bytes
/// runs out of room and it hands the raw blob over, which Linux unpacks. So does pvbuild now:
/// the guest's segment is the blob, then zeros (checked by its hash).
#[test]
fn plan_of_a_concatenated_initramfs_hands_over_the_raw_blob() {
    let mut blob = std::fs::read(data("initrd.gz")).unwrap();
    blob.extend_from_slice(&gzip_tool(b"a second cpio member"));
    let path = temp_file("concat", &blob);
    let r = plan(&args(data("xen-pv64.elf"), Some(path.clone())));
    std::fs::remove_file(&path).unwrap();
    let p = r.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            p.ramdisk_loaded,
            Some(pvbuild_core::module::Loaded::Raw { gunzip_failed: Some(_), bytes }) if bytes == blob.len() as u64
        ),
        "{:?}",
        p.ramdisk_loaded
    );
    let seg = p.layout.ramdisk.unwrap();
    assert_eq!(seg.vend - seg.vstart, blob.len() as u64);
    assert_eq!(
        p.ramdisk_sha256,
        Some(sha256_padded(&blob, (seg.pages * 4096) as usize))
    );
}

/// Issue 12: an empty ramdisk was accepted; libxenguest refuses a zero-length file.
#[test]
fn plan_of_an_empty_ramdisk_is_refused() {
    let path = temp_file("empty", b"");
    let r = plan(&args(data("xen-pv64.elf"), Some(path.clone())));
    std::fs::remove_file(&path).unwrap();
    match r {
        Err(e @ PlanError::Ramdisk { .. }) => {
            assert!(e.to_string().contains("zero length file"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Issue 12: a raw ramdisk is mapped and copied straight into the guest's pages, and the
/// plan's guest memory is not heap: planning a 64 MiB ramdisk for a 128 MiB guest used to
/// hold the file, a copy and the guest (about 256 MiB of heap).
#[test]
fn plan_of_a_large_raw_ramdisk_holds_none_of_it_in_the_heap() {
    let raw: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let path = temp_file("raw64", &raw);
    let mut a = args(data("xen-pv64.elf"), Some(path.clone()));
    a.memory_mib = 128;
    let (r, peak) = peak_of(|| plan(&a));
    std::fs::remove_file(&path).unwrap();
    let p = r.unwrap_or_else(|e| panic!("{e}"));
    let seg = p.layout.ramdisk.unwrap();
    assert_eq!(
        p.ramdisk_sha256,
        Some(sha256_padded(&raw, (seg.pages * 4096) as usize))
    );
    assert!(peak < 16 * MIB, "peak {} MiB", peak / MIB);
}

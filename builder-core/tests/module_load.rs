//! Ramdisks loaded as libxenguest's `xc_dom_build_module` loads them: the first gzip member
//! unzipped when it fits `ISIZE + 16` bytes, else the raw blob; never refused for its
//! contents. The gzip streams come from the `gzip` tool (an oracle outside this crate).

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvbuild_core::addr::{Mfn, Pfn, PAGE_SIZE};
use pvbuild_core::decompress::DecompressError;
use pvbuild_core::mem::InMemory;
use pvbuild_core::module::{self, Loaded, ModuleError};
use std::io::Write as _;
use std::process::{Command, Stdio};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the gzip tool is needed for these tests");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Text-like bytes with repeats at every distance deflate can reach.
fn words(n: usize, seed: u64) -> Vec<u8> {
    const W: [&str; 12] = [
        "initramfs ",
        "busybox ",
        "xen ",
        "pvbuild ",
        "cpio ",
        "newc ",
        "kernel ",
        "module ",
        "\n",
        "TRAILER!!! ",
        "0123456789 ",
        "lib/modules ",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(W[(x % 12) as usize].as_bytes());
        if x % 97 == 0 {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(n);
    out
}

/// Load `blob` into a guest whose segment is what the plan says, and return what the plan
/// said, what was loaded and the segment's bytes.
fn load(blob: &[u8]) -> (module::ModulePlan, Loaded, Vec<u8>) {
    let plan = module::plan(blob).unwrap();
    let pages = plan.segment_len().div_ceil(PAGE_SIZE) + 3;
    let p2m: Vec<Mfn> = (0..pages).map(|p| Mfn::new(p + 0x1000).unwrap()).collect();
    // Garbage everywhere: every byte of the segment must be written.
    let mut bytes = vec![0xa5u8; (pages * PAGE_SIZE) as usize];
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let first = Pfn::new(2).unwrap();
    let seg_pages = plan.segment_len().div_ceil(PAGE_SIZE);
    let mut read_to = 0usize;
    let loaded = module::load(blob, &plan, first, seg_pages, &mut mem, &mut |n| {
        read_to = read_to.max(n)
    })
    .unwrap();
    assert!(read_to <= blob.len());
    // Pages outside the segment are untouched.
    assert!(bytes[..2 * 4096].iter().all(|&b| b == 0xa5));
    let end = (2 + seg_pages) as usize * 4096;
    assert!(bytes[end..].iter().all(|&b| b == 0xa5));
    (plan, loaded, bytes[2 * 4096..end].to_vec())
}

fn padded(data: &[u8], len: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(len, 0);
    v
}

#[test]
fn a_gzip_ramdisk_is_unzipped_into_isize_plus_16() {
    let a = words(3 << 20, 1);
    let gz = gzip(&a);
    let (plan, loaded, seg) = load(&gz);
    assert_eq!(plan.segment_len(), a.len() as u64 + 16);
    assert_eq!(
        loaded,
        Loaded::Gunzipped {
            bytes: a.len() as u64
        }
    );
    assert_eq!(seg, padded(&a, seg.len()));
}

/// More than one window of output (16 MiB each): back-references that cross a window's
/// start still resolve.
#[test]
fn output_larger_than_a_window_unzips_exactly() {
    let a = words(40 << 20, 7);
    let (_, loaded, seg) = load(&gzip(&a));
    assert_eq!(
        loaded,
        Loaded::Gunzipped {
            bytes: a.len() as u64
        }
    );
    assert!(seg == padded(&a, seg.len()), "unzipped bytes differ");
}

/// `a.cpio.gz` + `b.cpio.gz` with `a` larger than `b`: the unzip into b's ISIZE + 16 bytes
/// runs out of room, and the guest gets the raw blob (which Linux unpacks member by member).
/// Refused before issue 12.
#[test]
fn a_concatenated_initramfs_is_handed_over_raw() {
    let a = words(1 << 20, 2);
    let b = words(10_000, 3);
    let mut blob = gzip(&a);
    blob.extend_from_slice(&gzip(&b));
    let (plan, loaded, seg) = load(&blob);
    // The segment is sized from the last member's ISIZE, as xc_dom_check_gzip does.
    assert_eq!(plan.segment_len(), blob.len() as u64);
    assert!(
        matches!(
            loaded,
            Loaded::Raw {
                gunzip_failed: Some(DecompressError::OutputOverflow { .. }),
                ..
            }
        ),
        "{loaded:?}"
    );
    assert_eq!(seg, padded(&blob, seg.len()));
}

/// `a` + `b` with `b` larger: zlib stops at the end of the first member, so libxenguest
/// loads `a` alone, unzipped, and `b` is lost. So does pvbuild.
#[test]
fn a_concatenated_initramfs_with_a_small_first_member_loads_that_member() {
    let a = words(10_000, 4);
    let b = words(1 << 20, 5);
    let mut blob = gzip(&a);
    blob.extend_from_slice(&gzip(&b));
    let (plan, loaded, seg) = load(&blob);
    assert_eq!(plan.segment_len(), b.len() as u64 + 16);
    assert_eq!(
        loaded,
        Loaded::Gunzipped {
            bytes: a.len() as u64
        }
    );
    assert_eq!(seg, padded(&a, seg.len()));
}

/// A gzip ramdisk whose trailer does not match (a lying ISIZE, a bad CRC), or whose stream
/// is corrupt or cut short, is handed over raw, as `xc_dom_build_module` falls back.
#[test]
fn a_gzip_ramdisk_that_does_not_decode_is_handed_over_raw() {
    let a = words(200_000, 6);
    let gz = gzip(&a);
    let n = gz.len();
    let mut lie_small = gz.clone();
    lie_small[n - 4..].copy_from_slice(&(a.len() as u32 - 100).to_le_bytes());
    let mut lie_big = gz.clone();
    lie_big[n - 4..].copy_from_slice(&(a.len() as u32 + 100).to_le_bytes());
    let mut bad_crc = gz.clone();
    bad_crc[n - 8] ^= 1;
    let mut corrupt = gz.clone();
    corrupt[n / 2] ^= 0xff;
    let mut cut = gz[..n / 2].to_vec();
    cut.extend_from_slice(&gz[n - 4..]);
    for (what, blob) in [
        ("ISIZE too small", lie_small),
        ("ISIZE too large", lie_big),
        ("CRC32", bad_crc),
        ("corrupt", corrupt),
        ("truncated", cut),
    ] {
        let (plan, loaded, seg) = load(&blob);
        assert!(
            matches!(loaded, Loaded::Raw { gunzip_failed: Some(_), bytes } if bytes == blob.len() as u64),
            "{what}: {loaded:?}"
        );
        assert_eq!(
            plan.segment_len(),
            (blob.len() as u64).max(plan.unzip_room().unwrap())
        );
        assert!(
            seg == padded(&blob, seg.len()),
            "{what}: segment is not the raw blob"
        );
    }
}

/// What is not gzip is loaded as it is; an empty file is refused, as `xc_dom_malloc_filemap`
/// refuses a zero-length file.
#[test]
fn other_ramdisks_raw_and_an_empty_one_refused() {
    let xz_like = b"\xfd7zXZ\x00 not really".to_vec();
    let (plan, loaded, seg) = load(&xz_like);
    assert_eq!(plan.unzip_room(), None);
    assert_eq!(
        loaded,
        Loaded::Raw {
            bytes: xz_like.len() as u64,
            gunzip_failed: None
        }
    );
    assert_eq!(seg, padded(&xz_like, 4096));
    assert_eq!(module::plan(b""), Err(ModuleError::Empty));
}

//! Every compression format on a real sample: tests/data/make-fixtures.sh builds a small Xen
//! PV ELF kernel with GNU binutils and compresses it with the real gzip, bzip2, lzma, xz, lz4
//! and zstd CLIs into bzImage-shaped files, as Linux's build does. Plus corrupt, truncated and
//! lying streams, which must all be refused with the right error.

// unpack_* need the `alloc` feature.
#![cfg(feature = "alloc")]
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvbuild_core::decompress::{self, Compression, DecompressError, UnpackError};
use pvbuild_core::image::{GuestType, LoadKernel, PaeMode};
use pvbuild_core::kernel::parse_kernel;
use pvbuild_core::probe::{self, Format};
use std::borrow::Cow;

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const FORMATS: [(&str, Compression); 6] = [
    ("bz-gz.bin", Compression::Gzip),
    ("bz-bz2.bin", Compression::Bzip2),
    ("bz-lzma.bin", Compression::Lzma),
    ("bz-xz.bin", Compression::Xz),
    ("bz-lz4.bin", Compression::Lz4),
    ("bz-zst.bin", Compression::Zstd),
];

fn check_fixture_kernel(image: &[u8]) {
    let k = parse_kernel(image).unwrap();
    let p = k.params();
    assert_eq!(p.guest_type, GuestType::X86_64);
    assert_eq!(p.virt_base, 0xffffffff80000000);
    assert_eq!(p.virt_kstart, 0xffffffff81000000);
    assert_eq!(p.virt_kend, 0xffffffff8100c194);
    assert_eq!(p.virt_entry, 0xffffffff81000000);
    assert_eq!(p.virt_hypercall, Some(0xffffffff81001000));
    assert_eq!(p.p2m_base, Some(0x8000000000));
    assert_eq!(p.pae, PaeMode::ExtendedCr3);
    assert_eq!(p.phys_entry, Some(0x1000000));
    assert!(p.unmapped_initrd);
    let mut dest = vec![0u8; (p.virt_kend - p.virt_kstart) as usize];
    k.load(&mut dest).unwrap();
    // The hypercall page (0xcc filler) sits one page into the text.
    assert!(dest[0x1000..0x2000].iter().all(|&b| b == 0xcc));
    // .data's marker quad, then zeroed bss at the end.
    assert_eq!(&dest[0xa000..0xa008], &0x1122334455667788u64.to_le_bytes());
    assert!(dest[0xa194..].iter().all(|&b| b == 0));
}

#[test]
fn every_format_decodes_to_the_kernel() {
    let elf = data("xen-pv64.elf");
    check_fixture_kernel(&elf);
    for (name, c) in FORMATS {
        let file = data(name);
        let Format::BzImage {
            compression,
            payload_offset,
            payload_len,
        } = probe::identify(&file)
        else {
            panic!("{name}: {:?}", probe::identify(&file));
        };
        assert_eq!(compression, c, "{name}");
        assert_eq!(payload_offset, 4 * 512);
        assert_eq!(payload_len as usize, file.len() - 4 * 512);
        let payload = &file[2048..];
        assert_eq!(
            decompress::output_size(c, payload).unwrap(),
            elf.len() as u64,
            "{name}"
        );
        if !c.supported() {
            assert_eq!(
                decompress::unpack_kernel(&file),
                Err(UnpackError::Decompress(DecompressError::Unsupported(c)))
            );
            continue;
        }
        let image = decompress::unpack_kernel(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(image == elf.as_slice(), "{name}: decoded bytes differ");
        check_fixture_kernel(&image);
    }
}

#[test]
fn gzip_kernel_and_plain_elf() {
    let elf = data("xen-pv64.elf");
    let gz = data("xen-pv64.elf.gz");
    assert_eq!(probe::identify(&gz), Format::Gzip);
    assert_eq!(probe::identify(&elf), Format::Elf);
    let unpacked = decompress::unpack_kernel(&gz).unwrap();
    assert!(matches!(unpacked, Cow::Owned(_)));
    assert_eq!(&*unpacked, elf.as_slice());
    assert!(matches!(
        decompress::unpack_kernel(&elf).unwrap(),
        Cow::Borrowed(_)
    ));
}

#[test]
fn gzip_ramdisk_is_unpacked_others_kept() {
    // Sizing only: loading is in tests/module_load.rs.
    let initrd = data("initrd.gz");
    let elf = data("xen-pv64.elf");
    let plan = pvbuild_core::module::plan(&initrd).unwrap();
    assert_eq!(plan.unzip_room(), Some(elf.len() as u64 + 16));
    // libxenguest unpacks only gzip modules: an xz one is loaded as it is.
    let xz = data("bz-xz.bin");
    let plan = pvbuild_core::module::plan(&xz[2048..]).unwrap();
    assert_eq!(plan.unzip_room(), None);
    assert_eq!(plan.segment_len(), (xz.len() - 2048) as u64);
}

fn payload(name: &str) -> Vec<u8> {
    data(name)[2048..].to_vec()
}

fn with_size(mut p: Vec<u8>, size: u32) -> Vec<u8> {
    let n = p.len();
    p[n - 4..].copy_from_slice(&size.to_le_bytes());
    p
}

#[test]
fn truncated_streams_are_refused() {
    for (name, c) in FORMATS {
        if !c.supported() {
            continue;
        }
        let p = payload(name);
        let size = decompress::output_size(c, &p).unwrap() as usize;
        for keep in [p.len() / 3, p.len() * 2 / 3, p.len() - 12] {
            // Keep the size trailer so only the stream itself is short.
            let mut cut = p[..keep].to_vec();
            cut.extend_from_slice(&p[p.len() - 4..]);
            let mut out = vec![0u8; size];
            let r = decompress::decompress_into(c, &cut, &mut out);
            assert!(
                matches!(
                    r,
                    Err(DecompressError::Truncated { .. } | DecompressError::Corrupt { .. })
                ),
                "{name} cut at {keep}: {r:?}"
            );
        }
        // Cut inside the header.
        assert!(decompress::decompress_into(c, &p[..6], &mut vec![0u8; size]).is_err());
    }
}

#[test]
fn corrupt_streams_are_refused() {
    for (name, c) in FORMATS {
        if !c.supported() {
            continue;
        }
        let p = payload(name);
        let size = decompress::output_size(c, &p).unwrap() as usize;
        let mut refused = 0;
        // Flip bytes across the stream: each format's checks (CRC32 for gzip and xz, block
        // CRCs for bzip2, xxhash for zstd, structure for lz4/lzma) must catch what changes
        // the output.
        for at in (16..p.len() - 8).step_by(p.len() / 16) {
            let mut bad = p.clone();
            bad[at] ^= 0x55;
            let mut out = vec![0u8; size];
            match decompress::decompress_into(c, &bad, &mut out) {
                Err(_) => refused += 1,
                Ok(n) => {
                    // Formats without a checksum (lz4 legacy, lzma) may decode a flipped
                    // literal: never beyond the buffer, and visibly different.
                    assert!(n <= size);
                    assert!(
                        matches!(c, Compression::Lz4 | Compression::Lzma),
                        "{name}@{at}"
                    );
                }
            }
        }
        assert!(refused > 0, "{name}: no corruption detected");
    }
}

#[test]
fn lying_sizes_and_bombs_are_refused() {
    for (name, c) in FORMATS {
        if !c.supported() {
            continue;
        }
        let p = payload(name);
        let size = decompress::output_size(c, &p).unwrap() as u32;
        // Declares less than it holds: the stream overflows the buffer sized from it.
        let short = with_size(p.clone(), size - 100);
        let mut out = vec![0u8; (size - 100) as usize];
        assert!(
            matches!(
                decompress::decompress_into(c, &short, &mut out),
                Err(DecompressError::OutputOverflow { .. }
                    | DecompressError::Corrupt { .. }
                    | DecompressError::Truncated { .. })
            ),
            "{name}"
        );
        // Declares more than it holds: decodes short, refused by the size check.
        let mut bz = data(name);
        let n = bz.len();
        bz[n - 4..].copy_from_slice(&(size + 4096).to_le_bytes());
        assert!(decompress::unpack_kernel(&bz).is_err(), "{name}");
        // Declares more than the limit: refused before any allocation.
        let bomb = with_size(p.clone(), u32::MAX);
        assert_eq!(
            decompress::output_size(c, &bomb),
            Err(DecompressError::TooLarge {
                size: u64::from(u32::MAX),
                limit: pvbuild_core::limits::MAX_DECOMPRESSED_KERNEL
            })
        );
        bz[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decompress::unpack_kernel(&bz),
            Err(UnpackError::Decompress(DecompressError::TooLarge { .. }))
        ));
    }
}

#[test]
fn real_bomb_is_bounded_by_its_buffer() {
    // 64 MiB of zeros, xz-compressed by the real CLI to a few KiB: decoding into a 1 MiB
    // buffer stops at the buffer's end with OutputOverflow.
    let zeros = std::process::Command::new("sh")
        .args(["-c", "head -c 67108864 /dev/zero | xz --check=crc32 -9 -c"])
        .output()
        .expect("xz CLI");
    assert!(zeros.status.success());
    let mut p = zeros.stdout;
    p.extend_from_slice(&(1u32 << 20).to_le_bytes());
    let mut out = vec![0u8; 1 << 20];
    assert_eq!(
        decompress::decompress_into(Compression::Xz, &p, &mut out),
        Err(DecompressError::OutputOverflow {
            format: Compression::Xz,
            capacity: 1 << 20
        })
    );
    let mut gz = std::process::Command::new("sh")
        .args(["-c", "head -c 67108864 /dev/zero | gzip -1 -c"])
        .output()
        .expect("gzip CLI")
        .stdout;
    // Its ISIZE is true (64 MiB) but the caller's buffer is 1 MiB.
    assert_eq!(
        decompress::decompress_into(Compression::Gzip, &gz, &mut out),
        Err(DecompressError::OutputOverflow {
            format: Compression::Gzip,
            capacity: 1 << 20
        })
    );
    // A ramdisk gzip whose ISIZE claims more than the ramdisk limit is not unzipped
    // ("looks insane"): it is loaded as it is.
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    let plan = pvbuild_core::module::plan(&gz).unwrap();
    assert_eq!((plan.unzip_room(), plan.segment_len()), (None, n as u64));
}

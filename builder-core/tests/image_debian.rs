//! Debian's own kernel (an xz bzImage) must parse to exactly what libxenguest logged for it:
//! ../shared/reference/xl-vvv-debian-6.1.0-56-amd64.log.
//! Needs /boot/vmlinuz-6.1.0-56-amd64 (package linux-image-6.1.0-56-amd64): fails, not skips,
//! without it.

// unpack_* need the `alloc` feature.
#![cfg(feature = "alloc")]
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvbuild_core::decompress::{self, Compression};
use pvbuild_core::elf::Elf;
use pvbuild_core::image::{GuestType, LoadKernel, PaeMode};
use pvbuild_core::kernel::parse_kernel;
use pvbuild_core::probe::{self, Format};

const KERNEL: &str = "/boot/vmlinuz-6.1.0-56-amd64";

fn debian_kernel() -> Vec<u8> {
    std::fs::read(KERNEL).unwrap_or_else(|e| {
        panic!("{KERNEL}: {e}: install linux-image-6.1.0-56-amd64 (the test needs the real kernel)")
    })
}

#[test]
fn debian_kernel_matches_libxenguest_log() {
    let file = debian_kernel();
    // "_xc_try_lzma_decode: XZ decompress OK, 0x7bf070 -> 0x3eda7b4"
    let Format::BzImage {
        payload_len,
        compression,
        ..
    } = probe::identify(&file)
    else {
        panic!("not identified as a bzImage: {:?}", probe::identify(&file));
    };
    assert_eq!(compression, Compression::Xz);
    assert_eq!(payload_len, 0x7bf070);
    let bz = pvbuild_core::bzimage::parse(&file).unwrap();
    assert_eq!(
        decompress::output_size(Compression::Xz, bz.payload).unwrap(),
        0x3eda7b4
    );

    let image = decompress::unpack_kernel(&file).unwrap();
    assert_eq!(image.len(), 0x3eda7b4);

    // "ELF: phdr: paddr=... memsz=..." and "ELF: memory: 0x1000000 -> 0x4a00000"
    let elf = Elf::parse(&image).unwrap();
    let segs: Vec<(u64, u64)> = elf.loadable().map(|p| (p.paddr, p.memsz)).collect();
    assert_eq!(
        segs,
        [
            (0x1000000, 0x18ea9f0),
            (0x2a00000, 0x644000),
            (0x3044000, 0x35000),
            (0x3079000, 0x1987000)
        ]
    );
    assert_eq!((elf.pstart(), elf.pend()), (0x1000000, 0x4a00000));

    let k = parse_kernel(&image).unwrap();
    let p = k.params();
    assert_eq!(p.guest_type, GuestType::X86_64);
    assert_eq!(p.guest_os.as_str(), "linux");
    assert_eq!(p.guest_ver.as_str(), "2.6");
    assert_eq!(p.xen_ver.as_str(), "xen-3.0");
    assert_eq!(p.loader.as_str(), "generic");
    // PAE_MODE = "yes": libelf records extended-cr3.
    assert_eq!(p.pae, PaeMode::ExtendedCr3);
    assert_eq!(p.virt_base, 0xffffffff80000000);
    assert_eq!(p.elf_paddr_offset, 0);
    assert_eq!(p.virt_offset, 0xffffffff80000000);
    assert_eq!(p.virt_kstart, 0xffffffff81000000);
    assert_eq!(p.virt_kend, 0xffffffff84a00000);
    assert_eq!(p.virt_entry, 0xffffffff830791c0);
    assert_eq!(p.p2m_base, Some(0x8000000000));
    assert!(p.unmapped_initrd, "MOD_START_PFN = 0x1");
    assert_eq!(p.virt_hv_start_low, Some(0xffff800000000000));
    assert_eq!(p.phys_entry, Some(0x1000850));
    assert_eq!(p.virt_hypercall, None);
    // FEATURES = "!writable_page_tables|pae_pgdir_above_4gb", SUPPORTED_FEATURES = 0x8801
    assert_eq!(p.f_supported, [0x8801 | 1 | (1 << 4)]);
    assert_eq!(p.f_required, [1]);
    assert!(p.requires(pvbuild_core::image::xenfeat::WRITABLE_PAGE_TABLES));
    assert!(p.supports(pvbuild_core::image::xenfeat::DOM0));

    // Load: each segment's file bytes at paddr - pstart, the rest zero.
    let mut dest = vec![0xaau8; (p.virt_kend - p.virt_kstart) as usize];
    k.load(&mut dest).unwrap();
    for ph in elf.loadable() {
        let at = (ph.paddr - elf.pstart()) as usize;
        let src = &image[ph.offset as usize..][..ph.filesz as usize];
        assert_eq!(&dest[at..at + src.len()], src);
        assert!(dest[at + src.len()..at + ph.memsz as usize]
            .iter()
            .all(|&b| b == 0));
    }
    // A wrong-sized destination is refused.
    assert!(k.load(&mut dest[1..]).is_err());
}

#[test]
fn debian_payload_truncated_or_corrupt_is_refused() {
    let file = debian_kernel();
    let bz = pvbuild_core::bzimage::parse(&file).unwrap();
    let size = decompress::output_size(Compression::Xz, bz.payload).unwrap() as usize;
    let mut out = vec![0u8; size];
    // Cut in the middle, keeping a plausible size trailer.
    let mut cut = bz.payload[..bz.payload.len() / 2].to_vec();
    cut.extend_from_slice(&bz.payload[bz.payload.len() - 4..]);
    assert!(matches!(
        decompress::decompress_into(Compression::Xz, &cut, &mut out),
        Err(decompress::DecompressError::Truncated { .. }
            | decompress::DecompressError::Corrupt { .. })
    ));
    // An output buffer one byte short: the stream overflows it.
    assert!(matches!(
        decompress::decompress_into(Compression::Xz, bz.payload, &mut out[..size - 1]),
        Err(decompress::DecompressError::OutputOverflow { .. })
    ));
}

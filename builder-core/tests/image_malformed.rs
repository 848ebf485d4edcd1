//! Each malformed-input class refused with the right error: ELF headers and segments, Xen
//! notes, the `__xen_guest` string, bzImage headers and 'bin' tables. The images are built
//! here byte by byte from a valid baseline, one field changed per case.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvbuild_core::bin::{self, BinError};
use pvbuild_core::bzimage::{self, BzImageError};
use pvbuild_core::elf::{Elf, ElfError};
use pvbuild_core::image::{FeatureError, GuestType, LoadKernel, PaeMode};
use pvbuild_core::kernel::{parse_kernel, KernelError};
use pvbuild_core::notes::NoteError;

const VIRT_BASE: u64 = 0xffffffff80000000;
const PADDR: u64 = 0x100000;
const KSTART: u64 = VIRT_BASE + PADDR;

fn note(ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&4u32.to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&ty.to_le_bytes());
    n.extend_from_slice(b"Xen\0");
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

fn base_notes() -> Vec<Vec<u8>> {
    vec![
        note(6, b"linux\0"),
        note(5, b"xen-3.0\0"),
        note(3, &VIRT_BASE.to_le_bytes()),
        note(4, &0u64.to_le_bytes()),
        note(1, &(KSTART + 0x10).to_le_bytes()),
        note(2, &(KSTART + 0x1000).to_le_bytes()),
    ]
}

/// One program header: (type, flags, offset, paddr, filesz, memsz).
type Ph = (u32, u32, u64, u64, u64, u64);

/// An ELF64 x86-64 image: header, program headers at 64, notes at 0x400, one 0x2000-byte
/// LOAD at file offset 0x1000 (memsz 0x3000), plus `extra` program headers.
fn elf64(notes: &[Vec<u8>], extra: &[Ph]) -> Vec<u8> {
    let notes: Vec<u8> = notes.concat();
    let mut phs: Vec<Ph> = vec![
        (1, 5, 0x1000, PADDR, 0x2000, 0x3000),
        (4, 4, 0x400, 0, notes.len() as u64, notes.len() as u64),
    ];
    phs.extend_from_slice(extra);
    let mut f = vec![0u8; 0x3000];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little endian
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f[24..32].copy_from_slice(&(KSTART + 0x10).to_le_bytes()); // e_entry
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    f[56..58].copy_from_slice(&(phs.len() as u16).to_le_bytes());
    for (i, &(t, fl, off, pa, fs, ms)) in phs.iter().enumerate() {
        let p = 64 + 56 * i;
        f[p..p + 4].copy_from_slice(&t.to_le_bytes());
        f[p + 4..p + 8].copy_from_slice(&fl.to_le_bytes());
        f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
        f[p + 16..p + 24].copy_from_slice(&(pa.wrapping_add(VIRT_BASE)).to_le_bytes());
        f[p + 24..p + 32].copy_from_slice(&pa.to_le_bytes());
        f[p + 32..p + 40].copy_from_slice(&fs.to_le_bytes());
        f[p + 40..p + 48].copy_from_slice(&ms.to_le_bytes());
    }
    f[0x400..0x400 + notes.len()].copy_from_slice(&notes);
    for (i, b) in f[0x1000..0x3000].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    f
}

fn elf_err(image: &[u8]) -> ElfError {
    match parse_kernel(image) {
        Err(KernelError::Elf(e)) => e,
        other => panic!("expected an ELF error, got {other:?}"),
    }
}

fn ph_field(f: &mut [u8], index: usize, field_off: usize, value: u64) {
    let p = 64 + 56 * index + field_off;
    f[p..p + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn baseline_parses_and_loads() {
    let f = elf64(&base_notes(), &[]);
    let k = parse_kernel(&f).unwrap();
    let p = k.params();
    assert_eq!((p.virt_kstart, p.virt_kend), (KSTART, KSTART + 0x3000));
    assert_eq!(p.virt_hypercall, Some(KSTART + 0x1000));
    let mut dest = vec![0xffu8; 0x3000];
    k.load(&mut dest).unwrap();
    assert_eq!(&dest[..0x2000], &f[0x1000..0x3000]);
    assert!(dest[0x2000..].iter().all(|&b| b == 0));
    // Parsing needs no alignment: the same image one byte into a buffer.
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&f);
    assert_eq!(parse_kernel(&shifted[1..]).unwrap().params(), p);
}

#[test]
fn truncations() {
    let f = elf64(&base_notes(), &[]);
    assert_eq!(elf_err(&f[..40]), ElfError::Truncated);
    assert!(matches!(
        elf_err(&f[..100]),
        ElfError::PhdrsOutOfFile { .. }
    ));
    assert!(matches!(
        elf_err(&f[..0x2000]),
        ElfError::SegmentOutOfFile { index: 0, .. }
    ));
    assert_eq!(
        parse_kernel(&f[..3]).unwrap_err(),
        KernelError::UnknownFormat
    );
}

#[test]
fn out_of_file_offsets() {
    let mut f = elf64(&base_notes(), &[]);
    f[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(elf_err(&f), ElfError::PhdrsOutOfFile { .. }));
    let mut f = elf64(&base_notes(), &[]);
    ph_field(&mut f, 0, 8, 0x10_0000_0000);
    assert!(matches!(elf_err(&f), ElfError::SegmentOutOfFile { .. }));
    let mut f = elf64(&base_notes(), &[]);
    ph_field(&mut f, 1, 8, u64::MAX - 2);
    assert!(matches!(elf_err(&f), ElfError::NoteAreaOutOfFile { .. }));
    // Section headers beyond the file.
    let mut f = elf64(&base_notes(), &[]);
    f[40..48].copy_from_slice(&0x10_0000u64.to_le_bytes());
    f[58..60].copy_from_slice(&64u16.to_le_bytes());
    f[60..62].copy_from_slice(&3u16.to_le_bytes());
    assert!(matches!(elf_err(&f), ElfError::ShdrsOutOfFile { .. }));
}

#[test]
fn overflowing_sizes() {
    let mut f = elf64(&base_notes(), &[]);
    ph_field(&mut f, 0, 24, u64::MAX - 0x100); // paddr
    assert_eq!(elf_err(&f), ElfError::SegmentAddressOverflow { index: 0 });
    let mut f = elf64(&base_notes(), &[]);
    ph_field(&mut f, 0, 40, 0x1000); // memsz < filesz
    assert_eq!(elf_err(&f), ElfError::FileSizeExceedsMemSize { index: 0 });
    let mut f = elf64(&base_notes(), &[]);
    f[56..58].copy_from_slice(&1000u16.to_le_bytes());
    assert_eq!(elf_err(&f), ElfError::TooManySegments(1000));
    let mut f = elf64(&base_notes(), &[]);
    f[54..56].copy_from_slice(&8u16.to_le_bytes());
    assert_eq!(elf_err(&f), ElfError::BadEntrySize { entsize: 8 });
}

#[test]
fn overlapping_or_absent_segments() {
    let f = elf64(
        &base_notes(),
        &[(1, 6, 0x1000, PADDR + 0x2800, 0x100, 0x1000)],
    );
    assert_eq!(elf_err(&f), ElfError::OverlappingSegments { a: 0, b: 2 });
    // Adjacent is fine.
    let f = elf64(
        &base_notes(),
        &[(1, 6, 0x1000, PADDR + 0x3000, 0x100, 0x1000)],
    );
    assert_eq!(
        parse_kernel(&f).unwrap().params().virt_kend,
        KSTART + 0x4000
    );
    let mut f = elf64(&base_notes(), &[]);
    f[64..68].copy_from_slice(&6u32.to_le_bytes()); // PT_PHDR: nothing loadable
    assert_eq!(elf_err(&f), ElfError::NoLoadableSegments);
    let mut f = elf64(&base_notes(), &[]);
    f[68..72].copy_from_slice(&0u32.to_le_bytes()); // PT_LOAD without R/W/X
    assert_eq!(elf_err(&f), ElfError::NoLoadableSegments);
}

#[test]
fn entry_hypercall_and_p2m_outside_the_image() {
    let mut n = base_notes();
    n[4] = note(1, &(KSTART + 0x3001).to_le_bytes());
    assert!(matches!(
        elf_err(&elf64(&n, &[])),
        ElfError::OutOfBounds { .. }
    ));
    let mut n = base_notes();
    n[4] = note(1, &(KSTART - 1).to_le_bytes());
    assert!(matches!(
        elf_err(&elf64(&n, &[])),
        ElfError::OutOfBounds { .. }
    ));
    let mut n = base_notes();
    n[5] = note(2, &(KSTART + 0x3000).to_le_bytes());
    assert_eq!(
        elf_err(&elf64(&n, &[])),
        ElfError::HypercallPageOutside {
            virt_hypercall: KSTART + 0x3000
        }
    );
    let mut n = base_notes();
    n.push(note(15, &(KSTART + 0x2000).to_le_bytes()));
    assert!(matches!(
        elf_err(&elf64(&n, &[])),
        ElfError::P2mInsideImage { .. }
    ));
    // VIRT_BASE above the image.
    let mut n = base_notes();
    n[2] = note(3, &(KSTART + 0x1000).to_le_bytes());
    assert!(matches!(
        elf_err(&elf64(&n, &[])),
        ElfError::OutOfBounds { .. }
    ));
}

#[test]
fn notes_with_impossible_sizes() {
    let mut n = base_notes();
    let mut bad = note(7, b"2.6\0");
    bad[4..8].copy_from_slice(&0xffff_fff0u32.to_le_bytes()); // descsz
    n.push(bad);
    assert!(matches!(
        elf_err(&elf64(&n, &[])),
        ElfError::Note(NoteError::ImpossibleSize {
            descsz: 0xffff_fff0,
            ..
        })
    ));
    let mut n = base_notes();
    let mut bad = note(7, b"2.6\0");
    bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes()); // namesz
    n.push(bad);
    assert!(matches!(
        elf_err(&elf64(&n, &[])),
        ElfError::Note(NoteError::ImpossibleSize { .. })
    ));
    // A header cut by the end of the note area.
    let mut n = base_notes();
    n.push(vec![4, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        elf_err(&elf64(&n, &[])),
        ElfError::Note(NoteError::TruncatedHeader { .. })
    ));
}

#[test]
fn note_semantics() {
    // Unknown Xen note types and other owners' notes are skipped.
    let mut n = base_notes();
    n.push(note(0x99, b"whatever"));
    let mut gnu = note(3, b"build-id");
    gnu[12..16].copy_from_slice(b"GNU\0");
    n.push(gnu);
    // FEATURES with the required form; SUPPORTED_FEATURES adds.
    n.push(note(
        10,
        b"!writable_page_tables|pae_pgdir_above_4gb|nosuch\0",
    ));
    n.push(note(17, &0x8800u32.to_le_bytes()));
    let p = parse_kernel(&elf64(&n, &[])).unwrap().params().clone();
    assert_eq!(p.f_supported, [0x8800 | 1 | 0x10]);
    assert_eq!(p.f_required, [1]);
    // An unknown required feature is fatal.
    let mut n = base_notes();
    n.push(note(10, b"!nosuch\0"));
    assert_eq!(
        elf_err(&elf64(&n, &[])),
        ElfError::Note(NoteError::UnknownRequiredFeature)
    );
    // A Xen note of unknown type still makes it a Xen image (libelf counts it), which then
    // fails the loader check; only an image without any note area is "not Xen".
    assert_eq!(
        elf_err(&elf64(&[note(0x99, b"x")], &[])),
        ElfError::UnsupportedLoader
    );
    let mut f = elf64(&base_notes(), &[]);
    f[64 + 56..64 + 60].copy_from_slice(&0u32.to_le_bytes()); // PT_NOTE -> PT_NULL
    assert_eq!(elf_err(&f), ElfError::NotXenImage);
    // Neither loader "generic" nor guest OS "linux".
    let mut n = base_notes();
    n[0] = note(6, b"plan9\0");
    assert_eq!(elf_err(&elf64(&n, &[])), ElfError::UnsupportedLoader);
    n.push(note(8, b"generic\0"));
    assert!(parse_kernel(&elf64(&n, &[])).is_ok());
    let mut n = base_notes();
    n[1] = note(5, b"xen-2.0\0");
    assert_eq!(elf_err(&elf64(&n, &[])), ElfError::UnsupportedXenVersion);
    // PADDR_OFFSET without VIRT_BASE.
    let mut n = base_notes();
    n.remove(2);
    assert_eq!(
        elf_err(&elf64(&n, &[])),
        ElfError::PaddrOffsetWithoutVirtBase
    );
    // Numeric notes of odd sizes read as 0 (libelf's elf_note_numeric): VIRT_BASE 0.
    let mut n = base_notes();
    n[2] = note(3, &[1, 2, 3]);
    n.remove(3);
    n[3] = note(1, &(PADDR + 0x10).to_le_bytes());
    n[4] = note(2, &(PADDR + 0x1000).to_le_bytes());
    let p = parse_kernel(&elf64(&n, &[])).unwrap().params().clone();
    assert_eq!((p.virt_base, p.virt_kstart), (0, PADDR));
}

fn feature_err(image: &[u8]) -> FeatureError {
    match parse_kernel(image) {
        Err(KernelError::Features(e)) => e,
        other => panic!("expected a feature refusal, got {other:?}"),
    }
}

fn with_note(ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = base_notes();
    n.push(note(ty, desc));
    elf64(&n, &[])
}

#[test]
fn features_a_pv_domu_cannot_have_are_refused() {
    // xc_dom_parse_elf_kernel: a kernel requiring dom0 ("!dom0" in FEATURES).
    let e = feature_err(&with_note(10, b"!writable_page_tables|!dom0\0"));
    assert_eq!(e, FeatureError::RequiresDom0);
    assert_eq!(
        KernelError::Features(e).to_string(),
        "the kernel requires feature dom0: it does not support unprivileged (domU) operation"
    );
    // Supporting dom0 is fine: in FEATURES without '!', or as SUPPORTED_FEATURES bit 11
    // (Debian's kernel has 0x8801 there).
    assert!(parse_kernel(&with_note(10, b"dom0|!writable_page_tables\0")).is_ok());
    assert!(parse_kernel(&with_note(17, &(1u32 << 11).to_le_bytes())).is_ok());
    // SUPPORTED_FEATURES can only add supported bits, never required ones.
    assert!(parse_kernel(&with_note(17, &u32::MAX.to_le_bytes())).is_ok());

    // bootearly: a PV kernel requiring auto_translated_physmap.
    let e = feature_err(&with_note(10, b"!auto_translated_physmap\0"));
    assert_eq!(e, FeatureError::RequiresAutoTranslate);
    assert!(KernelError::Features(e)
        .to_string()
        .contains("auto_translated_physmap"));
    assert!(parse_kernel(&with_note(10, b"auto_translated_physmap\0")).is_ok());

    // The legacy __xen_guest string goes through the same checks.
    let s = b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,PAE=yes,FEATURES=!dom0";
    assert_eq!(
        feature_err(&elf32(&[], Some(s))),
        FeatureError::RequiresDom0
    );
}

#[test]
fn bsd_symtab_on_a_32_bit_kernel_is_refused() {
    // libelf's 32-bit BSD_SYMTAB layout puts the tables at +260 after reserving 192 bytes of
    // headers (see bsdsym.rs): refused rather than overrunning virt_kend.
    let s = b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,PAE=yes,BSD_SYMTAB";
    assert_eq!(
        elf_err(&elf32(&[], Some(s))),
        ElfError::BsdSymtab(pvbuild_core::bsdsym::BsdSymError::Elf32)
    );
}

/// An ELF32 i386 image with one LOAD and the given notes.
fn elf32(notes: &[Vec<u8>], xen_guest: Option<&[u8]>) -> Vec<u8> {
    let notes: Vec<u8> = notes.concat();
    let mut f = vec![0u8; 0x3000];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 1;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    f[24..28].copy_from_slice(&0xC0100010u32.to_le_bytes()); // e_entry
    f[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
    f[42..44].copy_from_slice(&32u16.to_le_bytes());
    let nph: u16 = if notes.is_empty() { 1 } else { 2 };
    f[44..46].copy_from_slice(&nph.to_le_bytes());
    let ph = |f: &mut Vec<u8>, i: usize, v: [u32; 8]| {
        for (j, w) in v.iter().enumerate() {
            let p = 52 + 32 * i + 4 * j;
            f[p..p + 4].copy_from_slice(&w.to_le_bytes());
        }
    };
    // p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
    let paddr = if xen_guest.is_some() {
        0xC0100000
    } else {
        0x100000
    };
    ph(
        &mut f,
        0,
        [1, 0x1000, 0xC0100000, paddr, 0x1000, 0x2000, 5, 0x1000],
    );
    if !notes.is_empty() {
        ph(
            &mut f,
            1,
            [4, 0x400, 0, 0, notes.len() as u32, notes.len() as u32, 4, 4],
        );
        f[0x400..0x400 + notes.len()].copy_from_slice(&notes);
    }
    if let Some(s) = xen_guest {
        // Sections: null, .shstrtab, __xen_guest; headers at 0x2000, strings at 0x2200,
        // the string at 0x2300.
        let names = b"\0.shstrtab\0__xen_guest\0";
        f[0x2200..0x2200 + names.len()].copy_from_slice(names);
        f[0x2300..0x2300 + s.len()].copy_from_slice(s);
        let sh = |f: &mut Vec<u8>, i: usize, name: u32, ty: u32, off: u32, size: u32| {
            let p = 0x2000 + 40 * i;
            f[p..p + 4].copy_from_slice(&name.to_le_bytes());
            f[p + 4..p + 8].copy_from_slice(&ty.to_le_bytes());
            f[p + 16..p + 20].copy_from_slice(&off.to_le_bytes());
            f[p + 20..p + 24].copy_from_slice(&size.to_le_bytes());
        };
        sh(&mut f, 1, 1, 3, 0x2200, names.len() as u32);
        sh(&mut f, 2, 11, 1, 0x2300, s.len() as u32 + 1);
        f[32..36].copy_from_slice(&0x2000u32.to_le_bytes()); // e_shoff
        f[46..48].copy_from_slice(&40u16.to_le_bytes());
        f[48..50].copy_from_slice(&3u16.to_le_bytes());
        f[50..52].copy_from_slice(&1u16.to_le_bytes());
    }
    f
}

fn notes32(pae: &[u8]) -> Vec<Vec<u8>> {
    vec![
        note(6, b"linux\0"),
        note(5, b"xen-3.0\0"),
        note(3, &0xC0000000u32.to_le_bytes()),
        note(9, pae),
    ]
}

#[test]
fn elf32_guest_types() {
    let p = parse_kernel(&elf32(&notes32(b"yes\0"), None))
        .unwrap()
        .params()
        .clone();
    assert_eq!(
        (p.guest_type, p.pae),
        (GuestType::X86_32Pae, PaeMode::ExtendedCr3)
    );
    assert_eq!(p.virt_kstart, 0xC0100000);
    let p = parse_kernel(&elf32(&notes32(b"bimodal\0"), None))
        .unwrap()
        .params()
        .clone();
    assert_eq!(
        (p.guest_type, p.pae),
        (GuestType::X86_32Pae, PaeMode::Bimodal)
    );
    let p = parse_kernel(&elf32(&notes32(b"no\0"), None))
        .unwrap()
        .params()
        .clone();
    assert_eq!((p.guest_type, p.pae), (GuestType::X86_32, PaeMode::No));
    // libelf's note parser only knows "yes" and "bimodal".
    let p = parse_kernel(&elf32(&notes32(b"yes[extended-cr3]\0"), None))
        .unwrap()
        .params()
        .clone();
    assert_eq!(p.guest_type, GuestType::X86_32);
    // ELF32 must be i386, ELF64 x86-64.
    let mut f = elf32(&notes32(b"yes\0"), None);
    f[18] = 62;
    assert!(matches!(
        elf_err(&f),
        ElfError::UnsupportedMachine { machine: 62, .. }
    ));
}

#[test]
fn legacy_xen_guest_string() {
    let s = b"GUEST_OS=linux,GUEST_VER=2.6,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,\
              HYPERCALL_PAGE=0x101,PAE=yes[extended-cr3],LOADER=generic";
    let f = elf32(&[], Some(s));
    let p = parse_kernel(&f).unwrap().params().clone();
    assert_eq!(p.virt_base, 0xC0000000);
    // PADDR_OFFSET defaults to VIRT_BASE with __xen_guest (the ELF paddr is 0xC0100000).
    assert_eq!(p.elf_paddr_offset, 0xC0000000);
    assert_eq!(p.virt_kstart, 0xC0100000);
    // HYPERCALL_PAGE is a page index from VIRT_BASE.
    assert_eq!(p.virt_hypercall, Some(0xC0101000));
    assert_eq!(
        (p.guest_type, p.pae),
        (GuestType::X86_32Pae, PaeMode::ExtendedCr3)
    );
    assert_eq!(p.virt_entry, 0xC0100010);
    // Hypercall page index outside the image.
    let s = b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,HYPERCALL_PAGE=0x200";
    assert!(matches!(
        elf_err(&elf32(&[], Some(s))),
        ElfError::HypercallPageOutside { .. }
    ));
    // A non-Xen guest string.
    let s = b"GUEST_OS=plan9,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000";
    assert_eq!(elf_err(&elf32(&[], Some(s))), ElfError::UnsupportedLoader);
    assert_eq!(pvbuild_core::xen_guest::strtoull(b"0x1fz"), 0x1f);
    assert_eq!(pvbuild_core::xen_guest::strtoull(b"017"), 0o17);
    assert_eq!(
        pvbuild_core::xen_guest::strtoull(b"99999999999999999999999"),
        u64::MAX
    );
}

fn bzimage(version: u16, setup_sects: u8, off: u32, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; (usize::from(setup_sects) + 1) * 512];
    f[0x1f1] = setup_sects;
    f[0x202..0x206].copy_from_slice(b"HdrS");
    f[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    f[0x248..0x24c].copy_from_slice(&off.to_le_bytes());
    f[0x24c..0x250].copy_from_slice(&len.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn bzimage_fields_out_of_range() {
    let xz = b"\xfd7zXZ\0rest-of-stream";
    assert!(bzimage::parse(&bzimage(0x20f, 3, 0, xz.len() as u32, xz)).is_ok());
    assert_eq!(
        bzimage::parse(&bzimage(0x207, 3, 0, xz.len() as u32, xz)),
        Err(BzImageError::ProtocolTooOld { version: 0x207 })
    );
    assert!(matches!(
        bzimage::parse(&bzimage(0x20f, 3, u32::MAX, 4, xz)),
        Err(BzImageError::PayloadOffsetOutOfFile { .. })
    ));
    assert!(matches!(
        bzimage::parse(&bzimage(0x20f, 3, 0, xz.len() as u32 + 1, xz)),
        Err(BzImageError::PayloadLengthOutOfFile { .. })
    ));
    assert!(matches!(
        bzimage::parse(&bzimage(0x20f, 255, 0, u32::MAX, xz)),
        Err(BzImageError::PayloadLengthOutOfFile { .. })
    ));
    let f = bzimage(0x20f, 3, 0, 8, b"garbage!");
    assert_eq!(bzimage::parse(&f).unwrap().compression, None);
    #[cfg(feature = "alloc")]
    {
        assert_eq!(
            pvbuild_core::decompress::unpack_kernel(&f),
            Err(pvbuild_core::decompress::UnpackError::BzImage(
                BzImageError::UnknownCompression
            ))
        );
        let f = bzimage(0x20f, 3, 100, 8, b"garbage!");
        assert!(matches!(
            pvbuild_core::decompress::unpack_kernel(&f),
            Err(pvbuild_core::decompress::UnpackError::BzImage(
                BzImageError::PayloadOffsetOutOfFile { .. }
            ))
        ));
    }
    assert_eq!(bzimage::parse(&[0u8; 100]), Err(BzImageError::NotBzImage));
}

/// A 'bin' image: 0x40 bytes of prefix, the table at 0x40, code after it.
fn bin_image(
    flags: u32,
    header_addr: u32,
    load: u32,
    load_end: u32,
    bss_end: u32,
    entry: u32,
) -> Vec<u8> {
    let mut f = vec![0x90u8; 0x2000];
    let words = [
        bin::MAGIC,
        flags,
        0u32.wrapping_sub(bin::MAGIC).wrapping_sub(flags),
        header_addr,
        load,
        load_end,
        bss_end,
        entry,
    ];
    for (i, w) in words.iter().enumerate() {
        f[0x40 + 4 * i..0x44 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
    f
}

#[test]
fn bin_images() {
    // The file maps at 0xC0000000 (header at +0x40); load from the start, 0x1000 of bss.
    let f = bin_image(
        bin::FLAG_ADDRSVALID | (1 << 14),
        0xC0000040,
        0xC0000000,
        0,
        0xC0003000,
        0xC0000100,
    );
    let k = parse_kernel(&f).unwrap();
    let p = k.params();
    assert_eq!(p.guest_type, GuestType::X86_32Pae);
    assert_eq!(
        (p.virt_base, p.virt_kstart, p.virt_kend),
        (0xC0000000, 0xC0000000, 0xC0003000)
    );
    assert_eq!(p.virt_entry, 0xC0000100);
    let mut dest = vec![0xffu8; 0x3000];
    k.load(&mut dest).unwrap();
    assert_eq!(&dest[..0x2000], &f[..]);
    assert!(dest[0x2000..].iter().all(|&b| b == 0));

    let err = |f: &[u8]| match parse_kernel(f) {
        Err(KernelError::Bin(e)) => e,
        other => panic!("{other:?}"),
    };
    let bad = bin_image(
        bin::FLAG_ADDRSVALID | 2,
        0xC0000040,
        0xC0000000,
        0,
        0,
        0xC0000100,
    );
    assert!(matches!(err(&bad), BinError::BadFlags { .. }));
    let bad = bin_image(
        bin::FLAG_ADDRSVALID,
        0xC0000040,
        0xC0000080,
        0,
        0,
        0xC0000100,
    );
    assert_eq!(err(&bad), BinError::BadHeaderAddr);
    let bad = bin_image(
        bin::FLAG_ADDRSVALID,
        0xC0000040,
        0xBFFFF000,
        0,
        0,
        0xC0000100,
    );
    assert_eq!(err(&bad), BinError::BadHeaderAddr);
    let bad = bin_image(
        bin::FLAG_ADDRSVALID,
        0xC0000040,
        0xC0000000,
        0xC0005000,
        0,
        0xC0000100,
    );
    assert_eq!(err(&bad), BinError::BadLoadEndAddr);
    let bad = bin_image(
        bin::FLAG_ADDRSVALID,
        0xC0000040,
        0xC0000000,
        0xC0001000,
        0xC0000800,
        0xC0000100,
    );
    assert_eq!(err(&bad), BinError::BadBssEndAddr);
    let bad = bin_image(
        bin::FLAG_ADDRSVALID,
        0xC0000040,
        0xC0000000,
        0,
        0,
        0xD0000000,
    );
    assert!(matches!(err(&bad), BinError::EntryOutside { .. }));
    // A bad checksum is no table at all.
    let mut bad = bin_image(
        bin::FLAG_ADDRSVALID,
        0xC0000040,
        0xC0000000,
        0,
        0,
        0xC0000100,
    );
    bad[0x48] ^= 1;
    assert_eq!(bin::find_table(&bad), None);
    assert_eq!(parse_kernel(&bad).unwrap_err(), KernelError::UnknownFormat);
    // Wrapping address arithmetic is refused, not wrapped.
    let bad = bin_image(
        bin::FLAG_ADDRSVALID,
        0xFFFFFF40,
        0xFFFFFF00,
        0,
        0,
        0xFFFFFF00,
    );
    assert_eq!(err(&bad), BinError::AddressOverflow);
}

#[test]
fn elf_api_is_total_on_garbage() {
    // Any prefix of a valid image, and any single-byte change of its headers, gives a result
    // or an error: never a panic.
    let f = elf64(&base_notes(), &[]);
    for n in 0..f.len().min(0x500) {
        let _ = parse_kernel(&f[..n]);
    }
    for at in (0..0x500).step_by(3) {
        for v in [0u8, 0xff] {
            let mut g = f.clone();
            g[at] = v;
            if let Ok(k) = parse_kernel(&g) {
                let p = k.params();
                let mut dest = vec![0u8; (p.virt_kend - p.virt_kstart) as usize];
                k.load(&mut dest).unwrap();
            }
            let _ = Elf::parse(&g).map(|e| e.xen_parms());
        }
    }
}

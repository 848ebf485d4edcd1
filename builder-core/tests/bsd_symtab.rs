//! `BSD_SYMTAB`: the symbol table loaded after the kernel, against libelf's algorithm
//! (`elf_parse_bsdsyms` / `elf_load_bsdsyms`, xen/common/libelf/libelf-loader.c, 4.17.5),
//! with every expected offset worked out here from the C, on an ELF64 built byte by byte.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvbuild_core::bsdsym::BsdSymError;
use pvbuild_core::elf::ElfError;
use pvbuild_core::image::LoadKernel;
use pvbuild_core::kernel::{parse_kernel, KernelError};

const VIRT_BASE: u64 = 0xffffffff80000000;
const PADDR: u64 = 0x100000;
/// memsz of the one PT_LOAD: pend = 0x103001 is not 8-aligned, so rounding shows.
const MEMSZ: u64 = 0x3001;
const SYMTAB_LEN: usize = 0x4c; // not a multiple of 8: strtab_base is rounded
const STRTAB_LEN: usize = 13;

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

fn shdr(name: u32, ty: u32, offset: u64, size: u64, link: u32, info: u32) -> [u8; 64] {
    let mut s = [0u8; 64];
    s[0..4].copy_from_slice(&name.to_le_bytes());
    s[4..8].copy_from_slice(&ty.to_le_bytes());
    s[8..16].copy_from_slice(&0x2u64.to_le_bytes()); // sh_flags: SHF_ALLOC, kept as is
    s[24..32].copy_from_slice(&offset.to_le_bytes());
    s[32..40].copy_from_slice(&size.to_le_bytes());
    s[40..44].copy_from_slice(&link.to_le_bytes());
    s[44..48].copy_from_slice(&info.to_le_bytes());
    s[48..56].copy_from_slice(&8u64.to_le_bytes()); // sh_addralign
    s[56..64].copy_from_slice(&24u64.to_le_bytes()); // sh_entsize
    s
}

/// An ELF64 kernel: header, 2 program headers at 64 (LOAD, NOTE), notes at 0x400, the LOAD's
/// bytes at 0x1000 (filesz 0x2000), the symtab at 0x3000, the strtab at 0x3100, the section
/// headers at 0x3200: null, .symtab (link `link`), .strtab (type `strtab_type`).
fn kernel(bsd_note: bool, link: u32, strtab_type: u32) -> Vec<u8> {
    let mut notes = vec![
        note(6, b"NetBSD\0"),
        note(8, b"generic\0"),
        note(5, b"xen-3.0\0"),
        note(3, &VIRT_BASE.to_le_bytes()),
        note(4, &0u64.to_le_bytes()),
        note(1, &(VIRT_BASE + PADDR + 0x10).to_le_bytes()),
    ];
    if bsd_note {
        notes.push(note(11, b"yes\0"));
    }
    let notes = notes.concat();
    let mut f = vec![0u8; 0x3200 + 3 * 64];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[7] = 9; // EI_OSABI: copied through
    f[16..18].copy_from_slice(&2u16.to_le_bytes());
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&(VIRT_BASE + PADDR + 0x10).to_le_bytes());
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[40..48].copy_from_slice(&0x3200u64.to_le_bytes()); // e_shoff
    f[48..52].copy_from_slice(&0x1234u32.to_le_bytes()); // e_flags: copied through
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&2u16.to_le_bytes());
    f[58..60].copy_from_slice(&64u16.to_le_bytes());
    f[60..62].copy_from_slice(&3u16.to_le_bytes());
    f[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
    let phs: [(u32, u32, u64, u64, u64, u64); 2] = [
        (1, 7, 0x1000, PADDR, 0x2000, MEMSZ),
        (4, 4, 0x400, 0, notes.len() as u64, notes.len() as u64),
    ];
    for (i, &(t, fl, off, pa, fs, ms)) in phs.iter().enumerate() {
        let p = 64 + 56 * i;
        f[p..p + 4].copy_from_slice(&t.to_le_bytes());
        f[p + 4..p + 8].copy_from_slice(&fl.to_le_bytes());
        f[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
        f[p + 16..p + 24].copy_from_slice(&(pa + VIRT_BASE).to_le_bytes());
        f[p + 24..p + 32].copy_from_slice(&pa.to_le_bytes());
        f[p + 32..p + 40].copy_from_slice(&fs.to_le_bytes());
        f[p + 40..p + 48].copy_from_slice(&ms.to_le_bytes());
    }
    f[0x400..0x400 + notes.len()].copy_from_slice(&notes);
    for (i, b) in f[0x1000..0x3000].iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
    for (i, b) in f[0x3000..0x3000 + SYMTAB_LEN].iter_mut().enumerate() {
        *b = 0x80 | (i as u8 & 0x7f);
    }
    f[0x3100..0x3100 + STRTAB_LEN].copy_from_slice(b"\0start\0_end\0\0");
    let sh = [
        [0u8; 64],
        shdr(1, 2, 0x3000, SYMTAB_LEN as u64, link, 3),
        shdr(9, strtab_type, 0x3100, STRTAB_LEN as u64, 0, 0),
    ];
    for (i, s) in sh.iter().enumerate() {
        f[0x3200 + 64 * i..0x3200 + 64 * (i + 1)].copy_from_slice(s);
    }
    f
}

fn r64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn r32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn r16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

#[test]
fn symtab_is_loaded_after_the_kernel_as_libelf_loads_it() {
    let f = kernel(true, 2, 3);
    let k = parse_kernel(&f).unwrap();
    let p = k.params();
    assert!(p.bsd_symtab);
    // elf_parse_bsdsyms(elf, pend): pstart = round_up(pend, 8); sz = 4 +
    // offsetof(elf_sym_header, elf_header.section) (4 + sizeof(elf_ehdr) = 68) + 3 *
    // sizeof(Elf64_Shdr) (192) = 264; sz = round_up(sz + symtab size); sz = round_up(sz +
    // strtab size).
    let pend = PADDR + MEMSZ; // 0x103001
    let bsd_pstart = (pend + 7) & !7; // 0x103008
    let sz = 4 + 68 + 3 * 64;
    let sz = (sz + SYMTAB_LEN as u64 + 7) & !7;
    let sz = (sz + STRTAB_LEN as u64 + 7) & !7;
    assert_eq!(sz, 360);
    assert_eq!(p.virt_kstart, VIRT_BASE + PADDR);
    assert_eq!(p.virt_kend, VIRT_BASE + bsd_pstart + sz);

    let mut dest = vec![0u8; (p.virt_kend - p.virt_kstart) as usize];
    k.load(&mut dest).unwrap();
    // The segment as before.
    assert_eq!(&dest[..0x2000], &f[0x1000..0x3000]);
    // elf_load_bsdsyms: header_base = bsd_pstart; elf_header_base = +4; symtab_base =
    // round_up(header_base + sizeof(struct elf_sym_header) = 4 + 64 + 3 * 64 = 260).
    let hb = (bsd_pstart - PADDR) as usize;
    let ehb = hb + 4;
    let symtab_base = (hb + 260 + 7) & !7;
    let strtab_base = (symtab_base + SYMTAB_LEN + 7) & !7;
    assert_eq!((symtab_base - hb, strtab_base - hb), (264, 344));
    // size = strtab_base + strtab size - elf_header_base
    assert_eq!(r32(&dest, hb) as usize, strtab_base + STRTAB_LEN - ehb);
    // The ELF header: the kernel's, with the fields libelf sets.
    let eh = &dest[ehb..ehb + 64];
    assert_eq!(&eh[..16], &f[..16]);
    assert_eq!(&eh[16..24], &f[16..24]); // e_type, e_machine, e_version (1 already)
    assert_eq!(r64(eh, 24), r64(&f, 24)); // e_entry
    assert_eq!(r64(eh, 32), 0); // e_phoff
    assert_eq!(r64(eh, 40), 64); // e_shoff: offsetof(elf_header, section)
    assert_eq!(r32(eh, 48), 0x1234); // e_flags
    assert_eq!(r16(eh, 52), 64); // e_ehsize
    assert_eq!((r16(eh, 54), r16(eh, 56)), (0, 0)); // e_phentsize, e_phnum
    assert_eq!((r16(eh, 58), r16(eh, 60), r16(eh, 62)), (64, 3, 0));
    // Section headers after the 64-byte header union: 0 null, 1 symtab, 2 strtab.
    let sh = |i: usize| &dest[hb + 68 + 64 * i..hb + 68 + 64 * (i + 1)];
    assert_eq!(sh(0), &[0u8; 64]);
    let mut want1 = shdr(1, 2, (symtab_base - ehb) as u64, SYMTAB_LEN as u64, 2, 3);
    want1[40..44].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(sh(1), &want1);
    assert_eq!(
        sh(2),
        &shdr(9, 3, (strtab_base - ehb) as u64, STRTAB_LEN as u64, 0, 0)
    );
    // The tables themselves, found as the guest finds them: through the copied headers.
    let sym_at = ehb + r64(sh(1), 24) as usize;
    assert_eq!(
        &dest[sym_at..sym_at + SYMTAB_LEN],
        &f[0x3000..0x3000 + SYMTAB_LEN]
    );
    let str_at = ehb + r64(sh(2), 24) as usize;
    assert_eq!(
        &dest[str_at..str_at + STRTAB_LEN],
        &f[0x3100..0x3100 + STRTAB_LEN]
    );
    // Everything else between the segment and the end is zero.
    let mut rest = dest[0x2000..].to_vec();
    for (at, len) in [
        (hb, 68 + 3 * 64),
        (symtab_base, SYMTAB_LEN),
        (strtab_base, STRTAB_LEN),
    ] {
        rest[at - 0x2000..at - 0x2000 + len].fill(0);
    }
    assert!(rest.iter().all(|&b| b == 0));
    // And the end of the string table is the end of the image.
    assert_eq!(strtab_base + STRTAB_LEN + 3, dest.len());
}

#[test]
fn without_the_note_the_sections_stay_in_the_file() {
    let f = kernel(false, 2, 3);
    let k = parse_kernel(&f).unwrap();
    assert!(!k.params().bsd_symtab);
    assert_eq!(k.params().virt_kend, VIRT_BASE + PADDR + MEMSZ);
}

#[test]
fn broken_symbol_tables_are_refused() {
    let err = |f: &[u8]| match parse_kernel(f) {
        Err(KernelError::Elf(ElfError::BsdSymtab(e))) => e,
        other => panic!("{other:?}"),
    };
    // A link of 0 ends libelf's search: no symbol table.
    assert_eq!(err(&kernel(true, 0, 3)), BsdSymError::NoSymtab);
    // A link past the table, likewise.
    assert_eq!(err(&kernel(true, 7, 3)), BsdSymError::NoSymtab);
    // Linked to a section that is not SHT_STRTAB.
    assert_eq!(err(&kernel(true, 2, 1)), BsdSymError::NoStrtab { link: 2 });
    // The symbol table outside the file.
    let mut f = kernel(true, 2, 3);
    f[0x3200 + 64 + 32..0x3200 + 64 + 40].copy_from_slice(&0x10_0000u64.to_le_bytes());
    assert_eq!(err(&f), BsdSymError::OutOfFile { index: 1 });
    assert_eq!(
        KernelError::Elf(ElfError::BsdSymtab(BsdSymError::NoSymtab)).to_string(),
        "ELF: BSD_SYMTAB asked for, but the image has no symbol table"
    );
}

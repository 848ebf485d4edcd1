//! The BSD symbol table: a kernel with the `BSD_SYMTAB` note (NetBSD, FreeBSD) gets its
//! symbol and string tables loaded after its image, behind a small ELF header that lets it
//! find them (libelf's `elf_parse_bsdsyms` and `elf_load_bsdsyms`, libelf-loader.c).
//!
//! From `pend` (the end of the loadable segments), rounded up to the ELF word (8 bytes for
//! ELF64), in guest memory:
//!
//! ```text
//! +0    u32 size: bytes from the ELF header to the end of the string table
//! +4    ELF header: the kernel's, with e_phoff/e_phentsize/e_phnum/e_shstrndx 0,
//!       e_version 1, e_ehsize 64, e_shentsize 64, e_shoff 64, e_shnum 3
//! +68   section header 0 (the null section), 1 (the symtab, sh_offset relative to the
//!       ELF header, sh_link 2), 2 (its strtab, sh_offset relative to the ELF header)
//! +264  the symbol table (at the ELF word past +260), then, ELF-word aligned, the strings
//! ```
//!
//! and `virt_kend` moves to `pstart + round_up(round_up(round_up(4 + 68 + 3 * 64) + symtab
//! size) + strtab size)`: libelf reserves the size word twice over (`sizeof(uint32_t)` plus an
//! `offsetof` that already counts it), and that is the layout xl gives the guest.
//!
//! Differences from libelf, all on input libelf loads broken: a kernel asking for its symbols
//! without a symbol table, or whose symbol table links to no string table, or whose tables
//! lie outside the file, is refused (libelf marks it broken and loads it without them or with
//! zeros); section header 0 is written as zeros (libelf copies it from an uninitialised stack
//! variable); and a 32-bit kernel with `BSD_SYMTAB` is refused: libelf places a 32-bit
//! kernel's tables at +260 after reserving only 192 bytes of headers, so they overrun the
//! `virt_kend` it computed (and Xen 4.17 without 32-bit PV runs no such kernel anyway).

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use crate::elf::{Class, Elf};

/// `SHT_SYMTAB`.
pub const SHT_SYMTAB: u32 = 2;
/// `SHT_STRTAB`.
pub const SHT_STRTAB: u32 = 3;
/// Sections in the copied header (null, symtab, strtab): `ELF_BSDSYM_SECTIONS`.
pub const SECTIONS: u64 = 3;
/// `offsetof(struct elf_sym_header, elf_header.section)`: the size word and the ELF header
/// union (the larger, ELF64, header), packed.
pub const HEADER_SIZE: u64 = 4 + 64;
/// `sizeof(struct elf_sym_header)`: the above and three section-header unions.
pub const SYM_HEADER_SIZE: u64 = HEADER_SIZE + SECTIONS * 64;
/// `EV_CURRENT`.
const EV_CURRENT: u32 = 1;
/// Where the tables go relative to the symtab header: `section[SYMTAB_INDEX]`.
const SYMTAB_INDEX: u32 = 1;
/// `section[STRTAB_INDEX]`.
const STRTAB_INDEX: u32 = 2;

// `Elf64_Ehdr` and `Elf64_Shdr`, as copied: the parser's own views of them.
use crate::elf::{Ehdr64, Shdr64};

/// Why a `BSD_SYMTAB` kernel was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BsdSymError {
    /// The kernel is 32-bit (libelf's 32-bit layout overruns its own `virt_kend`).
    Elf32,
    /// No `SHT_SYMTAB` section with a valid link (libelf: "invalid ELF handle for symtab
    /// section").
    NoSymtab,
    /// The symbol table's link is not a `SHT_STRTAB` section.
    NoStrtab {
        /// The linked section's index.
        link: u32,
    },
    /// A table lies (partly) outside the file.
    OutOfFile {
        /// Section index.
        index: u16,
    },
    /// An address or size computation overflowed.
    Overflow,
}

impl core::fmt::Display for BsdSymError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BsdSymError::Elf32 => f.write_str("BSD_SYMTAB on a 32-bit kernel is not supported"),
            BsdSymError::NoSymtab => {
                f.write_str("BSD_SYMTAB asked for, but the image has no symbol table")
            }
            BsdSymError::NoStrtab { link } => write!(
                f,
                "BSD_SYMTAB: the symbol table links to section {link}, not a string table"
            ),
            BsdSymError::OutOfFile { index } => {
                write!(f, "BSD_SYMTAB: section {index} extends beyond the file")
            }
            BsdSymError::Overflow => f.write_str("BSD_SYMTAB: address overflow"),
        }
    }
}

/// `elf_round_up` for ELF64: the next multiple of 8.
fn round_up(v: u64) -> Result<u64, BsdSymError> {
    v.checked_add(7)
        .map(|x| x & !7)
        .ok_or(BsdSymError::Overflow)
}

/// Where the symbol table goes and what it holds (`elf_parse_bsdsyms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BsdSymtab {
    /// Section index of the symbol table.
    pub symtab: u16,
    /// Section index of its string table.
    pub strtab: u16,
    /// `bsd_symtab_pstart`: load address of the size word.
    pub pstart: u64,
    /// `bsd_symtab_pend`: the new end of the image (virt_kend minus virt_offset).
    pub pend: u64,
}

fn shdr64(elf: &Elf<'_>, i: u16) -> Option<Shdr64> {
    Shdr64::read_from_prefix(elf.shdr_bytes(i)?)
        .ok()
        .map(|(s, _)| s)
}

/// `elf_init`'s search: the first `SHT_SYMTAB` section (from 1) whose `sh_link` names a
/// section; a link of 0 or past the table ends the search.
fn find_symtab(elf: &Elf<'_>) -> Option<(u16, u16)> {
    for i in 1..elf.shnum() {
        let sh = elf.shdr(i)?;
        if sh.sh_type != SHT_SYMTAB {
            continue;
        }
        let link = u16::try_from(shdr64(elf, i)?.sh_link.get()).ok()?;
        if link == 0 || link >= elf.shnum() {
            return None;
        }
        return Some((i, link));
    }
    None
}

/// Locate the tables and compute their place after `elf.pend()` (`elf_parse_bsdsyms`).
pub fn locate(elf: &Elf<'_>) -> Result<BsdSymtab, BsdSymError> {
    if elf.class() != Class::Elf64 {
        return Err(BsdSymError::Elf32);
    }
    let (symtab, strtab) = find_symtab(elf).ok_or(BsdSymError::NoSymtab)?;
    let sym = elf.shdr(symtab).ok_or(BsdSymError::NoSymtab)?;
    let str_ = elf.shdr(strtab).ok_or(BsdSymError::NoSymtab)?;
    if str_.sh_type != SHT_STRTAB {
        return Err(BsdSymError::NoStrtab {
            link: u32::from(strtab),
        });
    }
    for (index, sh) in [(symtab, sym), (strtab, str_)] {
        elf.section_data(&sh)
            .ok_or(BsdSymError::OutOfFile { index })?;
    }
    let pstart = round_up(elf.pend())?;
    // sizeof(uint32_t) + offsetof(elf_sym_header, elf_header.section) + 3 * sizeof(Elf64_Shdr)
    let sz = round_up(4 + HEADER_SIZE + SECTIONS * 64)?;
    let sz = round_up(sz.checked_add(sym.size).ok_or(BsdSymError::Overflow)?)?;
    let sz = round_up(sz.checked_add(str_.size).ok_or(BsdSymError::Overflow)?)?;
    let pend = pstart.checked_add(sz).ok_or(BsdSymError::Overflow)?;
    Ok(BsdSymtab {
        symtab,
        strtab,
        pstart,
        pend,
    })
}

fn put(dest: &mut [u8], at: u64, bytes: &[u8]) -> Result<(), BsdSymError> {
    let start = usize::try_from(at).map_err(|_| BsdSymError::Overflow)?;
    let end = start
        .checked_add(bytes.len())
        .ok_or(BsdSymError::Overflow)?;
    dest.get_mut(start..end)
        .ok_or(BsdSymError::Overflow)?
        .copy_from_slice(bytes);
    Ok(())
}

impl BsdSymtab {
    /// Write the size word, the ELF header, the section headers and the two tables into
    /// `dest`, which holds the image from `elf.pstart()` to [`BsdSymtab::pend`]
    /// (`elf_load_bsdsyms`). Offsets are taken from the start of `dest`, which libxenguest
    /// maps page-aligned, and rounded there, as libelf rounds its pointers.
    pub fn load(&self, elf: &Elf<'_>, dest: &mut [u8]) -> Result<(), BsdSymError> {
        let want = self
            .pend
            .checked_sub(elf.pstart())
            .ok_or(BsdSymError::Overflow)?;
        if dest.len() as u64 != want {
            return Err(BsdSymError::Overflow);
        }
        let header_base = self
            .pstart
            .checked_sub(elf.pstart())
            .ok_or(BsdSymError::Overflow)?;
        let elf_header_base = header_base + 4;
        let symtab_base = round_up(
            header_base
                .checked_add(SYM_HEADER_SIZE)
                .ok_or(BsdSymError::Overflow)?,
        )?;

        // The ELF header: the kernel's, trimmed to the three sections.
        let (mut eh, _) =
            Ehdr64::read_from_prefix(elf.bytes()).map_err(|_| BsdSymError::Overflow)?;
        eh.e_ehsize = U16::new(64);
        eh.e_shentsize = U16::new(64);
        eh.e_version = U32::new(EV_CURRENT);
        eh.e_shoff = U64::new(64);
        eh.e_shnum = U16::new(SECTIONS as u16);
        eh.e_phoff = U64::new(0);
        eh.e_phentsize = U16::new(0);
        eh.e_phnum = U16::new(0);
        eh.e_shstrndx = U16::new(0);

        // The symbol table, and its header pointing at it.
        let mut sym = shdr64(elf, self.symtab).ok_or(BsdSymError::NoSymtab)?;
        let sym_data = elf
            .section_data(&elf.shdr(self.symtab).ok_or(BsdSymError::NoSymtab)?)
            .ok_or(BsdSymError::OutOfFile { index: self.symtab })?;
        put(dest, symtab_base, sym_data)?;
        sym.sh_offset = U64::new(symtab_base - elf_header_base);
        sym.sh_link = U32::new(STRTAB_INDEX);

        // The string table after it.
        let strtab_base = round_up(
            symtab_base
                .checked_add(sym.sh_size.get())
                .ok_or(BsdSymError::Overflow)?,
        )?;
        let mut str_ = shdr64(elf, self.strtab).ok_or(BsdSymError::NoSymtab)?;
        let str_data = elf
            .section_data(&elf.shdr(self.strtab).ok_or(BsdSymError::NoSymtab)?)
            .ok_or(BsdSymError::OutOfFile { index: self.strtab })?;
        put(dest, strtab_base, str_data)?;
        str_.sh_offset = U64::new(strtab_base - elf_header_base);

        let size = strtab_base
            .checked_add(str_.sh_size.get())
            .and_then(|e| e.checked_sub(elf_header_base))
            .and_then(|s| u32::try_from(s).ok())
            .ok_or(BsdSymError::Overflow)?;
        put(dest, header_base, &size.to_le_bytes())?;
        put(dest, elf_header_base, eh.as_bytes())?;
        let sections = header_base + HEADER_SIZE;
        put(dest, sections, &[0u8; 64])?;
        put(
            dest,
            sections + 64 * u64::from(SYMTAB_INDEX),
            sym.as_bytes(),
        )?;
        put(
            dest,
            sections + 64 * u64::from(STRTAB_INDEX),
            str_.as_bytes(),
        )?;
        Ok(())
    }
}

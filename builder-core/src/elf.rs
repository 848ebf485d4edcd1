//! ELF kernels: the file, program and section headers (ELF32 i386 and ELF64 x86-64, little
//! endian), the loadable segments, the Xen parameters from notes or `__xen_guest`, and the
//! defaults and checks of libelf's `elf_xen_parse` (xen/common/libelf/libelf-dominfo.c).
//!
//! Headers are read through zerocopy views of unaligned little-endian fields, so any byte
//! slice (a decompressed buffer, a payload inside a bzImage, a fuzzer's input) parses without
//! alignment requirements; every offset and size from the file is bounds-checked before use.
//! (xmas-elf 0.10, the crate the guide names, reads headers with `zero::read`, which asserts
//! alignment, and slices program headers without bounds checks: it panics on hostile input.)

use crate::image::{GuestType, KernelParams, PaeMode};
use crate::limits;
use crate::notes::{DomParms, NoteError, ParmSource};
use crate::xen_guest;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `EM_386`
pub const EM_386: u16 = 3;
/// `EM_X86_64`
pub const EM_X86_64: u16 = 62;
/// `PT_LOAD`
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`
pub const PT_NOTE: u32 = 4;
/// `SHT_NOTE`
pub const SHT_NOTE: u32 = 7;
/// `PF_X | PF_W | PF_R`: a PT_LOAD segment with none of these is not loaded
/// (libelf's `elf_phdr_is_loadable`).
pub const PF_RWX: u32 = 7;

#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Ident {
    magic: [u8; 4],
    class: u8,
    data: u8,
    version: u8,
    _pad: [u8; 9],
}

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Ehdr32 {
    ident: Ident,
    e_type: U16,
    e_machine: U16,
    e_version: U32,
    e_entry: U32,
    e_phoff: U32,
    e_shoff: U32,
    e_flags: U32,
    e_ehsize: U16,
    e_phentsize: U16,
    e_phnum: U16,
    e_shentsize: U16,
    e_shnum: U16,
    e_shstrndx: U16,
}
const _: () = assert!(core::mem::size_of::<Ehdr32>() == 52);

/// `Elf64_Ehdr` (also what [`crate::bsdsym`] copies into the guest).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Ehdr64 {
    pub(crate) ident: Ident,
    pub(crate) e_type: U16,
    pub(crate) e_machine: U16,
    pub(crate) e_version: U32,
    pub(crate) e_entry: U64,
    pub(crate) e_phoff: U64,
    pub(crate) e_shoff: U64,
    pub(crate) e_flags: U32,
    pub(crate) e_ehsize: U16,
    pub(crate) e_phentsize: U16,
    pub(crate) e_phnum: U16,
    pub(crate) e_shentsize: U16,
    pub(crate) e_shnum: U16,
    pub(crate) e_shstrndx: U16,
}
const _: () = assert!(core::mem::size_of::<Ehdr64>() == 64);

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Phdr32 {
    p_type: U32,
    p_offset: U32,
    p_vaddr: U32,
    p_paddr: U32,
    p_filesz: U32,
    p_memsz: U32,
    p_flags: U32,
    p_align: U32,
}
const _: () = assert!(core::mem::size_of::<Phdr32>() == 32);

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Phdr64 {
    p_type: U32,
    p_flags: U32,
    p_offset: U64,
    p_vaddr: U64,
    p_paddr: U64,
    p_filesz: U64,
    p_memsz: U64,
    p_align: U64,
}
const _: () = assert!(core::mem::size_of::<Phdr64>() == 56);

#[derive(FromBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct Shdr32 {
    sh_name: U32,
    sh_type: U32,
    sh_flags: U32,
    sh_addr: U32,
    sh_offset: U32,
    sh_size: U32,
    sh_link: U32,
    sh_info: U32,
    sh_addralign: U32,
    sh_entsize: U32,
}
const _: () = assert!(core::mem::size_of::<Shdr32>() == 40);

/// `Elf64_Shdr` (also what [`crate::bsdsym`] copies into the guest).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Shdr64 {
    pub(crate) sh_name: U32,
    pub(crate) sh_type: U32,
    pub(crate) sh_flags: U64,
    pub(crate) sh_addr: U64,
    pub(crate) sh_offset: U64,
    pub(crate) sh_size: U64,
    pub(crate) sh_link: U32,
    pub(crate) sh_info: U32,
    pub(crate) sh_addralign: U64,
    pub(crate) sh_entsize: U64,
}
const _: () = assert!(core::mem::size_of::<Shdr64>() == 64);

/// ELF class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// ELFCLASS32
    Elf32,
    /// ELFCLASS64
    Elf64,
}

/// A program header, widened to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phdr {
    /// `p_type`
    pub p_type: u32,
    /// `p_flags`
    pub p_flags: u32,
    /// `p_offset`
    pub offset: u64,
    /// `p_vaddr`
    pub vaddr: u64,
    /// `p_paddr`
    pub paddr: u64,
    /// `p_filesz`
    pub filesz: u64,
    /// `p_memsz`
    pub memsz: u64,
}

impl Phdr {
    /// libelf's `elf_phdr_is_loadable`: PT_LOAD with at least one of R, W, X.
    pub fn is_loadable(&self) -> bool {
        self.p_type == PT_LOAD && self.p_flags & PF_RWX != 0
    }
}

/// A section header, widened to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shdr {
    /// `sh_name` (offset into the section-name string table)
    pub name: u32,
    /// `sh_type`
    pub sh_type: u32,
    /// `sh_offset`
    pub offset: u64,
    /// `sh_size`
    pub size: u64,
}

/// Why an ELF kernel was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than the ELF file header.
    Truncated,
    /// No `\x7fELF` magic.
    BadMagic,
    /// Neither ELFCLASS32 nor ELFCLASS64.
    UnsupportedClass(u8),
    /// Not little endian.
    NotLittleEndian,
    /// Not EM_X86_64 (ELF64) or EM_386 (ELF32).
    UnsupportedMachine {
        /// The class.
        class: Class,
        /// `e_machine`.
        machine: u16,
    },
    /// `e_phentsize` / `e_shentsize` smaller than the class's header.
    BadEntrySize {
        /// The field's value.
        entsize: u16,
    },
    /// The program header table lies (partly) outside the file.
    PhdrsOutOfFile {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
    },
    /// The section header table lies (partly) outside the file.
    ShdrsOutOfFile {
        /// `e_shoff`.
        offset: u64,
        /// `e_shnum`.
        count: u16,
    },
    /// More program headers than [`limits::MAX_ELF_SEGMENTS`].
    TooManySegments(u16),
    /// More section headers than [`limits::MAX_ELF_SECTIONS`].
    TooManySections(u16),
    /// No loadable segment.
    NoLoadableSegments,
    /// A loadable segment's file bytes lie outside the file.
    SegmentOutOfFile {
        /// Program header index.
        index: u16,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
    },
    /// A loadable segment has `p_filesz > p_memsz`.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: u16,
    },
    /// `p_paddr + p_memsz` overflows.
    SegmentAddressOverflow {
        /// Program header index.
        index: u16,
    },
    /// Two loadable segments overlap in physical (load) address.
    OverlappingSegments {
        /// First program header index.
        a: u16,
        /// Second program header index.
        b: u16,
    },
    /// A note segment or section lies outside the file.
    NoteAreaOutOfFile {
        /// Its offset.
        offset: u64,
        /// Its size.
        size: u64,
    },
    /// A malformed note.
    Note(NoteError),
    /// Neither Xen ELF notes nor a `__xen_guest` section.
    NotXenImage,
    /// LOADER is not "generic" and GUEST_OS not "linux".
    UnsupportedLoader,
    /// XEN_VERSION is not "xen-3.0".
    UnsupportedXenVersion,
    /// PADDR_OFFSET given without VIRT_BASE.
    PaddrOffsetWithoutVirtBase,
    /// An address computation from the image's values overflows 64 bits.
    AddressOverflow,
    /// libelf's "ELF start or entries are out of bounds".
    OutOfBounds {
        /// Computed `virt_kstart`.
        virt_kstart: u64,
        /// Computed `virt_kend`.
        virt_kend: u64,
        /// `virt_entry`.
        virt_entry: u64,
        /// `virt_base`.
        virt_base: u64,
    },
    /// INIT_P2M points into the kernel image.
    P2mInsideImage {
        /// INIT_P2M.
        p2m_base: u64,
    },
    /// HYPERCALL_PAGE is outside `[virt_kstart, virt_kend)`.
    HypercallPageOutside {
        /// HYPERCALL_PAGE as a virtual address.
        virt_hypercall: u64,
    },
    /// The `BSD_SYMTAB` symbol table cannot be loaded.
    BsdSymtab(crate::bsdsym::BsdSymError),
    /// The destination given to `load` is not the size of the image.
    DestSize {
        /// `virt_kend - virt_kstart`.
        expected: u64,
        /// The destination's length.
        got: u64,
    },
}

impl From<NoteError> for ElfError {
    fn from(e: NoteError) -> Self {
        ElfError::Note(e)
    }
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ElfError::Truncated => f.write_str("ELF header truncated"),
            ElfError::BsdSymtab(e) => write!(f, "{e}"),
            ElfError::BadMagic => f.write_str("not an ELF image"),
            ElfError::UnsupportedClass(c) => write!(f, "unsupported ELF class {c}"),
            ElfError::NotLittleEndian => f.write_str("ELF image is not little endian"),
            ElfError::UnsupportedMachine { class, machine } => {
                write!(f, "unsupported ELF machine {machine} for {class:?}")
            }
            ElfError::BadEntrySize { entsize } => {
                write!(f, "ELF header table entry size {entsize} too small")
            }
            ElfError::PhdrsOutOfFile { offset, count } => write!(
                f,
                "{count} program headers at {offset:#x} extend beyond the file"
            ),
            ElfError::ShdrsOutOfFile { offset, count } => write!(
                f,
                "{count} section headers at {offset:#x} extend beyond the file"
            ),
            ElfError::TooManySegments(n) => write!(
                f,
                "{n} program headers (limit {})",
                limits::MAX_ELF_SEGMENTS
            ),
            ElfError::TooManySections(n) => {
                write!(
                    f,
                    "{n} section headers (limit {})",
                    limits::MAX_ELF_SECTIONS
                )
            }
            ElfError::NoLoadableSegments => f.write_str("ELF image has no loadable segment"),
            ElfError::SegmentOutOfFile {
                index,
                offset,
                filesz,
            } => write!(
                f,
                "segment {index} ({offset:#x}+{filesz:#x}) extends beyond the file"
            ),
            ElfError::FileSizeExceedsMemSize { index } => {
                write!(f, "segment {index} has p_filesz > p_memsz")
            }
            ElfError::SegmentAddressOverflow { index } => {
                write!(f, "segment {index} address range overflows")
            }
            ElfError::OverlappingSegments { a, b } => {
                write!(f, "segments {a} and {b} overlap")
            }
            ElfError::NoteAreaOutOfFile { offset, size } => {
                write!(f, "note area {offset:#x}+{size:#x} extends beyond the file")
            }
            ElfError::Note(e) => write!(f, "{e}"),
            ElfError::NotXenImage => {
                f.write_str("not a Xen-ELF image: no ELF notes or '__xen_guest' section found")
            }
            ElfError::UnsupportedLoader => {
                f.write_str("will only load images built for the generic loader or Linux images")
            }
            ElfError::UnsupportedXenVersion => {
                f.write_str("Xen will only load images built for Xen v3.0")
            }
            ElfError::PaddrOffsetWithoutVirtBase => {
                f.write_str("ELF_PADDR_OFFSET set, VIRT_BASE unset")
            }
            ElfError::AddressOverflow => f.write_str("kernel address computation overflows"),
            ElfError::OutOfBounds {
                virt_kstart,
                virt_kend,
                virt_entry,
                virt_base,
            } => write!(
                f,
                "ELF start or entries are out of bounds (base {virt_base:#x}, \
                 kernel {virt_kstart:#x}-{virt_kend:#x}, entry {virt_entry:#x})"
            ),
            ElfError::P2mInsideImage { p2m_base } => {
                write!(f, "P->M table base {p2m_base:#x} is inside the kernel")
            }
            ElfError::HypercallPageOutside { virt_hypercall } => write!(
                f,
                "hypercall page {virt_hypercall:#x} is outside the kernel image"
            ),
            ElfError::DestSize { expected, got } => write!(
                f,
                "load destination is {got:#x} bytes, the image needs {expected:#x}"
            ),
        }
    }
}

/// A validated ELF image: headers inside the file, loadable segments inside the file,
/// non-overlapping, with `p_filesz <= p_memsz`.
#[derive(Debug, Clone, Copy)]
pub struct Elf<'a> {
    bytes: &'a [u8],
    class: Class,
    machine: u16,
    entry: u64,
    phoff: usize,
    phentsize: usize,
    phnum: u16,
    shoff: usize,
    shentsize: usize,
    shnum: u16,
    shstrndx: u16,
    pstart: u64,
    pend: u64,
}

/// `bytes[offset .. offset + len]`, if it is inside.
fn range(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

/// Validate a header table; returns its offset as usize.
fn table(
    bytes: &[u8],
    offset: u64,
    count: u16,
    entsize: u16,
    min_entsize: usize,
) -> Result<usize, ()> {
    if count == 0 {
        return Ok(0);
    }
    if usize::from(entsize) < min_entsize {
        return Err(());
    }
    let len = u64::from(count) * u64::from(entsize);
    range(bytes, offset, len).ok_or(())?;
    usize::try_from(offset).map_err(|_| ())
}

impl<'a> Elf<'a> {
    /// Parse and validate the headers and loadable segments.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let (ident, _) = Ident::ref_from_prefix(bytes).map_err(|_| ElfError::Truncated)?;
        if ident.magic != *b"\x7fELF" {
            return Err(ElfError::BadMagic);
        }
        let class = match ident.class {
            1 => Class::Elf32,
            2 => Class::Elf64,
            c => return Err(ElfError::UnsupportedClass(c)),
        };
        if ident.data != 1 {
            return Err(ElfError::NotLittleEndian);
        }
        #[allow(clippy::type_complexity)]
        let (machine, entry, phoff, phentsize, phnum, shoff, shentsize, shnum, shstrndx) =
            match class {
                Class::Elf32 => {
                    let (h, _) = Ehdr32::ref_from_prefix(bytes).map_err(|_| ElfError::Truncated)?;
                    (
                        h.e_machine.get(),
                        u64::from(h.e_entry.get()),
                        u64::from(h.e_phoff.get()),
                        h.e_phentsize.get(),
                        h.e_phnum.get(),
                        u64::from(h.e_shoff.get()),
                        h.e_shentsize.get(),
                        h.e_shnum.get(),
                        h.e_shstrndx.get(),
                    )
                }
                Class::Elf64 => {
                    let (h, _) = Ehdr64::ref_from_prefix(bytes).map_err(|_| ElfError::Truncated)?;
                    (
                        h.e_machine.get(),
                        h.e_entry.get(),
                        h.e_phoff.get(),
                        h.e_phentsize.get(),
                        h.e_phnum.get(),
                        h.e_shoff.get(),
                        h.e_shentsize.get(),
                        h.e_shnum.get(),
                        h.e_shstrndx.get(),
                    )
                }
            };
        let want = match class {
            Class::Elf32 => EM_386,
            Class::Elf64 => EM_X86_64,
        };
        if machine != want {
            return Err(ElfError::UnsupportedMachine { class, machine });
        }
        let (min_ph, min_sh) = match class {
            Class::Elf32 => (
                core::mem::size_of::<Phdr32>(),
                core::mem::size_of::<Shdr32>(),
            ),
            Class::Elf64 => (
                core::mem::size_of::<Phdr64>(),
                core::mem::size_of::<Shdr64>(),
            ),
        };
        if phnum > limits::MAX_ELF_SEGMENTS {
            return Err(ElfError::TooManySegments(phnum));
        }
        if shnum > limits::MAX_ELF_SECTIONS {
            return Err(ElfError::TooManySections(shnum));
        }
        if phnum != 0 && usize::from(phentsize) < min_ph {
            return Err(ElfError::BadEntrySize { entsize: phentsize });
        }
        if shnum != 0 && usize::from(shentsize) < min_sh {
            return Err(ElfError::BadEntrySize { entsize: shentsize });
        }
        let phoff_us = table(bytes, phoff, phnum, phentsize, min_ph).map_err(|_| {
            ElfError::PhdrsOutOfFile {
                offset: phoff,
                count: phnum,
            }
        })?;
        let shoff_us = table(bytes, shoff, shnum, shentsize, min_sh).map_err(|_| {
            ElfError::ShdrsOutOfFile {
                offset: shoff,
                count: shnum,
            }
        })?;
        let mut elf = Elf {
            bytes,
            class,
            machine,
            entry,
            phoff: phoff_us,
            phentsize: usize::from(phentsize),
            phnum,
            shoff: shoff_us,
            shentsize: usize::from(shentsize),
            shnum,
            shstrndx,
            pstart: 0,
            pend: 0,
        };
        elf.check_segments()?;
        Ok(elf)
    }

    /// Check every loadable segment and compute `pstart` / `pend` (`elf_parse_binary`).
    fn check_segments(&mut self) -> Result<(), ElfError> {
        let mut bounds: Option<(u64, u64)> = None;
        for (i, ph) in self.indexed_phdrs() {
            if !ph.is_loadable() {
                continue;
            }
            if ph.filesz > ph.memsz {
                return Err(ElfError::FileSizeExceedsMemSize { index: i });
            }
            if range(self.bytes, ph.offset, ph.filesz).is_none() {
                return Err(ElfError::SegmentOutOfFile {
                    index: i,
                    offset: ph.offset,
                    filesz: ph.filesz,
                });
            }
            let end = ph
                .paddr
                .checked_add(ph.memsz)
                .ok_or(ElfError::SegmentAddressOverflow { index: i })?;
            bounds = Some(match bounds {
                None => (ph.paddr, end),
                Some((s, e)) => (s.min(ph.paddr), e.max(end)),
            });
            // Overlap with any earlier loadable segment (both non-empty).
            for (j, other) in self.indexed_phdrs().take_while(|&(j, _)| j < i) {
                if !other.is_loadable() || other.memsz == 0 || ph.memsz == 0 {
                    continue;
                }
                let other_end = other.paddr.saturating_add(other.memsz);
                if ph.paddr < other_end && other.paddr < end {
                    return Err(ElfError::OverlappingSegments { a: j, b: i });
                }
            }
        }
        let (pstart, pend) = bounds.ok_or(ElfError::NoLoadableSegments)?;
        self.pstart = pstart;
        self.pend = pend;
        Ok(())
    }

    /// The ELF class.
    pub fn class(&self) -> Class {
        self.class
    }
    /// `e_machine`.
    pub fn machine(&self) -> u16 {
        self.machine
    }
    /// `e_entry`.
    pub fn entry(&self) -> u64 {
        self.entry
    }
    /// Lowest load (physical) address of the loadable segments.
    pub fn pstart(&self) -> u64 {
        self.pstart
    }
    /// End of the highest loadable segment.
    pub fn pend(&self) -> u64 {
        self.pend
    }
    /// The image bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The bytes from entry `i` of a header table (`off`, `entsize`, `num`) to the end of
    /// the file, or `None` past the table or the file.
    fn table_entry(&self, off: usize, entsize: usize, num: u16, i: u16) -> Option<&'a [u8]> {
        if i >= num {
            return None;
        }
        let at = off.checked_add(usize::from(i).checked_mul(entsize)?)?;
        self.bytes.get(at..)
    }

    /// Program header `i` (validated to lie inside the file by `parse`).
    pub fn phdr(&self, i: u16) -> Option<Phdr> {
        let raw = self.table_entry(self.phoff, self.phentsize, self.phnum, i)?;
        Some(match self.class {
            Class::Elf32 => {
                let (p, _) = Phdr32::ref_from_prefix(raw).ok()?;
                Phdr {
                    p_type: p.p_type.get(),
                    p_flags: p.p_flags.get(),
                    offset: u64::from(p.p_offset.get()),
                    vaddr: u64::from(p.p_vaddr.get()),
                    paddr: u64::from(p.p_paddr.get()),
                    filesz: u64::from(p.p_filesz.get()),
                    memsz: u64::from(p.p_memsz.get()),
                }
            }
            Class::Elf64 => {
                let (p, _) = Phdr64::ref_from_prefix(raw).ok()?;
                Phdr {
                    p_type: p.p_type.get(),
                    p_flags: p.p_flags.get(),
                    offset: p.p_offset.get(),
                    vaddr: p.p_vaddr.get(),
                    paddr: p.p_paddr.get(),
                    filesz: p.p_filesz.get(),
                    memsz: p.p_memsz.get(),
                }
            }
        })
    }

    fn indexed_phdrs(&self) -> impl Iterator<Item = (u16, Phdr)> + '_ {
        (0..self.phnum).filter_map(move |i| self.phdr(i).map(|p| (i, p)))
    }

    /// All program headers.
    pub fn phdrs(&self) -> impl Iterator<Item = Phdr> + '_ {
        self.indexed_phdrs().map(|(_, p)| p)
    }

    /// The loadable segments, in file order.
    pub fn loadable(&self) -> impl Iterator<Item = Phdr> + '_ {
        self.phdrs().filter(Phdr::is_loadable)
    }

    /// Number of section headers (`e_shnum`).
    pub fn shnum(&self) -> u16 {
        self.shnum
    }

    /// The raw bytes of section header `i` (at least one header of the class's size).
    pub fn shdr_bytes(&self, i: u16) -> Option<&'a [u8]> {
        let raw = self.table_entry(self.shoff, self.shentsize, self.shnum, i)?;
        let len = match self.class {
            Class::Elf32 => core::mem::size_of::<Shdr32>(),
            Class::Elf64 => core::mem::size_of::<Shdr64>(),
        };
        raw.get(..len)
    }

    /// Section header `i`.
    pub fn shdr(&self, i: u16) -> Option<Shdr> {
        let raw = self.table_entry(self.shoff, self.shentsize, self.shnum, i)?;
        Some(match self.class {
            Class::Elf32 => {
                let (s, _) = Shdr32::ref_from_prefix(raw).ok()?;
                Shdr {
                    name: s.sh_name.get(),
                    sh_type: s.sh_type.get(),
                    offset: u64::from(s.sh_offset.get()),
                    size: u64::from(s.sh_size.get()),
                }
            }
            Class::Elf64 => {
                let (s, _) = Shdr64::ref_from_prefix(raw).ok()?;
                Shdr {
                    name: s.sh_name.get(),
                    sh_type: s.sh_type.get(),
                    offset: s.sh_offset.get(),
                    size: s.sh_size.get(),
                }
            }
        })
    }

    /// The contents of a section, if inside the file.
    pub fn section_data(&self, sh: &Shdr) -> Option<&'a [u8]> {
        range(self.bytes, sh.offset, sh.size)
    }

    /// The first section called `name` (`elf_shdr_by_name`).
    pub fn section_by_name(&self, name: &[u8]) -> Option<Shdr> {
        let strtab = self.shdr(self.shstrndx)?;
        let names = self.section_data(&strtab)?;
        (0..self.shnum).filter_map(|i| self.shdr(i)).find(|sh| {
            usize::try_from(sh.name)
                .ok()
                .and_then(|at| names.get(at..))
                .is_some_and(|s| crate::notes::c_str(s) == name)
        })
    }

    /// The raw Xen parameters, searched as `elf_xen_parse` does: PT_NOTE segments, else
    /// SHT_NOTE sections, else the `__xen_guest` section.
    pub fn xen_parms(&self) -> Result<DomParms, ElfError> {
        let mut parms = DomParms::default();
        let mut total = 0u32;
        let mut xen = 0u32;
        for ph in self.phdrs() {
            // Some binutils leave p_offset 0 in note segments: libelf skips those.
            if ph.p_type != PT_NOTE || ph.offset == 0 {
                continue;
            }
            let area =
                range(self.bytes, ph.offset, ph.filesz).ok_or(ElfError::NoteAreaOutOfFile {
                    offset: ph.offset,
                    size: ph.filesz,
                })?;
            xen = xen.saturating_add(parms.parse_area(area, &mut total)?);
        }
        if xen == 0 {
            for sh in (1..self.shnum).filter_map(|i| self.shdr(i)) {
                if sh.sh_type != SHT_NOTE {
                    continue;
                }
                let area = self.section_data(&sh).ok_or(ElfError::NoteAreaOutOfFile {
                    offset: sh.offset,
                    size: sh.size,
                })?;
                xen = xen.saturating_add(parms.parse_area(area, &mut total)?);
            }
        }
        if xen == 0 {
            if let Some(sh) = self.section_by_name(b"__xen_guest") {
                let data = self.section_data(&sh).ok_or(ElfError::NoteAreaOutOfFile {
                    offset: sh.offset,
                    size: sh.size,
                })?;
                xen_guest::parse(xen_guest::section_string(data), &mut parms);
            }
        }
        Ok(parms)
    }

    /// The guest type this image asks for (`xc_dom_guest_type`): ELF64 is x86_64; ELF32 is
    /// PAE when PAE_MODE says yes, extended-cr3 or bimodal.
    pub fn guest_type(&self, pae: PaeMode) -> GuestType {
        match (self.class, pae) {
            (Class::Elf64, _) => GuestType::X86_64,
            (Class::Elf32, PaeMode::No) => GuestType::X86_32,
            (Class::Elf32, _) => GuestType::X86_32Pae,
        }
    }

    /// Parse the Xen parameters and apply libelf's checks and defaults. With `BSD_SYMTAB`
    /// the image ends after its symbol table ([`crate::bsdsym`]), before libelf's checks
    /// of the entry point and hypercall page against it, as `elf_xen_addr_calc_check`.
    pub fn params(&self) -> Result<KernelParams, ElfError> {
        let parms = self.xen_parms()?;
        let guest_type = self.guest_type(parms.pae);
        let pend = if parms.bsd_symtab {
            self.bsd_symtab()?.pend
        } else {
            self.pend
        };
        finish(parms, guest_type, self.pstart, pend, self.entry)
    }

    /// Where the `BSD_SYMTAB` tables go ([`crate::bsdsym::locate`]).
    pub fn bsd_symtab(&self) -> Result<crate::bsdsym::BsdSymtab, ElfError> {
        crate::bsdsym::locate(self).map_err(ElfError::BsdSymtab)
    }

    /// Copy the loadable segments into `dest`, which covers the load range
    /// `[pstart, pend)` (`[virt_kstart, virt_kend)`), as `elf_load_binary` does; the part of
    /// each segment past its file size is zeroed.
    pub fn load(&self, dest: &mut [u8]) -> Result<(), ElfError> {
        let expected = self.pend - self.pstart;
        if dest.len() as u64 != expected {
            return Err(ElfError::DestSize {
                expected,
                got: dest.len() as u64,
            });
        }
        for (index, ph) in self.indexed_phdrs() {
            if !ph.is_loadable() {
                continue;
            }
            let src =
                range(self.bytes, ph.offset, ph.filesz).ok_or(ElfError::SegmentOutOfFile {
                    index,
                    offset: ph.offset,
                    filesz: ph.filesz,
                })?;
            let seg = range_mut(dest, ph.paddr - self.pstart, ph.memsz)
                .ok_or(ElfError::SegmentAddressOverflow { index })?;
            let (file_part, bss) = seg.split_at_mut(src.len());
            file_part.copy_from_slice(src);
            bss.fill(0);
        }
        Ok(())
    }
}

fn range_mut(bytes: &mut [u8], offset: u64, len: u64) -> Option<&mut [u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get_mut(start..end)
}

/// libelf's `elf_xen_note_check` and `elf_xen_addr_calc_check` for a PV guest: refuse
/// images that are not Xen's, default `virt_base`, `elf_paddr_offset` and `virt_entry`,
/// compute `virt_offset`, `virt_kstart`, `virt_kend`, and check the entry, INIT_P2M and
/// HYPERCALL_PAGE against the image.
pub fn finish(
    p: DomParms,
    guest_type: GuestType,
    pstart: u64,
    pend: u64,
    e_entry: u64,
) -> Result<KernelParams, ElfError> {
    // elf_xen_note_check.
    if p.source == ParmSource::None {
        return Err(ElfError::NotXenImage);
    }
    if !p.loader.starts_with("generic") && !p.guest_os.starts_with("linux") {
        return Err(ElfError::UnsupportedLoader);
    }
    if !p.xen_ver.starts_with("xen-3.0") {
        return Err(ElfError::UnsupportedXenVersion);
    }
    // elf_xen_addr_calc_check.
    if p.elf_paddr_offset.is_some() && p.virt_base.is_none() {
        return Err(ElfError::PaddrOffsetWithoutVirtBase);
    }
    let virt_base = p.virt_base.unwrap_or(0);
    // The legacy `__xen_guest` convention defaults PADDR_OFFSET to VIRT_BASE; notes to 0.
    let elf_paddr_offset = p.elf_paddr_offset.unwrap_or(match p.source {
        ParmSource::XenGuest => virt_base,
        _ => 0,
    });
    let virt_offset = virt_base
        .checked_sub(elf_paddr_offset)
        .ok_or(ElfError::AddressOverflow)?;
    let virt_kstart = pstart
        .checked_add(virt_offset)
        .ok_or(ElfError::AddressOverflow)?;
    let virt_kend = pend
        .checked_add(virt_offset)
        .ok_or(ElfError::AddressOverflow)?;
    let virt_entry = p.virt_entry.unwrap_or(e_entry);
    if virt_kstart > virt_kend
        || virt_entry < virt_kstart
        || virt_entry > virt_kend
        || virt_base > virt_kstart
    {
        return Err(ElfError::OutOfBounds {
            virt_kstart,
            virt_kend,
            virt_entry,
            virt_base,
        });
    }
    if let Some(p2m_base) = p.p2m_base {
        if p2m_base >= virt_kstart && p2m_base < virt_kend {
            return Err(ElfError::P2mInsideImage { p2m_base });
        }
    }
    if let Some(virt_hypercall) = p.virt_hypercall {
        if virt_hypercall < virt_kstart || virt_hypercall >= virt_kend {
            return Err(ElfError::HypercallPageOutside { virt_hypercall });
        }
    }
    Ok(KernelParams {
        guest_type,
        guest_os: p.guest_os,
        guest_ver: p.guest_ver,
        xen_ver: p.xen_ver,
        loader: p.loader,
        pae: p.pae,
        bsd_symtab: p.bsd_symtab,
        unmapped_initrd: p.unmapped_initrd,
        virt_base,
        virt_entry,
        virt_hypercall: p.virt_hypercall,
        virt_hv_start_low: p.virt_hv_start_low,
        p2m_base: p.p2m_base,
        elf_paddr_offset,
        f_supported: p.f_supported,
        f_required: p.f_required,
        phys_entry: p.phys_entry,
        virt_offset,
        virt_kstart,
        virt_kend,
    })
}

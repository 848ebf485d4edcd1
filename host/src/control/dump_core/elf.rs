//! The layout of a Xen core file (libxenguest's xg_core.c, format version 0.1): an ELF64
//! `ET_CORE` file without program headers whose sections are, in this order of headers,
//! the null section, `.shstrtab`, `.note.Xen` (the notes none, header, xen version, format
//! version), `.xen_prstatus` (each vcpu's `vcpu_guest_context`), `.xen_shared_info` (when
//! mapped), `.xen_pages` (page aligned) and `.xen_p2m` (`{pfn, gmfn}` pairs, a PV guest)
//! or `.xen_pfn` (pfns, an auto-translated guest); `.shstrtab`'s bytes come last.
//!
//! This module computes the bytes before the pages and after them; [`super`] reads the
//! guest and writes the pages between.

use zerocopy::{Immutable, IntoBytes};

/// `PAGE_SIZE`.
pub const PAGE: u64 = 4096;
/// `XC_CORE_MAGIC` (a PV guest) and `XC_CORE_MAGIC_HVM` (xg_core.h).
pub const XC_CORE_MAGIC: u64 = 0xF00F_EBED;
/// `XC_CORE_MAGIC_HVM`.
pub const XC_CORE_MAGIC_HVM: u64 = 0xF00F_EBEE;
/// `XEN_ELFNOTE_DUMPCORE_NONE` (xen/elfnote.h) and the three after it.
const NOTE_NONE: u32 = 0x0200_0000;
const NOTE_HEADER: u32 = 0x0200_0001;
const NOTE_XEN_VERSION: u32 = 0x0200_0002;
const NOTE_FORMAT_VERSION: u32 = 0x0200_0003;
/// `XEN_DUMPCORE_FORMAT_VERSION_CURRENT`: 0.1.
const FORMAT_VERSION: u64 = 1;
/// `sizeof(vcpu_guest_context_any_t)` on x86_64 and its alignment.
pub const CTX_SIZE: u64 = 5168;
const CTX_ALIGN: u64 = 8;
/// `sizeof(struct xen_dumpcore_p2m)`.
pub const P2M_ENTRY: u64 = 16;
/// The size of the four notes (`struct elfnote` of 16 bytes before each descriptor:
/// none 0, header 32, xen version 1280, format version 8).
const NOTES_SIZE: u64 = 16 + (16 + 32) + (16 + 1280) + (16 + 8);

const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_NOTE: u32 = 7;

/// `Elf64_Ehdr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, IntoBytes, Immutable)]
struct Ehdr {
    ident: [u8; 16],
    r#type: u16,
    machine: u16,
    version: u32,
    entry: u64,
    phoff: u64,
    shoff: u64,
    flags: u32,
    ehsize: u16,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}
const _: () = assert!(size_of::<Ehdr>() == 64);

/// `Elf64_Shdr`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, IntoBytes, Immutable)]
struct Shdr {
    name: u32,
    r#type: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    addralign: u64,
    entsize: u64,
}
const _: () = assert!(size_of::<Shdr>() == 64);

/// The answers of `XENVER_*` the version note holds, as Xen wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionNote {
    /// `XENVER_version >> 16`.
    pub major: u64,
    /// `XENVER_version & 0xffff`.
    pub minor: u64,
    /// `xen_extraversion_t`, 16 bytes.
    pub extra: Vec<u8>,
    /// `xen_compile_info_t`, 144 bytes.
    pub compile_info: Vec<u8>,
    /// `xen_capabilities_info_t`, 1024 bytes.
    pub capabilities: Vec<u8>,
    /// `xen_changeset_info_t`, 64 bytes.
    pub changeset: Vec<u8>,
    /// `xen_platform_parameters_t`, 8 bytes.
    pub platform_parameters: Vec<u8>,
    /// `XENVER_pagesize`.
    pub pagesize: u64,
}

/// What fixes the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Vcpus whose context was read.
    pub nr_vcpus: u64,
    /// The domain's page count (`tot_pages`): the pages section's length in pages.
    pub nr_pages: u64,
    /// The shared info page was mapped.
    pub shared_info: bool,
    /// Auto-translated (HVM, PVH): `.xen_pfn` instead of `.xen_p2m`, the HVM magic.
    pub translated: bool,
}

/// The file's layout: every byte but the pages' and the table's.
#[derive(Debug, Clone)]
pub struct Layout {
    shdrs: Vec<Shdr>,
    strtab: Vec<u8>,
    /// Offset of the note section.
    notes_at: u64,
    /// Zero bytes between the last header section and the pages.
    pub pad: u64,
    /// Offset of `.xen_pages`.
    pub pages_at: u64,
}

fn push_name(strtab: &mut Vec<u8>, name: &str) -> u32 {
    let at = strtab.len() as u32;
    strtab.extend_from_slice(name.as_bytes());
    strtab.push(0);
    at
}

/// Lays the file out as `xc_domain_dumpcore_via_callback` does (its fix-up of the offsets
/// once the number of section headers is known, the padding to a page boundary).
pub fn layout(s: &Shape) -> Layout {
    let mut strtab = vec![0u8];
    let mut shdrs = vec![Shdr::default()];
    let sect = |strtab: &mut Vec<u8>, name, r#type, offset, size, addralign, entsize| Shdr {
        name: push_name(strtab, name),
        r#type,
        offset,
        size,
        addralign,
        entsize,
        ..Shdr::default()
    };
    shdrs.push(sect(&mut strtab, ".shstrtab", SHT_STRTAB, 0, 0, 0, 0));
    let mut off = size_of::<Ehdr>() as u64;
    shdrs.push(sect(
        &mut strtab,
        ".note.Xen",
        SHT_NOTE,
        off,
        NOTES_SIZE,
        0,
        0,
    ));
    off += NOTES_SIZE;
    let prstatus = CTX_SIZE * s.nr_vcpus;
    shdrs.push(sect(
        &mut strtab,
        ".xen_prstatus",
        SHT_PROGBITS,
        off,
        prstatus,
        CTX_ALIGN,
        CTX_SIZE,
    ));
    off += prstatus;
    if s.shared_info {
        shdrs.push(sect(
            &mut strtab,
            ".xen_shared_info",
            SHT_PROGBITS,
            off,
            PAGE,
            8,
            PAGE,
        ));
        off += PAGE;
    }
    // The pages and the table come last, so the headers' count is known here.
    let fixup = (shdrs.len() as u64 + 2) * size_of::<Shdr>() as u64;
    for h in shdrs.iter_mut().skip(1) {
        h.offset += fixup;
    }
    let notes_at = size_of::<Ehdr>() as u64 + fixup;
    off += fixup;
    let pad = off.div_ceil(PAGE) * PAGE - off;
    off += pad;
    let pages_at = off;
    let pages = s.nr_pages * PAGE;
    shdrs.push(sect(
        &mut strtab,
        ".xen_pages",
        SHT_PROGBITS,
        off,
        pages,
        PAGE,
        PAGE,
    ));
    off += pages;
    let (name, entry) = if s.translated {
        (".xen_pfn", 8)
    } else {
        (".xen_p2m", P2M_ENTRY)
    };
    shdrs.push(sect(
        &mut strtab,
        name,
        SHT_PROGBITS,
        off,
        s.nr_pages * entry,
        8,
        entry,
    ));
    off += s.nr_pages * entry;
    if let Some(h) = shdrs.get_mut(1) {
        h.offset = off;
        h.size = strtab.len() as u64;
    }
    Layout {
        shdrs,
        strtab,
        notes_at,
        pad,
        pages_at,
    }
}

fn note(out: &mut Vec<u8>, r#type: u32, desc: &[u8]) {
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&r#type.to_le_bytes());
    out.extend_from_slice(b"Xen\0");
    out.extend_from_slice(desc);
}

/// `bytes` cut or zero-filled to `len`.
fn fixed(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.resize(len, 0);
    v
}

impl Layout {
    /// Everything before the pages: the ELF header, the section headers, the notes, the
    /// vcpu contexts (`ctxs`, [`CTX_SIZE`] bytes each), the shared info page and the
    /// padding. `magic_hvm` picks the header note's magic.
    pub fn head(
        &self,
        s: &Shape,
        version: &VersionNote,
        ctxs: &[u8],
        shared_info: &[u8],
    ) -> Vec<u8> {
        let eh = Ehdr {
            ident: [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0],
            r#type: 4,
            machine: 62,
            version: 1,
            shoff: size_of::<Ehdr>() as u64,
            ehsize: size_of::<Ehdr>() as u16,
            phentsize: 56,
            shentsize: size_of::<Shdr>() as u16,
            shnum: self.shdrs.len() as u16,
            shstrndx: 1,
            ..Ehdr::default()
        };
        let mut out = Vec::with_capacity(self.pages_at as usize);
        out.extend_from_slice(eh.as_bytes());
        for h in &self.shdrs {
            out.extend_from_slice(h.as_bytes());
        }
        debug_assert_eq!(out.len() as u64, self.notes_at);
        note(&mut out, NOTE_NONE, &[]);
        let magic = if s.translated {
            XC_CORE_MAGIC_HVM
        } else {
            XC_CORE_MAGIC
        };
        let header: Vec<u8> = [magic, s.nr_vcpus, s.nr_pages, PAGE]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        note(&mut out, NOTE_HEADER, &header);
        let mut v = Vec::with_capacity(1280);
        v.extend_from_slice(&version.major.to_le_bytes());
        v.extend_from_slice(&version.minor.to_le_bytes());
        v.extend_from_slice(&fixed(&version.extra, 16));
        v.extend_from_slice(&fixed(&version.compile_info, 144));
        v.extend_from_slice(&fixed(&version.capabilities, 1024));
        v.extend_from_slice(&fixed(&version.changeset, 64));
        v.extend_from_slice(&fixed(&version.platform_parameters, 8));
        v.extend_from_slice(&version.pagesize.to_le_bytes());
        note(&mut out, NOTE_XEN_VERSION, &v);
        note(&mut out, NOTE_FORMAT_VERSION, &FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(ctxs);
        if s.shared_info {
            out.extend_from_slice(&fixed(shared_info, PAGE as usize));
        }
        out.resize(out.len() + self.pad as usize, 0);
        out
    }

    /// The section name table, written last.
    pub fn strtab(&self) -> &[u8] {
        &self.strtab
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout read back by binutils' readelf: an outside reader of ELF.
    #[test]
    fn readelf_reads_the_sections() {
        let s = Shape {
            nr_vcpus: 2,
            nr_pages: 3,
            shared_info: true,
            translated: false,
        };
        let l = layout(&s);
        let version = VersionNote {
            major: 4,
            minor: 17,
            pagesize: 4096,
            ..VersionNote::default()
        };
        let mut file = l.head(
            &s,
            &version,
            &vec![0xaa; 2 * CTX_SIZE as usize],
            &[0x55; 4096],
        );
        assert_eq!(file.len() as u64, l.pages_at);
        assert_eq!(l.pages_at % PAGE, 0);
        file.resize(file.len() + 3 * PAGE as usize + 3 * 16, 0);
        file.extend_from_slice(l.strtab());
        let dir = std::env::temp_dir().join(format!("pvbuild-core-{}", std::process::id()));
        std::fs::write(&dir, &file).unwrap_or_default();
        let out = std::process::Command::new("readelf")
            .args(["-S", "-W", "-x", ".note.Xen"])
            .arg(&dir)
            .output();
        let _ = std::fs::remove_file(&dir);
        let Ok(out) = out else {
            assert!(std::env::var_os("CI").is_none(), "readelf is missing");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in [
            ".shstrtab",
            ".note.Xen",
            ".xen_prstatus",
            ".xen_shared_info",
            ".xen_pages",
            ".xen_p2m",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        // The pages on a page boundary, the table after them, the names last.
        assert!(
            text.contains(".xen_pages        PROGBITS        0000000000000000 004000 003000 1000"),
            "{text}"
        );
        assert!(
            text.contains(".shstrtab         STRTAB          0000000000000000 007030 000048"),
            "{text}"
        );
        // readelf's dump of the notes: the first (none: name size 4, no descriptor, type
        // 0x2000000, "Xen\0") in its hex words.
        assert!(
            text.contains("0x00000000 04000000 00000000 00000002 58656e00"),
            "{text}"
        );
    }

    /// An auto-translated guest's layout, read back by readelf: `.xen_pfn` of 8-byte
    /// entries instead of `.xen_p2m`, no `.xen_shared_info` when the page did not map,
    /// and the header note's HVM magic (0xf00febee) in readelf's hex dump.
    #[test]
    fn readelf_reads_a_translated_core() {
        let s = Shape {
            nr_vcpus: 1,
            nr_pages: 2,
            shared_info: false,
            translated: true,
        };
        let l = layout(&s);
        let mut file = l.head(
            &s,
            &VersionNote::default(),
            &vec![0; CTX_SIZE as usize],
            &[],
        );
        assert_eq!(l.pages_at % PAGE, 0);
        file.resize(file.len() + 2 * PAGE as usize + 2 * 8, 0);
        file.extend_from_slice(l.strtab());
        let dir = std::env::temp_dir().join(format!("pvbuild-core-t-{}", std::process::id()));
        std::fs::write(&dir, &file).unwrap_or_default();
        let out = std::process::Command::new("readelf")
            .args(["-S", "-W", "-x", ".note.Xen"])
            .arg(&dir)
            .output();
        let _ = std::fs::remove_file(&dir);
        let Ok(out) = out else {
            assert!(std::env::var_os("CI").is_none(), "readelf is missing");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(".xen_pfn"), "{text}");
        assert!(!text.contains(".xen_p2m"), "{text}");
        assert!(!text.contains(".xen_shared_info"), "{text}");
        // Two 8-byte entries after two pages, entry size 8.
        assert!(
            text.contains(".xen_pfn          PROGBITS        0000000000000000 004000 000010 08"),
            "{text}"
        );
        // The header note's descriptor starts with the magic, little-endian.
        assert!(text.contains("eeeb0ff0"), "{text}");
    }
}

//! The builder's detail, as libxenguest and libelf log it at xl's `-v` (`XTL_DETAIL`): the
//! `domainbuilder: detail:` and `xc: detail: ELF:` lines of `xl -v create`, rebuilt from
//! what pvbuild read and solved, so that a user can diff `pvbuild -v create`'s log with xl's.
//!
//! What is printed, in libxenguest's order (`xc_dom_allocate` .. `xc_dom_build_image`): the
//! command line, the files, the loader probes (`xc_dom_find_loader`) with the decompression
//! sizes of a compressed kernel, libelf's program headers, notes and addresses,
//! `xc_dom_parse_elf_kernel`, `xc_dom_mem_init`, `x86_compat`, then the allocations of the
//! build with `count_pgtables` and the ramdisk's `xc_dom_do_gunzip`. Not printed: lines
//! about libxenguest's own memory (`xc_dom_malloc`, `domU mapping ... at 0x7f..`), those that
//! need the hypervisor's answer (`xc_dom_boot_xen_init`'s caps, `xc_dom_compat_check`), and
//! the attempts of `alloc_pgtables_pv`'s loop before the last (its final mapping is printed).
//! After the build, `create` adds `vcpu_x86_64: cr3:` ([`cr3_line`]).

use std::fmt::Write as _;
use std::path::Path;

use pvbuild_core::decompress::Compression;
use pvbuild_core::elf::{Elf, PT_NOTE, SHT_NOTE};
use pvbuild_core::image::{GuestType, KernelParams, LoadKernel as _};
use pvbuild_core::kernel::Kernel;
use pvbuild_core::layout::{Layout, Segment};
use pvbuild_core::module::{self, Loaded};
use pvbuild_core::notes;
use pvbuild_core::probe::{self, Format};

/// The prefix of libxenguest's lines.
const DOM: &str = "domainbuilder: detail: ";
/// The prefix of libelf's lines (logged through libxc's handle).
const XC: &str = "xc: detail: ";

/// What the detail is made from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The kernel command line.
    pub cmdline: &'a str,
    /// The kernel file's name, and its bytes as read (before any unpacking).
    pub kernel: (&'a Path, &'a [u8]),
    /// The kernel as parsed (after unpacking).
    pub parsed: &'a Kernel<'a>,
    /// The ramdisk file's name and bytes, if there is one.
    pub ramdisk: Option<(&'a Path, &'a [u8])>,
    /// How the build loaded the ramdisk, when it is known; else it is read from the gzip
    /// trailer (what libxenguest's `xc_dom_do_gunzip` then reports).
    pub ramdisk_loaded: Option<&'a Loaded>,
    /// The solved layout.
    pub layout: &'a Layout,
    /// The guest's memory, MiB.
    pub memory_mib: u64,
}

/// Every detail line, prefixes included, in libxenguest's order.
pub fn lines(s: &Source<'_>) -> Vec<String> {
    let mut out = Vec::new();
    parse_lines(s, &mut out);
    build_lines(s, &mut out);
    out
}

/// Prints [`lines`] on stderr when the level is `-v` or more (xl's `XTL_DETAIL`).
pub fn print(s: &Source<'_>) {
    if crate::support::log::level() >= crate::support::log::DETAIL {
        for l in lines(s) {
            crate::say_err!("{l}");
        }
    }
}

/// `vcpu_x86_64: cr3: pfn P mfn M`, printed after a real build at `-v` and above.
pub fn cr3_line(top_pfn: u64, top_mfn: u64) {
    if crate::support::log::level() >= crate::support::log::DETAIL {
        crate::say_err!("{DOM}vcpu_x86_64: cr3: pfn {top_pfn:#x} mfn {top_mfn:#x}");
    }
}

fn dom(out: &mut Vec<String>, args: std::fmt::Arguments<'_>) {
    out.push(format!("{DOM}{args}"));
}

fn xc(out: &mut Vec<String>, args: std::fmt::Arguments<'_>) {
    out.push(format!("{XC}{args}"));
}

/// From `xc_dom_allocate` to `x86_compat`.
fn parse_lines(s: &Source<'_>, out: &mut Vec<String>) {
    let (kpath, kfile) = s.kernel;
    dom(
        out,
        format_args!("xc_dom_allocate: cmdline=\"{}\", features=\"\"", s.cmdline),
    );
    dom(
        out,
        format_args!("xc_dom_kernel_file: filename=\"{}\"", kpath.display()),
    );
    let format = probe::identify(kfile);
    let unpacked = s.parsed.image().len();
    // xc_dom_kernel_file gunzips a gzip-wrapped kernel at once (xc_dom_try_gunzip), into
    // a buffer of ISIZE + 16 bytes, which it logs.
    if format == Format::Gzip {
        dom(
            out,
            format_args!(
                "xc_dom_do_gunzip: unzip ok, {:#x} -> {:#x}",
                kfile.len(),
                module::check_gzip(kfile)
            ),
        );
    }
    if let Some((rpath, _)) = s.ramdisk {
        dom(
            out,
            format_args!("xc_dom_module_file: filename=\"{}\"", rpath.display()),
        );
    }
    dom(out, format_args!("xc_dom_parse_image: called"));
    // The loaders, last registered first (xc_dom_find_loader).
    let trying = |out: &mut Vec<String>, name: &str| {
        dom(
            out,
            format_args!("xc_dom_find_loader: trying {name} loader ... "),
        )
    };
    trying(out, "multiboot-binary");
    if !s.parsed.is_elf() {
        dom(out, format_args!("loader probe OK"));
    } else {
        dom(out, format_args!("loader probe failed"));
        trying(out, "HVM-generic");
        dom(out, format_args!("loader probe failed"));
        trying(out, "Linux bzImage");
        match format {
            Format::BzImage {
                payload_len,
                compression,
                ..
            } => {
                decompressed(out, compression, payload_len, unpacked as u64);
                dom(out, format_args!("loader probe OK"));
            }
            _ => {
                dom(
                    out,
                    format_args!("xc_dom_probe_bzimage_kernel: kernel is not a bzImage"),
                );
                dom(out, format_args!("loader probe failed"));
                trying(out, "ELF-generic");
                dom(out, format_args!("loader probe OK"));
            }
        }
    }
    let params = s.parsed.params();
    if let Some(elf) = s.parsed.elf() {
        elf_lines(elf, params, out);
        dom(
            out,
            format_args!(
                "xc_dom_parse_elf_kernel: {}: {:#x} -> {:#x}",
                params.guest_type.xen_caps_name(),
                params.virt_kstart,
                params.virt_kend
            ),
        );
    }
    let pages = s.memory_mib << (20 - 12);
    dom(
        out,
        format_args!(
            "xc_dom_mem_init: mem {} MB, pages {pages:#x} pages, 4k each",
            s.memory_mib
        ),
    );
    dom(out, format_args!("xc_dom_mem_init: {pages:#x} pages"));
    dom(out, format_args!("xc_dom_boot_mem_init: called"));
    let bits = match params.guest_type {
        GuestType::X86_64 => 64,
        _ => 32,
    };
    dom(
        out,
        format_args!(
            "x86_compat: guest {}, address size {bits}",
            params.guest_type.xen_caps_name()
        ),
    );
}

/// The line(s) a bzImage payload's decoder logs on success (xg_dom_bzimageloader.c; lz4's
/// decoder logs nothing then).
fn decompressed(out: &mut Vec<String>, c: Compression, from: u64, to: u64) {
    match c {
        // The buffer's size, ISIZE + 16 (xc_dom_check_gzip), as for a ramdisk.
        Compression::Gzip => dom(
            out,
            format_args!(
                "xc_dom_do_gunzip: unzip ok, {from:#x} -> {:#x}",
                to.saturating_add(16)
            ),
        ),
        Compression::Bzip2 => {
            dom(out, format_args!("BZIP2: Saw data stream end"));
            dom(
                out,
                format_args!("xc_try_bzip2_decode: BZIP2 decompress OK, {from:#x} -> {to:#x}"),
            );
        }
        Compression::Xz | Compression::Lzma => {
            let what = if c == Compression::Xz { "XZ" } else { "LZMA" };
            dom(out, format_args!("{what}: Saw data stream end"));
            dom(
                out,
                format_args!("_xc_try_lzma_decode: {what} decompress OK, {from:#x} -> {to:#x}"),
            );
        }
        Compression::Zstd => dom(
            out,
            format_args!("xc_try_zstd_decode: ZSTD decompress OK, {from:#x} -> {to:#x}"),
        ),
        Compression::Lzo => dom(
            out,
            format_args!("xc_try_lzo1x_decode: LZO decompress OK, {from:#x} -> {to:#x}"),
        ),
        Compression::Lz4 => {}
    }
}

/// libelf's lines: loadable program headers, the image's extent, the Xen notes
/// (`elf_xen_parse_note`), the addresses (`elf_xen_addr_calc_check`).
fn elf_lines(elf: &Elf<'_>, p: &KernelParams, out: &mut Vec<String>) {
    for ph in elf.loadable() {
        xc(
            out,
            format_args!("ELF: phdr: paddr={:#x} memsz={:#x}", ph.paddr, ph.memsz),
        );
    }
    xc(
        out,
        format_args!("ELF: memory: {:#x} -> {:#x}", elf.pstart(), elf.pend()),
    );
    let mut found = 0usize;
    for ph in elf.phdrs() {
        if ph.p_type != PT_NOTE || ph.offset == 0 {
            continue;
        }
        if let Some(area) = slice(elf.bytes(), ph.offset, ph.filesz) {
            found += note_lines(area, out);
        }
    }
    if found == 0 {
        for sh in (1..elf.shnum()).filter_map(|i| elf.shdr(i)) {
            if sh.sh_type != SHT_NOTE {
                continue;
            }
            if let Some(area) = elf.section_data(&sh) {
                let mut these = Vec::new();
                let n = note_lines(area, &mut these);
                if n > 0 && found == 0 {
                    xc(out, format_args!("ELF: using notes from SHT_NOTE section"));
                }
                found += n;
                out.append(&mut these);
            }
        }
    }
    xc(out, format_args!("ELF: addresses:"));
    let rows = [
        ("virt_base", p.virt_base),
        ("elf_paddr_offset", p.elf_paddr_offset),
        ("virt_offset", p.virt_offset),
        ("virt_kstart", p.virt_kstart),
        ("virt_kend", p.virt_kend),
        ("virt_entry", p.virt_entry),
        ("p2m_base", p.p2m_base.unwrap_or(0)),
    ];
    for (name, v) in rows {
        xc(out, format_args!("    {name:<16} = {v:#x}"));
    }
}

fn slice(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

/// The notes of one area that libelf logs (those named "Xen"); returns how many.
fn note_lines(area: &[u8], out: &mut Vec<String>) -> usize {
    let mut n = 0;
    for note in notes::iter(area).map_while(Result::ok) {
        if !note.is_xen() {
            continue;
        }
        n += 1;
        let Some((name, is_str)) = note_name(note.ntype) else {
            xc(out, format_args!("ELF: note: unknown ({:#x})", note.ntype));
            continue;
        };
        if is_str {
            // elf_strval reads up to a NUL, past the descriptor if need be: Linux writes
            // FEATURES with `.ascii`, and the note's zero padding ends it.
            let end = note
                .desc
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(note.desc.len());
            let text = String::from_utf8_lossy(note.desc.get(..end).unwrap_or(&[]));
            xc(out, format_args!("ELF: note: {name} = \"{text}\""));
        } else {
            xc(
                out,
                format_args!("ELF: note: {name} = {}", c_hash_x(numeric(note.desc))),
            );
        }
    }
    n
}

/// printf's `%#x`: `0` for zero, else `0x...`.
fn c_hash_x(v: u64) -> String {
    if v == 0 {
        "0".into()
    } else {
        format!("{v:#x}")
    }
}

/// `elf_note_numeric`: a 1, 2, 4 or 8-byte little-endian descriptor, else 0.
fn numeric(desc: &[u8]) -> u64 {
    match desc.len() {
        1 | 2 | 4 | 8 => desc
            .iter()
            .rev()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b)),
        _ => 0,
    }
}

/// libelf's `note_desc` table: the name, and whether the value is a string.
fn note_name(ty: u32) -> Option<(&'static str, bool)> {
    use notes::ty::*;
    Some(match ty {
        ENTRY => ("ENTRY", false),
        HYPERCALL_PAGE => ("HYPERCALL_PAGE", false),
        VIRT_BASE => ("VIRT_BASE", false),
        INIT_P2M => ("INIT_P2M", false),
        PADDR_OFFSET => ("PADDR_OFFSET", false),
        HV_START_LOW => ("HV_START_LOW", false),
        XEN_VERSION => ("XEN_VERSION", true),
        GUEST_OS => ("GUEST_OS", true),
        GUEST_VERSION => ("GUEST_VERSION", true),
        LOADER => ("LOADER", true),
        PAE_MODE => ("PAE_MODE", true),
        FEATURES => ("FEATURES", true),
        SUPPORTED_FEATURES => ("SUPPORTED_FEATURES", false),
        BSD_SYMTAB => ("BSD_SYMTAB", true),
        SUSPEND_CANCEL => ("SUSPEND_CANCEL", false),
        MOD_START_PFN => ("MOD_START_PFN", false),
        PHYS32_ENTRY => ("PHYS32_ENTRY", false),
        _ => return None,
    })
}

/// From `xc_dom_build_image` to the p2m's segment, in allocation order.
fn build_lines(s: &Source<'_>, out: &mut Vec<String>) {
    let l = s.layout;
    dom(out, format_args!("xc_dom_build_image: called"));
    seg(out, "kernel", &l.kernel);
    if let (Some(rd), false) = (&l.ramdisk, l.ramdisk_unmapped) {
        seg(out, "module0", rd);
        gunzip(s, out);
    }
    if l.p2m_base.is_none() {
        seg(out, "phys2mach", &l.p2m);
    }
    page(out, l, "start info", l.start_info_pfn);
    page(out, l, "xenstore", l.xenstore_pfn);
    page(out, l, "console", l.console_pfn);
    pgtables(out, l, 0);
    seg(out, "page tables", &l.pgtables);
    page(out, l, "boot stack", l.bootstack_pfn);
    dom(
        out,
        format_args!(
            "{:<20}: virt_alloc_end : {:#x}",
            "xc_dom_build_image", l.virt_alloc_end
        ),
    );
    dom(
        out,
        format_args!(
            "{:<20}: virt_pgtab_end : {:#x}",
            "xc_dom_build_image", l.virt_pgtab_end
        ),
    );
    if let (Some(rd), true) = (&l.ramdisk, l.ramdisk_unmapped) {
        seg(out, "module0", rd);
        gunzip(s, out);
    }
    if l.p2m_base.is_some() {
        pgtables(out, l, 1);
        seg(out, "phys2mach", &l.p2m);
    }
}

/// `xc_dom_do_gunzip`'s line for a gzip ramdisk that unzipped.
fn gunzip(s: &Source<'_>, out: &mut Vec<String>) {
    let Some((_, blob)) = s.ramdisk else {
        return;
    };
    // libxenguest logs the size of its buffer: ISIZE + 16 (xc_dom_check_gzip).
    let to = match s.ramdisk_loaded {
        Some(Loaded::Raw { .. }) => return,
        Some(Loaded::Gunzipped { .. }) | None => module::check_gzip(blob),
    };
    if to != 0 {
        dom(
            out,
            format_args!("xc_dom_do_gunzip: unzip ok, {:#x} -> {to:#x}", blob.len()),
        );
    }
}

fn seg(out: &mut Vec<String>, name: &str, s: &Segment) {
    dom(
        out,
        format_args!(
            "{:<20}:   {:<12} : {:#x} -> {:#x}  (pfn {:#x} + {:#x} pages)",
            "xc_dom_alloc_segment", name, s.vstart, s.vend, s.pfn, s.pages
        ),
    );
}

fn page(out: &mut Vec<String>, l: &Layout, name: &str, pfn: u64) {
    dom(
        out,
        format_args!(
            "{:<20}:   {:<12} : {:#x} (pfn {:#x})",
            "xc_dom_alloc_page",
            name,
            l.pfn_vaddr(pfn).unwrap_or(0),
            pfn
        ),
    );
}

/// `count_pgtables` for mapping `m`: one line per level below the top, top down.
fn pgtables(out: &mut Vec<String>, l: &Layout, m: usize) {
    let Some(map) = l.mappings().get(m) else {
        return;
    };
    let levels: usize = match l.mode {
        pvbuild_core::paging::PagingMode::FourLevel => 4,
        pvbuild_core::paging::PagingMode::Pae => 3,
        pvbuild_core::paging::PagingMode::TwoLevel => 2,
    };
    let shift: u32 = match l.mode {
        pvbuild_core::paging::PagingMode::TwoLevel => 10,
        _ => 9,
    };
    for lv in (0..levels.saturating_sub(1)).rev() {
        let bits = 12 + (lv as u32 + 1) * shift;
        let mask = (1u64 << bits) - 1;
        let v = map.lvl(lv);
        let mut line = String::new();
        let _ = write!(
            line,
            "count_pgtables: {mask:#018x}/{bits}: {:#018x} -> {:#018x}, {} table(s)",
            v.from, v.to, v.pgtables
        );
        dom(out, format_args!("{line}"));
    }
}

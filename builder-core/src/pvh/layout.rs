//! The guest-physical layout of a PVH guest, as libxl and libxenguest lay it out.
//!
//! A PVH guest runs with paging off at first, so its image is placed at its *physical*
//! addresses (`elf_xen_parse` with `hvm`: `virt_base` and `PADDR_OFFSET` forced to 0,
//! tools/libs/guest/xg_dom_elfloader.c and xen/common/libelf/libelf-dominfo.c). The same bump
//! allocator as for PV guests (`xc_dom_alloc_segment`) then hands out, from pfn 0:
//!
//! 1. padding up to the kernel's first physical address, then the kernel;
//! 2. the modules (the ramdisk), sized as for PV (`xc_dom_build_module`);
//! 3. the "HVM start info" segment (`alloc_magic_pages_hvm`): `struct hvm_start_info`, room
//!    for two module entries and their command lines, the memory map, the command line.
//!
//! No p2m, page tables or boot stack exist. Around that, libxl (`libxl__build_hvm`) splits
//! the guest's memory around a hole below 4 GiB that holds the ACPI tables, the local APIC
//! and the eight special pages (xenstore and console rings among them): RAM is
//! `[0, lowmem_end)` and, beyond the hole, `[4 GiB, highmem_end)`.

use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::image::KernelParams;
use crate::limits::MAX_GUEST_CMDLINE;

use super::start_info::{HvmMemmapEntry, HvmModlistEntry, HvmStartInfo};

/// `X86_HVM_NR_SPECIAL_PAGES` (xenguest.h).
pub const NR_SPECIAL_PAGES: u64 = 8;
/// `X86_HVM_END_SPECIAL_REGION` (xenguest.h): the pfn after the special pages.
pub const END_SPECIAL_REGION: u64 = 0xff000;
/// libxl's `LAPIC_BASE_ADDRESS` (libxl_arch.h).
pub const LAPIC_BASE_ADDRESS: u64 = 0xfee0_0000;
/// libxl's `ACPI_INFO_PHYSICAL_ADDRESS` (libxl_arch.h): the `acpi_info` page, then the tables.
pub const ACPI_INFO_PHYSICAL_ADDRESS: u64 = 0xfc00_0000;
/// 4 GiB.
pub const GIB4: u64 = 1 << 32;

/// The special pages of `alloc_magic_pages_hvm` (`SPECIALPAGE_*`, xg_dom_x86.c), by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `SPECIALPAGE_PAGING`
    Paging = 0,
    /// `SPECIALPAGE_ACCESS`
    Access = 1,
    /// `SPECIALPAGE_SHARING`
    Sharing = 2,
    /// `SPECIALPAGE_BUFIOREQ`
    BufIoreq = 3,
    /// `SPECIALPAGE_XENSTORE`
    Xenstore = 4,
    /// `SPECIALPAGE_IOREQ`
    Ioreq = 5,
    /// `SPECIALPAGE_IDENT_PT`
    IdentPt = 6,
    /// `SPECIALPAGE_CONSOLE`
    Console = 7,
}

/// The pfn of a special page (`special_pfn(x)`).
pub const fn special_pfn(s: Special) -> u64 {
    END_SPECIAL_REGION - NR_SPECIAL_PAGES + s as u64
}

/// The first pfn of the special pages.
pub const SPECIAL_FIRST_PFN: u64 = END_SPECIAL_REGION - NR_SPECIAL_PAGES;

/// Start of the hole below 4 GiB (`libxl__build_hvm` without a device model: the lowest of
/// the special pages, the local APIC and the ACPI tables).
pub const MMIO_START: u64 = {
    let special = SPECIAL_FIRST_PFN << PAGE_SHIFT;
    let a = if special < LAPIC_BASE_ADDRESS {
        special
    } else {
        LAPIC_BASE_ADDRESS
    };
    if a < ACPI_INFO_PHYSICAL_ADDRESS {
        a
    } else {
        ACPI_INFO_PHYSICAL_ADDRESS
    }
};

/// `HVMLOADER_MODULE_MAX_COUNT`: module entries the start info segment has room for.
pub const MODULE_MAX_COUNT: u64 = 2;

/// `E820_RAM`
pub const E820_RAM: u32 = 1;
/// `E820_RESERVED`
pub const E820_RESERVED: u32 = 2;
/// `E820_ACPI`
pub const E820_ACPI: u32 = 3;

/// Why a PVH layout cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvhLayoutError {
    /// The kernel has no `XEN_ELFNOTE_PHYS32_ENTRY`: it cannot boot in an HVM container.
    NotPvh,
    /// No memory.
    NoMemory,
    /// The memory size overflows.
    MemoryTooLarge(u64),
    /// The kernel's physical range is not page aligned or inverted (`xc_dom_alloc_pad`).
    BadKernelRange {
        /// First physical address.
        start: u64,
        /// End (exclusive).
        end: u64,
    },
    /// A segment does not fit the guest's memory (`xc_dom_chk_alloc_pages`).
    SegmentTooLarge {
        /// The segment's name as libxenguest logs it.
        name: &'static str,
        /// Pages it needs.
        pages: u64,
        /// Pages the guest has.
        total_pages: u64,
    },
    /// A segment reaches into the hole below 4 GiB.
    IntoHole {
        /// The segment's name.
        name: &'static str,
        /// Its end (exclusive), a guest-physical address.
        end: u64,
    },
    /// Arithmetic overflow on a value from the image.
    Overflow,
}

impl core::fmt::Display for PvhLayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotPvh => f.write_str(
                "the kernel has no XEN_ELFNOTE_PHYS32_ENTRY: it cannot boot as a PVH guest",
            ),
            Self::NoMemory => f.write_str("the guest has no memory"),
            Self::MemoryTooLarge(m) => write!(f, "{m} MiB of memory is too much"),
            Self::BadKernelRange { start, end } => write!(
                f,
                "the kernel's physical range {start:#x}..{end:#x} is not page aligned"
            ),
            Self::SegmentTooLarge {
                name,
                pages,
                total_pages,
            } => write!(
                f,
                "segment {name} too large ({pages:#x} pages; the guest has {total_pages:#x})"
            ),
            Self::IntoHole { name, end } => write!(
                f,
                "segment {name} ends at {end:#x}, inside the hole below 4 GiB"
            ),
            Self::Overflow => f.write_str("arithmetic overflow laying out the guest"),
        }
    }
}

/// How the guest's memory is split around the hole below 4 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    total_pages: u64,
    lowmem_end: u64,
    highmem_end: u64,
    mmio_start: u64,
    vga_hole: bool,
}

/// Start of the hole below 4 GiB with a device model (`HVM_BELOW_4G_MMIO_START`: libxl's
/// default `mmio_size` is `HVM_BELOW_4G_MMIO_LENGTH`, 256 MiB).
pub const HVM_BELOW_4G_MMIO_START: u64 = 0xf000_0000;
/// The VGA hole of an HVM guest with a device model: pfns `0xa0..0xc0` are not RAM
/// (`meminit_hvm`; libxl's `LIBXL_VGA_HOLE_SIZE` pages).
pub const VGA_HOLE: (u64, u64) = (0xa0, 0xc0);

impl Memory {
    /// `memory_mib` MiB split as `libxl__build_hvm` splits it for a PVH guest.
    pub fn new(memory_mib: u64) -> Result<Self, PvhLayoutError> {
        Self::split(memory_mib, MMIO_START, false)
    }

    /// `memory_mib` MiB split around a hole starting at `mmio_start` (`libxl__build_hvm`),
    /// with the VGA hole when a device model serves the guest (`vga_hole`).
    pub fn split(memory_mib: u64, mmio_start: u64, vga_hole: bool) -> Result<Self, PvhLayoutError> {
        if memory_mib == 0 {
            return Err(PvhLayoutError::NoMemory);
        }
        let bytes = memory_mib
            .checked_mul(1 << 20)
            .filter(|b| *b < (1 << 52))
            .ok_or(PvhLayoutError::MemoryTooLarge(memory_mib))?;
        if vga_hole && bytes <= VGA_HOLE.1 << PAGE_SHIFT {
            return Err(PvhLayoutError::NoMemory);
        }
        let (lowmem_end, highmem_end) = if bytes > mmio_start {
            (mmio_start, GIB4 + (bytes - mmio_start))
        } else {
            (bytes, 0)
        };
        Ok(Self {
            total_pages: bytes >> PAGE_SHIFT,
            lowmem_end,
            highmem_end,
            mmio_start,
            vga_hole,
        })
    }
    /// Start of the hole below 4 GiB (`dom->mmio_start`).
    pub const fn mmio_start(&self) -> u64 {
        self.mmio_start
    }
    /// Whether pfns `0xa0..0xc0` are left out (a guest with a device model).
    pub const fn vga_hole(&self) -> bool {
        self.vga_hole
    }
    /// Pages of RAM (`dom->total_pages`).
    pub const fn total_pages(&self) -> u64 {
        self.total_pages
    }
    /// End of RAM below the hole (bytes).
    pub const fn lowmem_end(&self) -> u64 {
        self.lowmem_end
    }
    /// End of RAM above 4 GiB (bytes), 0 when there is none.
    pub const fn highmem_end(&self) -> u64 {
        self.highmem_end
    }
    /// The hole's size (`dom->mmio_size`).
    pub const fn mmio_size(&self) -> u64 {
        GIB4 - self.mmio_start
    }
    /// The RAM ranges, in bytes (`meminit_hvm`'s dummy vmemranges).
    pub fn ranges(&self) -> heapless::Vec<(u64, u64), 2> {
        let mut v = heapless::Vec::new();
        let _ = v.push((0, self.lowmem_end));
        if self.highmem_end > GIB4 {
            let _ = v.push((GIB4, self.highmem_end));
        }
        v
    }
    /// The p2m size in pages: the end of the highest range.
    pub fn p2m_size(&self) -> u64 {
        self.lowmem_end.max(self.highmem_end) >> PAGE_SHIFT
    }
}

/// Pages of a 2 MiB superpage.
pub const SUPERPAGE_2MB_NR_PFNS: u64 = 1 << 9;
/// Pages of a 1 GiB superpage.
pub const SUPERPAGE_1GB_NR_PFNS: u64 = 1 << 18;

/// What [`populate`] allocated, as `meminit_hvm` logs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PopulateStats {
    /// 4 KiB pages.
    pub normal: u64,
    /// 2 MiB extents.
    pub mb2: u64,
    /// 1 GiB extents.
    pub gb1: u64,
}

/// Populates the guest's RAM as `meminit_hvm` does (with a device model, pfns below the VGA
/// hole first and RAM from pfn 0xc0 on): each range in
/// runs of at most 1 GiB, trying 1 GiB extents where aligned and clear of the hole, then
/// up to four 2 MiB extents where aligned, then 4 KiB pages. `alloc(order, first_gfn, n)`
/// asks Xen for `n` extents of `2^order` pages at `first_gfn + i << order` and returns how
/// many it got (superpages may fall short; 4 KiB pages must all succeed, or it errs).
pub fn populate<E>(
    mem: &Memory,
    alloc: &mut dyn FnMut(u32, u64, u64) -> Result<u64, E>,
) -> Result<PopulateStats, E> {
    let mut st = PopulateStats::default();
    let hole = (mem.mmio_start, GIB4);
    if mem.vga_hole {
        // The 0xa0 pages below the VGA hole first, one by one (populate_physmap_exact).
        alloc(0, 0, VGA_HOLE.0)?;
    }
    for (start, end) in mem.ranges() {
        let end_pages = end >> PAGE_SHIFT;
        let mut cur = start >> PAGE_SHIFT;
        if start == 0 && mem.vga_hole {
            // meminit_hvm counts the VGA hole's 0x20 pages among the 4 KiB ones.
            cur = VGA_HOLE.1;
            st.normal += VGA_HOLE.1;
        }
        while end_pages > cur {
            let mut count = (end_pages - cur).min(SUPERPAGE_1GB_NR_PFNS);
            let cur_pfn = cur;
            let m1 = SUPERPAGE_1GB_NR_PFNS - 1;
            let to_1g = cur_pfn.wrapping_neg() & m1;
            if cur_pfn & m1 != 0 && count > to_1g {
                count = to_1g;
            } else if count & m1 != 0 && count > SUPERPAGE_1GB_NR_PFNS {
                count &= !m1;
            }
            let bytes = cur_pfn << PAGE_SHIFT;
            let overlaps =
                !(bytes + (SUPERPAGE_1GB_NR_PFNS << PAGE_SHIFT) <= hole.0 || bytes >= hole.1);
            if (count | cur_pfn) & m1 == 0 && !overlaps {
                let done = alloc(18, cur, count >> 18)?;
                st.gb1 += done;
                cur += done << 18;
                count -= done << 18;
            }
            if count != 0 {
                count = count.min(SUPERPAGE_2MB_NR_PFNS * 4);
                let m2 = SUPERPAGE_2MB_NR_PFNS - 1;
                let to_2m = cur_pfn.wrapping_neg() & m2;
                if cur_pfn & m2 != 0 && count > to_2m {
                    count = to_2m;
                } else if count & m2 != 0 && count > SUPERPAGE_2MB_NR_PFNS {
                    count &= !m2;
                }
                if (count | cur_pfn) & m2 == 0 {
                    let done = alloc(9, cur, count >> 9)?;
                    st.mb2 += done;
                    cur += done << 9;
                    count -= done << 9;
                }
            }
            if count != 0 {
                alloc(0, cur, count)?;
                cur += count;
                st.normal += count;
            }
        }
    }
    Ok(st)
}

/// One allocated segment (`struct xc_dom_seg`): guest-physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    /// libxenguest's name for it ("kernel", "module0", "HVM start info").
    pub name: &'static str,
    /// First byte.
    pub vstart: u64,
    /// End (exclusive) of its contents.
    pub vend: u64,
    /// First pfn.
    pub pfn: u64,
    /// Pages.
    pub pages: u64,
}

/// The solved layout of a PVH guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhLayout {
    /// The RAM split.
    pub memory: Memory,
    /// The kernel's physical entry point (`PHYS32_ENTRY`).
    pub entry: u32,
    /// The kernel.
    pub kernel: Seg,
    /// The ramdisk, if any.
    pub module: Option<Seg>,
    /// The start info segment.
    pub start_info: Seg,
    /// `cmdline_size`: bytes of the command line's slot in the start info segment (0 when
    /// there is no command line).
    pub cmdline_size: u64,
    /// The allocator's end after the start info (`virt_alloc_end` as logged).
    pub virt_alloc_end: u64,
}

/// The bump allocator (`xc_dom_alloc_segment`, `xc_dom_chk_alloc_pages`, `xc_dom_alloc_pad`)
/// with `virt_base` 0: virtual and physical cursors coincide.
pub(crate) struct Alloc {
    pub(crate) total_pages: u64,
    pub(crate) end: u64,
}

impl Alloc {
    fn chk(&mut self, name: &'static str, pages: u64) -> Result<(), PvhLayoutError> {
        let used = self.end >> PAGE_SHIFT;
        if pages > self.total_pages || used > self.total_pages || pages > self.total_pages - used {
            return Err(PvhLayoutError::SegmentTooLarge {
                name,
                pages,
                total_pages: self.total_pages,
            });
        }
        self.end = pages
            .checked_mul(PAGE_SIZE)
            .and_then(|b| self.end.checked_add(b))
            .ok_or(PvhLayoutError::Overflow)?;
        Ok(())
    }

    pub(crate) fn segment(
        &mut self,
        name: &'static str,
        start: u64,
        size: u64,
    ) -> Result<Seg, PvhLayoutError> {
        if start != 0 {
            if start & (PAGE_SIZE - 1) != 0 || start < self.end {
                return Err(PvhLayoutError::BadKernelRange {
                    start,
                    end: start.saturating_add(size),
                });
            }
            self.chk("padding", (start - self.end) >> PAGE_SHIFT)?;
        }
        let pages = size.div_ceil(PAGE_SIZE);
        let vstart = self.end;
        self.chk(name, pages)?;
        Ok(Seg {
            name,
            vstart,
            vend: vstart.checked_add(size).ok_or(PvhLayoutError::Overflow)?,
            pfn: vstart >> PAGE_SHIFT,
            pages,
        })
    }
}

/// Bytes of the start info segment (`alloc_magic_pages_hvm`): the struct, two module
/// entries, two module command lines, the memory map, and the command line rounded up to 8.
pub fn start_info_size(e820_entries: u64, cmdline_size: u64) -> u64 {
    core::mem::size_of::<HvmStartInfo>() as u64
        + core::mem::size_of::<HvmModlistEntry>() as u64 * MODULE_MAX_COUNT
        + MAX_GUEST_CMDLINE as u64 * MODULE_MAX_COUNT
        + e820_entries * core::mem::size_of::<HvmMemmapEntry>() as u64
        + cmdline_size
}

/// `dom->cmdline_size`: `ROUNDUP(strlen(cmdline) + 1, 3)`, 0 without a command line.
pub fn cmdline_size(cmdline: Option<&[u8]>) -> u64 {
    match cmdline {
        Some(c) => (c.len() as u64 + 1).next_multiple_of(8),
        None => 0,
    }
}

/// Solves the layout of a PVH guest: `params` are the kernel's, `module_len` the segment
/// length of its ramdisk ([`crate::module::segment_len`]), `cmdline` its command line (None
/// when libxl would pass none), `e820_entries` the number of memory-map entries.
pub fn solve(
    params: &KernelParams,
    memory: Memory,
    module_len: Option<u64>,
    cmdline: Option<&[u8]>,
    e820_entries: u64,
) -> Result<PvhLayout, PvhLayoutError> {
    let entry = params.phys_entry.ok_or(PvhLayoutError::NotPvh)?;
    // The physical range: what the PV parse put at `virt_kstart..virt_kend` sits at
    // `virt_kstart - virt_offset` (elf_xen_addr_calc_check with `hvm`: offset 0).
    let start = params
        .virt_kstart
        .checked_sub(params.virt_offset)
        .ok_or(PvhLayoutError::Overflow)?;
    let end = params
        .virt_kend
        .checked_sub(params.virt_offset)
        .ok_or(PvhLayoutError::Overflow)?;
    if end < start {
        return Err(PvhLayoutError::BadKernelRange { start, end });
    }
    let mut a = Alloc {
        total_pages: memory.total_pages,
        end: 0,
    };
    let kernel = a.segment("kernel", start, end - start)?;
    // A kernel that takes its modules by pfn (`MOD_START_PFN`) gets them after the start
    // info, in `xc_dom_build_image`'s second module loop; others right after the kernel.
    let mut module = None;
    if let (Some(len), false) = (module_len, params.unmapped_initrd) {
        module = Some(a.segment("module0", 0, len)?);
    }
    let cmdline_size = cmdline_size(cmdline);
    let start_info = a.segment(
        "HVM start info",
        0,
        start_info_size(e820_entries, cmdline_size),
    )?;
    let virt_alloc_end = a.end;
    if let (Some(len), true) = (module_len, params.unmapped_initrd) {
        module = Some(a.segment("module0", 0, len)?);
    }
    for s in [Some(&kernel), module.as_ref(), Some(&start_info)]
        .into_iter()
        .flatten()
    {
        let seg_end = s.pfn.checked_add(s.pages).ok_or(PvhLayoutError::Overflow)? << PAGE_SHIFT;
        if seg_end > memory.lowmem_end {
            return Err(PvhLayoutError::IntoHole {
                name: s.name,
                end: seg_end,
            });
        }
    }
    Ok(PvhLayout {
        memory,
        entry,
        kernel,
        module,
        start_info,
        cmdline_size,
        virt_alloc_end,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hole_starts_at_the_acpi_tables() {
        // libxl: min(special pages 0xfeff8000, LAPIC 0xfee00000, ACPI 0xfc000000).
        assert_eq!(MMIO_START, 0xfc00_0000);
        assert_eq!(special_pfn(Special::Xenstore), 0xfeffc);
        assert_eq!(special_pfn(Special::Console), 0xfefff);
    }

    #[test]
    fn memory_split_around_the_hole() {
        let m = Memory::new(256).unwrap();
        assert_eq!((m.lowmem_end(), m.highmem_end()), (0x1000_0000, 0));
        let m = Memory::new(4096).unwrap();
        assert_eq!(m.lowmem_end(), 0xfc00_0000);
        assert_eq!(m.highmem_end(), GIB4 + 0x400_0000);
        assert_eq!(m.ranges().len(), 2);
        assert!(Memory::new(0).is_err());
    }

    #[test]
    fn populate_256_mib_in_2_mib_extents() {
        let m = Memory::new(256).unwrap();
        let mut calls = heapless::Vec::<(u32, u64, u64), 64>::new();
        let st = populate::<()>(&m, &mut |o, g, n| {
            let _ = calls.push((o, g, n));
            Ok(n)
        })
        .unwrap();
        assert_eq!(
            st,
            PopulateStats {
                normal: 0,
                mb2: 128,
                gb1: 0
            }
        );
        assert_eq!(calls.first(), Some(&(9, 0, 4)));
        assert_eq!(calls.len(), 32);
    }

    #[test]
    fn populate_falls_back_to_4k() {
        let m = Memory::new(4).unwrap();
        let st = populate::<()>(&m, &mut |o, _, n| Ok(if o == 0 { n } else { 0 })).unwrap();
        assert_eq!(st.normal, 1024);
        assert_eq!(st.mb2, 0);
    }

    #[test]
    fn start_info_size_matches_libxenguest() {
        // 56 + 2*32 + 2*1024 + 5*24 + 40
        assert_eq!(start_info_size(5, 40), 56 + 64 + 2048 + 120 + 40);
        assert_eq!(cmdline_size(Some(b"console=hvc0")), 16);
        assert_eq!(cmdline_size(Some(b"1234567")), 8);
        assert_eq!(cmdline_size(None), 0);
    }
}

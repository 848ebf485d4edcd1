//! The guest's initial virtual layout, solved as libxenguest solves it for PV guests.
//!
//! libxenguest (`xc_dom_build_image`, tools/libs/guest/xg_dom_core.c, and the x86 hooks in
//! xg_dom_x86.c) hands out guest pages with a bump allocator that keeps a virtual cursor
//! (`virt_alloc_end`, starting at `virt_base`) and a pfn cursor (`pfn_alloc_end`, starting
//! at 0) in step. In order it places:
//!
//! 1. the kernel at `virt_kstart` (the pages between `virt_base` and it are padding);
//! 2. modules the kernel wants mapped (all of them, unless it has `MOD_START_PFN`);
//! 3. the p2m list, unless the kernel has `INIT_P2M` (a `p2m_base` below `virt_base`);
//! 4. the start_info, xenstore and console pages;
//! 5. the page tables, whose number depends on `v_end` while `v_end` depends on them: the
//!    smallest 4 MiB boundary that leaves room for the tables, the boot stack and 512 KiB;
//! 6. the boot stack; then padding up to that boundary (`virt_pgtab_end`, the end of the
//!    initial mapping);
//! 7. modules taken by pfn (`MOD_START_PFN`), unmapped;
//! 8. with `INIT_P2M`, the p2m list and the page tables of its own mapping at `p2m_base`.
//!
//! [`solve`] is a pure function of the kernel's [`KernelParams`] and a [`LayoutRequest`];
//! all arithmetic is checked, and a layout that does not fit the memory or reaches into the
//! hypervisor's part of the address space is refused.

use crate::addr::{Pfn, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::image::{GuestType, KernelParams};
use crate::paging::PagingMode;

/// Number of initial mappings libxenguest supports (`MAPPING_MAX`).
pub const MAPPING_MAX: usize = 2;
/// Padding the page-table solver keeps free at the end of the initial mapping (512 KiB).
pub const PGTAB_SLACK_PAGES: u64 = (512 * 1024) / PAGE_SIZE;
/// Alignment of the end of the initial mapping: `round_up(.., bits_to_mask(22))`.
pub const VIRT_END_ALIGN_MASK: u64 = (1 << 22) - 1;
/// `SIF_MOD_START_PFN`: `mod_start` is a pfn.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: the tools understand a virtually mapped p2m. libxenguest's
/// `xc_dom_allocate` sets it, but libxl's `libxl__build_pv` then overwrites `dom->flags` with
/// its own `flags = 0`, so a guest built by xl never has it; pvbuild, built as xl builds,
/// never sets it either (the built-memory scenario compares start_info with xl's).
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// Start of the 64-bit hypervisor area (`HYPERVISOR_VIRT_START`, x86_64).
pub const HV_START_X86_64: u64 = 0xffff_8000_0000_0000;
/// End (exclusive) of the 64-bit hypervisor area (`HYPERVISOR_VIRT_END`, x86_64).
pub const HV_END_X86_64: u64 = 0xffff_8800_0000_0000;
/// Default start of the hypervisor area of a 32-bit PAE guest on 64-bit Xen
/// (`HYPERVISOR_COMPAT_VIRT_START` default) when the kernel has no `HV_START_LOW` note.
pub const HV_START_X86_32_PAE: u64 = 0xf580_0000;
/// Start of the hypervisor area of a legacy 2-level guest (`HYPERVISOR_VIRT_START`, x86_32).
pub const HV_START_X86_32: u64 = 0xfc00_0000;

/// Why a layout cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// No memory at all.
    NoMemory,
    /// A segment start that is not page aligned (`xc_dom_alloc_pad`).
    Unaligned(u64),
    /// A segment start below the allocation cursor, e.g. `virt_kstart < virt_base`.
    BoundaryTooLow {
        /// The requested start.
        boundary: u64,
        /// The cursor.
        virt_alloc_end: u64,
    },
    /// A segment does not fit the guest's memory (`xc_dom_chk_alloc_pages`).
    SegmentTooLarge {
        /// The segment's name as libxenguest logs it.
        name: &'static str,
        /// Pages it needs.
        pages: u64,
        /// Pages the guest has.
        total_pages: u64,
        /// Pages already handed out.
        used: u64,
    },
    /// The initial mapping covers more pfns than the guest has (`count_pgtables`).
    MappingTooLarge {
        /// Last pfn the mapping would cover.
        pfn_end: u64,
        /// Pages the guest has.
        p2m_size: u64,
    },
    /// More than [`MAPPING_MAX`] mappings.
    TooManyMappings,
    /// The INIT_P2M mapping overlaps the initial mapping.
    OverlappingMappings,
    /// A mapped range reaches into the hypervisor's area or is not canonical.
    HypervisorArea {
        /// Start of the guest range.
        start: u64,
        /// End (exclusive) of the guest range.
        end: u64,
    },
    /// The kernel's image range is empty or inverted.
    BadKernelRange {
        /// `virt_kstart`
        start: u64,
        /// `virt_kend`
        end: u64,
    },
    /// Address arithmetic overflowed.
    Overflow,
}

/// What the caller adds to the kernel: memory size and the ramdisk's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutRequest {
    /// Pages of guest memory (`total_pages`, also the p2m size).
    pub nr_pages: u64,
    /// Length in bytes of the ramdisk's segment (see [`module_segment_len`]), if any.
    pub ramdisk_len: Option<u64>,
}

/// A run of guest pages and the virtual range libxenguest logs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// First virtual address (`seg->vstart`).
    pub vstart: u64,
    /// End (exclusive) as logged: `vstart + size in bytes`, not rounded to a page.
    pub vend: u64,
    /// First pfn.
    pub pfn: u64,
    /// Number of pages.
    pub pages: u64,
}

impl Segment {
    /// The first pfn as a checked frame number.
    pub fn first_pfn(&self) -> Result<Pfn, LayoutError> {
        Pfn::new(self.pfn).map_err(|_| LayoutError::Overflow)
    }
    /// Whether `pfn` lies in the segment's pages.
    pub fn contains_pfn(&self, pfn: u64) -> bool {
        pfn >= self.pfn && pfn - self.pfn < self.pages
    }
}

/// One level of a mapping (`struct xc_dom_x86_mapping_lvl`): the (masked) virtual range its
/// tables cover, the first pfn of those tables and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MappingLevel {
    /// First virtual address covered (masked to the mode's address bits).
    pub from: u64,
    /// Last virtual address covered (inclusive).
    pub to: u64,
    /// First pfn (for `area`: of the mapped pages; for a level: of its tables).
    pub pfn: u64,
    /// Number of tables at this level (for `area`: of all levels).
    pub pgtables: u64,
}

/// One initial mapping (`struct xc_dom_x86_mapping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mapping {
    /// The mapped range, its first pfn and its total number of tables.
    pub area: MappingLevel,
    /// Per level, 0 = L1.
    pub lvls: [MappingLevel; 4],
}

impl Mapping {
    /// Level `l` (0 = L1); a default (empty) level beyond the fourth.
    pub fn lvl(&self, l: usize) -> MappingLevel {
        self.lvls.get(l).copied().unwrap_or_default()
    }
    fn set_lvl(&mut self, l: usize, v: MappingLevel) -> Result<(), LayoutError> {
        *self.lvls.get_mut(l).ok_or(LayoutError::Overflow)? = v;
        Ok(())
    }
}

/// The solved layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Guest ABI.
    pub guest_type: GuestType,
    /// Paging mode.
    pub mode: PagingMode,
    /// Pages of memory (and p2m entries).
    pub nr_pages: u64,
    /// `VIRT_BASE`.
    pub virt_base: u64,
    /// Entry point.
    pub virt_entry: u64,
    /// Hypercall page, if the kernel has one.
    pub virt_hypercall: Option<u64>,
    /// The kernel segment.
    pub kernel: Segment,
    /// The ramdisk (module 0) segment.
    pub ramdisk: Option<Segment>,
    /// Whether the ramdisk is handed over by pfn, outside the initial mapping.
    pub ramdisk_unmapped: bool,
    /// The p2m segment (with INIT_P2M, its mapping's page tables follow the list in it).
    pub p2m: Segment,
    /// Pages of the p2m list proper.
    pub p2m_list_pages: u64,
    /// Virtual address of the p2m list in the guest (`mfn_list`): `p2m_base` with
    /// INIT_P2M, else the segment's start.
    pub p2m_vaddr: u64,
    /// `p2m_base`, when the p2m has its own mapping.
    pub p2m_base: Option<u64>,
    /// The start_info page's pfn.
    pub start_info_pfn: u64,
    /// The xenstore ring's pfn.
    pub xenstore_pfn: u64,
    /// The console ring's pfn.
    pub console_pfn: u64,
    /// The page-table segment of the initial mapping.
    pub pgtables: Segment,
    /// The boot stack's pfn.
    pub bootstack_pfn: u64,
    /// `virt_alloc_end` after the boot stack, as logged.
    pub virt_alloc_end: u64,
    /// End (exclusive) of the initial mapping, `virt_pgtab_end` (v_end).
    pub virt_pgtab_end: u64,
    /// Pfns handed out in total.
    pub pfn_alloc_end: u64,
    /// The mappings; `n_mappings` of them are used.
    pub maps: [Mapping; MAPPING_MAX],
    /// Number of mappings used (1, or 2 with INIT_P2M).
    pub n_mappings: usize,
    /// `SIF_*` flags libxenguest sets.
    pub flags: u32,
    /// `mod_start` (virtual address, or pfn with `SIF_MOD_START_PFN`), 0 without ramdisk.
    pub mod_start: u64,
    /// `mod_len`, 0 without ramdisk.
    pub mod_len: u64,
}

impl Layout {
    /// The mappings in use.
    pub fn mappings(&self) -> &[Mapping] {
        self.maps.get(..self.n_mappings).unwrap_or(&[])
    }
    /// Number of page-table frames of the initial mapping (`nr_pt_frames`).
    pub fn nr_pt_frames(&self) -> u64 {
        self.maps.first().map_or(0, |m| m.area.pgtables)
    }
    /// The top-level table's pfn (cr3, and the table to pin).
    pub fn top_table_pfn(&self) -> Result<Pfn, LayoutError> {
        self.pgtables.first_pfn()
    }
    /// The hypercall page's pfn, if any.
    pub fn hypercall_pfn(&self) -> Option<u64> {
        self.virt_hypercall
            .and_then(|v| v.checked_sub(self.virt_base))
            .map(|off| off >> PAGE_SHIFT)
    }
    /// The virtual address of `pfn` inside the initial mapping.
    pub fn pfn_vaddr(&self, pfn: u64) -> Option<u64> {
        pfn.checked_mul(PAGE_SIZE)
            .and_then(|o| self.virt_base.checked_add(o))
    }
    /// Whether `pfn` is a page-table frame of any mapping (mapped read-only).
    pub fn is_pagetable_pfn(&self, pfn: u64) -> bool {
        let top = self.mode.levels() - 1;
        self.mappings().iter().any(|m| {
            let s = m.lvl(top).pfn;
            pfn >= s && pfn - s < m.area.pgtables
        })
    }
    /// First p2m pfn and number of frames for start_info (INIT_P2M only, else zeros).
    pub fn p2m_frames(&self) -> (u64, u64) {
        if self.p2m_base.is_some() {
            (self.p2m.pfn, self.p2m.pages)
        } else {
            (0, 0)
        }
    }
}

/// Bytes `xc_dom_check_gzip` adds to a gzip module's claimed size.
pub const GZIP_MODULE_SLACK: u64 = 16;

/// The length of a module's segment, as `xc_dom_build_module` sizes it: a gzip blob gets
/// the larger of its size and what `xc_dom_check_gzip` returns, the decompressed size its
/// trailer claims plus 16 bytes (unless that claim exceeds the 1 GiB decompression limit,
/// when the blob is taken as is). The 16 bytes are libxenguest's slack for the unpacking;
/// they show in its log, where a gzip ramdisk's segment ends 16 bytes after its unpacked
/// size (the reference log's module0 of 0x1e4410 bytes holds 0x1e4400 unpacked bytes).
pub fn module_segment_len(blob: &[u8]) -> u64 {
    crate::module::segment_len(blob)
}

/// The bump allocator of `struct xc_dom_image`.
struct Alloc {
    mode: PagingMode,
    total_pages: u64,
    virt_alloc_end: u64,
    pfn_alloc_end: u64,
    maps: [Mapping; MAPPING_MAX],
    n_mappings: usize,
}

fn ovf<T>(v: Option<T>) -> Result<T, LayoutError> {
    v.ok_or(LayoutError::Overflow)
}

impl Alloc {
    /// `xc_dom_chk_alloc_pages`
    fn chk_alloc_pages(&mut self, name: &'static str, pages: u64) -> Result<(), LayoutError> {
        let used = self.pfn_alloc_end;
        if pages > self.total_pages || used > self.total_pages || pages > self.total_pages - used {
            return Err(LayoutError::SegmentTooLarge {
                name,
                pages,
                total_pages: self.total_pages,
                used,
            });
        }
        self.pfn_alloc_end += pages;
        let bytes = ovf(pages.checked_mul(PAGE_SIZE))?;
        self.virt_alloc_end = ovf(self.virt_alloc_end.checked_add(bytes))?;
        Ok(())
    }

    /// `xc_dom_alloc_pad`
    fn pad(&mut self, boundary: u64) -> Result<(), LayoutError> {
        if boundary % PAGE_SIZE != 0 {
            return Err(LayoutError::Unaligned(boundary));
        }
        if boundary < self.virt_alloc_end {
            return Err(LayoutError::BoundaryTooLow {
                boundary,
                virt_alloc_end: self.virt_alloc_end,
            });
        }
        let pages = (boundary - self.virt_alloc_end) / PAGE_SIZE;
        self.chk_alloc_pages("padding", pages)
    }

    /// `xc_dom_alloc_segment`
    fn segment(
        &mut self,
        name: &'static str,
        start: u64,
        size: u64,
    ) -> Result<Segment, LayoutError> {
        if start != 0 {
            self.pad(start)?;
        }
        let pages = ovf(size.checked_add(PAGE_SIZE - 1))? / PAGE_SIZE;
        let vstart = self.virt_alloc_end;
        let pfn = self.pfn_alloc_end;
        self.chk_alloc_pages(name, pages)?;
        Ok(Segment {
            vstart,
            vend: ovf(vstart.checked_add(size))?,
            pfn,
            pages,
        })
    }

    /// `xc_dom_alloc_page`
    fn page(&mut self, name: &'static str) -> Result<u64, LayoutError> {
        let pfn = self.pfn_alloc_end;
        self.chk_alloc_pages(name, 1)?;
        Ok(pfn)
    }

    /// `count_pgtables`: the tables mapping `[from, to]` (inclusive) to pfns from `pfn`,
    /// described in `maps[n_mappings]` (not yet counted as used).
    fn count_pgtables(&mut self, from: u64, to: u64, pfn: u64) -> Result<(), LayoutError> {
        let mode = self.mode;
        let levels = mode.levels();
        let mask_v = mode.vaddr_mask();
        if self.n_mappings >= MAPPING_MAX {
            return Err(LayoutError::TooManyMappings);
        }
        let span = ovf(to.checked_sub(from))?;
        let pfn_end = ovf(pfn.checked_add(span >> PAGE_SHIFT))?;
        if pfn_end >= self.total_pages {
            return Err(LayoutError::MappingTooLarge {
                pfn_end,
                p2m_size: self.total_pages,
            });
        }
        let (done, _) = self.maps.split_at(self.n_mappings);
        for cmp in done {
            if from < cmp.area.to && to > cmp.area.from {
                return Err(LayoutError::OverlappingMappings);
            }
        }
        let mut map = Mapping::default();
        map.area.from = from & mask_v;
        map.area.to = to & mask_v;
        for l in (0..levels).rev() {
            let mut cur = MappingLevel {
                pfn: ovf(self.pfn_alloc_end.checked_add(map.area.pgtables))?,
                ..MappingLevel::default()
            };
            if l == levels - 1 {
                // The top-level table belongs to the first mapping only.
                if self.n_mappings == 0 {
                    cur.from = 0;
                    cur.to = mask_v;
                    cur.pgtables = 1;
                    map.area.pgtables += 1;
                }
                map.set_lvl(l, cur)?;
                continue;
            }
            let bits = PAGE_SHIFT + (l as u32 + 1) * mode.level_shift();
            let mask = (1u64 << bits) - 1;
            cur.from = map.area.from & !mask;
            cur.to = map.area.to | mask;
            if mode == PagingMode::Pae && self.n_mappings == 0 && to < 0xc000_0000 && l == 1 {
                // "PAE: extra l2 page table for l3#3"
                cur.to = mask_v;
            }
            for cmp in done {
                let c = cmp.lvl(l);
                if c.from == c.to {
                    continue;
                }
                if cur.from >= c.from && cur.to <= c.to {
                    cur.from = 0;
                    cur.to = 0;
                    break;
                }
                if cur.from >= c.from && cur.from <= c.to {
                    cur.from = ovf(c.to.checked_add(1))?;
                }
                if cur.to >= c.from && cur.to <= c.to {
                    cur.to = ovf(c.from.checked_sub(1))?;
                }
            }
            if cur.from < cur.to {
                cur.pgtables = ((cur.to - cur.from) >> bits) + 1;
            }
            map.area.pgtables += cur.pgtables;
            map.set_lvl(l, cur)?;
        }
        if let Some(slot) = self.maps.get_mut(self.n_mappings) {
            *slot = map;
        }
        Ok(())
    }

    /// `alloc_pgtables_pv`: the v_end / nr_pt_pages fixed point, then the segment.
    fn pgtables(&mut self, virt_base: u64) -> Result<(Segment, u64), LayoutError> {
        let extra_pages = 1 + PGTAB_SLACK_PAGES; // boot stack + 512 KiB
        let mut pages = extra_pages;
        let idx = self.n_mappings;
        let try_virt_end = loop {
            let end = ovf(pages
                .checked_mul(PAGE_SIZE)
                .and_then(|b| self.virt_alloc_end.checked_add(b)))?
                | VIRT_END_ALIGN_MASK;
            self.count_pgtables(virt_base, end, 0)?;
            let tables = self.maps.get(idx).map_or(0, |m| m.area.pgtables);
            pages = tables + extra_pages;
            let need = ovf(pages
                .checked_mul(PAGE_SIZE)
                .and_then(|b| self.virt_alloc_end.checked_add(b)))?;
            if need <= ovf(end.checked_add(1))? {
                break end;
            }
        };
        let tables = match self.maps.get_mut(idx) {
            Some(m) => {
                m.area.pfn = 0;
                m.area.pgtables
            }
            None => return Err(LayoutError::TooManyMappings),
        };
        self.n_mappings += 1;
        let v_end = ovf(try_virt_end.checked_add(1))?;
        let seg = self.segment("page tables", 0, ovf(tables.checked_mul(PAGE_SIZE))?)?;
        Ok((seg, v_end))
    }

    /// `alloc_p2m_list_x86_*`: the p2m segment, and with `p2m_base` its own mapping.
    fn p2m_list(
        &mut self,
        p2m_base: Option<u64>,
        entry_size: u64,
    ) -> Result<(Segment, u64), LayoutError> {
        let bytes = ovf(self.total_pages.checked_mul(entry_size))?;
        let mut size = ovf(bytes.checked_add(PAGE_SIZE - 1))? & !(PAGE_SIZE - 1);
        let list_pages = size / PAGE_SIZE;
        if let Some(from) = p2m_base {
            let to = ovf(from.checked_add(size).and_then(|e| e.checked_sub(1)))?;
            let pfn = self.pfn_alloc_end;
            self.count_pgtables(from, to, pfn)?;
            let idx = self.n_mappings;
            let tables = match self.maps.get_mut(idx) {
                Some(m) => {
                    m.area.pfn = pfn;
                    for lvl in m.lvls.iter_mut() {
                        lvl.pfn = ovf(lvl.pfn.checked_add(list_pages))?;
                    }
                    m.area.pgtables
                }
                None => return Err(LayoutError::TooManyMappings),
            };
            self.n_mappings += 1;
            size = ovf(tables
                .checked_mul(PAGE_SIZE)
                .and_then(|t| size.checked_add(t)))?;
        }
        Ok((self.segment("phys2mach", 0, size)?, list_pages))
    }
}

/// Check that `[start, end)` stays clear of the hypervisor's part of the address space.
fn check_guest_range(
    guest: GuestType,
    hv_start_low: Option<u64>,
    start: u64,
    end: u64,
) -> Result<(), LayoutError> {
    let bad = LayoutError::HypervisorArea { start, end };
    match guest {
        GuestType::X86_64 => {
            // Canonical halves only, and not the range Xen reserves for itself.
            let last = end.checked_sub(1).ok_or(bad)?;
            let canonical = |v: u64| !(0x0000_8000_0000_0000..0xffff_8000_0000_0000).contains(&v);
            let same_half = (start < 0x0000_8000_0000_0000) == (last < 0x0000_8000_0000_0000);
            if !canonical(start) || !canonical(last) || !same_half {
                return Err(bad);
            }
            if start < HV_END_X86_64 && end > HV_START_X86_64 {
                return Err(bad);
            }
        }
        GuestType::X86_32Pae | GuestType::X86_32 => {
            let default = if guest == GuestType::X86_32Pae {
                HV_START_X86_32_PAE
            } else {
                HV_START_X86_32
            };
            let limit = hv_start_low.map_or(default, |h| h.min(default));
            if end > limit {
                return Err(bad);
            }
        }
    }
    Ok(())
}

/// Solve the layout of a PV guest, as `xc_dom_build_image` does.
pub fn solve(params: &KernelParams, req: &LayoutRequest) -> Result<Layout, LayoutError> {
    if req.nr_pages == 0 {
        return Err(LayoutError::NoMemory);
    }
    if params.virt_kend <= params.virt_kstart {
        return Err(LayoutError::BadKernelRange {
            start: params.virt_kstart,
            end: params.virt_kend,
        });
    }
    let guest_type = params.guest_type;
    let mode = PagingMode::of(guest_type);
    let mut a = Alloc {
        mode,
        total_pages: req.nr_pages,
        virt_alloc_end: params.virt_base,
        pfn_alloc_end: 0,
        maps: [Mapping::default(); MAPPING_MAX],
        n_mappings: 0,
    };

    let kernel = a.segment(
        "kernel",
        params.virt_kstart,
        params.virt_kend - params.virt_kstart,
    )?;

    let unmapped = params.unmapped_initrd;
    let mut ramdisk = None;
    if let (Some(len), false) = (req.ramdisk_len, unmapped) {
        ramdisk = Some(a.segment("module0", 0, len)?);
    }

    // INIT_P2M only for 64-bit guests, below virt_base and page aligned.
    let p2m_base = params
        .p2m_base
        .filter(|&b| guest_type == GuestType::X86_64 && b < params.virt_base && b % PAGE_SIZE == 0);
    let entry_size = guest_type.p2m_entry_size();
    let mut p2m = None;
    if p2m_base.is_none() {
        p2m = Some(a.p2m_list(None, entry_size)?);
    }

    let start_info_pfn = a.page("start info")?;
    let xenstore_pfn = a.page("xenstore")?;
    let console_pfn = a.page("console")?;
    let (pgtables, virt_pgtab_end) = a.pgtables(params.virt_base)?;
    let bootstack_pfn = a.page("boot stack")?;
    let virt_alloc_end = a.virt_alloc_end;
    a.pad(virt_pgtab_end)?;
    check_guest_range(
        guest_type,
        params.virt_hv_start_low,
        params.virt_base,
        virt_pgtab_end,
    )?;

    // libxl__build_pv's `dom->flags = flags` (0): see SIF_VIRT_P2M_4TOOLS.
    let mut flags = 0;
    let (mut mod_start, mut mod_len) = (0, 0);
    if let Some(seg) = ramdisk {
        mod_start = seg.vstart;
        mod_len = seg.vend - seg.vstart;
    }
    if let (Some(len), true) = (req.ramdisk_len, unmapped) {
        let seg = a.segment("module0", 0, len)?;
        flags |= SIF_MOD_START_PFN;
        mod_start = seg.pfn;
        mod_len = ovf(seg.pages.checked_mul(PAGE_SIZE))?;
        ramdisk = Some(seg);
    }

    let (p2m, p2m_list_pages) = match p2m {
        Some(p) => p,
        None => a.p2m_list(p2m_base, entry_size)?,
    };
    let p2m_vaddr = match p2m_base {
        Some(base) => {
            let bytes = ovf(p2m_list_pages.checked_mul(PAGE_SIZE))?;
            check_guest_range(guest_type, None, base, ovf(base.checked_add(bytes))?)?;
            base
        }
        None => p2m.vstart,
    };

    Ok(Layout {
        guest_type,
        mode,
        nr_pages: req.nr_pages,
        virt_base: params.virt_base,
        virt_entry: params.virt_entry,
        virt_hypercall: params.virt_hypercall,
        kernel,
        ramdisk,
        ramdisk_unmapped: unmapped && ramdisk.is_some(),
        p2m,
        p2m_list_pages,
        p2m_vaddr,
        p2m_base,
        start_info_pfn,
        xenstore_pfn,
        console_pfn,
        pgtables,
        bootstack_pfn,
        virt_alloc_end,
        virt_pgtab_end,
        pfn_alloc_end: a.pfn_alloc_end,
        maps: a.maps,
        n_mappings: a.n_mappings,
        flags,
        mod_start,
        mod_len,
    })
}

/// The virtual address of the first byte after `pfn`'s page (the boot stack's top, say).
pub fn page_end_vaddr(layout: &Layout, pfn: u64) -> Result<VirtAddr, LayoutError> {
    let off = ovf(pfn.checked_add(1).and_then(|p| p.checked_mul(PAGE_SIZE)))?;
    Ok(VirtAddr::new(ovf(layout.virt_base.checked_add(off))?))
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LayoutError::NoMemory => f.write_str("the guest has no memory"),
            LayoutError::Unaligned(v) => write!(f, "segment boundary {v:#x} is not page aligned"),
            LayoutError::BoundaryTooLow { boundary, virt_alloc_end } => write!(
                f,
                "segment boundary too low ({boundary:#x} < {virt_alloc_end:#x})"
            ),
            LayoutError::SegmentTooLarge { name, pages, total_pages, used } => write!(
                f,
                "segment {name} too large ({pages:#x} pages > {total_pages:#x} - {used:#x} pages): not enough memory"
            ),
            LayoutError::MappingTooLarge { pfn_end, p2m_size } => write!(
                f,
                "not enough memory for the initial mapping ({pfn_end:#x} >= {p2m_size:#x} pages)"
            ),
            LayoutError::TooManyMappings => f.write_str("too many initial mappings"),
            LayoutError::OverlappingMappings => f.write_str("the p2m mapping overlaps the initial mapping"),
            LayoutError::HypervisorArea { start, end } => write!(
                f,
                "guest range {start:#x}..{end:#x} reaches into the hypervisor's area or is not canonical"
            ),
            LayoutError::BadKernelRange { start, end } => {
                write!(f, "empty or inverted kernel range {start:#x}..{end:#x}")
            }
            LayoutError::Overflow => f.write_str("address arithmetic overflowed"),
        }
    }
}

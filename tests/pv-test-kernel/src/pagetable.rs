//! Walking the initial page tables the way the MMU does, starting at `start_info.pt_base`.
//!
//! Entries hold machine frame numbers; the M2P turns each into a pfn, and a table is only
//! read through the initial mapping (`VIRT_BASE + pfn * 4096`) when its pfn lies inside the
//! page-table area the builder declared (`[pt_pfn, pt_pfn + nr_pt_frames)`), so a corrupt
//! entry is reported instead of followed.

use crate::m2p::M2p;
use crate::xen::{self, PAGE_SHIFT, PAGE_SIZE, VIRT_BASE};

/// Most page-table frames this walker tracks (a 2 GiB initial mapping needs ~1030).
pub const MAX_PT_FRAMES: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// `level` (4..1) entry for `va` is not present.
    NotPresent { level: u8, va: u64 },
    /// A 2 MiB / 1 GiB superpage: the builder never writes those.
    Superpage { level: u8, va: u64 },
    /// An entry names a frame the M2P does not know.
    UnknownMfn { level: u8, mfn: u64 },
    /// An entry names a table frame outside the declared page-table area.
    OutsidePtArea { level: u8, mfn: u64, pfn: u64 },
    /// The same table frame is referenced twice.
    SharedTable { level: u8, pfn: u64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Tables {
    pub m2p: M2p,
    pub pt_base: u64,
    pub pt_pfn: u64,
    pub nr_pt_frames: u64,
}

/// One present L1 entry found by `visit`.
#[derive(Debug, Clone, Copy)]
pub struct Leaf {
    pub va: u64,
    pub entry: u64,
}

/// What a whole walk found.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkStats {
    pub tables: u64,
    pub leaves: u64,
    pub errors: u64,
    pub first_error: Option<WalkError>,
}

pub fn entry_mfn(entry: u64) -> u64 {
    (entry & xen::PTE_MFN_MASK) >> PAGE_SHIFT
}

fn index(va: u64, level: u8) -> usize {
    ((va >> (PAGE_SHIFT + 9 * (u32::from(level) - 1))) & 511) as usize
}

fn read_entry(table_va: u64, idx: usize) -> u64 {
    // SAFETY: table_va is the initial-mapping address of a frame inside the declared
    // page-table area (see `Tables::table_va`), which the builder maps; idx < 512.
    unsafe { ((table_va + idx as u64 * 8) as *const u64).read_volatile() }
}

/// Sign-extend a 48-bit address.
fn canonical(va: u64) -> u64 {
    if va & (1 << 47) != 0 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

impl Tables {
    /// None if pt_base is not a page in the initial mapping or the area is too large.
    pub fn new(m2p: M2p, pt_base: u64, nr_pt_frames: u64) -> Option<Self> {
        if pt_base < VIRT_BASE || !pt_base.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        if nr_pt_frames == 0 || nr_pt_frames > MAX_PT_FRAMES {
            return None;
        }
        Some(Tables {
            m2p,
            pt_base,
            pt_pfn: (pt_base - VIRT_BASE) >> PAGE_SHIFT,
            nr_pt_frames,
        })
    }

    pub fn is_pt_pfn(&self, pfn: u64) -> bool {
        pfn >= self.pt_pfn && pfn - self.pt_pfn < self.nr_pt_frames
    }

    /// Where the table an upper-level `entry` points to can be read.
    fn table_va(&self, level: u8, entry: u64) -> Result<(u64, u64), WalkError> {
        let mfn = entry_mfn(entry);
        let pfn = self
            .m2p
            .pfn_of(mfn)
            .ok_or(WalkError::UnknownMfn { level, mfn })?;
        if !self.is_pt_pfn(pfn) {
            return Err(WalkError::OutsidePtArea { level, mfn, pfn });
        }
        Ok((VIRT_BASE + (pfn << PAGE_SHIFT), pfn))
    }

    /// The L1 entry that maps `va`.
    pub fn translate(&self, va: u64) -> Result<u64, WalkError> {
        let mut table = self.pt_base;
        for level in (1..=4u8).rev() {
            let entry = read_entry(table, index(va, level));
            if entry & xen::PTE_PRESENT == 0 {
                return Err(WalkError::NotPresent { level, va });
            }
            if level == 1 {
                return Ok(entry);
            }
            if entry & xen::PTE_PSE != 0 {
                return Err(WalkError::Superpage { level, va });
            }
            table = self.table_va(level, entry)?.0;
        }
        Err(WalkError::NotPresent { level: 1, va })
    }

    /// Is every page of `[va, va + len)` mapped (present)?
    pub fn range_mapped(&self, va: u64, len: u64) -> Result<(), WalkError> {
        let Some(end) = va.checked_add(len) else {
            return Err(WalkError::NotPresent { level: 4, va });
        };
        let mut page = va & !(PAGE_SIZE - 1);
        while page < end {
            self.translate(page)?;
            page += PAGE_SIZE;
        }
        Ok(())
    }

    /// Visit every present L1 entry of the guest's part of the address space (Xen's L4 slots
    /// are skipped), in ascending virtual-address order. Counts the tables reached, checks
    /// each lies in the page-table area and is reached once.
    pub fn visit(&self, mut leaf: impl FnMut(Leaf)) -> WalkStats {
        let mut stats = WalkStats {
            tables: 1,
            ..WalkStats::default()
        };
        let mut seen = [0u64; (MAX_PT_FRAMES / 64) as usize];
        // The top table itself.
        if let Some(w) = seen.first_mut() {
            *w |= 1;
        }
        let mut enter = |stats: &mut WalkStats, level: u8, entry: u64| -> Option<u64> {
            match self.table_va(level, entry) {
                Ok((va, pfn)) => {
                    let bit = pfn - self.pt_pfn;
                    let word = seen.get_mut((bit / 64) as usize)?;
                    if *word & (1 << (bit % 64)) != 0 {
                        record(stats, WalkError::SharedTable { level, pfn });
                        return None;
                    }
                    *word |= 1 << (bit % 64);
                    stats.tables += 1;
                    Some(va)
                }
                Err(e) => {
                    record(stats, e);
                    None
                }
            }
        };
        for i4 in 0..512usize {
            if xen::XEN_L4_SLOTS.contains(&i4) {
                continue;
            }
            let e4 = read_entry(self.pt_base, i4);
            if e4 & xen::PTE_PRESENT == 0 {
                continue;
            }
            let Some(l3) = enter(&mut stats, 4, e4) else {
                continue;
            };
            for i3 in 0..512usize {
                let e3 = read_entry(l3, i3);
                if e3 & xen::PTE_PRESENT == 0 {
                    continue;
                }
                let va3 = canonical(((i4 as u64) << 39) | ((i3 as u64) << 30));
                if e3 & xen::PTE_PSE != 0 {
                    record(&mut stats, WalkError::Superpage { level: 3, va: va3 });
                    continue;
                }
                let Some(l2) = enter(&mut stats, 3, e3) else {
                    continue;
                };
                for i2 in 0..512usize {
                    let e2 = read_entry(l2, i2);
                    if e2 & xen::PTE_PRESENT == 0 {
                        continue;
                    }
                    let va2 = va3 | ((i2 as u64) << 21);
                    if e2 & xen::PTE_PSE != 0 {
                        record(&mut stats, WalkError::Superpage { level: 2, va: va2 });
                        continue;
                    }
                    let Some(l1) = enter(&mut stats, 2, e2) else {
                        continue;
                    };
                    for i1 in 0..512usize {
                        let e1 = read_entry(l1, i1);
                        if e1 & xen::PTE_PRESENT != 0 {
                            stats.leaves += 1;
                            leaf(Leaf {
                                va: va2 | ((i1 as u64) << 12),
                                entry: e1,
                            });
                        }
                    }
                }
            }
        }
        stats
    }
}

fn record(stats: &mut WalkStats, e: WalkError) {
    stats.errors += 1;
    if stats.first_error.is_none() {
        stats.first_error = Some(e);
    }
}

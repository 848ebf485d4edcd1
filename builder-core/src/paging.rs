//! Page tables: the entry format, the three paging modes of a PV guest, and the writer of the
//! initial tables.
//!
//! libxenguest describes the initial page tables of a PV guest as up to two *mappings*
//! (`struct xc_dom_x86_mapping`, tools/libs/guest/xg_dom_x86.c): the initial mapping of
//! `[virt_base, v_end)` and, for a kernel with `INIT_P2M`, the mapping of the p2m list at
//! `p2m_base`. Each mapping records, per level, the virtual range its tables cover and the
//! first pfn of those tables ([`crate::layout::Mapping`]). [`write_tables`] fills them exactly
//! as `setup_pgtables_pv` does: every level points at the tables of the level below that fall
//! in its range, every L1 entry maps the pfn of its page (through the p2m, so the entry holds
//! the *machine* frame), and the L1 entries of page-table frames are read-only.

use crate::addr::{Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::image::{GuestType, PaeMode};
use crate::layout::{Layout, Mapping};
use crate::mem::GuestMemory;

bitflags::bitflags! {
    /// Flag bits of an x86 page-table entry (the low 12 bits and NX).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// `_PAGE_PRESENT`
        const PRESENT = 1 << 0;
        /// `_PAGE_RW`
        const RW = 1 << 1;
        /// `_PAGE_USER`
        const USER = 1 << 2;
        /// `_PAGE_PWT`
        const PWT = 1 << 3;
        /// `_PAGE_PCD`
        const PCD = 1 << 4;
        /// `_PAGE_ACCESSED`
        const ACCESSED = 1 << 5;
        /// `_PAGE_DIRTY`
        const DIRTY = 1 << 6;
        /// `_PAGE_PSE`
        const PSE = 1 << 7;
        /// `_PAGE_GLOBAL`
        const GLOBAL = 1 << 8;
        /// `_PAGE_NX` (PAE and 4-level only)
        const NX = 1 << 63;
    }
}

/// Mask of the frame-number bits of a PAE / 4-level entry (bits 12..52).
const PTE_FRAME_MASK: u64 = ((1 << 52) - 1) & !((1 << PAGE_SHIFT) - 1);

/// One page-table entry, as the MMU reads it (widened to 64 bits for 2-level tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Pte(u64);

impl Pte {
    /// An entry pointing at machine frame `mfn` with `flags`.
    pub const fn new(mfn: Mfn, flags: PteFlags) -> Self {
        Self((mfn.get() << PAGE_SHIFT) | flags.bits())
    }
    /// The raw entry.
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// An entry from its raw value.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
    /// The machine frame the entry points at.
    pub fn mfn(self) -> Mfn {
        // Bits 12..52 hold at most MAX_FRAME, so this cannot fail; fall back to 0 anyway.
        Mfn::new((self.0 & PTE_FRAME_MASK) >> PAGE_SHIFT).unwrap_or_default()
    }
    /// The flag bits.
    pub const fn flags(self) -> PteFlags {
        PteFlags::from_bits_truncate(self.0)
    }
    /// Whether the present bit is set.
    pub const fn is_present(self) -> bool {
        self.0 & PteFlags::PRESENT.bits() != 0
    }
}

/// The three page-table formats of x86 PV guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// x86-64 4-level paging, 48-bit virtual addresses.
    FourLevel,
    /// 32-bit PAE 3-level paging (an L3 of four entries).
    Pae,
    /// Legacy 32-bit 2-level paging (4-byte entries, 1024 per table).
    TwoLevel,
}

/// Flags of the L1 entries libxenguest writes (`lvl_prot[0]`).
pub const L1_PROT: PteFlags = PteFlags::PRESENT
    .union(PteFlags::RW)
    .union(PteFlags::ACCESSED);
/// Flags of the upper-level entries libxenguest writes (`lvl_prot[1..]`). 64-bit Xen runs
/// 32-bit PAE guests with these on the L3 too ("they don't behave exactly like native PAE").
pub const UPPER_PROT: PteFlags = L1_PROT.union(PteFlags::DIRTY).union(PteFlags::USER);

impl PagingMode {
    /// The mode a guest type uses.
    pub const fn of(guest: GuestType) -> Self {
        match guest {
            GuestType::X86_64 => PagingMode::FourLevel,
            GuestType::X86_32Pae => PagingMode::Pae,
            GuestType::X86_32 => PagingMode::TwoLevel,
        }
    }
    /// Number of levels (`PGTBL_LEVELS_*`).
    pub const fn levels(self) -> usize {
        match self {
            PagingMode::FourLevel => 4,
            PagingMode::Pae => 3,
            PagingMode::TwoLevel => 2,
        }
    }
    /// Virtual-address bits each level resolves (`PGTBL_LEVEL_SHIFT_X86`, 10 for 2-level).
    pub const fn level_shift(self) -> u32 {
        match self {
            PagingMode::FourLevel | PagingMode::Pae => 9,
            PagingMode::TwoLevel => 10,
        }
    }
    /// Size of one entry in bytes.
    pub const fn entry_size(self) -> usize {
        match self {
            PagingMode::FourLevel | PagingMode::Pae => 8,
            PagingMode::TwoLevel => 4,
        }
    }
    /// Entries per table page.
    pub const fn entries_per_page(self) -> usize {
        (PAGE_SIZE as usize) / self.entry_size()
    }
    /// The mask libxenguest applies to virtual addresses (`vaddr_mask`).
    pub const fn vaddr_mask(self) -> u64 {
        match self {
            PagingMode::FourLevel => (1 << 48) - 1,
            PagingMode::Pae | PagingMode::TwoLevel => (1 << 32) - 1,
        }
    }
    /// Protection bits of entries at level `l` (0 = L1), before the read-only rule.
    pub const fn lvl_prot(self, l: usize) -> PteFlags {
        if l == 0 {
            L1_PROT
        } else {
            UPPER_PROT
        }
    }
    /// Shift of the virtual range one entry at level `l` covers.
    pub const fn entry_span_shift(self, l: usize) -> u32 {
        PAGE_SHIFT + (l as u32) * self.level_shift()
    }
    /// The `MMUEXT_PIN_L*_TABLE` command that pins this mode's top table.
    pub const fn pin_cmd(self) -> u32 {
        match self {
            PagingMode::FourLevel => 3,
            PagingMode::Pae => 2,
            PagingMode::TwoLevel => 1,
        }
    }
    /// Largest machine frame an entry can hold.
    pub const fn max_mfn(self) -> u64 {
        match self {
            PagingMode::FourLevel | PagingMode::Pae => crate::addr::MAX_FRAME,
            PagingMode::TwoLevel => (1 << 20) - 1,
        }
    }
}

/// Errors writing the page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingError<E> {
    /// The memory backend failed (mapping, or a pfn without a frame).
    Memory(E),
    /// An entry index fell outside the tables of its mapping level (an inconsistent layout).
    IndexOutOfTable {
        /// Level (0 = L1).
        level: usize,
        /// The index.
        index: u64,
    },
    /// A machine frame too large for the entry format (2-level entries hold 20 bits).
    MfnTooLarge(u64),
    /// A PAE guest without extended-cr3 whose L3 frame lies above 4 GiB (pvbuild never moves
    /// it: refused).
    L3AboveFourGiB {
        /// The L3's pfn.
        pfn: Pfn,
        /// Its machine frame.
        mfn: Mfn,
    },
    /// Address arithmetic overflowed (an inconsistent layout).
    Overflow,
}

/// The flags of the entry at level `l` that maps `pfn`: `get_pg_prot`. Page-table frames of
/// every mapping are mapped read-only, as Xen requires of a PV guest's own tables.
pub fn entry_prot(layout: &Layout, l: usize, pfn: u64) -> PteFlags {
    let prot = layout.mode.lvl_prot(l);
    if l > 0 {
        return prot;
    }
    if layout.is_pagetable_pfn(pfn) {
        prot.difference(PteFlags::RW)
    } else {
        prot
    }
}

/// The pfn a PAE guest's L3 lives in, if the guest needs it below 4 GiB (PAE without
/// extended-cr3). libxenguest exchanges that frame for one below 4 GiB when it lands above
/// (`move_l3_below_4G`); pvbuild does not: [`crate::build::build`] refuses the guest.
pub fn l3_below_4g_pfn(layout: &Layout, pae: PaeMode) -> Option<Pfn> {
    if layout.mode == PagingMode::Pae && pae == PaeMode::Yes {
        layout.top_table_pfn().ok()
    } else {
        None
    }
}

/// Write every page-table frame of `layout` into guest memory (`setup_pgtables_pv`).
pub fn write_tables<M: GuestMemory>(
    layout: &Layout,
    mem: &mut M,
) -> Result<(), PagingError<M::Error>> {
    let mode = layout.mode;
    let mut buf = [0u8; PAGE_SIZE as usize];
    for l in (0..mode.levels()).rev() {
        for m1 in layout.mappings() {
            let lvl = m1.lvl(l);
            if lvl.pgtables == 0 {
                continue;
            }
            for page in 0..lvl.pgtables {
                buf.fill(0);
                fill_table_page(layout, m1, l, page, &mut buf, mem)?;
                let pfn = Pfn::new(lvl.pfn.checked_add(page).ok_or(PagingError::Overflow)?)
                    .map_err(|_| PagingError::Overflow)?;
                let dest = mem.pages_mut(pfn, 1).map_err(PagingError::Memory)?;
                let dest = dest.get_mut(..buf.len()).ok_or(PagingError::Overflow)?;
                dest.copy_from_slice(&buf);
            }
        }
    }
    Ok(())
}

/// Fill page `page` of the level-`l` tables of mapping `m1` (entries `page * epp ..`).
fn fill_table_page<M: GuestMemory>(
    layout: &Layout,
    m1: &Mapping,
    l: usize,
    page: u64,
    buf: &mut [u8],
    mem: &M,
) -> Result<(), PagingError<M::Error>> {
    let mode = layout.mode;
    let epp = mode.entries_per_page() as u64;
    let shift = mode.entry_span_shift(l);
    let from = m1.lvl(l).from;
    let to = m1.lvl(l).to;
    let page_first = page.checked_mul(epp).ok_or(PagingError::Overflow)?;
    let page_last = page_first + epp - 1;
    let total_entries = m1
        .lvl(l)
        .pgtables
        .checked_mul(epp)
        .ok_or(PagingError::Overflow)?;
    for m2 in layout.mappings() {
        let lower = if l > 0 { m2.lvl(l - 1) } else { m2.area };
        if l > 0 && lower.pgtables == 0 {
            continue;
        }
        if lower.from >= to || lower.to <= from {
            continue;
        }
        let lo = from.max(lower.from);
        let p_s = (lo - from) >> shift;
        let p_e = (to.min(lower.to) - from) >> shift;
        if p_e >= total_entries {
            return Err(PagingError::IndexOutOfTable {
                level: l,
                index: p_e,
            });
        }
        let first_pfn = ((lo - lower.from) >> shift)
            .checked_add(lower.pfn)
            .ok_or(PagingError::Overflow)?;
        // Only the entries that fall in this page of the table.
        let s = p_s.max(page_first);
        let e = p_e.min(page_last);
        if s > e {
            continue;
        }
        for p in s..=e {
            let pfn = first_pfn + (p - p_s);
            let pfn_t = Pfn::new(pfn).map_err(|_| PagingError::Overflow)?;
            let mfn = mem.mfn(pfn_t).map_err(PagingError::Memory)?;
            if mfn.get() > mode.max_mfn() {
                return Err(PagingError::MfnTooLarge(mfn.get()));
            }
            let pte = Pte::new(mfn, entry_prot(layout, l, pfn));
            let idx = ((p - page_first) as usize) * mode.entry_size();
            let slot = buf
                .get_mut(idx..idx + mode.entry_size())
                .ok_or(PagingError::IndexOutOfTable { level: l, index: p })?;
            if mode.entry_size() == 8 {
                slot.copy_from_slice(&pte.raw().to_le_bytes());
            } else {
                slot.copy_from_slice(&(pte.raw() as u32).to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Read entry `index` of a table page (entry size per `mode`).
pub fn read_entry(mode: PagingMode, table: &[u8], index: usize) -> Option<Pte> {
    let sz = mode.entry_size();
    let b = table.get(index.checked_mul(sz)?..index.checked_mul(sz)?.checked_add(sz)?)?;
    let raw = if sz == 8 {
        u64::from_le_bytes(b.try_into().ok()?)
    } else {
        u64::from(u32::from_le_bytes(b.try_into().ok()?))
    };
    Some(Pte::from_raw(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pte_roundtrip() {
        let mfn = Mfn::new(0x7aa03).unwrap();
        let p = Pte::new(mfn, UPPER_PROT);
        assert_eq!(p.raw(), 0x7aa03067);
        assert_eq!(p.mfn(), mfn);
        assert_eq!(p.flags(), UPPER_PROT);
        assert!(p.is_present());
        assert_eq!(Pte::new(mfn, L1_PROT).raw() & 0xfff, 0x23);
    }

    #[test]
    fn mode_parameters() {
        assert_eq!(PagingMode::FourLevel.entry_span_shift(3), 39);
        assert_eq!(PagingMode::Pae.entry_span_shift(2), 30);
        assert_eq!(PagingMode::TwoLevel.entry_span_shift(1), 22);
        assert_eq!(PagingMode::TwoLevel.entries_per_page(), 1024);
        assert_eq!(PagingMode::of(GuestType::X86_32Pae).pin_cmd(), 2);
    }
}

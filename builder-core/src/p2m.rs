//! The phys-to-machine list a PV guest reads at `start_info.mfn_list`, and the
//! machine-to-phys updates the host must send when a frame moved.
//!
//! The list holds one guest word per pfn: the machine frame backing it (`uint64_t` for
//! 64-bit guests, `uint32_t` for 32-bit ones), copied from the p2m the host got when it
//! populated memory. Today's Xen fills its machine-to-phys table itself when memory is
//! populated, so the only m2p updates a build could need are for frames a host exchanged
//! after that: the PAE L3 that must live below 4 GiB. Those would come as one batch of
//! `MMU_MACHPHYS_UPDATE` requests ([`MmuUpdate`]), sent in a single `mmu_update` hypercall.
//! pvbuild's host does no such exchange (a PAE guest whose L3 lands above 4 GiB is refused,
//! see [`crate::build`]), so its builds have none.

use zerocopy::{Immutable, IntoBytes, KnownLayout};

use crate::addr::{Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::layout::Layout;
use crate::mem::GuestMemory;

/// `MMU_MACHPHYS_UPDATE` (xen.h): `ptr` is the machine address of the frame, `val` its pfn.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// Largest number of m2p updates a build produces (one relocated PAE L3).
pub const MAX_M2P_UPDATES: usize = 1;

/// `struct mmu_update` (xen.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MmuUpdate {
    /// Machine address plus the command in the low bits.
    pub ptr: u64,
    /// The new value.
    pub val: u64,
}
const _: () = assert!(core::mem::size_of::<MmuUpdate>() == 16);

impl MmuUpdate {
    /// The update that records `pfn` as the owner of machine frame `mfn`.
    pub const fn machphys(mfn: Mfn, pfn: Pfn) -> Self {
        Self {
            ptr: (mfn.get() << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE,
            val: pfn.get(),
        }
    }
}

/// A batch of m2p updates, for one `mmu_update` hypercall.
pub type M2pBatch = heapless::Vec<MmuUpdate, MAX_M2P_UPDATES>;

/// Errors writing the p2m list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P2mError<E> {
    /// The memory backend failed.
    Memory(E),
    /// A machine frame does not fit the guest's word (32-bit guests).
    MfnTooLarge(u64),
    /// The p2m segment is too small for the list (an inconsistent layout).
    SegmentTooSmall,
    /// More relocated frames than a batch holds.
    TooManyUpdates,
}

/// Write the p2m list: entry `i` = the machine frame of pfn `i`, for every pfn of the guest.
pub fn write_list<M: GuestMemory>(layout: &Layout, mem: &mut M) -> Result<(), P2mError<M::Error>> {
    let entry = layout.guest_type.p2m_entry_size();
    let per_page = PAGE_SIZE / entry;
    let mut buf = [0u8; PAGE_SIZE as usize];
    if layout.p2m_list_pages > layout.p2m.pages
        || layout.p2m_list_pages.saturating_mul(per_page) < layout.nr_pages
    {
        return Err(P2mError::SegmentTooSmall);
    }
    for page in 0..layout.p2m_list_pages {
        buf.fill(0);
        let first = page * per_page;
        let last = (first + per_page).min(layout.nr_pages);
        for (k, pfn) in (first..last).enumerate() {
            let p = Pfn::new(pfn).map_err(|_| P2mError::SegmentTooSmall)?;
            let mfn = mem.mfn(p).map_err(P2mError::Memory)?.get();
            let at = k * entry as usize;
            let slot = buf
                .get_mut(at..at + entry as usize)
                .ok_or(P2mError::SegmentTooSmall)?;
            if entry == 8 {
                slot.copy_from_slice(&mfn.to_le_bytes());
            } else {
                let v = u32::try_from(mfn).map_err(|_| P2mError::MfnTooLarge(mfn))?;
                slot.copy_from_slice(&v.to_le_bytes());
            }
        }
        let dest_pfn = Pfn::new(layout.p2m.pfn + page).map_err(|_| P2mError::SegmentTooSmall)?;
        let dest = mem.pages_mut(dest_pfn, 1).map_err(P2mError::Memory)?;
        dest.get_mut(..buf.len())
            .ok_or(P2mError::SegmentTooSmall)?
            .copy_from_slice(&buf);
    }
    Ok(())
}

/// The m2p updates for frames the host moved after populating memory (`relocated`: their
/// pfns; their new frames are read from the backend's p2m).
pub fn m2p_updates<M: GuestMemory>(
    relocated: &[Pfn],
    mem: &M,
) -> Result<M2pBatch, P2mError<M::Error>> {
    let mut batch = M2pBatch::new();
    for &pfn in relocated {
        let mfn = mem.mfn(pfn).map_err(P2mError::Memory)?;
        batch
            .push(MmuUpdate::machphys(mfn, pfn))
            .map_err(|_| P2mError::TooManyUpdates)?;
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machphys_request_format() {
        let u = MmuUpdate::machphys(Mfn::new(0x1234).unwrap(), Pfn::new(0x4a03).unwrap());
        assert_eq!(u.ptr, 0x1234001);
        assert_eq!(u.val, 0x4a03);
        assert_eq!(u.as_bytes().len(), 16);
    }
}

//! Xen's read-only machine-to-phys table, mapped into every 64-bit PV guest at
//! MACH2PHYS_VIRT_START: entry `mfn` (8 bytes) holds the pfn that frame backs in its owner.
//! Reads are bounded by `max_mfn` from XENMEM_machphys_mapping so a wild mfn from a broken
//! page table or p2m list never faults.

use crate::hypercall;
use crate::xen;

#[derive(Debug, Clone, Copy)]
pub struct M2p {
    pub base: u64,
    pub max_mfn: u64,
    /// XENMEM_machphys_mapping failed: `max_mfn` is a guess.
    pub queried: bool,
}

impl M2p {
    pub fn new() -> Self {
        match hypercall::machphys_mapping() {
            Ok(map) if map.v_start != 0 => M2p {
                base: map.v_start,
                max_mfn: map.max_mfn,
                queried: true,
            },
            _ => M2p {
                base: xen::MACH2PHYS_VIRT_START,
                // 1 TiB of machine memory: enough for any machine this runs on.
                max_mfn: (1 << 28) - 1,
                queried: false,
            },
        }
    }

    /// The pfn that machine frame `mfn` backs, if `mfn` is in the table.
    pub fn pfn_of(&self, mfn: u64) -> Option<u64> {
        if mfn > self.max_mfn {
            return None;
        }
        let va = self.base.checked_add(mfn.checked_mul(8)?)?;
        // SAFETY: Xen maps the M2P read-only for PV guests up to max_mfn.
        Some(unsafe { (va as *const u64).read_volatile() })
    }
}

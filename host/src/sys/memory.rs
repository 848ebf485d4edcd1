//! `xen/memory.h` (memory_op) and the MMU hypercalls of `xen/xen.h` (mmu_update, mmuext_op).

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENMEM_increase_reservation`.
pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
/// `XENMEM_decrease_reservation`.
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `XENMEM_populate_physmap`.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;

/// `struct xen_memory_reservation`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenMemoryReservation {
    /// `XEN_GUEST_HANDLE(xen_pfn_t)`: in, the guest frames; out (PV), the machine frames.
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// Each extent is `1 << extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*`.
    pub mem_flags: u32,
    /// Target domain.
    pub domid: u16,
    /// Implicit C padding, made explicit.
    pub _pad: [u16; 3],
}
const _: () = assert!(size_of::<XenMemoryReservation>() == 32);

/// `struct mmu_update`: `ptr`'s low bits select the command.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MmuUpdate {
    /// Machine address of the entry, with the command in bits 0..2.
    pub ptr: u64,
    /// New value.
    pub val: u64,
}
const _: () = assert!(size_of::<MmuUpdate>() == 16);

/// `MMU_NORMAL_PT_UPDATE`: `*ptr = val`, checked.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `MMU_MACHPHYS_UPDATE`: `machine_to_phys[ptr >> 12] = val`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;

/// `struct mmuext_op`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct MmuextOp {
    /// `MMUEXT_*`.
    pub cmd: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
    /// `arg1`: an mfn or a linear address.
    pub arg1: u64,
    /// `arg2`: an entry count, a vcpu mask handle or a source mfn.
    pub arg2: u64,
}
const _: () = assert!(size_of::<MmuextOp>() == 24);

/// `MMUEXT_PIN_L1_TABLE`.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `MMUEXT_PIN_L2_TABLE`.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `MMUEXT_PIN_L3_TABLE`.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `MMUEXT_PIN_L4_TABLE`.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `MMUEXT_UNPIN_TABLE`.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;

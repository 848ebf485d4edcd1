//! `xen/memory.h` (memory_op) and the MMU hypercalls of `xen/xen.h` (mmu_update, mmuext_op).

use core::mem::size_of;

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENMEM_increase_reservation`.
pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
/// `XENMEM_decrease_reservation`.
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `XENMEM_maximum_ram_page`: the highest machine frame of the host's RAM.
pub const XENMEM_MAXIMUM_RAM_PAGE: u64 = 2;
/// `XENMEM_maximum_gpfn`: a domain's highest guest frame number.
pub const XENMEM_MAXIMUM_GPFN: u64 = 14;
/// Offset of `arch.max_pfn` in `struct shared_info` (x86_64).
pub const SHINFO_ARCH_MAX_PFN: usize = 3088;
/// Offset of `arch.pfn_to_mfn_frame_list_list` in `struct shared_info`.
pub const SHINFO_ARCH_FRAME_LIST_LIST: usize = 3096;
/// Offset of `arch.p2m_cr3` in `struct shared_info`.
pub const SHINFO_ARCH_P2M_CR3: usize = 3112;
/// Offset of `arch.p2m_vaddr` in `struct shared_info`.
pub const SHINFO_ARCH_P2M_VADDR: usize = 3120;
/// `XENMEM_populate_physmap`.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// `XENMEM_set_memory_map`: the toolstack sets a PV domain's pseudo-physical memory map.
pub const XENMEM_SET_MEMORY_MAP: u64 = 13;
/// `E820_RAM` (xenctrl.h).
pub const E820_RAM: u32 = 1;
/// `E820MAX` (xenctrl.h): the most entries libxc hands Xen (and Xen accepts for a PV map).
pub const E820MAX: usize = 128;

/// `struct e820entry` (xenctrl.h): `__attribute__((packed))` in C, 20 bytes. The fields
/// are little-endian byte arrays here, so the struct has the C layout (alignment 1, no
/// padding) without `repr(packed)`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct E820Entry {
    /// Start of the range.
    pub addr: U64,
    /// Its length in bytes.
    pub size: U64,
    /// `E820_*`.
    pub r#type: U32,
}
const _: () = assert!(size_of::<E820Entry>() == 20);

/// `struct xen_memory_map`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenMemoryMap {
    /// Entries in `buffer`.
    pub nr_entries: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
    /// `XEN_GUEST_HANDLE(void)`: the `struct e820entry` array.
    pub buffer: u64,
}
const _: () = assert!(size_of::<XenMemoryMap>() == 16);

/// `struct xen_foreign_memory_map`: the argument of `XENMEM_set_memory_map`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenForeignMemoryMap {
    /// Target domain.
    pub domid: u16,
    /// Implicit C padding, made explicit.
    pub _pad: [u16; 3],
    /// The map.
    pub map: XenMemoryMap,
}
const _: () = assert!(size_of::<XenForeignMemoryMap>() == 24);

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

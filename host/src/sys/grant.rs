//! `xen/grant_table.h`: the grant-table setup and the v1 entries a builder seeds.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `GNTTABOP_setup_table`.
pub const GNTTABOP_SETUP_TABLE: u64 = 2;
/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
/// `GTF_permit_access`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GNTTAB_RESERVED_CONSOLE`: the grant reference of the console ring.
pub const GNTTAB_RESERVED_CONSOLE: usize = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the grant reference of the xenstore ring.
pub const GNTTAB_RESERVED_XENSTORE: usize = 1;

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GnttabSetupTable {
    /// Target domain.
    pub dom: u16,
    /// Implicit C padding, made explicit.
    pub _pad: u16,
    /// Frames wanted.
    pub nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Implicit C padding, made explicit.
    pub _pad2: [u16; 3],
    /// `XEN_GUEST_HANDLE(xen_pfn_t)`: out, the frames.
    pub frame_list: u64,
}
const _: () = assert!(size_of::<GnttabSetupTable>() == 24);

/// `struct grant_entry_v1`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct GrantEntryV1 {
    /// `GTF_*`.
    pub flags: u16,
    /// Domain granted access.
    pub domid: u16,
    /// Frame granted.
    pub frame: u32,
}
const _: () = assert!(size_of::<GrantEntryV1>() == 8);

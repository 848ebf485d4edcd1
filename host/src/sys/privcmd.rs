//! The Linux privcmd driver's ioctl ABI (`xen/sys/privcmd.h`).
//!
//! `/dev/xen/privcmd` passes hypercalls through to Xen and maps other domains' frames into
//! this process. Its ioctl numbers are `_IOC(_IOC_NONE, 'P', nr, sizeof(struct))`: the size
//! is part of the number, so they are computed here from the Rust structs with nix's `ioc!`
//! and a test compares both against the C header.

use core::mem::size_of;

use nix::sys::ioctl::ioctl_num_type;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `privcmd_hypercall_t`: a hypercall number and its five register arguments.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PrivcmdHypercall {
    /// Hypercall number (`__HYPERVISOR_*`).
    pub op: u64,
    /// Arguments, passed in registers; pointers must point into hypercall buffers.
    pub arg: [u64; 5],
}
const _: () = assert!(size_of::<PrivcmdHypercall>() == 48);

/// `privcmd_mmapbatch_v2_t`: map `num` foreign frames of `dom` at `addr`, one error per frame.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PrivcmdMmapbatchV2 {
    /// Number of pages to map.
    pub num: u32,
    /// Target domain.
    pub dom: u16,
    /// Implicit C padding, made explicit.
    pub _pad: u16,
    /// Virtual address of the area (from an mmap of the privcmd fd).
    pub addr: u64,
    /// `const xen_pfn_t *`: the frames to map.
    pub arr: u64,
    /// `int *`: per-frame error codes written back (0 or a negative errno).
    pub err: u64,
}
const _: () = assert!(size_of::<PrivcmdMmapbatchV2>() == 32);

/// `privcmd_mmap_resource_t`: map frames of a domain's resource (its grant table, say).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PrivcmdMmapResource {
    /// Target domain.
    pub dom: u16,
    /// Implicit C padding, made explicit.
    pub _pad: u16,
    /// Resource type (`XENMEM_resource_*`).
    pub r#type: u32,
    /// Resource id (for the grant table: shared or status frames).
    pub id: u32,
    /// First frame of the resource.
    pub idx: u32,
    /// Number of frames.
    pub num: u64,
    /// Virtual address of the area (from an mmap of the privcmd fd).
    pub addr: u64,
}
const _: () = assert!(size_of::<PrivcmdMmapResource>() == 32);

/// An ioctl request number, as the kernel's `ioctl(2)` takes it.
pub type IoctlRequest = ioctl_num_type;

/// `IOCTL_PRIVCMD_HYPERCALL`.
pub const IOCTL_PRIVCMD_HYPERCALL: IoctlRequest = nix::ioc!(
    nix::sys::ioctl::NONE,
    b'P',
    0,
    size_of::<PrivcmdHypercall>()
);
/// `IOCTL_PRIVCMD_MMAPBATCH_V2`.
pub const IOCTL_PRIVCMD_MMAPBATCH_V2: IoctlRequest = nix::ioc!(
    nix::sys::ioctl::NONE,
    b'P',
    4,
    size_of::<PrivcmdMmapbatchV2>()
);
/// `IOCTL_PRIVCMD_MMAP_RESOURCE`.
pub const IOCTL_PRIVCMD_MMAP_RESOURCE: IoctlRequest = nix::ioc!(
    nix::sys::ioctl::NONE,
    b'P',
    7,
    size_of::<PrivcmdMmapResource>()
);

/// Resource type of a domain's grant table (`XENMEM_resource_grant_table`).
pub const XENMEM_RESOURCE_GRANT_TABLE: u32 = 1;
/// Grant-table resource id of the shared frames (`XENMEM_resource_grant_table_id_shared`).
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_privcmd_h() {
        // The values Linux's _IOC gives on x86 (dir NONE = 0, size in bits 16..30).
        assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
        assert_eq!(IOCTL_PRIVCMD_MMAPBATCH_V2, 0x0020_5004);
        assert_eq!(IOCTL_PRIVCMD_MMAP_RESOURCE, 0x0020_5007);
    }
}

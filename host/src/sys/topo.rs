//! The host's topology sysctls (`xen/sysctl.h`): `XEN_SYSCTL_cputopoinfo` (each cpu's core,
//! socket and NUMA node), `XEN_SYSCTL_numainfo` (each node's memory and distances) and
//! `XEN_SYSCTL_pcitopoinfo` (each PCI device's node), what `xl info -n` prints.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_SYSCTL_cputopoinfo`.
pub const XEN_SYSCTL_CPUTOPOINFO: u32 = 16;
/// `XEN_SYSCTL_numainfo`.
pub const XEN_SYSCTL_NUMAINFO: u32 = 17;
/// `XEN_SYSCTL_pcitopoinfo`.
pub const XEN_SYSCTL_PCITOPOINFO: u32 = 22;
/// `XEN_INVALID_CORE_ID` (also `XEN_INVALID_SOCKET_ID`, `XEN_INVALID_NODE_ID`).
pub const XEN_INVALID_CORE_ID: u32 = !0;
/// `XEN_INVALID_NODE_ID`.
pub const XEN_INVALID_NODE_ID: u32 = !0;
/// `XEN_INVALID_DEV`: a device Xen does not know.
pub const XEN_INVALID_DEV: u32 = XEN_INVALID_NODE_ID - 1;
/// `XEN_INVALID_MEM_SZ` (a 32-bit all-ones, compared with 64-bit sizes, as Xen and libxl do).
pub const XEN_INVALID_MEM_SZ: u32 = !0;
/// `XEN_INVALID_NODE_DIST`.
pub const XEN_INVALID_NODE_DIST: u32 = !0;

/// `struct xen_sysctl_cputopo`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlCputopo {
    /// The core id, or [`XEN_INVALID_CORE_ID`].
    pub core: u32,
    /// The socket id.
    pub socket: u32,
    /// The NUMA node.
    pub node: u32,
}
const _: () = assert!(size_of::<XenSysctlCputopo>() == 12);

/// `struct xen_sysctl_cputopoinfo`: a null `cputopo` asks for the number of cpus.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlCputopoinfo {
    /// In: entries in `cputopo`; out: entries Xen wrote (or wants).
    pub num_cpus: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
    /// `XEN_GUEST_HANDLE_64(xen_sysctl_cputopo_t)`.
    pub cputopo: u64,
}
const _: () = assert!(size_of::<XenSysctlCputopoinfo>() == 16);

/// `struct xen_sysctl_meminfo`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlMeminfo {
    /// Bytes of memory on the node.
    pub memsize: u64,
    /// Bytes free.
    pub memfree: u64,
}
const _: () = assert!(size_of::<XenSysctlMeminfo>() == 16);

/// `struct xen_sysctl_numainfo`: null handles ask for the number of nodes.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlNumainfo {
    /// In: entries in `meminfo` (and the square root of those in `distance`); out: nodes.
    pub num_nodes: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
    /// `XEN_GUEST_HANDLE_64(xen_sysctl_meminfo_t)`.
    pub meminfo: u64,
    /// `XEN_GUEST_HANDLE_64(uint32)`: distance from node i to node j at `i * N + j`.
    pub distance: u64,
}
const _: () = assert!(size_of::<XenSysctlNumainfo>() == 24);

/// `struct physdev_pci_device`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PhysdevPciDevice {
    /// The PCI segment.
    pub seg: u16,
    /// The bus.
    pub bus: u8,
    /// Device (bits 7..3) and function (bits 2..0).
    pub devfn: u8,
}
const _: () = assert!(size_of::<PhysdevPciDevice>() == 4);

/// `struct xen_sysctl_pcitopoinfo`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlPcitopoinfo {
    /// In: entries in `devs` and `nodes`; out: entries processed.
    pub num_devs: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
    /// `XEN_GUEST_HANDLE_64(physdev_pci_device_t)`.
    pub devs: u64,
    /// `XEN_GUEST_HANDLE_64(uint32)`: each device's node (out).
    pub nodes: u64,
}
const _: () = assert!(size_of::<XenSysctlPcitopoinfo>() == 24);

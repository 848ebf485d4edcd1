//! `xen/domctl.h` and the parts of `xen/sysctl.h` a PV build uses (Xen 4.17: both interface
//! versions 0x15).
//!
//! `struct xen_domctl` is a command, a version, a domain and a 128-byte union. The union is
//! kept as raw bytes here ([`XenDomctl::u`]) and each member is its own struct, written into
//! and read out of it with zerocopy, so no Rust `union` and no `unsafe` is needed.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_DOMCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_DOMCTL_INTERFACE_VERSION: u32 = 0x15;
/// `XEN_SYSCTL_INTERFACE_VERSION` of Xen 4.17.
pub const XEN_SYSCTL_INTERFACE_VERSION: u32 = 0x15;

/// `XEN_DOMCTL_createdomain`.
pub const XEN_DOMCTL_CREATEDOMAIN: u32 = 1;
/// `XEN_DOMCTL_destroydomain`.
pub const XEN_DOMCTL_DESTROYDOMAIN: u32 = 2;
/// `XEN_DOMCTL_pausedomain`.
pub const XEN_DOMCTL_PAUSEDOMAIN: u32 = 3;
/// `XEN_DOMCTL_unpausedomain`.
pub const XEN_DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// `XEN_DOMCTL_getdomaininfo`.
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// `XEN_DOMCTL_max_mem`.
pub const XEN_DOMCTL_MAX_MEM: u32 = 11;
/// `XEN_DOMCTL_setvcpucontext`.
pub const XEN_DOMCTL_SETVCPUCONTEXT: u32 = 12;
/// `XEN_DOMCTL_getvcpucontext`.
pub const XEN_DOMCTL_GETVCPUCONTEXT: u32 = 13;
/// `XEN_DOMCTL_max_vcpus`.
pub const XEN_DOMCTL_MAX_VCPUS: u32 = 15;
/// `XEN_DOMCTL_hypercall_init`.
pub const XEN_DOMCTL_HYPERCALL_INIT: u32 = 22;
/// `XEN_DOMCTL_set_address_size`.
pub const XEN_DOMCTL_SET_ADDRESS_SIZE: u32 = 35;
/// `XEN_DOMCTL_get_address_size`.
pub const XEN_DOMCTL_GET_ADDRESS_SIZE: u32 = 36;
/// `XEN_DOMCTL_set_target`: gives a domain (a stub domain) privilege over another.
pub const XEN_DOMCTL_SET_TARGET: u32 = 46;

/// `XEN_SYSCTL_physinfo`.
pub const XEN_SYSCTL_PHYSINFO: u32 = 3;
/// `XEN_SYSCTL_getdomaininfolist`.
pub const XEN_SYSCTL_GETDOMAININFOLIST: u32 = 6;
/// `XEN_SYSCTL_readconsole`.
pub const XEN_SYSCTL_READCONSOLE: u32 = 1;

/// `struct xen_sysctl_readconsole`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlReadconsole {
    /// In: non-zero clears the ring after reading.
    pub clear: u8,
    /// In: non-zero starts at [`Self::index`].
    pub incremental: u8,
    /// Padding.
    pub pad0: u8,
    /// Padding.
    pub pad1: u8,
    /// In: where to start (with `incremental`); out: where the read ended.
    pub index: u32,
    /// In: `XEN_GUEST_HANDLE_64(char)`, the buffer.
    pub buffer: u64,
    /// In: the buffer's size; out: the bytes written.
    pub count: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
}
const _: () = assert!(size_of::<XenSysctlReadconsole>() == 24);

/// `XEN_DOMINF_dying`.
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// `XEN_DOMINF_hvm_guest`.
pub const XEN_DOMINF_HVM_GUEST: u32 = 1 << 1;
/// `XEN_DOMINF_shutdown`.
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;
/// `XEN_DOMINF_paused`.
pub const XEN_DOMINF_PAUSED: u32 = 1 << 3;
/// `XEN_DOMINF_blocked`.
pub const XEN_DOMINF_BLOCKED: u32 = 1 << 4;
/// `XEN_DOMINF_running`.
pub const XEN_DOMINF_RUNNING: u32 = 1 << 5;
/// `XEN_DOMINF_shutdownshift`: the guest's shutdown code sits at this bit.
pub const XEN_DOMINF_SHUTDOWNSHIFT: u32 = 16;
/// `XEN_DOMINF_shutdownmask`.
pub const XEN_DOMINF_SHUTDOWNMASK: u32 = 255;

/// `XEN_SYSCTL_PHYSCAP_hvm`.
pub const XEN_SYSCTL_PHYSCAP_HVM: u32 = 1 << 0;
/// `XEN_SYSCTL_PHYSCAP_pv`: the platform runs PV guests.
pub const XEN_SYSCTL_PHYSCAP_PV: u32 = 1 << 1;
/// `XEN_SYSCTL_PHYSCAP_directio`.
pub const XEN_SYSCTL_PHYSCAP_DIRECTIO: u32 = 1 << 2;
/// `XEN_SYSCTL_PHYSCAP_hap`.
pub const XEN_SYSCTL_PHYSCAP_HAP: u32 = 1 << 3;
/// `XEN_SYSCTL_PHYSCAP_shadow`.
pub const XEN_SYSCTL_PHYSCAP_SHADOW: u32 = 1 << 4;
/// `XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share`.
pub const XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE: u32 = 1 << 5;
/// `XEN_SYSCTL_PHYSCAP_vmtrace`.
pub const XEN_SYSCTL_PHYSCAP_VMTRACE: u32 = 1 << 6;
/// `XEN_SYSCTL_PHYSCAP_vpmu`.
pub const XEN_SYSCTL_PHYSCAP_VPMU: u32 = 1 << 7;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v1`.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V1: u32 = 1 << 8;
/// `XEN_SYSCTL_PHYSCAP_gnttab_v2`.
pub const XEN_SYSCTL_PHYSCAP_GNTTAB_V2: u32 = 1 << 9;

/// Size of the domctl and sysctl unions (`uint8_t pad[128]`).
pub const UNION_SIZE: usize = 128;

/// `struct xen_domctl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenDomctl {
    /// `XEN_DOMCTL_*` command.
    pub cmd: u32,
    /// [`XEN_DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// Target domain.
    pub domain: u16,
    /// Padding in the C struct.
    pub _pad: [u16; 3],
    /// The command's payload (one of the `XenDomctl*` structs below, zero-extended).
    pub u: [u64; UNION_SIZE / 8],
}
const _: () = assert!(size_of::<XenDomctl>() == 144);

/// `struct xen_sysctl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenSysctl {
    /// `XEN_SYSCTL_*` command.
    pub cmd: u32,
    /// [`XEN_SYSCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The command's payload.
    pub u: [u64; UNION_SIZE / 8],
}
const _: () = assert!(size_of::<XenSysctl>() == 136);

/// `struct xen_arch_domainconfig` (x86).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenArchDomainconfig {
    /// `XEN_X86_EMU_*`: emulated devices (none for PV).
    pub emulation_flags: u32,
    /// `XEN_X86_MSR_RELAXED` and friends.
    pub misc_flags: u32,
}
const _: () = assert!(size_of::<XenArchDomainconfig>() == 8);

/// `struct xen_domctl_createdomain`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlCreatedomain {
    /// XSM security reference.
    pub ssidref: u32,
    /// The domain's UUID.
    pub handle: [u8; 16],
    /// `XEN_DOMCTL_CDF_*` (0 for a plain PV guest).
    pub flags: u32,
    /// `XEN_DOMCTL_IOMMU_*`.
    pub iommu_opts: u32,
    /// Number of vcpus the domain may have.
    pub max_vcpus: u32,
    /// Highest event-channel port.
    pub max_evtchn_port: u32,
    /// Grant-table frames (< 0: the hypervisor's default).
    pub max_grant_frames: i32,
    /// Maptrack frames (< 0: the hypervisor's default).
    pub max_maptrack_frames: i32,
    /// Highest grant-table version, in the low 4 bits.
    pub grant_opts: u32,
    /// Per-vcpu trace buffer size (0: none).
    pub vmtrace_size: u32,
    /// CPU pool.
    pub cpupool_id: u32,
    /// Architecture part.
    pub arch: XenArchDomainconfig,
}
const _: () = assert!(size_of::<XenDomctlCreatedomain>() == 64);

/// `struct xen_domctl_getdomaininfo`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlGetdomaininfo {
    /// The domain's id.
    pub domain: u16,
    /// Padding.
    pub pad1: u16,
    /// `XEN_DOMINF_*` and the shutdown code.
    pub flags: u32,
    /// Pages the domain has.
    pub tot_pages: u64,
    /// Its limit (`max_mem`).
    pub max_pages: u64,
    /// Pages claimed but not yet allocated.
    pub outstanding_pages: u64,
    /// Shared pages.
    pub shr_pages: u64,
    /// Paged-out pages.
    pub paged_pages: u64,
    /// Machine frame of its shared_info page.
    pub shared_info_frame: u64,
    /// CPU time used, in ns.
    pub cpu_time: u64,
    /// Vcpus online.
    pub nr_online_vcpus: u32,
    /// Highest vcpu id.
    pub max_vcpu_id: u32,
    /// XSM security reference.
    pub ssidref: u32,
    /// UUID.
    pub handle: [u8; 16],
    /// CPU pool.
    pub cpupool: u32,
    /// Guest physical address width.
    pub gpaddr_bits: u8,
    /// Padding.
    pub pad2: [u8; 7],
    /// Architecture part.
    pub arch_config: XenArchDomainconfig,
}
const _: () = assert!(size_of::<XenDomctlGetdomaininfo>() == 112);

/// `struct xen_domctl_max_mem`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlMaxMem {
    /// Limit in KiB.
    pub max_memkb: u64,
}
const _: () = assert!(size_of::<XenDomctlMaxMem>() == 8);

/// `struct xen_domctl_set_target`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlSetTarget {
    /// The domain the domctl's domain gets privilege over.
    pub target: u16,
}
const _: () = assert!(size_of::<XenDomctlSetTarget>() == 2);

/// `struct xen_domctl_max_vcpus`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlMaxVcpus {
    /// Number of vcpus.
    pub max: u32,
}
const _: () = assert!(size_of::<XenDomctlMaxVcpus>() == 4);

/// `struct xen_domctl_vcpucontext`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlVcpucontext {
    /// Vcpu number.
    pub vcpu: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
    /// `XEN_GUEST_HANDLE_64(vcpu_guest_context_t)`: a hypercall buffer.
    pub ctxt: u64,
}
const _: () = assert!(size_of::<XenDomctlVcpucontext>() == 16);

/// `struct xen_domctl_hypercall_init`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlHypercallInit {
    /// Guest frame to fill with the hypercall page.
    pub gmfn: u64,
}
const _: () = assert!(size_of::<XenDomctlHypercallInit>() == 8);

/// `struct xen_domctl_address_size`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlAddressSize {
    /// 32 or 64.
    pub size: u32,
}
const _: () = assert!(size_of::<XenDomctlAddressSize>() == 4);

/// `struct xen_sysctl_getdomaininfolist`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlGetdomaininfolist {
    /// First domain id to report.
    pub first_domain: u16,
    /// Implicit C padding, made explicit.
    pub _pad: u16,
    /// Capacity of `buffer`, in entries.
    pub max_domains: u32,
    /// `XEN_GUEST_HANDLE_64(xen_domctl_getdomaininfo_t)`: a hypercall buffer.
    pub buffer: u64,
    /// Entries written.
    pub num_domains: u32,
    /// Implicit C padding, made explicit.
    pub _pad2: u32,
}
const _: () = assert!(size_of::<XenSysctlGetdomaininfolist>() == 24);

/// `struct xen_sysctl_physinfo`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlPhysinfo {
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// CPUs online.
    pub nr_cpus: u32,
    /// Highest CPU id.
    pub max_cpu_id: u32,
    /// NUMA nodes online.
    pub nr_nodes: u32,
    /// Highest node id.
    pub max_node_id: u32,
    /// CPU speed.
    pub cpu_khz: u32,
    /// `XEN_SYSCTL_PHYSCAP_*`.
    pub capabilities: u32,
    /// Architecture-specific capabilities.
    pub arch_capabilities: u32,
    /// Padding.
    pub pad: u32,
    /// Host pages.
    pub total_pages: u64,
    /// Free host pages.
    pub free_pages: u64,
    /// Pages waiting to be scrubbed.
    pub scrub_pages: u64,
    /// Pages claimed by domains.
    pub outstanding_pages: u64,
    /// Highest machine frame.
    pub max_mfn: u64,
    /// Hardware capability words.
    pub hw_cap: [u32; 8],
}
const _: () = assert!(size_of::<XenSysctlPhysinfo>() == 112);

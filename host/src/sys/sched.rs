//! Scheduling and CPU pools: the parts of `xen/domctl.h`, `xen/sysctl.h` and `xen/xen.h` that
//! place a domain's vcpus (Xen 4.17, interface versions 0x15).
//!
//! - vcpu affinity: `XEN_DOMCTL_setvcpuaffinity` / `getvcpuaffinity` with
//!   `struct xen_domctl_vcpuaffinity`, hard and soft maps as `struct xenctl_bitmap`;
//! - per-domain scheduler parameters: `XEN_DOMCTL_scheduler_op` with
//!   `struct xen_domctl_scheduler_op` (credit and credit2: a weight and a cap);
//! - CPU pools: `XEN_SYSCTL_cpupool_op` with `struct xen_sysctl_cpupool_op`.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_DOMCTL_setvcpuaffinity`.
pub const XEN_DOMCTL_SETVCPUAFFINITY: u32 = 9;
/// `XEN_DOMCTL_scheduler_op`.
pub const XEN_DOMCTL_SCHEDULER_OP: u32 = 16;
/// `XEN_DOMCTL_getvcpuaffinity`.
pub const XEN_DOMCTL_GETVCPUAFFINITY: u32 = 25;
/// `XEN_DOMCTL_getvcpuinfo`.
pub const XEN_DOMCTL_GETVCPUINFO: u32 = 14;
/// `XEN_SYSCTL_cpupool_op`.
pub const XEN_SYSCTL_CPUPOOL_OP: u32 = 18;

/// `XEN_VCPUAFFINITY_HARD`: the call sets (gets) the hard affinity.
pub const XEN_VCPUAFFINITY_HARD: u32 = 1 << 0;
/// `XEN_VCPUAFFINITY_SOFT`: the call sets (gets) the soft affinity.
pub const XEN_VCPUAFFINITY_SOFT: u32 = 1 << 1;

/// `XEN_SCHEDULER_CREDIT`.
pub const XEN_SCHEDULER_CREDIT: u32 = 5;
/// `XEN_SCHEDULER_CREDIT2`.
pub const XEN_SCHEDULER_CREDIT2: u32 = 6;
/// `XEN_SCHEDULER_ARINC653`.
pub const XEN_SCHEDULER_ARINC653: u32 = 7;
/// `XEN_SCHEDULER_RTDS`.
pub const XEN_SCHEDULER_RTDS: u32 = 8;
/// `XEN_SCHEDULER_NULL`.
pub const XEN_SCHEDULER_NULL: u32 = 9;

/// `XEN_DOMCTL_SCHEDOP_putinfo`: set the domain's parameters.
pub const XEN_DOMCTL_SCHEDOP_PUTINFO: u32 = 0;
/// `XEN_DOMCTL_SCHEDOP_getinfo`: read them.
pub const XEN_DOMCTL_SCHEDOP_GETINFO: u32 = 1;

/// `XEN_SYSCTL_CPUPOOL_OP_INFO`: the first pool whose id is at least the one given.
pub const XEN_SYSCTL_CPUPOOL_OP_INFO: u32 = 3;
/// `XEN_SYSCTL_CPUPOOL_OP_FREEINFO`: the cpus in no pool.
pub const XEN_SYSCTL_CPUPOOL_OP_FREEINFO: u32 = 7;
/// `XEN_SYSCTL_sched_id`.
pub const XEN_SYSCTL_SCHED_ID: u32 = 4;

/// `struct xen_sysctl_sched_id`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlSchedId {
    /// Out: `XEN_SCHEDULER_*` of the default pool.
    pub sched_id: u32,
}
const _: () = assert!(size_of::<XenSysctlSchedId>() == 4);

/// `struct xenctl_bitmap`: a bitmap of `nr_bits` bits in a hypercall buffer.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenctlBitmap {
    /// `XEN_GUEST_HANDLE_64(uint8)`: the bytes, bit `n` in byte `n / 8`, bit `n % 8`.
    pub bitmap: u64,
    /// Bits in the buffer.
    pub nr_bits: u32,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
}
const _: () = assert!(size_of::<XenctlBitmap>() == 16);

/// `struct xen_domctl_vcpuaffinity`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlVcpuaffinity {
    /// The vcpu.
    pub vcpu: u32,
    /// [`XEN_VCPUAFFINITY_HARD`] and/or [`XEN_VCPUAFFINITY_SOFT`].
    pub flags: u32,
    /// Hard affinity: in, and out as the effective one (hard ∩ the pool's cpus).
    pub cpumap_hard: XenctlBitmap,
    /// Soft affinity: in, and out as the effective one (soft ∩ hard ∩ the pool's cpus).
    pub cpumap_soft: XenctlBitmap,
}
const _: () = assert!(size_of::<XenDomctlVcpuaffinity>() == 40);

/// `struct xen_domctl_getvcpuinfo`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlGetvcpuinfo {
    /// In: the vcpu.
    pub vcpu: u32,
    /// Out: online (not hot-unplugged).
    pub online: u8,
    /// Out: blocked waiting for an event.
    pub blocked: u8,
    /// Out: scheduled on its cpu.
    pub running: u8,
    /// Implicit C padding, made explicit.
    pub _pad: u8,
    /// Out: cpu time used, ns (`uint64_aligned_t`).
    pub cpu_time: u64,
    /// Out: the physical cpu it is on.
    pub cpu: u32,
    /// Implicit C padding, made explicit.
    pub _pad2: u32,
}
const _: () = assert!(size_of::<XenDomctlGetvcpuinfo>() == 24);

/// `struct xen_domctl_sched_credit` (`struct xen_domctl_sched_credit2` has the same layout).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlSchedCredit {
    /// Relative weight (1..=65535; credit's default 256).
    pub weight: u16,
    /// Cap in percent of one cpu (0: no cap).
    pub cap: u16,
}
const _: () = assert!(size_of::<XenDomctlSchedCredit>() == 4);

/// `struct xen_domctl_scheduler_op`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlSchedulerOp {
    /// `XEN_SCHEDULER_*`: must be the scheduler of the domain's pool.
    pub sched_id: u32,
    /// `XEN_DOMCTL_SCHEDOP_*`.
    pub cmd: u32,
    /// The per-scheduler union (16 bytes); credit and credit2 use its first 4 as
    /// [`XenDomctlSchedCredit`].
    pub u: [u64; 2],
}
const _: () = assert!(size_of::<XenDomctlSchedulerOp>() == 24);

/// `struct xen_sysctl_cpupool_op`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenSysctlCpupoolOp {
    /// `XEN_SYSCTL_CPUPOOL_OP_*`.
    pub op: u32,
    /// In: the pool (INFO: the first at or above it); out: the pool reported.
    pub cpupool_id: u32,
    /// Out (INFO): its scheduler, `XEN_SCHEDULER_*`.
    pub sched_id: u32,
    /// In (MOVEDOMAIN): the domain.
    pub domid: u32,
    /// In (ADDCPU, RMCPU): the cpu.
    pub cpu: u32,
    /// Out (INFO): domains in the pool.
    pub n_dom: u32,
    /// Out (INFO): the pool's cpus.
    pub cpumap: XenctlBitmap,
}
const _: () = assert!(size_of::<XenSysctlCpupoolOp>() == 40);

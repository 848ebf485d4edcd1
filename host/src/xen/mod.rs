//! Safe, typed hypercalls of a PV domain build, over [`crate::sys`].
//!
//! [`Xen`] owns a [`Backend`] (the real privcmd devices from [`Xen::open`], or
//! [`fake::FakeXen`] in tests) and offers one method per operation libxenguest and libxl use:
//! domain control (create, limits, info, vcpu context, hypercall page, pause/unpause,
//! destroy), memory (populate with 2 MiB extents falling back to 4 KiB, machine-to-phys
//! updates, pinning the top page table), foreign mappings in batches with per-page errors,
//! event channels, grant-table seeding, and the hypervisor's version and capabilities.
//!
//! As in libxencall, every hypercall argument lives in a hypercall buffer
//! ([`Backend::alloc_buffer`]), never on the stack. Every failure is an [`XenError`] naming
//! the [`Step`] that failed, the domain where there is one, and the errno.

mod coredump;
pub mod evtchn;
pub mod fake;
mod hostinfo;
mod hvm;
pub mod privcmd_mem;
mod readconsole;
mod sched;
mod topology;
mod vcpuinfo;

pub use sched::{CpuMap, CpupoolInfo, SchedCredit, Scheduler, CPUS_MAX};
pub use topology::{CpuTopo, NodeInfo, PciNode};
pub use vcpuinfo::VcpuInfo;

use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::Arc;

use nix::errno::Errno;
use pvbuild_core::addr::{Mfn, Pfn};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::sys::domctl::*;
use crate::sys::evtchn::*;
use crate::sys::grant::*;
use crate::sys::hypercall::*;
use crate::sys::memory::*;
use crate::sys::privcmd::*;
use crate::sys::vcpu::VcpuGuestContext;
use crate::sys::{Backend, Privcmd, PAGE_SIZE};

/// The operation that failed, as [`XenError`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Allocating a hypercall buffer.
    HypercallBuffer,
    /// `XEN_DOMCTL_createdomain`.
    CreateDomain,
    /// `XEN_DOMCTL_destroydomain`.
    DestroyDomain,
    /// `XEN_DOMCTL_pausedomain`.
    PauseDomain,
    /// `XEN_DOMCTL_unpausedomain`.
    UnpauseDomain,
    /// `XEN_DOMCTL_getdomaininfo`.
    DomainInfo,
    /// `XEN_SYSCTL_getdomaininfolist`.
    ListDomains,
    /// `XEN_SYSCTL_physinfo`.
    Physinfo,
    /// `XEN_DOMCTL_max_mem`.
    MaxMem,
    /// `XEN_DOMCTL_set_target`.
    SetTarget,
    /// `XEN_DOMCTL_max_vcpus`.
    MaxVcpus,
    /// `XEN_DOMCTL_set_address_size`.
    SetAddressSize,
    /// `XEN_DOMCTL_get_address_size`.
    GetAddressSize,
    /// `XEN_DOMCTL_setvcpucontext`.
    SetVcpuContext,
    /// `XEN_DOMCTL_hypercall_init`.
    HypercallInit,
    /// `XENMEM_populate_physmap`.
    PopulatePhysmap,
    /// `XENMEM_set_memory_map`.
    SetMemoryMap,
    /// `mmu_update` (machine-to-phys entries).
    MmuUpdate,
    /// `mmuext_op` pinning a page table.
    PinTable,
    /// `EVTCHNOP_alloc_unbound`.
    EvtchnAllocUnbound,
    /// `EVTCHNOP_close`.
    EvtchnClose,
    /// `GNTTABOP_setup_table`.
    GrantSetupTable,
    /// Mapping the guest's grant table (`IOCTL_PRIVCMD_MMAP_RESOURCE`).
    MapGrantTable,
    /// Reserving address space for a foreign mapping.
    MapArea,
    /// `IOCTL_PRIVCMD_MMAPBATCH_V2`.
    MapForeign,
    /// `XENVER_version`.
    XenVersion,
    /// `XENVER_capabilities`.
    Capabilities,
    /// `XEN_DOMCTL_setvcpuaffinity`.
    SetVcpuAffinity,
    /// `XEN_DOMCTL_getvcpuaffinity`.
    GetVcpuAffinity,
    /// `XEN_DOMCTL_getvcpuinfo`.
    GetVcpuInfo,
    /// `XEN_SYSCTL_readconsole`.
    ReadConsole,
    /// `XEN_SYSCTL_sched_id`.
    SchedId,
    /// `XENMEM_get_sharing_*`.
    SharingPages,
    /// `XEN_DOMCTL_scheduler_op` getinfo.
    SchedGet,
    /// `XEN_DOMCTL_scheduler_op` putinfo.
    SchedSet,
    /// `XEN_SYSCTL_cpupool_op` info.
    CpupoolInfo,
    /// `HVMOP_set_param`.
    HvmSetParam,
    /// `XEN_DOMCTL_gethvmcontext`.
    GetHvmContext,
    /// `XEN_DOMCTL_sethvmcontext`.
    SetHvmContext,
    /// `XEN_DOMCTL_set_paging_mempool_size`.
    PagingMempool,
    /// `XEN_SYSCTL_cputopoinfo`, `XEN_SYSCTL_numainfo`, `XEN_SYSCTL_pcitopoinfo`.
    Topology,
    /// `XEN_DOMCTL_getvcpucontext`.
    GetVcpuContext,
    /// `XENMEM_maximum_gpfn`, `XENMEM_maximum_ram_page`.
    MemoryLimits,
}

impl Step {
    /// The step's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Step::HypercallBuffer => "allocating a hypercall buffer",
            Step::CreateDomain => "creating the domain",
            Step::DestroyDomain => "destroying the domain",
            Step::PauseDomain => "pausing the domain",
            Step::UnpauseDomain => "unpausing the domain",
            Step::DomainInfo => "getting domain info",
            Step::ListDomains => "listing domains",
            Step::Physinfo => "getting host info",
            Step::MaxMem => "setting max memory",
            Step::SetTarget => "setting the stub domain's target",
            Step::MaxVcpus => "setting max vcpus",
            Step::SetAddressSize => "setting the address size",
            Step::GetAddressSize => "reading the address size",
            Step::SetVcpuContext => "setting the vcpu context",
            Step::HypercallInit => "initialising the hypercall page",
            Step::PopulatePhysmap => "populating memory",
            Step::SetMemoryMap => "setting the memory map",
            Step::MmuUpdate => "updating machine-to-phys entries",
            Step::PinTable => "pinning the page table",
            Step::EvtchnAllocUnbound => "allocating an event channel",
            Step::EvtchnClose => "closing an event channel",
            Step::GrantSetupTable => "setting up the grant table",
            Step::MapGrantTable => "mapping the grant table",
            Step::MapArea => "reserving a mapping area",
            Step::MapForeign => "mapping guest pages",
            Step::XenVersion => "getting the Xen version",
            Step::Capabilities => "getting Xen's capabilities",
            Step::SetVcpuAffinity => "setting vcpu affinity",
            Step::GetVcpuAffinity => "reading vcpu affinity",
            Step::GetVcpuInfo => "reading vcpu state",
            Step::ReadConsole => "reading the hypervisor's console ring",
            Step::SchedId => "reading the scheduler",
            Step::SharingPages => "reading the memory sharing counters",
            Step::SchedGet => "reading scheduler parameters",
            Step::SchedSet => "setting scheduler parameters",
            Step::CpupoolInfo => "listing cpupools",
            Step::HvmSetParam => "setting an HVM parameter",
            Step::GetHvmContext => "reading the HVM context",
            Step::SetHvmContext => "setting the HVM context",
            Step::PagingMempool => "setting the paging pool size",
            Step::Topology => "reading the host's topology",
            Step::GetVcpuContext => "reading a vcpu's context",
            Step::MemoryLimits => "reading the highest frame numbers",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed Xen operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XenError {
    /// A device could not be opened.
    #[error("opening {path}: {errno}")]
    Open {
        /// The device.
        path: &'static str,
        /// Its errno.
        errno: Errno,
    },
    /// A hypercall or ioctl failed.
    #[error("{step} (domain {domid}): {errno}")]
    Call {
        /// What failed.
        step: Step,
        /// The domain it was for ([`DOMID_SELF`] for host-wide calls).
        domid: u16,
        /// The errno Xen or the kernel gave.
        errno: Errno,
    },
    /// A batch operation did less than asked.
    #[error("{step} (domain {domid}): only {done} of {wanted} done")]
    Short {
        /// What failed.
        step: Step,
        /// The domain.
        domid: u16,
        /// Items done.
        done: u64,
        /// Items asked for.
        wanted: u64,
    },
    /// One page of a foreign mapping failed.
    #[error("mapping page {index} (mfn {mfn:#x}) of domain {domid}: {errno}")]
    MapPage {
        /// The domain.
        domid: u16,
        /// Index of the page in the request.
        index: usize,
        /// Its machine frame.
        mfn: u64,
        /// The per-page error.
        errno: Errno,
    },
    /// `GNTTABOP_setup_table` returned a bad status.
    #[error("setting up the grant table of domain {domid}: status {status}")]
    GrantStatus {
        /// The domain.
        domid: u16,
        /// `GNTST_*`.
        status: i16,
    },
    /// `getdomaininfo` reported another domain (the asked-for one does not exist).
    #[error("domain {domid} does not exist")]
    NoSuchDomain {
        /// The domain asked for.
        domid: u16,
    },
    /// A value out of what the ABI can carry, or one Xen returned that makes no sense.
    #[error("{step}: {what} out of range: {value:#x}")]
    OutOfRange {
        /// What was being done.
        step: Step,
        /// Which value.
        what: &'static str,
        /// The value.
        value: u64,
    },
}

fn call_err(step: Step, domid: u16) -> impl FnOnce(Errno) -> XenError {
    move |errno| XenError::Call { step, domid, errno }
}

fn range(step: Step, what: &'static str, value: u64) -> XenError {
    XenError::OutOfRange { step, what, value }
}

/// Pages needed for `bytes` bytes (at least one).
fn pages_for(bytes: usize) -> NonZeroUsize {
    NonZeroUsize::new(bytes.div_ceil(PAGE_SIZE)).unwrap_or(NonZeroUsize::MIN)
}

/// A hypercall buffer holding `len` values of `T`, freed on drop.
struct HcBuf<'a, T> {
    backend: &'a dyn Backend,
    ptr: NonNull<u8>,
    pages: NonZeroUsize,
    len: usize,
    _t: PhantomData<T>,
}

impl<'a, T: FromBytes + IntoBytes + Immutable + KnownLayout + Copy> HcBuf<'a, T> {
    /// A zeroed buffer of `len` values.
    fn zeroed(
        backend: &'a dyn Backend,
        len: usize,
        step: Step,
        domid: u16,
    ) -> Result<Self, XenError> {
        let bytes = len
            .checked_mul(size_of::<T>())
            .ok_or_else(|| range(step, "buffer length", len as u64))?;
        let pages = pages_for(bytes);
        let ptr = backend
            .alloc_buffer(pages)
            .map_err(|errno| XenError::Call {
                step: Step::HypercallBuffer,
                domid,
                errno,
            })?;
        // Page alignment covers every ABI struct's alignment.
        const { assert!(align_of::<T>() <= PAGE_SIZE) };
        Ok(Self {
            backend,
            ptr,
            pages,
            len,
            _t: PhantomData,
        })
    }

    /// A buffer holding a copy of `src`.
    fn from_slice(
        backend: &'a dyn Backend,
        src: &[T],
        step: Step,
        domid: u16,
    ) -> Result<Self, XenError> {
        let mut b = Self::zeroed(backend, src.len(), step, domid)?;
        b.as_mut_slice().copy_from_slice(src);
        Ok(b)
    }

    /// A buffer holding `v`.
    fn with(backend: &'a dyn Backend, v: &T, step: Step, domid: u16) -> Result<Self, XenError> {
        Self::from_slice(backend, core::slice::from_ref(v), step, domid)
    }

    fn as_slice(&self) -> &[T] {
        // SAFETY: the buffer is page aligned (so aligned for T), at least `len * size_of<T>`
        // bytes, initialised (zeroed at allocation), and any bytes are a valid T
        // (`T: FromBytes`); `&self` keeps it alive and unaliased by `&mut`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().cast::<T>(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`; `&mut self` makes the view exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<T>(), self.len) }
    }

    /// The first value (zeroed if the buffer is empty).
    fn get(&self) -> T {
        self.as_slice()
            .first()
            .copied()
            .unwrap_or_else(T::new_zeroed)
    }

    /// The buffer's address, as a hypercall argument.
    fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }
}

impl<T> Drop for HcBuf<'_, T> {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_buffer(self.pages)` on this backend; the borrow of
        // `self` ends here, so no view into it outlives the free.
        unsafe { self.backend.free_buffer(self.ptr, self.pages) };
    }
}

/// A domain's configuration at creation (`struct xen_domctl_createdomain`, as libxl fills
/// it for a PV guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainConfig {
    /// The domain's UUID.
    pub handle: [u8; 16],
    /// Number of vcpus.
    pub max_vcpus: u32,
    /// Highest event-channel port (libxl's default: 1023).
    pub max_evtchn_port: u32,
    /// Grant-table frames (-1: the hypervisor's default, libxl's default).
    pub max_grant_frames: i32,
    /// Maptrack frames (-1: the hypervisor's default).
    pub max_maptrack_frames: i32,
    /// Highest grant-table version (libxl takes the highest the host supports).
    pub max_grant_version: u32,
    /// `XEN_DOMCTL_CDF_*` (0 for plain PV).
    pub flags: u32,
    /// The CPU pool the domain is created in (0: `Pool-0`, libxl's default).
    pub cpupool_id: u32,
    /// `XEN_X86_EMU_*`: the devices Xen emulates (none for PV, the LAPIC for PVH).
    pub emulation_flags: u32,
}

impl DomainConfig {
    /// libxl's defaults for a PV guest with `max_vcpus` vcpus and grant-table version
    /// `max_grant_version`.
    pub const fn pv(max_vcpus: u32, max_grant_version: u32) -> Self {
        Self {
            handle: [0; 16],
            max_vcpus,
            max_evtchn_port: 1023,
            max_grant_frames: -1,
            max_maptrack_frames: -1,
            max_grant_version,
            flags: 0,
            cpupool_id: 0,
            emulation_flags: 0,
        }
    }
}

/// What `getdomaininfo` tells of a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    /// Domain id.
    pub domid: u16,
    /// `XEN_DOMINF_*` flags and shutdown code.
    pub flags: u32,
    /// Pages the domain has.
    pub tot_pages: u64,
    /// Its page limit.
    pub max_pages: u64,
    /// Pages claimed but not yet allocated.
    pub outstanding_pages: u64,
    /// Machine frame of its shared_info.
    pub shared_info_frame: u64,
    /// CPU time used, ns.
    pub cpu_time: u64,
    /// Vcpus online.
    pub nr_online_vcpus: u32,
    /// Highest vcpu id.
    pub max_vcpu_id: u32,
    /// UUID.
    pub handle: [u8; 16],
    /// The CPU pool the domain is in.
    pub cpupool: u32,
}

impl DomainInfo {
    fn from_raw(r: &XenDomctlGetdomaininfo) -> Self {
        Self {
            domid: r.domain,
            flags: r.flags,
            tot_pages: r.tot_pages,
            max_pages: r.max_pages,
            outstanding_pages: r.outstanding_pages,
            shared_info_frame: r.shared_info_frame,
            cpu_time: r.cpu_time,
            nr_online_vcpus: r.nr_online_vcpus,
            max_vcpu_id: r.max_vcpu_id,
            handle: r.handle,
            cpupool: r.cpupool,
        }
    }
    /// The domain is dying.
    pub const fn dying(&self) -> bool {
        self.flags & XEN_DOMINF_DYING != 0
    }
    /// The domain is an HVM container (HVM or PVH guest).
    pub const fn hvm(&self) -> bool {
        self.flags & XEN_DOMINF_HVM_GUEST != 0
    }
    /// The domain has shut down.
    pub const fn shutdown(&self) -> bool {
        self.flags & XEN_DOMINF_SHUTDOWN != 0
    }
    /// The guest's shutdown code (`SHUTDOWN_poweroff` = 0, reboot = 1, suspend = 2,
    /// crash = 3, watchdog = 4, soft_reset = 5), meaningful when [`Self::shutdown`].
    pub const fn shutdown_reason(&self) -> u32 {
        (self.flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK
    }
    /// The domain is paused by the toolstack.
    pub const fn paused(&self) -> bool {
        self.flags & XEN_DOMINF_PAUSED != 0
    }
    /// The domain is running.
    pub const fn running(&self) -> bool {
        self.flags & XEN_DOMINF_RUNNING != 0
    }
    /// The domain is blocked.
    pub const fn blocked(&self) -> bool {
        self.flags & XEN_DOMINF_BLOCKED != 0
    }
}

/// The page-table level to pin as the top table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinLevel {
    /// 2-level (legacy 32-bit): pin an L2.
    L2,
    /// PAE: pin an L3.
    L3,
    /// x86-64: pin an L4.
    L4,
}

impl PinLevel {
    const fn cmd(self) -> u32 {
        match self {
            PinLevel::L2 => MMUEXT_PIN_L2_TABLE,
            PinLevel::L3 => MMUEXT_PIN_L3_TABLE,
            PinLevel::L4 => MMUEXT_PIN_L4_TABLE,
        }
    }
}

/// A grant the builder seeds in a new guest's table: `backend` may map `frame`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedGrant {
    /// The domain granted access (the console or xenstore backend, usually dom0).
    pub backend: u16,
    /// The guest frame (machine frame for PV) of the ring.
    pub frame: Mfn,
}

/// Superpage order of populate_physmap's 2 MiB extents.
pub const SUPERPAGE_ORDER: u32 = 9;
/// Pages in a 2 MiB extent.
pub const SUPERPAGE_PAGES: u64 = 1 << SUPERPAGE_ORDER;
/// Superpage extents per populate_physmap call (libxenguest's `SUPERPAGE_BATCH_SIZE`).
pub const SUPERPAGE_BATCH: u64 = 512;
/// 4 KiB extents per populate_physmap call (libxenguest's `allocsz`).
pub const PAGE_BATCH: u64 = 1024 * 1024;
/// Entries per mmu_update call (libxenguest's `MAX_MMU_UPDATES`).
pub const MMU_UPDATE_BATCH: usize = 1024;
/// Domains per getdomaininfolist call.
const LIST_BATCH: u32 = 256;
/// Retries of destroydomain while Xen reports it is still tearing the domain down.
const DESTROY_RETRIES: u32 = 100_000;

/// A handle on the hypervisor.
#[derive(Debug, Clone)]
pub struct Xen {
    backend: Arc<dyn Backend>,
}

impl Xen {
    /// Opens the privcmd and hypercall-buffer devices.
    pub fn open() -> Result<Self, XenError> {
        let p = Privcmd::open().map_err(|e| XenError::Open {
            path: e.path,
            errno: e.errno,
        })?;
        Ok(Self {
            backend: Arc::new(p),
        })
    }

    /// A handle over any backend (a fake in tests).
    pub fn with_backend(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Issues one hypercall.
    ///
    /// # Safety
    /// Every argument that Xen reads as an address must be the address of a live hypercall
    /// buffer large enough for what `op` does with it.
    unsafe fn hypercall(&self, op: u64, arg: [u64; 5]) -> Result<i32, Errno> {
        let mut hc = PrivcmdHypercall { op, arg };
        // SAFETY: `hc` is a valid privcmd_hypercall for the call's duration; the caller
        // guarantees the addresses inside it.
        unsafe {
            self.backend
                .ioctl(IOCTL_PRIVCMD_HYPERCALL, (&raw mut hc).cast::<c_void>())
        }
    }

    /// Runs domctl `cmd` on `domid` with `payload` in the union; returns the domctl as Xen
    /// left it.
    fn domctl<P: IntoBytes + Immutable>(
        &self,
        step: Step,
        domid: u16,
        cmd: u32,
        payload: &P,
    ) -> Result<XenDomctl, XenError> {
        let mut d = XenDomctl::new_zeroed();
        d.cmd = cmd;
        d.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
        d.domain = domid;
        let src = payload.as_bytes();
        let dst = d.u.as_mut_bytes();
        dst.get_mut(..src.len())
            .ok_or_else(|| range(step, "domctl payload size", src.len() as u64))?
            .copy_from_slice(src);
        let buf = HcBuf::with(&*self.backend, &d, step, domid)?;
        // SAFETY: argument 0 is a live hypercall buffer holding one xen_domctl; the payloads
        // that carry handles (vcpucontext) point at buffers the caller keeps alive.
        unsafe { self.hypercall(HYPERVISOR_DOMCTL, [buf.addr(), 0, 0, 0, 0]) }
            .map_err(call_err(step, domid))?;
        Ok(buf.get())
    }

    fn sysctl<P: IntoBytes + Immutable>(
        &self,
        step: Step,
        cmd: u32,
        payload: &P,
    ) -> Result<XenSysctl, XenError> {
        let mut s = XenSysctl::new_zeroed();
        s.cmd = cmd;
        s.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
        let src = payload.as_bytes();
        s.u.as_mut_bytes()
            .get_mut(..src.len())
            .ok_or_else(|| range(step, "sysctl payload size", src.len() as u64))?
            .copy_from_slice(src);
        let buf = HcBuf::with(&*self.backend, &s, step, DOMID_SELF)?;
        // SAFETY: argument 0 is a live buffer holding one xen_sysctl; handles inside the
        // payload point at buffers the caller keeps alive.
        unsafe { self.hypercall(HYPERVISOR_SYSCTL, [buf.addr(), 0, 0, 0, 0]) }
            .map_err(call_err(step, DOMID_SELF))?;
        Ok(buf.get())
    }

    /// Creates a domain (`requested` id, or Xen's choice) and returns its id.
    pub fn create_domain(
        &self,
        cfg: &DomainConfig,
        requested: Option<u16>,
    ) -> Result<u16, XenError> {
        let c = XenDomctlCreatedomain {
            ssidref: 0,
            handle: cfg.handle,
            flags: cfg.flags,
            iommu_opts: 0,
            max_vcpus: cfg.max_vcpus,
            max_evtchn_port: cfg.max_evtchn_port,
            max_grant_frames: cfg.max_grant_frames,
            max_maptrack_frames: cfg.max_maptrack_frames,
            grant_opts: cfg.max_grant_version & 0xf,
            vmtrace_size: 0,
            cpupool_id: cfg.cpupool_id,
            arch: XenArchDomainconfig {
                emulation_flags: cfg.emulation_flags,
                misc_flags: 0,
            },
        };
        let domid = requested.unwrap_or(0);
        let out = self.domctl(Step::CreateDomain, domid, XEN_DOMCTL_CREATEDOMAIN, &c)?;
        if out.domain == 0 || out.domain >= DOMID_FIRST_RESERVED {
            return Err(range(
                Step::CreateDomain,
                "new domain id",
                u64::from(out.domain),
            ));
        }
        Ok(out.domain)
    }

    /// Destroys a domain, retrying while Xen is still relinquishing its resources.
    pub fn destroy_domain(&self, domid: u16) -> Result<(), XenError> {
        for _ in 0..DESTROY_RETRIES {
            match self.domctl(Step::DestroyDomain, domid, XEN_DOMCTL_DESTROYDOMAIN, &()) {
                Err(XenError::Call {
                    errno: Errno::EAGAIN,
                    ..
                }) => continue,
                other => return other.map(drop),
            }
        }
        Err(XenError::Call {
            step: Step::DestroyDomain,
            domid,
            errno: Errno::EAGAIN,
        })
    }

    /// Pauses a domain.
    pub fn pause_domain(&self, domid: u16) -> Result<(), XenError> {
        self.domctl(Step::PauseDomain, domid, XEN_DOMCTL_PAUSEDOMAIN, &())
            .map(drop)
    }

    /// Unpauses a domain: lets it run.
    pub fn unpause_domain(&self, domid: u16) -> Result<(), XenError> {
        self.domctl(Step::UnpauseDomain, domid, XEN_DOMCTL_UNPAUSEDOMAIN, &())
            .map(drop)
    }

    /// Information on one domain.
    pub fn domain_info(&self, domid: u16) -> Result<DomainInfo, XenError> {
        let out = self.domctl(Step::DomainInfo, domid, XEN_DOMCTL_GETDOMAININFO, &())?;
        let raw = XenDomctlGetdomaininfo::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(Step::DomainInfo, "reply size", 0))?;
        // Xen 4.17 answers with the first domain at or after the one asked for.
        if raw.domain != domid {
            return Err(XenError::NoSuchDomain { domid });
        }
        Ok(DomainInfo::from_raw(&raw))
    }

    /// Every domain, in id order.
    pub fn list_domains(&self) -> Result<Vec<DomainInfo>, XenError> {
        let mut all = Vec::new();
        let mut first: u16 = 0;
        loop {
            let buf: HcBuf<'_, XenDomctlGetdomaininfo> = HcBuf::zeroed(
                &*self.backend,
                LIST_BATCH as usize,
                Step::ListDomains,
                DOMID_SELF,
            )?;
            let req = XenSysctlGetdomaininfolist {
                first_domain: first,
                max_domains: LIST_BATCH,
                buffer: buf.addr(),
                ..Default::default()
            };
            let out = self.sysctl(Step::ListDomains, XEN_SYSCTL_GETDOMAININFOLIST, &req)?;
            let reply = XenSysctlGetdomaininfolist::read_from_prefix(out.u.as_bytes())
                .map(|(r, _)| r)
                .map_err(|_| range(Step::ListDomains, "reply size", 0))?;
            let n = reply.num_domains;
            let got = buf
                .as_slice()
                .get(..n as usize)
                .ok_or_else(|| range(Step::ListDomains, "num_domains", u64::from(n)))?;
            all.extend(got.iter().map(DomainInfo::from_raw));
            match got.last() {
                Some(last) if n == LIST_BATCH && last.domain < DOMID_FIRST_RESERVED - 1 => {
                    first = last.domain + 1
                }
                _ => return Ok(all),
            }
        }
    }

    /// Host information (`XEN_SYSCTL_physinfo`).
    pub fn physinfo(&self) -> Result<XenSysctlPhysinfo, XenError> {
        let out = self.sysctl(
            Step::Physinfo,
            XEN_SYSCTL_PHYSINFO,
            &XenSysctlPhysinfo::default(),
        )?;
        XenSysctlPhysinfo::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(Step::Physinfo, "reply size", 0))
    }

    /// The highest grant-table version the host supports (libxl's default for new domains).
    pub fn max_grant_version(&self) -> Result<u32, XenError> {
        let caps = self.physinfo()?.capabilities;
        Ok(if caps & XEN_SYSCTL_PHYSCAP_GNTTAB_V2 != 0 {
            2
        } else if caps & XEN_SYSCTL_PHYSCAP_GNTTAB_V1 != 0 {
            1
        } else {
            0
        })
    }

    /// Caps the domain's memory at `kib` KiB.
    pub fn max_mem(&self, domid: u16, kib: u64) -> Result<(), XenError> {
        self.domctl(
            Step::MaxMem,
            domid,
            XEN_DOMCTL_MAX_MEM,
            &XenDomctlMaxMem { max_memkb: kib },
        )
        .map(drop)
    }

    /// Gives `domid` (a stub domain) privilege over `target` (its HVM guest), as
    /// `xc_domain_set_target`: Xen 4.17 accepts only an HVM or PVH target.
    pub fn set_target(&self, domid: u16, target: u16) -> Result<(), XenError> {
        self.domctl(
            Step::SetTarget,
            domid,
            XEN_DOMCTL_SET_TARGET,
            &XenDomctlSetTarget { target },
        )
        .map(drop)
    }

    /// Sets the pseudo-physical memory map a PV guest reads with `XENMEM_memory_map`
    /// (`xc_domain_set_memory_map`): at most [`E820MAX`] entries, the array and the
    /// argument each in a hypercall buffer.
    pub fn set_memory_map(&self, domid: u16, entries: &[E820Entry]) -> Result<(), XenError> {
        let step = Step::SetMemoryMap;
        if entries.is_empty() || entries.len() > E820MAX {
            return Err(range(step, "memory map entries", entries.len() as u64));
        }
        let list = HcBuf::from_slice(&*self.backend, entries, step, domid)?;
        let arg = XenForeignMemoryMap {
            domid,
            _pad: [0; 3],
            map: XenMemoryMap {
                nr_entries: entries.len() as u32,
                _pad: 0,
                buffer: list.addr(),
            },
        };
        let buf = HcBuf::with(&*self.backend, &arg, step, domid)?;
        // SAFETY: argument 1 is a live buffer holding one xen_foreign_memory_map whose
        // handle is the live buffer `list` of `nr_entries` entries.
        unsafe {
            self.hypercall(
                HYPERVISOR_MEMORY_OP,
                [XENMEM_SET_MEMORY_MAP, buf.addr(), 0, 0, 0],
            )
        }
        .map_err(call_err(step, domid))
        .map(drop)
    }

    /// Limits a PV guest's memory map to `kib` KiB: one `E820_RAM` entry from 0, as
    /// libxl's `libxl__arch_domain_create` does through `xc_domain_set_memmap_limit` with
    /// `max_memkb + slack_memkb`. The guest's balloon driver may grow it up to that size.
    pub fn set_memmap_limit(&self, domid: u16, kib: u64) -> Result<(), XenError> {
        let bytes = kib
            .checked_mul(1024)
            .ok_or_else(|| range(Step::SetMemoryMap, "memory map limit (KiB)", kib))?;
        let ram = E820Entry {
            addr: 0.into(),
            size: bytes.into(),
            r#type: E820_RAM.into(),
        };
        self.set_memory_map(domid, &[ram])
    }

    /// Sets the domain's number of vcpus.
    pub fn max_vcpus(&self, domid: u16, n: u32) -> Result<(), XenError> {
        self.domctl(
            Step::MaxVcpus,
            domid,
            XEN_DOMCTL_MAX_VCPUS,
            &XenDomctlMaxVcpus { max: n },
        )
        .map(drop)
    }

    /// Sets the guest's address size (64 for x86-64 PV, 32 for PAE), as libxenguest's
    /// `x86_compat` does.
    pub fn set_address_size(&self, domid: u16, bits: u32) -> Result<(), XenError> {
        self.domctl(
            Step::SetAddressSize,
            domid,
            XEN_DOMCTL_SET_ADDRESS_SIZE,
            &XenDomctlAddressSize { size: bits },
        )
        .map(drop)
    }

    /// The guest's address size (64 for x86-64 PV, 32 for PAE).
    pub fn address_size(&self, domid: u16) -> Result<u32, XenError> {
        let out = self.domctl(
            Step::GetAddressSize,
            domid,
            XEN_DOMCTL_GET_ADDRESS_SIZE,
            &XenDomctlAddressSize { size: 0 },
        )?;
        XenDomctlAddressSize::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r.size)
            .map_err(|_| range(Step::GetAddressSize, "reply size", 0))
    }

    /// Sets vcpu `vcpu`'s initial context.
    pub fn set_vcpu_context(
        &self,
        domid: u16,
        vcpu: u32,
        ctxt: &VcpuGuestContext,
    ) -> Result<(), XenError> {
        let buf = HcBuf::with(&*self.backend, ctxt, Step::SetVcpuContext, domid)?;
        let req = XenDomctlVcpucontext {
            vcpu,
            _pad: 0,
            ctxt: buf.addr(),
        };
        let r = self.domctl(Step::SetVcpuContext, domid, XEN_DOMCTL_SETVCPUCONTEXT, &req);
        drop(buf);
        r.map(drop)
    }

    /// Sets vcpu `vcpu`'s initial context from its bytes in the guest's own layout (the
    /// 64-bit `vcpu_guest_context`, or the 32-bit one of a compat guest, as libxenguest's
    /// `vcpu_guest_context_any_t`).
    pub fn set_vcpu_context_bytes(
        &self,
        domid: u16,
        vcpu: u32,
        ctxt: &[u8],
    ) -> Result<(), XenError> {
        let step = Step::SetVcpuContext;
        let len = ctxt.len().max(size_of::<VcpuGuestContext>());
        let mut buf: HcBuf<'_, u8> = HcBuf::zeroed(&*self.backend, len, step, domid)?;
        buf.as_mut_slice()
            .get_mut(..ctxt.len())
            .ok_or_else(|| range(step, "context size", ctxt.len() as u64))?
            .copy_from_slice(ctxt);
        let req = XenDomctlVcpucontext {
            vcpu,
            _pad: 0,
            ctxt: buf.addr(),
        };
        let r = self.domctl(step, domid, XEN_DOMCTL_SETVCPUCONTEXT, &req);
        drop(buf);
        r.map(drop)
    }

    /// Asks Xen to write the hypercall page into guest frame `gmfn`.
    pub fn hypercall_init(&self, domid: u16, gmfn: Mfn) -> Result<(), XenError> {
        let req = XenDomctlHypercallInit { gmfn: gmfn.get() };
        self.domctl(Step::HypercallInit, domid, XEN_DOMCTL_HYPERCALL_INIT, &req)
            .map(drop)
    }

    /// One `XENMEM_populate_physmap`: `extents` holds guest frames in and machine frames
    /// out. Returns the number of extents done.
    fn populate_once(&self, domid: u16, extents: &mut [u64], order: u32) -> Result<u64, XenError> {
        let step = Step::PopulatePhysmap;
        let mut list = HcBuf::from_slice(&*self.backend, extents, step, domid)?;
        let r = XenMemoryReservation {
            extent_start: list.addr(),
            nr_extents: extents.len() as u64,
            extent_order: order,
            mem_flags: 0,
            domid,
            _pad: [0; 3],
        };
        let rbuf = HcBuf::with(&*self.backend, &r, step, domid)?;
        // SAFETY: argument 1 is a live buffer holding a reservation whose extent list is the
        // live buffer `list` of `nr_extents` frames.
        let done = unsafe {
            self.hypercall(
                HYPERVISOR_MEMORY_OP,
                [XENMEM_POPULATE_PHYSMAP, rbuf.addr(), 0, 0, 0],
            )
        }
        .map_err(call_err(step, domid))?;
        let done = u64::try_from(done).map_err(|_| range(step, "extents done", 0))?;
        if done > extents.len() as u64 {
            return Err(range(step, "extents done", done));
        }
        extents.copy_from_slice(list.as_mut_slice());
        Ok(done)
    }

    /// Gives the domain `nr_pages` pages of memory, pfns `[0, nr_pages)`, as libxenguest's
    /// `meminit_pv` does: 2 MiB extents for every whole, aligned 2 MiB run while Xen has
    /// them, then 4 KiB pages for the rest. Returns the pfn → mfn list.
    pub fn populate_physmap(&self, domid: u16, nr_pages: u64) -> Result<Vec<Mfn>, XenError> {
        let step = Step::PopulatePhysmap;
        let n = usize::try_from(nr_pages).map_err(|_| range(step, "page count", nr_pages))?;
        let mut p2m: Vec<u64> = Vec::new();
        p2m.try_reserve_exact(n)
            .map_err(|_| range(step, "page count", nr_pages))?;
        let mut next: u64 = 0;
        // Superpages, in batches, until Xen gives fewer than asked.
        let mut super_left = nr_pages / SUPERPAGE_PAGES;
        while super_left > 0 {
            let count = super_left.min(SUPERPAGE_BATCH);
            let mut ext: Vec<u64> = (0..count).map(|j| next + j * SUPERPAGE_PAGES).collect();
            let done = self.populate_once(domid, &mut ext, SUPERPAGE_ORDER)?;
            for &base in ext.iter().take(done as usize) {
                p2m.extend((0..SUPERPAGE_PAGES).map(|k| base + k));
            }
            next += done * SUPERPAGE_PAGES;
            if done < count {
                break;
            }
            super_left -= count;
        }
        // The rest in 4 KiB pages; every one must succeed.
        while next < nr_pages {
            let count = (nr_pages - next).min(PAGE_BATCH);
            let mut ext: Vec<u64> = (next..next + count).collect();
            let done = self.populate_once(domid, &mut ext, 0)?;
            if done < count {
                return Err(XenError::Short {
                    step,
                    domid,
                    done: next + done,
                    wanted: nr_pages,
                });
            }
            p2m.extend_from_slice(&ext);
            next += count;
        }
        p2m.into_iter()
            .map(|m| Mfn::new(m).map_err(|_| range(step, "returned mfn", m)))
            .collect()
    }

    /// Applies mmu_update requests for `domid`, [`MMU_UPDATE_BATCH`] per hypercall.
    pub fn mmu_update(&self, domid: u16, updates: &[MmuUpdate]) -> Result<(), XenError> {
        let step = Step::MmuUpdate;
        let mut done_before: u64 = 0;
        for chunk in updates.chunks(MMU_UPDATE_BATCH) {
            let reqs = HcBuf::from_slice(&*self.backend, chunk, step, domid)?;
            let done: HcBuf<'_, u32> = HcBuf::zeroed(&*self.backend, 1, step, domid)?;
            // SAFETY: argument 0 is a live buffer of `chunk.len()` requests, argument 2 a live
            // buffer for the success count.
            let r = unsafe {
                self.hypercall(
                    HYPERVISOR_MMU_UPDATE,
                    [
                        reqs.addr(),
                        chunk.len() as u64,
                        done.addr(),
                        u64::from(domid),
                        0,
                    ],
                )
            };
            let ok = u64::from(done.get());
            match r {
                Err(errno) => return Err(XenError::Call { step, domid, errno }),
                Ok(_) if ok != chunk.len() as u64 => {
                    return Err(XenError::Short {
                        step,
                        domid,
                        done: done_before + ok,
                        wanted: updates.len() as u64,
                    })
                }
                Ok(_) => done_before += ok,
            }
        }
        Ok(())
    }

    /// Records `pfn` as the guest frame of machine frame `mfn` for every pair, in batches
    /// (`MMU_MACHPHYS_UPDATE`).
    pub fn set_machphys(&self, domid: u16, pairs: &[(Mfn, Pfn)]) -> Result<(), XenError> {
        let reqs: Vec<MmuUpdate> = pairs
            .iter()
            .map(|&(m, p)| MmuUpdate {
                ptr: m.addr() | MMU_MACHPHYS_UPDATE,
                val: p.get(),
            })
            .collect();
        self.mmu_update(domid, &reqs)
    }

    /// Pins `mfn` as a page table of `level` in `domid`.
    pub fn pin_table(&self, domid: u16, level: PinLevel, mfn: Mfn) -> Result<(), XenError> {
        let step = Step::PinTable;
        let op = MmuextOp {
            cmd: level.cmd(),
            _pad: 0,
            arg1: mfn.get(),
            arg2: 0,
        };
        let buf = HcBuf::with(&*self.backend, &op, step, domid)?;
        // SAFETY: argument 0 is a live buffer of one mmuext_op; the success count is NULL.
        unsafe {
            self.hypercall(
                HYPERVISOR_MMUEXT_OP,
                [buf.addr(), 1, 0, u64::from(domid), 0],
            )
        }
        .map_err(call_err(step, domid))
        .map(drop)
    }

    /// Allocates an unbound event channel in `domid` that `remote` may bind; returns the port.
    pub fn evtchn_alloc_unbound(&self, domid: u16, remote: u16) -> Result<u32, XenError> {
        let step = Step::EvtchnAllocUnbound;
        let buf = HcBuf::with(
            &*self.backend,
            &EvtchnAllocUnbound {
                dom: domid,
                remote_dom: remote,
                port: 0,
            },
            step,
            domid,
        )?;
        // SAFETY: argument 1 is a live buffer of one evtchn_alloc_unbound.
        unsafe {
            self.hypercall(
                HYPERVISOR_EVENT_CHANNEL_OP,
                [EVTCHNOP_ALLOC_UNBOUND, buf.addr(), 0, 0, 0],
            )
        }
        .map_err(call_err(step, domid))?;
        Ok(buf.get().port)
    }

    /// Closes one of this domain's event-channel ports.
    pub fn evtchn_close(&self, port: u32) -> Result<(), XenError> {
        let step = Step::EvtchnClose;
        let buf = HcBuf::with(&*self.backend, &EvtchnClose { port }, step, DOMID_SELF)?;
        // SAFETY: argument 1 is a live buffer of one evtchn_close.
        unsafe {
            self.hypercall(
                HYPERVISOR_EVENT_CHANNEL_OP,
                [EVTCHNOP_CLOSE, buf.addr(), 0, 0, 0],
            )
        }
        .map_err(call_err(step, DOMID_SELF))
        .map(drop)
    }

    /// Maps `mfns` of `domid` into one contiguous view with ONE
    /// `IOCTL_PRIVCMD_MMAPBATCH_V2`, as libxenforeignmemory does: Linux refuses (EINVAL) a
    /// first batch on a fresh mapping that does not cover the whole mapping, so an area cannot
    /// be filled in pieces. The privcmd backend maps in runs of at most a few MiB
    /// around each request (`crate::xen::privcmd_mem`).
    pub fn map_foreign(&self, domid: u16, mfns: &[Mfn]) -> Result<ForeignMapping, XenError> {
        self.map_foreign_prot(domid, mfns, true)
    }

    /// [`Self::map_foreign`] read-only (`PROT_READ`, as libxenguest maps what it only
    /// reads): Xen refuses a writable mapping of a PV guest's page tables.
    pub fn map_foreign_readonly(
        &self,
        domid: u16,
        mfns: &[Mfn],
    ) -> Result<ReadOnlyMapping, XenError> {
        self.map_foreign_prot(domid, mfns, false)
            .map(ReadOnlyMapping)
    }

    fn map_foreign_prot(
        &self,
        domid: u16,
        mfns: &[Mfn],
        writable: bool,
    ) -> Result<ForeignMapping, XenError> {
        let step = Step::MapForeign;
        let pages = NonZeroUsize::new(mfns.len()).ok_or_else(|| range(step, "page count", 0))?;
        let num =
            u32::try_from(mfns.len()).map_err(|_| range(step, "page count", mfns.len() as u64))?;
        let map = if writable {
            ForeignMapping::reserve(&self.backend, pages, domid)?
        } else {
            ForeignMapping::reserve_readonly(&self.backend, pages, domid)?
        };
        let arr: Vec<u64> = mfns.iter().map(|m| m.get()).collect();
        let mut err: Vec<i32> = vec![0; mfns.len()];
        let mut req = PrivcmdMmapbatchV2 {
            num,
            dom: domid,
            _pad: 0,
            addr: map.addr(),
            arr: arr.as_ptr() as u64,
            err: err.as_mut_ptr() as u64,
        };
        // SAFETY: `req` is a valid privcmd_mmapbatch_v2 whose `addr` is the start of the area
        // `map` owns (`num` pages long), and whose `arr`/`err` point to live vectors of `num`
        // entries.
        let r = unsafe {
            self.backend
                .ioctl(IOCTL_PRIVCMD_MMAPBATCH_V2, (&raw mut req).cast::<c_void>())
        };
        // Per-page errors come back in `err` whether or not the ioctl itself failed.
        if let Some((i, &e)) = err.iter().enumerate().find(|(_, &e)| e != 0) {
            return Err(XenError::MapPage {
                domid,
                index: i,
                mfn: arr.get(i).copied().unwrap_or(0),
                errno: Errno::from_raw(e.saturating_neg()),
            });
        }
        r.map_err(call_err(step, domid))?;
        Ok(map)
    }

    /// Maps `num` frames of a resource of `domid` (`IOCTL_PRIVCMD_MMAP_RESOURCE`).
    fn map_resource(
        &self,
        domid: u16,
        rtype: u32,
        id: u32,
        idx: u32,
        num: NonZeroUsize,
    ) -> Result<ForeignMapping, XenError> {
        let step = Step::MapGrantTable;
        let map = ForeignMapping::reserve(&self.backend, num, domid)?;
        let mut req = PrivcmdMmapResource {
            dom: domid,
            _pad: 0,
            r#type: rtype,
            id,
            idx,
            num: num.get() as u64,
            addr: map.addr(),
        };
        // SAFETY: `req` is a valid privcmd_mmap_resource whose `addr` is the start of the
        // area `map` owns, `num` pages long.
        unsafe {
            self.backend
                .ioctl(IOCTL_PRIVCMD_MMAP_RESOURCE, (&raw mut req).cast::<c_void>())
        }
        .map_err(call_err(step, domid))?;
        Ok(map)
    }

    /// `GNTTABOP_setup_table` for one frame: the machine frame of the guest's first grant
    /// frame.
    fn grant_setup_table(&self, domid: u16) -> Result<Mfn, XenError> {
        let step = Step::GrantSetupTable;
        let frames: HcBuf<'_, u64> = HcBuf::zeroed(&*self.backend, 1, step, domid)?;
        let setup = GnttabSetupTable {
            dom: domid,
            nr_frames: 1,
            frame_list: frames.addr(),
            ..Default::default()
        };
        let sbuf = HcBuf::with(&*self.backend, &setup, step, domid)?;
        // SAFETY: argument 1 is a live buffer of one gnttab_setup_table whose frame list is
        // the live one-entry buffer `frames`.
        unsafe {
            self.hypercall(
                HYPERVISOR_GRANT_TABLE_OP,
                [GNTTABOP_SETUP_TABLE, sbuf.addr(), 1, 0, 0],
            )
        }
        .map_err(call_err(step, domid))?;
        let status = sbuf.get().status;
        if status != GNTST_OKAY {
            return Err(XenError::GrantStatus { domid, status });
        }
        let f = frames.get();
        Mfn::new(f).map_err(|_| range(step, "grant frame", f))
    }

    /// Seeds the guest's grant table as libxenguest's `xc_dom_gnttab_seed` does: entry 0
    /// grants the console ring, entry 1 the xenstore ring, each to its backend domain
    /// (skipped when the backend is the guest itself). Maps the table as a resource, or,
    /// where the kernel or Xen lacks that, through `GNTTABOP_setup_table` and a foreign map.
    pub fn seed_grant_table(
        &self,
        domid: u16,
        console: Option<SeedGrant>,
        xenstore: Option<SeedGrant>,
    ) -> Result<(), XenError> {
        let mut map = match self.map_resource(
            domid,
            XENMEM_RESOURCE_GRANT_TABLE,
            XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED,
            0,
            NonZeroUsize::MIN,
        ) {
            Ok(m) => m,
            Err(XenError::Call {
                errno: Errno::EOPNOTSUPP | Errno::ENOTTY,
                ..
            }) => {
                let frame = self.grant_setup_table(domid)?;
                self.map_foreign(domid, &[frame])?
            }
            Err(e) => return Err(e),
        };
        let table = map.as_mut_slice();
        for (idx, grant) in [
            (GNTTAB_RESERVED_CONSOLE, console),
            (GNTTAB_RESERVED_XENSTORE, xenstore),
        ] {
            let Some(g) = grant else { continue };
            if g.backend == domid {
                continue;
            }
            let frame = u32::try_from(g.frame.get())
                .map_err(|_| range(Step::MapGrantTable, "granted frame", g.frame.get()))?;
            let e = GrantEntryV1 {
                flags: GTF_PERMIT_ACCESS,
                domid: g.backend,
                frame,
            };
            let at = idx * size_of::<GrantEntryV1>();
            table
                .get_mut(at..at + size_of::<GrantEntryV1>())
                .ok_or_else(|| range(Step::MapGrantTable, "grant index", idx as u64))?
                .copy_from_slice(e.as_bytes());
        }
        Ok(())
    }

    /// The hypervisor's version, `(major, minor)`.
    pub fn xen_version(&self) -> Result<(u16, u16), XenError> {
        // SAFETY: XENVER_version reads no argument.
        let v = unsafe { self.hypercall(HYPERVISOR_XEN_VERSION, [XENVER_VERSION, 0, 0, 0, 0]) }
            .map_err(call_err(Step::XenVersion, DOMID_SELF))?;
        let v = v as u32;
        Ok(((v >> 16) as u16, (v & 0xffff) as u16))
    }

    /// The hypervisor's capability list (`XENVER_capabilities`), e.g.
    /// `"xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"`: the guest types it
    /// runs, which libxenguest's compatibility check matches the kernel's type against.
    pub fn capabilities(&self) -> Result<Vec<String>, XenError> {
        let step = Step::Capabilities;
        let buf: HcBuf<'_, u8> =
            HcBuf::zeroed(&*self.backend, XEN_CAPABILITIES_INFO_LEN, step, DOMID_SELF)?;
        // SAFETY: argument 1 is a live buffer of XEN_CAPABILITIES_INFO_LEN bytes.
        unsafe {
            self.hypercall(
                HYPERVISOR_XEN_VERSION,
                [XENVER_CAPABILITIES, buf.addr(), 0, 0, 0],
            )
        }
        .map_err(call_err(step, DOMID_SELF))?;
        let raw = buf.as_slice();
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let text = String::from_utf8_lossy(raw.get(..end).unwrap_or_default());
        Ok(text.split_ascii_whitespace().map(str::to_owned).collect())
    }
}

/// A read-only foreign mapping ([`Xen::map_foreign_readonly`]): its bytes can only be read.
#[derive(Debug)]
pub struct ReadOnlyMapping(ForeignMapping);

impl ReadOnlyMapping {
    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// A view of foreign (or resource) frames mapped into this process; unmapped on drop.
#[derive(Debug)]
pub struct ForeignMapping {
    backend: Arc<dyn Backend>,
    ptr: NonNull<u8>,
    pages: NonZeroUsize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through `&`/`&mut`.
unsafe impl Send for ForeignMapping {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for ForeignMapping {}

impl ForeignMapping {
    fn reserve(
        backend: &Arc<dyn Backend>,
        pages: NonZeroUsize,
        domid: u16,
    ) -> Result<Self, XenError> {
        let ptr = backend
            .map_area(pages)
            .map_err(call_err(Step::MapArea, domid))?;
        Ok(Self {
            backend: Arc::clone(backend),
            ptr,
            pages,
        })
    }

    fn reserve_readonly(
        backend: &Arc<dyn Backend>,
        pages: NonZeroUsize,
        domid: u16,
    ) -> Result<Self, XenError> {
        let ptr = backend
            .map_area_readonly(pages)
            .map_err(call_err(Step::MapArea, domid))?;
        Ok(Self {
            backend: Arc::clone(backend),
            ptr,
            pages,
        })
    }

    fn addr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Number of pages mapped.
    pub fn pages(&self) -> usize {
        self.pages.get()
    }

    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the area is `pages * PAGE_SIZE` readable bytes owned by `self` for its life.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.pages.get() * PAGE_SIZE) }
    }

    /// The mapped bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, writable, and `&mut self` makes the view exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.pages.get() * PAGE_SIZE) }
    }
}

impl Drop for ForeignMapping {
    fn drop(&mut self) {
        // SAFETY: the area came from `map_area(self.pages)` on this backend and no view into
        // it outlives `self`.
        unsafe { self.backend.unmap_area(self.ptr, self.pages) };
    }
}

#[cfg(test)]
mod tests;

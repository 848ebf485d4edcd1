//! An in-process Xen and privcmd driver, for testing [`super::Xen`] and everything above it
//! without a hypervisor.
//!
//! [`FakeXen`] implements [`Backend`]: it decodes each privcmd ioctl and hypercall the way
//! Xen 4.17 and Linux would and keeps the resulting state (domains, their frames, pinned
//! tables, vcpu contexts, event channels, grant frames) where tests can inspect it. Guest
//! memory is a sparse memfd indexed by machine frame, and foreign mappings are real `mmap`s
//! of it, so what a builder writes through one mapping is visible through any other and in
//! [`FakeXen::read_frame`], as with real foreign mappings.
//!
//! It checks what Xen checks where a builder could get it wrong: interface versions, that
//! frames belong to the domain they are used for, the memory limit, that a vcpu's cr3 is a
//! pinned top table. [`FakeXen::fail_call`] makes the n-th ioctl fail, so a test can fail every
//! step of a build in turn, and [`FakeXen::live_buffers`] / [`FakeXen::live_areas`] show
//! whether everything allocated was released.

use std::alloc::Layout;
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;
use std::fs::File;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};

use nix::errno::Errno;

use crate::support::trace::Trace;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::mman::{self, MapFlags, ProtFlags};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::sys::domctl::*;
use crate::sys::evtchn::*;
use crate::sys::grant::*;
use crate::sys::hypercall::*;
use crate::sys::memory::*;
use crate::sys::privcmd::*;
use crate::sys::sched::*;
use crate::sys::vcpu::VcpuGuestContext;
use crate::sys::{Backend, PAGE_SIZE};

/// How the fake host behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeConfig {
    /// Machine frames the host has.
    pub host_pages: u64,
    /// How many 2 MiB extents populate_physmap grants in all (`None`: as many as fit).
    pub superpages: Option<u64>,
    /// The `XENVER_capabilities` string.
    pub capabilities: String,
    /// `(major, minor)` of `XENVER_version`.
    pub version: (u16, u16),
    /// Whether `IOCTL_PRIVCMD_MMAP_RESOURCE` works (otherwise `EOPNOTSUPP`, as on old Xen).
    pub resource_mapping: bool,
    /// Physical cpus (at most 64).
    pub nr_cpus: u32,
    /// The CPU pools: the first is `Pool-0`.
    pub pools: Vec<FakePool>,
}

/// A CPU pool of the fake host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePool {
    /// Its id.
    pub id: u32,
    /// Its scheduler, `XEN_SCHEDULER_*`.
    pub sched_id: u32,
    /// Its cpus, one bit each.
    pub cpus: u64,
}

impl Default for FakeConfig {
    /// A Xen 4.17 host like the harness's: 1 GiB, 64-bit PV and HVM guests only.
    fn default() -> Self {
        Self {
            host_pages: 1 << 18,
            superpages: None,
            capabilities: "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64".into(),
            version: (4, 17),
            resource_mapping: true,
            nr_cpus: 2,
            // Xen 4.17's default scheduler.
            pools: vec![FakePool {
                id: 0,
                sched_id: XEN_SCHEDULER_CREDIT2,
                cpus: 0b11,
            }],
        }
    }
}

/// One ioctl the fake saw, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A domctl (`XEN_DOMCTL_*`).
    Domctl(u32),
    /// A sysctl (`XEN_SYSCTL_*`).
    Sysctl(u32),
    /// A memory_op (`XENMEM_*`).
    MemoryOp(u64),
    /// An mmu_update of this many entries.
    MmuUpdate(u64),
    /// An mmuext_op.
    MmuextOp,
    /// An event_channel_op (`EVTCHNOP_*`).
    EventChannelOp(u64),
    /// A grant_table_op (`GNTTABOP_*`).
    GrantTableOp(u64),
    /// A xen_version (`XENVER_*`).
    XenVersion(u64),
    /// Another hypercall.
    OtherHypercall(u64),
    /// `IOCTL_PRIVCMD_MMAPBATCH_V2` of this many pages.
    MmapBatch(u32),
    /// `IOCTL_PRIVCMD_MMAP_RESOURCE`.
    MmapResource,
    /// Another ioctl.
    OtherIoctl(IoctlRequest),
}

/// A domain as the fake hypervisor holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDomain {
    /// `XEN_DOMCTL_CDF_*` it was created with.
    pub create_flags: u32,
    /// Its id.
    pub domid: u16,
    /// `max_vcpus` given at creation.
    pub create_max_vcpus: u32,
    /// Vcpus set by `max_vcpus`.
    pub vcpus: u32,
    /// Memory limit in KiB (`max_mem`).
    pub max_kib: u64,
    /// Address size set.
    pub address_size: u32,
    /// Guest frame → machine frame, as populated.
    pub p2m: BTreeMap<u64, u64>,
    /// Paused by the toolstack (domains are created paused).
    pub paused: bool,
    /// Vcpu 0's context, once set.
    pub vcpu0: Option<Box<VcpuGuestContext>>,
    /// Frame given to `hypercall_init`.
    pub hypercall_page: Option<u64>,
    /// Pinned tables: `(MMUEXT_PIN_*, mfn)`.
    pub pinned: Vec<(u32, u64)>,
    /// `MMU_MACHPHYS_UPDATE`s applied: `(mfn, pfn)`.
    pub machphys: Vec<(u64, u64)>,
    /// Unbound event channels: `(port, remote domain)`.
    pub evtchns: Vec<(u32, u16)>,
    /// Machine frame of its first grant-table frame.
    pub grant_frame: u64,
    /// Machine frame of its shared_info.
    pub shared_info: u64,
    /// Its memory map (`XENMEM_set_memory_map`): `(addr, size, type)` per entry.
    pub e820: Vec<(u64, u64, u32)>,
    /// The CPU pool it was created in.
    pub cpupool: u32,
    /// Its handle (UUID), as created.
    pub handle: [u8; 16],
    /// Per vcpu: (hard, soft) affinity, one bit per cpu (all cpus until set).
    pub affinity: BTreeMap<u32, (u64, u64)>,
    /// Credit/credit2 weight and cap.
    pub sched: (u16, u16),
    /// The domain it has privilege over (`set_target`).
    pub target: Option<u16>,
}

#[derive(Debug)]
struct State {
    cfg: FakeConfig,
    next_mfn: u64,
    superpages_given: u64,
    owner: HashMap<u64, u16>,
    domains: BTreeMap<u16, FakeDomain>,
    calls: Vec<Call>,
    fail: Option<(usize, Errno)>,
    live_buffers: usize,
    live_areas: usize,
    /// Mapping areas by start address: (pages, already populated by a first mmapbatch).
    areas: HashMap<u64, (usize, bool)>,
    /// Where acquisitions and releases are reported, if a test asked.
    trace: Option<Trace>,
    /// Run before the ioctl with this index has any effect (see [`FakeXen::at_call`]).
    hook: Option<(usize, Hook)>,
    /// Told of each domain destroyed, before it is gone (see [`FakeXen::on_destroy`]).
    on_destroy: Option<DestroyHook>,
}

/// Who hears of a destroyed domain (the fake xenstored, as the real one hears
/// `VIRQ_DOM_EXC`).
struct DestroyHook(Box<dyn Fn(u16) + Send>);

impl std::fmt::Debug for DestroyHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DestroyHook")
    }
}

/// Something a test runs when a chosen ioctl arrives.
struct Hook(Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

impl State {
    fn acquired(&self, what: impl FnOnce() -> String) {
        if let Some(t) = &self.trace {
            t.acquire(what());
        }
    }

    fn released(&self, what: impl FnOnce() -> String) {
        if let Some(t) = &self.trace {
            t.release(what());
        }
    }
}

/// The fake host. See the module documentation.
#[derive(Debug)]
pub struct FakeXen {
    state: Mutex<State>,
    mem: File,
}

type R = Result<i32, Errno>;

/// Reads a `T` from a hypercall argument address.
///
/// # Safety
/// `addr` must be valid for reading a `T` (the [`Backend::ioctl`] contract).
unsafe fn rd<T: FromBytes>(addr: u64) -> Result<T, Errno> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    // SAFETY: per the contract; unaligned reads are fine, any bytes are a valid T.
    Ok(unsafe { std::ptr::read_unaligned(addr as *const T) })
}

/// Writes `v` at a hypercall argument address.
///
/// # Safety
/// `addr` must be valid for writing a `T` (the [`Backend::ioctl`] contract).
unsafe fn wr<T: IntoBytes + Immutable>(addr: u64, v: &T) -> Result<(), Errno> {
    if addr == 0 {
        return Err(Errno::EFAULT);
    }
    let src = v.as_bytes();
    // SAFETY: per the contract, `addr` has room for `size_of::<T>()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), addr as *mut u8, src.len()) };
    Ok(())
}

/// Reads a `xenctl_bitmap` into a mask of its first 64 bits.
///
/// # Safety
/// `b.bitmap` must be valid for `nr_bits / 8` bytes (the [`Backend::ioctl`] contract).
unsafe fn rd_map(b: &XenctlBitmap) -> Result<u64, Errno> {
    let mut mask = 0u64;
    for i in 0..u64::from(b.nr_bits.div_ceil(8)).min(8) {
        // SAFETY: within the bitmap, per the contract.
        let byte: u8 = unsafe { rd(b.bitmap + i) }?;
        mask |= u64::from(byte) << (8 * i);
    }
    Ok(mask)
}

/// Writes `mask` into a `xenctl_bitmap`, zero beyond its 64 bits, as Xen's
/// `bitmap_to_xenctl_bitmap`.
///
/// # Safety
/// As [`rd_map`], for writing.
unsafe fn wr_map(b: &XenctlBitmap, mask: u64) -> Result<(), Errno> {
    for i in 0..u64::from(b.nr_bits.div_ceil(8)) {
        let byte = if i < 8 { (mask >> (8 * i)) as u8 } else { 0 };
        // SAFETY: within the bitmap, per the contract.
        unsafe { wr(b.bitmap + i, &byte) }?;
    }
    Ok(())
}

fn payload<T: FromBytes>(u: &[u64]) -> Result<T, Errno> {
    T::read_from_prefix(u.as_bytes())
        .map(|(t, _)| t)
        .map_err(|_| Errno::EINVAL)
}

fn set_payload<T: IntoBytes + Immutable>(u: &mut [u64], v: &T) -> Result<(), Errno> {
    let src = v.as_bytes();
    u.as_mut_bytes()
        .get_mut(..src.len())
        .ok_or(Errno::EINVAL)?
        .copy_from_slice(src);
    Ok(())
}

impl State {
    fn alloc(&mut self, domid: u16, order: u32) -> Result<u64, Errno> {
        let n = 1u64 << order;
        let base = self.next_mfn.next_multiple_of(n);
        let end = base.checked_add(n).ok_or(Errno::ENOMEM)?;
        if end > self.cfg.host_pages {
            return Err(Errno::ENOMEM);
        }
        self.next_mfn = end;
        for m in base..end {
            self.owner.insert(m, domid);
        }
        Ok(base)
    }

    fn dom(&mut self, domid: u16) -> Result<&mut FakeDomain, Errno> {
        self.domains.get_mut(&domid).ok_or(Errno::ESRCH)
    }

    fn pool(&self, id: u32) -> Option<&FakePool> {
        self.cfg.pools.iter().find(|p| p.id == id)
    }

    fn all_cpus(&self) -> u64 {
        1u64.checked_shl(self.cfg.nr_cpus.min(64))
            .map_or(u64::MAX, |b| b - 1)
    }

    /// Xen's `vcpu_set_affinity` checks: the vcpu exists, the hard affinity meets the pool.
    fn set_affinity(&mut self, domid: u16, a: &XenDomctlVcpuaffinity) -> R {
        let all = self.all_cpus();
        let dom = self.domains.get(&domid).ok_or(Errno::ESRCH)?;
        if a.vcpu >= dom.create_max_vcpus {
            return Err(Errno::EINVAL);
        }
        let pool = self.pool(dom.cpupool).map_or(0, |p| p.cpus) & all;
        let (mut hard, mut soft) = dom.affinity.get(&a.vcpu).copied().unwrap_or((all, all));
        if a.flags & XEN_VCPUAFFINITY_HARD != 0 {
            // SAFETY: the Backend::ioctl contract covers the handles inside the domctl.
            let h = unsafe { rd_map(&a.cpumap_hard) }? & all;
            if h & pool == 0 {
                return Err(Errno::EINVAL);
            }
            hard = h;
        }
        if a.flags & XEN_VCPUAFFINITY_SOFT != 0 {
            // SAFETY: as above.
            soft = unsafe { rd_map(&a.cpumap_soft) }? & all;
        }
        if a.flags & XEN_VCPUAFFINITY_HARD != 0 {
            // SAFETY: as above.
            unsafe { wr_map(&a.cpumap_hard, hard & pool) }?;
        }
        if a.flags & XEN_VCPUAFFINITY_SOFT != 0 {
            // SAFETY: as above.
            unsafe { wr_map(&a.cpumap_soft, soft & hard & pool) }?;
        }
        self.dom(domid)?.affinity.insert(a.vcpu, (hard, soft));
        Ok(0)
    }

    fn owns(&self, domid: u16, mfn: u64) -> bool {
        self.owner.get(&mfn) == Some(&domid)
    }

    fn info(d: &FakeDomain) -> XenDomctlGetdomaininfo {
        XenDomctlGetdomaininfo {
            domain: d.domid,
            flags: if d.paused {
                XEN_DOMINF_PAUSED
            } else {
                XEN_DOMINF_RUNNING
            },
            tot_pages: d.p2m.len() as u64,
            max_pages: d.max_kib / 4,
            shared_info_frame: d.shared_info,
            nr_online_vcpus: u32::from(d.vcpu0.is_some()),
            max_vcpu_id: d.vcpus.saturating_sub(1),
            cpupool: d.cpupool,
            handle: d.handle,
            ..Default::default()
        }
    }

    fn domctl(&mut self, d: &mut XenDomctl) -> R {
        if d.interface_version != XEN_DOMCTL_INTERFACE_VERSION {
            return Err(Errno::EACCES);
        }
        let domid = d.domain;
        match d.cmd {
            XEN_DOMCTL_CREATEDOMAIN => {
                let c: XenDomctlCreatedomain = payload(&d.u)?;
                let version = c.grant_opts & 0xf;
                // A PV domain (no flags, no emulation) or, as Xen's emulation_flags_ok
                // allows, a PVH one (an HAP HVM container emulating the LAPIC only).
                let hvm = crate::sys::hvm::XEN_DOMCTL_CDF_HVM | crate::sys::hvm::XEN_DOMCTL_CDF_HAP;
                let kind_ok = (c.flags == 0 && c.arch.emulation_flags == 0)
                    || (c.flags == hvm
                        && c.arch.emulation_flags == crate::sys::hvm::XEN_X86_EMU_LAPIC);
                if c.max_vcpus == 0 || version == 0 || version > 2 || !kind_ok {
                    return Err(Errno::EINVAL);
                }
                if self.pool(c.cpupool_id).is_none() {
                    return Err(Errno::ENOENT);
                }
                let id = if domid > 0 && domid < DOMID_FIRST_RESERVED {
                    if self.domains.contains_key(&domid) {
                        return Err(Errno::EEXIST);
                    }
                    domid
                } else {
                    (1..DOMID_FIRST_RESERVED)
                        .find(|i| !self.domains.contains_key(i))
                        .ok_or(Errno::ENOMEM)?
                };
                let shared_info = self.alloc(id, 0)?;
                let grant_frame = self.alloc(id, 0)?;
                self.domains.insert(
                    id,
                    FakeDomain {
                        domid: id,
                        create_max_vcpus: c.max_vcpus,
                        create_flags: c.flags,
                        vcpus: 0,
                        max_kib: 0,
                        address_size: 0,
                        p2m: BTreeMap::new(),
                        paused: true,
                        vcpu0: None,
                        hypercall_page: None,
                        pinned: Vec::new(),
                        machphys: Vec::new(),
                        evtchns: Vec::new(),
                        grant_frame,
                        shared_info,
                        e820: Vec::new(),
                        cpupool: c.cpupool_id,
                        handle: c.handle,
                        affinity: BTreeMap::new(),
                        sched: (256, 0),
                        target: None,
                    },
                );
                d.domain = id;
                self.acquired(|| format!("domain {id}"));
                Ok(0)
            }
            XEN_DOMCTL_DESTROYDOMAIN => {
                self.domains.remove(&domid).ok_or(Errno::ESRCH)?;
                self.owner.retain(|_, o| *o != domid);
                // The dying domain's watchers let go of it before it is finally gone.
                if let Some(h) = &self.on_destroy {
                    (h.0)(domid);
                }
                self.released(|| format!("domain {domid}"));
                Ok(0)
            }
            XEN_DOMCTL_PAUSEDOMAIN => {
                self.dom(domid)?.paused = true;
                Ok(0)
            }
            XEN_DOMCTL_UNPAUSEDOMAIN => {
                let dom = self.dom(domid)?;
                if dom.vcpu0.is_none() {
                    return Err(Errno::EINVAL);
                }
                dom.paused = false;
                Ok(0)
            }
            XEN_DOMCTL_GETDOMAININFO => {
                if domid >= DOMID_FIRST_RESERVED {
                    return Err(Errno::EINVAL);
                }
                let info = self
                    .domains
                    .range(domid..)
                    .next()
                    .map(|(_, d)| Self::info(d))
                    .ok_or(Errno::ESRCH)?;
                d.domain = info.domain;
                set_payload(&mut d.u, &info)?;
                Ok(0)
            }
            XEN_DOMCTL_SET_TARGET => {
                let t: XenDomctlSetTarget = payload(&d.u)?;
                // Xen: the target must exist (and be HVM or PVH), and not be the domain itself.
                let target = self.dom(t.target)?;
                if target.create_flags & crate::sys::hvm::XEN_DOMCTL_CDF_HVM == 0
                    || t.target == domid
                {
                    return Err(Errno::EINVAL);
                }
                self.dom(domid)?.target = Some(t.target);
                Ok(0)
            }
            XEN_DOMCTL_MAX_MEM => {
                let m: XenDomctlMaxMem = payload(&d.u)?;
                self.dom(domid)?.max_kib = m.max_memkb;
                Ok(0)
            }
            XEN_DOMCTL_MAX_VCPUS => {
                let m: XenDomctlMaxVcpus = payload(&d.u)?;
                let dom = self.dom(domid)?;
                if m.max > dom.create_max_vcpus {
                    return Err(Errno::EINVAL);
                }
                dom.vcpus = m.max;
                Ok(0)
            }
            XEN_DOMCTL_SET_ADDRESS_SIZE => {
                let a: XenDomctlAddressSize = payload(&d.u)?;
                if a.size != 64 && a.size != 32 {
                    return Err(Errno::EINVAL);
                }
                self.dom(domid)?.address_size = a.size;
                Ok(0)
            }
            XEN_DOMCTL_SETVCPUCONTEXT => {
                let v: XenDomctlVcpucontext = payload(&d.u)?;
                // SAFETY: the Backend::ioctl contract covers the handles inside the domctl.
                let ctx: VcpuGuestContext = unsafe { rd(v.ctxt) }?;
                let dom = self.dom(domid)?;
                if v.vcpu >= dom.vcpus {
                    return Err(Errno::ESRCH);
                }
                // Xen takes a reference of the top-table type on cr3's frame: it must be
                // a pinned L4 of this domain.
                let cr3_mfn = ctx.ctrlreg[3] >> 12;
                if !dom
                    .pinned
                    .iter()
                    .any(|&(c, m)| c == MMUEXT_PIN_L4_TABLE && m == cr3_mfn)
                {
                    return Err(Errno::EINVAL);
                }
                if v.vcpu == 0 {
                    dom.vcpu0 = Some(Box::new(ctx));
                }
                Ok(0)
            }
            XEN_DOMCTL_SETVCPUAFFINITY => {
                let a: XenDomctlVcpuaffinity = payload(&d.u)?;
                self.set_affinity(domid, &a)
            }
            XEN_DOMCTL_GETVCPUAFFINITY => {
                let a: XenDomctlVcpuaffinity = payload(&d.u)?;
                let all = self.all_cpus();
                let dom = self.dom(domid)?;
                if a.vcpu >= dom.create_max_vcpus {
                    return Err(Errno::EINVAL);
                }
                let (hard, soft) = dom.affinity.get(&a.vcpu).copied().unwrap_or((all, all));
                // SAFETY: the Backend::ioctl contract covers the handles inside the domctl.
                unsafe { wr_map(&a.cpumap_hard, hard) }?;
                // SAFETY: as above.
                unsafe { wr_map(&a.cpumap_soft, soft) }?;
                Ok(0)
            }
            XEN_DOMCTL_SCHEDULER_OP => {
                let mut op: XenDomctlSchedulerOp = payload(&d.u)?;
                let pool = self.dom(domid)?.cpupool;
                let sched = self.pool(pool).map_or(0, |p| p.sched_id);
                // Xen's sched_adjust: the scheduler named must be the domain's.
                if op.sched_id != sched
                    || !matches!(sched, XEN_SCHEDULER_CREDIT | XEN_SCHEDULER_CREDIT2)
                {
                    return Err(Errno::EINVAL);
                }
                let c: XenDomctlSchedCredit = payload(&op.u)?;
                let dom = self.dom(domid)?;
                match op.cmd {
                    XEN_DOMCTL_SCHEDOP_GETINFO => {
                        let (weight, cap) = dom.sched;
                        set_payload(&mut op.u, &XenDomctlSchedCredit { weight, cap })?;
                        set_payload(&mut d.u, &op)?;
                    }
                    XEN_DOMCTL_SCHEDOP_PUTINFO => {
                        if c.weight != 0 {
                            dom.sched.0 = c.weight;
                        }
                        if sched == XEN_SCHEDULER_CREDIT2 || c.cap != u16::MAX {
                            dom.sched.1 = c.cap;
                        }
                    }
                    _ => return Err(Errno::EINVAL),
                }
                Ok(0)
            }
            XEN_DOMCTL_HYPERCALL_INIT => {
                let h: XenDomctlHypercallInit = payload(&d.u)?;
                if !self.owns(domid, h.gmfn) {
                    return Err(Errno::EINVAL);
                }
                self.dom(domid)?.hypercall_page = Some(h.gmfn);
                Ok(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn sysctl(&mut self, s: &mut XenSysctl) -> R {
        if s.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
            return Err(Errno::EACCES);
        }
        match s.cmd {
            XEN_SYSCTL_PHYSINFO => {
                let p = XenSysctlPhysinfo {
                    nr_cpus: self.cfg.nr_cpus,
                    threads_per_core: 1,
                    cores_per_socket: self.cfg.nr_cpus,
                    max_cpu_id: self.cfg.nr_cpus.saturating_sub(1),
                    nr_nodes: 1,
                    capabilities: XEN_SYSCTL_PHYSCAP_PV
                        | XEN_SYSCTL_PHYSCAP_GNTTAB_V1
                        | XEN_SYSCTL_PHYSCAP_GNTTAB_V2,
                    total_pages: self.cfg.host_pages,
                    free_pages: self.cfg.host_pages.saturating_sub(self.next_mfn),
                    max_mfn: self.cfg.host_pages.saturating_sub(1),
                    ..Default::default()
                };
                set_payload(&mut s.u, &p)?;
                Ok(0)
            }
            XEN_SYSCTL_CPUPOOL_OP => {
                let mut op: XenSysctlCpupoolOp = payload(&s.u)?;
                if op.op != XEN_SYSCTL_CPUPOOL_OP_INFO {
                    return Err(Errno::ENOSYS);
                }
                let all = self.all_cpus();
                let p = self
                    .cfg
                    .pools
                    .iter()
                    .filter(|p| p.id >= op.cpupool_id)
                    .min_by_key(|p| p.id)
                    .cloned()
                    .ok_or(Errno::ENOENT)?;
                // SAFETY: the contract covers the cpumap handle.
                unsafe { wr_map(&op.cpumap, p.cpus & all) }?;
                op.cpupool_id = p.id;
                op.sched_id = p.sched_id;
                op.n_dom = self.domains.values().filter(|d| d.cpupool == p.id).count() as u32;
                set_payload(&mut s.u, &op)?;
                Ok(0)
            }
            XEN_SYSCTL_GETDOMAININFOLIST => {
                let mut l: XenSysctlGetdomaininfolist = payload(&s.u)?;
                let infos: Vec<XenDomctlGetdomaininfo> = self
                    .domains
                    .range(l.first_domain..)
                    .take(l.max_domains as usize)
                    .map(|(_, d)| Self::info(d))
                    .collect();
                for (i, info) in infos.iter().enumerate() {
                    let at = l.buffer + (i * size_of::<XenDomctlGetdomaininfo>()) as u64;
                    // SAFETY: the contract covers `max_domains` entries at `buffer`.
                    unsafe { wr(at, info) }?;
                }
                l.num_domains = infos.len() as u32;
                set_payload(&mut s.u, &l)?;
                Ok(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn populate(&mut self, r: &XenMemoryReservation) -> R {
        if r.extent_order > SUPERPAGE_ORDER_MAX {
            return Err(Errno::EINVAL);
        }
        let domid = r.domid;
        let n = 1u64 << r.extent_order;
        let mut done: i32 = 0;
        for i in 0..r.nr_extents {
            let at = r.extent_start + i * 8;
            // SAFETY: the contract covers `nr_extents` frames at `extent_start`.
            let gpfn: u64 = unsafe { rd(at) }?;
            let dom = self.dom(domid)?;
            if (dom.p2m.len() as u64) + n > dom.max_kib / 4 {
                break;
            }
            if r.extent_order > 0 {
                if self
                    .cfg
                    .superpages
                    .is_some_and(|max| self.superpages_given >= max)
                {
                    break;
                }
                self.superpages_given += 1;
            }
            let Ok(mfn) = self.alloc(domid, r.extent_order) else {
                break;
            };
            let dom = self.dom(domid)?;
            for k in 0..n {
                dom.p2m.insert(gpfn + k, mfn + k);
            }
            // PV: Xen writes the machine frame back into the list.
            // SAFETY: as the read above.
            unsafe { wr(at, &mfn) }?;
            done += 1;
        }
        Ok(done)
    }

    fn mmu_update(&mut self, reqs: u64, count: u64, done_at: u64, domid: u16) -> R {
        let mut done: u32 = 0;
        let mut result = Ok(0);
        for i in 0..count {
            // SAFETY: the contract covers `count` requests at `reqs`.
            let u: MmuUpdate = unsafe { rd(reqs + i * 16) }?;
            if u.ptr & 3 != MMU_MACHPHYS_UPDATE {
                result = Err(Errno::ENOSYS);
                break;
            }
            let mfn = u.ptr >> 12;
            if !self.owns(domid, mfn) {
                result = Err(Errno::EPERM);
                break;
            }
            self.dom(domid)?.machphys.push((mfn, u.val));
            done += 1;
        }
        if done_at != 0 {
            // SAFETY: a non-null success count points at a u32 per the contract.
            unsafe { wr(done_at, &done) }?;
        }
        result
    }

    fn hypercall(&mut self, hc: &PrivcmdHypercall) -> R {
        let [a0, a1, a2, a3, _] = hc.arg;
        match hc.op {
            HYPERVISOR_DOMCTL => {
                // SAFETY: argument 0 of a domctl is a xen_domctl per the contract.
                let mut d: XenDomctl = unsafe { rd(a0) }?;
                let r = self.domctl(&mut d)?;
                // SAFETY: as above.
                unsafe { wr(a0, &d) }?;
                Ok(r)
            }
            HYPERVISOR_SYSCTL => {
                // SAFETY: argument 0 of a sysctl is a xen_sysctl per the contract.
                let mut s: XenSysctl = unsafe { rd(a0) }?;
                let r = self.sysctl(&mut s)?;
                // SAFETY: as above.
                unsafe { wr(a0, &s) }?;
                Ok(r)
            }
            HYPERVISOR_MEMORY_OP if a0 == XENMEM_POPULATE_PHYSMAP => {
                // SAFETY: argument 1 is a reservation per the contract.
                let r: XenMemoryReservation = unsafe { rd(a1) }?;
                self.populate(&r)
            }
            HYPERVISOR_MEMORY_OP if a0 == XENMEM_SET_MEMORY_MAP => {
                // SAFETY: argument 1 is a xen_foreign_memory_map per the contract.
                let m: XenForeignMemoryMap = unsafe { rd(a1) }?;
                // Xen's checks, in its order (arch_memory_op).
                if m.map.nr_entries as usize > E820MAX {
                    return Err(Errno::EINVAL);
                }
                let mut map = Vec::new();
                for i in 0..u64::from(m.map.nr_entries) {
                    // SAFETY: the contract covers `nr_entries` 20-byte entries at `buffer`.
                    let e: E820Entry = unsafe { rd(m.map.buffer + i * 20) }?;
                    map.push((e.addr.get(), e.size.get(), e.r#type.get()));
                }
                self.dom(m.domid).map_err(|_| Errno::ESRCH)?.e820 = map;
                Ok(0)
            }
            HYPERVISOR_MMU_UPDATE => self.mmu_update(a0, a1, a2, a3 as u16),
            HYPERVISOR_MMUEXT_OP => {
                let domid = a3 as u16;
                for i in 0..a1 {
                    // SAFETY: the contract covers `a1` ops at `a0`.
                    let op: MmuextOp = unsafe { rd(a0 + i * 24) }?;
                    if op.cmd > MMUEXT_PIN_L4_TABLE || !self.owns(domid, op.arg1) {
                        return Err(Errno::EINVAL);
                    }
                    self.dom(domid)?.pinned.push((op.cmd, op.arg1));
                }
                Ok(0)
            }
            HYPERVISOR_EVENT_CHANNEL_OP if a0 == EVTCHNOP_ALLOC_UNBOUND => {
                // SAFETY: argument 1 is an evtchn_alloc_unbound per the contract.
                let mut e: EvtchnAllocUnbound = unsafe { rd(a1) }?;
                let dom = self.dom(e.dom)?;
                let port = dom.evtchns.last().map_or(1, |&(p, _)| p + 1);
                dom.evtchns.push((port, e.remote_dom));
                e.port = port;
                // SAFETY: as above.
                unsafe { wr(a1, &e) }?;
                Ok(0)
            }
            HYPERVISOR_EVENT_CHANNEL_OP if a0 == EVTCHNOP_CLOSE => Ok(0),
            HYPERVISOR_GRANT_TABLE_OP if a0 == GNTTABOP_SETUP_TABLE => {
                // SAFETY: argument 1 is a gnttab_setup_table per the contract.
                let mut s: GnttabSetupTable = unsafe { rd(a1) }?;
                match self.domains.get(&s.dom) {
                    Some(d) if s.nr_frames == 1 => {
                        // SAFETY: the frame list holds `nr_frames` entries per the contract.
                        unsafe { wr(s.frame_list, &d.grant_frame) }?;
                        s.status = GNTST_OKAY;
                    }
                    Some(_) => s.status = -6, // GNTST_general_error
                    None => s.status = -2,    // GNTST_bad_domain
                }
                // SAFETY: as above.
                unsafe { wr(a1, &s) }?;
                Ok(0)
            }
            HYPERVISOR_XEN_VERSION if a0 == XENVER_VERSION => {
                let (maj, min) = self.cfg.version;
                Ok(i32::from(maj) << 16 | i32::from(min))
            }
            HYPERVISOR_XEN_VERSION if a0 == XENVER_CAPABILITIES => {
                let mut buf = [0u8; XEN_CAPABILITIES_INFO_LEN];
                let caps = self.cfg.capabilities.as_bytes();
                let n = caps.len().min(XEN_CAPABILITIES_INFO_LEN - 1);
                buf.get_mut(..n)
                    .ok_or(Errno::EINVAL)?
                    .copy_from_slice(caps.get(..n).ok_or(Errno::EINVAL)?);
                // SAFETY: argument 1 is a char[XEN_CAPABILITIES_INFO_LEN] per the contract.
                unsafe { wr(a1, &buf) }?;
                Ok(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }
}

/// Largest extent order the fake accepts (Xen's limit for an unprivileged guest's
/// populate_physmap from the toolstack is higher; a PV build uses 0 and 9).
const SUPERPAGE_ORDER_MAX: u32 = 9;

fn decode(request: IoctlRequest, arg: *mut c_void) -> Call {
    match request {
        IOCTL_PRIVCMD_HYPERCALL => {
            // SAFETY: a hypercall ioctl's argument is a privcmd_hypercall (caller's contract).
            let Ok(hc) = (unsafe { rd::<PrivcmdHypercall>(arg as u64) }) else {
                return Call::OtherIoctl(request);
            };
            let [a0, a1, ..] = hc.arg;
            match hc.op {
                HYPERVISOR_DOMCTL => {
                    // SAFETY: argument 0 is a xen_domctl (caller's contract).
                    unsafe { rd::<u32>(a0) }.map_or(Call::Domctl(u32::MAX), Call::Domctl)
                }
                HYPERVISOR_SYSCTL => {
                    // SAFETY: argument 0 is a xen_sysctl (caller's contract).
                    unsafe { rd::<u32>(a0) }.map_or(Call::Sysctl(u32::MAX), Call::Sysctl)
                }
                HYPERVISOR_MEMORY_OP => Call::MemoryOp(a0),
                HYPERVISOR_MMU_UPDATE => Call::MmuUpdate(a1),
                HYPERVISOR_MMUEXT_OP => Call::MmuextOp,
                HYPERVISOR_EVENT_CHANNEL_OP => Call::EventChannelOp(a0),
                HYPERVISOR_GRANT_TABLE_OP => Call::GrantTableOp(a0),
                HYPERVISOR_XEN_VERSION => Call::XenVersion(a0),
                op => Call::OtherHypercall(op),
            }
        }
        IOCTL_PRIVCMD_MMAPBATCH_V2 => {
            // SAFETY: the argument is a privcmd_mmapbatch_v2 (caller's contract).
            unsafe { rd::<PrivcmdMmapbatchV2>(arg as u64) }
                .map_or(Call::MmapBatch(0), |m| Call::MmapBatch(m.num))
        }
        IOCTL_PRIVCMD_MMAP_RESOURCE => Call::MmapResource,
        other => Call::OtherIoctl(other),
    }
}

impl FakeXen {
    /// A fake host as `cfg` describes.
    pub fn new(cfg: FakeConfig) -> Result<Self, Errno> {
        let fd = memfd_create(c"pvbuild-fake-xen", MemFdCreateFlag::MFD_CLOEXEC)?;
        let mem = File::from(fd);
        let len = cfg
            .host_pages
            .checked_mul(PAGE_SIZE as u64)
            .ok_or(Errno::EINVAL)?;
        mem.set_len(len)
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        Ok(Self {
            state: Mutex::new(State {
                cfg,
                // Frames below 0x100 stand for the hypervisor's and dom0's.
                next_mfn: 0x100,
                superpages_given: 0,
                owner: HashMap::new(),
                domains: BTreeMap::new(),
                calls: Vec::new(),
                fail: None,
                live_buffers: 0,
                live_areas: 0,
                areas: HashMap::new(),
                trace: None,
                on_destroy: None,
                hook: None,
            }),
            mem,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the `n`-th ioctl from now on (0 = the next) fail with `errno`, before it has
    /// any effect.
    pub fn fail_call(&self, n: usize, errno: Errno) {
        let mut s = self.lock();
        let at = s.calls.len() + n;
        s.fail = Some((at, errno));
    }

    /// Reports every domain and mapping area handed out or given back from now on to
    /// `trace`. Hypercall buffers are not reported: each carries one hypercall's arguments
    /// and brackets that call (the one that creates a domain among them), so they nest with
    /// nothing; [`FakeXen::live_buffers`] counts them.
    pub fn set_trace(&self, trace: Trace) {
        self.lock().trace = Some(trace);
    }

    /// Calls `f` with each domain destroyed from now on, before its release is reported
    /// (wire it to [`crate::xenstore::fake::FakeXenstore::domain_died`]).
    pub fn on_destroy(&self, f: impl Fn(u16) + Send + 'static) {
        self.lock().on_destroy = Some(DestroyHook(Box::new(f)));
    }

    /// Runs `f` when the `n`-th ioctl from now on (0 = the next) arrives, on the thread that
    /// issues it, before the ioctl has any effect (which it then has as usual).
    pub fn at_call(&self, n: usize, f: impl FnOnce() + Send + 'static) {
        let mut s = self.lock();
        let at = s.calls.len() + n;
        s.hook = Some((at, Hook(Box::new(f))));
    }

    /// Every ioctl seen so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// A domain's state.
    pub fn domain(&self, domid: u16) -> Option<FakeDomain> {
        self.lock().domains.get(&domid).cloned()
    }

    /// Ids of the domains that exist.
    pub fn domids(&self) -> Vec<u16> {
        self.lock().domains.keys().copied().collect()
    }

    /// Hypercall buffers allocated and not freed.
    pub fn live_buffers(&self) -> usize {
        self.lock().live_buffers
    }

    /// Mapping areas reserved and not released.
    pub fn live_areas(&self) -> usize {
        self.lock().live_areas
    }

    /// The contents of machine frame `mfn`.
    pub fn read_frame(&self, mfn: u64) -> Result<Vec<u8>, Errno> {
        let mut page = vec![0u8; PAGE_SIZE];
        let off = mfn.checked_mul(PAGE_SIZE as u64).ok_or(Errno::EINVAL)?;
        self.mem
            .read_exact_at(&mut page, off)
            .map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
        Ok(page)
    }

    /// Maps runs of `mfns` at `addr` (the privcmd_mmapbatch_v2 of `domid`), writing
    /// per-page errors to `err`.
    fn mmapbatch(&self, domid: u16, addr: u64, mfns: &[u64], err: &mut [i32]) -> R {
        let mut s = self.lock();
        // Linux's privcmd_ioctl_mmap_batch: the first call on a fresh area must cover the
        // whole area exactly (later calls may only fill holes), else EINVAL.
        match s.areas.get_mut(&addr) {
            Some((pages, populated)) if !*populated && *pages == mfns.len() => *populated = true,
            Some((_, true)) => {}
            _ => {
                let inside = s.areas.iter().any(|(&start, &(pages, populated))| {
                    populated && addr > start && addr < start + (pages * PAGE_SIZE) as u64
                });
                if !inside {
                    return Err(Errno::EINVAL);
                }
            }
        }
        let mut i = 0;
        while let Some(&first) = mfns.get(i) {
            if !s.owns(domid, first) {
                if let Some(e) = err.get_mut(i) {
                    *e = -(Errno::EPERM as i32);
                }
                i += 1;
                continue;
            }
            let mut run = 1;
            while mfns
                .get(i + run)
                .is_some_and(|&m| m == first + run as u64 && s.owns(domid, m))
            {
                run += 1;
            }
            let at = addr + (i * PAGE_SIZE) as u64;
            let len = NonZeroUsize::new(run * PAGE_SIZE).ok_or(Errno::EINVAL)?;
            let off = i64::try_from(first * PAGE_SIZE as u64).map_err(|_| Errno::EINVAL)?;
            // SAFETY: the caller's contract says `[addr, addr + num pages)` is a mapping area
            // we handed out; replacing part of it with a shared mapping of the fake's memory
            // is what privcmd does with foreign frames.
            unsafe {
                mman::mmap(
                    NonZeroUsize::new(at as usize),
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED | MapFlags::MAP_FIXED,
                    self.mem.as_fd(),
                    off,
                )
            }?;
            i += run;
        }
        Ok(0)
    }
}

impl Backend for FakeXen {
    unsafe fn ioctl(&self, request: IoctlRequest, arg: *mut c_void) -> Result<i32, Errno> {
        let call = decode(request, arg);
        let hook = {
            let mut s = self.lock();
            match s.hook.take() {
                Some((at, h)) if at == s.calls.len() => Some(h),
                other => {
                    s.hook = other;
                    None
                }
            }
        };
        if let Some(Hook(f)) = hook {
            f();
        }
        {
            let mut s = self.lock();
            let n = s.calls.len();
            s.calls.push(call);
            if let Some((at, errno)) = s.fail {
                if at == n {
                    s.fail = None;
                    return Err(errno);
                }
            }
        }
        match request {
            IOCTL_PRIVCMD_HYPERCALL => {
                // SAFETY: the caller's contract.
                let hc: PrivcmdHypercall = unsafe { rd(arg as u64) }?;
                self.lock().hypercall(&hc)
            }
            IOCTL_PRIVCMD_MMAPBATCH_V2 => {
                // SAFETY: the caller's contract.
                let m: PrivcmdMmapbatchV2 = unsafe { rd(arg as u64) }?;
                if m.arr == 0 || m.err == 0 {
                    return Err(Errno::EFAULT);
                }
                // SAFETY: the caller's contract: `arr` and `err` hold `num` entries each.
                let (mfns, err) = unsafe {
                    (
                        std::slice::from_raw_parts(m.arr as *const u64, m.num as usize),
                        std::slice::from_raw_parts_mut(m.err as *mut i32, m.num as usize),
                    )
                };
                self.mmapbatch(m.dom, m.addr, mfns, err)
            }
            IOCTL_PRIVCMD_MMAP_RESOURCE => {
                // SAFETY: the caller's contract.
                let r: PrivcmdMmapResource = unsafe { rd(arg as u64) }?;
                let frame = {
                    let s = self.lock();
                    if !s.cfg.resource_mapping {
                        return Err(Errno::EOPNOTSUPP);
                    }
                    if r.r#type != XENMEM_RESOURCE_GRANT_TABLE || r.idx != 0 || r.num != 1 {
                        return Err(Errno::EINVAL);
                    }
                    s.domains
                        .get(&r.dom)
                        .map(|d| d.grant_frame)
                        .ok_or(Errno::ESRCH)?
                };
                let mut err = [0i32];
                self.mmapbatch(r.dom, r.addr, &[frame], &mut err)?;
                if err[0] != 0 {
                    return Err(Errno::EPERM);
                }
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    fn map_area(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno> {
        let len = pages
            .checked_mul(NonZeroUsize::MIN.saturating_add(PAGE_SIZE - 1))
            .ok_or(Errno::ENOMEM)?;
        // SAFETY: a fresh private anonymous mapping; aliases nothing.
        let p = unsafe {
            mman::mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }?;
        {
            let mut s = self.lock();
            s.live_areas += 1;
            s.areas.insert(p.as_ptr() as u64, (pages.get(), false));
            s.acquired(|| format!("area {:#x}", p.as_ptr() as u64));
        }
        Ok(p.cast())
    }

    unsafe fn unmap_area(&self, area: NonNull<u8>, pages: NonZeroUsize) {
        // SAFETY: the caller guarantees the area is ours, of this size, unreferenced.
        let _ = unsafe { mman::munmap(area.cast(), pages.get() * PAGE_SIZE) };
        let mut s = self.lock();
        s.live_areas = s.live_areas.saturating_sub(1);
        s.areas.remove(&(area.as_ptr() as u64));
        s.released(|| format!("area {:#x}", area.as_ptr() as u64));
    }

    fn alloc_buffer(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno> {
        let size = pages.get().checked_mul(PAGE_SIZE).ok_or(Errno::ENOMEM)?;
        let layout = Layout::from_size_align(size, PAGE_SIZE).map_err(|_| Errno::ENOMEM)?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        let p = NonNull::new(p).ok_or(Errno::ENOMEM)?;
        let mut s = self.lock();
        s.live_buffers += 1;
        Ok(p)
    }

    unsafe fn free_buffer(&self, buf: NonNull<u8>, pages: NonZeroUsize) {
        if let Ok(layout) = Layout::from_size_align(pages.get() * PAGE_SIZE, PAGE_SIZE) {
            // SAFETY: the caller guarantees `buf` came from `alloc_buffer(pages)`, which used
            // this layout.
            unsafe { std::alloc::dealloc(buf.as_ptr(), layout) };
        }
        let mut s = self.lock();
        s.live_buffers = s.live_buffers.saturating_sub(1);
    }
}

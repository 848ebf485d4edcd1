//! Where a domain's vcpus run: vcpu affinity, per-domain scheduler parameters and CPU pools
//! (libxc's `xc_vcpu_setaffinity`, `xc_sched_credit_domain_{get,set}`,
//! `xc_sched_credit2_domain_{get,set}` and `xc_cpupool_getinfo`), over [`crate::sys::sched`].
//!
//! Every cpu map travels in a hypercall buffer of its own, sized for the host's cpus
//! (`max_cpu_id + 1` bits, rounded up to whole bytes, as libxc's `xc_get_cpumap_size`).

use std::fmt;

use nix::errno::Errno;
use zerocopy::{FromBytes, IntoBytes};

use super::{call_err, range, HcBuf, Step, Xen, XenError};
use crate::sys::hypercall::DOMID_SELF;
use crate::sys::sched::*;

/// Most cpus a [`CpuMap`] holds (Xen's own `NR_CPUS` bound on x86 is 4095 + 1).
pub const CPUS_MAX: u32 = 4096;

/// A set of physical cpus `0..width`, laid out as Xen's `xenctl_bitmap` (bit `n` is bit
/// `n % 8` of byte `n / 8`). Its width is fixed at construction; cpus at or above it cannot be
/// added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuMap {
    width: u32,
    bytes: Vec<u8>,
}

impl CpuMap {
    /// An empty map for cpus `0..width` (`width` clamped to `1..=`[`CPUS_MAX`]).
    pub fn empty(width: u32) -> Self {
        let width = width.clamp(1, CPUS_MAX);
        Self {
            width,
            bytes: vec![0; width.div_ceil(8) as usize],
        }
    }

    /// Every cpu `0..width`.
    pub fn all(width: u32) -> Self {
        let mut m = Self::empty(width);
        for c in 0..m.width {
            m.insert(c);
        }
        m
    }

    /// A map holding `cpus` (those at or above `width` are left out; see [`Self::insert`]).
    pub fn from_cpus(width: u32, cpus: impl IntoIterator<Item = u32>) -> Self {
        let mut m = Self::empty(width);
        for c in cpus {
            m.insert(c);
        }
        m
    }

    fn from_bytes(width: u32, bytes: &[u8]) -> Self {
        let mut m = Self::empty(width);
        for c in 0..m.width {
            let set = bytes
                .get((c / 8) as usize)
                .is_some_and(|b| b & (1 << (c % 8)) != 0);
            if set {
                m.insert(c);
            }
        }
        m
    }

    /// The map's width: cpus `0..width` fit.
    pub const fn width(&self) -> u32 {
        self.width
    }

    /// Adds `cpu`; false (and no change) when it is at or above the width.
    pub fn insert(&mut self, cpu: u32) -> bool {
        if cpu >= self.width {
            return false;
        }
        if let Some(b) = self.bytes.get_mut((cpu / 8) as usize) {
            *b |= 1 << (cpu % 8);
        }
        true
    }

    /// Removes `cpu` (nothing when it is not there).
    pub fn remove(&mut self, cpu: u32) {
        if let Some(b) = self.bytes.get_mut((cpu / 8) as usize) {
            *b &= !(1 << (cpu % 8));
        }
    }

    /// Whether `cpu` is in the map.
    pub fn contains(&self, cpu: u32) -> bool {
        cpu < self.width
            && self
                .bytes
                .get((cpu / 8) as usize)
                .is_some_and(|b| b & (1 << (cpu % 8)) != 0)
    }

    /// The cpus, ascending.
    pub fn cpus(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.width).filter(|&c| self.contains(c))
    }

    /// No cpu at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.iter().all(|&b| b == 0)
    }

    /// The bytes Xen reads.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Display for CpuMap {
    /// xl's notation: ranges joined by commas (`0-3,5`), `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut cpus = self.cpus().peekable();
        while let Some(start) = cpus.next() {
            let mut end = start;
            while cpus.peek() == Some(&(end + 1)) {
                end += 1;
                cpus.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// A scheduler, as `XEN_SCHEDULER_*` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// `credit`.
    Credit,
    /// `credit2`.
    Credit2,
    /// `arinc653`.
    Arinc653,
    /// `rtds`.
    Rtds,
    /// `null`.
    Null,
    /// A number this Xen's headers do not name.
    Other(u32),
}

impl Scheduler {
    /// The scheduler numbered `id`.
    pub const fn from_id(id: u32) -> Self {
        match id {
            XEN_SCHEDULER_CREDIT => Self::Credit,
            XEN_SCHEDULER_CREDIT2 => Self::Credit2,
            XEN_SCHEDULER_ARINC653 => Self::Arinc653,
            XEN_SCHEDULER_RTDS => Self::Rtds,
            XEN_SCHEDULER_NULL => Self::Null,
            other => Self::Other(other),
        }
    }

    /// Its `XEN_SCHEDULER_*` number.
    pub const fn id(self) -> u32 {
        match self {
            Self::Credit => XEN_SCHEDULER_CREDIT,
            Self::Credit2 => XEN_SCHEDULER_CREDIT2,
            Self::Arinc653 => XEN_SCHEDULER_ARINC653,
            Self::Rtds => XEN_SCHEDULER_RTDS,
            Self::Null => XEN_SCHEDULER_NULL,
            Self::Other(id) => id,
        }
    }

    /// Whether it has credit's per-domain weight and cap (credit and credit2).
    pub const fn has_weight_and_cap(self) -> bool {
        matches!(self, Self::Credit | Self::Credit2)
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credit => f.write_str("credit"),
            Self::Credit2 => f.write_str("credit2"),
            Self::Arinc653 => f.write_str("arinc653"),
            Self::Rtds => f.write_str("rtds"),
            Self::Null => f.write_str("null"),
            Self::Other(id) => write!(f, "scheduler {id}"),
        }
    }
}

/// One CPU pool, as `XEN_SYSCTL_CPUPOOL_OP_INFO` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpupoolInfo {
    /// Its id.
    pub id: u32,
    /// Its scheduler.
    pub scheduler: Scheduler,
    /// Domains in it.
    pub n_dom: u32,
    /// Its cpus.
    pub cpus: CpuMap,
}

/// A domain's credit or credit2 parameters (`struct xen_domctl_sched_credit{,2}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedCredit {
    /// Relative weight.
    pub weight: u16,
    /// Cap, percent of one cpu (0: none).
    pub cap: u16,
}

/// Most pools [`Xen::cpupools`] lists (a bound on the loop, far above any real host's).
const POOLS_MAX: usize = 4096;

impl Xen {
    /// Width of cpu maps for this host: `max_cpu_id + 1`.
    pub fn cpu_map_width(&self) -> Result<u32, XenError> {
        let max = self.physinfo()?.max_cpu_id;
        let width = max
            .checked_add(1)
            .filter(|&w| w <= CPUS_MAX)
            .ok_or_else(|| range(Step::Physinfo, "max_cpu_id", u64::from(max)))?;
        Ok(width)
    }

    /// The pool with the lowest id at or above `first`, or `None` past the last one.
    pub fn cpupool_info(&self, first: u32, width: u32) -> Result<Option<CpupoolInfo>, XenError> {
        let width = width.clamp(1, CPUS_MAX);
        let map: HcBuf<'_, u8> = HcBuf::zeroed(
            &*self.backend,
            width.div_ceil(8) as usize,
            Step::CpupoolInfo,
            DOMID_SELF,
        )?;
        let req = XenSysctlCpupoolOp {
            op: XEN_SYSCTL_CPUPOOL_OP_INFO,
            cpupool_id: first,
            cpumap: XenctlBitmap {
                bitmap: map.addr(),
                nr_bits: width.div_ceil(8) * 8,
                _pad: 0,
            },
            ..Default::default()
        };
        let out = match self.sysctl(Step::CpupoolInfo, XEN_SYSCTL_CPUPOOL_OP, &req) {
            Err(XenError::Call {
                errno: Errno::ENOENT,
                ..
            }) => return Ok(None),
            other => other?,
        };
        let reply = XenSysctlCpupoolOp::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(Step::CpupoolInfo, "reply size", 0))?;
        if reply.cpupool_id < first {
            return Err(range(
                Step::CpupoolInfo,
                "pool id",
                u64::from(reply.cpupool_id),
            ));
        }
        Ok(Some(CpupoolInfo {
            id: reply.cpupool_id,
            scheduler: Scheduler::from_id(reply.sched_id),
            n_dom: reply.n_dom,
            cpus: CpuMap::from_bytes(width, map.as_slice()),
        }))
    }

    /// Every CPU pool, by id (libxl's `libxl_list_cpupool`).
    pub fn cpupools(&self) -> Result<Vec<CpupoolInfo>, XenError> {
        let width = self.cpu_map_width()?;
        let mut pools = Vec::new();
        let mut next = 0u32;
        while pools.len() < POOLS_MAX {
            let Some(p) = self.cpupool_info(next, width)? else {
                break;
            };
            let after = p.id.checked_add(1);
            pools.push(p);
            match after {
                Some(n) => next = n,
                None => break,
            }
        }
        Ok(pools)
    }

    /// Sets vcpu `vcpu`'s hard and/or soft affinity (a `None` is left as it is), in one call
    /// as libxl does; returns the effective maps Xen reports back (hard ∩ the pool's cpus;
    /// soft ∩ hard ∩ the pool's cpus) for the ones set. Xen refuses (`EINVAL`) a hard
    /// affinity with no cpu of the domain's pool.
    pub fn set_vcpu_affinity(
        &self,
        domid: u16,
        vcpu: u32,
        hard: Option<&CpuMap>,
        soft: Option<&CpuMap>,
    ) -> Result<(Option<CpuMap>, Option<CpuMap>), XenError> {
        let step = Step::SetVcpuAffinity;
        if hard.is_none() && soft.is_none() {
            return Ok((None, None));
        }
        let buf = |m: Option<&CpuMap>| -> Result<Option<HcBuf<'_, u8>>, XenError> {
            m.map(|m| HcBuf::from_slice(&*self.backend, m.as_bytes(), step, domid))
                .transpose()
        };
        let hard_buf = buf(hard)?;
        let soft_buf = buf(soft)?;
        let bitmap = |b: &Option<HcBuf<'_, u8>>, m: Option<&CpuMap>| match (b, m) {
            (Some(b), Some(m)) => XenctlBitmap {
                bitmap: b.addr(),
                nr_bits: m.width().div_ceil(8) * 8,
                _pad: 0,
            },
            _ => XenctlBitmap::default(),
        };
        let mut flags = 0;
        if hard.is_some() {
            flags |= XEN_VCPUAFFINITY_HARD;
        }
        if soft.is_some() {
            flags |= XEN_VCPUAFFINITY_SOFT;
        }
        let req = XenDomctlVcpuaffinity {
            vcpu,
            flags,
            cpumap_hard: bitmap(&hard_buf, hard),
            cpumap_soft: bitmap(&soft_buf, soft),
        };
        // The bitmap buffers live until the end of this function, past the call.
        self.domctl(step, domid, XEN_DOMCTL_SETVCPUAFFINITY, &req)?;
        let back = |b: &Option<HcBuf<'_, u8>>, m: Option<&CpuMap>| match (b, m) {
            (Some(b), Some(m)) => Some(CpuMap::from_bytes(m.width(), b.as_slice())),
            _ => None,
        };
        Ok((back(&hard_buf, hard), back(&soft_buf, soft)))
    }

    /// Vcpu `vcpu`'s hard and soft affinity, in maps `width` cpus wide.
    pub fn vcpu_affinity(
        &self,
        domid: u16,
        vcpu: u32,
        width: u32,
    ) -> Result<(CpuMap, CpuMap), XenError> {
        let step = Step::GetVcpuAffinity;
        let empty = CpuMap::empty(width);
        let hard: HcBuf<'_, u8> =
            HcBuf::zeroed(&*self.backend, empty.as_bytes().len(), step, domid)?;
        let soft: HcBuf<'_, u8> =
            HcBuf::zeroed(&*self.backend, empty.as_bytes().len(), step, domid)?;
        let nr_bits = empty.width().div_ceil(8) * 8;
        let req = XenDomctlVcpuaffinity {
            vcpu,
            flags: XEN_VCPUAFFINITY_HARD | XEN_VCPUAFFINITY_SOFT,
            cpumap_hard: XenctlBitmap {
                bitmap: hard.addr(),
                nr_bits,
                _pad: 0,
            },
            cpumap_soft: XenctlBitmap {
                bitmap: soft.addr(),
                nr_bits,
                _pad: 0,
            },
        };
        self.domctl(step, domid, XEN_DOMCTL_GETVCPUAFFINITY, &req)?;
        Ok((
            CpuMap::from_bytes(empty.width(), hard.as_slice()),
            CpuMap::from_bytes(empty.width(), soft.as_slice()),
        ))
    }

    fn sched_op(
        &self,
        step: Step,
        domid: u16,
        scheduler: Scheduler,
        cmd: u32,
        params: SchedCredit,
    ) -> Result<SchedCredit, XenError> {
        let mut op = XenDomctlSchedulerOp {
            sched_id: scheduler.id(),
            cmd,
            u: [0; 2],
        };
        let credit = XenDomctlSchedCredit {
            weight: params.weight,
            cap: params.cap,
        };
        op.u.as_mut_bytes()
            .get_mut(..size_of::<XenDomctlSchedCredit>())
            .ok_or_else(|| range(step, "scheduler union", 0))?
            .copy_from_slice(credit.as_bytes());
        let out = self.domctl(step, domid, XEN_DOMCTL_SCHEDULER_OP, &op)?;
        let reply = XenDomctlSchedulerOp::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(step, "reply size", 0))?;
        let c = XenDomctlSchedCredit::read_from_prefix(reply.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(step, "reply size", 0))?;
        Ok(SchedCredit {
            weight: c.weight,
            cap: c.cap,
        })
    }

    /// The domain's weight and cap under `scheduler` (credit or credit2: the scheduler of
    /// the domain's pool; Xen refuses another with `EINVAL`).
    pub fn sched_credit(&self, domid: u16, scheduler: Scheduler) -> Result<SchedCredit, XenError> {
        if !scheduler.has_weight_and_cap() {
            return Err(call_err(Step::SchedGet, domid)(Errno::EINVAL));
        }
        self.sched_op(
            Step::SchedGet,
            domid,
            scheduler,
            XEN_DOMCTL_SCHEDOP_GETINFO,
            SchedCredit { weight: 0, cap: 0 },
        )
    }

    /// Sets the domain's weight and cap under `scheduler` (credit or credit2).
    pub fn set_sched_credit(
        &self,
        domid: u16,
        scheduler: Scheduler,
        params: SchedCredit,
    ) -> Result<(), XenError> {
        if !scheduler.has_weight_and_cap() {
            return Err(call_err(Step::SchedSet, domid)(Errno::EINVAL));
        }
        self.sched_op(
            Step::SchedSet,
            domid,
            scheduler,
            XEN_DOMCTL_SCHEDOP_PUTINFO,
            params,
        )
        .map(drop)
    }
}

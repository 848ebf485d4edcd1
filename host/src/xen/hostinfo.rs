//! What `xl info` reads of the hypervisor beyond physinfo: the `XENVER_*` strings
//! (`libxl_get_version_info`), the scheduler (`XEN_SYSCTL_sched_id`), the cpus in no pool
//! (`XEN_SYSCTL_CPUPOOL_OP_FREEINFO`) and the sharing counters (`XENMEM_get_sharing_*`).

use zerocopy::{FromBytes, IntoBytes};

use super::{call_err, range, HcBuf, Scheduler, Step, Xen, XenError};
use crate::sys::hypercall::{
    DOMID_SELF, HYPERVISOR_MEMORY_OP, HYPERVISOR_XEN_VERSION, XENMEM_GET_SHARING_FREED_PAGES,
    XENMEM_GET_SHARING_SHARED_PAGES, XENVER_BUILD_ID, XENVER_CAPABILITIES, XENVER_CHANGESET,
    XENVER_COMMANDLINE, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_PAGESIZE,
    XENVER_PLATFORM_PARAMETERS,
};
use crate::sys::sched::{
    XenSysctlCpupoolOp, XenSysctlSchedId, XenctlBitmap, XEN_SYSCTL_CPUPOOL_OP,
    XEN_SYSCTL_CPUPOOL_OP_FREEINFO, XEN_SYSCTL_SCHED_ID,
};

/// `xen_compile_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileInfo {
    /// `compiler`.
    pub compiler: String,
    /// `compile_by`.
    pub compile_by: String,
    /// `compile_domain`.
    pub compile_domain: String,
    /// `compile_date`.
    pub compile_date: String,
}

/// The bytes up to the first NUL, as text.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default()).into_owned()
}

impl Xen {
    /// `XENVER_<cmd>` into a zeroed buffer of `len` bytes; returns the buffer and the result.
    fn xenver(&self, cmd: u64, len: usize) -> Result<(Vec<u8>, i32), XenError> {
        let buf: HcBuf<'_, u8> = HcBuf::zeroed(&*self.backend, len, Step::XenVersion, DOMID_SELF)?;
        // SAFETY: argument 1 is a live buffer of `len` bytes, at least what `cmd` writes.
        let r = unsafe { self.hypercall(HYPERVISOR_XEN_VERSION, [cmd, buf.addr(), 0, 0, 0]) }
            .map_err(call_err(Step::XenVersion, DOMID_SELF))?;
        Ok((buf.as_slice().to_vec(), r))
    }

    /// `XENVER_extraversion` (e.g. `.11`).
    pub fn xen_extraversion(&self) -> Result<String, XenError> {
        Ok(c_string(&self.xenver(XENVER_EXTRAVERSION, 16)?.0))
    }

    /// `XENVER_capabilities` as Xen writes it (with its trailing space), as xl prints it.
    pub fn xen_caps_text(&self) -> Result<String, XenError> {
        Ok(c_string(&self.xenver(XENVER_CAPABILITIES, 1024)?.0))
    }

    /// `XENVER_compile_info`.
    pub fn xen_compile_info(&self) -> Result<CompileInfo, XenError> {
        let (b, _) = self.xenver(XENVER_COMPILE_INFO, 64 + 16 + 32 + 32)?;
        let field = |from: usize, len: usize| c_string(b.get(from..from + len).unwrap_or_default());
        Ok(CompileInfo {
            compiler: field(0, 64),
            compile_by: field(64, 16),
            compile_domain: field(80, 32),
            compile_date: field(112, 32),
        })
    }

    /// `XENVER_changeset`.
    pub fn xen_changeset(&self) -> Result<String, XenError> {
        Ok(c_string(&self.xenver(XENVER_CHANGESET, 64)?.0))
    }

    /// `XENVER_platform_parameters`: `virt_start`.
    pub fn xen_virt_start(&self) -> Result<u64, XenError> {
        let (b, _) = self.xenver(XENVER_PLATFORM_PARAMETERS, 8)?;
        u64::read_from_prefix(&b)
            .map(|(v, _)| v)
            .map_err(|_| range(Step::XenVersion, "platform parameters", 0))
    }

    /// `XENVER_pagesize`.
    pub fn xen_pagesize(&self) -> Result<u32, XenError> {
        // SAFETY: XENVER_pagesize reads no argument.
        let r = unsafe { self.hypercall(HYPERVISOR_XEN_VERSION, [XENVER_PAGESIZE, 0, 0, 0, 0]) }
            .map_err(call_err(Step::XenVersion, DOMID_SELF))?;
        u32::try_from(r).map_err(|_| range(Step::XenVersion, "pagesize", 0))
    }

    /// `XENVER_commandline`.
    pub fn xen_commandline(&self) -> Result<String, XenError> {
        Ok(c_string(&self.xenver(XENVER_COMMANDLINE, 1024)?.0))
    }

    /// `XENVER_build_id` in hex (libxl's `%02hhx` per byte); `None` when Xen has none.
    pub fn xen_build_id(&self) -> Result<Option<String>, XenError> {
        const ROOM: usize = 4096;
        let mut buf: HcBuf<'_, u8> =
            HcBuf::zeroed(&*self.backend, ROOM, Step::XenVersion, DOMID_SELF)?;
        let len = (ROOM - 4) as u32;
        if let Some(head) = buf.as_mut_slice().get_mut(..4) {
            head.copy_from_slice(&len.to_ne_bytes());
        }
        // SAFETY: argument 1 is a live xen_build_id of ROOM bytes whose len says so.
        let r = unsafe {
            self.hypercall(
                HYPERVISOR_XEN_VERSION,
                [XENVER_BUILD_ID, buf.addr(), 0, 0, 0],
            )
        };
        let n = match r {
            Ok(n) if n > 0 => n as usize,
            Ok(_) | Err(_) => return Ok(None),
        };
        let id = buf
            .as_slice()
            .get(4..4 + n)
            .ok_or_else(|| range(Step::XenVersion, "build id length", n as u64))?;
        Ok(Some(id.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The scheduler of the default pool (`XEN_SYSCTL_sched_id`).
    pub fn sched_id(&self) -> Result<Scheduler, XenError> {
        let out = self.sysctl(
            Step::SchedId,
            XEN_SYSCTL_SCHED_ID,
            &XenSysctlSchedId::default(),
        )?;
        let r = XenSysctlSchedId::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(Step::SchedId, "reply size", 0))?;
        Ok(Scheduler::from_id(r.sched_id))
    }

    /// How many cpus are in no pool (`XEN_SYSCTL_CPUPOOL_OP_FREEINFO`).
    pub fn free_cpus(&self, width: u32) -> Result<u32, XenError> {
        let bytes = width.div_ceil(8) as usize;
        let map: HcBuf<'_, u8> =
            HcBuf::zeroed(&*self.backend, bytes, Step::CpupoolInfo, DOMID_SELF)?;
        let req = XenSysctlCpupoolOp {
            op: XEN_SYSCTL_CPUPOOL_OP_FREEINFO,
            cpumap: XenctlBitmap {
                bitmap: map.addr(),
                nr_bits: width.div_ceil(8) * 8,
                _pad: 0,
            },
            ..Default::default()
        };
        self.sysctl(Step::CpupoolInfo, XEN_SYSCTL_CPUPOOL_OP, &req)?;
        Ok(map.as_slice().iter().map(|b| b.count_ones()).sum())
    }

    /// `XENMEM_get_sharing_freed_pages` and `XENMEM_get_sharing_shared_pages`.
    pub fn sharing_pages(&self) -> Result<(u64, u64), XenError> {
        let get = |cmd| {
            // SAFETY: these memory ops read no argument.
            match unsafe { self.hypercall(HYPERVISOR_MEMORY_OP, [cmd, 0, 0, 0, 0]) } {
                Ok(n) => Ok(u64::try_from(n).unwrap_or(0)),
                // As libxl: a Xen without memory sharing has shared nothing.
                Err(nix::errno::Errno::ENOSYS) => Ok(0),
                Err(e) => Err(call_err(Step::SharingPages, DOMID_SELF)(e)),
            }
        };
        Ok((
            get(XENMEM_GET_SHARING_FREED_PAGES)?,
            get(XENMEM_GET_SHARING_SHARED_PAGES)?,
        ))
    }
}

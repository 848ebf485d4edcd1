//! `XEN_DOMCTL_getvcpuinfo`: a vcpu's state, for `vcpu-list`.

use zerocopy::FromBytes;

use super::{range, Step, Xen, XenError};
use crate::sys::sched::{XenDomctlGetvcpuinfo, XEN_DOMCTL_GETVCPUINFO};

/// One vcpu as Xen reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Online (not hot-unplugged).
    pub online: bool,
    /// Blocked waiting for an event.
    pub blocked: bool,
    /// Scheduled on its cpu now.
    pub running: bool,
    /// CPU time used, ns.
    pub cpu_time: u64,
    /// The physical cpu it is on.
    pub cpu: u32,
}

impl Xen {
    /// Vcpu `vcpu` of `domid`.
    pub fn vcpu_info(&self, domid: u16, vcpu: u32) -> Result<VcpuInfo, XenError> {
        let req = XenDomctlGetvcpuinfo {
            vcpu,
            ..Default::default()
        };
        let out = self.domctl(Step::GetVcpuInfo, domid, XEN_DOMCTL_GETVCPUINFO, &req)?;
        let r = XenDomctlGetvcpuinfo::read_from_prefix(zerocopy::IntoBytes::as_bytes(&out.u))
            .map(|(r, _)| r)
            .map_err(|_| range(Step::GetVcpuInfo, "reply size", 0))?;
        Ok(VcpuInfo {
            online: r.online != 0,
            blocked: r.blocked != 0,
            running: r.running != 0,
            cpu_time: r.cpu_time,
            cpu: r.cpu,
        })
    }
}

//! What a core dump reads of a domain beyond its pages (libxenguest's
//! `xc_domain_dumpcore_via_callback`): each vcpu's context (`XEN_DOMCTL_getvcpucontext`),
//! the domain's highest guest frame (`XENMEM_maximum_gpfn`) and the host's highest RAM frame
//! (`XENMEM_maximum_ram_page`), and the raw `XENVER_*` answers of the core's version note.

use super::{call_err, range, HcBuf, Step, Xen, XenError};
use crate::sys::domctl::{XenDomctlVcpucontext, XEN_DOMCTL_GETVCPUCONTEXT};
use crate::sys::hypercall::{
    DOMID_SELF, HYPERVISOR_MEMORY_OP, HYPERVISOR_XEN_VERSION, XENVER_CAPABILITIES,
    XENVER_CHANGESET, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_PLATFORM_PARAMETERS,
};
use crate::sys::memory::{XENMEM_MAXIMUM_GPFN, XENMEM_MAXIMUM_RAM_PAGE};
use crate::sys::vcpu::VcpuGuestContext;

/// The `XENVER_*` buffers as Xen filled them (`xen_dumpcore_elfnote_xen_version_desc`'s
/// fields but the numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionBuffers {
    /// `xen_extraversion_t` (16 bytes).
    pub extra: Vec<u8>,
    /// `xen_compile_info_t` (144 bytes).
    pub compile_info: Vec<u8>,
    /// `xen_capabilities_info_t` (1024 bytes).
    pub capabilities: Vec<u8>,
    /// `xen_changeset_info_t` (64 bytes).
    pub changeset: Vec<u8>,
    /// `xen_platform_parameters_t` (8 bytes).
    pub platform_parameters: Vec<u8>,
}

impl Xen {
    /// Vcpu `vcpu`'s context as Xen writes it (`vcpu_guest_context_any_t`'s bytes).
    pub fn vcpu_context_bytes(&self, domid: u16, vcpu: u32) -> Result<Vec<u8>, XenError> {
        let step = Step::GetVcpuContext;
        let buf: HcBuf<'_, VcpuGuestContext> = HcBuf::zeroed(&*self.backend, 1, step, domid)?;
        let req = XenDomctlVcpucontext {
            vcpu,
            _pad: 0,
            ctxt: buf.addr(),
        };
        self.domctl(step, domid, XEN_DOMCTL_GETVCPUCONTEXT, &req)?;
        Ok(zerocopy::IntoBytes::as_bytes(buf.as_slice()).to_vec())
    }

    /// `XENMEM_maximum_gpfn` of `domid` (its highest guest frame number).
    pub fn maximum_gpfn(&self, domid: u16) -> Result<u64, XenError> {
        let step = Step::MemoryLimits;
        let buf = HcBuf::with(&*self.backend, &domid, step, domid)?;
        // SAFETY: argument 1 is a live buffer holding the domid_t that XENMEM_maximum_gpfn reads.
        let r = unsafe {
            self.hypercall(
                HYPERVISOR_MEMORY_OP,
                [XENMEM_MAXIMUM_GPFN, buf.addr(), 0, 0, 0],
            )
        }
        .map_err(call_err(step, domid))?;
        u64::try_from(r).map_err(|_| range(step, "maximum gpfn", 0))
    }

    /// `XENMEM_maximum_ram_page` (the host's highest RAM machine frame).
    pub fn maximum_ram_page(&self) -> Result<u64, XenError> {
        let step = Step::MemoryLimits;
        // SAFETY: XENMEM_maximum_ram_page reads no argument.
        let r =
            unsafe { self.hypercall(HYPERVISOR_MEMORY_OP, [XENMEM_MAXIMUM_RAM_PAGE, 0, 0, 0, 0]) }
                .map_err(call_err(step, DOMID_SELF))?;
        u64::try_from(r).map_err(|_| range(step, "maximum ram page", 0))
    }

    /// The `XENVER_*` buffers of the core file's version note.
    pub fn version_buffers(&self) -> Result<VersionBuffers, XenError> {
        let get = |cmd, len| -> Result<Vec<u8>, XenError> {
            let buf: HcBuf<'_, u8> =
                HcBuf::zeroed(&*self.backend, len, Step::XenVersion, DOMID_SELF)?;
            // SAFETY: argument 1 is a live buffer of `len` bytes, what `cmd` writes.
            unsafe { self.hypercall(HYPERVISOR_XEN_VERSION, [cmd, buf.addr(), 0, 0, 0]) }
                .map_err(call_err(Step::XenVersion, DOMID_SELF))?;
            Ok(buf.as_slice().to_vec())
        };
        Ok(VersionBuffers {
            extra: get(XENVER_EXTRAVERSION, 16)?,
            compile_info: get(XENVER_COMPILE_INFO, 144)?,
            capabilities: get(XENVER_CAPABILITIES, 1024)?,
            changeset: get(XENVER_CHANGESET, 64)?,
            platform_parameters: get(XENVER_PLATFORM_PARAMETERS, 8)?,
        })
    }
}

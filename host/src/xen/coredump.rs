//! What a core dump reads of a domain beyond its pages (libxenguest's
//! `xc_domain_dumpcore_via_callback`): each vcpu's context (`XEN_DOMCTL_getvcpucontext`),
//! the domain's highest guest frame (`XENMEM_maximum_gpfn`) and the host's highest RAM frame
//! (`XENMEM_maximum_ram_page`), and the raw `XENVER_*` answers of the core's version note.

use std::ffi::c_void;
use std::num::NonZeroUsize;

use pvbuild_core::addr::Mfn;

use super::{call_err, range, ForeignMapping, HcBuf, Step, Xen, XenError};
use crate::sys::domctl::{XenDomctlVcpucontext, XEN_DOMCTL_GETVCPUCONTEXT};
use crate::sys::hypercall::{
    DOMID_SELF, HYPERVISOR_MEMORY_OP, HYPERVISOR_XEN_VERSION, XENVER_CAPABILITIES,
    XENVER_CHANGESET, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION, XENVER_PLATFORM_PARAMETERS,
};
use crate::sys::memory::{XENMEM_MAXIMUM_GPFN, XENMEM_MAXIMUM_RAM_PAGE};
use crate::sys::privcmd::{PrivcmdMmapbatchV2, IOCTL_PRIVCMD_MMAPBATCH_V2};
use crate::sys::vcpu::VcpuGuestContext;
use crate::sys::PAGE_SIZE;

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
    /// Reads the frames of `domid` that can be mapped, with ONE read-only
    /// `IOCTL_PRIVCMD_MMAPBATCH_V2` whose per-page errors are kept rather than failing the
    /// whole batch: appends each mapped page's bytes to `out`, in order, and returns which
    /// frames were read. A core dump of an auto-translated guest walks every gfn up to its
    /// highest and leaves out those not populated, as libxenguest's one-page-at-a-time
    /// `xc_map_foreign_range` leaves them out; the batch gives the same answer per page.
    pub fn read_foreign_present(
        &self,
        domid: u16,
        frames: &[Mfn],
        out: &mut Vec<u8>,
    ) -> Result<Vec<bool>, XenError> {
        let step = Step::MapForeign;
        let pages = NonZeroUsize::new(frames.len()).ok_or_else(|| range(step, "page count", 0))?;
        let num = u32::try_from(frames.len())
            .map_err(|_| range(step, "page count", frames.len() as u64))?;
        let map = ForeignMapping::reserve_readonly(&self.backend, pages, domid)?;
        let arr: Vec<u64> = frames.iter().map(|m| m.get()).collect();
        let mut err: Vec<i32> = vec![0; frames.len()];
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
        // Linux reports per-page failures in `err` (and -ENOENT for paged-out frames); an
        // error with no page marked is the whole call's.
        if err.iter().all(|&e| e == 0) {
            r.map_err(call_err(step, domid))?;
        }
        let mut present = Vec::with_capacity(frames.len());
        for (i, &e) in err.iter().enumerate() {
            if e == 0 {
                // SAFETY: page `i` of the area `map` owns was mapped by the batch (its error
                // is 0), so its PAGE_SIZE bytes are readable while `map` lives; pages whose
                // mapping failed are never touched (reading them would fault).
                let page = unsafe {
                    core::slice::from_raw_parts(
                        map.ptr.as_ptr().add(i * PAGE_SIZE).cast_const(),
                        PAGE_SIZE,
                    )
                };
                out.extend_from_slice(page);
            }
            present.push(e == 0);
        }
        Ok(present)
    }

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

//! The hypercalls of an HVM-container (PVH) build: HVM parameters, the HVM context, the
//! paging pool, and populating memory at chosen guest frames.

use crate::sys::domctl::XenDomctl;
use crate::sys::hvm::*;

use super::{call_err, range, HcBuf, Step, Xen, XenError};

impl Xen {
    /// `HVMOP_set_param`: sets HVM parameter `index` of `domid` to `value`.
    pub fn hvm_param_set(&self, domid: u16, index: u32, value: u64) -> Result<(), XenError> {
        let step = Step::HvmSetParam;
        let p = XenHvmParam {
            domid,
            pad: 0,
            index,
            value,
        };
        let buf = HcBuf::with(&*self.backend, &p, step, domid)?;
        // SAFETY: argument 1 is a live buffer holding one xen_hvm_param.
        unsafe { self.hypercall(HYPERVISOR_HVM_OP, [HVMOP_SET_PARAM, buf.addr(), 0, 0, 0]) }
            .map_err(call_err(step, domid))
            .map(drop)
    }

    /// `XEN_DOMCTL_gethvmcontext`: the domain's whole HVM context (every save record).
    pub fn hvm_context(&self, domid: u16) -> Result<Vec<u8>, XenError> {
        let step = Step::GetHvmContext;
        let size = self
            .domctl(
                step,
                domid,
                XEN_DOMCTL_GETHVMCONTEXT,
                &XenDomctlHvmcontext::default(),
            )
            .map(|d: XenDomctl| hvm_size(&d))?;
        if size == 0 || size > (1 << 20) {
            return Err(range(step, "HVM context size", u64::from(size)));
        }
        let buf: HcBuf<'_, u8> = HcBuf::zeroed(&*self.backend, size as usize, step, domid)?;
        let arg = XenDomctlHvmcontext {
            size,
            _pad: 0,
            buffer: buf.addr(),
        };
        let got = hvm_size(&self.domctl(step, domid, XEN_DOMCTL_GETHVMCONTEXT, &arg)?);
        let n = (got as usize).min(size as usize);
        Ok(buf.as_slice().get(..n).unwrap_or(&[]).to_vec())
    }

    /// `XEN_DOMCTL_sethvmcontext` with the records in `ctx`.
    pub fn set_hvm_context(&self, domid: u16, ctx: &[u8]) -> Result<(), XenError> {
        let step = Step::SetHvmContext;
        let size = u32::try_from(ctx.len()).map_err(|_| range(step, "size", ctx.len() as u64))?;
        let buf = HcBuf::from_slice(&*self.backend, ctx, step, domid)?;
        let arg = XenDomctlHvmcontext {
            size,
            _pad: 0,
            buffer: buf.addr(),
        };
        self.domctl(step, domid, XEN_DOMCTL_SETHVMCONTEXT, &arg)
            .map(drop)
    }

    /// `XEN_DOMCTL_set_paging_mempool_size` (libxl's `shadow_memkb`), in bytes.
    pub fn set_paging_mempool_size(&self, domid: u16, bytes: u64) -> Result<(), XenError> {
        self.domctl(
            Step::PagingMempool,
            domid,
            XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE,
            &XenDomctlPagingMempool { size: bytes },
        )
        .map(drop)
    }

    /// `XENMEM_populate_physmap` of `n` extents of `2^order` pages at guest frames
    /// `first + i << order` (a translated guest chooses its frames): how many Xen gave.
    pub fn populate_at(&self, domid: u16, order: u32, first: u64, n: u64) -> Result<u64, XenError> {
        let step = Step::PopulatePhysmap;
        let count = usize::try_from(n).map_err(|_| range(step, "extents", n))?;
        let mut ext: Vec<u64> = Vec::new();
        ext.try_reserve_exact(count)
            .map_err(|_| range(step, "extents", n))?;
        ext.extend((0..n).map(|i| first + (i << order)));
        // The one populate call the PV build uses too (the frames Xen gives back are not
        // needed: a translated guest is addressed by its own frames).
        self.populate_once(domid, &mut ext, order)
    }
}

/// The `size` field of a returned `xen_domctl_hvmcontext`.
fn hvm_size(d: &XenDomctl) -> u32 {
    use zerocopy::FromBytes;
    XenDomctlHvmcontext::read_from_prefix(zerocopy::IntoBytes::as_bytes(&d.u))
        .map(|(h, _)| h.size)
        .unwrap_or(0)
}

//! HVM-container ABI: `HVMOP_set_param` (public/hvm/hvm_op.h, params.h), the HVM context
//! domctls and the paging pool size (public/domctl.h), the creation flags of a PVH domain.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `__HYPERVISOR_hvm_op`.
pub const HYPERVISOR_HVM_OP: u64 = 34;
/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u64 = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u64 = 1;

/// `XEN_DOMCTL_gethvmcontext`.
pub const XEN_DOMCTL_GETHVMCONTEXT: u32 = 33;
/// `XEN_DOMCTL_sethvmcontext`.
pub const XEN_DOMCTL_SETHVMCONTEXT: u32 = 34;
/// `XEN_DOMCTL_set_paging_mempool_size`.
pub const XEN_DOMCTL_SET_PAGING_MEMPOOL_SIZE: u32 = 86;

/// `XEN_DOMCTL_CDF_hvm`: an HVM container.
pub const XEN_DOMCTL_CDF_HVM: u32 = 1 << 0;
/// `XEN_DOMCTL_CDF_hap`: hardware-assisted paging.
pub const XEN_DOMCTL_CDF_HAP: u32 = 1 << 1;
/// `XEN_X86_EMU_LAPIC`: the only emulation a PVH guest gets.
pub const XEN_X86_EMU_LAPIC: u32 = 1 << 0;
/// `XEN_X86_EMU_ALL`: every emulated device.
pub const XEN_X86_EMU_ALL: u32 = 0x7ff;
/// `XEN_X86_EMU_VPCI`: the emulated PCI config space, which libxl leaves out for HVM guests.
pub const XEN_X86_EMU_VPCI: u32 = 1 << 10;
/// `HVM_PARAM_HPET_ENABLED`
pub const HVM_PARAM_HPET_ENABLED: u32 = 11;
/// `HVM_PARAM_VPT_ALIGN`
pub const HVM_PARAM_VPT_ALIGN: u32 = 16;
/// `HVM_PARAM_IOREQ_SERVER_PFN`
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
/// `HVM_PARAM_NR_IOREQ_SERVER_PAGES`
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;

/// `HVM_PARAM_STORE_PFN`
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_IOREQ_PFN`
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;
/// `HVM_PARAM_BUFIOREQ_PFN`
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;
/// `HVM_PARAM_TIMER_MODE`
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// `HVM_PARAM_IDENT_PT`
pub const HVM_PARAM_IDENT_PT: u32 = 12;
/// `HVM_PARAM_CONSOLE_PFN`
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_PARAM_PAGING_RING_PFN`
pub const HVM_PARAM_PAGING_RING_PFN: u32 = 27;
/// `HVM_PARAM_MONITOR_RING_PFN`
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
/// `HVM_PARAM_SHARING_RING_PFN`
pub const HVM_PARAM_SHARING_RING_PFN: u32 = 29;
/// `HVM_PARAM_ALTP2M`
pub const HVM_PARAM_ALTP2M: u32 = 35;

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenHvmParam {
    /// The domain.
    pub domid: u16,
    /// Padding.
    pub pad: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// The value.
    pub value: u64,
}
const _: () = assert!(size_of::<XenHvmParam>() == 16);

/// `struct xen_domctl_hvmcontext`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlHvmcontext {
    /// Bytes of the buffer / bytes filled.
    pub size: u32,
    /// Padding.
    pub _pad: u32,
    /// The buffer (a guest handle), or 0 to ask for the size.
    pub buffer: u64,
}
const _: () = assert!(size_of::<XenDomctlHvmcontext>() == 16);

/// `struct xen_domctl_paging_mempool`.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenDomctlPagingMempool {
    /// Bytes.
    pub size: u64,
}
const _: () = assert!(size_of::<XenDomctlPagingMempool>() == 8);

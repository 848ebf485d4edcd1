//! The slice of Xen's public ABI this kernel uses (xen/include/public/*.h, 64-bit PV).

/// `XEN_ELFNOTE_VIRT_BASE` of this image; must match `VIRT_BASE` in link.ld and notes.rs.
pub const VIRT_BASE: u64 = pv_test_kernel::geometry::VIRT_BASE;
pub const PAGE_SIZE: u64 = pv_test_kernel::geometry::PAGE_SIZE;
pub const PAGE_SHIFT: u32 = 12;

/// Hypercall numbers (xen.h).
pub mod hc {
    pub const SET_TRAP_TABLE: u64 = 0;
    pub const MEMORY_OP: u64 = 12;
    pub const UPDATE_VA_MAPPING: u64 = 14;
    pub const CONSOLE_IO: u64 = 18;
    pub const SCHED_OP: u64 = 29;
    pub const EVENT_CHANNEL_OP: u64 = 32;
}

/// sched.h
pub const SCHEDOP_YIELD: u64 = 0;
pub const SCHEDOP_SHUTDOWN: u64 = 2;
pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_CRASH: u32 = 3;
/// event_channel.h
pub const EVTCHNOP_SEND: u64 = 4;
/// xen.h
pub const CONSOLEIO_WRITE: u64 = 0;
pub const UVMF_INVLPG: u64 = 2;
/// memory.h
pub const XENMEM_MACHPHYS_MAPPING: u64 = 12;

/// start_info flags (xen.h).
pub const SIF_PRIVILEGED: u32 = 1 << 0;
pub const SIF_INITDOMAIN: u32 = 1 << 1;
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
pub const SIF_MOD_START_PFN: u32 = 1 << 3;

/// Page-table entry bits.
pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_RW: u64 = 1 << 1;
pub const PTE_ACCESSED: u64 = 1 << 5;
pub const PTE_DIRTY: u64 = 1 << 6;
pub const PTE_PSE: u64 = 1 << 7;
/// Bits 12..51 of an entry hold the machine frame number.
pub const PTE_MFN_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Default machine-to-phys table of 64-bit PV guests (arch-x86/xen-x86_64.h).
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// L4 slots Xen reserves for itself in every 64-bit PV top table.
pub const XEN_L4_SLOTS: core::ops::RangeInclusive<usize> = 256..=271;

/// `struct start_info` (xen.h), 64-bit layout.
#[repr(C)]
#[derive(Debug)]
pub struct StartInfo {
    pub magic: [u8; 32],
    pub nr_pages: u64,
    pub shared_info: u64,
    pub flags: u32,
    pub store_mfn: u64,
    pub store_evtchn: u32,
    pub console_mfn: u64,
    pub console_evtchn: u32,
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    pub mfn_list: u64,
    pub mod_start: u64,
    pub mod_len: u64,
    pub cmd_line: [u8; 1024],
    pub first_p2m_pfn: u64,
    pub nr_p2m_frames: u64,
}
const _: () = assert!(core::mem::size_of::<StartInfo>() == 1168);
const _: () = assert!(core::mem::offset_of!(StartInfo, store_mfn) == 56);
const _: () = assert!(core::mem::offset_of!(StartInfo, console_mfn) == 72);
const _: () = assert!(core::mem::offset_of!(StartInfo, pt_base) == 88);
const _: () = assert!(core::mem::offset_of!(StartInfo, cmd_line) == 128);
const _: () = assert!(core::mem::offset_of!(StartInfo, first_p2m_pfn) == 1152);

/// `struct xencons_interface` (io/console.h).
#[repr(C)]
#[derive(Debug)]
pub struct ConsIface {
    pub input: [u8; 1024],
    pub out: [u8; 2048],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}
const _: () = assert!(core::mem::size_of::<ConsIface>() == 3088);

/// `struct xen_machphys_mapping` (memory.h).
#[repr(C)]
#[derive(Debug, Default)]
pub struct MachphysMapping {
    pub v_start: u64,
    pub v_end: u64,
    pub max_mfn: u64,
}

/// `struct sched_shutdown` (sched.h).
#[repr(C)]
#[derive(Debug)]
pub struct SchedShutdown {
    pub reason: u32,
}

/// `struct evtchn_send` (event_channel.h).
#[repr(C)]
#[derive(Debug)]
pub struct EvtchnSend {
    pub port: u32,
}

/// Offsets inside `struct shared_info` / `struct vcpu_info` (xen.h, arch-x86/xen.h).
pub const VCPU_INFO_UPCALL_MASK: usize = 1;

/// `struct xenstore_domain_interface` (io/xs_wire.h).
#[repr(C)]
#[derive(Debug)]
pub struct XsIface {
    pub req: [u8; 1024],
    pub rsp: [u8; 1024],
    pub req_cons: u32,
    pub req_prod: u32,
    pub rsp_cons: u32,
    pub rsp_prod: u32,
    pub server_features: u32,
    pub connection: u32,
    pub error: u32,
}
const _: () = assert!(core::mem::size_of::<XsIface>() == 2076);
const _: () = assert!(core::mem::offset_of!(XsIface, req_cons) == 2048);
const _: () = assert!(core::mem::offset_of!(XsIface, rsp_prod) == 2060);

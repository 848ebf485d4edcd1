//! Hypercall numbers (`xen/xen.h`), special domain ids, and `xen/version.h`.

/// `__HYPERVISOR_mmu_update`.
pub const HYPERVISOR_MMU_UPDATE: u64 = 1;
/// `__HYPERVISOR_memory_op`.
pub const HYPERVISOR_MEMORY_OP: u64 = 12;
/// `__HYPERVISOR_xen_version`.
pub const HYPERVISOR_XEN_VERSION: u64 = 17;
/// `__HYPERVISOR_grant_table_op`.
pub const HYPERVISOR_GRANT_TABLE_OP: u64 = 20;
/// `__HYPERVISOR_mmuext_op`.
pub const HYPERVISOR_MMUEXT_OP: u64 = 26;
/// `__HYPERVISOR_event_channel_op`.
pub const HYPERVISOR_EVENT_CHANNEL_OP: u64 = 32;
/// `__HYPERVISOR_sysctl`.
pub const HYPERVISOR_SYSCTL: u64 = 35;
/// `__HYPERVISOR_domctl`.
pub const HYPERVISOR_DOMCTL: u64 = 36;

/// `DOMID_FIRST_RESERVED`: ids from here on are not real domains.
pub const DOMID_FIRST_RESERVED: u16 = 0x7ff0;
/// `DOMID_SELF`.
pub const DOMID_SELF: u16 = 0x7ff0;

/// `XENVER_version`: returns `major << 16 | minor` as the hypercall's result.
pub const XENVER_VERSION: u64 = 0;
/// `XENVER_extraversion`: fills a `char[16]`.
pub const XENVER_EXTRAVERSION: u64 = 1;
/// `XENVER_capabilities`: fills a `char[1024]`.
pub const XENVER_CAPABILITIES: u64 = 3;
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;

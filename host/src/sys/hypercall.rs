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
/// `XENVER_compile_info`: `struct xen_compile_info` (char[64], [16], [32], [32]).
pub const XENVER_COMPILE_INFO: u64 = 2;
/// `XENVER_changeset`: char[64].
pub const XENVER_CHANGESET: u64 = 4;
/// `XENVER_platform_parameters`: `struct xen_platform_parameters { xen_ulong_t virt_start }`.
pub const XENVER_PLATFORM_PARAMETERS: u64 = 5;
/// `XENVER_pagesize`: the result.
pub const XENVER_PAGESIZE: u64 = 7;
/// `XENVER_commandline`: char[1024].
pub const XENVER_COMMANDLINE: u64 = 9;
/// `XENVER_build_id`: `struct xen_build_id { uint32_t len; unsigned char buf[]; }`.
pub const XENVER_BUILD_ID: u64 = 10;
/// `XENMEM_get_sharing_freed_pages`.
pub const XENMEM_GET_SHARING_FREED_PAGES: u64 = 18;
/// `XENMEM_get_sharing_shared_pages`.
pub const XENMEM_GET_SHARING_SHARED_PAGES: u64 = 19;
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;

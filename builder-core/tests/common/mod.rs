//! Shared by the build tests: the parameters libelf logged for Debian's 6.1.0-56 kernel
//! (/work/shared/reference/xl-vvv-debian-6.1.0-56-amd64.log, "ELF: addresses:" and the notes).
#![allow(dead_code, clippy::unwrap_used)]

use pvbuild_core::image::{GuestType, KernelParams, PaeMode};

/// The parameters libelf logged for Debian's kernel ("ELF: addresses:" and the notes).
pub fn debian_params() -> KernelParams {
    KernelParams {
        guest_type: GuestType::X86_64,
        guest_os: "linux".try_into().unwrap(),
        guest_ver: "2.6".try_into().unwrap(),
        xen_ver: "xen-3.0".try_into().unwrap(),
        loader: "generic".try_into().unwrap(),
        pae: PaeMode::Yes,
        bsd_symtab: false,
        unmapped_initrd: true,
        virt_base: 0xffffffff80000000,
        virt_entry: 0xffffffff830791c0,
        virt_hypercall: None,
        virt_hv_start_low: Some(0xffff800000000000),
        p2m_base: Some(0x8000000000),
        elf_paddr_offset: 0,
        f_supported: [0x8801],
        f_required: [0x1],
        phys_entry: Some(0x1000850),
        virt_offset: 0xffffffff80000000,
        virt_kstart: 0xffffffff81000000,
        virt_kend: 0xffffffff84a00000,
    }
}

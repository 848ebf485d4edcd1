//! The boot vcpu's context for Debian's real kernel, against libxenguest's `vcpu_x86_64`
//! (xg_dom_x86.c, Xen 4.17.5): `rsp = virt_base + (bootstack_pfn + 1) * PAGE_SIZE` and
//! `kernel_sp = user_regs.esp`, where in the tools' view of the ABI (xen/foreign/x86_64.h,
//! `__DECL_REG(sp)` = `union { uint64_t rsp, esp; }`) `esp` is the whole 64-bit rsp.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use pvbuild_core::addr::Mfn;
use pvbuild_core::layout::{self, LayoutRequest};
use pvbuild_core::vcpu::{self, VcpuContext};

#[test]
fn kernel_sp_is_the_whole_of_rsp() {
    let p = common::debian_params();
    let l = layout::solve(
        &p,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: None,
        },
    )
    .unwrap();
    let top = Mfn::new(0x7aa03).unwrap();
    let VcpuContext::X86_64(c) = vcpu::boot_context(&l, p.pae, top).unwrap() else {
        panic!("Debian's kernel is 64-bit");
    };
    // libxenguest's formula, from the layout's own fields.
    let rsp = p.virt_base + (l.bootstack_pfn + 1) * 4096;
    assert_eq!(c.user_regs.rsp, rsp);
    // A kernel in the top 2 GiB: the high half is set, so truncation would show.
    assert!(rsp > u64::from(u32::MAX), "{rsp:#x}");
    assert_eq!(c.kernel_sp, rsp, "kernel_sp {:#x}", c.kernel_sp);
    assert_eq!(c.kernel_ss, u64::from(c.user_regs.ss));
}

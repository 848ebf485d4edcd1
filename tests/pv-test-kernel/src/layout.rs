//! The start-of-day layout (xen.h, rules 3 and 4): after the kernel image come the module,
//! the p2m list, start_info, the xenstore page, the console page, the page tables and the
//! boot stack, each starting at the page after the previous one ends; rsi pointed at
//! start_info and rsp at the top of the boot stack.

use crate::report::Report;
use crate::xen::StartInfo;
use pv_test_kernel::geometry::Layout;

extern "C" {
    static _image_start: u8;
    static _end: u8;
}

pub fn image_range() -> (u64, u64) {
    // Only the addresses of the linker-script symbols are taken.
    (
        core::ptr::addr_of!(_image_start) as u64,
        core::ptr::addr_of!(_end) as u64,
    )
}

pub fn check(r: &mut Report, si: &StartInfo, si_va: u64, boot_rsp: u64) {
    let (_, image_end) = image_range();
    let actual = Layout {
        image_end,
        mod_start: si.mod_start,
        mod_len: si.mod_len,
        mfn_list: si.mfn_list,
        nr_pages: si.nr_pages,
        start_info: si_va,
        pt_base: si.pt_base,
        nr_pt_frames: si.nr_pt_frames,
        stack_top: boot_rsp,
    };
    let mismatch = actual.first_mismatch();
    r.check(
        "layout",
        mismatch.is_none(),
        format_args!(
            "kernel_end={image_end:#x} module={:#x}+{:#x} p2m={:#x} start_info={si_va:#x} \
             pt_base={:#x}+{} stack_top={boot_rsp:#x} first_mismatch={:x?}",
            si.mod_start, si.mod_len, si.mfn_list, si.pt_base, si.nr_pt_frames, mismatch
        ),
    );
}

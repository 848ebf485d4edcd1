//! shared_info: the builder gives its machine address in start_info and must leave every
//! vcpu's event upcall masked (xg_dom_x86.c shared_info_x86_64), since this kernel has no
//! event callback. The page is mapped for the check over a .bss page (update_va_mapping),
//! then that page's original mapping is put back.

use crate::hypercall;
use crate::pagetable::Tables;
use crate::report::Report;
use crate::xen::{self, StartInfo};

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut WINDOW: Page = Page([0; 4096]);

pub fn check(r: &mut Report, si: &StartInfo, tables: &Tables) {
    let va = core::ptr::addr_of!(WINDOW) as u64;
    let saved = match tables.translate(va) {
        Ok(e) => e,
        Err(e) => {
            r.check(
                "shared_info.upcall_mask",
                false,
                format_args!("window not mapped: {e:?}"),
            );
            return;
        }
    };
    let pte = si.shared_info | xen::PTE_PRESENT | xen::PTE_RW | xen::PTE_ACCESSED | xen::PTE_DIRTY;
    // SAFETY: WINDOW is never used for anything else.
    let rc = unsafe { hypercall::update_va_mapping(va, pte) };
    if rc != 0 {
        r.check(
            "shared_info.upcall_mask",
            false,
            format_args!(
                "Xen refused to map shared_info {:#x}: rc={rc}",
                si.shared_info
            ),
        );
        return;
    }
    // SAFETY: the window now maps shared_info; vcpu_info[0] starts at offset 0.
    let mask = unsafe { ((va as usize + xen::VCPU_INFO_UPCALL_MASK) as *const u8).read_volatile() };
    // SAFETY: puts back the entry the builder wrote for this page.
    let restore = unsafe { hypercall::update_va_mapping(va, saved) };
    r.check(
        "shared_info.upcall_mask",
        mask == 1 && restore == 0,
        format_args!("vcpu0 evtchn_upcall_mask={mask} restore_rc={restore}"),
    );
}

//! Hypercalls through the hypercall page Xen fills (XEN_ELFNOTE_HYPERCALL_PAGE): stub `n`
//! lives at `hypercall_page + n * 32`. If the builder did not have Xen fill the page, the
//! kernel falls back to the raw 64-bit PV entry (`syscall` with the number in rax) so it can
//! still report the failure.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::xen::{self, hc};

core::arch::global_asm!(
    r#"
    .pushsection .text.hypercall_page, "ax"
    .p2align 12
    .globl hypercall_page
hypercall_page:
    .skip 4096, 0
    .popsection
"#
);

extern "C" {
    static hypercall_page: [u8; 4096];
}

static USE_PAGE: AtomicBool = AtomicBool::new(false);

/// Virtual address of the hypercall page.
pub fn page_address() -> u64 {
    core::ptr::addr_of!(hypercall_page) as u64
}

/// Byte `offset` of the hypercall page, as Xen left it.
fn page_byte(offset: usize) -> u8 {
    let base = core::ptr::addr_of!(hypercall_page).cast::<u8>();
    // SAFETY: callers pass offset < 4096; the page is part of our image (.text), mapped and
    // readable; Xen wrote it before we started, so a volatile read observes its contents.
    unsafe { base.add(offset % 4096).read_volatile() }
}

/// Does stub `nr` of the hypercall page load `nr` into eax (`b8 nr32`), as Xen writes it?
fn stub_filled(nr: u64) -> bool {
    let start = (nr as usize % 128) * 32;
    let want = (nr as u32).to_le_bytes();
    (0..27).any(|i| {
        page_byte(start + i) == 0xb8
            && want
                .iter()
                .enumerate()
                .all(|(k, &b)| page_byte(start + i + 1 + k) == b)
    })
}

/// Check the page for every hypercall this kernel uses; select the page if all are there.
/// Returns the number of the first missing stub, if any.
pub fn probe_page() -> Result<(), u64> {
    for nr in [
        hc::SET_TRAP_TABLE,
        hc::MEMORY_OP,
        hc::UPDATE_VA_MAPPING,
        hc::CONSOLE_IO,
        hc::SCHED_OP,
        hc::EVENT_CHANNEL_OP,
    ] {
        if !stub_filled(nr) {
            return Err(nr);
        }
    }
    USE_PAGE.store(true, Ordering::Relaxed);
    Ok(())
}

/// Issue hypercall `nr` with three arguments.
///
/// # Safety
/// The arguments must be valid for the hypercall: pointers point to live, correctly laid out
/// structures that Xen may read or write.
pub unsafe fn hypercall3(nr: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    if USE_PAGE.load(Ordering::Relaxed) {
        let entry = page_address() + nr * 32;
        // SAFETY: `entry` is a stub Xen wrote (probe_page checked it); per the 64-bit PV ABI
        // arguments go in rdi, rsi, rdx; Xen may clobber rcx, r11 and the argument registers.
        unsafe {
            core::arch::asm!(
                "call {entry}",
                entry = in(reg) entry,
                inlateout("rdi") a1 => _,
                inlateout("rsi") a2 => _,
                inlateout("rdx") a3 => _,
                lateout("rax") ret,
                out("rcx") _, out("r11") _, out("r10") _, out("r8") _,
            );
        }
    } else {
        // SAFETY: the raw PV hypercall entry that the hypercall page's stubs themselves use.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr as i64 => ret,
                inlateout("rdi") a1 => _,
                inlateout("rsi") a2 => _,
                inlateout("rdx") a3 => _,
                out("rcx") _, out("r11") _, out("r10") _, out("r8") _,
            );
        }
    }
    ret
}

pub fn sched_yield() {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { hypercall3(hc::SCHED_OP, xen::SCHEDOP_YIELD, 0, 0) };
}

pub fn shutdown(reason: u32) -> ! {
    let arg = xen::SchedShutdown { reason };
    loop {
        // SAFETY: `arg` is a live sched_shutdown struct.
        unsafe {
            hypercall3(
                hc::SCHED_OP,
                xen::SCHEDOP_SHUTDOWN,
                core::ptr::addr_of!(arg) as u64,
                0,
            )
        };
        sched_yield();
    }
}

pub fn evtchn_send(port: u32) -> i64 {
    let arg = xen::EvtchnSend { port };
    // SAFETY: `arg` is a live evtchn_send struct.
    unsafe {
        hypercall3(
            hc::EVENT_CHANNEL_OP,
            xen::EVTCHNOP_SEND,
            core::ptr::addr_of!(arg) as u64,
            0,
        )
    }
}

/// CONSOLEIO_write: Xen's own console. Release builds refuse it for domUs (-EPERM); used
/// only when the PV console ring is unusable.
pub fn console_io_write(bytes: &[u8]) -> i64 {
    // SAFETY: Xen reads `len` bytes from the slice.
    unsafe {
        hypercall3(
            hc::CONSOLE_IO,
            xen::CONSOLEIO_WRITE,
            bytes.len() as u64,
            bytes.as_ptr() as u64,
        )
    }
}

pub fn machphys_mapping() -> Result<xen::MachphysMapping, i64> {
    let mut map = xen::MachphysMapping::default();
    // SAFETY: Xen writes one xen_machphys_mapping into `map`.
    let rc = unsafe {
        hypercall3(
            hc::MEMORY_OP,
            xen::XENMEM_MACHPHYS_MAPPING,
            core::ptr::addr_of_mut!(map) as u64,
            0,
        )
    };
    if rc == 0 {
        Ok(map)
    } else {
        Err(rc)
    }
}

/// Replace the L1 entry that maps `va` (HYPERVISOR_update_va_mapping, invalidating `va`).
///
/// # Safety
/// Nothing in use may live in the page at `va` while it maps something else.
pub unsafe fn update_va_mapping(va: u64, pte: u64) -> i64 {
    // SAFETY: the caller guarantees the page is not in use; Xen validates the entry.
    unsafe { hypercall3(hc::UPDATE_VA_MAPPING, va, pte, xen::UVMF_INVLPG) }
}

/// HYPERVISOR_set_trap_table.
///
/// # Safety
/// `table` points to `trap_info` entries terminated by one whose address is 0.
pub unsafe fn set_trap_table(table: u64) -> i64 {
    // SAFETY: guaranteed by the caller.
    unsafe { hypercall3(hc::SET_TRAP_TABLE, table, 0, 0) }
}

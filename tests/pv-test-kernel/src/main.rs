//! pv-test-kernel: a 64-bit Xen PV guest that checks what the domain builder promised
//! (docs/test-kernel.md), prints `CHECK <name> PASS|FAIL <detail>` lines and a verdict on
//! the PV console, then shuts down: poweroff on pass, crash on fail.

#![no_std]
#![no_main]

mod cmdline;
mod console;
mod elf;
mod global;
mod hypercall;
mod layout;
mod m2p;
mod mapping;
mod module;
mod notes;
mod p2m;
mod pagetable;
mod report;
mod sharedinfo;
mod startinfo;
mod traps;
mod xen;
mod xenstore;
mod xsprobe;

use m2p::M2p;
use pagetable::{entry_mfn, Tables};
use report::Report;
use xen::{StartInfo, PAGE_SHIFT, PAGE_SIZE, VIRT_BASE};

// Xen enters at ENTRY with rsi = start_info (virtual), rsp = top of the boot stack the
// builder mapped. Keep both for the checks and move to our own stack in .bss.
core::arch::global_asm!(
    r#"
    .pushsection .text.entry, "ax"
    .globl _start
_start:
    cld
    mov %rsi, %rdi
    mov %rsp, %rsi
    lea stack_top(%rip), %rsp
    call rust_main
1:  ud2
    jmp 1b
    .popsection

    .pushsection .bss.stack, "aw", @nobits
    .p2align 12
stack_bottom:
    .skip 65536
stack_top:
    .popsection
"#,
    options(att_syntax)
);

/// Never mapped: L4 slot 0 is empty in a PV guest's initial tables.
const SELFTEST_FAULT_VA: u64 = 0x1000;

#[derive(Debug)]
pub(crate) enum ConsoleError {
    NoPageTables,
    UnknownMfn(u64),
    NotMapped(pagetable::WalkError),
    WrongFrame { va: u64, entry: u64 },
}

impl core::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConsoleError::NoPageTables => write!(f, "no usable page tables"),
            ConsoleError::UnknownMfn(mfn) => write!(f, "ring mfn {mfn:#x} not in the M2P"),
            ConsoleError::NotMapped(e) => write!(f, "ring page not mapped: {e:x?}"),
            ConsoleError::WrongFrame { va, entry } => {
                write!(
                    f,
                    "{va:#x} maps entry {entry:#x}, not the ring's frame (writable)"
                )
            }
        }
    }
}

/// Find the console ring: its pfn from the M2P, its address in the initial mapping, and
/// make sure that address really maps the console frame, writable, before writing to it.
fn console_va(si: &StartInfo, tables: Option<&Tables>, m2p: &M2p) -> Result<u64, ConsoleError> {
    ring_va(si, si.console_mfn, tables, m2p)
}

/// Where the start-of-day page `mfn` (console or xenstore ring) is mapped writable.
pub(crate) fn ring_va(
    si: &StartInfo,
    mfn: u64,
    tables: Option<&Tables>,
    m2p: &M2p,
) -> Result<u64, ConsoleError> {
    let tables = tables.ok_or(ConsoleError::NoPageTables)?;
    let pfn = m2p
        .pfn_of(mfn)
        .filter(|&p| p < si.nr_pages)
        .ok_or(ConsoleError::UnknownMfn(mfn))?;
    let va = VIRT_BASE + (pfn << PAGE_SHIFT);
    let entry = tables.translate(va).map_err(ConsoleError::NotMapped)?;
    if entry_mfn(entry) != mfn || entry & xen::PTE_RW == 0 {
        return Err(ConsoleError::WrongFrame { va, entry });
    }
    Ok(va)
}

#[derive(Debug)]
struct ConsoleDetail<'a>(&'a Result<u64, ConsoleError>);

impl core::fmt::Display for ConsoleDetail<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Ok(va) => write!(f, "ring at {va:#x}"),
            Err(e) => write!(f, "{e}"),
        }
    }
}

fn finish(r: &Report) -> ! {
    r.print_verdict();
    console::flush();
    hypercall::shutdown(if r.passed() {
        xen::SHUTDOWN_POWEROFF
    } else {
        xen::SHUTDOWN_CRASH
    });
}

#[no_mangle]
extern "C" fn rust_main(si_va: u64, boot_rsp: u64) -> ! {
    // Before anything writes memory: is the image as the ELF file says?
    let bss_nonzero = elf::bss_nonzero();
    let data_bad = elf::data_mismatches();
    let hc_page = hypercall::probe_page();
    let traps_rc = traps::install();
    let m2p = M2p::new();

    if si_va < VIRT_BASE || !si_va.is_multiple_of(PAGE_SIZE) {
        println!(
            "CHECK start_info.pointer FAIL rsi={si_va:#x} is not a page of the initial mapping"
        );
        let r = Report {
            total: 1,
            failed: 1,
        };
        finish(&r);
    }
    // SAFETY: rsi is the start_info page the builder filled and mapped (xen.h start-of-day
    // rule 3d); were it unmapped, the fault is reported by the trap handler.
    let si: &StartInfo = unsafe { &*(si_va as *const StartInfo) };
    let tables = Tables::new(m2p, si.pt_base, si.nr_pt_frames);
    let cons = console_va(si, tables.as_ref(), &m2p);
    if let Ok(va) = cons {
        // SAFETY: va maps the console frame writable (checked by console_va).
        unsafe { console::init(va, si.console_evtchn) };
    }
    let (image_start, image_end) = layout::image_range();
    println!("pv-test-kernel: booted, start_info={si_va:#x} boot_rsp={boot_rsp:#x} image={image_start:#x}-{image_end:#x}");
    println!(
        "INFO nr_pages={:#x} shared_info={:#x} flags={:#x} pt_base={:#x} nr_pt_frames={} mfn_list={:#x} mod_start={:#x} mod_len={} m2p={:#x} max_mfn={:#x} traps_rc={traps_rc}",
        si.nr_pages, si.shared_info, si.flags, si.pt_base, si.nr_pt_frames, si.mfn_list,
        si.mod_start, si.mod_len, m2p.base, m2p.max_mfn
    );

    let mut r = Report::default();
    r.check(
        "console.ring",
        cons.is_ok() && console::ring_in_use(),
        format_args!("{}", ConsoleDetail(&cons)),
    );
    r.check(
        "hypercall_page",
        hc_page.is_ok(),
        format_args!(
            "at {:#x}: {}",
            hypercall::page_address(),
            match hc_page {
                Ok(()) => "stubs written by Xen",
                Err(_) => "stub missing: not initialised (HYPERCALL_PAGE ignored?)",
            }
        ),
    );
    r.check(
        "elf.data",
        data_bad == 0,
        format_args!("words differing from the file: {data_bad}"),
    );
    r.check(
        "elf.bss",
        bss_nonzero == 0,
        format_args!("non-zero words: {bss_nonzero}"),
    );

    let expect = cmdline::check(&mut r, &si.cmd_line);
    startinfo::check(&mut r, si, si_va, &m2p, expect.as_ref());
    layout::check(&mut r, si, si_va, boot_rsp);
    match tables.as_ref() {
        Some(t) => {
            let p2m = p2m::check(&mut r, si, t, &m2p);
            mapping::check(&mut r, si, t, p2m.as_ref(), boot_rsp);
            sharedinfo::check(&mut r, si, t);
        }
        None => {
            r.check(
                "pagetables.frames",
                false,
                format_args!(
                    "pt_base={:#x} nr_pt_frames={} unusable",
                    si.pt_base, si.nr_pt_frames
                ),
            );
        }
    }
    let expect = expect.unwrap_or_default();
    module::check(&mut r, si, tables.as_ref(), &expect);
    if expect.xsprobe {
        xsprobe::run(&mut r, si, tables.as_ref(), &m2p, expect.xsprobe_other);
    }
    if expect.selftest_fault {
        // Proves the fault path: the trap handler must print TRAP and VERDICT FAIL.
        println!("INFO selftest=fault: reading unmapped address {SELFTEST_FAULT_VA:#x}");
        // SAFETY: deliberately faults; the trap handler reports it and shuts down.
        let v = unsafe { (SELFTEST_FAULT_VA as *const u64).read_volatile() };
        println!("INFO selftest=fault: read {v:#x} without a fault");
        r.check("selftest.fault", false, format_args!("no fault taken"));
    }
    finish(&r);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("PANIC {info}");
    println!("VERDICT FAIL 1/1");
    console::flush();
    hypercall::shutdown(xen::SHUTDOWN_CRASH);
}

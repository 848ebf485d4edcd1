//! The initial page tables, walked from `start_info.pt_base`:
//! - `mapping`: the leaves map exactly `[VIRT_BASE, v_end)`, page by page, `VIRT_BASE +
//!   pfn * 4096` onto the frame whose M2P entry is `pfn`; v_end is 4 MiB aligned and at least
//!   512 KiB past the boot stack (xen.h start-of-day rules 1, 2, 5, 7);
//! - `mapping.writable`: every page but the page tables is writable (rule 6);
//! - `pagetables.readonly`: every page-table frame is mapped, read-only (rule 6);
//! - `pagetables.frames`: every table reached lies in `[pt_base, + nr_pt_frames pages)`,
//!   none is shared, and there are exactly as many as the minimum for v_end;
//! - `cr3`: the vcpu's cr3 (read through Xen's emulation of `mov %cr3`) is the frame at
//!   pt_base.

use crate::p2m::P2m;
use crate::pagetable::{entry_mfn, Leaf, Tables};
use crate::report::Report;
use crate::xen::{self, StartInfo, PAGE_SHIFT, PAGE_SIZE, VIRT_BASE};
use pv_test_kernel::geometry::minimal_tables;

const FOUR_MIB: u64 = 4 << 20;
const PADDING: u64 = 512 << 10;

#[derive(Debug, Default)]
struct Tally {
    pages: u64,
    gaps: u64,
    first_gap: Option<(u64, u64)>,
    wrong_frame: u64,
    first_wrong: Option<(u64, u64, Option<u64>)>,
    pt_leaves: u64,
    pt_writable: u64,
    data_readonly: u64,
    first_rw_issue: Option<(u64, u64)>,
}

pub fn check(
    r: &mut Report,
    si: &StartInfo,
    tables: &Tables,
    p2m: Option<&P2m>,
    boot_rsp: u64,
) -> Option<u64> {
    let m2p = tables.m2p;
    let mut t = Tally::default();
    let stats = tables.visit(|leaf: Leaf| {
        let expected_va = VIRT_BASE + t.pages * PAGE_SIZE;
        if leaf.va != expected_va {
            t.gaps += 1;
            t.first_gap.get_or_insert((expected_va, leaf.va));
        }
        let pfn = leaf.va.wrapping_sub(VIRT_BASE) >> PAGE_SHIFT;
        let mfn = entry_mfn(leaf.entry);
        let back = m2p.pfn_of(mfn);
        if leaf.va < VIRT_BASE || back != Some(pfn) {
            t.wrong_frame += 1;
            t.first_wrong.get_or_insert((leaf.va, mfn, back));
        }
        let rw = leaf.entry & xen::PTE_RW != 0;
        if tables.is_pt_pfn(pfn) {
            t.pt_leaves += 1;
            if rw {
                t.pt_writable += 1;
                t.first_rw_issue.get_or_insert((leaf.va, leaf.entry));
            }
        } else if !rw {
            t.data_readonly += 1;
            t.first_rw_issue.get_or_insert((leaf.va, leaf.entry));
        }
        t.pages += 1;
    });
    let v_end = VIRT_BASE + t.pages * PAGE_SIZE;
    let need_end = boot_rsp.saturating_add(PADDING);
    r.check(
        "mapping",
        t.pages > 0
            && t.gaps == 0
            && t.wrong_frame == 0
            && v_end.is_multiple_of(FOUR_MIB)
            && v_end >= need_end
            && t.pages <= si.nr_pages,
        format_args!(
            "v_end={v_end:#x} pages={:#x} gaps={} first_gap={:x?} wrong_frame={} first={:x?} \
             4MiB_aligned={} padding_after_stack={:#x}",
            t.pages,
            t.gaps,
            t.first_gap,
            t.wrong_frame,
            t.first_wrong,
            v_end.is_multiple_of(FOUR_MIB),
            v_end.saturating_sub(boot_rsp)
        ),
    );
    r.check(
        "mapping.writable",
        t.data_readonly == 0,
        format_args!("read-only non-page-table pages={}", t.data_readonly),
    );
    r.check(
        "pagetables.readonly",
        t.pt_writable == 0 && t.pt_leaves == tables.nr_pt_frames,
        format_args!(
            "page-table frames mapped={} of nr_pt_frames={} writable={} first_issue={:x?}",
            t.pt_leaves, tables.nr_pt_frames, t.pt_writable, t.first_rw_issue
        ),
    );
    let minimal = minimal_tables(v_end);
    r.check(
        "pagetables.frames",
        stats.errors == 0 && stats.tables == tables.nr_pt_frames && minimal == stats.tables,
        format_args!(
            "pt_base={:#x} tables_reached={} nr_pt_frames={} minimal_for_v_end={} errors={} \
             first={:x?}",
            tables.pt_base,
            stats.tables,
            tables.nr_pt_frames,
            minimal,
            stats.errors,
            stats.first_error
        ),
    );

    let cr3 = read_cr3();
    let top = tables.translate(tables.pt_base).map(entry_mfn);
    let from_p2m = p2m.and_then(|p| p.get(tables.pt_pfn));
    r.check(
        "cr3",
        top == Ok(cr3 >> PAGE_SHIFT) && from_p2m.is_none_or(|m| m == cr3 >> PAGE_SHIFT),
        format_args!(
            "cr3={cr3:#x} pt_base_mfn={:x?} p2m[pt_pfn {:#x}]={:x?}",
            top, tables.pt_pfn, from_p2m
        ),
    );
    (t.gaps == 0).then_some(v_end)
}

fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: Xen emulates `mov %cr3` for PV guests: it returns the machine address of the
    // vcpu's top page table and changes nothing.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

//! start_info fields a domU builder fills (xg_dom_x86.c start_info_x86_64 and the
//! start-of-day layout in xen.h): magic, nr_pages, flags, shared_info, xenstore and
//! console pages and event channels.

use crate::m2p::M2p;
use crate::report::Report;
use crate::xen::{self, StartInfo, PAGE_SHIFT, VIRT_BASE};
use pv_test_kernel::expect::{Expect, Shown};

pub const MAGIC: &[u8] = b"xen-3.0-x86_64";

pub fn magic(si: &StartInfo) -> &[u8] {
    let end = si
        .magic
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(si.magic.len());
    si.magic.get(..end).unwrap_or(&[])
}

/// The pfn a machine frame backs, as the M2P says.
fn pfn(m2p: &M2p, mfn: u64) -> Option<u64> {
    m2p.pfn_of(mfn)
}

pub fn check(r: &mut Report, si: &StartInfo, si_va: u64, m2p: &M2p, expect: Option<&Expect<'_>>) {
    let m = magic(si);
    r.check(
        "start_info.magic",
        m == MAGIC,
        format_args!("\"{}\"", Shown(m)),
    );

    let want = expect.and_then(|e| e.nr_pages);
    r.check(
        "start_info.nr_pages",
        si.nr_pages > 0 && want.is_none_or(|w| w == si.nr_pages),
        format_args!(
            "nr_pages={} ({} MiB) expected={}",
            si.nr_pages,
            si.nr_pages >> 8,
            want.map_or(-1, |w| w as i64)
        ),
    );

    let forbidden =
        xen::SIF_PRIVILEGED | xen::SIF_INITDOMAIN | xen::SIF_MOD_START_PFN | xen::SIF_MULTIBOOT_MOD;
    r.check(
        "start_info.flags",
        si.flags & forbidden == 0,
        format_args!(
            "flags={:#x} (no PRIVILEGED/INITDOMAIN for a domU, no MOD_START_PFN/MULTIBOOT_MOD: \
             not declared)",
            si.flags
        ),
    );

    let shinfo_mfn = si.shared_info >> PAGE_SHIFT;
    r.check(
        "start_info.shared_info",
        si.shared_info != 0
            && si.shared_info.is_multiple_of(xen::PAGE_SIZE)
            && shinfo_mfn <= m2p.max_mfn,
        format_args!("maddr={:#x} mfn={:#x}", si.shared_info, shinfo_mfn),
    );

    // xen.h start-of-day layout: start_info, then the xenstore page, then the console page.
    let si_pfn = si_va.wrapping_sub(VIRT_BASE) >> PAGE_SHIFT;
    let store_pfn = pfn(m2p, si.store_mfn);
    r.check(
        "start_info.store",
        si.store_mfn != 0 && si.store_evtchn != 0 && store_pfn == Some(si_pfn + 1),
        format_args!(
            "mfn={:#x} evtchn={} pfn={:#x} expected_pfn={:#x}",
            si.store_mfn,
            si.store_evtchn,
            store_pfn.unwrap_or(u64::MAX),
            si_pfn + 1
        ),
    );
    let cons_pfn = pfn(m2p, si.console_mfn);
    r.check(
        "start_info.console",
        si.console_mfn != 0 && si.console_evtchn != 0 && cons_pfn == Some(si_pfn + 2),
        format_args!(
            "mfn={:#x} evtchn={} pfn={:#x} expected_pfn={:#x}",
            si.console_mfn,
            si.console_evtchn,
            cons_pfn.unwrap_or(u64::MAX),
            si_pfn + 2
        ),
    );
}

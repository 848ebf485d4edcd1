//! The phys-to-machine list the builder hands over (`start_info.mfn_list`, nr_pages
//! entries of 8 bytes, inside the initial mapping because this kernel does not declare
//! INIT_P2M) must agree with Xen's M2P for every pfn: `m2p[p2m[pfn]] == pfn`. That also
//! proves no machine frame is listed twice.

use crate::m2p::M2p;
use crate::pagetable::Tables;
use crate::report::Report;
use crate::xen::StartInfo;

/// Read access to a p2m list whose pages were found mapped.
#[derive(Debug, Clone, Copy)]
pub struct P2m {
    va: u64,
    pub len: u64,
}

impl P2m {
    pub fn get(&self, pfn: u64) -> Option<u64> {
        if pfn >= self.len {
            return None;
        }
        // SAFETY: `check` verified every page of [va, va + len * 8) is mapped.
        Some(unsafe { ((self.va + pfn * 8) as *const u64).read_volatile() })
    }
}

pub fn check(r: &mut Report, si: &StartInfo, tables: &Tables, m2p: &M2p) -> Option<P2m> {
    if si.first_p2m_pfn != 0 || si.nr_p2m_frames != 0 {
        r.check(
            "p2m.list",
            false,
            format_args!(
                "first_p2m_pfn={:#x} nr_p2m_frames={} set without INIT_P2M",
                si.first_p2m_pfn, si.nr_p2m_frames
            ),
        );
        return None;
    }
    let Some(bytes) = si.nr_pages.checked_mul(8) else {
        r.check(
            "p2m.list",
            false,
            format_args!("nr_pages {} overflows", si.nr_pages),
        );
        return None;
    };
    if let Err(e) = tables.range_mapped(si.mfn_list, bytes) {
        r.check(
            "p2m.list",
            false,
            format_args!("mfn_list={:#x} +{bytes:#x} not mapped: {e:?}", si.mfn_list),
        );
        return None;
    }
    let p2m = P2m {
        va: si.mfn_list,
        len: si.nr_pages,
    };
    let mut bad = 0u64;
    let mut first: Option<(u64, u64, Option<u64>)> = None;
    for pfn in 0..p2m.len {
        let mfn = p2m.get(pfn).unwrap_or(u64::MAX);
        let back = m2p.pfn_of(mfn);
        if back != Some(pfn) {
            bad += 1;
            first.get_or_insert((pfn, mfn, back));
        }
    }
    let ok = r.check(
        "p2m.list",
        bad == 0,
        format_args!(
            "mfn_list={:#x} entries={} inconsistent={} first={:x?} (m2p max_mfn={:#x}{})",
            si.mfn_list,
            p2m.len,
            bad,
            first,
            m2p.max_mfn,
            if m2p.queried { "" } else { ", guessed" }
        ),
    );
    ok.then_some(p2m)
}

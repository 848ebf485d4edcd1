//! The layout solver against libxenguest: the reference log of `xl -vvv create` for Debian's
//! 6.1.0-56 kernel (../shared/reference/xl-vvv-debian-6.1.0-56-amd64.log), and the solver's
//! boundaries (page-table frame counts, 4 MiB steps, memory just too small, the hypervisor
//! area).

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
use common::debian_params;

use pvbuild_core::image::{GuestType, KernelParams, PaeMode};
use pvbuild_core::layout::{
    self, LayoutError, LayoutRequest, SIF_MOD_START_PFN, SIF_VIRT_P2M_4TOOLS,
};

const RAMDISK: u64 = 1_983_504;

#[test]
fn debian_layout_matches_libxenguest_log() {
    let l = layout::solve(
        &debian_params(),
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: Some(RAMDISK),
        },
    )
    .unwrap();
    // xc_dom_alloc_segment:   kernel       : 0xffffffff81000000 -> 0xffffffff84a00000  (pfn 0x1000 + 0x3a00 pages)
    assert_eq!(
        (l.kernel.vstart, l.kernel.vend),
        (0xffffffff81000000, 0xffffffff84a00000)
    );
    assert_eq!((l.kernel.pfn, l.kernel.pages), (0x1000, 0x3a00));
    // start info / xenstore / console at 0xffffffff84a0{0,1,2}000
    assert_eq!(
        (l.start_info_pfn, l.xenstore_pfn, l.console_pfn),
        (0x4a00, 0x4a01, 0x4a02)
    );
    assert_eq!(l.pfn_vaddr(l.start_info_pfn), Some(0xffffffff84a00000));
    assert_eq!(l.pfn_vaddr(l.console_pfn), Some(0xffffffff84a02000));
    // count_pgtables: 1 L3, 1 L2, 38 L1 for [0x0000ffff80000000, 0x0000ffff84bfffff]
    let m = l.maps[0];
    assert_eq!(
        (m.lvls[2].from, m.lvls[2].to, m.lvls[2].pgtables),
        (0x0000ff8000000000, 0x0000ffffffffffff, 1)
    );
    assert_eq!(
        (m.lvls[1].from, m.lvls[1].to, m.lvls[1].pgtables),
        (0x0000ffff80000000, 0x0000ffffbfffffff, 1)
    );
    assert_eq!(
        (m.lvls[0].from, m.lvls[0].to, m.lvls[0].pgtables),
        (0x0000ffff80000000, 0x0000ffff84bfffff, 38)
    );
    // page tables  : 0xffffffff84a03000 -> 0xffffffff84a2c000  (pfn 0x4a03 + 0x29 pages)
    assert_eq!(
        (l.pgtables.vstart, l.pgtables.vend),
        (0xffffffff84a03000, 0xffffffff84a2c000)
    );
    assert_eq!((l.pgtables.pfn, l.pgtables.pages), (0x4a03, 0x29));
    assert_eq!(l.nr_pt_frames(), 0x29);
    // boot stack   : 0xffffffff84a2c000 (pfn 0x4a2c)
    assert_eq!(l.bootstack_pfn, 0x4a2c);
    assert_eq!(l.virt_alloc_end, 0xffffffff84a2d000);
    assert_eq!(l.virt_pgtab_end, 0xffffffff84c00000);
    // module0      : 0xffffffff84c00000 -> 0xffffffff84de4410  (pfn 0x4c00 + 0x1e5 pages)
    let rd = l.ramdisk.unwrap();
    assert_eq!(
        (rd.vstart, rd.vend, rd.pfn, rd.pages),
        (0xffffffff84c00000, 0xffffffff84de4410, 0x4c00, 0x1e5)
    );
    assert!(l.ramdisk_unmapped);
    // As xl: libxl replaces libxenguest's SIF_VIRT_P2M_4TOOLS by its own flags (0).
    assert_eq!(l.flags, SIF_MOD_START_PFN);
    assert_eq!(l.flags & SIF_VIRT_P2M_4TOOLS, 0);
    assert_eq!((l.mod_start, l.mod_len), (0x4c00, 0x1e5000));
    // The p2m mapping: one L3, one L2, one L1 for [0x8000000000, 0x80001fffff].
    assert_eq!(l.n_mappings, 2);
    let p = l.maps[1];
    assert_eq!(
        (p.lvls[2].from, p.lvls[2].to, p.lvls[2].pgtables),
        (0x8000000000, 0xffffffffff, 1)
    );
    assert_eq!(
        (p.lvls[1].from, p.lvls[1].to, p.lvls[1].pgtables),
        (0x8000000000, 0x803fffffff, 1)
    );
    assert_eq!(
        (p.lvls[0].from, p.lvls[0].to, p.lvls[0].pgtables),
        (0x8000000000, 0x80001fffff, 1)
    );
    // phys2mach    : 0xffffffff84de5000 -> 0xffffffff84e68000  (pfn 0x4de5 + 0x83 pages)
    assert_eq!(
        (l.p2m.vstart, l.p2m.vend, l.p2m.pfn, l.p2m.pages),
        (0xffffffff84de5000, 0xffffffff84e68000, 0x4de5, 0x83)
    );
    assert_eq!(l.p2m_list_pages, 0x80);
    assert_eq!(l.p2m_vaddr, 0x8000000000);
    assert_eq!(l.p2m_frames(), (0x4de5, 0x83));
    // The p2m mapping's tables follow the list and are read-only frames.
    assert_eq!(p.lvls[2].pfn, 0x4de5 + 0x80);
    assert!(
        l.is_pagetable_pfn(0x4e65) && l.is_pagetable_pfn(0x4e67) && !l.is_pagetable_pfn(0x4e68)
    );
    assert!(
        l.is_pagetable_pfn(0x4a03) && l.is_pagetable_pfn(0x4a2b) && !l.is_pagetable_pfn(0x4a2c)
    );
    assert!(!l.is_pagetable_pfn(0x4de5 + 0x7f));
    assert_eq!(l.pfn_alloc_end, 0x4e68);
}

#[test]
fn without_init_p2m_the_list_is_in_the_initial_mapping() {
    let mut k = debian_params();
    k.p2m_base = None;
    k.unmapped_initrd = false;
    let l = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: Some(RAMDISK),
        },
    )
    .unwrap();
    let rd = l.ramdisk.unwrap();
    // kernel, ramdisk, p2m, start info ... in that order, pfns and addresses in step.
    assert_eq!(
        (rd.pfn, rd.vstart, rd.vend),
        (0x4a00, 0xffffffff84a00000, 0xffffffff84a00000 + RAMDISK)
    );
    assert_eq!((l.p2m.pfn, l.p2m.pages), (0x4a00 + 0x1e5, 0x80));
    assert_eq!(l.p2m_vaddr, l.p2m.vstart);
    assert_eq!(l.start_info_pfn, 0x4a00 + 0x1e5 + 0x80);
    assert_eq!(l.n_mappings, 1);
    assert_eq!(l.flags, 0, "xl's guests have no SIF_VIRT_P2M_4TOOLS");
    assert_eq!((l.mod_start, l.mod_len), (rd.vstart, RAMDISK));
    assert_eq!(l.p2m_frames(), (0, 0));
    assert_eq!(l.virt_pgtab_end % (4 << 20), 0);
}

/// The fixed point: v_end is the smallest 4 MiB boundary leaving room for the tables, the
/// boot stack and 512 KiB; each L1 table maps 2 MiB.
fn check_invariants(l: &layout::Layout) {
    let slack = 1 + 128 + l.nr_pt_frames();
    assert_eq!(l.virt_pgtab_end % (4 << 20), 0);
    let before_tables = l.pgtables.vstart;
    assert!(before_tables + slack * 4096 <= l.virt_pgtab_end);
    // One 4 MiB step less would not do (or would need more tables than fit).
    assert!(before_tables + slack * 4096 > l.virt_pgtab_end - (4 << 20));
    let span = l.virt_pgtab_end - l.virt_base;
    let l1 = span.div_ceil(2 << 20);
    assert_eq!(l.maps[0].lvls[0].pgtables, l1);
}

#[test]
fn page_table_frame_boundaries_and_4mib_steps() {
    // Grow the kernel page by page across several 4 MiB boundaries: the solver's output
    // must keep the invariants and step v_end by exactly 4 MiB when a boundary is crossed.
    let mut prev_end = 0;
    let mut steps = 0;
    for extra in (0..3 * 1024u64).step_by(7) {
        let mut k = debian_params();
        k.virt_kend = 0xffffffff84a00000 + extra * 4096;
        let l = layout::solve(
            &k,
            &LayoutRequest {
                nr_pages: 0x10000,
                ramdisk_len: None,
            },
        )
        .unwrap();
        check_invariants(&l);
        if prev_end != 0 && l.virt_pgtab_end != prev_end {
            assert_eq!(l.virt_pgtab_end - prev_end, 4 << 20);
            steps += 1;
        }
        prev_end = l.virt_pgtab_end;
    }
    assert!(
        steps >= 2,
        "expected to cross 4 MiB boundaries, crossed {steps}"
    );
}

#[test]
fn exact_boundary_of_the_slack() {
    // Find the largest kernel end that still fits below 0xffffffff84c00000 and check the
    // next page moves v_end by 4 MiB (the >= 512 KiB + tables + stack rule).
    let solve = |kend: u64| {
        let mut k = debian_params();
        k.virt_kend = kend;
        layout::solve(
            &k,
            &LayoutRequest {
                nr_pages: 0x10000,
                ramdisk_len: None,
            },
        )
        .unwrap()
    };
    // tables: 1 L4 + 1 L3 + 1 L2 + 38 L1 = 41; + 3 magic pages + stack + 128 slack.
    let last_fit = 0xffffffff84c00000 - (41 + 1 + 128 + 3) * 4096;
    assert_eq!(solve(last_fit).virt_pgtab_end, 0xffffffff84c00000);
    assert_eq!(solve(last_fit + 4096).virt_pgtab_end, 0xffffffff85000000);
    assert_eq!(solve(last_fit + 4096).nr_pt_frames(), 43);
}

#[test]
fn memory_just_too_small() {
    let k = debian_params();
    // The initial mapping needs pfns up to v_end: 0x4c00 pages; the mapping check is
    // pfn_end >= p2m_size, so 0x4c00 pages are one too few and 0x4c01 enough for the
    // mapping, but the p2m must fit too.
    let need = {
        let l = layout::solve(
            &k,
            &LayoutRequest {
                nr_pages: 0x10000,
                ramdisk_len: None,
            },
        )
        .unwrap();
        l.virt_pgtab_end - l.virt_base
    } / 4096;
    assert_eq!(need, 0x4c00);
    let r = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: need,
            ramdisk_len: None,
        },
    );
    assert!(
        matches!(r, Err(LayoutError::MappingTooLarge { .. })),
        "{r:?}"
    );
    // Find the smallest memory that works and check one page less fails.
    let mut n = need;
    while layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: n,
            ramdisk_len: None,
        },
    )
    .is_err()
    {
        n += 1;
        assert!(n < need + 0x1000);
    }
    let e = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: n - 1,
            ramdisk_len: None,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::SegmentTooLarge { .. } | LayoutError::MappingTooLarge { .. }
        ),
        "{e:?}"
    );
    // A ramdisk that does not fit.
    let e = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: Some(1 << 30),
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            LayoutError::SegmentTooLarge {
                name: "module0",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        layout::solve(
            &k,
            &LayoutRequest {
                nr_pages: 0,
                ramdisk_len: None
            }
        ),
        Err(LayoutError::NoMemory)
    );
}

#[test]
fn hypervisor_area_and_bad_ranges_are_refused() {
    let mut k = debian_params();
    k.virt_base = 0xffff_8000_0000_0000;
    k.virt_kstart = 0xffff_8000_0100_0000;
    k.virt_kend = 0xffff_8000_0200_0000;
    let e = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, LayoutError::HypervisorArea { .. }), "{e:?}");

    let mut k = pae_params();
    k.virt_hv_start_low = Some(0xc040_0000);
    let e = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x4000,
            ramdisk_len: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, LayoutError::HypervisorArea { .. }), "{e:?}");

    let mut k = debian_params();
    k.virt_kstart = 0xffffffff7f000000; // below virt_base
    let e = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, LayoutError::BoundaryTooLow { .. }), "{e:?}");

    let mut k = debian_params();
    k.virt_kstart = 0xffffffff81000800; // unaligned
    let e = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: None,
        },
    )
    .unwrap_err();
    assert_eq!(e, LayoutError::Unaligned(0xffffffff81000800));

    let mut k = debian_params();
    k.virt_kend = k.virt_kstart;
    assert!(matches!(
        layout::solve(
            &k,
            &LayoutRequest {
                nr_pages: 0x10000,
                ramdisk_len: None
            }
        ),
        Err(LayoutError::BadKernelRange { .. })
    ));

    // INIT_P2M at an address overlapping the initial mapping's range is ignored (>= virt_base).
    let mut k = debian_params();
    k.p2m_base = Some(0xffffffff90000000);
    let l = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: None,
        },
    )
    .unwrap();
    assert_eq!(l.n_mappings, 1);
    // INIT_P2M in the non-canonical hole is refused.
    let mut k = debian_params();
    k.p2m_base = Some(0x0000_7fff_ffff_0000);
    let e = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x10000,
            ramdisk_len: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, LayoutError::HypervisorArea { .. }), "{e:?}");
}

fn pae_params() -> KernelParams {
    let mut k = debian_params();
    k.guest_type = GuestType::X86_32Pae;
    k.virt_base = 0xc000_0000;
    k.virt_kstart = 0xc010_0000;
    k.virt_kend = 0xc050_0000;
    k.virt_entry = 0xc010_0000;
    k.virt_hv_start_low = Some(0xf580_0000);
    k.p2m_base = Some(0x1000_0000); // ignored: 32-bit guests do not support INIT_P2M
    k.unmapped_initrd = false;
    k
}

#[test]
fn pae_layout() {
    let l = layout::solve(
        &pae_params(),
        &LayoutRequest {
            nr_pages: 0x4000,
            ramdisk_len: Some(0x12345),
        },
    )
    .unwrap();
    assert_eq!(l.n_mappings, 1);
    assert_eq!(l.p2m.pages, 0x4000 * 4 / 4096);
    // 1 L3, 1 L2 (slot 3 of the L3 covers 0xc0000000..), L1s for 2 MiB each.
    let m = l.maps[0];
    assert_eq!(m.lvls[2].pgtables, 1);
    assert_eq!(m.lvls[1].pgtables, 1, "{m:?}");
    assert_eq!((m.lvls[1].from, m.lvls[1].to), (0xc000_0000, 0xffff_ffff));
    check_invariants(&l);

    // A kernel below 0xc0000000 gets L2s up to l3#3 ("PAE: extra l2 page table for l3#3").
    let mut k = pae_params();
    k.virt_base = 0x4000_0000;
    k.virt_kstart = 0x4010_0000;
    k.virt_kend = 0x4050_0000;
    k.virt_entry = 0x4010_0000;
    let l = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x4000,
            ramdisk_len: None,
        },
    )
    .unwrap();
    let m = l.maps[0];
    assert_eq!(
        (m.lvls[1].from, m.lvls[1].to, m.lvls[1].pgtables),
        (0x4000_0000, 0xffff_ffff, 3)
    );
    check_invariants(&l);
}

#[test]
fn two_level_layout() {
    let mut k = pae_params();
    k.guest_type = GuestType::X86_32;
    k.pae = PaeMode::No;
    k.virt_hv_start_low = None;
    let l = layout::solve(
        &k,
        &LayoutRequest {
            nr_pages: 0x4000,
            ramdisk_len: None,
        },
    )
    .unwrap();
    let m = l.maps[0];
    // One page directory; each L1 maps 4 MiB.
    assert_eq!(m.lvls[1].pgtables, 1);
    let span = l.virt_pgtab_end - l.virt_base;
    assert_eq!(m.lvls[0].pgtables, span.div_ceil(4 << 20));
    assert_eq!(l.nr_pt_frames(), 1 + m.lvls[0].pgtables);
}

#[test]
fn gzip_module_sizing() {
    // Not gzip: its own length.
    assert_eq!(layout::module_segment_len(b"plain data"), 10);
    // gzip: max(blob, trailer's isize + 16), as xc_dom_check_gzip: the reference log's
    // module0 of 0x1e4410 bytes is a ramdisk of 0x1e4400 unpacked bytes.
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gz.extend_from_slice(&[0; 6]);
    gz.extend_from_slice(&(0x1e4400u32).to_le_bytes());
    assert_eq!(layout::module_segment_len(&gz), 0x1e4410);
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(layout::module_segment_len(&gz), n as u64);
    // An insane trailer (> 1 GiB): the blob as is.
    gz[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(layout::module_segment_len(&gz), n as u64);
    assert_eq!(layout::module_segment_len(&[0x1f, 0x8b, 0, 0, 0]), 5);
}

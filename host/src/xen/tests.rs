//! The wrappers against [`FakeXen`]: what they send, and how they report failures.

use std::sync::Arc;

use nix::errno::Errno;
use pvbuild_core::addr::{Mfn, Pfn};
use zerocopy::FromZeros;

use super::fake::{Call, FakeConfig, FakeXen};
use super::*;

fn fake(cfg: FakeConfig) -> (Arc<FakeXen>, Xen) {
    let f = Arc::new(FakeXen::new(cfg).unwrap());
    let x = Xen::with_backend(f.clone());
    (f, x)
}

fn new_domain(x: &Xen, mib: u64) -> u16 {
    let d = x.create_domain(&DomainConfig::pv(1, 2), None).unwrap();
    x.max_vcpus(d, 1).unwrap();
    x.max_mem(d, mib * 1024).unwrap();
    d
}

#[test]
fn create_info_list_destroy() {
    let (f, x) = fake(FakeConfig::default());
    let a = new_domain(&x, 16);
    let b = new_domain(&x, 16);
    assert_eq!((a, b), (1, 2));
    let info = x.domain_info(b).unwrap();
    assert_eq!(info.domid, b);
    assert_eq!(info.max_pages, 4096);
    assert!(info.paused());
    let all = x.list_domains().unwrap();
    assert_eq!(all.iter().map(|i| i.domid).collect::<Vec<_>>(), vec![a, b]);
    x.destroy_domain(a).unwrap();
    // Xen 4.17 answers getdomaininfo with the next domain: that must read as "no such".
    assert_eq!(x.domain_info(a), Err(XenError::NoSuchDomain { domid: a }));
    assert_eq!(
        x.destroy_domain(a),
        Err(XenError::Call {
            step: Step::DestroyDomain,
            domid: a,
            errno: Errno::ESRCH
        })
    );
    assert_eq!(f.domids(), vec![b]);
    assert_eq!(f.live_buffers(), 0);
}

#[test]
fn list_domains_pages_through_batches() {
    let (_f, x) = fake(FakeConfig::default());
    for _ in 0..300 {
        x.create_domain(&DomainConfig::pv(1, 2), None).unwrap();
    }
    let all = x.list_domains().unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.windows(2).all(|w| w[0].domid + 1 == w[1].domid));
}

#[test]
fn populate_uses_superpages_then_4k_for_the_tail() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 64);
    let n = 3 * 512 + 7;
    let p2m = x.populate_physmap(d, n).unwrap();
    assert_eq!(p2m.len() as u64, n);
    // Each 2 MiB run is one aligned machine extent.
    for chunk in p2m.chunks(512).take(3) {
        assert_eq!(chunk[0].get() % 512, 0);
        assert!(chunk.windows(2).all(|w| w[0].get() + 1 == w[1].get()));
    }
    let dom = f.domain(d).unwrap();
    for (pfn, mfn) in p2m.iter().enumerate() {
        assert_eq!(dom.p2m.get(&(pfn as u64)), Some(&mfn.get()));
    }
    let pops = f
        .calls()
        .iter()
        .filter(|c| **c == Call::MemoryOp(XENMEM_POPULATE_PHYSMAP))
        .count();
    assert_eq!(pops, 2, "one superpage batch, one 4 KiB batch");
}

#[test]
fn populate_falls_back_from_order_9_to_order_0() {
    // The host has only two free 2 MiB extents: the rest must come as 4 KiB pages.
    let (f, x) = fake(FakeConfig {
        superpages: Some(2),
        ..FakeConfig::default()
    });
    let d = new_domain(&x, 16);
    let p2m = x.populate_physmap(d, 4096).unwrap();
    assert_eq!(p2m.len(), 4096);
    assert_eq!(f.domain(d).unwrap().p2m.len(), 4096);
    // pfns 0..1024 are the two superpages, the rest single pages in pfn order.
    assert_eq!(p2m[0].get() % 512, 0);
    assert_eq!(p2m[512].get() % 512, 0);
    let dom = f.domain(d).unwrap();
    for pfn in 1024..4096u64 {
        assert_eq!(dom.p2m[&pfn], p2m[pfn as usize].get());
    }
    assert_eq!(f.live_buffers(), 0);
}

#[test]
fn populate_beyond_max_mem_reports_how_far_it_got() {
    let (_f, x) = fake(FakeConfig {
        superpages: Some(0),
        ..FakeConfig::default()
    });
    let d = new_domain(&x, 4);
    let err = x.populate_physmap(d, 1025).unwrap_err();
    assert_eq!(
        err,
        XenError::Short {
            step: Step::PopulatePhysmap,
            domid: d,
            done: 1024,
            wanted: 1025
        }
    );
}

#[test]
fn foreign_mapping_writes_reach_the_frames() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 8);
    let p2m = x.populate_physmap(d, 2048).unwrap();
    let picks = [p2m[5], p2m[1000], p2m[6]];
    let mut m = x.map_foreign(d, &picks).unwrap();
    assert_eq!(m.pages(), 3);
    m.as_mut_slice()[4096 + 17] = 0xab;
    m.as_mut_slice()[2 * 4096] = 0xcd;
    assert_eq!(f.read_frame(p2m[1000].get()).unwrap()[17], 0xab);
    assert_eq!(f.read_frame(p2m[6].get()).unwrap()[0], 0xcd);
    drop(m);
    assert_eq!(f.live_areas(), 0);
}

#[test]
fn foreign_mapping_is_one_ioctl_for_the_whole_area() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 16);
    let p2m = x.populate_physmap(d, 2500).unwrap();
    let m = x.map_foreign(d, &p2m).unwrap();
    let batches: Vec<Call> = f
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::MmapBatch(_)))
        .collect();
    assert_eq!(batches, vec![Call::MmapBatch(2500)]);
    assert_eq!(m.as_slice().len(), 2500 * 4096);
}

#[test]
fn a_failing_page_is_named() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 8);
    let other = new_domain(&x, 8);
    let mine = x.populate_physmap(d, 1100).unwrap();
    let theirs = x.populate_physmap(other, 1).unwrap();
    let mut req = mine.clone();
    req[1050] = theirs[0];
    let err = x.map_foreign(d, &req).unwrap_err();
    assert_eq!(
        err,
        XenError::MapPage {
            domid: d,
            index: 1050,
            mfn: theirs[0].get(),
            errno: Errno::EPERM
        }
    );
    assert_eq!(f.live_areas(), 0, "the half-made mapping is released");
}

#[test]
fn mmu_updates_are_batched_and_checked() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 16);
    let p2m = x.populate_physmap(d, 2500).unwrap();
    let pairs: Vec<(Mfn, Pfn)> = p2m
        .iter()
        .enumerate()
        .map(|(i, m)| (*m, Pfn::new(i as u64).unwrap()))
        .collect();
    x.set_machphys(d, &pairs).unwrap();
    let sizes: Vec<Call> = f
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::MmuUpdate(_)))
        .collect();
    assert_eq!(
        sizes,
        vec![
            Call::MmuUpdate(1024),
            Call::MmuUpdate(1024),
            Call::MmuUpdate(452)
        ]
    );
    assert_eq!(f.domain(d).unwrap().machphys.len(), 2500);
    // A frame the domain does not own stops the batch; the error says how far it got.
    let mut bad = pairs[..10].to_vec();
    bad[4].0 = Mfn::new(0x10).unwrap();
    assert_eq!(
        x.set_machphys(d, &bad),
        Err(XenError::Call {
            step: Step::MmuUpdate,
            domid: d,
            errno: Errno::EPERM
        })
    );
}

#[test]
fn pin_then_vcpu_context_then_unpause() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 8);
    x.set_address_size(d, 64).unwrap();
    let p2m = x.populate_physmap(d, 2048).unwrap();
    let mut ctx = VcpuGuestContext::new_zeroed();
    ctx.ctrlreg[3] = p2m[3].addr();
    ctx.user_regs.rip = 0xffff_ffff_8100_0000;
    // Before the table is pinned Xen refuses the context.
    assert_eq!(
        x.set_vcpu_context(d, 0, &ctx),
        Err(XenError::Call {
            step: Step::SetVcpuContext,
            domid: d,
            errno: Errno::EINVAL
        })
    );
    x.pin_table(d, PinLevel::L4, p2m[3]).unwrap();
    x.hypercall_init(d, p2m[2]).unwrap();
    x.set_vcpu_context(d, 0, &ctx).unwrap();
    x.unpause_domain(d).unwrap();
    let dom = f.domain(d).unwrap();
    assert_eq!(dom.pinned, vec![(MMUEXT_PIN_L4_TABLE, p2m[3].get())]);
    assert_eq!(dom.vcpu0.unwrap().user_regs.rip, 0xffff_ffff_8100_0000);
    assert_eq!(dom.hypercall_page, Some(p2m[2].get()));
    assert_eq!(dom.address_size, 64);
    assert!(!x.domain_info(d).unwrap().paused());
    assert_eq!(f.live_buffers(), 0);
}

fn check_seeded(resource_mapping: bool) {
    let (f, x) = fake(FakeConfig {
        resource_mapping,
        ..FakeConfig::default()
    });
    let d = new_domain(&x, 8);
    let p2m = x.populate_physmap(d, 64).unwrap();
    let console = SeedGrant {
        backend: 0,
        frame: p2m[0x22],
    };
    let store = SeedGrant {
        backend: 0,
        frame: p2m[0x21],
    };
    x.seed_grant_table(d, Some(console), Some(store)).unwrap();
    let table = f.read_frame(f.domain(d).unwrap().grant_frame).unwrap();
    let entry = |i: usize| GrantEntryV1::read_from_bytes(&table[i * 8..i * 8 + 8]).unwrap();
    assert_eq!(
        entry(0),
        GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS,
            domid: 0,
            frame: p2m[0x22].get() as u32
        }
    );
    assert_eq!(
        entry(1),
        GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS,
            domid: 0,
            frame: p2m[0x21].get() as u32
        }
    );
    assert_eq!(entry(2), GrantEntryV1::default());
    let used_setup = f
        .calls()
        .contains(&Call::GrantTableOp(GNTTABOP_SETUP_TABLE));
    assert_eq!(used_setup, !resource_mapping);
    assert_eq!((f.live_areas(), f.live_buffers()), (0, 0));
}

#[test]
fn grant_seeding_through_the_resource_mapping() {
    check_seeded(true);
}

#[test]
fn grant_seeding_falls_back_to_setup_table() {
    check_seeded(false);
}

#[test]
fn grant_seeding_skips_a_backend_that_is_the_guest() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 8);
    let p2m = x.populate_physmap(d, 64).unwrap();
    x.seed_grant_table(
        d,
        Some(SeedGrant {
            backend: d,
            frame: p2m[1],
        }),
        None,
    )
    .unwrap();
    let table = f.read_frame(f.domain(d).unwrap().grant_frame).unwrap();
    assert!(table[..16].iter().all(|&b| b == 0));
}

#[test]
fn event_channels() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 8);
    assert_eq!(x.evtchn_alloc_unbound(d, 0).unwrap(), 1);
    assert_eq!(x.evtchn_alloc_unbound(d, 0).unwrap(), 2);
    assert_eq!(f.domain(d).unwrap().evtchns, vec![(1, 0), (2, 0)]);
    assert!(matches!(
        x.evtchn_alloc_unbound(99, 0),
        Err(XenError::Call {
            step: Step::EvtchnAllocUnbound,
            domid: 99,
            errno: Errno::ESRCH
        })
    ));
}

#[test]
fn version_and_capabilities() {
    let (_f, x) = fake(FakeConfig::default());
    assert_eq!(x.xen_version().unwrap(), (4, 17));
    assert_eq!(
        x.capabilities().unwrap(),
        vec![
            "xen-3.0-x86_64",
            "hvm-3.0-x86_32",
            "hvm-3.0-x86_32p",
            "hvm-3.0-x86_64"
        ]
    );
    assert_eq!(x.max_grant_version().unwrap(), 2);
}

#[test]
fn an_injected_failure_names_the_step_and_errno() {
    let (f, x) = fake(FakeConfig::default());
    let d = new_domain(&x, 8);
    f.fail_call(0, Errno::ENOMEM);
    assert_eq!(
        x.populate_physmap(d, 16),
        Err(XenError::Call {
            step: Step::PopulatePhysmap,
            domid: d,
            errno: Errno::ENOMEM
        })
    );
    assert_eq!(
        f.domain(d).unwrap().p2m.len(),
        0,
        "the failed call had no effect"
    );
    assert_eq!(
        XenError::Call {
            step: Step::PopulatePhysmap,
            domid: d,
            errno: Errno::ENOMEM
        }
        .to_string(),
        "populating memory (domain 1): ENOMEM: Out of memory"
    );
    assert_eq!(f.live_buffers(), 0);
}

#[test]
fn bad_interface_version_is_refused_by_the_fake() {
    // The fake checks what Xen checks: a domctl with another version gets EACCES.
    let (f, _x) = fake(FakeConfig::default());
    let mut d = XenDomctl::new_zeroed();
    d.cmd = XEN_DOMCTL_GETDOMAININFO;
    d.interface_version = 0x14;
    let mut hc = PrivcmdHypercall {
        op: HYPERVISOR_DOMCTL,
        arg: [(&raw mut d) as u64, 0, 0, 0, 0],
    };
    // SAFETY: the hypercall's argument points at a live xen_domctl.
    let r = unsafe { f.ioctl(IOCTL_PRIVCMD_HYPERCALL, (&raw mut hc).cast()) };
    assert_eq!(r, Err(Errno::EACCES));
}

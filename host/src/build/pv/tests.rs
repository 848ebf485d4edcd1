//! The build sequence against [`FakeXen`] with Debian's real kernel: a whole build, the
//! checker's walk of what was written, and failure at every step and every ioctl leaving
//! nothing behind.

use std::sync::{Arc, OnceLock};

use nix::errno::Errno;
use pvbuild_core::addr::Pfn;
use pvbuild_core::kernel::{self, Kernel};
use pvbuild_core::layout::{Layout, LayoutRequest};
use pvbuild_core::mem::GuestMemory;

use super::*;
use crate::sys::grant::{GrantEntryV1, GTF_PERMIT_ACCESS};
use crate::sys::memory::MMUEXT_PIN_L4_TABLE;
use crate::xen::fake::{Call, FakeConfig, FakeXen};
use zerocopy::FromBytes;

const MIB: u64 = 128;

/// Debian's kernel, unpacked once: the machine's /boot/vmlinuz-* (CI installs
/// linux-image-amd64).
fn image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let path = std::fs::read_dir("/boot")
            .expect("/boot")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .max()
            .expect("a Debian kernel in /boot (install linux-image-amd64)");
        let file = std::fs::read(&path).unwrap();
        pvbuild_core::decompress::unpack_kernel(&file)
            .unwrap()
            .into_owned()
    })
}

fn ramdisk() -> Vec<u8> {
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn plan(k: &Kernel<'_>, rd: &[u8]) -> Layout {
    build::plan(
        k.params(),
        &LayoutRequest {
            nr_pages: MIB << 8,
            ramdisk_len: Some(rd.len() as u64),
        },
    )
    .unwrap()
}

fn request<'a>(k: &'a Kernel<'a>, l: &'a Layout, rd: &'a [u8]) -> CreateRequest<'a, Kernel<'a>> {
    CreateRequest {
        kernel: k,
        layout: l,
        ramdisk: Some(rd),
        inputs: None,
        cmdline: b"console=hvc0 quiet",
        max_memkb: MIB << 10,
        vcpus: 1,
        handle: [7; 16],
        console_backend: 0,
        store_backend: 0,
        placement: &NO_PLACEMENT,
        fail_at: None,
    }
}

static NO_PLACEMENT: crate::control::placement::Resolved =
    crate::control::placement::Resolved::NONE;

fn fake() -> (Arc<FakeXen>, Xen) {
    let f = Arc::new(FakeXen::new(FakeConfig::default()).unwrap());
    let x = Xen::with_backend(f.clone());
    (f, x)
}

fn assert_nothing_left(f: &FakeXen) {
    assert_eq!(f.domids(), Vec::<u16>::new(), "a domain was left behind");
    assert_eq!(f.live_areas(), 0, "a mapping was left behind");
    assert_eq!(f.live_buffers(), 0, "a hypercall buffer was left behind");
}

#[test]
fn builds_debian_kernel_and_the_walker_agrees() {
    let k = kernel::parse_kernel(image()).unwrap();
    let rd = ramdisk();
    let l = plan(&k, &rd);
    let (f, x) = fake();
    let b = create(&x, &request(&k, &l, &rd)).unwrap();
    assert_eq!(b.undo_steps(), vec!["destroy domain"]);
    let c = b.created.clone();
    let dom = f.domain(c.domid).unwrap();
    assert!(dom.paused);
    assert_eq!(dom.max_kib, (MIB << 10) + MAXMEM_SLACK_KIB);
    assert_eq!(dom.address_size, 64);
    assert_eq!(dom.p2m.len() as u64, MIB << 8);
    assert_eq!(
        dom.pinned,
        vec![(MMUEXT_PIN_L4_TABLE, c.top_table_mfn.get())]
    );
    let ctx = dom.vcpu0.as_ref().unwrap();
    assert_eq!(ctx.ctrlreg[3], c.top_table_mfn.addr());
    assert_eq!(ctx.user_regs.rip, l.virt_entry);
    assert_eq!(dom.evtchns, vec![(c.store_port, 0), (c.console_port, 0)]);
    // Grant entries 0 and 1: console and xenstore rings, to dom0.
    let gnt = f.read_frame(dom.grant_frame).unwrap();
    let e = |i: usize| GrantEntryV1::read_from_bytes(&gnt[i * 8..i * 8 + 8]).unwrap();
    assert_eq!(
        e(0),
        GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS,
            domid: 0,
            frame: c.console_mfn.get() as u32
        }
    );
    assert_eq!(
        e(1),
        GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS,
            domid: 0,
            frame: c.store_mfn.get() as u32
        }
    );
    // shared_info: every vcpu's upcall mask set (byte 1 of each 64-byte vcpu_info).
    let si = f.read_frame(dom.shared_info).unwrap();
    assert!((0..32).all(|v| si[v * 64 + 1] == 1));
    // What was written through the mappings is a correct build, as the MMU would see it.
    let p2m: Vec<_> = (0..MIB << 8)
        .map(|p| Mfn::new(dom.p2m[&p]).unwrap())
        .collect();
    let mut mem = PrivcmdMemory::new(&x, c.domid, p2m);
    let vcpu = pvbuild_core::vcpu::VcpuContext::X86_64(**ctx);
    let boot = pvbuild_core::walker::Boot::new(LoadKernel::params(&k), &vcpu);
    pvbuild_core::walker::check(&boot, &mut mem).unwrap();
    let rseg = l.ramdisk.unwrap();
    let got = mem
        .pages_mut(Pfn::new(rseg.pfn).unwrap(), rseg.pages)
        .unwrap();
    assert_eq!(&got[..rd.len()], &rd[..]);
    drop(mem);
    b.unpause().unwrap();
    assert_eq!(b.finish(), c);
    assert!(!f.domain(c.domid).unwrap().paused);
    assert_eq!((f.live_areas(), f.live_buffers()), (0, 0));
}

#[test]
fn the_memory_map_reaches_maxmem_as_libxl_sets_it() {
    // libxl__arch_domain_create → xc_domain_set_memmap_limit(max_memkb + slack_memkb, 0 for
    // PV): one entry {addr 0, size max_memkb << 10, E820_RAM (1, xenctrl.h)}.
    let k = kernel::parse_kernel(image()).unwrap();
    let rd = ramdisk();
    let l = plan(&k, &rd);
    let (f, x) = fake();
    let mut req = request(&k, &l, &rd);
    req.max_memkb = 3 * (MIB << 10);
    let b = create(&x, &req).unwrap();
    let dom = f.domain(b.created.domid).unwrap();
    assert_eq!(dom.e820, vec![(0, 3 * (MIB << 20), 1)]);
    // Memory itself is still `memory`: the map only allows growth.
    assert_eq!(dom.p2m.len() as u64, MIB << 8);
    assert!(f
        .calls()
        .contains(&Call::MemoryOp(crate::sys::memory::XENMEM_SET_MEMORY_MAP)));
    b.finish();

    // A maxmem below memory is refused before the map is set.
    let (f, x) = fake();
    let mut req = request(&k, &l, &rd);
    req.max_memkb = (MIB << 10) - 4;
    let err = create(&x, &req).unwrap_err();
    assert_eq!(err.step, CreateStep::MemoryMap);
    assert_nothing_left(&f);
}

#[test]
fn failing_each_step_undoes_everything() {
    let k = kernel::parse_kernel(image()).unwrap();
    let rd = ramdisk();
    let l = plan(&k, &rd);
    for step in CreateStep::ALL {
        let (f, x) = fake();
        let mut req = request(&k, &l, &rd);
        req.fail_at = Some(step);
        let err = create(&x, &req).unwrap_err();
        assert_eq!((err.step, &err.failure), (step, &CreateFailure::Injected));
        assert!(err.undo_errors.is_empty(), "{err}");
        assert_nothing_left(&f);
        // A domain existed from create-domain on, and was destroyed.
        let created = f
            .calls()
            .contains(&Call::Domctl(crate::sys::domctl::XEN_DOMCTL_CREATEDOMAIN));
        let destroyed = f
            .calls()
            .contains(&Call::Domctl(crate::sys::domctl::XEN_DOMCTL_DESTROYDOMAIN));
        assert_eq!(created, destroyed, "{step}");
    }
}

#[test]
fn failing_each_ioctl_undoes_everything() {
    let k = kernel::parse_kernel(image()).unwrap();
    let rd = ramdisk();
    let l = plan(&k, &rd);
    let (f, x) = fake();
    create(&x, &request(&k, &l, &rd)).unwrap().finish();
    let n = f.calls().len();
    assert!(n > 10, "{n} ioctls");
    for i in 0..n {
        let (f, x) = fake();
        f.fail_call(i, Errno::EIO);
        match create(&x, &request(&k, &l, &rd)) {
            Err(e) => {
                assert!(e.undo_errors.is_empty(), "ioctl {i}: {e}");
                assert_nothing_left(&f);
            }
            Ok(b) => {
                let c = b.finish();
                panic!(
                    "ioctl {i} ({:?}) failed and the build went on: {c:?}",
                    f.calls()[i]
                );
            }
        };
    }
}

#[test]
fn an_unsupported_guest_type_is_refused_before_any_domain_exists() {
    let k = kernel::parse_kernel(image()).unwrap();
    let rd = ramdisk();
    let l = plan(&k, &rd);
    let f = Arc::new(
        FakeXen::new(FakeConfig {
            capabilities: "hvm-3.0-x86_32 hvm-3.0-x86_64".into(),
            ..FakeConfig::default()
        })
        .unwrap(),
    );
    let x = Xen::with_backend(f.clone());
    let err = create(&x, &request(&k, &l, &rd)).unwrap_err();
    assert_eq!(err.step, CreateStep::Compat);
    assert_eq!(
        err.to_string(),
        "compat: guest type xen-3.0-x86_64 is not supported by this Xen (it runs: hvm-3.0-x86_32 hvm-3.0-x86_64)"
    );
    assert!(!f.calls().iter().any(|c| matches!(c, Call::Domctl(_))));
}

#[test]
fn dropping_an_unfinished_build_destroys_the_domain() {
    let k = kernel::parse_kernel(image()).unwrap();
    let rd = ramdisk();
    let l = plan(&k, &rd);
    let (f, x) = fake();
    let mut b = create(&x, &request(&k, &l, &rd)).unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l2 = log.clone();
    b.push_undo("remove xenstore nodes", move |_| {
        l2.lock().unwrap().push("xenstore");
        Ok(())
    });
    drop(b);
    assert_eq!(*log.lock().unwrap(), vec!["xenstore"]);
    assert_nothing_left(&f);
    assert_eq!(
        f.calls().last(),
        Some(&Call::Domctl(crate::sys::domctl::XEN_DOMCTL_DESTROYDOMAIN))
    );
}

#[test]
fn step_names_round_trip() {
    for s in CreateStep::ALL {
        assert_eq!(CreateStep::from_name(s.name()), Some(s));
    }
    assert_eq!(CreateStep::from_name("nope"), None);
}

#[test]
fn placement_puts_the_domain_in_its_pool_before_its_memory() {
    use crate::control::placement::{resolve, Affinity, CpuSpec, Placement};
    use crate::sys::sched::{XEN_SCHEDULER_CREDIT, XEN_SCHEDULER_CREDIT2};
    use crate::xen::fake::FakePool;
    let k = kernel::parse_kernel(image()).unwrap();
    let rd = ramdisk();
    let l = plan(&k, &rd);
    let f = Arc::new(
        FakeXen::new(FakeConfig {
            nr_cpus: 4,
            pools: vec![
                FakePool {
                    id: 0,
                    sched_id: XEN_SCHEDULER_CREDIT2,
                    cpus: 0b0011,
                },
                FakePool {
                    id: 3,
                    sched_id: XEN_SCHEDULER_CREDIT,
                    cpus: 0b1100,
                },
            ],
            ..FakeConfig::default()
        })
        .unwrap(),
    );
    let x = Xen::with_backend(f.clone());
    let p = Placement {
        pool: Some("batch".into()),
        hard: Some(Affinity::PerVcpu(vec![CpuSpec::parse("3").unwrap()])),
        soft: Some(Affinity::All(CpuSpec::parse("2-3").unwrap())),
        weight: Some(512),
        cap: Some(50),
    };
    let names = |id: u32| Ok((id == 3).then(|| "batch".to_owned()));
    let placed = resolve(&x, names, &p, 2).unwrap();
    let mut req = request(&k, &l, &rd);
    req.vcpus = 2;
    req.placement = &placed;
    let b = create(&x, &req).unwrap();
    let dom = f.domain(b.created.domid).unwrap();
    assert_eq!(dom.cpupool, 3);
    // vcpu 0: hard 3, soft 2-3; vcpu 1: hard left at every cpu, soft 2-3.
    assert_eq!(dom.affinity.get(&0), Some(&(0b1000, 0b1100)));
    assert_eq!(dom.affinity.get(&1), Some(&(0b1111, 0b1100)));
    assert_eq!(dom.sched, (512, 50));
    // The placement came before the memory limit, as libxl__build_pre sets affinity first.
    let calls = f.calls();
    let at = |c: Call| calls.iter().position(|&x| x == c).unwrap();
    assert!(
        at(Call::Domctl(crate::sys::sched::XEN_DOMCTL_SETVCPUAFFINITY))
            < at(Call::Domctl(crate::sys::domctl::XEN_DOMCTL_MAX_MEM))
    );
    drop(b);
    assert_nothing_left(&f);
}

/// A PVH build of Debian's kernel against the fake: every step injected before the first
/// HVM-only hypercall (which the fake does not implement, ENOSYS) fails with that step named
/// and leaves nothing; the first HVM hypercall's real failure does the same.
#[test]
fn pvh_failures_undo_everything() {
    use crate::build::pvh::{PvhRequest as Req, PvhStep};
    let k = kernel::parse_kernel(image()).unwrap();
    let p =
        crate::build::pvh::plan::plan_pvh_params(k.params(), 128, 2, 2, None, Some("console=hvc0"))
            .unwrap();
    let req = |fail_at| Req {
        kernel: &k,
        planned: &p,
        ramdisk: None,
        max_vcpus: 2,
        handle: [7; 16],
        console_backend: 0,
        store_backend: 0,
        placement: &NO_PLACEMENT,
        fail_at,
    };
    for step in PvhStep::ALL
        .into_iter()
        .take_while(|s| *s != PvhStep::HvmParams)
    {
        let (f, x) = fake();
        let err = crate::build::pvh::create(&x, &req(Some(step))).unwrap_err();
        assert_eq!(err.step, step);
        assert!(err.msg.contains("injected"), "{err}");
        assert!(err.undo_errors.is_empty(), "{err}");
        assert_nothing_left(&f);
    }
    let (f, x) = fake();
    let err = crate::build::pvh::create(&x, &req(None)).unwrap_err();
    assert_eq!(err.step, PvhStep::HvmParams, "{err}");
    assert!(err.undo_errors.is_empty(), "{err}");
    assert_nothing_left(&f);
    // It was made as an HVM container with HAP and the LAPIC emulated only.
    assert!(f
        .calls()
        .contains(&Call::Domctl(crate::sys::domctl::XEN_DOMCTL_CREATEDOMAIN)));
}

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
        vcpus: 1,
        handle: [7; 16],
        console_backend: 0,
        store_backend: 0,
        fail_at: None,
    }
}

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
    pvbuild_core::walker::check(&l, &mut mem).unwrap();
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

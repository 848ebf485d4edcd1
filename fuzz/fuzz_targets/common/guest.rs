//! The build-and-check step shared by the `build_guest` and `build_elf` targets: what
//! `pvbuild plan` (host/src/plan/mod.rs) does after unpacking.
use pvbuild_core::addr::{Mfn, PAGE_SIZE};
use pvbuild_core::build::{self, BuildConfig};
use pvbuild_core::image::LoadKernel;
use pvbuild_core::kernel;
use pvbuild_core::layout::LayoutRequest;
use pvbuild_core::mem::InMemory;
use pvbuild_core::module;
use pvbuild_core::walker;

/// Largest ramdisk taken from the input.
const MAX_RAMDISK: usize = 64 << 10;
/// As in host/src/plan/mod.rs: machine frames are pfn ^ 0x2a5 plus this base.
const MFN_BASE: u64 = 0x7_6000;

/// Parse `image` (an unpacked kernel), solve its layout for a guest whose size comes from
/// `data.len()` (16, 32, 48 or 64 MiB), with a ramdisk made of `data`'s first bytes when
/// its length is odd, build it into memory behind a non-identity p2m, and check the result
/// with the walker: a build that succeeds must pass it.
pub fn build_and_check(image: &[u8], data: &[u8]) {
    let Ok(kern) = kernel::parse_kernel(image) else {
        return;
    };
    let memory_mib = 16 * (1 + (data.len() as u64 % 4));
    let nr_pages = memory_mib << (20 - 12);

    let ramdisk = (data.len() % 2 == 1).then(|| &data[..data.len().min(MAX_RAMDISK)]);
    let ramdisk_len = match ramdisk.map(module::plan) {
        Some(Ok(p)) => Some(p.segment_len()),
        Some(Err(_)) => return,
        None => None,
    };

    let params = LoadKernel::params(&kern);
    let Ok(layout) = build::plan(
        params,
        &LayoutRequest {
            nr_pages,
            ramdisk_len,
        },
    ) else {
        return;
    };
    // A layout that was solved fits the guest it was solved for.
    assert!(layout.nr_pages == nr_pages);
    assert!(layout.virt_base <= layout.virt_pgtab_end);

    let p2m: Vec<Mfn> = (0..nr_pages)
        .map(|p| Mfn::new((p ^ 0x2a5) + MFN_BASE).expect("small mfn"))
        .collect();
    let mut bytes = vec![0u8; (nr_pages * PAGE_SIZE) as usize];
    let mut mem = InMemory::new(&mut bytes, &p2m).expect("buffer sized for the p2m");
    let cfg = BuildConfig {
        ramdisk,
        cmdline: b"console=hvc0 root=/dev/xvda1",
        store_evtchn: 1,
        console_evtchn: 2,
        shared_info_mfn: Mfn::default(),
        relocated: &[],
    };
    if let Ok(out) = build::build(&kern, &layout, &cfg, &mut mem) {
        if let Err(e) = walker::check(&walker::Boot::new(params, &out.vcpu), &mut mem) {
            panic!("a build that succeeded fails the walker: {e:?}\nlayout: {layout:#?}");
        }
    }
}

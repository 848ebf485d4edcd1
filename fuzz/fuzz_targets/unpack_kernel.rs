//! The whole unpacking path of a kernel file (probe, bzImage, any payload, gzip wrapper),
//! and of the same bytes as a ramdisk (`xc_dom_build_module`: unzipped or raw, into pages).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pvbuild_core::addr::{Mfn, Pfn, PAGE_SIZE};
use pvbuild_core::mem::InMemory;
use pvbuild_core::module;

/// Largest ramdisk segment loaded (a gzip may claim up to 1 GiB).
const MAX_SEGMENT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = pvbuild_core::decompress::unpack_kernel(data) {
        let _ = pvbuild_core::kernel::parse_kernel(&k);
    }
    let Ok(plan) = module::plan(data) else {
        return;
    };
    if plan.segment_len() > MAX_SEGMENT {
        return;
    }
    let pages = plan.segment_len().div_ceil(PAGE_SIZE);
    let p2m: Vec<Mfn> = (0..pages)
        .map(|p| Mfn::new(p + 1).expect("small mfn"))
        .collect();
    let mut bytes = vec![0u8; (pages * PAGE_SIZE) as usize];
    let mut mem = InMemory::new(&mut bytes, &p2m).expect("sized for the p2m");
    let loaded = module::load(
        data,
        &plan,
        Pfn::new(0).expect("pfn 0"),
        pages,
        &mut mem,
        &mut |_| {},
    )
    .expect("a planned module loads");
    if let module::Loaded::Raw { .. } = loaded {
        assert!(bytes.starts_with(data));
    }
});

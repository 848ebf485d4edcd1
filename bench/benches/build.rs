//! The layout solver and the build into memory, for Debian 6.1's parameters at 256 MiB
//! (the reference log's build), each next to a reference in the same process: the build is
//! compared with clearing the same pages it writes (the floor any builder pays), so the
//! ratio build / reference is the number to watch. The walker's check of the built guest is
//! timed last, next to both.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use pvbuild_core::addr::{Mfn, Pfn, PAGE_SIZE};
use pvbuild_core::build::{self, BuildConfig};
use pvbuild_core::image::{KernelParams, LoadKernel};
use pvbuild_core::layout::{self, LayoutRequest};
use pvbuild_core::mem::{GuestMemory, InMemory};

// Debian's parameters, shared with the build tests (the reference log's "ELF:" lines).
#[path = "../../builder-core/tests/common/mod.rs"]
mod common;

/// A kernel whose load is free, so the bench measures the builder.
struct NullKernel(KernelParams);

impl LoadKernel for NullKernel {
    type Error = ();
    fn params(&self) -> &KernelParams {
        &self.0
    }
    fn load(&self, _dest: &mut [u8]) -> Result<(), ()> {
        Ok(())
    }
}

const NR_PAGES: u64 = 0x10000;
const RAMDISK: u64 = 1_983_504;

fn benches(c: &mut Criterion) {
    let params = common::debian_params();
    let req = LayoutRequest {
        nr_pages: NR_PAGES,
        ramdisk_len: Some(RAMDISK),
    };
    c.bench_function("layout::solve debian 256M", |b| {
        b.iter(|| layout::solve(black_box(&params), black_box(&req)))
    });

    let Ok(lay) = layout::solve(&params, &req) else {
        return;
    };
    let p2m: Vec<Mfn> = (0..NR_PAGES)
        .filter_map(|p| Mfn::new((p ^ 0x2a5) + 0x76000).ok())
        .collect();
    let mut bytes = vec![0u8; (NR_PAGES * PAGE_SIZE) as usize];
    let ramdisk = vec![0x5au8; RAMDISK as usize];
    let kernel = NullKernel(params.clone());
    let cfg = BuildConfig {
        ramdisk: Some(&ramdisk),
        cmdline: b"console=hvc0 quiet",
        store_evtchn: 1,
        console_evtchn: 2,
        shared_info_mfn: Mfn::default(),
        relocated: &[],
    };
    let Ok(mut mem) = InMemory::new(&mut bytes, &p2m) else {
        return;
    };
    c.bench_function("build::build debian 256M", |b| {
        b.iter(|| build::build(&kernel, black_box(&lay), &cfg, &mut mem).is_ok())
    });
    // Reference: clear exactly the pages the build writes.
    let runs = [
        (lay.kernel.pfn, lay.kernel.pages),
        (lay.pgtables.pfn, lay.pgtables.pages),
        (lay.p2m.pfn, lay.p2m.pages),
        (
            lay.ramdisk.map_or(0, |r| r.pfn),
            lay.ramdisk.map_or(0, |r| r.pages),
        ),
    ];
    c.bench_function("reference: clear the same pages", |b| {
        b.iter(|| {
            for &(pfn, pages) in &runs {
                if let Ok(p) = Pfn::new(pfn) {
                    if let Ok(s) = mem.pages_mut(p, pages) {
                        s.fill(black_box(0));
                    }
                }
            }
        })
    });
    // The independent checker on the same guest (its cost next to the build's above).
    let Ok(out) = build::build(&kernel, &lay, &cfg, &mut mem) else {
        return;
    };
    let boot = pvbuild_core::walker::Boot::new(&params, &out.vcpu);
    c.bench_function("walker::check debian 256M", |b| {
        b.iter(|| pvbuild_core::walker::check(black_box(&boot), &mut mem).is_ok())
    });
}

criterion_group!(group, benches);
criterion_main!(group);

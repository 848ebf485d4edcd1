//! One decode of Debian's xz kernel payload by pvbuild's decoder and one by liblzma, in the
//! same process, alternated `N` times (default 3): for comparing the two under an emulator
//! (`qemu-x86_64 target/release/examples/xz_pair`), where criterion's sampling is too slow.
//! Prints each run's seconds and the ratio of the best runs (liblzma / pvbuild).
//!
//! Run: `cargo run --release -p pvbuild-bench --example xz_pair [KERNEL] [N]`.

// Example code: a panic is a failed measurement.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvbuild_core::decompress::{self, Compression};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let kernel = args
        .next()
        .unwrap_or_else(|| "/boot/vmlinuz-6.1.0-56-amd64".into());
    let n: usize = args.next().map_or(3, |s| s.parse().unwrap());
    let file = std::fs::read(&kernel).unwrap_or_else(|e| panic!("{kernel}: {e}"));
    let bz = pvbuild_core::bzimage::parse(&file).unwrap();
    let size =
        usize::try_from(decompress::output_size(Compression::Xz, bz.payload).unwrap()).unwrap();
    let stream = &bz.payload[..bz.payload.len() - 4];
    let mut out = vec![0u8; size];
    let (mut ours, mut theirs) = (f64::MAX, f64::MAX);
    for i in 0..n {
        let t = Instant::now();
        assert_eq!(
            decompress::decompress_into(Compression::Xz, bz.payload, &mut out).unwrap(),
            size
        );
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut s = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0).unwrap();
        s.process(stream, &mut out, xz2::stream::Action::Finish)
            .unwrap();
        assert_eq!(s.total_out() as usize, size);
        let b = t.elapsed().as_secs_f64();
        println!("run {i}: pvbuild {a:.3} s, liblzma {b:.3} s");
        ours = ours.min(a);
        theirs = theirs.min(b);
    }
    println!(
        "best: pvbuild {ours:.3} s, liblzma {theirs:.3} s, ratio (liblzma / pvbuild) {:.2}",
        theirs / ours
    );
}

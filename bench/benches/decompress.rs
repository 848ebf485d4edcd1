//! Decoder speed on Debian's 6.1 kernel payload (/boot/vmlinuz-6.1.0-56-amd64, an xz
//! bzImage), in MB/s of output, each against the C reference CLI decoding the same stream on
//! the same machine (`xz -dc`, `gzip -dc`, ...), reported as a ratio. The non-xz streams are
//! the same decompressed kernel recompressed by the real CLIs at bench start-up, as Linux's
//! build would (gzip -9, bzip2 -9, lzma -9, lz4 -l -9, zstd -19 — -22 --ultra decodes alike
//! but takes minutes to encode), with Linux's le32 size trailer where Linux appends one.
//!
//! Run: `cargo bench -p pvbuild-bench --bench decompress` (a few minutes, one core).
//! Results go to docs/decompress.md.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pvbuild_core::decompress::{self, Compression};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KERNEL: &str = "/boot/vmlinuz-6.1.0-56-amd64";

fn run(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd} {args:?} failed");
    out.stdout
}

/// Best of `n` wall-clock runs of the CLI decoding `stream` to /dev/null-equivalent.
fn cli_seconds(cmd: &str, stream: &[u8], n: usize) -> f64 {
    let path = std::env::temp_dir().join(format!("pvbuild-bench-{cmd}.in"));
    std::fs::write(&path, stream).unwrap();
    let best = (0..n)
        .map(|_| {
            let t = Instant::now();
            let st = Command::new(cmd)
                .args(["-dc", path.to_str().unwrap()])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success() || cmd == "lzma" || cmd == "xz");
            t.elapsed()
        })
        .min()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    best.as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let file = std::fs::read(KERNEL).unwrap_or_else(|e| panic!("{KERNEL}: {e}"));
    let bz = pvbuild_core::bzimage::parse(&file).unwrap();
    let elf = decompress::unpack_kernel(&file).unwrap().into_owned();
    let size = elf.len();
    let trailer = (size as u32).to_le_bytes();
    let with_size = |mut v: Vec<u8>| {
        v.extend_from_slice(&trailer);
        v
    };
    // (format, stream as in a bzImage payload, CLI, CLI's input: the stream without trailer)
    let xz_stream = bz.payload[..bz.payload.len() - 4].to_vec();
    let gz = run("gzip", &["-9", "-n", "-c"], &elf);
    let bz2 = run("bzip2", &["-9", "-c"], &elf);
    let lzma = run("lzma", &["-9", "-c"], &elf);
    let lz4 = run("lz4", &["-l", "-9", "-c"], &elf);
    let zst = run("zstd", &["-19", "-q", "-c"], &elf);
    let cases: Vec<(Compression, Vec<u8>, &str, Vec<u8>)> = vec![
        (Compression::Xz, bz.payload.to_vec(), "xz", xz_stream),
        (Compression::Gzip, gz.clone(), "gzip", gz),
        (Compression::Zstd, with_size(zst.clone()), "zstd", zst),
        (Compression::Lz4, with_size(lz4.clone()), "lz4", lz4),
        (Compression::Bzip2, with_size(bz2.clone()), "bzip2", bz2),
        (Compression::Lzma, with_size(lzma.clone()), "lzma", lzma),
    ];
    let mut out = vec![0u8; size];
    let mut group = c.benchmark_group("decompress-debian-6.1");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(size as u64));
    let mut summary = Vec::new();
    for (fmt, stream, cli, cli_in) in &cases {
        assert_eq!(
            decompress::decompress_into(*fmt, stream, &mut out).unwrap(),
            size
        );
        assert!(out == elf, "{fmt:?} output differs");
        group.bench_function(fmt.name(), |b| {
            b.iter(|| decompress::decompress_into(*fmt, stream, &mut out).unwrap())
        });
        // Our own best-of-3 figure next to the CLI's, for the ratio.
        let ours = (0..3)
            .map(|_| {
                let t = Instant::now();
                decompress::decompress_into(*fmt, stream, &mut out).unwrap();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        let theirs = cli_seconds(cli, cli_in, 3);
        summary.push((fmt.name(), stream.len(), ours, theirs, *cli));
    }
    group.finish();
    let mb = size as f64 / 1e6;
    println!(
        "\nformat  compressed  pvbuild MB/s  {:>14}  ratio",
        "C CLI MB/s"
    );
    for (name, clen, ours, theirs, cli) in summary {
        println!(
            "{name:<6} {clen:>11}  {:>12.0}  {:>9.0} ({cli})  {:.2}",
            mb / ours,
            mb / theirs,
            theirs / ours
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

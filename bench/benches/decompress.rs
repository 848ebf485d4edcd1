//! Decoder speed on Debian's 6.1 kernel payload (/boot/vmlinuz-6.1.0-56-amd64, an xz
//! bzImage), in MB/s of output, each against a C reference decoding the same stream on the
//! same machine, reported as a ratio: for xz, gzip and zstd the C library in this process
//! (liblzma through `xz2`, zlib through `flate2`'s zlib backend, libzstd through `zstd`),
//! decoding into the same preallocated buffer with its checks on; for lz4, bzip2 and lzma the
//! CLI (`lz4 -dc`, ...: process start included). The non-xz streams are
//! the same decompressed kernel recompressed by the real CLIs at bench start-up, as Linux's
//! build would (gzip -9, bzip2 -9, lzma -9, lz4 -l -9, zstd -19 — -22 --ultra decodes alike
//! but takes minutes to encode), with Linux's le32 size trailer where Linux appends one.
//!
//! Run: `cargo bench -p pvbuild-bench --bench decompress` (a few minutes, one core);
//! `PVBUILD_BENCH_FORMATS=xz,gzip,zstd` runs only those formats (and skips the other
//! encodes). Results go to docs/decompress.md.

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

/// The C library's decode of `stream` (as the CLI takes it: no size trailer) into `out`, with
/// its checks on; returns the bytes written. `None`: no library reference for `fmt`.
fn c_library(fmt: Compression, stream: &[u8], out: &mut [u8]) -> Option<usize> {
    match fmt {
        Compression::Xz => {
            let mut s = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0).unwrap();
            let st = s.process(stream, out, xz2::stream::Action::Finish).unwrap();
            assert_eq!(st, xz2::stream::Status::StreamEnd);
            Some(s.total_out() as usize)
        }
        Compression::Gzip => {
            let mut d = flate2::Decompress::new_gzip(15);
            let st = d
                .decompress(stream, out, flate2::FlushDecompress::Finish)
                .unwrap();
            assert_eq!(st, flate2::Status::StreamEnd);
            Some(d.total_out() as usize)
        }
        Compression::Zstd => Some(zstd::bulk::decompress_to_buffer(stream, out).unwrap()),
        _ => None,
    }
}

/// The library each format is compared with (`None`: its CLI).
fn library_name(fmt: Compression) -> Option<&'static str> {
    match fmt {
        Compression::Xz => Some("liblzma"),
        Compression::Gzip => Some("zlib"),
        Compression::Zstd => Some("libzstd"),
        _ => None,
    }
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
    let only = std::env::var("PVBUILD_BENCH_FORMATS").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|l| l.split(',').any(|f| f.trim() == name))
    };
    // (format, stream as in a bzImage payload, CLI, CLI's input: the stream without trailer)
    let mut cases: Vec<(Compression, Vec<u8>, &str, Vec<u8>)> = Vec::new();
    if wanted("xz") {
        let xz_stream = bz.payload[..bz.payload.len() - 4].to_vec();
        cases.push((Compression::Xz, bz.payload.to_vec(), "xz", xz_stream));
    }
    if wanted("gzip") {
        let gz = run("gzip", &["-9", "-n", "-c"], &elf);
        cases.push((Compression::Gzip, gz.clone(), "gzip", gz));
    }
    if wanted("zstd") {
        let zst = run("zstd", &["-19", "-q", "-c"], &elf);
        cases.push((Compression::Zstd, with_size(zst.clone()), "zstd", zst));
    }
    if wanted("lz4") {
        let lz4 = run("lz4", &["-l", "-9", "-c"], &elf);
        cases.push((Compression::Lz4, with_size(lz4.clone()), "lz4", lz4));
    }
    if wanted("bzip2") {
        let bz2 = run("bzip2", &["-9", "-c"], &elf);
        cases.push((Compression::Bzip2, with_size(bz2.clone()), "bzip2", bz2));
    }
    if wanted("lzma") {
        let lzma = run("lzma", &["-9", "-c"], &elf);
        cases.push((Compression::Lzma, with_size(lzma.clone()), "lzma", lzma));
    }
    let mut out = vec![0u8; size];
    let mut group = c.benchmark_group("decompress-debian-6.1");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(size as u64));
    let mut summary = Vec::new();
    let mut candidates: Vec<(&str, f64, f64)> = Vec::new();
    for (fmt, stream, cli, cli_in) in &cases {
        assert_eq!(
            decompress::decompress_into(*fmt, stream, &mut out).unwrap(),
            size
        );
        assert!(out == elf, "{fmt:?} output differs");
        group.bench_function(format!("{}/pvbuild", fmt.name()), |b| {
            b.iter(|| decompress::decompress_into(*fmt, stream, &mut out).unwrap())
        });
        let (theirs, reference) = match library_name(*fmt) {
            Some(lib) => {
                // The library's output must be the same image.
                out.fill(0);
                assert_eq!(c_library(*fmt, cli_in, &mut out), Some(size));
                assert!(out == elf, "{lib}'s output differs");
                group.bench_function(format!("{}/{lib}", fmt.name()), |b| {
                    b.iter(|| c_library(*fmt, cli_in, &mut out).unwrap())
                });
                let t = best_of_3(&mut || {
                    c_library(*fmt, cli_in, &mut out).unwrap();
                });
                (t, lib.to_owned())
            }
            None => (cli_seconds(cli, cli_in, 3), format!("{cli} CLI")),
        };
        if *fmt == Compression::Zstd {
            zstd_candidates(&mut group, cli_in, &elf, &mut out, theirs, &mut candidates);
        }
        // Our own best-of-3 figure next to the reference's, for the ratio.
        let ours = best_of_3(&mut || {
            decompress::decompress_into(*fmt, stream, &mut out).unwrap();
        });
        summary.push((fmt.name(), stream.len(), ours, theirs, reference));
    }
    group.finish();
    let mb = size as f64 / 1e6;
    println!(
        "\nformat  compressed  pvbuild MB/s  {:>14}  ratio",
        "C MB/s"
    );
    for (name, clen, ours, theirs, reference) in summary {
        println!(
            "{name:<6} {clen:>11}  {:>12.0}  {:>9.0} ({reference})  {:.2}",
            mb / ours,
            mb / theirs,
            theirs / ours
        );
    }
    for (name, t, theirs) in candidates {
        println!(
            "zstd by {name}: {:.0} MB/s, {:.2} of libzstd (not used by pvbuild)",
            mb / t,
            theirs / t
        );
    }
}

/// The best of three timed runs of `f`, in seconds.
fn best_of_3(f: &mut dyn FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// Other pure-Rust zstd decoders, beside the core's ruzstd (measured, not used; only with the
/// `zstd-candidates` feature, as they take over a minute to build): each must give the same
/// image, checksum verified; their best-of-3 times go to `candidates`.
#[cfg(feature = "zstd-candidates")]
fn zstd_candidates(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cli_in: &[u8],
    elf: &[u8],
    out: &mut [u8],
    theirs: f64,
    candidates: &mut Vec<(&'static str, f64, f64)>,
) {
    let size = elf.len();
    let mut v = Vec::with_capacity(size);
    rusty_zstd::decompress_into(&mut v, cli_in).unwrap();
    assert!(v == elf, "rusty_zstd's output differs");
    let mut sd = structured_zstd::decoding::FrameDecoder::new();
    out.fill(0);
    assert_eq!(sd.decode_all(cli_in, out).unwrap(), size);
    assert!(out == elf, "structured-zstd's output differs");
    group.bench_function("ZSTD/rusty_zstd", |b| {
        b.iter(|| {
            v.clear();
            rusty_zstd::decompress_into(&mut v, cli_in).unwrap()
        })
    });
    group.bench_function("ZSTD/structured-zstd", |b| {
        b.iter(|| sd.decode_all(cli_in, out).unwrap())
    });
    let t = best_of_3(&mut || {
        v.clear();
        rusty_zstd::decompress_into(&mut v, cli_in).unwrap();
    });
    candidates.push(("rusty_zstd", t, theirs));
    let t = best_of_3(&mut || {
        sd.decode_all(cli_in, out).unwrap();
    });
    candidates.push(("structured-zstd", t, theirs));
}

#[cfg(not(feature = "zstd-candidates"))]
fn zstd_candidates(
    _: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    _: &[u8],
    _: &[u8],
    _: &mut [u8],
    _: f64,
    _: &mut Vec<(&'static str, f64, f64)>,
) {
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The xz container reader (src/decompress/xz.rs) against the real `xz` tool: every check
//! type, every BCJ filter xz 5.4 writes, a BCJ start offset, several blocks, block headers
//! with sizes (multi-threaded xz), small and large dictionaries, an empty stream; and, for
//! every single-bit corruption (the lowest and the highest bit of each byte) and every
//! truncation of a small stream, the same verdict as `xz -d` itself.

#![cfg(feature = "alloc")]
// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use pvbuild_core::decompress::{decompress_into, Compression};
use std::io::Write;
use std::process::{Command, Stdio};

/// Run `xz` with `args`, feeding it `input`; None when xz refuses.
fn xz(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("xz")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the xz tool (package xz-utils)");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out.status.success().then_some(out.stdout)
}

/// A stream as Linux appends it to a bzImage: the xz stream, then the size as le32.
fn with_trailer(stream: &[u8], size: usize) -> Vec<u8> {
    let mut v = stream.to_vec();
    v.extend_from_slice(&u32::try_from(size).unwrap().to_le_bytes());
    v
}

fn decode(stream: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; size];
    let n = decompress_into(Compression::Xz, &with_trailer(stream, size), &mut out)
        .map_err(|e| e.to_string())?;
    out.truncate(n);
    Ok(out)
}

/// Deterministic input that compresses like code: the fixture kernel, repeated with a
/// counter mixed in so that blocks differ.
fn sample(len: usize) -> Vec<u8> {
    let kernel = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/xen-pv64.elf"
    ))
    .unwrap();
    let mut v = Vec::with_capacity(len);
    let mut round = 0u8;
    while v.len() < len {
        v.extend(kernel.iter().map(|b| b.wrapping_add(round)));
        round = round.wrapping_add(1);
    }
    v.truncate(len);
    v
}

#[test]
fn every_variant_xz_writes_decodes() {
    let data = sample(600_000);
    let variants: &[&[&str]] = &[
        &["--check=none"],
        &["--check=crc32"],
        &["--check=crc64"],
        &["--check=sha256"],
        &["--check=crc32", "--x86", "--lzma2=dict=32MiB"],
        &["--x86=start=16", "--lzma2"],
        &["--powerpc", "--lzma2"],
        &["--ia64", "--lzma2"],
        &["--arm", "--lzma2"],
        &["--armthumb", "--lzma2"],
        &["--arm64", "--lzma2"],
        &["--sparc", "--lzma2"],
        &["--block-size=65536"],
        &["-T2", "--block-size=100000", "--check=crc64"],
        &["--lzma2=dict=4KiB"],
        &["-9e"],
        &["-0", "--check=crc32"],
    ];
    for args in variants {
        let mut full = vec!["-z", "-c"];
        full.extend_from_slice(args);
        let stream = xz(&full, &data).unwrap_or_else(|| panic!("xz {args:?} failed"));
        let got = decode(&stream, data.len()).unwrap_or_else(|e| panic!("xz {args:?}: {e}"));
        assert!(got == data, "xz {args:?}: output differs");
        // One byte less room is an overflow, not a silent truncation.
        let mut short = vec![0u8; data.len() - 1];
        assert!(
            decompress_into(
                Compression::Xz,
                &with_trailer(&stream, data.len()),
                &mut short
            )
            .is_err(),
            "xz {args:?}: fit in one byte less"
        );
    }
}

#[test]
fn empty_stream_and_trailing_data() {
    let empty = xz(&["-z", "-c"], b"").unwrap();
    assert_eq!(decode(&empty, 0).unwrap(), b"");
    // What follows the first stream's footer is ignored, as by Linux's boot decompressor.
    let a = xz(&["-z", "-c"], b"first").unwrap();
    let b = xz(&["-z", "-c"], b"second").unwrap();
    let both = [a.as_slice(), b.as_slice()].concat();
    assert_eq!(decode(&both, 5).unwrap(), b"first");
}

#[test]
fn corruptions_and_truncations_get_xzs_verdict() {
    let data = sample(3000);
    for check in [
        "--check=crc32",
        "--check=crc64",
        "--check=sha256",
        "--check=none",
    ] {
        let stream = xz(
            &["-z", "-c", check, "--block-size=1000", "--x86", "--lzma2"],
            &data,
        )
        .unwrap();
        for i in 0..stream.len() {
            for flip in [0x01u8, 0x80] {
                let mut bad = stream.clone();
                bad[i] ^= flip;
                let ours = decode(&bad, data.len()).ok();
                // --single-stream: xz would otherwise treat a damaged footer's bytes as
                // the start of a second stream, which Linux and pvbuild never look for.
                let theirs = xz(&["-d", "-c", "--single-stream"], &bad);
                assert_eq!(
                    ours.is_some(),
                    theirs.is_some(),
                    "{check}: byte {i} ^ {flip:#x}: pvbuild {}, xz {}",
                    if ours.is_some() { "accepts" } else { "refuses" },
                    if theirs.is_some() {
                        "accepts"
                    } else {
                        "refuses"
                    },
                );
                if let (Some(o), Some(t)) = (ours, theirs) {
                    assert!(o == t, "{check}: byte {i} ^ {flip:#x}: outputs differ");
                }
            }
        }
        for len in 0..stream.len() {
            assert!(
                decode(&stream[..len], data.len()).is_err(),
                "{check}: accepted a stream cut to {len} bytes"
            );
        }
    }
}

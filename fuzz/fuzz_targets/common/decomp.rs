//! The check shared by the `decompress_*` targets.
use pvbuild_core::decompress::{decompress_into, output_size, Compression, DecompressError};

/// Output window for the fuzzer; larger declared sizes must be refused or cut, not allocated.
const OUT: usize = 4 << 20;

/// Decode `data` as `c` into a 4 MiB buffer. A stream that decodes to `n` bytes must decode
/// the same into a buffer of exactly `n` bytes (a decoder that stops when its output is full
/// must still find the stream's end), and overflow one byte shorter.
pub fn check(c: Compression, data: &[u8]) {
    let _ = output_size(c, data);
    let mut out = vec![0u8; OUT];
    let Ok(n) = decompress_into(c, data, &mut out) else {
        return;
    };
    assert!(n <= OUT);
    let mut exact = vec![0u8; n];
    assert_eq!(
        decompress_into(c, data, &mut exact),
        Ok(n),
        "{c:?} into exactly {n} bytes"
    );
    assert!(
        exact == out[..n],
        "{c:?}: different output into exactly {n} bytes"
    );
    if let Some(short) = n.checked_sub(1) {
        let mut less = vec![0u8; short];
        let r = decompress_into(c, data, &mut less);
        assert!(
            matches!(r, Err(DecompressError::OutputOverflow { .. })),
            "{c:?} into {short} bytes of a {n}-byte stream: {r:?}"
        );
    }
}

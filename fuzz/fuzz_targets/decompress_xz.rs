//! The xz decoder through the core's interface: bounded output, typed errors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pvbuild_core::decompress::{decompress_into, output_size, Compression};

/// Output window for the fuzzer; larger declared sizes must be refused or cut, not allocated.
const OUT: usize = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = output_size(Compression::Xz, data);
    let mut out = vec![0u8; OUT];
    if let Ok(n) = decompress_into(Compression::Xz, data, &mut out) {
        assert!(n <= OUT);
    }
});

//! The bzImage setup header.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bz) = pvbuild_core::bzimage::parse(data) {
        assert!(bz.payload.len() <= data.len());
    }
});

//! Image probing: every input gets a format, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pvbuild_core::probe::identify(data);
});

//! The lz4 decoder through the core's interface: bounded output, typed errors, and the same
//! result into a buffer of exactly the decoded size (see common/decomp.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common/decomp.rs"]
mod decomp;

fuzz_target!(|data: &[u8]| {
    decomp::check(pvbuild_core::decompress::Compression::Lz4, data);
});

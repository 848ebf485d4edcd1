//! The build path from an unpacked kernel (ELF or 'bin'): parse, solve the layout, build into
//! memory behind a non-identity p2m, and check with the walker (the oracle). `build_guest`
//! reaches the same code through the decompressors, where most mutations die on a checksum;
//! here every mutation reaches the ELF parser, the layout and, when it parses, the build.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common/guest.rs"]
mod guest;

fuzz_target!(|data: &[u8]| {
    guest::build_and_check(data, data);
});

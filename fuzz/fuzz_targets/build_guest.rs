//! The whole path `pvbuild plan` takes: unpack any kernel file (probe, bzImage, every
//! decompressor), parse it, solve the layout, build the guest into memory behind a p2m that
//! is not the identity, and check the result with the core's walker. The walker is the
//! oracle: a build that succeeds must be correct. (See `build_elf` for the same without the
//! unpacking, where the fuzzer's effort goes to the layout and the build.)
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common/guest.rs"]
mod guest;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = pvbuild_core::decompress::unpack_kernel(data) {
        guest::build_and_check(&image, data);
    }
});

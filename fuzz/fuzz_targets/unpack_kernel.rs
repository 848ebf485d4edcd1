//! The whole unpacking path of a kernel file (probe, bzImage, any payload, gzip wrapper).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = pvbuild_core::decompress::unpack_kernel(data) {
        let _ = pvbuild_core::kernel::parse_kernel(&k);
    }
    let _ = pvbuild_core::decompress::unpack_ramdisk(data);
});

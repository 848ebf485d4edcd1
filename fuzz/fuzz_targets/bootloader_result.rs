//! A bootloader's `simple0` result (what pygrub writes for libxl), and the first `disk`
//! entry's spec, which decides what the bootloader reads.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let dir = Path::new("/run/pvbuild/bootloader.1/files");
    if let Ok(r) = pvbuild::devices::bootloader::parse_result(data, dir) {
        // Whatever the output says, the files it names are plain names inside `dir`.
        assert_eq!(r.kernel.parent(), Some(dir));
        if let Some(rd) = &r.ramdisk {
            assert_eq!(rd.parent(), Some(dir));
        }
        assert!(r
            .args
            .as_ref()
            .is_none_or(|a| a.len() < pvbuild::devices::bootloader::ITEM_MAX));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pvbuild::config::parse_disk_spec(s);
    }
});

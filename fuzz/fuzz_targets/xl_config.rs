//! The xl config file parser, the mapping of its keys to a domain configuration, and each
//! disk's vdev to its device number.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = pvbuild::config::parse(data) {
        if let Ok((d, _)) = pvbuild::config::DomainConfig::from_xl(&cfg) {
            for v in d.disks.iter().filter_map(|disk| disk.vdev.as_deref()) {
                let _ = pvbuild::disk::devid(v);
            }
        }
    }
});

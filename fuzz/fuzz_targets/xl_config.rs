//! The xl config file parser and the mapping of its keys to a domain configuration.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = pvbuild::config::parse(data) {
        let _ = pvbuild::config::DomainConfig::from_xl(&cfg);
    }
});

//! The console ring as a guest may leave it: any page contents, any indexes. Reading it must
//! never take more than one ring's worth per round, nor panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let _ = pvbuild::console::read_console_page(data, &mut out);
    assert!(out.len() <= 2048);
});

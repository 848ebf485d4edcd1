//! The xenstore wire reply parser: whatever xenstored (or anything on its socket) sends.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_msg, used)) = pvbuild::xenstore::wire::parse_reply(data) {
        assert!(used <= data.len());
    }
});

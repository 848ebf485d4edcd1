//! The ELF note area parser on its own (PT_NOTE / SHT_NOTE contents).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for note in pvbuild_core::notes::iter(data).take(4096) {
        let _ = note;
    }
    let mut parms = pvbuild_core::notes::DomParms::default();
    let mut total = 0u32;
    let _ = parms.parse_area(data, &mut total);
});

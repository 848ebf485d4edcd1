//! The legacy `__xen_guest` section string.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parms = pvbuild_core::notes::DomParms::default();
    pvbuild_core::xen_guest::parse(data, &mut parms);
});

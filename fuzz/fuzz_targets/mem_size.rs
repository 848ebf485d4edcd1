//! xl's memory size syntax (`mem-set`'s argument): `memory::parse_size_kib`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Some(kib) = pvbuild::control::memory::parse_size_kib(s) else {
        return;
    };
    // What it accepts is digits and at most one unit letter, and the size it gives reads
    // back the same written in KiB and (when whole) in MiB.
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    assert!(digits > 0 && t.len() - digits <= 1, "accepted {s:?}");
    assert_eq!(
        pvbuild::control::memory::parse_size_kib(&format!("{kib}k")),
        Some(kib)
    );
    if kib % 1024 == 0 {
        assert_eq!(
            pvbuild::control::memory::parse_size_kib(&(kib / 1024).to_string()),
            Some(kib)
        );
    }
});

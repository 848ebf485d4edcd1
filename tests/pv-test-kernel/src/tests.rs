//! Host unit tests of the pure parts (run with
//! `cargo test --lib --target x86_64-unknown-linux-gnu`).

use crate::crc32::crc32;
use crate::expect::{parse, parse_hex32, parse_u64, terminated, MAX_GUEST_CMDLINE};
use crate::geometry::{minimal_tables, page_up, Layout, VIRT_BASE};

#[test]
fn crc32_matches_the_standard_check_value() {
    assert_eq!(crc32(b"123456789".iter().copied()), 0xcbf4_3926);
    assert_eq!(crc32(core::iter::empty()), 0);
}

#[test]
fn numbers_parse_in_decimal_and_hex() {
    assert_eq!(parse_u64(b"8192"), Some(8192));
    assert_eq!(parse_u64(b"0x2000"), Some(0x2000));
    assert_eq!(parse_u64(b""), None);
    assert_eq!(parse_u64(b"0x"), None);
    assert_eq!(parse_u64(b"12a"), None);
    assert_eq!(parse_u64(b"99999999999999999999999"), None);
    assert_eq!(parse_hex32(b"eae52d4f"), Some(0xeae5_2d4f));
    assert_eq!(parse_hex32(b"0xCBF43926"), Some(0xcbf4_3926));
    assert_eq!(parse_hex32(b"123456789"), None);
    assert_eq!(parse_hex32(b"xyz"), None);
}

#[test]
fn expectations_come_from_the_command_line() {
    let e = parse(
        b"console=hvc0 expect_nr_pages=8192 expect_mod_len=300011 expect_mod_sum=eae52d4f \
          expect_cmdline_token=tok-1 tok-1",
    );
    assert_eq!(e.nr_pages, Some(8192));
    assert_eq!(e.mod_len, Some(300_011));
    assert_eq!(e.mod_sum, Some(0xeae5_2d4f));
    assert_eq!(e.token, Some(&b"tok-1"[..]));
    assert_eq!(e.malformed, None);
    assert!(!e.selftest_fault);
    assert!(parse(b"selftest=fault").selftest_fault);
    assert!(!e.xsprobe);
    let p = parse(b"pvtk.xsprobe=1 pvtk.xsprobe_other=3");
    assert!(p.xsprobe);
    assert_eq!(p.xsprobe_other, Some(3));
    assert_eq!(p.malformed, None);
    assert!(!parse(b"pvtk.xsprobe=0").xsprobe);
    assert_eq!(
        parse(b"pvtk.xsprobe=yes").malformed,
        Some(&b"pvtk.xsprobe=yes"[..])
    );
    assert_eq!(
        parse(b"pvtk.xsprobe_other=x").malformed,
        Some(&b"pvtk.xsprobe_other=x"[..])
    );
}

#[test]
fn malformed_expectations_are_reported() {
    let e = parse(b"expect_mod_len=12x expect_nr_pages=1");
    assert_eq!(e.malformed, Some(&b"expect_mod_len=12x"[..]));
    assert_eq!(e.mod_len, None);
    assert_eq!(e.nr_pages, Some(1));
    assert_eq!(
        parse(b"expect_cmdline_token=").malformed,
        Some(&b"expect_cmdline_token="[..])
    );
    assert_eq!(
        parse(b"selftest=nothing").malformed,
        Some(&b"selftest=nothing"[..])
    );
}

#[test]
fn command_line_needs_a_terminator() {
    let mut raw = [b'a'; MAX_GUEST_CMDLINE];
    assert_eq!(terminated(&raw), None);
    raw[3] = 0;
    assert_eq!(terminated(&raw), Some(&b"aaa"[..]));
}

#[test]
fn table_counts_match_libxenguest() {
    // This kernel under xl: v_end = VIRT_BASE + 4 MiB, 5 tables (L4, L3, L2, 2 x L1).
    assert_eq!(minimal_tables(VIRT_BASE + (4 << 20)), 5);
    // The reference log for Debian's 6.1 kernel: v_end 0xffffffff84c00000, 0x29 tables.
    assert_eq!(minimal_tables(0xffff_ffff_84c0_0000), 0x29);
    // Crossing a 1 GiB boundary adds an L2.
    assert_eq!(
        minimal_tables(VIRT_BASE + (1 << 30) + (2 << 20)),
        1 + 1 + 2 + 513
    );
}

fn good_layout() -> Layout {
    // The layout this kernel got from xl with 32 MiB and a 300011-byte module.
    Layout {
        image_end: 0xffff_ffff_8022_2000,
        mod_start: 0xffff_ffff_8022_2000,
        mod_len: 300_011,
        mfn_list: 0xffff_ffff_8026_c000,
        nr_pages: 8192,
        start_info: 0xffff_ffff_8027_c000,
        pt_base: 0xffff_ffff_8027_f000,
        nr_pt_frames: 5,
        stack_top: 0xffff_ffff_8028_5000,
    }
}

#[test]
fn layout_accepts_the_packed_order() {
    assert_eq!(good_layout().first_mismatch(), None);
    assert_eq!(page_up(0xffff_ffff_8022_1001), 0xffff_ffff_8022_2000);
    let mut no_module = good_layout();
    no_module.mod_len = 0;
    no_module.mod_start = 0;
    no_module.mfn_list = 0xffff_ffff_8022_2000;
    no_module.start_info = 0xffff_ffff_8023_2000;
    no_module.pt_base = 0xffff_ffff_8023_5000;
    no_module.stack_top = 0xffff_ffff_8023_b000;
    assert_eq!(no_module.first_mismatch(), None);
}

#[test]
fn layout_names_the_first_misplaced_element() {
    let mut l = good_layout();
    l.pt_base += 0x1000;
    assert_eq!(
        l.first_mismatch(),
        Some(("page_tables", 0xffff_ffff_8027_f000, 0xffff_ffff_8028_0000))
    );
    let mut l = good_layout();
    l.stack_top -= 0x1000;
    assert_eq!(l.first_mismatch().map(|m| m.0), Some("boot_stack"));
    let mut l = good_layout();
    l.mfn_list += 0x1000;
    assert_eq!(l.first_mismatch().map(|m| m.0), Some("p2m"));
}

//! The boot module (ramdisk): this kernel does not declare MOD_START_PFN, so the builder
//! must map it in the initial mapping and `mod_start` is its virtual address. Its length and
//! CRC-32 must match what the harness put on the command line.

use crate::pagetable::Tables;
use crate::report::Report;
use crate::xen::{StartInfo, PAGE_SIZE};
use pv_test_kernel::crc32::crc32;
use pv_test_kernel::expect::Expect;

pub fn check(r: &mut Report, si: &StartInfo, tables: Option<&Tables>, expect: &Expect<'_>) {
    let (start, len) = (si.mod_start, si.mod_len);
    let Some(want_len) = expect.mod_len else {
        r.skip(
            "module.len",
            format_args!("mod_start={start:#x} mod_len={len} (no expect_mod_len given)"),
        );
        r.skip(
            "module.sum",
            format_args!("no expect_mod_len/expect_mod_sum given"),
        );
        return;
    };
    let aligned = start.is_multiple_of(PAGE_SIZE) && (len == 0 || start != 0);
    let Some(tables) = tables else {
        r.check(
            "module.len",
            false,
            format_args!("no page tables to find the module"),
        );
        return;
    };
    let mapped = tables.range_mapped(start, len);
    r.check(
        "module.len",
        len == want_len && aligned && mapped.is_ok(),
        format_args!(
            "mod_start={start:#x} mod_len={len} expected={want_len} page_aligned={aligned} \
             mapped={mapped:?}"
        ),
    );
    let Some(want_sum) = expect.mod_sum else {
        r.skip("module.sum", format_args!("no expect_mod_sum given"));
        return;
    };
    if mapped.is_err() || len != want_len {
        r.check(
            "module.sum",
            false,
            format_args!("module not readable as promised"),
        );
        return;
    }
    let bytes = (0..len).map(|i| {
        // SAFETY: every page of [start, start + len) was found mapped above.
        unsafe { ((start + i) as *const u8).read_volatile() }
    });
    let sum = crc32(bytes);
    r.check(
        "module.sum",
        sum == want_sum,
        format_args!("crc32={sum:08x} expected={want_sum:08x}"),
    );
}

//! The walker's own definitions (`pvbuild_core::walker::defs`) against Debian's libxen-dev
//! headers: `struct start_info`'s field offsets in both guest layouts (`xen/foreign/x86_64.h`,
//! `x86_32.h`), the `SIF_*` flags, `MAX_GUEST_CMDLINE` and the 64-bit hypervisor range compiled
//! with the headers; the 32-bit hypervisor starts read from `arch-x86/xen-x86_32.h`'s text
//! (that header cannot be included on x86_64, where `xen.h` picks the 64-bit one).

mod common;

use pvbuild_core::walker::defs::*;

const PRELUDE: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/foreign/x86_32.h>
#include <xen/foreign/x86_64.h>
int main(void) {
"#;

fn start_info_checks(c_type: &str, o: StartInfoOffsets) -> Vec<(String, String, u64)> {
    let fields: [(&str, usize); 12] = [
        ("nr_pages", o.nr_pages),
        ("flags", o.flags),
        ("store_mfn", o.store_mfn),
        ("console.domU.mfn", o.console_mfn),
        ("pt_base", o.pt_base),
        ("nr_pt_frames", o.nr_pt_frames),
        ("mfn_list", o.mfn_list),
        ("mod_start", o.mod_start),
        ("mod_len", o.mod_len),
        ("cmd_line", o.cmd_line),
        ("first_p2m_pfn", o.first_p2m_pfn),
        ("nr_p2m_frames", o.nr_p2m_frames),
    ];
    let mut v: Vec<(String, String, u64)> = fields
        .iter()
        .map(|(f, off)| {
            (
                format!("offsetof {c_type}.{f}"),
                format!("offsetof({c_type}, {f})"),
                *off as u64,
            )
        })
        .collect();
    // Every word-sized field the walker reads has the width it assumes.
    for f in [
        "nr_pages",
        "store_mfn",
        "pt_base",
        "mfn_list",
        "mod_len",
        "nr_p2m_frames",
    ] {
        v.push((
            format!("sizeof {c_type}.{f}"),
            format!("sizeof((({c_type} *)0)->{f})"),
            o.word as u64,
        ));
    }
    v.push((
        format!("sizeof {c_type}.console.domU.mfn"),
        format!("sizeof((({c_type} *)0)->console.domU.mfn)"),
        o.word as u64,
    ));
    v
}

/// `#define NAME 0x...` from a header's text.
fn header_define(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("#define") && w.next() == Some(name))
            .then(|| w.next())
            .flatten()
            .and_then(|v| {
                u64::from_str_radix(v.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
            })
    })
}

#[test]
fn walker_defs_match_libxen_dev_headers() {
    let mut checks = start_info_checks("start_info_x86_64_t", START_INFO_X86_64);
    checks.extend(start_info_checks("start_info_x86_32_t", START_INFO_X86_32));
    for (c, rust) in [
        ("SIF_MOD_START_PFN", SIF_MOD_START_PFN),
        ("SIF_VIRT_P2M_4TOOLS", SIF_VIRT_P2M_4TOOLS),
        ("MAX_GUEST_CMDLINE", MAX_GUEST_CMDLINE as u64),
        ("__HYPERVISOR_VIRT_START", HYPERVISOR_VIRT_START_X86_64),
        ("__HYPERVISOR_VIRT_END", HYPERVISOR_VIRT_END_X86_64),
        ("sizeof(start_info_x86_64_t)", 1168),
        ("sizeof(start_info_x86_32_t)", 1112),
    ] {
        checks.push((format!("const {c}"), c.to_string(), rust));
    }
    let values = common::c_values(
        "walker_defs",
        PRELUDE,
        checks.iter().map(|(k, c, _)| (k.as_str(), c.as_str())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut diffs = Vec::new();
    for (key, _, rust) in &checks {
        match values.get(key) {
            Some(v) if v == rust => {}
            Some(v) => diffs.push(format!("{key}: C {v:#x}, walker {rust:#x}")),
            None => diffs.push(format!("{key}: missing from the C output")),
        }
    }

    let path = "/usr/include/xen/arch-x86/xen-x86_32.h";
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (install libxen-dev)"));
    for (name, rust) in [
        ("__HYPERVISOR_VIRT_START_PAE", HYPERVISOR_VIRT_START_PAE),
        (
            "__HYPERVISOR_VIRT_START_NONPAE",
            HYPERVISOR_VIRT_START_NONPAE,
        ),
    ] {
        match header_define(&text, name) {
            Some(v) if v == rust => {}
            other => diffs.push(format!("{name}: header {other:x?}, walker {rust:#x}")),
        }
    }
    assert!(
        diffs.is_empty(),
        "walker::defs drift against /usr/include/xen:\n{}",
        diffs.join("\n")
    );
    assert_eq!(checks.len(), 2 * (12 + 7) + 7);
}

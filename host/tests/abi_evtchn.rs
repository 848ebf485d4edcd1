//! The evtchn device's ABI (`host/src/sys/evtchn_dev.rs`) and the console ring's layout
//! (`host/src/devices/console.rs`) against Debian's headers: `/usr/include/xen/sys/evtchn.h` (Linux's
//! uapi header) and `/usr/include/xen/io/console.h`.
//!
//! As `abi_layout.rs`: a generated C program prints sizes, offsets and constants, compiled
//! with the system C compiler, and every line is compared with what Rust computes.

mod common;

use std::mem::{align_of, offset_of, size_of};

use pvbuild::devices::console::*;
use pvbuild::sys::evtchn_dev::*;

fn checks() -> Vec<(String, String, u64)> {
    let mut v: Vec<(String, String, u64)> = Vec::new();
    let mut push = |key: String, c: String, rust: usize| v.push((key, c, rust as u64));
    macro_rules! layout {
        ($rty:ty => $cty:literal { $($f:ident),* }) => {
            push(format!("sizeof {}", $cty), format!("sizeof({})", $cty), size_of::<$rty>());
            push(format!("alignof {}", $cty), format!("_Alignof({})", $cty), align_of::<$rty>());
            $(
                push(
                    format!("offsetof {}.{}", $cty, stringify!($f)),
                    format!("offsetof({}, {})", $cty, stringify!($f)),
                    offset_of!($rty, $f),
                );
            )*
        };
    }
    layout!(IoctlEvtchnBindInterdomain => "struct ioctl_evtchn_bind_interdomain" {
        remote_domain, remote_port
    });
    layout!(IoctlEvtchnUnbind => "struct ioctl_evtchn_unbind" { port });
    layout!(IoctlEvtchnNotify => "struct ioctl_evtchn_notify" { port });
    let consts: [(&str, pvbuild::sys::privcmd::IoctlRequest); 4] = [
        (
            "IOCTL_EVTCHN_BIND_INTERDOMAIN",
            IOCTL_EVTCHN_BIND_INTERDOMAIN,
        ),
        ("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND),
        ("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY),
        ("IOCTL_EVTCHN_RESET", IOCTL_EVTCHN_RESET),
    ];
    for (c, r) in consts {
        push(format!("const {c}"), c.to_owned(), r as usize);
    }
    let cons = "struct xencons_interface";
    for (f, r) in [
        ("in", OFF_IN),
        ("out", OFF_OUT),
        ("in_cons", OFF_IN_CONS),
        ("in_prod", OFF_IN_PROD),
        ("out_cons", OFF_OUT_CONS),
        ("out_prod", OFF_OUT_PROD),
    ] {
        push(
            format!("offsetof {cons}.{f}"),
            format!("offsetof({cons}, {f})"),
            r,
        );
    }
    push(
        format!("sizeof {cons}"),
        format!("sizeof({cons})"),
        INTERFACE_SIZE,
    );
    push(
        "sizeof in".into(),
        format!("sizeof((({cons} *)0)->in)"),
        IN_SIZE,
    );
    push(
        "sizeof out".into(),
        format!("sizeof((({cons} *)0)->out)"),
        OUT_SIZE,
    );
    // MASK_XENCONS_IDX of a wrapped index, as ring_read masks it.
    push(
        "mask out".into(),
        format!("MASK_XENCONS_IDX(0x12345u, (({cons} *)0)->out)"),
        0x12345 % OUT_SIZE,
    );
    v
}

const PRELUDE: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <xen/xen.h>
#include <xen/io/console.h>
#include <xen/sys/evtchn.h>
int main(void) {
"#;

#[test]
fn evtchn_device_and_console_ring_match_the_headers() {
    let checks = checks();
    let c = common::c_values(
        "abi_evtchn",
        PRELUDE,
        checks.iter().map(|(k, c, _)| (k.as_str(), c.as_str())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut diffs = Vec::new();
    for (key, _, rust) in &checks {
        match c.get(key) {
            Some(v) if v == rust => {}
            Some(v) => diffs.push(format!("{key}: C {v:#x}, Rust {rust:#x}")),
            None => diffs.push(format!("{key}: missing from the C output")),
        }
    }
    assert!(diffs.is_empty(), "ABI drift:\n{}", diffs.join("\n"));
    assert_eq!(
        checks.len(),
        4 + 3 + 3 + 4 + 6 + 4,
        "every check was compared"
    );
}

//! `pvbuild plan --type hvm` on Debian's hvmloader and SeaBIOS (xen-utils-4.17, seabios),
//! against what libxenguest logged for the same builds on the harness's Xen (`xl -vvv create
//! -p` of an HVM guest with 256 MiB: vga none, the guest's RAM 256 MiB; stdvga, its 16 MiB
//! of video memory taken out, 240 MiB): tests/xen/reference/xl-vvv-hvm*-6.1.0-57-amd64.log.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

const HVMLOADER: &str = "/usr/lib/xen-4.17/boot/hvmloader";
const SEABIOS: &str = "/usr/share/seabios/bios-256k.bin";
const LAYOUT: [&str; 8] = [
    "xc_dom_mem_init",
    "range: start",
    "xc_dom_alloc_segment",
    "xc_dom_build_image  :",
    "PHYSICAL MEMORY",
    "KB PAGES",
    "MB PAGES",
    "GB PAGES",
];

/// Whether Debian's firmware is installed. In CI (`CI=true`) its absence fails the test.
fn firmware_present() -> bool {
    if Path::new(HVMLOADER).exists() && Path::new(SEABIOS).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{HVMLOADER} or {SEABIOS} is not installed (xen-utils-4.17, seabios)"
    );
    eprintln!("SKIPPED: {HVMLOADER} or {SEABIOS} is not installed");
    false
}

fn layout_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| LAYOUT.iter().any(|k| l.contains(k)))
        .map(str::to_owned)
        .collect()
}

fn plan(memory: &str, firmware: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pvbuild"))
        .args([
            "plan", "--type", "hvm", "--vcpus", "2", "--memory", memory, firmware,
        ])
        .output()
        .unwrap()
}

#[test]
fn layout_lines_equal_xls() {
    if !firmware_present() {
        return;
    }
    for (memory, log) in [
        ("256", "xl-vvv-hvm-6.1.0-57-amd64.log"),
        ("240", "xl-vvv-hvm-stdvga-6.1.0-57-amd64.log"),
    ] {
        let reference = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/xen/reference")
                .join(log),
        )
        .unwrap();
        let want = layout_lines(&reference);
        assert_eq!(want.len(), 12, "{log}");
        let out = plan(memory, HVMLOADER);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = layout_lines(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(got, want, "{log}");
    }
}

#[test]
fn bad_firmware_is_one_error_line() {
    if !firmware_present() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pvbuild-plan-hvm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(HVMLOADER).unwrap();
    // Truncated in its program headers, and not an ELF at all.
    for (name, data) in [("truncated", &bytes[..60]), ("garbage", &b"not an elf"[..])] {
        let f = dir.join(name);
        std::fs::write(&f, data).unwrap();
        let out = plan("256", f.to_str().unwrap());
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.starts_with("error:"), "{name}: {err}");
    }
    // Memory that leaves nothing above the firmware.
    let out = plan("1", HVMLOADER);
    assert!(!out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `pvbuild plan` against libxenguest's recorded arrangement for kernels kept in the repo
//! (tests/data/xl-vvv/*.log: `xl -vvv create` on Xen 4.17; see its README). The live comparison
//! with whatever kernel the machine has is the harness's `plan-compare` scenario.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The layout lines of a libxenguest log, without their prefix and with squeezed spaces.
fn layout_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix("domainbuilder: detail: ").unwrap_or(l);
            let keep = l.starts_with("xc_dom_alloc_segment")
                || l.starts_with("xc_dom_alloc_page")
                || l.contains("virt_alloc_end")
                || l.contains("virt_pgtab_end");
            keep.then(|| l.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// Runs `pvbuild plan` for the config `name` (memory, kernel and ramdisk as recorded) and
/// compares its layout lines with libxenguest's.
fn check(name: &str, kernel: &str, memory: u32, ramdisk: Option<&str>) {
    let data = repo().join("builder-core/tests/data");
    let log = std::fs::read_to_string(repo().join(format!("host/tests/data/xl-vvv/{name}.log")))
        .expect("recorded log");
    let want = layout_lines(&log);
    assert!(want.len() >= 8, "{name}: the recorded log has the layout");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pvbuild"));
    cmd.args([
        "plan",
        "--memory",
        &memory.to_string(),
        "--cmdline",
        "console=hvc0",
    ]);
    if let Some(r) = ramdisk {
        cmd.arg("--ramdisk").arg(data.join(r));
    }
    let out = cmd.arg(data.join(kernel)).output().expect("run pvbuild");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = layout_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(got, want, "{name}: pvbuild plan differs from libxenguest");
}

#[test]
fn elf_kernel_without_ramdisk() {
    check("pv64-32m", "xen-pv64.elf", 32, None);
}

#[test]
fn elf_kernel_with_gzip_ramdisk() {
    check("pv64-64m-initrd", "xen-pv64.elf", 64, Some("initrd.gz"));
}

#[test]
fn xz_bzimage_with_gzip_ramdisk() {
    check("bzxz-48m", "bz-xz.bin", 48, Some("initrd.gz"));
}

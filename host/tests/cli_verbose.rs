//! `-v`: the builder's detail as libxenguest and libelf log it (xl's `XTL_DETAIL`), checked
//! against the logs `xl -vvv create` recorded on Xen 4.17 for the fixture kernels
//! (host/tests/data/xl-vvv/, see its README): pvbuild prints exactly the recorded lines it
//! claims to reproduce, in the same order.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The recorded lines pvbuild does not print: those about libxenguest's own memory and
/// mappings, those that need the hypervisor's answer, and everything from the boot of the
/// image on (`xc_dom_boot_image`, after the build), which only `create` reaches.
fn reproduced(log: &str) -> Vec<String> {
    let skip = [
        "xc_dom_boot_xen_init:",
        "xc_dom_compat_check:",
        "xc_dom_malloc ",
        "xc_dom_malloc_filemap",
        "domU mapping",
    ];
    log.lines()
        .filter(|l| l.starts_with("domainbuilder: ") || l.starts_with("xc: "))
        .take_while(|l| !l.contains("xc_dom_boot_image: called"))
        .filter(|l| !skip.iter().any(|s| l.contains(s)))
        // libelf's "phdr N at <this process's address>" lines.
        .filter(|l| !(l.contains("ELF: phdr ") && l.contains(" at 0x")))
        .map(normalise)
        .collect()
}

/// File names differ between the recording (dom0's paths) and this checkout.
fn normalise(l: &str) -> String {
    match l.find("filename=\"") {
        Some(i) => {
            let name = l[i + 10..].trim_end_matches('"');
            let base = Path::new(name).file_name().unwrap().to_string_lossy();
            format!("{}filename=\"{base}\"", &l[..i])
        }
        None => l.to_string(),
    }
}

fn plan(args: &[&str], kernel: &str, memory: u32, ramdisk: Option<&str>) -> (String, String) {
    let data = repo().join("builder-core/tests/data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pvbuild"));
    cmd.args(args).args([
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
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn check(name: &str, kernel: &str, memory: u32, ramdisk: Option<&str>) {
    let log = std::fs::read_to_string(repo().join(format!("host/tests/data/xl-vvv/{name}.log")))
        .expect("recorded log");
    let want = reproduced(&log);
    // The probe, the notes, count_pgtables and the allocations are all there.
    for kind in [
        "loader probe OK",
        "ELF: note: ENTRY",
        "count_pgtables:",
        "xc_dom_alloc_segment:   phys2mach",
    ] {
        assert!(want.iter().any(|l| l.contains(kind)), "{name}: {kind}");
    }
    for v in ["-v", "-vvv"] {
        let (_, stderr) = plan(&[v], kernel, memory, ramdisk);
        let got: Vec<String> = stderr.lines().map(normalise).collect();
        assert_eq!(
            got, want,
            "{name} {v}: pvbuild's detail differs from libxenguest's"
        );
    }
    // Without -v: none of it.
    let (stdout, stderr) = plan(&[], kernel, memory, ramdisk);
    assert_eq!(stderr, "", "{name}");
    assert!(!stdout.contains("domainbuilder:"), "{name}");
}

#[test]
fn elf_kernel_detail_matches_libxenguest() {
    check("pv64-32m", "xen-pv64.elf", 32, None);
}

#[test]
fn elf_kernel_and_gzip_ramdisk_detail_matches_libxenguest() {
    check("pv64-64m-initrd", "xen-pv64.elf", 64, Some("initrd.gz"));
}

#[test]
fn xz_bzimage_detail_matches_libxenguest() {
    check("bzxz-48m", "bz-xz.bin", 48, Some("initrd.gz"));
}

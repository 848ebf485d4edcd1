//! `pvbuild plan` and `pvbuild create` refuse a kernel whose required features rule out an
//! unprivileged PV guest (libxenguest: `xc_dom_parse_elf_kernel` for `dom0`, `bootearly` for
//! `auto_translated_physmap`) with one `error:` line naming the feature, before any domain
//! exists: `create` here runs without Xen, so reaching the hypervisor would fail differently.
//! The kernels are the repo's xen-pv64.elf with its FEATURES note rewritten in place.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../builder-core/tests/data/xen-pv64.elf");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fixture with its FEATURES string replaced by `features` (NUL-padded to the same size,
/// so the note keeps its length).
fn with_features(features: &str, tag: &str) -> PathBuf {
    const OLD: &[u8] = b"!writable_page_tables|pae_pgdir_above_4gb";
    let mut f = fixture();
    let at = f
        .windows(OLD.len())
        .position(|w| w == OLD)
        .expect("the fixture's FEATURES note");
    assert!(features.len() <= OLD.len());
    let dst = &mut f[at..at + OLD.len()];
    dst.fill(0);
    dst[..features.len()].copy_from_slice(features.as_bytes());
    let dir = std::env::temp_dir().join(format!("pvbuild-features-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.elf"));
    std::fs::write(&path, f).unwrap();
    path
}

fn run(args: &[&str], kernel: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pvbuild"))
        .args(args)
        .arg(kernel)
        .output()
        .expect("run pvbuild");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn refused(args: &[&str], kernel: &Path, feature: &str) {
    let (ok, stdout, stderr) = run(args, kernel);
    assert!(!ok, "{args:?} succeeded: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(&format!("requires feature {feature}")),
        "{stderr}"
    );
}

#[test]
fn plan_and_create_refuse_dom0_and_autotranslate_kernels() {
    let plan = ["plan", "--memory", "64"];
    let create = ["create", "--name", "features", "--memory", "64", "--kernel"];
    for (features, tag, name) in [
        ("!writable_page_tables|!dom0", "dom0", "dom0"),
        (
            "!auto_translated_physmap",
            "autotranslate",
            "auto_translated_physmap",
        ),
    ] {
        let k = with_features(features, tag);
        refused(&plan, &k, name);
        refused(&create, &k, name);
    }
    // The unmodified fixture plans; supporting dom0 without requiring it is fine.
    let ok_kernel = with_features("dom0|!writable_page_tables", "dom0-ok");
    let (ok, _, stderr) = run(&plan, &ok_kernel);
    assert!(ok, "{stderr}");
    if let Some(dir) = ok_kernel.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! `pvbuild create`'s command line as xl's (`create -n`, `KEY=VALUE`, `-f`, `-q`, `-d`),
//! defaults as xl's, errors naming the config file and line, limits in `--help`: all without
//! Xen (this machine has none; `create -n` must not need it).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pvbuild(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvbuild"))
        .args(args)
        .output()
        .expect("run pvbuild")
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-create-{name}"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// xl's default memory is libxl's: `max_memkb = 32 * 1024` in
/// libxl__domain_build_info_setdefault (tools/libs/light/libxl_create.c, Xen 4.17).
const LIBXL_DEFAULT_MIB: u64 = 32;

#[test]
fn dry_run_prints_the_resolved_config_with_settings_appended_as_xl_does() {
    let d = scratch("dry");
    let cfg = write(
        &d,
        "g.cfg",
        "name = \"g\"\nkernel = \"/nonexistent/vmlinuz\"\nmemory = 64\nvcpus = 1\n",
    );
    // No kernel is read and Xen is not touched: the kernel does not exist, nor does Xen here.
    let v = json(&pvbuild(&[
        "create",
        "-n",
        &cfg,
        "memory=96",
        "extra=\"console=hvc0\"",
        "vcpus=2",
    ]));
    assert_eq!(v["c_info"]["name"], "g");
    assert_eq!(v["b_info"]["kernel"], "/nonexistent/vmlinuz");
    assert_eq!(v["b_info"]["target_memkb"], 96 * 1024);
    assert_eq!(v["b_info"]["max_memkb"], 96 * 1024);
    assert_eq!(v["b_info"]["max_vcpus"], 2);
    assert_eq!(v["b_info"]["avail_vcpus"], serde_json::json!([0, 1]));
    assert_eq!(v["b_info"]["cmdline"], "console=hvc0");
    assert_eq!(v["on_reboot"], "restart");
    // libxl's layout: its IDL order, yajl's spacing (an empty object on three lines).
    let text = String::from_utf8(pvbuild(&["create", "-n", &cfg]).stdout).unwrap();
    assert!(text.starts_with("{\n    \"c_info\": {\n        \"type\": \"pv\",\n        \"name\": \"g\",\n        \"uuid\": \""), "{text}");
    assert!(text.contains("\"sched_params\": {\n\n        },"), "{text}");
    // -f names the file too; settings alone make a config, as with xl's /dev/null.
    let v = json(&pvbuild(&["create", "-n", "-f", &cfg]));
    assert_eq!(v["b_info"]["target_memkb"], 64 * 1024);
    let v = json(&pvbuild(&[
        "create",
        "--dryrun",
        "name=\"cl\"",
        "kernel=\"/k\"",
    ]));
    assert_eq!(v["c_info"]["name"], "cl");
    let v = json(&pvbuild(&[
        "create",
        "-n",
        "/dev/null",
        "name=\"cl\"",
        "kernel=\"/k\"",
    ]));
    assert_eq!(v["c_info"]["name"], "cl");
    // Flags still override the config.
    let v = json(&pvbuild(&["create", "-n", &cfg, "--memory", "1g"]));
    assert_eq!(v["b_info"]["target_memkb"], 1024 * 1024);
}

#[test]
fn default_memory_is_xls_for_plan_create_and_configs() {
    let d = scratch("defaults");
    let cfg = write(&d, "g.cfg", "name = \"g\"\nkernel = \"/k\"\n");
    let v = json(&pvbuild(&["create", "-n", &cfg]));
    assert_eq!(v["b_info"]["target_memkb"], LIBXL_DEFAULT_MIB * 1024);
    let v = json(&pvbuild(&["create", "-n", "--name", "g", "--kernel", "/k"]));
    assert_eq!(v["b_info"]["target_memkb"], LIBXL_DEFAULT_MIB * 1024);
    let kernel =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../builder-core/tests/data/xen-pv64.elf");
    let v = json(&pvbuild(&["plan", "--json", kernel.to_str().unwrap()]));
    assert_eq!(v["memory_mib"], LIBXL_DEFAULT_MIB);
}

#[test]
fn help_states_the_limits() {
    let plan = String::from_utf8(pvbuild(&["plan", "--help"]).stdout).unwrap();
    for want in ["16 GiB", "1 to 128", "32 MiB"] {
        assert!(plan.contains(want), "plan --help lacks {want:?}:\n{plan}");
    }
    let create = String::from_utf8(pvbuild(&["create", "--help"]).stdout).unwrap();
    for want in [
        "16 TiB",
        "1 to 128",
        "32 MiB",
        "KEY=VALUE",
        "-n",
        "--dryrun",
        "-q",
        "-F",
    ] {
        assert!(
            create.contains(want),
            "create --help lacks {want:?}:\n{create}"
        );
    }
}

#[test]
fn errors_name_the_file_and_line_or_the_setting() {
    let d = scratch("errors");
    let bad = write(&d, "bad.cfg", "name = \"g\"\n\nmemory = = 64\n");
    let out = pvbuild(&["create", "-q", "-n", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with(&format!("error: {bad}:3: ")), "{e}");
    let cfg = write(&d, "g.cfg", "name = \"g\"\nkernel = \"/k\"\n");
    let out = pvbuild(&["create", "-q", "-n", &cfg, "memory=\"lots\""]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.starts_with("error: command line \"memory=\\\"lots\\\"\": memory: "),
        "{e}"
    );
    let refused = write(
        &d,
        "r.cfg",
        "name = \"g\"\nkernel = \"/k\"\non_crash = \"soft-reset\"\n",
    );
    let e = stderr(&pvbuild(&["create", "-q", "-n", &refused]));
    assert!(e.starts_with(&format!("error: {refused}:3: ")), "{e}");
    // Two config files: a usage error, status 2 as xl's.
    let out = pvbuild(&["create", "-n", &cfg, &bad]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn parsing_line_as_xl_and_quiet_and_debug() {
    let d = scratch("progress");
    let cfg = write(&d, "g.cfg", "name = \"g\"\nkernel = \"/k\"\n");
    let out = pvbuild(&["create", "-n", &cfg]);
    assert_eq!(stderr(&out), format!("Parsing config from {cfg}\n"));
    let out = pvbuild(&["create", "-n", "-q", &cfg]);
    assert_eq!(stderr(&out), "");
    // -d: the same JSON on stderr, then the create goes on (and here fails at Xen, or at
    // the missing kernel, after printing it).
    let out = pvbuild(&["create", "-q", "-d", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    let end = e.rfind("}\n").expect("JSON on stderr") + 1;
    let v: serde_json::Value = serde_json::from_str(&e[..end]).unwrap();
    assert_eq!(v["c_info"]["name"], "g");
    assert!(e[end..].trim_start().starts_with("error: "), "{e}");
}

/// `create -n` against what `xl create -n` printed on real Xen 4.17 for the same configs
/// (host/tests/data/xl-dryrun/, captured by the harness scenario xl-create-dryrun): the
/// same bytes once xl's `claim_mode` line is set aside, and for the config with `cpus` /
/// `cpus_soft` the same fields but xl's per-vcpu affinity bitmaps and `numa_placement`.
#[test]
fn dry_run_is_xls_libxl_json() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/xl-dryrun");
    for c in [
        "dry_pv_devices",
        "dry_pv_bootloader",
        "dry_pvh",
        "dry_pv_placement",
    ] {
        let cfg = data.join(format!("{c}.cfg"));
        let xl = std::fs::read_to_string(data.join(format!("{c}.xl.json"))).unwrap();
        let xl: String = xl
            .lines()
            .filter(|l| *l != "        \"claim_mode\": \"True\",")
            .map(|l| format!("{l}\n"))
            .collect();
        let out = pvbuild(&["create", "-q", "-n", cfg.to_str().unwrap()]);
        assert!(out.status.success(), "{c}: {}", stderr(&out));
        let ours = String::from_utf8(out.stdout).unwrap();
        if c == "dry_pv_placement" {
            let mut want: serde_json::Value = serde_json::from_str(&xl).unwrap();
            let b = want["b_info"].as_object_mut().unwrap();
            for k in ["vcpu_hard_affinity", "vcpu_soft_affinity", "numa_placement"] {
                assert!(b.remove(k).is_some(), "{c}: xl printed no {k}");
            }
            let got: serde_json::Value = serde_json::from_str(&ours).unwrap();
            assert_eq!(got, want, "{c}");
        } else {
            assert_eq!(ours, xl, "{c}");
        }
    }
}

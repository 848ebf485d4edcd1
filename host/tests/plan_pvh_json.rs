//! `pvbuild plan --type pvh --json` on Debian's real 6.1.0-57 kernel, against what xl and
//! libxenguest did for the same PVH guest (tests/xen/reference/xl-vvv-pvh-6.1.0-57-amd64.log,
//! xl-pvh-hvmctx-6.1.0-57-amd64.txt: 256 MiB, 2 vcpus, `console=hvc0 quiet pvbuild.cpus`, a
//! module of 0x214e10 bytes), and against the text form of the same plan.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::Command;

const KERNEL: &str = "/boot/vmlinuz-6.1.0-57-amd64";
const CMDLINE: &str = "console=hvc0 quiet pvbuild.cpus";
/// The reference's module: "module0 : 0x4a01000 -> 0x4c15e10".
const MODULE_LEN: usize = 0x214e10;

fn kernel_present() -> bool {
    if Path::new(KERNEL).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{KERNEL} is not installed (run tests/xen/install-deps.sh): the reference values are \
         for that kernel"
    );
    eprintln!("SKIPPED: {KERNEL} is not installed (the reference values are for that kernel)");
    false
}

fn plan(module: &Path, json: bool) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pvbuild"));
    c.args(["plan", "--type", "pvh", "--memory", "256", "--vcpus", "2"])
        .args(["--cmdline", CMDLINE, "--ramdisk"])
        .arg(module);
    if json {
        c.arg("--json");
    }
    let out = c.arg(KERNEL).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What follows `xc_dom_load_acpi: ` on each line of a libxenguest-style log.
fn acpi_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            l.split_once("xc_dom_load_acpi: ")
                .map(|(_, r)| r.to_owned())
        })
        .collect()
}

fn hexval(v: &serde_json::Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {v}"));
    u64::from_str_radix(s.strip_prefix("0x").unwrap(), 16).unwrap()
}

#[test]
fn pvh_json_matches_xl_and_the_text() {
    if !kernel_present() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("pvbuild-pvh-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Not gzip: loaded as it is, its segment the file's length.
    let module = dir.join("module.bin");
    std::fs::write(&module, vec![0x5au8; MODULE_LEN]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&plan(&module, true)).unwrap();
    let seg = |k: &str| {
        (
            hexval(&v[k]["start"]),
            hexval(&v[k]["end"]),
            hexval(&v[k]["pfn"]),
            v[k]["pages"].as_u64().unwrap(),
        )
    };
    assert_eq!(v["guest_type"], "hvm-3.0-x86_32");
    assert_eq!(v["type"], "pvh");
    assert_eq!(v["memory_mib"], 256);
    assert_eq!(v["vcpus"], 2);
    assert_eq!(v["cmdline"], CMDLINE);
    // xl's log: "xc_dom_mem_init: 0x10000 pages", "range: start=0x0 end=0x10000000".
    assert_eq!(v["nr_pages"], 0x10000);
    assert_eq!(
        v["memory"]["ranges"],
        serde_json::json!([{ "start": "0x0", "end": "0x10000000" }])
    );
    // xl's log: the kernel, the start info, virt_alloc_end, the module.
    assert_eq!(seg("kernel"), (0x1000000, 0x4a00000, 0x1000, 0x3a00));
    assert_eq!(seg("start_info"), (0x4a00000, 0x4a00910, 0x4a00, 1));
    assert_eq!(hexval(&v["virt_end"]), 0x4a01000);
    assert_eq!(seg("ramdisk"), (0x4a01000, 0x4c15e10, 0x4a01, 0x215));
    // xl's boot vcpu (xen-hvmctx): rip 0x1000850.
    assert_eq!(hexval(&v["phys32_entry"]), 0x1000850);
    // The special pages below 0xff000000 (X86_HVM_END_SPECIAL_REGION): the console's is the
    // last (SPECIALPAGE_CONSOLE 7), the xenstore's the fifth (4).
    assert_eq!(seg("console"), (0xfefff000, 0xff000000, 0xfefff, 1));
    assert_eq!(seg("xenstore"), (0xfeffc000, 0xfeffd000, 0xfeffc, 1));
    // The text's own lines say the same: the ACPI modules and the memory map.
    let text = plan(&module, false);
    let acpi = acpi_lines(&text);
    let from_json: Vec<String> = v["acpi"]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} bytes at address {:x}",
                m["bytes"],
                hexval(&m["address"])
            )
        })
        .collect();
    assert_eq!(acpi, from_json);
    // ... and where xl put them: with libacpi's DSDT the tables take xl's 7 pages and the
    // RSDP follows them.
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/xen/reference/xl-vvv-pvh-6.1.0-57-amd64.log"
    ))
    .unwrap();
    let xl_acpi = acpi_lines(&reference);
    assert_eq!(xl_acpi.len(), 3, "the reference log's ACPI lines");
    assert_eq!(acpi, xl_acpi, "the ACPI modules, against xl's");
    let map: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("memory map       : ").map(str::to_owned))
        .collect();
    let from_json: Vec<String> = v["memory_map"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{:#012x} + {:#x} type {}",
                hexval(&e["addr"]),
                hexval(&e["size"]),
                e["type"]
            )
        })
        .collect();
    assert_eq!(map.len(), 5, "{text}");
    assert_eq!(map, from_json);
    assert_eq!(
        hexval(&v["acpi"]["rsdp"]),
        hexval(&v["acpi"]["modules"][0]["address"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

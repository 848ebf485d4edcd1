//! Starts or stops the device model of an existing, paused HVM domain with pvbuild's
//! `devmodel::hvm` (the harness's proof of it before the HVM create uses it: scenario
//! `pvbuild-hvm-dm`). Not part of the `pvbuild` command.
//!
//! `hvm_dm start CONFIG DOMID`: QEMU as libxl starts it for CONFIG's guest, waited for
//! (`running` and the QMP post-config), left running; prints `pid N` and its argv.
//! `hvm_dm stop DOMID`: stops it as `pvbuild destroy` does.

use std::path::PathBuf;
use std::process::ExitCode;

use pvbuild::config::{parse, parse_disk_spec, parse_long, Value, XlConfig};
use pvbuild::devmodel::{self, hvm};
use pvbuild::xenstore::XsConnection;

fn atom<'a>(c: &'a XlConfig, k: &str) -> Option<&'a str> {
    match &c.get(k)?.value {
        Value::Atom(a) => Some(a),
        Value::List(_) => None,
    }
}

fn num(c: &XlConfig, k: &str) -> Option<u64> {
    atom(c, k)
        .and_then(parse_long)
        .and_then(|v| u64::try_from(v).ok())
}

fn start(cfg_path: &str, domid: u32) -> Result<(), String> {
    let text = std::fs::read(cfg_path).map_err(|e| format!("{cfg_path}: {e}"))?;
    let c = parse(&text).map_err(|e| e.to_string())?;
    let dm = hvm::HvmDm::from_xl(&c).map_err(|e| e.to_string())?;
    let name = atom(&c, "name").ok_or("no name")?.to_owned();
    let memory = num(&c, "memory").ok_or("no memory")?;
    let maxmem = num(&c, "maxmem").unwrap_or(memory);
    let vcpus = u32::try_from(num(&c, "vcpus").unwrap_or(1)).map_err(|e| e.to_string())?;
    let max_vcpus = u32::try_from(num(&c, "maxvcpus").unwrap_or(u64::from(vcpus)))
        .map_err(|e| e.to_string())?;
    let disks = match c.get("disk").map(|s| &s.value) {
        Some(Value::List(l)) => l
            .iter()
            .map(|d| parse_disk_spec(d).map(|s| hvm::EmulatedDisk::from_spec(&s)))
            .collect::<Result<Vec<_>, _>>()?,
        _ => Vec::new(),
    };
    let args = hvm::HvmArgs {
        dm,
        max_memkb: maxmem * 1024,
        vcpus,
        max_vcpus,
        acpi: num(&c, "acpi").is_none_or(|v| v != 0),
        mmio_hole_memkb: 0,
        kernel: atom(&c, "kernel").map(PathBuf::from),
        ramdisk: atom(&c, "ramdisk").map(PathBuf::from),
        cmdline: atom(&c, "cmdline").or(atom(&c, "extra")).map(str::to_owned),
        disks,
        nics: Vec::new(),
    };
    hvm::check(&args).map_err(|e| e.to_string())?;
    let req = hvm::request(None, domid, &name, args);
    let xs = XsConnection::open().map_err(|e| e.to_string())?;
    let dm = devmodel::launch(&xs, &req).map_err(|e| e.to_string())?;
    println!("pid {}", dm.pid);
    // Dropped: QEMU keeps running, as after a create.
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [_, "start", cfg, domid] => domid
            .parse()
            .map_err(|_| format!("bad domid {domid}"))
            .and_then(|d| start(cfg, d)),
        [_, "stop", domid] => domid
            .parse()
            .map_err(|_| format!("bad domid {domid}"))
            .and_then(|d| {
                let xs = XsConnection::open().map_err(|e| e.to_string())?;
                devmodel::stop_for_domain(&xs, d).map(|p| println!("stopped {p:?}"))
            }),
        _ => Err("usage: hvm_dm start CONFIG DOMID | stop DOMID".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

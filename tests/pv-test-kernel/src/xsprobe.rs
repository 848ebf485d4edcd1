//! `pvtk.xsprobe=1`: which xenstore nodes can this guest change? Over its own xenstore ring
//! (start_info's store page) the kernel tries to write, create, remove and re-permission the
//! nodes dom0 trusts, and reports one CHECK line per attempt with what xenstored answered.
//! A protected attempt passes only when refused with EACCES; the controls (reading its own
//! name, writing its own `data/`, and a node the harness made writable for everyone) must
//! succeed, so a probe that could never see a write succeed fails.
//! docs/test-kernel.md "xenstore probe" lists the paths; tests/xen/scenarios/guest-reach.sh
//! checks from dom0 that nothing it trusts changed.

use core::fmt::Write as _;

use crate::m2p::M2p;
use crate::pagetable::Tables;
use crate::report::Report;
use crate::xen::StartInfo;
use crate::xenstore::Page;
use pv_test_kernel::expect::Shown;
use pv_test_kernel::xs::{self, Client, PathBuf, XsError};

/// What the probe writes everywhere: dom0 greps the whole store for it afterwards.
pub const MARK: &[u8] = b"pvtk-probe-wrote";
/// Made writable for every domain by the harness before the probe (the negative control).
pub const OPEN_NODE: &str = "/local/domain/0/pvtk-probe/open";
/// Must not exist after the probe.
pub const MKDIR_NODE: &str = "/local/domain/0/pvtk-probe-mkdir";

/// A request's outcome, for the CHECK line.
struct Outcome(Result<(), XsError>);

impl core::fmt::Display for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Ok(()) => f.write_str("OK (accepted)"),
            Err(e) => write!(f, "{e}"),
        }
    }
}

fn refused(res: &Result<(), XsError>) -> bool {
    matches!(res, Err(XsError::Errno(e)) if e.is("EACCES"))
}

fn deny(r: &mut Report, name: &str, op: &str, path: &PathBuf, res: Result<(), XsError>) {
    let ok = refused(&res) && !path.overflowed();
    r.check(
        name,
        ok,
        format_args!(
            "op={op} path={} -> {} (want EACCES)",
            Shown(path.as_bytes()),
            Outcome(res)
        ),
    );
}

pub fn run(r: &mut Report, si: &StartInfo, tables: Option<&Tables>, m2p: &M2p, other: Option<u64>) {
    let va = match crate::ring_va(si, si.store_mfn, tables, m2p) {
        Ok(va) => va,
        Err(e) => {
            r.check("xs.ring", false, format_args!("{e}"));
            return;
        }
    };
    // SAFETY: ring_va checked that va maps the store frame writable; only this client uses it.
    let mut c = Client::new(unsafe { Page::new(va, si.store_evtchn) });

    let mut buf = [0u8; 128];
    let domid = match c.read(b"domid", &mut buf) {
        Ok(v) => xs::parse_domid(v).ok_or(Shown(v).to_buf()),
        Err(e) => Err(xs::path(format_args!("{e}"))),
    };
    let d = match domid {
        Ok(d) => {
            r.check(
                "xs.ring",
                true,
                format_args!("at {va:#x} evtchn={}: read domid={d}", si.store_evtchn),
            );
            d
        }
        Err(why) => {
            r.check("xs.ring", false, format_args!("read domid: {why:?}"));
            return;
        }
    };
    let mut vmbuf = [0u8; 128];
    let vm = match c.read(b"vm", &mut vmbuf) {
        Ok(v) if v.starts_with(b"/vm/") && v.len() < 100 => xs::path(format_args!("{}", Shown(v))),
        other => {
            r.check(
                "xs.vm",
                false,
                format_args!("own vm node: {:?}", other.map(Shown)),
            );
            PathBuf::default()
        }
    };
    let under_vm = |leaf: &str| {
        if vm.as_bytes().is_empty() {
            PathBuf::default()
        } else {
            xs::path(format_args!("{vm:?}/{leaf}"))
        }
    };

    // Positive controls.
    let mut name_before = [0u8; 128];
    let own_name = xs::path(format_args!("/local/domain/{d}/name"));
    let rel = c
        .read(b"name", &mut buf)
        .map(|v| xs::path(format_args!("{}", Shown(v))));
    let abs = c
        .read(own_name.as_bytes(), &mut name_before)
        .map(|v| xs::path(format_args!("{}", Shown(v))));
    r.check(
        "xs.control.read_name",
        matches!((&rel, &abs), (Ok(a), Ok(b)) if a.as_bytes() == b.as_bytes() && !a.as_bytes().is_empty()),
        format_args!("name={:?} {own_name:?}={:?}", rel, abs),
    );
    let probe = xs::path(format_args!("/local/domain/{d}/data/probe"));
    let wrote = c.write(probe.as_bytes(), MARK);
    let back = c.read(probe.as_bytes(), &mut buf).map(|v| v == MARK);
    r.check(
        "xs.control.write_data",
        wrote.is_ok() && back == Ok(true),
        format_args!(
            "op=write path={probe:?} -> {}; read back equal: {:?}",
            Outcome(wrote),
            back
        ),
    );
    let open = xs::path(format_args!("{OPEN_NODE}"));
    let res = c.write(open.as_bytes(), MARK);
    r.check(
        "xs.control.open_node",
        res.is_ok(),
        format_args!(
            "op=write path={open:?} -> {} (the harness made it writable: must be accepted)",
            Outcome(res)
        ),
    );

    // Protected writes: each node exists (created by the toolstack) unless said otherwise.
    let own = |leaf: &str| xs::path(format_args!("/local/domain/{d}/{leaf}"));
    let be = |leaf: &str| xs::path(format_args!("/local/domain/0/backend/console/{d}/0/{leaf}"));
    let mut targets: [(&str, PathBuf); 17] = [
        ("xs.deny.own_name", own("name")),
        ("xs.deny.own_domid", own("domid")),
        ("xs.deny.own_vm", own("vm")),
        ("xs.deny.own_memory_target", own("memory/target")),
        ("xs.deny.own_store_port", own("store/port")),
        ("xs.deny.own_console_backend", own("console/backend")),
        ("xs.deny.own_console_ring_ref", own("console/ring-ref")),
        // Not existing: creating under dom0-owned directories.
        ("xs.deny.own_new_node", own("pvtk-new")),
        ("xs.deny.own_fake_vbd", own("device/vbd/51712/backend")),
        ("xs.deny.backend_console_state", be("state")),
        ("xs.deny.backend_console_frontend", be("frontend")),
        (
            "xs.deny.dom0_name",
            xs::path(format_args!("/local/domain/0/name")),
        ),
        ("xs.deny.vm_name", under_vm("name")),
        ("xs.deny.vm_uuid", under_vm("uuid")),
        (
            "xs.deny.libxl_type",
            xs::path(format_args!("/libxl/{d}/type")),
        ),
        (
            "xs.deny.libxl_console_backend",
            xs::path(format_args!("/libxl/{d}/device/console/0/backend")),
        ),
        ("xs.deny.other_data", PathBuf::default()),
    ];
    if let Some(o) = other {
        if let Some(last) = targets.last_mut() {
            last.1 = xs::path(format_args!("/local/domain/{o}/data/x"));
        }
    }
    for (name, path) in targets.iter() {
        if path.as_bytes().is_empty() {
            r.skip(
                name,
                format_args!("no path (no pvtk.xsprobe_other=DOMID, or no vm node)"),
            );
            continue;
        }
        let res = c.write(path.as_bytes(), MARK);
        deny(r, name, "write", path, res);
    }
    if let Some(o) = other {
        let p = xs::path(format_args!("/local/domain/{o}/name"));
        let res = c.write(p.as_bytes(), MARK);
        deny(r, "xs.deny.other_name", "write", &p, res);
    }

    // Other operations on dom0-owned nodes.
    let mut perm = PathBuf::default();
    let _ = write!(perm, "b{d}");
    let res = c.set_perms(own_name.as_bytes(), perm.as_bytes());
    deny(
        r,
        "xs.deny.setperms_own_name",
        "set_perms b<own>",
        &own_name,
        res,
    );
    let dom0_name = xs::path(format_args!("/local/domain/0/name"));
    let res = c.set_perms(dom0_name.as_bytes(), perm.as_bytes());
    deny(
        r,
        "xs.deny.setperms_dom0_name",
        "set_perms b<own>",
        &dom0_name,
        res,
    );
    let res = c.rm(own_name.as_bytes());
    deny(r, "xs.deny.rm_own_name", "rm", &own_name, res);
    let own_console = own("console");
    let res = c.rm(own_console.as_bytes());
    deny(r, "xs.deny.rm_own_console", "rm", &own_console, res);
    let mk = xs::path(format_args!("{MKDIR_NODE}"));
    let res = c.mkdir(mk.as_bytes());
    deny(r, "xs.deny.mkdir_dom0", "mkdir", &mk, res);

    // Not a verdict, a fact to compare with xl: may the guest remove a node it owns under a
    // directory dom0 owns (its frontend directories are such nodes)?
    let sysrq = own("control/sysrq");
    let res = c.rm(sysrq.as_bytes());
    crate::println!(
        "INFO xs.rm_owned_child op=rm path={sysrq:?} -> {}",
        Outcome(res)
    );

    // The name is still there, unchanged.
    let mut name_after = [0u8; 128];
    let after = c
        .read(own_name.as_bytes(), &mut name_after)
        .map(|v| v.len());
    let same = match (&abs, after) {
        (Ok(b), Ok(n)) => name_after.get(..n) == Some(b.as_bytes()),
        _ => false,
    };
    r.check(
        "xs.control.name_intact",
        same,
        format_args!(
            "{own_name:?} still {:?}",
            after.map(|n| xs::path(format_args!(
                "{}",
                Shown(name_after.get(..n).unwrap_or(&[]))
            )))
        ),
    );
}

trait ToBuf {
    fn to_buf(&self) -> PathBuf;
}

impl ToBuf for Shown<'_> {
    fn to_buf(&self) -> PathBuf {
        xs::path(format_args!("bad domid \"{self}\""))
    }
}

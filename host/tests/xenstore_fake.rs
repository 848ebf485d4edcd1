//! The xenstore client and the domain entries against the in-process fake xenstored.

// Test code: panicking on unexpected results is the point (clippy.toml allows it in #[test]
// functions; this covers the helpers too).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, UNIX_EPOCH};

use pvbuild::xenstore::fake::FakeXenstore;
use pvbuild::xenstore::wire::{self, Errno, MsgType};
use pvbuild::xenstore::{
    claim_name, list_domains, remove_domain, rename_domain, write_new_domain,
    write_new_domain_claimed, Access, DomainXsError, GuestKind, NewDomain, Perm, Ring, Uuid, Vbd,
    Vif, XsError,
};

fn domain(domid: u32, name: &str) -> NewDomain {
    NewDomain {
        stub_console_output: None,
        domid,
        name: name.into(),
        uuid: Uuid::parse_str("6b1c3bd2-0b1f-4c32-9d3c-1f6a4c2b9e01").unwrap(),
        max_memkb: 262_144,
        target_memkb: 262_144,
        max_vcpus: 2,
        avail_vcpus: 1,
        store: Ring {
            mfn: 0x12345,
            port: 1,
        },
        console: Ring {
            mfn: 0x12346,
            port: 2,
        },
        backend_domid: 0,
        kernel: "/boot/vmlinuz-6.1.0-56-amd64".into(),
        ramdisk: Some("/tmp/initrd.gz".into()),
        cmdline: Some("console=hvc0 quiet".into()),
        start_time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
        disks: vec![],
        guest: GuestKind::Pv {
            protocol: "x86_64-abi",
        },
        vifs: Vec::new(),
    }
}

#[test]
fn basic_operations() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    xs.write("/a/b/c", "v").unwrap();
    assert_eq!(xs.read("/a/b/c").unwrap(), "v");
    assert_eq!(xs.read("/a/b").unwrap(), "");
    assert_eq!(xs.directory("/a").unwrap(), vec!["b"]);
    assert!(xs.read("/nope").unwrap_err().is_not_found());
    assert_eq!(xs.read_opt("/nope").unwrap(), None);
    xs.mkdir("/m").unwrap();
    xs.set_perms(
        "/m",
        &[Perm::new(5, Access::None), Perm::new(0, Access::Read)],
    )
    .unwrap();
    assert_eq!(
        xs.get_perms("/m").unwrap(),
        vec![Perm::new(5, Access::None), Perm::new(0, Access::Read)]
    );
    xs.rm("/a").unwrap();
    assert!(xs.read("/a/b/c").unwrap_err().is_not_found());
    assert_eq!(xs.get_domain_path(7).unwrap(), "/local/domain/7");
    // Refused before sending.
    assert!(matches!(xs.write("", "x"), Err(XsError::Request { .. })));
    assert!(matches!(
        xs.write(&"/x".repeat(3000), "x"),
        Err(XsError::Request { .. })
    ));
}

#[test]
fn xenstore_rs_traits_work_on_the_connection() {
    use xenstore_rs::{Xs, XsTransaction, XsTransactionSpan};
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    Xs::write(&xs, "/t/k", "1").unwrap();
    assert_eq!(&*Xs::read(&xs, "/t/k").unwrap(), "1");
    let conn = &xs;
    let span = conn.transaction().unwrap();
    Xs::write(&span, "/t/k", "2").unwrap();
    XsTransactionSpan::commit(span).unwrap();
    assert_eq!(xs.read("/t/k").unwrap(), "2");
    let e = Xs::read(&xs, "/missing").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn transactions_isolate_and_retry_on_eagain() {
    let fake = FakeXenstore::new();
    let a = fake.connect();
    let b = fake.connect();
    // A conflicting writer makes the first commit fail with EAGAIN; the body runs again.
    let mut runs = 0;
    a.with_transaction(|t| {
        runs += 1;
        let v = t.read_opt("/counter")?.unwrap_or_default();
        if runs == 1 {
            b.write("/counter", "from-b").unwrap();
        }
        t.write("/counter", &format!("{v}+a"))
    })
    .unwrap();
    assert_eq!(runs, 2);
    assert_eq!(a.transaction_retries(), 1);
    assert_eq!(a.read("/counter").unwrap(), "from-b+a");
    // Injected EAGAINs are retried too.
    fake.eagain_next_commits(5);
    a.with_transaction(|t| t.write("/x", "1")).unwrap();
    assert_eq!(a.read("/x").unwrap(), "1");
    // A body error aborts: nothing written, no transaction left open.
    let r: Result<(), _> = a.with_transaction(|t| {
        t.write("/y", "1")?;
        t.read("/does/not/exist").map(|_| ())
    });
    assert!(r.unwrap_err().is_not_found());
    assert!(a.read_opt("/y").unwrap().is_none());
    assert_eq!(fake.open_transactions(), 0);
    // Endless conflicts end in an error, not a hang.
    fake.eagain_next_commits(u32::MAX);
    assert!(matches!(
        a.with_transaction(|t| t.write("/z", "1")),
        Err(XsError::TooManyRetries(_))
    ));
}

#[test]
fn watches_deliver_events_across_connections() {
    let fake = FakeXenstore::new();
    let w = fake.connect();
    let other = fake.connect();
    w.watch("/local/domain/3/console/tty", "tty").unwrap();
    let first = w.next_event(Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(first.token, "tty");
    assert_eq!(w.next_event(Some(Duration::ZERO)).unwrap(), None);
    other
        .write("/local/domain/3/console/tty", "/dev/pts/9")
        .unwrap();
    // An event that arrives while a request waits for its reply is queued, not lost.
    w.write("/unrelated", "x").unwrap();
    let ev = w.next_event(Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(ev.path, "/local/domain/3/console/tty");
    w.unwatch("/local/domain/3/console/tty", "tty").unwrap();
}

#[test]
fn new_domain_entries_match_libxl() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    let d = domain(5, "guest");
    write_new_domain(&xs, &d).unwrap();
    let s = fake.dump();
    let vm = "/vm/6b1c3bd2-0b1f-4c32-9d3c-1f6a4c2b9e01";
    let expect = [
        ("/local/domain/5/name", "guest"),
        ("/local/domain/5/domid", "5"),
        ("/local/domain/5/vm", vm),
        ("/local/domain/5/memory/static-max", "262144"),
        ("/local/domain/5/memory/target", "262144"),
        ("/local/domain/5/memory/videoram", "0"),
        ("/local/domain/5/cpu/0/availability", "online"),
        ("/local/domain/5/cpu/1/availability", "offline"),
        ("/local/domain/5/store/port", "1"),
        ("/local/domain/5/store/ring-ref", "74565"),
        ("/local/domain/5/console/port", "2"),
        ("/local/domain/5/console/ring-ref", "74566"),
        ("/local/domain/5/console/type", "xenconsoled"),
        ("/local/domain/5/console/output", "pty"),
        ("/local/domain/5/console/limit", "1048576"),
        ("/local/domain/5/console/tty", ""),
        (
            "/local/domain/5/console/backend",
            "/local/domain/0/backend/console/5/0",
        ),
        ("/local/domain/5/console/backend-id", "0"),
        ("/local/domain/5/control/shutdown", ""),
        (
            "/local/domain/5/control/platform-feature-multiprocessor-suspend",
            "1",
        ),
        (
            "/local/domain/5/control/platform-feature-xs_reset_watches",
            "1",
        ),
        ("/local/domain/5/device/suspend/event-channel", ""),
        ("/local/domain/5/data", ""),
        ("/local/domain/5/error", ""),
        (
            "/local/domain/0/backend/console/5/0/frontend",
            "/local/domain/5/console",
        ),
        ("/local/domain/0/backend/console/5/0/frontend-id", "5"),
        ("/local/domain/0/backend/console/5/0/protocol", "vt100"),
        ("/local/domain/0/backend/console/5/0/state", "1"),
        ("/libxl/5/type", "pv"),
        ("/libxl/5/dm-version", "qemu_xen"),
        (
            "/libxl/5/device/console/0/frontend",
            "/local/domain/5/console",
        ),
        (
            "/libxl/5/device/console/0/backend",
            "/local/domain/0/backend/console/5/0",
        ),
        ("/libxl/5/device/console/0/online", "1"),
        (
            &format!("{vm}/uuid"),
            "6b1c3bd2-0b1f-4c32-9d3c-1f6a4c2b9e01",
        ),
        (&format!("{vm}/name"), "guest"),
        (&format!("{vm}/image/ostype"), "linux"),
        (
            &format!("{vm}/image/kernel"),
            "/boot/vmlinuz-6.1.0-56-amd64",
        ),
        (&format!("{vm}/image/ramdisk"), "/tmp/initrd.gz"),
        (&format!("{vm}/image/cmdline"), "console=hvc0 quiet"),
        (&format!("{vm}/start_time"), "1700000000.12"),
    ];
    for (k, v) in expect {
        assert_eq!(s.get(k).map(String::as_str), Some(v), "{k}");
    }
    // Permissions as libxl sets them.
    let ro = vec![Perm::new(0, Access::None), Perm::new(5, Access::Read)];
    let rw = vec![Perm::new(5, Access::None)];
    assert_eq!(fake.perms("/local/domain/5").unwrap(), ro);
    assert_eq!(
        fake.perms("/local/domain/5/name").unwrap(),
        ro,
        "inherits the parent's"
    );
    assert_eq!(fake.perms("/local/domain/5/memory/target").unwrap(), ro);
    assert_eq!(fake.perms("/local/domain/5/control/shutdown").unwrap(), rw);
    assert_eq!(
        fake.perms("/local/domain/5/device/suspend/event-channel")
            .unwrap(),
        rw
    );
    assert_eq!(fake.perms("/local/domain/5/data").unwrap(), rw);
    assert_eq!(fake.perms("/local/domain/5/console").unwrap(), ro);
    assert_eq!(fake.perms("/local/domain/5/console/ring-ref").unwrap(), ro);
    assert_eq!(
        fake.perms("/local/domain/5/console/backend-id").unwrap(),
        vec![Perm::new(5, Access::None), Perm::new(0, Access::Read)]
    );
    assert_eq!(
        fake.perms("/libxl/5").unwrap(),
        vec![Perm::new(0, Access::None)]
    );
    assert_eq!(
        fake.perms("/local/domain/0/backend/console/5/0").unwrap(),
        ro
    );
    // One transaction, then the introduction.
    let log = fake.log();
    let starts = log
        .iter()
        .filter(|(t, _)| *t == MsgType::TransactionStart)
        .count();
    assert_eq!(starts, 1);
    assert_eq!(log.last().unwrap().0, MsgType::Introduce);
    assert_eq!(fake.introduced().get(&5), Some(&(0x12345, 1)));

    // pvbuild list's reader.
    let l = list_domains(&xs).unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!((l[1].domid, l[1].name.as_deref()), (5, Some("guest")));

    // The name is taken now.
    let err = write_new_domain(&xs, &domain(6, "guest")).unwrap_err();
    assert!(
        matches!(err, DomainXsError::NameTaken { domid: 5, .. }),
        "{err}"
    );
    assert!(!fake.dump().contains_key("/local/domain/6"));

    // Removal leaves exactly the store as it was before.
    let before = FakeXenstore::new().dump();
    remove_domain(&xs, 5, None, 0, true).unwrap();
    let after: Vec<_> = fake.dump().into_keys().collect();
    let expected: Vec<_> = before.into_keys().collect();
    assert_eq!(after, expected);
    assert!(fake.introduced().is_empty());
}

#[test]
fn every_failing_request_leaves_nothing_behind() {
    // Count the requests of a successful run, then fail each one in turn.
    let probe = FakeXenstore::new();
    write_new_domain(&probe.connect(), &domain(9, "g")).unwrap();
    let total = probe.requests();
    assert!(total > 50, "{total}");
    let clean = FakeXenstore::new().dump();
    for n in 1..=total {
        let fake = FakeXenstore::new();
        let xs = fake.connect();
        fake.fail_request_in(n, Errno::EIO);
        let r = write_new_domain(&xs, &domain(9, "g"));
        assert!(r.is_err(), "request {n} failing went unnoticed");
        assert_eq!(fake.dump(), clean, "request {n} failing left nodes behind");
        assert!(fake.introduced().is_empty());
        assert_eq!(fake.open_transactions(), 0, "request {n}");
    }
}

#[test]
fn hostile_replies_are_typed_errors() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    let mut huge = wire::encode_raw(MsgType::Read, 1, 0, b"").unwrap();
    huge[12..16].copy_from_slice(&0xffff_fff0u32.to_ne_bytes());
    let cases: Vec<Vec<u8>> = vec![
        huge,
        wire::encode_raw(MsgType::Read, 999, 0, b"x").unwrap(),
        wire::encode_raw(MsgType::Write, 1, 0, b"x").unwrap(),
        wire::encode(MsgType::Error, 1, 0, &[b"EBOGUS"], true).unwrap(),
        wire::encode_raw(MsgType::Read, 1, 0, &[0xff, 0xfe]).unwrap(),
        {
            let mut m = wire::encode_raw(MsgType::Read, 1, 0, b"").unwrap();
            m[0..4].copy_from_slice(&77u32.to_ne_bytes());
            m
        },
        vec![1, 2, 3],
    ];
    for (i, raw) in cases.into_iter().enumerate() {
        let fake = FakeXenstore::new();
        let xs2 = fake.connect();
        // Request ids start at 1 on a fresh connection.
        fake.push_raw_reply(raw);
        let e = xs2.read("/local/domain/0/name").unwrap_err();
        assert!(
            matches!(
                e,
                XsError::Wire { .. } | XsError::Protocol { .. } | XsError::Io { .. }
            ),
            "case {i}: {e:?}"
        );
    }
    // A bad transaction id.
    fake.push_raw_reply(wire::encode(MsgType::TransactionStart, 1, 0, &[b"0"], true).unwrap());
    assert!(matches!(xs.transaction_start(), Err(XsError::Wire { .. })));
}

#[test]
fn wire_constants_match_libxen_dev_header() {
    let Ok(h) = std::fs::read_to_string("/usr/include/xen/io/xs_wire.h") else {
        // In CI a missing prerequisite is a failure, never a silent pass.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libxen-dev's xs_wire.h not installed (tests/xen/install-deps.sh)"
        );
        eprintln!("SKIP: libxen-dev's xs_wire.h not installed");
        return;
    };
    // enum xsd_sockmsg_type, numbered as C does.
    let body = h.split("enum xsd_sockmsg_type").nth(1).unwrap();
    let body = &body[body.find('{').unwrap() + 1..body.find("};").unwrap()];
    let mut values = std::collections::HashMap::new();
    let mut next = 0u32;
    for line in body.lines() {
        let line = line.trim();
        if !line.starts_with("XS_") {
            continue;
        }
        let item = line
            .trim_end_matches(',')
            .split("/*")
            .next()
            .unwrap()
            .trim();
        let (name, v) = match item.split_once('=') {
            Some((n, expr)) => {
                let expr = expr.trim();
                let v = if let Some((base, add)) = expr.split_once('+') {
                    values[base.trim()] + add.trim().parse::<u32>().unwrap()
                } else if let Some(hex) = expr.strip_prefix("0x") {
                    u32::from_str_radix(hex, 16).unwrap()
                } else {
                    expr.parse().unwrap()
                };
                (n.trim().to_owned(), v)
            }
            None => (item.to_owned(), next),
        };
        values.insert(name, v);
        next = v + 1;
    }
    for t in wire::ALL_TYPES {
        assert_eq!(values.get(t.name()), Some(&(t as u32)), "{}", t.name());
    }
    // xsd_errors[] order and names.
    let errs: Vec<&str> = h
        .lines()
        .filter_map(|l| l.trim().strip_prefix("XSD_ERROR(")?.split(')').next())
        .collect();
    let ours: Vec<&str> = wire::ALL_ERRNOS.iter().map(|e| e.name()).collect();
    assert_eq!(errs, ours);
    let define = |name: &str| -> usize {
        h.lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(define("XENSTORE_PAYLOAD_MAX"), wire::PAYLOAD_MAX);
    assert_eq!(define("XENSTORE_ABS_PATH_MAX"), wire::ABS_PATH_MAX);
}

#[test]
fn directory_part_reassembles_long_listings() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    // E2BIG sends the client to XS_DIRECTORY_PART; feed it two parts by hand.
    fake.push_raw_reply(wire::encode(MsgType::Error, 1, 0, &[b"E2BIG"], true).unwrap());
    fake.push_raw_reply(wire::encode_raw(MsgType::DirectoryPart, 2, 0, b"42\0a\0bb\0").unwrap());
    fake.push_raw_reply(wire::encode_raw(MsgType::DirectoryPart, 3, 0, b"42\0ccc\0\0").unwrap());
    assert_eq!(xs.directory("/big").unwrap(), vec!["a", "bb", "ccc"]);
    let log = fake.log();
    assert_eq!(log[1], (MsgType::DirectoryPart, "/big".into()));
    // A server that makes no progress is an error, not a loop.
    fake.push_raw_reply(wire::encode(MsgType::Error, 4, 0, &[b"E2BIG"], true).unwrap());
    fake.push_raw_reply(wire::encode_raw(MsgType::DirectoryPart, 5, 0, b"42\0").unwrap());
    fake.push_raw_reply(wire::encode_raw(MsgType::DirectoryPart, 6, 0, b"42\0").unwrap());
    assert!(xs.directory("/big").is_err());
}

/// Backend keys QEMU writes once it serves the disk (in the recorded tree, not libxl's).
const QEMU_BACKEND_KEYS: &[&str] = &[
    "discard-alignment",
    "discard-granularity",
    "feature-discard",
    "feature-flush-cache",
    "hotplug-status",
    "info",
    "max-ring-page-order",
    "sector-size",
    "sectors",
];

/// A tree `xenstore-ls -fp` printed (`/path = "value"   (n0,r1)` lines): path to value
/// and permissions.
fn recorded_tree(text: &str) -> std::collections::BTreeMap<String, (String, Vec<Perm>)> {
    let parse_perms =
        |p: &str| -> Vec<Perm> { p.split(',').map(|x| Perm::parse(x).unwrap()).collect() };
    let mut want = std::collections::BTreeMap::new();
    for line in text.lines() {
        let (path, rest) = line.split_once(" = \"").unwrap();
        let (value, perms) = rest.rsplit_once('"').unwrap();
        let perms = perms.trim().trim_start_matches('(').trim_end_matches(')');
        want.insert(path.to_owned(), (value.to_owned(), parse_perms(perms)));
    }
    want
}

/// Compares what `fake` holds under the paths `ours` selects with the recorded tree: every
/// recorded node that `ours` selects and `skip` does not must be there with its value and
/// permissions, and nothing else may be. Returns how many nodes were compared.
fn compare_with_recorded(
    fake: &FakeXenstore,
    recorded: &str,
    ours: impl Fn(&str) -> bool,
    skip: impl Fn(&str) -> bool,
) -> usize {
    let want = recorded_tree(recorded);
    let got = fake.dump();
    let mut compared = 0;
    for (path, (value, perms)) in &want {
        if !ours(path) || skip(path) {
            continue;
        }
        assert_eq!(got.get(path), Some(value), "{path}");
        assert_eq!(&fake.perms(path).unwrap(), perms, "perms of {path}");
        compared += 1;
    }
    // Nothing of ours beyond what libxl wrote.
    for path in got.keys().filter(|p| ours(p)) {
        assert!(
            want.contains_key(path),
            "pvbuild writes {path}, libxl does not"
        );
    }
    compared
}

#[test]
fn vbd_entries_match_libxl() {
    // tests/data/xl-qdisk: the tree libxl wrote for domain 1's qdisk disk on real Xen.
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    let mut d = domain(1, "xldisk");
    d.disks = vec![Vbd {
        backend: pvbuild::xenstore::VbdBackend::Qdisk,
        devid: 51712,
        vdev: "xvda".into(),
        params: "aio:/work/main/tests/xen/work/share/results/xl-disk/disk.img".into(),
        readonly: false,
        discard: true,
        trusted: true,
    }];
    write_new_domain(&xs, &d).unwrap();
    let compared = compare_with_recorded(
        &fake,
        include_str!("data/xl-qdisk/xenstore-vbd.txt"),
        |p| {
            p.starts_with("/local/domain/1/device/vbd/")
                || p.starts_with("/local/domain/0/backend/qdisk/")
                || p.starts_with("/libxl/1/device/vbd/")
        },
        |p| {
            let key = p.rsplit('/').next().unwrap();
            p.starts_with("/local/domain/0/backend/qdisk/1/51712/")
                && (QEMU_BACKEND_KEYS.contains(&key) || key == "state")
        },
    );
    assert_eq!(compared, 37, "every libxl-written key compared");
    let got = fake.dump();
    // The backend's state, before QEMU moved it on, is Initialising.
    assert_eq!(
        got.get("/local/domain/0/backend/qdisk/1/51712/state")
            .map(String::as_str),
        Some("1")
    );
    // And it all goes with the domain, the emptied parents too.
    remove_domain(&xs, 1, None, 0, false).unwrap();
    assert_eq!(fake.dump(), FakeXenstore::new().dump());
}

#[test]
fn vif_entries_match_libxl() {
    // tests/data/xl-vif: the tree libxl wrote for domain 1's interface on real Xen.
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    let mut d = domain(1, "xlvif");
    d.vifs = vec![Vif {
        devid: 0,
        mac: "00:16:3e:12:34:56".into(),
        bridge: "xenbr0".into(),
        script: "/etc/xen/scripts/vif-bridge".into(),
        ip: None,
        gatewaydev: None,
        vifname: None,
        rate: None,
        mtu: 1500,
        trusted: true,
        model: None,
    }];
    write_new_domain(&xs, &d).unwrap();
    let be = "/local/domain/0/backend/vif/1/0/";
    // Written by netback (state, features) and by the hotplug script (hotplug-status) once
    // they ran; pvbuild's own values of state and hotplug-status are checked below.
    let theirs = |p: &str| {
        let key = p.rsplit('/').next().unwrap();
        p.starts_with(be)
            && (key.starts_with("feature-")
                || key == "multi-queue-max-queues"
                || key == "state"
                || key == "hotplug-status")
    };
    let compared = compare_with_recorded(
        &fake,
        include_str!("data/xl-vif/xenstore-vif.txt"),
        |p| {
            p.starts_with("/local/domain/1/device/vif")
                || p.starts_with("/local/domain/0/backend/vif")
                || p.starts_with("/libxl/1/device/vif")
        },
        theirs,
    );
    assert_eq!(compared, 33, "every libxl-written key compared");
    let got = fake.dump();
    // Before netback and the script ran: Initialising, and an empty hotplug-status (which
    // makes netback wait for the script).
    assert_eq!(
        got.get(&format!("{be}state")).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        got.get(&format!("{be}hotplug-status")).map(String::as_str),
        Some("")
    );
    // Optional keys appear only when set, as libxl writes them.
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    d.vifs[0].vifname = Some("web0".into());
    d.vifs[0].mtu = 9000;
    d.vifs[0].ip = Some("10.0.0.2".into());
    write_new_domain(&xs, &d).unwrap();
    let got = fake.dump();
    for (k, v) in [("vifname", "web0"), ("mtu", "9000"), ("ip", "10.0.0.2")] {
        assert_eq!(
            got.get(&format!("{be}{k}")).map(String::as_str),
            Some(v),
            "{k}"
        );
    }
    assert_eq!(
        got.get("/local/domain/1/device/vif/0/mtu")
            .map(String::as_str),
        Some("9000")
    );
    // And it all goes with the domain, the emptied parents too.
    remove_domain(&xs, 1, None, 0, false).unwrap();
    assert_eq!(fake.dump(), FakeXenstore::new().dump());
}

#[test]
fn vcpu_availability_as_libxl_sets_it() {
    let store = FakeXenstore::new();
    let xs = store.connect();
    let d = domain(6, "vcpus");
    write_new_domain(&xs, &d).unwrap();
    let avail = |i: u32| {
        xs.read(&format!("/local/domain/6/cpu/{i}/availability"))
            .unwrap()
    };
    // As created: maxvcpus 2, vcpus 1.
    assert_eq!(
        (avail(0).as_str(), avail(1).as_str()),
        ("online", "offline")
    );
    pvbuild::xenstore::set_vcpus_online(&xs, 6, 2, 2).unwrap();
    assert_eq!((avail(0).as_str(), avail(1).as_str()), ("online", "online"));
    pvbuild::xenstore::set_vcpus_online(&xs, 6, 1, 2).unwrap();
    assert_eq!(
        (avail(0).as_str(), avail(1).as_str()),
        ("online", "offline")
    );
}

#[test]
fn a_rename_rewrites_both_names_and_refuses_a_taken_or_stale_one() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    write_new_domain(&xs, &domain(5, "guest")).unwrap();
    write_new_domain(&xs, &domain(6, "other")).unwrap();
    let vm = xs.read("/local/domain/5/vm").unwrap();
    rename_domain(&xs, 5, "guest", "renamed").unwrap();
    assert_eq!(xs.read("/local/domain/5/name").unwrap(), "renamed");
    assert_eq!(xs.read(&format!("{vm}/name")).unwrap(), "renamed");
    // Another domain's name, dom0's among them: refused, nothing changed.
    for taken in ["other", "Domain-0"] {
        let err = rename_domain(&xs, 5, "renamed", taken).unwrap_err();
        assert!(matches!(err, DomainXsError::NameTaken { .. }), "{err}");
    }
    // Not (any more) named what it was looked up by.
    let err = rename_domain(&xs, 5, "guest", "third").unwrap_err();
    assert!(matches!(err, DomainXsError::Renamed { .. }), "{err}");
    // Invalid names and dom0 itself.
    for bad in ["", "a\nb", "../../etc/evil", "a/b", "..", "x..y"] {
        let err = rename_domain(&xs, 5, "renamed", bad).unwrap_err();
        assert!(matches!(err, DomainXsError::BadName(_)), "{err}");
    }
    assert!(matches!(
        rename_domain(&xs, 0, "Domain-0", "x"),
        Err(DomainXsError::BadDomid(0))
    ));
    assert_eq!(xs.read("/local/domain/5/name").unwrap(), "renamed");
    assert_eq!(xs.read(&format!("{vm}/name")).unwrap(), "renamed");
    // Its own name again is fine (as libxl).
    rename_domain(&xs, 5, "renamed", "renamed").unwrap();
}

/// An HVM guest's entries beyond a PVH guest's, against the tree xl wrote for one on real Xen
/// (tests/xen/reference/xl-hvm-xenstore-*.txt, domain 2, QEMU running): libxl__domain_make's
/// `control/feature-s3` and `feature-s4`, and the virtual keyboard libxl adds to every HVM
/// guest (QEMU's backend `vkbd`, device 0). QEMU's own backend keys are left out.
#[test]
fn hvm_control_features_and_vkbd_match_libxl() {
    let recorded = include_str!("../../tests/xen/reference/xl-hvm-xenstore-6.1.0-57-amd64.txt");
    // The recorded tree has the guest's and libxl's nodes, not dom0's backend directory
    // (checked below, with the keys QEMU had not written yet).
    let ours = |p: &str| {
        (p.contains("/vkbd") || p.starts_with("/local/domain/2/control/feature-s"))
            && !p.starts_with("/local/domain/0/")
    };
    let qemus = |_: &str| false;
    let want: std::collections::BTreeMap<&str, &str> = recorded
        .lines()
        .filter_map(|l| l.split_once(" = \""))
        .map(|(p, v)| (p, v.trim_end_matches('"')))
        .filter(|(p, _)| ours(p) && !qemus(p))
        .collect();
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    let mut d = domain(2, "xlhvmnone");
    d.guest = GuestKind::Hvm;
    write_new_domain(&xs, &d).unwrap();
    let got = fake.dump();
    let mine: std::collections::BTreeMap<&str, &str> = got
        .iter()
        .map(|(p, v)| (p.as_str(), v.as_str()))
        .filter(|(p, _)| ours(p) && !qemus(p))
        .collect();
    assert_eq!(mine, want);
    assert_eq!(want.len(), 3 + 7 + 5, "the recorded keys");
    // The backend as libxl__device_add writes it (QEMU adds its features, hotplug-status and
    // state 2: the harness's built-memory-hvm compares the whole tree with xl's).
    let be: Vec<(&str, &str)> = got
        .iter()
        .filter(|(p, _)| p.starts_with("/local/domain/0/backend/vkbd/2/0/"))
        .map(|(p, v)| (p.rsplit('/').next().unwrap(), v.as_str()))
        .collect();
    assert_eq!(
        be,
        [
            ("frontend", "/local/domain/2/device/vkbd/0"),
            ("frontend-id", "2"),
            ("online", "1"),
            ("state", "1")
        ]
    );
    // libxl's permissions: the guest's control nodes and the frontend its own, readable by
    // the backend; the backend dom0's, readable by the guest.
    let mine_rw = vec![Perm::new(2, Access::None)];
    assert_eq!(
        fake.perms("/local/domain/2/control/feature-s3").unwrap(),
        mine_rw
    );
    assert_eq!(
        fake.perms("/local/domain/2/device/vkbd/0").unwrap(),
        vec![Perm::new(2, Access::None), Perm::new(0, Access::Read)]
    );
    assert_eq!(
        fake.perms("/local/domain/0/backend/vkbd/2/0").unwrap(),
        vec![Perm::new(0, Access::None), Perm::new(2, Access::Read)]
    );
    // A PVH guest has neither.
    let mut p = domain(3, "pvh");
    p.uuid = Uuid::parse_str("6b1c3bd2-0b1f-4c32-9d3c-1f6a4c2b9e03").unwrap();
    p.guest = GuestKind::Pvh;
    write_new_domain(&xs, &p).unwrap();
    let got = fake.dump();
    for k in [
        "/local/domain/3/control/feature-s3",
        "/local/domain/3/control/feature-s4",
        "/local/domain/3/device/vkbd",
        "/libxl/3/device/vkbd",
        "/local/domain/0/backend/vkbd/3",
    ] {
        assert!(!got.contains_key(k), "{k}");
    }
    // And it all goes with the domain, the emptied backend parents too.
    remove_domain(&xs, 2, None, 0, false).unwrap();
    remove_domain(&xs, 3, None, 0, false).unwrap();
    assert_eq!(fake.dump(), FakeXenstore::new().dump());
}

/// The name claimed before the build, in the transaction that writes the entries after it:
/// the same tree as `write_new_domain`, a taken name refused at the claim, and a domain of the
/// same name made while the claimed domain was built refused at the write (the commit fails,
/// the name is checked again in a new transaction), with nothing of the claimed domain left.
#[test]
fn a_claimed_name_is_checked_once_and_a_name_taken_meanwhile_still_refused() {
    // The same tree either way.
    let plain = FakeXenstore::new();
    write_new_domain(&plain.connect(), &domain(5, "g")).unwrap();
    let claimed = FakeXenstore::new();
    let xs = claimed.connect();
    let c = claim_name(&xs, "g").unwrap();
    write_new_domain_claimed(&xs, c, &domain(5, "g")).unwrap();
    assert_eq!(claimed.dump(), plain.dump());

    // Taken before the claim.
    let e = claim_name(&xs, "g").unwrap_err();
    assert!(
        matches!(e, DomainXsError::NameTaken { domid: 5, .. }),
        "{e}"
    );

    // Taken while the claimed domain was built.
    let store = FakeXenstore::new();
    let xs = store.connect();
    let other = store.connect();
    let c = claim_name(&xs, "h").unwrap();
    write_new_domain(&other, &domain(9, "h")).unwrap();
    let e = write_new_domain_claimed(&xs, c, &domain(6, "h")).unwrap_err();
    assert!(
        matches!(e, DomainXsError::NameTaken { domid: 9, .. }),
        "{e}"
    );
    assert!(xs.read_opt("/local/domain/6/name").unwrap().is_none());
}

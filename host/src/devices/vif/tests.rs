use super::*;
use crate::config::parse_vif_spec;

fn specs(list: &[&str]) -> Vec<VifSpec> {
    list.iter().map(|s| parse_vif_spec(s).unwrap()).collect()
}

fn counter() -> impl FnMut() -> [u8; 3] {
    let mut n = 0u8;
    move || {
        n += 1;
        [0x80 | n, n, n]
    }
}

#[test]
fn libxl_defaults() {
    let v = plan_vifs(
        &specs(&[
            "",
            "mac=00:16:3e:00:00:01,bridge=br1,script=/bin/true,mtu=9000,untrusted",
        ]),
        counter(),
    )
    .unwrap();
    assert_eq!(
        v[0],
        Vif {
            devid: 0,
            // The fourth byte's top bit cleared, as libxl does.
            mac: "00:16:3e:01:01:01".into(),
            bridge: "xenbr0".into(),
            script: "/etc/xen/scripts/vif-bridge".into(),
            ip: None,
            gatewaydev: None,
            vifname: None,
            rate: None,
            mtu: 1500,
            trusted: true,
            model: None,
        }
    );
    assert_eq!(
        (
            v[1].devid,
            v[1].mac.as_str(),
            v[1].bridge.as_str(),
            v[1].script.as_str(),
            v[1].mtu,
            v[1].trusted
        ),
        (1, "00:16:3e:00:00:01", "br1", "/bin/true", 9000, false)
    );
    assert_eq!(script_path(Some("vif-route")), "/etc/xen/scripts/vif-route");
}

#[test]
fn refusals() {
    assert_eq!(
        plan_vifs(&specs(&["devid=1", ""]), counter()),
        Err(VifError::DuplicateDevid {
            index: 1,
            devid: 1,
            first: 0
        })
    );
    assert_eq!(
        plan_vifs(
            &specs(&["mac=00:16:3e:00:00:01", "mac=00:16:3E:00:00:01"]),
            counter()
        ),
        Err(VifError::DuplicateMac {
            index: 1,
            mac: "00:16:3e:00:00:01".into(),
            first: 0
        })
    );
    assert!(matches!(
        plan_vifs(&specs(&["backend=driverdom"]), counter()),
        Err(VifError::Unsupported { index: 0, .. })
    ));
    assert!(plan_vifs(&specs(&["backend=0"]), counter()).is_ok());
    // libxl writes the rate as `<bytes per interval>,<interval usecs>`.
    let v = plan_vifs(&specs(&["rate=10MB/s@20ms"]), counter()).unwrap();
    assert_eq!(v[0].rate.as_deref(), Some("200000,20000"));
}

#[test]
fn script_environment_is_libxls() {
    let h = Hotplug {
        script: "/etc/xen/scripts/vif-bridge".into(),
        domid: 7,
        devid: 2,
        gatewaydev: None,
        vifname: None,
        tap: None,
        for_tap: false,
    };
    assert_eq!(h.args(HotplugAction::Online), ["online", "type_if=vif"]);
    assert_eq!(h.args(HotplugAction::Offline), ["offline", "type_if=vif"]);
    let env = h.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        env,
        [
            ("script", "/etc/xen/scripts/vif-bridge"),
            ("XENBUS_TYPE", "vif"),
            ("XENBUS_PATH", "backend/vif/7/2"),
            ("XENBUS_BASE_PATH", "backend"),
            ("netdev", ""),
            ("vif", "vif7.2"),
        ]
    );
}

/// Interface `devid` of domain 3, plugged by `script`.
fn hotplug(script: String, devid: u32) -> Hotplug {
    Hotplug {
        script,
        domid: 3,
        devid,
        gatewaydev: None,
        vifname: None,
        tap: None,
        for_tap: false,
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    // Unique per call: tests run in parallel and each removes its own.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("pvbuild-vif-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn script(dir: &Path, body: &str) -> String {
    let p = dir.join("script");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn runs_the_script_with_its_arguments_and_environment() {
    let d = temp_dir("run");
    let out = d.join("out");
    let s = script(
        &d,
        &format!(
            "echo \"$1 $2 $XENBUS_PATH $vif $netdev\" > {}",
            out.display()
        ),
    );
    let h = Hotplug {
        script: s,
        domid: 3,
        devid: 0,
        gatewaydev: Some("eth0".into()),
        vifname: None,
        tap: None,
        for_tap: false,
    };
    h.run(HotplugAction::Online, Duration::from_secs(20), None)
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "online type_if=vif backend/vif/3/0 vif3.0 eth0\n"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_failing_script_reports_its_last_line() {
    let d = temp_dir("fail");
    let s = script(
        &d,
        "echo starting; echo 'Could not find bridge device xenbr9' >&2; exit 1",
    );
    let h = hotplug(s, 1);
    let e = h
        .run(HotplugAction::Online, Duration::from_secs(20), None)
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("vif3.1: hotplug script online: "), "{msg}");
    assert!(
        msg.ends_with("Could not find bridge device xenbr9"),
        "{msg}"
    );
    // Bounded output: a flood is read to the end without keeping it.
    let s = script(&d, "yes | head -c 10000000; exit 2");
    let h = hotplug(s, 1);
    assert!(h
        .run(HotplugAction::Offline, Duration::from_secs(20), None)
        .is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_hanging_script_is_killed_with_its_children() {
    let d = temp_dir("hang");
    let pidfile = d.join("pid");
    let s = script(
        &d,
        &format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
    );
    let h = hotplug(s, 0);
    let e = h
        .run(HotplugAction::Online, Duration::from_secs(1), None)
        .unwrap_err();
    assert!(e.to_string().ends_with("still running after 1 s"), "{e}");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The grandchild was in the script's group: gone (or a zombie reaped by init soon).
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z'))
        })
    };
    let t = Instant::now();
    while !gone() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(), "sleep {pid} survived");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn ctrl_c_stops_a_plugging_script_but_not_an_unplugging_one() {
    let d = temp_dir("interrupt");
    let s = script(&d, "sleep 1; echo done > \"$(dirname \"$0\")/ran\"");
    let h = hotplug(s, 0);
    crate::support::interrupt::set_for_test(true);
    let t = Instant::now();
    let e = h
        .run(HotplugAction::Online, Duration::from_secs(30), None)
        .unwrap_err();
    assert!(e.to_string().ends_with("interrupted"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        !d.join("ran").exists(),
        "the plugging script ran to its end"
    );
    // The undo (offline) runs to its end, interrupt or not.
    h.run(HotplugAction::Offline, Duration::from_secs(30), None)
        .unwrap();
    crate::support::interrupt::set_for_test(false);
    assert!(d.join("ran").exists(), "the unplugging script was stopped");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn host_checks() {
    let d = temp_dir("host");
    let netback = d.join("netback");
    let net = d.join("net");
    std::fs::create_dir_all(net.join("xenbr0")).unwrap();
    std::fs::create_dir_all(net.join("eth1/bridge")).unwrap();
    let mut v = plan_vifs(&specs(&[""]), counter()).unwrap();
    v[0].script = script(&d, "exit 0").replace("script", "vif-bridge");
    std::fs::rename(d.join("script"), &v[0].script).unwrap();
    assert_eq!(check_host(&v, &netback, &net), Err(VifError::NoNetback(0)));
    std::fs::create_dir_all(&netback).unwrap();
    check_host(&v, &netback, &net).unwrap();
    // vif-bridge's rule: a missing xenbrN is ethN when that is a bridge.
    v[0].bridge = "xenbr1".into();
    check_host(&v, &netback, &net).unwrap();
    v[0].bridge = "xenbr2".into();
    assert_eq!(
        check_host(&v, &netback, &net),
        Err(VifError::NoBridge {
            index: 0,
            bridge: "xenbr2".into()
        })
    );
    // Another script: the bridge is its business.
    v[0].script = script(&d, "exit 0");
    check_host(&v, &netback, &net).unwrap();
    std::fs::set_permissions(&v[0].script, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        check_host(&v, &netback, &net),
        Err(VifError::Script { .. })
    ));
    v[0].script = d.join("missing").display().to_string();
    assert!(matches!(
        check_host(&v, &netback, &net),
        Err(VifError::Script { .. })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_script_leaving_a_child_behind_does_not_hang_the_caller() {
    let d = temp_dir("child");
    // The child keeps the script's stdout and stderr open after the script exits.
    let s = script(&d, "sleep 30 & echo 'gave up' >&2; exit 3");
    let h = hotplug(s, 0);
    let t = Instant::now();
    let e = h
        .run(HotplugAction::Online, Duration::from_secs(20), None)
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        e.to_string()
            .starts_with("vif3.0: hotplug script online: exit status: 3"),
        "{e}"
    );
    let s = script(&d, "sleep 30 & exit 0");
    let h = hotplug(s, 0);
    let t = Instant::now();
    h.run(HotplugAction::Online, Duration::from_secs(20), None)
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn where_vif_common_writes_a_renamed_interfaces_mtu() {
    // vif-common.sh: dev_=${dev#vif}; domid=${dev_%.*}; devid=${dev_#*.}.
    let stray = |n: &str| script_stray(n).map(|(t, e)| format!("{t} {e}"));
    assert_eq!(
        stray("pvbtest1").as_deref(),
        Some("/local/domain/pvbtest1 /local/domain/pvbtest1/device/vif/pvbtest1/mtu")
    );
    assert_eq!(
        stray("vifweb.3").as_deref(),
        Some("/local/domain/web /local/domain/web/device/vif/3/mtu")
    );
    assert_eq!(
        stray("a.b.c").as_deref(),
        Some("/local/domain/a.b /local/domain/a.b/device/vif/b.c/mtu")
    );
    // A number names a real domain's frontend: not ours to touch. Empty: nothing written.
    assert_eq!(stray("vif7.0"), None);
    assert_eq!(stray("12"), None);
    assert_eq!(stray("vif.0"), None);
}

#[test]
fn a_renamed_interfaces_stray_mtu_is_removed_after_its_script() {
    use crate::xenstore::fake::FakeXenstore;
    let store = FakeXenstore::new();
    let xs = store.connect();
    let mut h = hotplug("/bin/true".into(), 0);
    h.vifname = Some("web0".into());
    // What the script wrote, as it ran (the fake stands in for its xenstore-write).
    store.poke("/local/domain/web0/device/vif/web0/mtu", "1500");
    h.run(HotplugAction::Online, Duration::from_secs(10), Some(&xs))
        .unwrap();
    assert_eq!(xs.read_opt("/local/domain/web0").unwrap(), None);
    // More than the script's one entry under that name is someone else's: it stays.
    store.poke("/local/domain/web0/device/vif/web0/mtu", "1500");
    store.poke("/local/domain/web0/name", "other");
    h.run(HotplugAction::Offline, Duration::from_secs(10), Some(&xs))
        .unwrap();
    assert_eq!(
        xs.read_opt("/local/domain/web0/device/vif/web0/mtu")
            .unwrap()
            .as_deref(),
        Some("1500")
    );
    // And so is a domain's own path: a vifname that reads as a domain number.
    store.poke("/local/domain/3/device/vif/0/mtu", "1500");
    let mut plain = hotplug("/bin/true".into(), 0);
    plain.vifname = Some("vif3.0".into());
    plain
        .run(HotplugAction::Online, Duration::from_secs(10), Some(&xs))
        .unwrap();
    assert!(xs
        .read_opt("/local/domain/3/device/vif/0/mtu")
        .unwrap()
        .is_some());
}

mod hotplug_attach {
    use super::*;
    use crate::xenstore::fake::FakeXenstore;
    use std::sync::Mutex;

    /// A host whose netback and bridge exist, with a recording runner.
    fn with_host<R>(
        fail_online: bool,
        f: impl FnOnce(AttachHost<'_>, &Mutex<Vec<String>>) -> R,
    ) -> R {
        let d = temp_dir(&format!("attach-{fail_online}"));
        let netback = d.join("netback");
        let net = d.join("net");
        std::fs::create_dir_all(&netback).unwrap();
        std::fs::create_dir_all(net.join("xenbr0")).unwrap();
        let calls = Mutex::new(Vec::new());
        let run = |_: &XsConnection, h: &Hotplug, a: HotplugAction| {
            calls
                .lock()
                .unwrap()
                .push(format!("{} {}", devname(h.domid, h.devid), a.name()));
            if fail_online && a == HotplugAction::Online {
                return Err(VifError::Hotplug {
                    vif: devname(h.domid, h.devid),
                    action: "online",
                    msg: "no".into(),
                });
            }
            Ok(())
        };
        let mut random = counter();
        let r = f(
            AttachHost {
                netback: &netback,
                sys_class_net: &net,
                random: &mut random,
                run: &run,
            },
            &calls,
        );
        std::fs::remove_dir_all(&d).unwrap();
        r
    }

    fn spec(s: &str) -> VifSpec {
        let mut v = parse_vif_spec(s).unwrap();
        // An executable script for check_host.
        v.script.get_or_insert_with(|| "/bin/true".into());
        v
    }

    #[test]
    fn attach_takes_the_next_devid_and_plugs_it_in() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        // The running domain (an attach refuses one whose directory is gone).
        xs.write("/local/domain/5/name", "guest").unwrap();
        let first = with_host(false, |h, _| {
            attach(&xs, 5, &spec("mac=00:16:3e:00:00:09"), h)
        })
        .unwrap();
        assert_eq!(first.devid, 0);
        let second = with_host(false, |h, calls| {
            let v = attach(&xs, 5, &spec(""), h).unwrap();
            assert_eq!(*calls.lock().unwrap(), ["vif5.1 online"]);
            v
        });
        assert_eq!(second.devid, 1);
        assert_eq!(crate::xenstore::vif_devids(&xs, 5).unwrap(), [0, 1]);
        assert_eq!(
            xs.read("/local/domain/5/device/vif/1/mac").unwrap(),
            second.mac
        );
        // By MAC or number.
        assert_eq!(find(&xs, 5, "00:16:3E:00:00:09").unwrap(), 0);
        assert_eq!(find(&xs, 5, "1").unwrap(), 1);
        assert!(matches!(find(&xs, 5, "7"), Err(VifError::NoDevice { .. })));
        assert!(matches!(
            find(&xs, 5, "00:16:3e:00:00:0a"),
            Err(VifError::NoDevice { .. })
        ));
        // A MAC or devid the domain has is refused before anything is written.
        let before = store.dump();
        let e = with_host(false, |h, _| {
            attach(&xs, 5, &spec("mac=00:16:3e:00:00:09"), h)
        })
        .unwrap_err();
        assert!(matches!(e, VifError::DuplicateMac { .. }), "{e}");
        let e = with_host(false, |h, _| attach(&xs, 5, &spec("devid=1"), h)).unwrap_err();
        assert!(matches!(e, VifError::DuplicateDevid { .. }), "{e}");
        assert_eq!(store.dump(), before);
        let listing = list(&xs, 5).unwrap();
        assert_eq!(listing.lines().count(), 3, "{listing}");
        assert!(listing.contains("00:16:3e:00:00:09"), "{listing}");
    }

    #[test]
    fn a_failed_attach_is_unplugged_and_removed() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        // The running domain (an attach refuses one whose directory is gone).
        xs.write("/local/domain/5/name", "guest").unwrap();
        let before = store.dump();
        let e = with_host(true, |h, calls| {
            let e = attach(&xs, 5, &spec(""), h).unwrap_err();
            assert_eq!(*calls.lock().unwrap(), ["vif5.0 online", "vif5.0 offline"]);
            e
        });
        assert!(matches!(e, VifError::Hotplug { .. }), "{e}");
        let after = store.dump();
        let left: Vec<_> = after
            .keys()
            .filter(|k| !before.contains_key(*k) && k.contains("/vif"))
            .collect();
        assert!(
            left.iter()
                .all(|k| !k.contains("/vif/5/0") && !k.contains("/device/vif/0")),
            "{left:?}"
        );
        assert!(crate::xenstore::vif_devids(&xs, 5).unwrap().is_empty());
    }

    #[test]
    fn detach_closes_unplugs_and_removes() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        // The running domain (an attach refuses one whose directory is gone).
        xs.write("/local/domain/5/name", "guest").unwrap();
        with_host(false, |h, _| attach(&xs, 5, &spec(""), h)).unwrap();
        with_host(false, |h, _| {
            attach(&xs, 5, &spec("mac=00:16:3e:00:00:02"), h)
        })
        .unwrap();
        // The guest answers: netback's backend goes Closed once asked to close.
        let other = store.connect();
        let closer = std::thread::spawn(move || {
            let p = "/local/domain/0/backend/vif/5/0/state";
            while other.read(p).unwrap() != "5" {
                std::thread::sleep(Duration::from_millis(5));
            }
            other.write(p, "6").unwrap();
        });
        let calls = Mutex::new(Vec::new());
        let run = |_: &XsConnection, h: &Hotplug, a: HotplugAction| {
            calls.lock().unwrap().push(format!(
                "{} {} {}",
                devname(h.domid, h.devid),
                a.name(),
                h.script
            ));
            Ok(())
        };
        assert!(detach(&xs, 5, 0, Duration::from_secs(20), &run).unwrap());
        closer.join().unwrap();
        assert_eq!(*calls.lock().unwrap(), ["vif5.0 offline /bin/true"]);
        assert_eq!(crate::xenstore::vif_devids(&xs, 5).unwrap(), [1]);
        assert!(xs
            .read_opt("/local/domain/0/backend/vif/5/0/state")
            .unwrap()
            .is_none());
        assert!(xs
            .read_opt("/libxl/5/device/vif/0/backend")
            .unwrap()
            .is_none());
        // A guest that does not answer: removed anyway after the timeout.
        assert!(!detach(&xs, 5, 1, Duration::from_millis(200), &run).unwrap());
        assert!(crate::xenstore::vif_devids(&xs, 5).unwrap().is_empty());
        assert!(matches!(
            detach(&xs, 5, 1, Duration::from_millis(200), &run),
            Err(VifError::NoDevice { .. })
        ));
    }
}

/// A `vif_ioemu` interface's two runs, as libxl 4.17's `libxl__hotplug_nic` and
/// `get_hotplug_env` make them: the vif's `online type_if=vif`, then the tap's
/// `add type_if=tap`, both with `INTERFACE` naming the tap.
#[test]
fn an_emulated_nics_tap_is_plugged_after_its_vif() {
    let mut v = plan_vifs(&specs(&["vifname=web0", ""]), counter()).unwrap();
    assert!(v.iter().all(|x| x.model.is_none()));
    let s = specs(&["vifname=web0,model=e1000", "type=vif"]);
    emulate(&mut v, &s).unwrap();
    assert_eq!(v[0].model.as_deref(), Some("e1000"));
    assert_eq!(v[1].model, None);
    let d = specs(&[""]);
    let mut one = plan_vifs(&d, counter()).unwrap();
    emulate(&mut one, &d).unwrap();
    let long = specs(&["vifname=abcdefghijkl"]);
    let mut l = plan_vifs(&long, counter()).unwrap();
    assert!(emulate(&mut l, &long).is_err());
    assert_eq!(one[0].model.as_deref(), Some("rtl8139"));
    assert_eq!(tap_name(7, 2), "vif7.2-emu");

    let h = hotplug_for(&v[0], 7, true);
    // QEMU's name for it; the script renames it to web0-emu.
    assert_eq!(h.tap.as_deref(), Some("vif7.0-emu"));
    assert_eq!(h.args(HotplugAction::Online), ["online", "type_if=vif"]);
    let t = h.tap_run().unwrap();
    assert_eq!(t.args(HotplugAction::Online), ["add", "type_if=tap"]);
    assert_eq!(t.args(HotplugAction::Offline), ["remove", "type_if=tap"]);
    assert_eq!(t.ifname(), "vif7.0-emu");
    assert_eq!(h.ifname(), "vif7.0");
    let env = t.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        env,
        [
            ("script", "/etc/xen/scripts/vif-bridge"),
            ("XENBUS_TYPE", "vif"),
            ("XENBUS_PATH", "backend/vif/7/0"),
            ("XENBUS_BASE_PATH", "backend"),
            ("netdev", ""),
            ("INTERFACE", "vif7.0-emu"),
            ("vif", "vif7.0"),
        ]
    );
    assert_eq!(h.env().len(), env.len());
    // A PV interface has one run.
    assert!(hotplug_for(&v[1], 7, true).tap_run().is_none());
    // With the device model in a stub domain, the tap is the stub's: no run in dom0.
    assert!(hotplug_for(&v[0], 7, false).tap_run().is_none());
    assert!(check_tun(Path::new("/nonexistent/tun")).is_err());
}

/// At teardown, as libxl: a `vif_ioemu` interface's tap gets its own run only when the
/// guest has no stub domain (`image/device-model-domid`).
#[test]
fn a_stub_guests_tap_gets_no_run_at_teardown() {
    use crate::xenstore::fake::FakeXenstore;
    let store = FakeXenstore::new();
    let xs = store.connect();
    store.poke(
        "/local/domain/0/backend/vif/7/0/script",
        "/etc/xen/scripts/vif-bridge",
    );
    store.poke("/local/domain/0/backend/vif/7/0/type", "vif_ioemu");
    let runs = |xs: &XsConnection| -> Vec<String> {
        from_xenstore(xs, 7)
            .unwrap()
            .iter()
            .map(|h| h.ifname())
            .collect()
    };
    assert_eq!(runs(&xs), ["vif7.0", "vif7.0-emu"]);
    store.poke("/local/domain/7/image/device-model-domid", "8");
    assert_eq!(runs(&xs), ["vif7.0"]);
}

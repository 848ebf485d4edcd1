//! Every failure of `create` after the input is planned, at the unit level: the whole
//! sequence ([`make_domain`]: the build, the xenstore entries (a disk's included), the
//! introduction, the device model, the unpause) runs against [`FakeXen`], [`FakeXenstore`]
//! and a fake device-model launcher, which share one [`Trace`] of what they hand out and take
//! back. Each ioctl and each xenstore request is failed in turn; every time, the
//! trace must show each resource given back in the exact reverse order it was acquired, and
//! nothing held at the end (no domain, mapping, hypercall buffer, xenstore entry or
//! introduction). The harness's `fail-inject` scenario does the same per step on real Xen.

use std::sync::Arc;

use nix::errno::Errno;

use super::*;
use crate::commands::create::{resolve, CreateArgs};
use crate::support::trace::{Event, Trace};
use crate::xen::fake::{FakeConfig, FakeXen};
use crate::xenstore::fake::FakeXenstore;
use crate::xenstore::wire;

const KERNEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../builder-core/tests/data/xen-pv64.elf"
);
const RAMDISK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../builder-core/tests/data/initrd.gz"
);

/// One run of `make_domain` on fresh fakes, `arm` setting up the failure; returns the
/// outcome, the fakes and the trace. The guest has one disk.
fn run(
    arm: impl FnOnce(&FakeXen, &FakeXenstore),
) -> (
    Result<runner::Created, CommandError>,
    Arc<FakeXen>,
    FakeXenstore,
    Trace,
) {
    run_with(true, None, arm)
}

/// [`run_with`] (with the disk), then `after` given the fake host, as a later pvbuild sees it.
fn run_then(
    arm: impl FnOnce(&FakeXen, &FakeXenstore),
    after: impl FnOnce(&Host),
) -> (
    Result<runner::Created, CommandError>,
    Arc<FakeXen>,
    FakeXenstore,
    Trace,
) {
    run_full(true, None, arm, after)
}

/// A disk image for the runs (its contents do not matter: the device model is a fake).
fn image() -> String {
    let p = std::env::temp_dir().join(format!("pvbuild-undo-{}.img", std::process::id()));
    std::fs::write(&p, b"disk").unwrap();
    p.display().to_string()
}

/// [`run`], with or without the disk, and with the device model failing to start when
/// `dm_error` says so.
fn run_with(
    disk: bool,
    dm_error: Option<&'static str>,
    arm: impl FnOnce(&FakeXen, &FakeXenstore),
) -> (
    Result<runner::Created, CommandError>,
    Arc<FakeXen>,
    FakeXenstore,
    Trace,
) {
    run_full(disk, dm_error, arm, |_| {})
}

/// [`run_with`], then `after` given the host.
fn run_full(
    disk: bool,
    dm_error: Option<&'static str>,
    arm: impl FnOnce(&FakeXen, &FakeXenstore),
    after: impl FnOnce(&Host),
) -> (
    Result<runner::Created, CommandError>,
    Arc<FakeXen>,
    FakeXenstore,
    Trace,
) {
    let mut cfg = resolve(&CreateArgs {
        name: Some("guest".into()),
        kernel: Some(KERNEL.into()),
        ramdisk: Some(RAMDISK.into()),
        cmdline: Some("console=hvc0".into()),
        memory_mib: Some(32),
        vcpus: Some(2),
        disks: if disk {
            vec![format!("{},raw,xvda,w", image())]
        } else {
            vec![]
        },
        vifs: if disk {
            vec!["mac=00:16:3e:00:00:01".into()]
        } else {
            vec![]
        },
        ..Default::default()
    })
    .unwrap();
    // As `maxvcpus = 3` in a config: two of three vcpus online.
    cfg.max_vcpus = 3;
    let disks = crate::devices::disk::plan_disks(&cfg.disks, false).unwrap();
    let vifs = vif::plan_vifs(&cfg.vifs, || [0; 3]).unwrap();
    let inputs = Inputs::load(KERNEL.as_ref(), Some(RAMDISK.as_ref())).unwrap();
    let kernel = inputs.kernel().unwrap();
    let layout = inputs.solve(&kernel, cfg.memory_mib << 8).unwrap();

    let trace = Trace::new();
    let xen = Arc::new(FakeXen::new(FakeConfig::default()).unwrap());
    xen.set_trace(trace.clone());
    let store = FakeXenstore::new();
    store.set_trace(trace.clone());
    let dying = store.clone();
    xen.on_destroy(move |d| dying.domain_died(u32::from(d)));
    arm(&xen, &store);
    let opener = store.clone();
    let dm_trace = trace.clone();
    let vif_trace = trace.clone();
    let plugged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let userdata_dir = std::env::temp_dir().join(format!(
        "pvbuild-undo-userdata.{}.{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let host = Host {
        xen: Xen::with_backend(xen.clone()),
        xenstore: Arc::new(move || Ok(opener.connect())),
        device_model: Arc::new(move |_, req: &devmodel::DmRequest| {
            if let Some(tail) = dm_error {
                return Err(devmodel::DmError::Exited {
                    status: "exit status: 1".into(),
                    log: req.log.display().to_string(),
                    tail: tail.into(),
                });
            }
            let what = format!("device model of domain {}", req.domid);
            dm_trace.acquire(what.clone());
            let t = dm_trace.clone();
            Ok(devmodel::RunningDm::new(4242, move || {
                t.release(what);
                Ok(())
            }))
        }),
        // The hotplug script: plugging in holds the interface, unplugging gives back what was
        // plugged in (offline also runs for an interface whose online never ran, as libxl's).
        hotplug: Arc::new(move |xs, h: &Hotplug, action| {
            let what = format!("network interface {}", vif::devname(h.domid, h.devid));
            let mut held = plugged.lock().unwrap();
            match action {
                HotplugAction::Online => {
                    // What the real runner waits for first: the backend exists.
                    let be = format!("/local/domain/0/backend/vif/{}/{}", h.domid, h.devid);
                    xs.read(&format!("{be}/state"))
                        .map_err(|e| vif::VifError::Backend {
                            vif: what.clone(),
                            msg: e.to_string(),
                        })?;
                    vif_trace.acquire(what.clone());
                    held.push(what);
                }
                HotplugAction::Offline => {
                    if let Some(i) = held.iter().position(|w| *w == what) {
                        held.remove(i);
                        vif_trace.release(what);
                    }
                }
            }
            Ok(())
        }),
        userdata_dir: userdata_dir.clone(),
    };
    let r = make_domain(
        &host,
        &Prepared {
            cfg: &cfg,
            base: &cfg,
            inputs: Some(&inputs),
            kernel: Some(&kernel),
            image: crate::build::domain::Image::Pv(&layout),
            disks: &disks,
            vifs: &vifs,
            uuid: Uuid::from_bytes([9; 16]),
            paused: false,
            fail_at: None,
            started: Instant::now(),
            stub: None,
            stub_role: None,
        },
    );
    // The stored configuration (see `userdata`) is there for a made domain, and gone with an
    // undone one.
    let stored: Vec<String> = std::fs::read_dir(&userdata_dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    match &r {
        Ok(made) => {
            let want = format!(
                "userdata-d.{}.09090909-0909-0909-0909-090909090909.libxl-json",
                made.domid
            );
            assert_eq!(stored, std::slice::from_ref(&want));
            let text = std::fs::read_to_string(userdata_dir.join(&want)).unwrap();
            let v: serde_json::Value = serde_json::from_str(text.trim_end_matches('\0')).unwrap();
            assert_eq!(v["c_info"]["name"], "guest");
            assert_eq!(v["b_info"]["max_vcpus"], 3);
            assert_eq!(v["disks"].as_array().map_or(0, Vec::len), usize::from(disk));
        }
        Err(_) => assert_eq!(
            stored,
            Vec::<String>::new(),
            "the stored configuration was left"
        ),
    }
    let _ = std::fs::remove_dir_all(&userdata_dir);
    after(&host);
    (r, xen, store, trace)
}

/// The failed run left nothing, and gave everything back in reverse order.
fn assert_undone(what: &str, xen: &FakeXen, store: &FakeXenstore, trace: &Trace) {
    assert_eq!(
        trace.check_lifo(),
        Ok(vec![]),
        "{what}: {:?}",
        trace.events()
    );
    assert_eq!(xen.domids(), Vec::<u16>::new(), "{what}: a domain was left");
    assert_eq!(xen.live_areas(), 0, "{what}: a mapping was left");
    assert_eq!(xen.live_buffers(), 0, "{what}: a hypercall buffer was left");
    assert_eq!(
        store.dump(),
        FakeXenstore::new().dump(),
        "{what}: xenstore changed"
    );
    assert!(store.introduced().is_empty(), "{what}: still introduced");
    assert_eq!(
        store.open_transactions(),
        0,
        "{what}: a transaction was left open"
    );
}

#[test]
fn a_good_run_holds_domain_entries_device_model_and_introduction() {
    let (r, xen, store, trace) = run(|_, _| {});
    let made = r.unwrap();
    let d = made.domid;
    assert_eq!(
        trace.check_lifo(),
        Ok(vec![
            format!("domain {d}"),
            format!("xenstore entries of domain {d}"),
            format!("device model of domain {d}"),
            format!("network interface vif{d}.0"),
            // Owned by the domain: xenstored drops it when the domain dies.
            format!("introduced domain {d}"),
        ])
    );
    // The disk's frontend and backend are there, as libxl writes them.
    let xs = store.connect();
    let be = format!("/local/domain/0/backend/qdisk/{d}/51712");
    assert_eq!(
        xs.read(&format!("{be}/params")).unwrap(),
        format!("aio:{}", image())
    );
    assert_eq!(xs.read(&format!("{be}/mode")).unwrap(), "w");
    assert_eq!(
        xs.read(&format!("/local/domain/{d}/device/vbd/51712/backend"))
            .unwrap(),
        be
    );
    assert!(!xen.domain(d).unwrap().paused);
    // maxvcpus vcpus in Xen (as libxl), vcpus of them online in xenstore.
    assert_eq!(xen.domain(d).unwrap().create_max_vcpus, 3);
    assert_eq!(xen.domain(d).unwrap().vcpus, 3);
    let avail = |i: u32| {
        xs.read(&format!("/local/domain/{d}/cpu/{i}/availability"))
            .unwrap()
    };
    assert_eq!(
        [avail(0), avail(1), avail(2)],
        ["online", "online", "offline"]
    );
    assert_eq!(xen.live_areas(), 0);
    assert_eq!(xen.live_buffers(), 0);
    assert!(store.introduced().contains_key(&u32::from(d)));
}

#[test]
fn failing_each_ioctl_undoes_everything_in_reverse() {
    let (r, xen, _, trace) = run(|_, _| {});
    r.unwrap();
    let n = xen.calls().len();
    assert!(n > 10, "{n} ioctls");
    // The build's mappings were acquired and released in between: the trace sees more than
    // the three resources left.
    assert!(trace.events().len() > 3, "{:?}", trace.events());
    for i in 0..n {
        let (r, xen, store, trace) = run(|x, _| x.fail_call(i, Errno::EIO));
        let call = xen.calls().get(i).cloned();
        match r {
            Err(e) => {
                let undo_failed = matches!(&e, CommandError::After { undo_errors, .. } if !undo_errors.is_empty())
                    || matches!(&e, CommandError::Create(c) if !c.undo_errors.is_empty());
                assert!(!undo_failed, "ioctl {i} ({call:?}): {e}");
                assert_undone(&format!("ioctl {i} ({call:?}): {e}"), &xen, &store, &trace);
            }
            Ok(_) => panic!("ioctl {i} ({call:?}) failed and create went on"),
        }
    }
}

#[test]
fn failing_each_xenstore_request_undoes_everything_in_reverse() {
    let (r, _, store, _) = run(|_, _| {});
    r.unwrap();
    let n = store.requests();
    assert!(n > 20, "{n} requests");
    for i in 1..=n {
        let (r, xen, store, trace) = run(|_, s| s.fail_request_in(i, wire::Errno::EIO));
        let request = store.log().get(usize::try_from(i - 1).unwrap()).cloned();
        match r {
            Err(e) => assert_undone(
                &format!("request {i} ({request:?}): {e}"),
                &xen,
                &store,
                &trace,
            ),
            Ok(_) => panic!("request {i} ({request:?}) failed and create went on"),
        }
    }
}

#[test]
fn the_trace_sees_a_misordered_teardown() {
    // The oracle itself: a teardown that destroys the domain before removing its entries is
    // caught (this is what `check_lifo` exists to refuse).
    let (r, xen, store, trace) = run(|_, _| {});
    let d = r.unwrap().domid;
    Xen::with_backend(xen.clone()).destroy_domain(d).unwrap();
    let xs = store.connect();
    crate::xenstore::remove_domain(&xs, u32::from(d), None, 0, true).unwrap();
    let err = trace.check_lifo().unwrap_err();
    assert!(err.contains(&format!("released domain {d}")), "{err}");
    assert!(matches!(trace.events().last(), Some(Event::Release(_))));
}

#[test]
fn an_interrupt_at_each_ioctl_undoes_everything_or_comes_too_late() {
    // Ctrl-C (crate::support::interrupt) arriving while each ioctl runs: the next check stops create
    // and everything is undone in reverse, except for the last ioctl (the unpause), after
    // which there is nothing left to stop: the domain is complete and running.
    let (r, xen, _, _) = run(|_, _| {});
    r.unwrap();
    let n = xen.calls().len();
    for i in 0..n {
        crate::support::interrupt::set_for_test(false);
        let (r, xen, store, trace) =
            run(|x, _| x.at_call(i, || crate::support::interrupt::set_for_test(true)));
        crate::support::interrupt::set_for_test(false);
        match r {
            Err(e) => {
                assert!(e.to_string().contains("interrupted"), "ioctl {i}: {e}");
                assert_undone(
                    &format!("interrupt at ioctl {i}: {e}"),
                    &xen,
                    &store,
                    &trace,
                );
            }
            Ok(made) => {
                assert_eq!(i, n - 1, "interrupted at ioctl {i} of {n}, create went on");
                assert!(!xen.domain(made.domid).unwrap().paused);
            }
        }
    }
    // Interrupted before anything: no domain is ever made.
    crate::support::interrupt::set_for_test(true);
    let (r, xen, store, trace) = run(|_, _| {});
    crate::support::interrupt::set_for_test(false);
    assert!(r.unwrap_err().to_string().contains("interrupted"));
    assert_undone("interrupted at once", &xen, &store, &trace);
    assert!(trace.events().is_empty(), "{:?}", trace.events());
}

#[test]
fn a_device_model_that_fails_to_start_undoes_everything() {
    let (r, xen, store, trace) = run_with(true, Some("qemu: no xen"), |_, _| {});
    let e = r.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("device-model: device model exited"),
        "{e}"
    );
    assert!(e.to_string().contains("qemu: no xen"), "{e}");
    assert_undone("device model failed", &xen, &store, &trace);
}

#[test]
fn no_disk_no_device_model() {
    let (r, _, store, trace) = run_with(false, Some("must not be started"), |_, _| {});
    let d = r.unwrap().domid;
    assert_eq!(trace.check_lifo().unwrap().len(), 3, "{:?}", trace.events());
    assert!(store
        .connect()
        .read_opt(&format!("/local/domain/{d}/device/vbd"))
        .unwrap()
        .is_none());
}

#[test]
fn a_failed_unpause_unplugs_and_stops_the_device_model_before_the_entries_go() {
    // The unpause is the last ioctl; failing it must unplug the interface, then stop the
    // device model, before anything else goes.
    let (r, xen, _, _) = run(|_, _| {});
    r.unwrap();
    let last = xen.calls().len() - 1;
    let (r, xen, store, trace) = run(|x, _| x.fail_call(last, Errno::EIO));
    let e = r.unwrap_err();
    assert!(e.to_string().starts_with("unpause"), "{e}");
    assert_undone("unpause failed", &xen, &store, &trace);
    // What was given back after the device model started.
    let events = trace.events();
    let dm = events
        .iter()
        .position(|e| matches!(e, Event::Acquire(w) if w.starts_with("device model")))
        .unwrap();
    let releases: Vec<String> = events[dm..]
        .iter()
        .filter_map(|e| match e {
            Event::Release(w) => Some(w.clone()),
            Event::Acquire(_) | Event::AcquireOwned { .. } => None,
        })
        .collect();
    assert!(
        releases.len() > 2
            && releases[0].starts_with("network interface vif")
            && releases[1].starts_with("device model of domain"),
        "{releases:?}"
    );
}

/// A private directory for crash-safety records.
fn journal_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pvbuild-journal-undo.{}.{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn a_create_killed_before_its_end_is_undone_by_the_next_sweep() {
    use crate::build::journal::{Filter, Journal};
    // A create that made everything (domain, entries, device model, interface, unpause) and
    // was killed before its record ended: its lock goes with it (the drop), and the next
    // sweep (as `pvbuild destroy guest` or the next `create guest` runs it) undoes it all.
    let dir = journal_dir("killed");
    let journal = Journal::begin_in(&dir, "guest").unwrap();
    let mut swept = Vec::new();
    let mut live = Vec::new();
    let (r, xen, store, trace) = run_then(
        |_, _| {},
        |host| {
            // While the create runs, its record is left alone.
            live = crate::build::journal::sweep_in(&dir, Filter::All, host);
            drop(journal);
            // Another name's sweep leaves it too.
            assert!(crate::build::journal::sweep_in(&dir, Filter::Name("other"), host).is_empty());
            swept = crate::build::journal::sweep_in(&dir, Filter::Name("guest"), host);
        },
    );
    let d = r.unwrap().domid;
    assert!(live.is_empty(), "{live:?}");
    assert_eq!(swept.len(), 1, "{swept:?}");
    let s = swept.first().unwrap();
    assert_eq!(s.domain, Some(d), "{s}");
    assert!(s.errors.is_empty(), "{s}");
    assert_eq!(s.name.as_deref(), Some("guest"));
    assert_eq!(xen.domids(), Vec::<u16>::new(), "a domain was left");
    assert_eq!(store.dump(), FakeXenstore::new().dump(), "xenstore changed");
    assert!(store.introduced().is_empty());
    // The interface was unplugged (its hotplug `offline`, from what xenstore listed).
    assert!(trace
        .events()
        .contains(&Event::Release(format!("network interface vif{d}.0"))));
    // The record is gone, and a second sweep finds nothing.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_create_that_ended_leaves_no_record_and_its_domain_alone() {
    use crate::build::journal::{Filter, Journal};
    let dir = journal_dir("ended");
    let journal = Journal::begin_in(&dir, "guest").unwrap();
    let mut swept = Vec::new();
    let (r, xen, _, _) = run_then(
        |_, _| {},
        |host| {
            journal.end().unwrap();
            swept = crate::build::journal::sweep_in(&dir, Filter::All, host);
        },
    );
    let d = r.unwrap().domid;
    assert!(swept.is_empty(), "{swept:?}");
    assert_eq!(xen.domids(), vec![d]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_domain_made_before_its_id_was_recorded_is_found_by_its_handle() {
    use crate::build::journal::{DomainUndo, Filter};
    // Killed between XEN_DOMCTL_createdomain and the `domain` line: the record has the UUID
    // only. Of two domains with that handle, the one xenstore names (someone's guest that
    // happens to share the UUID) stays; the nameless one goes.
    let dir = journal_dir("handle");
    std::fs::create_dir_all(&dir).unwrap();
    let (r, xen, store, _) = run(|_, _| {});
    let named = r.unwrap().domid;
    let host = Host {
        xen: Xen::with_backend(xen.clone()),
        xenstore: {
            let s = store.clone();
            Arc::new(move || Ok(s.connect()))
        },
        device_model: Arc::new(|_, _| unreachable!()),
        hotplug: Arc::new(|_, _, _| Ok(())),
        userdata_dir: dir.join("userdata"),
    };
    let handle = xen.domain(named).unwrap().handle;
    let mut cfg = crate::xen::DomainConfig::pv(1, 1);
    cfg.handle = handle;
    let orphan = host.xen.create_domain(&cfg, None).unwrap();
    assert_eq!(host.unnamed_with_handle(&handle).unwrap(), vec![orphan]);
    let uuid = Uuid::from_bytes(handle);
    std::fs::write(
        dir.join("create-1-0.journal"),
        format!(
            "pvbuild-journal 1\nowner 1\nname {}\nuuid {}\ndomain 4",
            "6775657374",
            uuid.hyphenated()
        ),
    )
    .unwrap();
    let swept = crate::build::journal::sweep_in(&dir, Filter::Name("guest"), &host);
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept.first().unwrap().domain, Some(orphan));
    assert_eq!(xen.domids(), vec![named]);
    let _ = std::fs::remove_dir_all(&dir);
}

//! The device model's start and stop against real processes (shell scripts standing in for
//! QEMU) and the fake xenstored. QEMU itself is started by the harness (`pvbuild-disk`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::xenstore::fake::FakeXenstore;

/// A script standing in for QEMU, in a fresh directory; its log path beside it.
fn script(body: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "pvbuild-dm-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("qemu");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    (p, dir.join("log").join("qemu-dm-g.log"))
}

fn request(program: PathBuf, log: PathBuf, timeout: Duration) -> DmRequest {
    DmRequest {
        program,
        domid: 7,
        name: "g".into(),
        maxmem_mib: 256,
        log,
        timeout,
        backends: vec![],
        privileges: Default::default(),
        images: vec![],
        hvm: None,
    }
}

fn gone(pid: u32) -> bool {
    matches!(kill(Pid::from_raw(pid as i32), None), Err(Errno::ESRCH))
        || !alive(Pid::from_raw(pid as i32))
}

/// Waits until `launch` cleared any stale state and started the model (its pid recorded).
fn until_started(xs: &XsConnection) {
    while xs.read_opt(&pid_path(7)).unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn arguments_are_libxls() {
    // What libxl 4.17 ran for `xl create` of a PV guest with a qdisk disk on the harness's
    // Xen (tests/xen/scenarios/xl-disk.sh: qemu-ps.txt).
    let want = "-xen-domid 1 -no-shutdown -chardev socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-1,server=on,wait=off -mon chardev=libxl-cmd,mode=control -chardev socket,id=libxenstat-cmd,path=/var/run/xen/qmp-libxenstat-1,server=on,wait=off -mon chardev=libxenstat-cmd,mode=control -nodefaults -no-user-config -xen-attach -name xldisk -vnc none -display none -nographic -machine xenpv -m 256";
    assert_eq!(
        qemu_args(1, "xldisk", 256, &Restriction::default()).join(" "),
        want
    );
}

#[test]
fn restricted_arguments_are_where_libxl_puts_them() {
    // libxl 4.17.5 `libxl__build_device_model_args_new` with dm_restrict: after
    // `-nographic`, `-xen-domid-restrict` then `-chroot <run dir>/qemu-root-<domid>`, before
    // `-machine`; `-runas` is appended last (for an HVM guest: libxl passes none for a PV
    // guest, pvbuild does). The QMP sockets stay paths (libxl pre-opens one and adds `-S`).
    let r = Restriction {
        chroot: Some(restrict::chroot_dir(3)),
        runas: Some("131075:131072".into()),
    };
    let want = "-xen-domid 3 -no-shutdown -chardev socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-3,server=on,wait=off -mon chardev=libxl-cmd,mode=control -chardev socket,id=libxenstat-cmd,path=/var/run/xen/qmp-libxenstat-3,server=on,wait=off -mon chardev=libxenstat-cmd,mode=control -nodefaults -no-user-config -xen-attach -name g -vnc none -display none -nographic -xen-domid-restrict -chroot /var/run/xen/qemu-root-3 -machine xenpv -m 256 -runas 131075:131072";
    assert_eq!(qemu_args(3, "g", 256, &r).join(" "), want);
    // device_model_user without dm_restrict: only -runas.
    let r = Restriction {
        chroot: None,
        runas: Some("qemu-g".into()),
    };
    let a = qemu_args(3, "g", 256, &r);
    assert_eq!(a[a.len() - 2..], ["-runas".to_string(), "qemu-g".into()]);
    assert!(!a
        .iter()
        .any(|x| x == "-xen-domid-restrict" || x == "-chroot"));
}

#[test]
fn a_missing_device_model_user_fails_before_anything_is_made() {
    let (p, log) = script("echo started > \"$(dirname \"$0\")/ran\"; sleep 30");
    let store = FakeXenstore::new();
    let xs = store.connect();
    let mut req = request(p.clone(), log.clone(), Duration::from_secs(5));
    req.privileges = restrict::DmPrivileges {
        restrict: false,
        user: Some("pvbuild-no-such-user-xyz".into()),
    };
    let e = launch(&xs, &req).unwrap_err().to_string();
    assert_eq!(
        e,
        "device_model_user: no user \"pvbuild-no-such-user-xyz\" on this host"
    );
    assert!(!p.with_file_name("ran").exists());
    assert!(!log.exists());
    assert_eq!(xs.read_opt(&pid_path(7)).unwrap(), None);
}

#[test]
fn a_model_that_exits_is_reported_with_its_log() {
    let (p, log) = script("echo \"qemu: cannot open $2\" >&2; exit 3");
    let store = FakeXenstore::new();
    let xs = store.connect();
    let e = launch(&xs, &request(p, log.clone(), Duration::from_secs(10))).unwrap_err();
    match e {
        DmError::Exited { status, tail, .. } => {
            assert!(status.contains('3'), "{status}");
            assert_eq!(tail, "qemu: cannot open 7");
        }
        e => panic!("{e}"),
    }
    // Its pid was recorded where libxl records it.
    assert!(xs.read_opt(&pid_path(7)).unwrap().is_some());
}

#[test]
fn a_model_that_never_comes_up_is_stopped_at_the_deadline() {
    let (p, log) = script("echo starting; while :; do sleep 0.05; done");
    let store = FakeXenstore::new();
    let xs = store.connect();
    let t0 = Instant::now();
    let e = launch(&xs, &request(p, log, Duration::from_millis(400))).unwrap_err();
    assert!(
        matches!(&e, DmError::Timeout { tail, .. } if tail == "starting"),
        "{e}"
    );
    assert!(t0.elapsed() < STOP_GRACE, "SIGTERM should have been enough");
    let pid: u32 = xs.read(&pid_path(7)).unwrap().parse().unwrap();
    assert!(gone(pid), "the stand-in still runs");
}

#[test]
fn a_running_model_is_kept_until_stopped() {
    let (p, log) = script("while :; do sleep 0.05; done");
    let store = FakeXenstore::new();
    let xs = store.connect();
    let other = store.connect();
    let writer = std::thread::spawn(move || {
        until_started(&other);
        other
            .write(&format!("{}/state", device_model_dir(7)), "running")
            .unwrap();
    });
    let dm = launch(&xs, &request(p, log, Duration::from_secs(10))).unwrap();
    writer.join().unwrap();
    let pid = dm.pid;
    assert!(!gone(pid));
    assert_eq!(xs.read(&pid_path(7)).unwrap(), pid.to_string());
    dm.stop().unwrap();
    assert!(gone(pid));
}

#[test]
fn destroy_stops_only_the_domains_own_model() {
    let (p, _) = script("while :; do sleep 0.05; done");
    let mut child = Command::new(&p)
        .args(qemu_args(7, "g", 64, &Restriction::default()))
        .process_group(0)
        .spawn()
        .unwrap();
    // spawn() returns once the child is past the point of no return of its exec, which can
    // be before the kernel has set up its new arguments: wait until /proc shows them.
    let t = Instant::now();
    while !std::fs::read(format!("/proc/{}/cmdline", child.id()))
        .unwrap_or_default()
        .windows(10)
        .any(|w| w == b"-xen-domid")
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the child never exec'd"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let store = FakeXenstore::new();
    let xs = store.connect();
    // A pid that is not domain 7's device model (this test process) is left alone.
    xs.write(&pid_path(7), &std::process::id().to_string())
        .unwrap();
    assert_eq!(stop_for_domain(&xs, 7), Ok(None));
    // Nor is domain 7's model stopped for domain 8.
    xs.write(&pid_path(8), &child.id().to_string()).unwrap();
    assert_eq!(stop_for_domain(&xs, 8), Ok(None));
    assert!(child.try_wait().unwrap().is_none());
    xs.write(&pid_path(7), &child.id().to_string()).unwrap();
    let pid = child.id();
    assert_eq!(stop_for_domain(&xs, 7), Ok(Some(pid)));
    // stop_for_domain reaped it (it is this process's child): gone, not a zombie.
    assert!(gone(pid));
    assert!(child.try_wait().is_err(), "already reaped");
    // No pid recorded: nothing to do.
    assert_eq!(stop_for_domain(&xs, 9), Ok(None));
}

#[test]
fn a_missing_program_is_refused_up_front() {
    assert!(matches!(
        check_program(Path::new("/nonexistent/qemu")),
        Err(DmError::Program(..))
    ));
    assert!(matches!(
        check_program(Path::new("/etc/passwd")),
        Err(DmError::Program(..))
    ));
    assert!(matches!(
        check_program(Path::new("/etc")),
        Err(DmError::Program(..))
    ));
    assert!(check_program(Path::new("/bin/sh")).is_ok());
}

#[test]
fn a_model_is_up_once_it_took_every_backend() {
    let (p, log) = script("while :; do sleep 0.05; done");
    let store = FakeXenstore::new();
    let xs = store.connect();
    let other = store.connect();
    let be = "/local/domain/0/backend/qdisk/7/51712".to_owned();
    xs.write(&format!("{be}/state"), "1").unwrap();
    let be2 = be.clone();
    let writer = std::thread::spawn(move || {
        // Once launch has cleared any stale state and started the model.
        until_started(&other);
        other
            .write(&format!("{}/state", device_model_dir(7)), "running")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        other.write(&format!("{be2}/state"), "2").unwrap();
    });
    let mut req = request(p, log, Duration::from_secs(10));
    req.backends = vec![be];
    let t0 = Instant::now();
    let dm = launch(&xs, &req).unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "did not wait for the backend"
    );
    writer.join().unwrap();
    dm.stop().unwrap();
}

#[test]
fn a_backend_the_model_never_takes_is_named() {
    let (p, log) = script(
        "echo \"failed to create 'qdisk' device '51712'\" >&2; while :; do sleep 0.05; done",
    );
    let store = FakeXenstore::new();
    let xs = store.connect();
    let be = "/local/domain/0/backend/qdisk/7/51712".to_owned();
    xs.write(&format!("{be}/state"), "1").unwrap();
    let other = store.connect();
    let writer = std::thread::spawn(move || {
        until_started(&other);
        other
            .write(&format!("{}/state", device_model_dir(7)), "running")
            .unwrap();
    });
    let mut req = request(p, log, Duration::from_millis(600));
    req.backends = vec![be.clone()];
    match launch(&xs, &req).unwrap_err() {
        DmError::Backend { backend, tail, .. } => {
            assert_eq!(backend, be);
            assert!(tail.contains("failed to create 'qdisk'"), "{tail}");
        }
        e => panic!("{e}"),
    }
    writer.join().unwrap();
    let pid: u32 = xs.read(&pid_path(7)).unwrap().parse().unwrap();
    assert!(gone(pid));
}

#[test]
fn a_device_model_user_that_cannot_open_an_image_is_refused_before_the_start() {
    let root = nix::unistd::geteuid().is_root();
    assert!(
        root || std::env::var("CI").as_deref() != Ok("true"),
        "changing user needs root"
    );
    if !root {
        return;
    }
    let (p, log) = script("echo started > \"$(dirname \"$0\")/ran\"; sleep 30");
    let img = p.with_file_name("disk.img");
    std::fs::write(&img, b"x").unwrap();
    std::fs::set_permissions(&img, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store = FakeXenstore::new();
    let xs = store.connect();
    let mut req = request(p.clone(), log.clone(), Duration::from_secs(5));
    req.privileges = restrict::DmPrivileges {
        restrict: false,
        user: Some("nobody".into()),
    };
    req.images = vec![(img.clone(), false)];
    let e = launch(&xs, &req).unwrap_err().to_string();
    assert!(
        e.starts_with("device_model_user: the device model's user nobody (uid 65534) cannot open")
            && e.contains("read-write"),
        "{e}"
    );
    assert!(!p.with_file_name("ran").exists());
    assert!(!log.exists());
    assert_eq!(xs.read_opt(&pid_path(7)).unwrap(), None);
}

#[test]
fn an_hvm_model_gets_its_argv_and_environment_and_is_stopped_when_its_qmp_fails() {
    // The script records what it was started with; it makes no QMP socket, so libxl's
    // post-start configuration fails and the running model must be stopped again.
    let (p, log) = script(
        "d=$(dirname \"$0\"); printf '%s\\n' \"$@\" > \"$d/argv\"; \
         echo \"$XEN_DOMAIN_ID $XEN_QEMU_CONSOLE_LIMIT\" > \"$d/env\"; \
         while :; do sleep 0.05; done",
    );
    let dir = p.parent().unwrap().to_path_buf();
    let store = FakeXenstore::new();
    let xs = store.connect();
    let other = store.connect();
    let writer = std::thread::spawn(move || {
        until_started(&other);
        other
            .write(&format!("{}/state", device_model_dir(7)), "running")
            .unwrap();
    });
    let dm =
        hvm::HvmDm::from_xl(&crate::config::parse(b"vga = \"none\"\nvnc = 0\n").unwrap()).unwrap();
    let args = hvm::HvmArgs {
        dm,
        max_memkb: 256 * 1024,
        vcpus: 1,
        max_vcpus: 1,
        acpi: true,
        mmio_hole_memkb: 0,
        kernel: None,
        ramdisk: None,
        cmdline: None,
        disks: vec![],
        nics: vec![],
    };
    let mut req = hvm::request(Some(&p), 7, "g", args.clone());
    req.log = log;
    req.timeout = Duration::from_secs(10);
    let err = launch(&xs, &req).unwrap_err();
    writer.join().unwrap();
    assert!(matches!(err, DmError::PostConfig(_)), "{err}");
    let pid: u32 = xs.read(&pid_path(7)).unwrap().parse().unwrap();
    assert!(gone(pid));
    let argv = std::fs::read_to_string(dir.join("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        hvm::qemu_args(7, "g", &args, &Restriction::default())
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("env")).unwrap().trim(),
        "7 1048576"
    );
}

#[test]
fn dm_restrict_is_refused_for_an_hvm_model_before_anything_starts() {
    let store = FakeXenstore::new();
    let xs = store.connect();
    let dm =
        hvm::HvmDm::from_xl(&crate::config::parse(b"vnc = 0\nvga = \"none\"\n").unwrap()).unwrap();
    let mut req = hvm::request(
        Some(Path::new("/nonexistent")),
        7,
        "g",
        hvm::HvmArgs {
            dm,
            max_memkb: 1024,
            vcpus: 1,
            max_vcpus: 1,
            acpi: true,
            mmio_hole_memkb: 0,
            kernel: None,
            ramdisk: None,
            cmdline: None,
            disks: vec![],
            nics: vec![],
        },
    );
    req.privileges.restrict = true;
    assert!(matches!(launch(&xs, &req), Err(DmError::Hvm(_))));
    assert!(xs.read_opt(&pid_path(7)).unwrap().is_none());
}

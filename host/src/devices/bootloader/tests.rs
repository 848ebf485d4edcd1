//! The result parser on hostile output, and [`run`] against the real pygrub on a real ext4
//! image holding Debian's kernel, and against bootloaders that misbehave on purpose (shell
//! scripts): one that fails, one that never ends, one that names files outside its
//! directory, a symlink, an oversized result.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn dir() -> &'static Path {
    Path::new("/run/pvbuild-test/files")
}

#[test]
fn parses_what_pygrub_writes() {
    let out = b"kernel /run/pvbuild-test/files/boot_kernel.x1\0ramdisk /run/pvbuild-test/files/boot_ramdisk.y2\0args root=/dev/xvda1 ro  quiet\0";
    let r = parse_result(out, dir()).unwrap();
    assert_eq!(r.kernel, dir().join("boot_kernel.x1"));
    assert_eq!(r.ramdisk, Some(dir().join("boot_ramdisk.y2")));
    assert_eq!(r.args.as_deref(), Some("root=/dev/xvda1 ro  quiet"));
    assert!(r.warnings.is_empty());
}

#[test]
fn items_as_libxl_reads_them() {
    // Any whitespace after the name, later items win, unknown and overlong ones are warned
    // about and skipped, a name glued to its value is unknown.
    let long = format!("args {}", "x".repeat(ITEM_MAX));
    let out = [
        b"kernel\t \x0b/run/pvbuild-test/files/a".as_slice(),
        b"kernel /run/pvbuild-test/files/b",
        b"kernelx /run/pvbuild-test/files/c",
        b"bogus",
        long.as_bytes(),
        b"args",
        b"",
    ]
    .join(&0u8);
    let r = parse_result(&out, dir()).unwrap();
    assert_eq!(r.kernel, dir().join("b"));
    assert_eq!(r.args, None);
    assert_eq!(r.warnings.len(), 4, "{:?}", r.warnings);
    assert!(r.warnings.iter().any(|w| w.contains("overly long")));
}

#[test]
fn refuses_paths_outside_its_directory() {
    for bad in [
        "/etc/passwd",
        "/run/pvbuild-test/files/../result",
        "/run/pvbuild-test/files/sub/k",
        "/run/pvbuild-test/files/./k",
        "/run/pvbuild-test/files/",
        "/run/pvbuild-test/files",
        "boot_kernel",
        "",
    ] {
        let out = format!("kernel {bad}\0");
        assert!(
            matches!(
                parse_result(out.as_bytes(), dir()),
                Err(ResultError::Outside { .. })
            ),
            "{bad:?}: {:?}",
            parse_result(out.as_bytes(), dir())
        );
        let out = format!("kernel /run/pvbuild-test/files/k\0ramdisk {bad}\0");
        assert!(matches!(
            parse_result(out.as_bytes(), dir()),
            Err(ResultError::Outside {
                what: "ramdisk",
                ..
            })
        ));
    }
}

#[test]
fn refuses_no_kernel_bad_text_and_size() {
    assert_eq!(parse_result(b"", dir()), Err(ResultError::NoKernel));
    assert_eq!(
        parse_result(b"ramdisk /run/pvbuild-test/files/r\0", dir()),
        Err(ResultError::NoKernel)
    );
    assert_eq!(
        parse_result(b"kernel /run/pvbuild-test/files/\xff\0", dir()),
        Err(ResultError::NotUtf8 { what: "kernel" })
    );
    assert_eq!(
        parse_result(b"kernel /run/pvbuild-test/files/k\0args \xfe\0", dir()),
        Err(ResultError::NotUtf8 { what: "args" })
    );
    let big = vec![b'a'; RESULT_MAX as usize + 1];
    assert_eq!(parse_result(&big, dir()), Err(ResultError::TooLarge));
}

#[test]
fn error_messages_show_text_not_terminal_codes() {
    let pygrub = "\u{1b}(B\u{1b})0\u{1b}[1;24r\u{1b}[m\u{f}\u{1b}[?7h\u{1b}[H\u{1b}[J    pyGRUB  version 0.7\r\u{1b}[1B \u{1b}[0m\u{e}x\u{f} \u{1b}[0;7mDebian GNU/Linux  \u{1b}[5;1H";
    assert_eq!(
        tail_note(pygrub),
        " (its last output: \"x Debian GNU/Linux\")"
    );
    assert_eq!(tail_note("\u{1b}[H\r\n"), "");
}

#[test]
fn newer_xen_bin_directories_come_first() {
    let mut dirs: Vec<PathBuf> = [
        "/usr/lib/xen-4.9/bin",
        "/usr/lib/xen-4.17/bin",
        "/usr/lib/xen-4.17.1/bin",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(version_key(d)));
    assert_eq!(dirs[0], Path::new("/usr/lib/xen-4.17.1/bin"));
    assert_eq!(dirs[2], Path::new("/usr/lib/xen-4.9/bin"));
}

#[test]
fn the_arguments_are_libxls() {
    let extra = vec!["--entry=1".to_string()];
    let req = Request {
        program: "pygrub",
        extra_args: &extra,
        disk: Path::new("/var/disk.img"),
        kernel: Some(Path::new("/boot/vmlinuz")),
        ramdisk: None,
        cmdline: Some("console=hvc0"),
        interactive: false,
        timeout: DEFAULT_TIMEOUT,
        runas: None,
        max_file: DEFAULT_MAX_FILE,
        work_dir: None,
    };
    assert_eq!(
        arguments(&req, Path::new("/o/result"), Path::new("/o/files")),
        [
            "--kernel=/boot/vmlinuz",
            "--args=console=hvc0",
            "--output=/o/result",
            "--output-format=simple0",
            "--output-directory=/o/files",
            "--entry=1",
            "/var/disk.img",
        ]
    );
    // Restricted: libxl's make_bootloader_args puts these two after --args.
    let req = Request {
        runas: Some(1234),
        ..req
    };
    assert_eq!(
        arguments(&req, Path::new("/o/result"), Path::new("/o/files"))[2..4],
        ["--runas=1234", "--quiet"]
    );
}

#[test]
fn restricted_unless_opted_out_with_libxls_variables_first() {
    let users = |name: &str| match name {
        "xen-qemuuser-shared" => Some(900),
        "xen-qemuuser-range-base" => Some(1000),
        "alice" => Some(1500),
        "root" => Some(0),
        _ => None,
    };
    let only_base = |name: &str| (name == "xen-qemuuser-range-base").then_some(1000);
    let none = |_: &str| None;
    let no_env = |_: &str| None;
    let env_restrict = |v: &str| (v == "LIBXL_BOOTLOADER_RESTRICT").then(|| "1".to_string());
    let env_user = |v: &str| (v == "LIBXL_BOOTLOADER_USER").then(|| "alice".to_string());
    // pvbuild's default: restricted, as the shared user, else the range's base.
    assert_eq!(runas_uid(None, None, no_env, users).unwrap(), Some(900));
    assert_eq!(
        runas_uid(None, None, no_env, only_base).unwrap(),
        Some(1000)
    );
    assert_eq!(
        runas_uid(Some(true), None, no_env, users).unwrap(),
        Some(900)
    );
    // The opt-out, unless a variable says otherwise (libxl: the environment wins).
    assert_eq!(runas_uid(Some(false), None, no_env, users).unwrap(), None);
    assert_eq!(
        runas_uid(Some(false), None, env_restrict, users).unwrap(),
        Some(900)
    );
    assert_eq!(
        runas_uid(Some(false), None, env_user, users).unwrap(),
        Some(1500)
    );
    // A named user; the variable's name wins over the config's.
    assert_eq!(
        runas_uid(None, Some("alice"), no_env, users).unwrap(),
        Some(1500)
    );
    assert_eq!(
        runas_uid(None, Some("nobody-here"), env_user, users).unwrap(),
        Some(1500)
    );
    // No such user, no user at all, or root: refused, never run as root silently.
    for (restrict, user, lookup) in [
        (
            None,
            Some("nobody-here"),
            &users as &dyn Fn(&str) -> Option<u32>,
        ),
        (None, None, &none),
        (None, Some("root"), &users),
    ] {
        let e = runas_uid(restrict, user, no_env, lookup).unwrap_err();
        assert!(matches!(e, BootloaderError::Restrict(_)), "{e}");
    }
    let msg = runas_uid(None, None, no_env, none).unwrap_err().to_string();
    assert!(
        msg.contains("bootloader_restrict = 0") && msg.contains("useradd"),
        "{msg}"
    );
}

/// A scratch directory for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pvbuild-bl-test.{}.{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A bootloader made of a shell script. Its arguments are libxl's, so `$2` is `--output=...`
/// and `$4` is `--output-directory=...` (no kernel/ramdisk/args hints are given below).
fn script(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("bl.sh");
    let text =
        format!("#!/bin/sh\nout=${{1#--output=}}\nfiles=${{3#--output-directory=}}\n{body}\n");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn request<'a>(program: &'a str, work: &'a Path, timeout: Duration) -> Request<'a> {
    Request {
        program,
        extra_args: &[],
        disk: Path::new("/dev/null"),
        kernel: None,
        ramdisk: None,
        cmdline: None,
        interactive: false,
        timeout,
        runas: None,
        max_file: DEFAULT_MAX_FILE,
        work_dir: Some(work),
    }
}

/// Nothing of the run is left in `work` (only the script).
fn assert_cleaned(work: &Path) {
    let left: Vec<_> = std::fs::read_dir(work)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "bl.sh")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_script_bootloader_runs_on_a_tty_with_libxls_environment() {
    let work = scratch("tty");
    let p = script(
        &work,
        r#"[ -t 0 ] && [ -t 1 ] || exit 9
ps -o sid= -p $$ | grep -q "$$" || exit 8
env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^_=' | sort | tr '\n' ' ' > "$files/env"
printf 'kernel %s\0args %s\0' "$files/env" "$(cat "$files/env")" > "$out"
echo done"#,
    );
    let prog = p.display().to_string();
    let x = run(&request(&prog, &work, Duration::from_secs(20))).unwrap();
    assert_eq!(x.result.args.as_deref(), Some("TERM=vt100 "));
    assert!(x.tail.contains("done"), "{:?}", x.tail);
    assert!(x.result.kernel.is_file());
    drop(x);
    assert_cleaned(&work);
}

#[test]
fn an_interactive_bootloader_gets_the_users_keys_and_shows_its_menu() {
    // With someone at the menu (create -c): what the bootloader draws reaches the user, and
    // what the user types reaches the bootloader, which boots the entry typed.
    let work = scratch("interactive");
    let p = script(
        &work,
        r#"echo "MENU: type an entry"
read entry
: > "$files/k"
printf 'kernel %s\0args chosen=%s\0' "$files/k" "$entry" > "$out""#,
    );
    let prog = p.display().to_string();
    let (keys_r, mut keys_w) = std::io::pipe().unwrap();
    keys_w.write_all(b"second\n").unwrap();
    let mut keys = File::from(OwnedFd::from(keys_r));
    let mut screen: Vec<u8> = Vec::new();
    let req = Request {
        interactive: true,
        ..request(&prog, &work, Duration::from_secs(1))
    };
    let x = run_with(&req, Some((&mut keys, &mut screen))).unwrap();
    assert_eq!(x.result.args.as_deref(), Some("chosen=second"));
    assert!(String::from_utf8_lossy(&screen).contains("MENU: type an entry"));
    drop(keys_w);
}

#[test]
fn a_failing_bootloader_is_reported_with_its_last_words() {
    let work = scratch("fail");
    let p = script(&work, "echo 'no bootable entry'; exit 3");
    let prog = p.display().to_string();
    let e = run(&request(&prog, &work, Duration::from_secs(20))).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, BootloaderError::Failed { .. }), "{msg}");
    assert!(
        msg.contains("exited with status 3") && msg.contains("no bootable entry"),
        "{msg}"
    );
    assert_cleaned(&work);
}

#[test]
fn a_bootloader_that_never_ends_is_killed_with_its_children() {
    let work = scratch("hang");
    let marker = work.join("child-alive");
    let p = script(
        &work,
        &format!(
            "(trap '' TERM; while :; do touch {m}; sleep 0.1; done) & echo waiting; sleep 1000",
            m = marker.display()
        ),
    );
    let prog = p.display().to_string();
    let t = Instant::now();
    let e = run(&request(&prog, &work, Duration::from_secs(1))).unwrap_err();
    assert!(matches!(e, BootloaderError::Timeout { secs: 1, .. }), "{e}");
    assert!(e.to_string().contains("waiting"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The child that ignores SIGTERM was killed with the group: the marker stops changing.
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::fs::remove_file(&marker);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !marker.exists(),
        "a child of the bootloader is still running"
    );
    assert_cleaned(&work);
}

#[test]
fn an_interrupted_bootloader_is_killed_and_cleaned_up() {
    let work = scratch("interrupt");
    let p = script(&work, "echo menu; sleep 1000");
    let prog = p.display().to_string();
    crate::support::interrupt::set_for_test(true);
    let t = Instant::now();
    let e = run(&request(&prog, &work, Duration::from_secs(60))).unwrap_err();
    crate::support::interrupt::set_for_test(false);
    assert!(matches!(e, BootloaderError::Interrupted { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_cleaned(&work);
}

#[test]
fn hostile_results_are_refused() {
    let cases = [
        (
            "printf 'kernel /etc/passwd\\0' > \"$out\"",
            "not a file in the output directory",
        ),
        (
            "ln -s /etc/passwd \"$files/k\"; printf 'kernel %s\\0' \"$files/k\" > \"$out\"",
            "not a regular file",
        ),
        (
            "mkdir \"$files/d\"; printf 'kernel %s\\0' \"$files/d\" > \"$out\"",
            "not a regular file",
        ),
        (
            "printf 'kernel %s\\0' \"$files/missing\" > \"$out\"",
            "not a regular file",
        ),
        (
            "mkfifo \"$files/k\"; printf 'kernel %s\\0' \"$files/k\" > \"$out\"",
            "not a regular file",
        ),
        (
            // It can raise its file-size limit to the hard limit (pygrub sets its own 128 MiB).
            "ulimit -f 1000; head -c 300000 /dev/zero > \"$files/k\"; \
             printf 'kernel %s\\0' \"$files/k\" > \"$out\"",
            "more than the bound of 200000 bytes",
        ),
        (
            "ulimit -f 1000; : > \"$files/k\"; head -c 300000 /dev/zero > \"$files/r\"; \
             printf 'kernel %s\\0ramdisk %s\\0' \"$files/k\" \"$files/r\" > \"$out\"",
            "its ramdisk",
        ),
        ("head -c 70000 /dev/zero > \"$out\"", "larger than"),
        ("printf 'args x\\0' > \"$out\"", "gave no kernel"),
        (":", "gave no kernel"),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let work = scratch(&format!("hostile{i}"));
        let p = script(&work, body);
        let prog = p.display().to_string();
        let req = Request {
            max_file: 200_000,
            ..request(&prog, &work, Duration::from_secs(20))
        };
        let e = run(&req).unwrap_err();
        assert!(matches!(e, BootloaderError::Result { .. }), "{body}: {e}");
        assert!(e.to_string().contains(want), "{body}: {e}");
        assert_cleaned(&work);
    }
    let e = run(&request(
        "no-such-bootloader-xyz",
        Path::new("/tmp"),
        DEFAULT_TIMEOUT,
    ))
    .unwrap_err();
    assert!(matches!(e, BootloaderError::NotFound(_)), "{e}");
}

#[test]
fn what_a_bootloader_writes_is_bounded() {
    // RLIMIT_FSIZE: a write past the bound fails (the shell's head dies of SIGXFSZ).
    let work = scratch("fsize");
    let p = script(
        &work,
        "head -c 300000 /dev/zero > \"$files/k\" || exit 7\nprintf 'kernel %s\\0' \"$files/k\" > \"$out\"",
    );
    let prog = p.display().to_string();
    let req = Request {
        max_file: 200_000,
        ..request(&prog, &work, Duration::from_secs(20))
    };
    let e = run(&req).unwrap_err();
    assert!(e.to_string().contains("exited with status 7"), "{e}");
    assert_cleaned(&work);
}

#[test]
fn the_deadline_holds_with_someone_at_the_menu() {
    let work = scratch("interactive-hang");
    let p = script(&work, "echo menu; sleep 1000");
    let prog = p.display().to_string();
    let (keys_r, _keys_w) = std::io::pipe().unwrap();
    let mut keys = File::from(OwnedFd::from(keys_r));
    let mut screen: Vec<u8> = Vec::new();
    let req = Request {
        interactive: true,
        ..request(&prog, &work, Duration::from_secs(1))
    };
    let t = Instant::now();
    let e = run_with(&req, Some((&mut keys, &mut screen))).unwrap_err();
    assert!(matches!(e, BootloaderError::Timeout { secs: 1, .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_cleaned(&work);
}

/// Voluntary context switches of the calling thread so far.
fn thread_wakeups() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
        .unwrap()
        .voluntary_context_switches()
}

#[test]
fn a_bootloader_that_closed_its_terminal_is_waited_for_without_spinning() {
    // It closes the pty and lives on: pvbuild waits on a pidfd until the deadline, waking a
    // few times a second at most (a 10 ms polling loop woke a hundred times a second).
    let work = scratch("closed-tty");
    let p = script(&work, "exec 0<&- 1>&- 2>&-; sleep 1000");
    let prog = p.display().to_string();
    let before = thread_wakeups();
    let t = Instant::now();
    let e = run(&request(&prog, &work, Duration::from_secs(3))).unwrap_err();
    let woke = thread_wakeups() - before;
    assert!(matches!(e, BootloaderError::Timeout { secs: 3, .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // 3 s of waiting at 4 wakeups a second, then the group's stop (a second's grace, polled
    // every 20 ms); a 10 ms loop alone wakes 300 times in those 3 s.
    assert!(
        woke < 150,
        "the wait woke {woke} times in {:?}",
        t.elapsed()
    );
    assert_cleaned(&work);
}

/// Debian's kernel (CI installs linux-image-amd64).
pub(crate) fn debian_kernel() -> PathBuf {
    std::fs::read_dir("/boot")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .max()
        .expect("a Debian kernel in /boot")
}

/// An ext4 image (made without mounting, by `mkfs.ext4 -d`) with a grub.cfg whose default
/// entry boots `kernel` with a ramdisk.
pub(crate) fn pygrub_disk(work: &Path, kernel: &Path, ramdisk: &[u8], args: &str) -> PathBuf {
    let root = work.join("root");
    std::fs::create_dir_all(root.join("boot/grub")).unwrap();
    std::fs::copy(kernel, root.join("boot/vmlinuz")).unwrap();
    std::fs::write(root.join("boot/initrd.img"), ramdisk).unwrap();
    std::fs::write(
        root.join("boot/grub/grub.cfg"),
        format!(
            "set default=1\nset timeout=0\n\
             menuentry 'other' {{\n\tlinux /boot/vmlinuz wrong\n}}\n\
             menuentry 'pvbuild' {{\n\tlinux /boot/vmlinuz {args}\n\tinitrd /boot/initrd.img\n}}\n"
        ),
    )
    .unwrap();
    let img = work.join("disk.img");
    let size_mb = std::fs::metadata(kernel).unwrap().len() / (1 << 20)
        + ramdisk.len() as u64 / (1 << 20)
        + 16;
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&root)
        .arg(&img)
        .arg(format!("{size_mb}M"))
        .status()
        .expect("mkfs.ext4 (e2fsprogs)");
    assert!(st.success());
    img
}

/// Runs `f` while watching every process whose command line names pygrub and `disk`; returns
/// `f`'s result and the real uids those processes had (sampled every few milliseconds).
fn pygrub_uids<T>(disk: &Path, f: impl FnOnce() -> T) -> (T, std::collections::BTreeSet<u32>) {
    let disk = disk.display().to_string();
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    let cmd = String::from_utf8_lossy(&cmd);
                    if !cmd.contains("bin/pygrub") || !cmd.contains(disk.as_str()) {
                        continue;
                    }
                    let status =
                        std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
                    let uid: Option<u32> = status
                        .lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok());
                    seen.extend(uid);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        })
    };
    let r = f();
    stop.store(true, Ordering::Relaxed);
    (r, watcher.join().unwrap())
}

/// `nobody`'s uid: an unprivileged user every Debian machine has.
fn nobody() -> u32 {
    system_uid("nobody").expect("user nobody")
}

#[test]
fn real_pygrub_runs_restricted_as_the_user_it_is_given() {
    let work = scratch("pygrub-restricted");
    let kernel = debian_kernel();
    let img = pygrub_disk(
        &work,
        &kernel,
        b"a small ramdisk",
        "console=hvc0 restricted",
    );
    let runs = work.join("runs");
    let uid = nobody();
    let req = Request {
        disk: &img,
        runas: Some(uid),
        work_dir: Some(&runs),
        ..request("pygrub", &runs, Duration::from_secs(60))
    };
    // The part of pygrub that read the disk ran as that user (its parent stays root to
    // clean up, as in libxl). The /proc sampler can be starved past that child's short life
    // on a loaded machine (seen three times in a row under load): up to three runs, each
    // checked whole; the test fails if none showed the user.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (x, uids) = pygrub_uids(&img, || run(&req));
        let x = x.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(x.result.args.as_deref(), Some("console=hvc0 restricted"));
        let mut k = Vec::new();
        (&x.files.kernel).read_to_end(&mut k).unwrap();
        assert!(k == std::fs::read(&kernel).unwrap());
        drop(x);
        assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0);
        let shown = uids.contains(&uid);
        seen.push(uids);
        if shown {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|u| u.contains(&uid)),
        "pygrub ran as {seen:?} in {} runs, never as {uid}",
        seen.len()
    );

    // A kernel larger than the bound is refused cleanly, restricted (pygrub writes it under
    // its own 128 MiB limit, the fstat check refuses it) or not (the file-size limit stops
    // pygrub's write).
    let max_file = std::fs::metadata(&kernel).unwrap().len() / 2;
    for runas in [Some(uid), None] {
        let req = Request {
            runas,
            max_file,
            ..req.clone()
        };
        let e = run(&req).unwrap_err();
        match runas {
            Some(_) => assert!(
                matches!(
                    e,
                    BootloaderError::Result {
                        source: ResultError::TooBig { what: "kernel", .. },
                        ..
                    }
                ),
                "{e}"
            ),
            None => assert!(matches!(e, BootloaderError::Failed { .. }), "{e}"),
        }
        assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0);
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn real_pygrub_extracts_debians_kernel_from_a_real_ext4_image() {
    let work = scratch("pygrub");
    let kernel = debian_kernel();
    let ramdisk: Vec<u8> = (0..1_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let img = pygrub_disk(&work, &kernel, &ramdisk, "console=hvc0 pvbuild=pygrub");
    let runs = work.join("runs");
    let req = Request {
        disk: &img,
        work_dir: Some(&runs),
        ..request("pygrub", &runs, Duration::from_secs(60))
    };
    let (x, uids) = pygrub_uids(&img, || run(&req));
    let x = x.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        x.result.args.as_deref(),
        Some("console=hvc0 pvbuild=pygrub")
    );
    // Unrestricted (runas None): root throughout.
    assert_eq!(uids.into_iter().collect::<Vec<_>>(), [0]);
    assert!(std::fs::read(&x.result.kernel).unwrap() == std::fs::read(&kernel).unwrap());
    assert!(std::fs::read(x.result.ramdisk.as_ref().unwrap()).unwrap() == ramdisk);
    drop(x);
    assert_eq!(
        std::fs::read_dir(&runs).unwrap().count(),
        0,
        "the run's directory is gone"
    );
    let _ = std::fs::remove_dir_all(&work);
}

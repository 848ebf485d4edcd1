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
    crate::interrupt::set_for_test(true);
    let t = Instant::now();
    let e = run(&request(&prog, &work, Duration::from_secs(60))).unwrap_err();
    crate::interrupt::set_for_test(false);
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
        ("head -c 70000 /dev/zero > \"$out\"", "larger than"),
        ("printf 'args x\\0' > \"$out\"", "gave no kernel"),
        (":", "gave no kernel"),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let work = scratch(&format!("hostile{i}"));
        let p = script(&work, body);
        let prog = p.display().to_string();
        let e = run(&request(&prog, &work, Duration::from_secs(20))).unwrap_err();
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
    let x = run(&req).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        x.result.args.as_deref(),
        Some("console=hvc0 pvbuild=pygrub")
    );
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

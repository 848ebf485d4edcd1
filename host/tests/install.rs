//! `scripts/install.sh` into a temporary DESTDIR, with the binary this build made: the
//! binary, a man page per subcommand that `pvbuild --help` lists, pvbuild.cfg(5), and the
//! completions must be where the script says; every page must render with `man -l` and no
//! groff warning; the bash completion must source and complete `pvbuild cre` to `create`.
//! `man` (man-db) and bash are prerequisites: missing, the test says so and passes, except
//! in CI (`CI=true`), where it fails.

// Test code: panicking on unexpected results is the point (clippy.toml allows it in #[test]
// functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null"))
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is not installed (tests/xen/install-deps.sh installs it)"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    ok
}

fn install(dest: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dest);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("sh")
        .arg(repo.join("scripts/install.sh"))
        .arg("--destdir")
        .arg(dest)
        .args(["--prefix", "/usr"])
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_pvbuild"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dest.join("usr")
}

/// The subcommands `pvbuild --help` lists.
fn subcommands(bin: &Path) -> Vec<String> {
    let out = Command::new(bin).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut in_cmds = false;
    let mut v = Vec::new();
    for l in text.lines() {
        if l.starts_with("Commands:") {
            in_cmds = true;
            continue;
        }
        if in_cmds {
            match l
                .strip_prefix("  ")
                .and_then(|r| r.split_whitespace().next())
            {
                Some(c) if c != "help" => v.push(c.to_owned()),
                Some(_) => {}
                None => break,
            }
        }
    }
    v
}

#[test]
fn installs_binary_manuals_and_completions_that_work() {
    let dest = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("install-destdir");
    let usr = install(&dest);
    let bin = usr.join("sbin/pvbuild");
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("pvbuild "));

    let cmds = subcommands(&bin);
    assert!(cmds.len() >= 20, "{cmds:?}");
    assert!(cmds.iter().any(|c| c == "block-attach"), "{cmds:?}");
    let man1 = usr.join("share/man/man1");
    let mut pages = vec![
        man1.join("pvbuild.1"),
        usr.join("share/man/man5/pvbuild.cfg.5"),
    ];
    for c in &cmds {
        pages.push(man1.join(format!("pvbuild-{c}.1")));
    }
    for p in &pages {
        assert!(p.is_file(), "{} missing", p.display());
    }
    // No page for the hidden internal command.
    assert!(!man1.join("pvbuild-gen-manuals.1").exists());
    let bash = usr.join("share/bash-completion/completions/pvbuild");
    for f in [
        &bash,
        &usr.join("share/zsh/vendor-completions/_pvbuild"),
        &usr.join("share/fish/vendor_completions.d/pvbuild.fish"),
    ] {
        assert!(std::fs::metadata(f).unwrap().len() > 100, "{}", f.display());
    }

    if have("man") {
        for p in &pages {
            let out = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(p)
                .env("MANWIDTH", "100")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "man -l {}: {err}", p.display());
            assert!(err.trim().is_empty(), "man -l {}: {err}", p.display());
            assert!(text.contains("NAME"), "{}: {text}", p.display());
        }
        let cfg = Command::new("man")
            .arg("-l")
            .arg(usr.join("share/man/man5/pvbuild.cfg.5"))
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&cfg.stdout);
        for want in [
            "SUPPORTED KEYS",
            "REFUSED KEYS",
            "seclabel",
            "bootloader_restrict",
        ] {
            assert!(text.contains(want), "pvbuild.cfg(5) lacks {want}: {text}");
        }
        let create = Command::new("man")
            .arg("-l")
            .arg(man1.join("pvbuild-create.1"))
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&create.stdout).contains("--bootloader"));
    }

    if have("bash") {
        let script = format!(
            "source '{}' && complete -p pvbuild && COMP_WORDS=(pvbuild cre) && COMP_CWORD=1 \
             && COMP_LINE='pvbuild cre' && COMP_POINT=11 && _pvbuild pvbuild cre pvbuild \
             && echo \"REPLY: ${{COMPREPLY[*]}}\"",
            bash.display()
        );
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &script])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("-F _pvbuild pvbuild"), "{text}");
        assert!(text.contains("REPLY: create"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dest);
}

#[test]
fn bad_arguments_are_refused() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for args in [&["--prefix", "relative"][..], &["--bogus"][..]] {
        let out = Command::new("sh")
            .arg(repo.join("scripts/install.sh"))
            .args(args)
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_pvbuild"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    }
}

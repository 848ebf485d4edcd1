//! `pvbuild serve` and `pvbuild client` without Xen: a served command prints what the same
//! command prints as a process (stdout and stderr, byte for byte, and its status), a relative
//! path is taken in the client's directory, the commands that would hold the server are
//! refused, a batch stops at its first failure, and SIGTERM stops the server and removes its
//! socket.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn pvbuild() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pvbuild"))
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../builder-core/tests/data")
}

struct Server {
    child: Option<Child>,
    dir: PathBuf,
    sock: PathBuf,
}

impl Server {
    fn start(tag: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("pvbuild-serve-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        // The server makes the socket's own directory (mode 0700), not its parents.
        let sock = dir.join("s/serve.sock");
        let child = pvbuild()
            .arg("serve")
            .arg("--socket")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pvbuild serve");
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no socket at {}",
                sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child: Some(child),
            dir,
            sock,
        }
    }

    fn client(&self, args: &[&str]) -> Output {
        pvbuild()
            .arg("client")
            .arg("--socket")
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("run pvbuild client")
    }

    fn stop(mut self) -> String {
        let child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "serve exited {:?}", out.status);
        assert!(!self.sock.exists(), "the socket is left after SIGTERM");
        String::from_utf8(out.stderr).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_served_command_prints_what_the_process_prints() {
    let s = Server::start("same");
    let kernel = data().join("bz-gz.bin");
    let k = kernel.to_str().unwrap();
    for args in [
        vec!["plan", "--memory", "64", "--cmdline", "console=hvc0", k],
        vec!["-v", "plan", "--memory", "64", k],
        vec!["plan", "--json", "--memory", "48", k],
        // A usage error (status 2) and a bad input (status 1).
        vec!["plan", "--memory", "0", k],
        vec!["plan", "--bogus", k],
        vec!["plan", "/nonexistent/kernel"],
        vec!["--version"],
    ] {
        let direct = pvbuild().args(&args).output().unwrap();
        let served = s.client(&args);
        assert_eq!(served.status.code(), direct.status.code(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&served.stdout),
            String::from_utf8_lossy(&direct.stdout),
            "{args:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&served.stderr),
            String::from_utf8_lossy(&direct.stderr),
            "{args:?}"
        );
    }
    // The client's -v reaches the request.
    let direct = pvbuild().args(["-vv", "plan", k]).output().unwrap();
    let served = pvbuild()
        .arg("-vv")
        .arg("client")
        .arg("--socket")
        .arg(&s.sock)
        .args(["plan", k])
        .output()
        .unwrap();
    assert_eq!(served.stderr, direct.stderr);
    // A relative path is the client's.
    let served = pvbuild()
        .current_dir(data())
        .arg("client")
        .arg("--socket")
        .arg(&s.sock)
        .args(["plan", "xen-pv64.elf"])
        .output()
        .unwrap();
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    let log = s.stop();
    assert!(
        log.contains("plan --memory 64 --cmdline console=hvc0"),
        "{log}"
    );
    assert!(log.contains("-> exit 2 in"), "{log}");
    assert!(log.contains("pvbuild serve: stopped"), "{log}");
}

#[test]
fn commands_that_hold_the_server_are_refused() {
    let s = Server::start("refused");
    for args in [
        vec!["console", "1"],
        vec!["create", "--wait", "x.cfg"],
        vec!["create", "-F", "x.cfg"],
        vec!["create", "-c", "x.cfg"],
        vec!["shutdown", "-w", "g"],
        vec!["serve"],
    ] {
        let out = s.client(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error: not served: "), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A batch stops at its first failure and exits with its status; --times says each.
    let batch = s.dir.join("batch");
    let k = data().join("xen-pv64.elf");
    std::fs::write(
        &batch,
        format!(
            "# two plans, a failure, then a plan that does not run\n\nplan {k}\nplan --memory 32 '{k}'\nplan /nonexistent\nplan {k}\n",
            k = k.display()
        ),
    )
    .unwrap();
    let out = s.client(&["--times", "--batch", batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let timed: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pvbuild client: "))
        .collect();
    assert_eq!(timed.len(), 3, "{err}");
    assert!(timed[2].contains("exit 1: plan /nonexistent"), "{err}");
    // No server: a one-line error.
    let none = pvbuild()
        .args(["client", "--socket", "/nonexistent/s.sock", "list"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(none.stderr).unwrap(),
        "error: no pvbuild serve at /nonexistent/s.sock: ENOENT: No such file or directory\n"
    );
    // A second server at the same socket is refused while the first answers.
    let second = pvbuild()
        .arg("serve")
        .arg("--socket")
        .arg(&s.sock)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8(second.stderr)
        .unwrap()
        .contains("another pvbuild serve answers there"));
    s.stop();
}

#[test]
fn a_pool_of_a_config_that_cannot_be_pooled_is_refused_before_the_socket() {
    let dir = std::env::temp_dir().join(format!("pvbuild-serve-pool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let sock = dir.join("s/serve.sock");
    let kernel = data().join("xen-pv64.elf");
    let refused = |cfg: &str, extra: &[&str], want: &str| {
        let f = dir.join("pool.cfg");
        std::fs::write(&f, cfg).unwrap();
        let out = pvbuild()
            .arg("serve")
            .arg("--socket")
            .arg(&sock)
            .arg("--pool")
            .arg(&f)
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].contains(want), "{err}");
        assert!(!sock.exists(), "a refused pool made the socket");
    };
    let k = kernel.display();
    refused(
        &format!(
            "name = \"p\"\nkernel = \"{k}\"\nbootloader = \"pygrub\"\ndisk = [ 'phy:/dev/null,xvda,w' ]\n"
        ),
        &[],
        "cannot be pooled: it has a bootloader",
    );
    refused(
        &format!(
            "name = \"p\"\nkernel = \"{k}\"\nuuid = \"3c2b8e3a-58f4-4f11-9d45-3c2a1f6f0e11\"\n"
        ),
        &[],
        "cannot be pooled: it sets a uuid",
    );
    refused(
        &format!("name = \"p\"\nkernel = \"{k}\"\ndisk = [ 'phy:/dev/null,xvda,w' ]\n"),
        &[],
        "cannot be pooled: it has disks",
    );
    refused(
        &format!("name = \"p\"\nkernel = \"{k}\"\n"),
        &["--pool-size", "0"],
        "--pool-size 0: 1 to 64",
    );
    // --pool-size without --pool: a usage error.
    let out = pvbuild()
        .args(["serve", "--pool-size", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The QMP proxy in dom0 (libxl's `spawn_qmp_proxy`): Xen's `vchan-socket-proxy` as a vchan
//! client of the stub's, listening on the guest's usual QMP socket
//! (`/var/run/xen/qmp-libxl-<guest>`), so that what talks QMP to a dom0 QEMU reaches the
//! stub's. It says `running` at `/local/domain/0/device-model/<stub>/qmp-proxy-state` once it
//! listens; its pid is at `/local/domain/<stub>/image/qmp-proxy-pid`.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::xenstore::{dom_path, wait_watched, Waited, XsConnection, XsError};

/// Debian's build of Xen's proxy (`STUBDOM_QMP_PROXY_PATH`).
pub const PROGRAM: &str = "/usr/lib/xen-4.17/bin/vchan-socket-proxy";
/// How long it may take to say `running` (`LIBXL_DEVICE_MODEL_START_TIMEOUT`).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `/local/domain/0/device-model/<stub>/qmp-proxy-state`.
pub fn state_path(stub: u32) -> String {
    format!("/local/domain/0/device-model/{stub}/qmp-proxy-state")
}

/// `/local/domain/<stub>/image/qmp-proxy-pid`.
pub fn pid_path(stub: u32) -> String {
    format!("{}/image/qmp-proxy-pid", dom_path(stub))
}

/// Its arguments (after the program), as libxl's.
pub fn args(stub: u32, guest: u32) -> Vec<String> {
    vec![
        format!("--state-path={}", state_path(stub)),
        stub.to_string(),
        format!(
            "{}/qmp-vchan",
            super::entries::device_model_dir(stub, guest)
        ),
        super::super::hvm::qmp_path(guest).display().to_string(),
    ]
}

/// Checks, before Xen is touched, that the proxy can be run.
pub fn check_program() -> Result<(), String> {
    let p = Path::new(PROGRAM);
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(()),
        _ => Err(format!(
            "qmp proxy {PROGRAM} is not there (package xen-utils-4.17)"
        )),
    }
}

/// Starts the proxy for stub `stub` of guest `guest`, its output in
/// `/var/log/xen/qmp-proxy-<stub name>.log`, and waits until it says `running`. Its pid is
/// recorded (for [`stop`]) before the wait.
pub fn start(xs: &XsConnection, stub: u32, guest: u32, stub_name: &str) -> Result<u32, String> {
    let log = PathBuf::from(format!("/var/log/xen/qmp-proxy-{stub_name}.log"));
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let _ = xs.rm(&state_path(stub));
    let mut cmd = Command::new(PROGRAM);
    cmd.args(args(stub, guest))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .current_dir("/")
        .process_group(0);
    crate::build::journal::record_child(&mut cmd, "qmp-proxy");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {PROGRAM}: {e}"))?;
    let pid = child.id();
    xs.write(&pid_path(stub), &pid.to_string())
        .map_err(|e| format!("recording the qmp proxy's pid: {e}"))?;
    // Woken by the proxy's write of its state node; its exit (no xenstore event) is seen
    // within a wait slice.
    let state = state_path(stub);
    let mut exited = None;
    let waited = wait_watched(xs, &[state.as_str()], Some(START_TIMEOUT), || {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            return Ok(Some(()));
        }
        Ok::<_, XsError>((xs.read_opt(&state)?.as_deref() == Some("running")).then_some(()))
    })
    .map_err(|e| format!("reading the qmp proxy's state: {e}"))?;
    match waited {
        Waited::Done(()) => {
            if let Some(status) = exited {
                return Err(format!(
                    "qmp proxy exited ({status}) before it was running; {}: {}",
                    log.display(),
                    tail(&log)
                ));
            }
        }
        Waited::Interrupted => return Err("interrupted".into()),
        Waited::TimedOut => {
            return Err(format!(
                "qmp proxy not running after {} s; {}: {}",
                START_TIMEOUT.as_secs(),
                log.display(),
                tail(&log)
            ))
        }
    }
    // Reaped when it ends (killed by `stop`, or at the stub's end).
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let t = text.trim();
    let start = t.len().saturating_sub(300);
    let start = (start..t.len())
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(t.len());
    t[start..].replace('\n', " | ")
}

/// Whether `pid` is the proxy of stub `stub` (its command line names them).
fn is_proxy_of(pid: u32, stub: u32) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let state = format!("--state-path={}", state_path(stub));
    parts
        .first()
        .is_some_and(|p| p.ends_with(b"vchan-socket-proxy"))
        && parts.contains(&state.as_bytes())
}

/// Stops stub `stub`'s proxy, `pid` as recorded ([`crate::devmodel::DmRecords`]), if it is
/// still that proxy: SIGTERM, SIGKILL after a grace. Returns the pid stopped. (Its state node
/// goes with the stub's `device-model` directory in dom0, [`crate::xenstore::remove_domain`].)
pub fn stop(stub: u32, pid: Option<u32>) -> Result<Option<u32>, String> {
    let Some(pid) = pid.filter(|&p| p > 1 && is_proxy_of(p, stub)) else {
        return Ok(None);
    };
    Ok(crate::devmodel::terminate(pid, "qmp proxy")?.then_some(pid))
}

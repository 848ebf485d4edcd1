//! The device model: a local QEMU running Xen's `xenpv` machine, which serves a PV guest's
//! qdisk disks. Started and awaited as libxl's `libxl__spawn_local_dm` does for a PV domain:
//! the same arguments and environment, the log at `/var/log/xen/qemu-dm-<name>.log`, its pid
//! at `/local/domain/<domid>/image/device-model-pid` (where `xl destroy` looks for it too),
//! and ready once it writes `running` to `/local/domain/0/device-model/<domid>/state`.
//!
//! Unlike libxl, which forks twice so QEMU is orphaned at once, pvbuild starts QEMU in a
//! process group of its own (Ctrl-C at pvbuild's terminal does not reach it) and keeps
//! nothing that would stop it when pvbuild exits.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use thiserror::Error;

use crate::xenstore::{device_model_dir, dom_path, Waited, XsConnection, XsError};

pub mod hvm;
pub mod restrict;
pub mod stubdom;
use restrict::{DmPrivileges, RestrictError, Restriction};

/// Debian's QEMU with Xen support (package qemu-system-xen), the device model libxl runs.
pub const DEFAULT_QEMU: &str = "/usr/libexec/xen-qemu-system-i386";
/// How long QEMU may take to report `running` (libxl's `LIBXL_DEVICE_MODEL_START_TIMEOUT`).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable libxl reads to change [`START_TIMEOUT`] (seconds); pvbuild
/// honours it too.
pub const START_TIMEOUT_ENV: &str = "LIBXL_DEVICE_MODEL_START_TIMEOUT";
/// How long a stopped QEMU gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the start and the stop look again.
const POLL: Duration = Duration::from_millis(50);
/// Most bytes of QEMU's log quoted in an error.
const LOG_TAIL_BYTES: u64 = 400;

/// What to start.
#[derive(Clone, Debug)]
pub struct DmRequest {
    /// The QEMU binary.
    pub program: PathBuf,
    /// The guest.
    pub domid: u32,
    /// The guest's name (`-name`).
    pub name: String,
    /// The guest's maximum memory (`-m`).
    pub maxmem_mib: u64,
    /// Where QEMU's output goes.
    pub log: PathBuf,
    /// How long it may take to come up.
    pub timeout: Duration,
    /// Backend directories it must take (their `state` past Initialising) before it counts
    /// as up: the guest's disks.
    pub backends: Vec<String>,
    /// `dm_restrict` and `device_model_user` ([`restrict`]).
    pub privileges: DmPrivileges,
    /// The images it will open, with whether read-only: checked against its user first
    /// ([`restrict::check_access`]).
    pub images: Vec<(PathBuf, bool)>,
    /// An HVM guest's device model ([`hvm::request`]); `None`: a PV guest's qdisk QEMU.
    pub hvm: Option<Box<hvm::HvmArgs>>,
}

impl DmRequest {
    /// libxl's defaults for `domid`: [`DEFAULT_QEMU`] unless `program` is given, the log in
    /// `/var/log/xen`, and [`START_TIMEOUT`] unless [`START_TIMEOUT_ENV`] says otherwise.
    pub fn new(program: Option<&Path>, domid: u32, name: &str, maxmem_mib: u64) -> Self {
        let timeout = start_timeout();
        Self {
            program: program.map_or_else(|| PathBuf::from(DEFAULT_QEMU), Path::to_path_buf),
            domid,
            name: name.to_owned(),
            maxmem_mib,
            log: PathBuf::from(format!("/var/log/xen/qemu-dm-{name}.log")),
            timeout,
            backends: Vec::new(),
            privileges: DmPrivileges::default(),
            images: Vec::new(),
            hvm: None,
        }
    }
}

/// How long a device model may take to come up: [`START_TIMEOUT`] unless
/// [`START_TIMEOUT_ENV`] says otherwise.
pub fn start_timeout() -> Duration {
    std::env::var(START_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(START_TIMEOUT, Duration::from_secs)
}

/// Why the device model could not be started (or stopped).
#[derive(Debug, Error)]
pub enum DmError {
    /// The binary is missing or not executable.
    #[error("device model {0}: {1} (install qemu-system-xen, or set device_model_override)")]
    Program(PathBuf, String),
    /// A xenstore step failed.
    #[error("device model: {step}: {source}")]
    Xenstore {
        /// The step.
        step: &'static str,
        /// The error.
        source: XsError,
    },
    /// Its log could not be opened.
    #[error("device model log {0}: {1}")]
    Log(PathBuf, std::io::Error),
    /// It could not be started.
    #[error("starting device model {0}: {1}")]
    Spawn(PathBuf, std::io::Error),
    /// It exited before it was ready.
    #[error("device model exited ({status}) before it was running; {log}: {tail}")]
    Exited {
        /// How it ended.
        status: String,
        /// Its log.
        log: String,
        /// The end of the log.
        tail: String,
    },
    /// It did not report `running` in time.
    #[error("device model not running after {secs} s; {log}: {tail}")]
    Timeout {
        /// The limit.
        secs: u64,
        /// Its log.
        log: String,
        /// The end of the log.
        tail: String,
    },
    /// It runs, but did not take a backend in time (QEMU logs why and keeps trying).
    #[error("device model did not take {backend} within {secs} s; {log}: {tail}")]
    Backend {
        /// The backend directory.
        backend: String,
        /// The limit.
        secs: u64,
        /// Its log.
        log: String,
        /// The end of the log.
        tail: String,
    },
    /// A signal asked pvbuild to stop.
    #[error("interrupted")]
    Interrupted,
    /// It cannot be restricted as the config asks.
    #[error("{0}")]
    Restrict(#[from] RestrictError),
    /// An HVM guest's QEMU runs, but libxl's post-start configuration failed (QMP).
    #[error("device model: post-start configuration: {0}")]
    PostConfig(String),
    /// What an HVM guest's QEMU cannot be started with.
    #[error("{0}")]
    Hvm(String),
}

/// QEMU's arguments for a PV guest, exactly as libxl 4.17 passes them
/// (`libxl__build_device_model_args_new` for `LIBXL_DOMAIN_TYPE_PV` with no vfb), with
/// `restriction`'s: `-xen-domid-restrict -chroot DIR` after `-nographic` as libxl puts them,
/// and `-runas USER` last, where libxl puts it for an HVM guest (libxl passes none for a PV
/// guest: [`restrict`]).
pub fn qemu_args(
    domid: u32,
    name: &str,
    maxmem_mib: u64,
    restriction: &Restriction,
) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-xen-domid".into(),
        domid.to_string(),
        "-no-shutdown".into(),
    ];
    for (id, sock) in [
        ("libxl-cmd", "qmp-libxl"),
        ("libxenstat-cmd", "qmp-libxenstat"),
    ] {
        a.extend([
            "-chardev".into(),
            format!("socket,id={id},path=/var/run/xen/{sock}-{domid},server=on,wait=off"),
            "-mon".into(),
            format!("chardev={id},mode=control"),
        ]);
    }
    a.extend(
        [
            "-nodefaults",
            "-no-user-config",
            "-xen-attach",
            "-name",
            name,
            "-vnc",
            "none",
            "-display",
            "none",
            "-nographic",
        ]
        .map(String::from),
    );
    if let Some(dir) = &restriction.chroot {
        a.extend([
            "-xen-domid-restrict".into(),
            "-chroot".into(),
            dir.display().to_string(),
        ]);
    }
    a.extend(["-machine", "xenpv", "-m"].map(String::from));
    a.push(maxmem_mib.to_string());
    if let Some(user) = &restriction.runas {
        a.extend(["-runas".into(), user.clone()]);
    }
    a
}

/// `/local/domain/<domid>/image/device-model-pid`.
pub fn pid_path(domid: u32) -> String {
    format!("{}/image/device-model-pid", dom_path(domid))
}

/// `/local/domain/<domid>/image/device-model-kill-uid`: libxl's record of a device model's
/// own uid.
pub fn kill_uid_path(domid: u32) -> String {
    format!("{}/image/device-model-kill-uid", dom_path(domid))
}

/// Removes what a device model of `domid` leaves in xenstore (its directory under dom0's
/// `device-model` and its pid), once it is stopped: for a device model started by an
/// attach that failed, whose domain stays.
pub fn remove_entries(xs: &XsConnection, domid: u32) {
    let _ = xs.rm(&device_model_dir(domid));
    let _ = xs.rm(&pid_path(domid));
    let _ = xs.rm(&kill_uid_path(domid));
}

/// Checks, before any domain exists, that `program` is an executable file.
pub fn check_program(program: &Path) -> Result<(), DmError> {
    let err = |m: String| DmError::Program(program.to_path_buf(), m);
    let meta = std::fs::metadata(program).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a file".into()));
    }
    // (access(2) grants X_OK to root for any file with an execute bit; none, none.)
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(err("not executable".into()));
    }
    nix::unistd::access(program, nix::unistd::AccessFlags::X_OK)
        .map_err(|e| err(format!("not executable: {}", e.desc())))
}

/// A started device model, until [`RunningDm::stop`] (dropping it leaves QEMU running: a
/// made domain keeps its device model after pvbuild exits).
pub struct RunningDm {
    /// QEMU's pid.
    pub pid: u32,
    stop: Box<dyn FnOnce() -> Result<(), String> + Send>,
}

impl std::fmt::Debug for RunningDm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningDm")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl RunningDm {
    /// A device model with its own way of being stopped (the fakes of the fault tests).
    pub fn new(pid: u32, stop: impl FnOnce() -> Result<(), String> + Send + 'static) -> Self {
        Self {
            pid,
            stop: Box::new(stop),
        }
    }

    /// Stops it and waits until it is gone.
    pub fn stop(self) -> Result<(), String> {
        (self.stop)()
    }
}

/// Starts a device model: [`launch`] on the real host, a fake in the fault tests.
pub type DmLauncher =
    Arc<dyn Fn(&XsConnection, &DmRequest) -> Result<RunningDm, DmError> + Send + Sync>;

/// The last bytes of `log`, on one line.
fn log_tail(log: &Path) -> String {
    let Ok(mut f) = File::open(log) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut buf = Vec::new();
    let _ = f.take(LOG_TAIL_BYTES).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines
        .get(lines.len().saturating_sub(3)..)
        .map(|l| l.join(" | "))
        .unwrap_or_default();
    if tail.is_empty() {
        "(empty log)".into()
    } else {
        tail.chars().filter(|c| !c.is_control()).collect()
    }
}

/// Stops the process group `child` leads: SIGTERM, then SIGKILL after [`STOP_GRACE`] for
/// whatever of the group is left; reaps it ([`crate::support::procgroup::stop_group`]).
fn stop_child(mut child: Child) -> Result<(), String> {
    crate::support::procgroup::stop_group(&mut child, STOP_GRACE);
    Ok(())
}

/// Starts QEMU for `req.domid` and waits until it reports `running` and has taken every
/// backend of `req.backends` (or exits, or the time is up, or a signal asks pvbuild to stop;
/// QEMU is then stopped again). libxl waits for `running` alone: a disk QEMU cannot open is
/// then missing from a guest that runs anyway; pvbuild refuses to start such a guest.
pub fn launch(xs: &XsConnection, req: &DmRequest) -> Result<RunningDm, DmError> {
    if req.hvm.is_some() {
        hvm::check_privileges(&req.privileges).map_err(DmError::Hvm)?;
    }
    // The name is part of the log's path: one that would leave /var/log/xen is refused
    // (a domain another toolstack named).
    crate::xenstore::check_domain_name(&req.name)
        .map_err(|why| DmError::Log(req.log.clone(), std::io::Error::other(why)))?;
    // Whom it runs as: settled before anything is made.
    let runas = restrict::resolve_user(req.domid, &req.privileges, &restrict::SystemUsers)?;
    if let Some(r) = &runas {
        restrict::check_access(r, &req.images)?;
        // Restricted, it loses xenstore anyway (and is refused unless tried); otherwise its
        // xen-bus needs these once it runs as the user.
        if !req.privileges.restrict {
            restrict::check_devices(r)?;
        }
    }
    let xs_err = |step| move |source| DmError::Xenstore { step, source };
    let dir = device_model_dir(req.domid);
    let state_path = format!("{dir}/state");
    xs.mkdir(&dir).map_err(xs_err("creating its directory"))?;
    xs.rm(&state_path)
        .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) })
        .map_err(xs_err("clearing its state"))?;
    if let Some(parent) = req.log.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DmError::Log(req.log.clone(), e))?;
    }
    let log = File::create(&req.log).map_err(|e| DmError::Log(req.log.clone(), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| DmError::Log(req.log.clone(), e))?;
    // dm_restrict: the chroot is made afresh; from here every failure removes it again
    // (and the QMP sockets QEMU made).
    let chroot = if req.privileges.restrict {
        Some(restrict::make_chroot(req.domid)?)
    } else {
        None
    };
    let domid = req.domid;
    let leftovers = move || remove_files(domid);
    let restriction = Restriction {
        chroot,
        runas: runas.as_ref().map(|r| r.arg.clone()),
    };
    let args = match &req.hvm {
        Some(h) => hvm::qemu_args(req.domid, &req.name, h, &restriction),
        None => qemu_args(req.domid, &req.name, req.maxmem_mib, &restriction),
    };
    // libxl logs the same at debug level ("Spawning device-model ... with arguments").
    crate::support::log::debug(format_args!(
        "spawning device model {} with arguments: {}",
        req.program.display(),
        args.join(" ")
    ));
    let mut cmd = Command::new(&req.program);
    cmd.args(args)
        .env("XEN_QEMU_CONSOLE_LIMIT", "1048576")
        .envs(
            req.hvm
                .as_ref()
                .map(|_| hvm::extra_env(req.domid))
                .unwrap_or_default(),
        )
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .current_dir("/")
        .process_group(0);
    if restriction.chroot.is_some() {
        // SAFETY: the closure runs in the child between fork and exec; it makes only
        // async-signal-safe system calls (unshare, setrlimit), allocates nothing and touches
        // no lock (`restrict::preexec`).
        unsafe {
            cmd.pre_exec(|| restrict::preexec(restrict::RLIMITS));
        }
    }
    // In the create's crash-safety record before it runs (a kill before its pid reaches
    // xenstore still leaves it found).
    crate::build::journal::record_child(&mut cmd, "device-model");
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            leftovers();
            return Err(DmError::Spawn(req.program.clone(), e));
        }
    };
    let pid = child.id();
    crate::support::testhook::stop_at("device-model-spawned");
    let kill_uid = runas.filter(|r| r.own_uid).map(|r| r.uid);
    match wait_running(xs, req, child, pid, &state_path, kill_uid) {
        Ok(child) => {
            let hvm = req.hvm.is_some();
            // An HVM guest's QEMU is asked to quit over QMP first (as a user's `quit` would),
            // then its group is stopped as any other's.
            let stop = move || {
                if hvm {
                    hvm::quit(domid, pid, STOP_GRACE);
                }
                let r = stop_child(child);
                leftovers();
                r
            };
            if let Some(h) = &req.hvm {
                if let Err(e) = hvm::postconfig(xs, domid, h) {
                    let _ = stop();
                    return Err(DmError::PostConfig(e));
                }
            }
            Ok(RunningDm::new(pid, stop))
        }
        Err(e) => {
            leftovers();
            Err(e)
        }
    }
}

/// `/var/run/xen/qmp-libxl-<domid>` and `qmp-libxenstat-<domid>`: the QMP sockets QEMU
/// makes (a chrooted QEMU cannot remove them; libxl's `libxl__qmp_cleanup` does).
pub fn qmp_sockets(domid: u32) -> [PathBuf; 2] {
    ["qmp-libxl", "qmp-libxenstat"]
        .map(|s| Path::new(restrict::RUN_DIR).join(format!("{s}-{domid}")))
}

/// Removes what a stopped device model of `domid` leaves in dom0's file system: its QMP
/// sockets (only if they are sockets) and its chroot directory (only if empty).
pub fn remove_files(domid: u32) {
    use std::os::unix::fs::FileTypeExt;
    for s in qmp_sockets(domid) {
        if std::fs::symlink_metadata(&s).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(&s);
        }
    }
    if let Err(e) = restrict::remove_chroot(domid) {
        crate::say_err!("warning: {}: {e}", restrict::chroot_dir(domid).display());
    }
}

/// Records `pid` and waits for `running`; on any failure stops the child.
fn wait_running(
    xs: &XsConnection,
    req: &DmRequest,
    mut child: Child,
    pid: u32,
    state_path: &str,
    kill_uid: Option<u32>,
) -> Result<Child, DmError> {
    let logname = req.log.display().to_string();
    let recorded = xs
        .write(&pid_path(req.domid), &pid.to_string())
        .and_then(|()| {
            // As libxl: a uid that is this device model's alone is recorded, so that whatever
            // runs under it can be killed with it (`stop_for_domain`, and `xl destroy`).
            match kill_uid {
                Some(uid) => xs.write(&kill_uid_path(req.domid), &uid.to_string()),
                None => Ok(()),
            }
        });
    if let Err(source) = recorded {
        let _ = stop_child(child);
        return Err(DmError::Xenstore {
            step: "recording its pid",
            source,
        });
    }
    // Woken by watches on its state and on each backend's state; the child's exit is seen
    // at the latest one wait slice later.
    let watched: Vec<String> = std::iter::once(state_path.to_owned())
        .chain(req.backends.iter().map(|b| format!("{b}/state")))
        .collect();
    let paths: Vec<&str> = watched.iter().map(String::as_str).collect();
    let mut now = Progress::Starting;
    let waited = crate::xenstore::wait_watched(xs, &paths, Some(req.timeout), || {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Some(Err(Ended::Exited(status)))),
            Ok(None) => {}
            Err(e) => return Ok(Some(Err(Ended::Wait(e)))),
        }
        now = progress(xs, state_path, &req.backends)?;
        Ok::<_, XsError>(matches!(now, Progress::Ready).then_some(Ok(())))
    });
    match waited {
        Ok(Waited::Done(Ok(()))) => Ok(child),
        Ok(Waited::Done(Err(Ended::Exited(status)))) => Err(DmError::Exited {
            status: status.to_string(),
            log: logname,
            tail: log_tail(&req.log),
        }),
        Ok(Waited::Done(Err(Ended::Wait(e)))) => {
            let _ = stop_child(child);
            Err(DmError::Spawn(req.program.clone(), e))
        }
        Err(source) => {
            let _ = stop_child(child);
            Err(DmError::Xenstore {
                step: "reading its state",
                source,
            })
        }
        Ok(Waited::Interrupted) => {
            let _ = stop_child(child);
            Err(DmError::Interrupted)
        }
        Ok(Waited::TimedOut) => {
            // The log's end before the stop adds QEMU's "terminating on signal" to it.
            let (secs, log, tail) = (req.timeout.as_secs(), logname, log_tail(&req.log));
            let _ = stop_child(child);
            Err(match now {
                Progress::Waiting(backend) => DmError::Backend {
                    backend,
                    secs,
                    log,
                    tail,
                },
                _ => DmError::Timeout { secs, log, tail },
            })
        }
    }
}

/// Why a device model stopped starting other than by timing out.
enum Ended {
    /// It exited.
    Exited(std::process::ExitStatus),
    /// Waiting for it failed.
    Wait(std::io::Error),
}

/// How far a starting device model has come.
enum Progress {
    /// It has not said `running` yet.
    Starting,
    /// It runs, but has not taken this backend yet.
    Waiting(String),
    /// It runs and has taken every backend.
    Ready,
}

/// Reads how far the device model has come: its `state`, then each backend's `state`
/// (taken once past Initialising, 1).
fn progress(xs: &XsConnection, state_path: &str, backends: &[String]) -> Result<Progress, XsError> {
    if xs.read_opt(state_path)?.as_deref() != Some("running") {
        return Ok(Progress::Starting);
    }
    for b in backends {
        if !crate::devices::disk::backend_taken(xs.read_opt(&format!("{b}/state"))?.as_deref()) {
            return Ok(Progress::Waiting(b.clone()));
        }
    }
    Ok(Progress::Ready)
}

/// Whether `pid` is the device model of `domid`: its command line has `-xen-domid <domid>`
/// (a pid read from xenstore may since have been reused by another process).
fn is_device_model_of(pid: u32, domid: u32) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = domid.to_string();
    raw.split(|&b| b == 0)
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| matches!(w, [flag, id] if *flag == b"-xen-domid" && *id == want.as_bytes()))
}

/// Whether `pid` still runs (a zombie does not).
fn alive(pid: Pid) -> bool {
    // Reap it if it is ours (a `create --wait` that restarted the guest).
    let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Stops the device model of `domid` named in xenstore, if there is one and it is still that
/// domain's: SIGTERM, SIGKILL after [`STOP_GRACE`]. Returns its pid when one was stopped.
/// (What `pvbuild destroy` does, as libxl's `kill_device_model`.)
pub fn stop_for_domain(xs: &XsConnection, domid: u32) -> Result<Option<u32>, String> {
    stop_recorded(domid, &DmRecords::read(xs, domid)?)
}

/// What xenstore records of a domain's device model, read in one round trip before its
/// teardown: its QEMU's pid and own uid, its stub domain (of an HVM guest) and the QMP
/// proxy's pid (of a stub domain). Values that are not numbers count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmRecords {
    /// `image/device-model-pid`.
    pub pid: Option<u32>,
    /// `image/device-model-kill-uid`.
    pub kill_uid: Option<u32>,
    /// `image/device-model-domid` (not yet checked: [`stubdom::stub_of`]).
    pub stub: Option<u16>,
    /// `image/qmp-proxy-pid`.
    pub proxy_pid: Option<u32>,
}

impl DmRecords {
    /// Reads them for `domid`.
    pub fn read(xs: &XsConnection, domid: u32) -> Result<Self, String> {
        let paths = [
            pid_path(domid),
            kill_uid_path(domid),
            format!("{}/image/device-model-domid", dom_path(domid)),
            stubdom::proxy::pid_path(domid),
        ];
        let v = xs
            .read_many(&paths)
            .map_err(|e| format!("reading the device model's records: {e}"))?;
        let num = |i: usize| {
            v.get(i)
                .cloned()
                .flatten()
                .and_then(|s| s.trim().parse::<u32>().ok())
        };
        Ok(Self {
            pid: num(0),
            kill_uid: num(1),
            stub: num(2).and_then(|d| u16::try_from(d).ok()),
            proxy_pid: num(3),
        })
    }
}

/// [`stop_for_domain`] with the records already read.
pub fn stop_recorded(domid: u32, r: &DmRecords) -> Result<Option<u32>, String> {
    let stopped = stop_pid_for_domain(r.pid, domid)?;
    // A uid that was the device model's alone: nothing may keep running under it (a
    // compromised QEMU's children would keep their rights over the domain id).
    if let Some(uid) = r.kill_uid.filter(|&u| u != 0) {
        kill_uid(uid)?;
    }
    remove_files(domid);
    Ok(stopped)
}

/// SIGKILLs every process whose real, effective, saved or file-system uid is `uid`, until
/// none is left (a bounded number of rounds: a process forking faster than the scan is
/// reported, not chased for ever). libxl's reaper does this with `kill(-1)` from a child
/// whose effective uid is `uid`.
fn kill_uid(uid: u32) -> Result<(), String> {
    const ROUNDS: usize = 50;
    for _ in 0..ROUNDS {
        let mut found = false;
        for pid in procs_of_uid(uid) {
            found = true;
            let _ = kill(pid, Signal::SIGKILL);
        }
        if !found {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(format!(
        "processes of the device model's uid {uid} survive SIGKILL"
    ))
}

/// The processes (not zombies) that have `uid` among their uids.
fn procs_of_uid(uid: u32) -> Vec<Pid> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|st| {
                let field = |k: &str| {
                    st.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(str::to_owned)
                        .unwrap_or_default()
                };
                !field("State:").trim_start().starts_with('Z')
                    && field("Uid:")
                        .split_whitespace()
                        .any(|u| u.parse::<u32>().ok() == Some(uid))
            })
        })
        .map(Pid::from_raw)
        .collect()
}

/// [`stop_for_domain`]'s stop by the recorded pid.
fn stop_pid_for_domain(pid: Option<u32>, domid: u32) -> Result<Option<u32>, String> {
    let Some(pid) = pid.filter(|&p| p > 1) else {
        return Ok(None);
    };
    if !is_device_model_of(pid, domid) {
        return Ok(None);
    }
    Ok(terminate(pid, "device model")?.then_some(pid))
}

/// Stops process `pid` (`what`, for messages): SIGTERM, SIGKILL after [`STOP_GRACE`], and
/// waits until it is gone (reaped if it is this process's child), at most another grace.
/// `Ok(false)`: it was already gone.
pub(crate) fn terminate(pid: u32, what: &str) -> Result<bool, String> {
    let p = Pid::from_raw(i32::try_from(pid).map_err(|e| e.to_string())?);
    match kill(p, Signal::SIGTERM) {
        Ok(()) => {}
        Err(Errno::ESRCH) => return Ok(false),
        Err(e) => return Err(format!("stopping {what} {pid}: {}", e.desc())),
    }
    let deadline = Instant::now() + STOP_GRACE;
    while alive(p) {
        if Instant::now() >= deadline {
            let _ = kill(p, Signal::SIGKILL);
            let hard = Instant::now() + STOP_GRACE;
            while alive(p) {
                if Instant::now() >= hard {
                    return Err(format!("{what} {pid} survives SIGKILL"));
                }
                std::thread::sleep(POLL);
            }
            break;
        }
        std::thread::sleep(POLL);
    }
    Ok(true)
}

#[cfg(test)]
mod tests;

//! What a `pvbuild create` has acquired, on disk, so that a later pvbuild can undo it after
//! the create was killed (SIGKILL, a crash, a power cut of dom0's userspace) and its own undo
//! stack never ran.
//!
//! Each create keeps one record: a file `create-<pid>-<n>.journal` in [`JOURNAL_DIR`]
//! (`/run/pvbuild/create`, root only, tmpfs: gone at reboot, as the domains are), opened and
//! `flock`ed by the creating process for as long as it runs. The kernel releases the lock when
//! that process dies however it dies, so "the lock is free" means "its creator is gone".
//! The record is append-only, one line per acquisition, each line written with one `write`
//! and `fdatasync`ed before the acquisition it announces can happen:
//!
//! - `uuid U` before `XEN_DOMCTL_createdomain` (so a domain made just before the kill, whose
//!   id was never learnt, is found by its handle), then `domain N` once Xen returned its id;
//! - `dir P` before a private directory (the bootloader's) is made, `dir-gone P` after it is
//!   removed;
//! - `proc ROLE PID START` for every child pvbuild starts while the record is active (the
//!   bootloader, the device model, each hotplug script): written **by the child itself**,
//!   between fork and exec ([`record_child`]), so no program pvbuild starts ever runs
//!   unrecorded. `START` is the child's start time (`/proc/PID/stat` field 22), so a pid the
//!   kernel has since given to another process is never signalled; every child leads a process
//!   group of its own, and the whole group is stopped.
//! - `done` when the create ended by itself (succeeded, or failed with everything undone): the
//!   record is then removed.
//!
//! [`sweep_in`] undoes stale records (lock free, no `done`): it stops their processes, destroys
//! their domain and removes its xenstore entries (the device model named there, the
//! interfaces' hotplug `offline`, `/local/domain/N`, `/vm/<uuid>`, `/libxl/N`, the backends), and
//! removes their directories; then the record. `pvbuild destroy NAME|DOMID`, the next
//! `pvbuild create NAME` and `pvbuild cleanup` call it (docs/crash-safety.md).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::xenstore::Uuid;

/// Where the records live.
pub const JOURNAL_DIR: &str = "/run/pvbuild/create";

/// The first line of every record.
const MAGIC: &str = "pvbuild-journal 1";

/// The largest record read back (a create records a few dozen lines).
const RECORD_MAX: u64 = 1 << 20;

/// How long a recorded process group gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long a group may take to go after SIGKILL before the sweep reports it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What went wrong with a record.
#[derive(Debug, thiserror::Error)]
#[error("crash-safety record {path}: {what}: {source}")]
pub struct JournalError {
    /// The file (or directory).
    pub path: PathBuf,
    /// The step.
    pub what: &'static str,
    /// Why.
    pub source: io::Error,
}

fn jerr<'p>(path: &'p Path, what: &'static str) -> impl FnOnce(io::Error) -> JournalError + 'p {
    move |source| JournalError {
        path: path.to_owned(),
        what,
        source,
    }
}

/// One acquisition, as a line of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The domain's name (written first).
    Name(String),
    /// The UUID the domain is about to be created with.
    Uuid(Uuid),
    /// The domain Xen created.
    Domain(u16),
    /// A directory about to be made.
    Dir(PathBuf),
    /// That directory, removed.
    DirGone(PathBuf),
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

impl Entry {
    fn line(&self) -> String {
        match self {
            Entry::Name(n) => format!("name {}\n", hex(n.as_bytes())),
            Entry::Uuid(u) => format!("uuid {}\n", u.hyphenated()),
            Entry::Domain(d) => format!("domain {d}\n"),
            Entry::Dir(p) => format!("dir {}\n", hex(p.as_os_str().as_bytes())),
            Entry::DirGone(p) => format!("dir-gone {}\n", hex(p.as_os_str().as_bytes())),
        }
    }
}

/// A child recorded by itself: its role, pid (and process group) and start time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// What it is (`bootloader`, `device-model`, `hotplug`).
    pub role: String,
    /// Its pid, which is also its process group.
    pub pid: i32,
    /// Its start time, in clock ticks since boot.
    pub start: u64,
}

/// A record read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The creating process.
    pub owner: Option<i32>,
    /// The domain's name.
    pub name: Option<String>,
    /// The UUID of the domain it was creating.
    pub uuid: Option<Uuid>,
    /// The domain, once created.
    pub domid: Option<u16>,
    /// Domains the create made for the first one, after it (an HVM guest's stub domain):
    /// each UUID, and its id once Xen returned it.
    pub helpers: Vec<(Uuid, Option<u16>)>,
    /// Directories made and not removed.
    pub dirs: Vec<PathBuf>,
    /// Children started.
    pub procs: Vec<Proc>,
    /// The create ended by itself.
    pub done: bool,
}

impl Record {
    /// Reads a record's text: complete lines only (a line cut by the kill is ignored), and
    /// lines not understood are skipped. `None` without the first line.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let complete = match text.iter().rposition(|&b| b == b'\n') {
            Some(end) => text.get(..end)?,
            None => return None,
        };
        let mut lines = complete.split(|&b| b == b'\n');
        if lines.next()? != MAGIC.as_bytes() {
            return None;
        }
        let mut r = Record::default();
        for raw in lines {
            let Ok(line) = std::str::from_utf8(raw) else {
                continue;
            };
            let mut w = line.split(' ');
            match (w.next(), w.next(), w.next(), w.next()) {
                (Some("owner"), Some(p), None, None) => r.owner = p.parse().ok(),
                (Some("name"), Some(n), None, None) => {
                    r.name = unhex(n).and_then(|b| String::from_utf8(b).ok())
                }
                // The first domain is the create's; later ones are its helpers.
                (Some("uuid"), Some(u), None, None) => match Uuid::parse_str(u) {
                    Ok(u) if r.uuid.is_some() => r.helpers.push((u, None)),
                    Ok(u) => r.uuid = Some(u),
                    Err(_) => {}
                },
                (Some("domain"), Some(d), None, None) => match r.helpers.last_mut() {
                    Some((_, id)) => *id = d.parse().ok(),
                    None => r.domid = d.parse().ok(),
                },
                (Some("dir"), Some(p), None, None) => {
                    if let Some(b) = unhex(p) {
                        r.dirs.push(PathBuf::from(std::ffi::OsStr::from_bytes(&b)));
                    }
                }
                (Some("dir-gone"), Some(p), None, None) => {
                    if let Some(b) = unhex(p) {
                        let gone = PathBuf::from(std::ffi::OsStr::from_bytes(&b));
                        r.dirs.retain(|d| *d != gone);
                    }
                }
                (Some("proc"), Some(role), Some(pid), Some(start)) => {
                    if let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) {
                        if pid > 1 {
                            r.procs.push(Proc {
                                role: role.to_owned(),
                                pid,
                                start,
                            });
                        }
                    }
                }
                (Some("done"), None, None, None) => r.done = true,
                _ => {}
            }
        }
        Some(r)
    }
}

/// The open record of the running create.
#[derive(Debug)]
struct Active {
    file: File,
}

impl Active {
    fn append(&self, line: &str) -> io::Result<()> {
        // One write on an O_APPEND file: appended whole, never interleaved with a child's.
        (&self.file).write_all(line.as_bytes())?;
        self.file.sync_data()
    }
}

/// A create's record, held (locked) while the create runs.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    dir: PathBuf,
    active: Arc<Active>,
    _lock: Flock<File>,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Start time (field 22 of `/proc/PID/stat`) of `pid`, `None` when it does not exist.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 22)
}

/// Field `n` (1-based, as proc(5) counts) of a `stat` line; the name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn stat_field(stat: &[u8], n: usize) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = stat.get(close + 1..)?;
    let field = rest
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(n.checked_sub(3)?)?;
    std::str::from_utf8(field).ok()?.trim().parse().ok()
}

/// The state letter (field 3) and process group (field 5) of `pid`.
fn state_and_group(pid: i32) -> Option<(u8, i32)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let mut f = stat
        .get(close + 1..)?
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty());
    let state = *f.next()?.first()?;
    let _ppid = f.next()?;
    let pgrp = std::str::from_utf8(f.next()?).ok()?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether any process of group `pgid` is alive (zombies are not).
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(state_and_group)
        .any(|(state, g)| g == pgid && state != b'Z' && state != b'X')
}

static ACTIVE: Mutex<Option<Arc<Active>>> = Mutex::new(None);

#[cfg(test)]
thread_local! {
    /// Unit tests: the active record is per thread, so a test's record never collects the
    /// children other tests start meanwhile.
    static TEST_ACTIVE: std::cell::RefCell<Option<Arc<Active>>> = const { std::cell::RefCell::new(None) };
}

#[cfg(not(test))]
fn active() -> Option<Arc<Active>> {
    ACTIVE.lock().ok().and_then(|a| a.clone())
}

#[cfg(not(test))]
fn set_active(a: Option<Arc<Active>>) {
    if let Ok(mut g) = ACTIVE.lock() {
        *g = a;
    }
}

#[cfg(test)]
fn active() -> Option<Arc<Active>> {
    let _ = &ACTIVE;
    TEST_ACTIVE.with(|a| a.borrow().clone())
}

#[cfg(test)]
fn set_active(a: Option<Arc<Active>>) {
    TEST_ACTIVE.with(|c| *c.borrow_mut() = a);
}

impl Journal {
    /// Starts the record of a create of `name` in [`JOURNAL_DIR`], and makes it the active one
    /// (what [`note`] and [`record_child`] write to) until it is ended or dropped.
    pub fn begin(name: &str) -> Result<Self, JournalError> {
        Self::begin_in(&default_dir(), name)
    }

    /// [`Journal::begin`] in `dir`.
    pub fn begin_in(dir: &Path, name: &str) -> Result<Self, JournalError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(jerr(dir, "making directory"))?;
        let pid = std::process::id();
        // Made under a name the sweep skips, locked, filled, then renamed into place: a sweep
        // never sees a record whose creator has not locked it yet.
        let (tmp, file) = (0..1000u32)
            .find_map(|n| {
                let tmp = dir.join(format!("tmp-{pid}-{n}"));
                match File::options()
                    .read(true)
                    .append(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
                    .open(&tmp)
                {
                    Ok(f) => Some(Ok((tmp, f))),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(jerr(&tmp, "creating")(e))),
                }
            })
            .unwrap_or_else(|| {
                Err(jerr(dir, "creating")(io::Error::from(
                    io::ErrorKind::AlreadyExists,
                )))
            })?;
        let writer = file.try_clone().map_err(jerr(&tmp, "opening"))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| jerr(&tmp, "locking")(e.into()))?;
        let active = Arc::new(Active { file: writer });
        let head = format!("{MAGIC}\nowner {pid}\n{}", Entry::Name(name.into()).line());
        let fail = |e| {
            let _ = std::fs::remove_file(&tmp);
            jerr(&tmp, "writing")(e)
        };
        active.append(&head).map_err(fail)?;
        let path = (0..1000u32)
            .map(|n| dir.join(format!("create-{pid}-{n}.journal")))
            .find(|p| !p.exists())
            .ok_or_else(|| fail(io::Error::from(io::ErrorKind::AlreadyExists)))?;
        std::fs::rename(&tmp, &path).map_err(fail)?;
        sync_dir(dir).map_err(jerr(dir, "syncing"))?;
        set_active(Some(active.clone()));
        Ok(Self {
            path,
            dir: dir.to_owned(),
            active,
            _lock: lock,
        })
    }

    /// The record's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops being the active record (what [`note`] and [`record_child`] write to) while the
    /// record stays, locked, for as long as this value lives: `pvbuild serve --pool` keeps
    /// the records of the domains it prepared while other requests run.
    pub fn set_aside(&self) {
        if active().is_some_and(|a| Arc::ptr_eq(&a, &self.active)) {
            set_active(None);
        }
    }

    /// The create ended by itself (made the domain, or undid everything): the record says
    /// so, then goes.
    pub fn end(self) -> Result<(), JournalError> {
        self.active
            .append("done\n")
            .map_err(jerr(&self.path, "writing"))?;
        std::fs::remove_file(&self.path).map_err(jerr(&self.path, "removing"))?;
        sync_dir(&self.dir).map_err(jerr(&self.dir, "syncing"))
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // Kept (not ended): the lock goes with the file, and the next sweep undoes it.
        self.set_aside();
    }
}

/// The records' directory (unit tests: one of their own).
pub fn default_dir() -> PathBuf {
    #[cfg(test)]
    {
        std::env::temp_dir().join(format!("pvbuild-journal-test.{}", std::process::id()))
    }
    #[cfg(not(test))]
    {
        PathBuf::from(JOURNAL_DIR)
    }
}

/// Appends `e` to the active record, synced, if a create is running; nothing otherwise.
pub fn note(e: &Entry) -> io::Result<()> {
    match active() {
        Some(a) => a.append(&e.line()),
        None => Ok(()),
    }
}

/// Writes `proc ROLE PID START\n` for the calling process to `fd` and syncs it, without
/// allocating (it runs in a forked child): `stat` is `/proc/self/stat`.
fn record_self(fd: RawFd, stat: &std::ffi::CStr, role: &[u8]) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    // SAFETY: `stat` is a valid NUL-terminated path; open(2) is async-signal-safe.
    let sfd = unsafe { nix::libc::open(stat.as_ptr(), nix::libc::O_RDONLY | nix::libc::O_CLOEXEC) };
    if sfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `buf` is writable for its length; read(2) and close(2) are async-signal-safe.
    let n = unsafe { nix::libc::read(sfd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: `sfd` was opened above and is closed once.
    unsafe { nix::libc::close(sfd) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let start = stat_field(buf.get(..n).unwrap_or_default(), 22)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
    let pid = u64::from(std::process::id());
    let mut line = [0u8; 160];
    let mut at = 0usize;
    let mut put = |b: &[u8]| -> io::Result<()> {
        let end = at.checked_add(b.len()).filter(|&e| e <= line.len());
        let dst = end
            .and_then(|e| line.get_mut(at..e))
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        dst.copy_from_slice(b);
        at += b.len();
        Ok(())
    };
    let digits = |mut v: u64, out: &mut [u8; 20]| -> usize {
        let mut i = out.len();
        loop {
            i -= 1;
            if let Some(d) = out.get_mut(i) {
                *d = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || i == 0 {
                return i;
            }
        }
    };
    let (mut d1, mut d2) = ([0u8; 20], [0u8; 20]);
    let i1 = digits(pid, &mut d1);
    let i2 = digits(start, &mut d2);
    put(b"proc ")?;
    put(role)?;
    put(b" ")?;
    put(d1.get(i1..).unwrap_or_default())?;
    put(b" ")?;
    put(d2.get(i2..).unwrap_or_default())?;
    put(b"\n")?;
    let out = line.get(..at).unwrap_or_default();
    // SAFETY: `out` is a valid buffer; write(2) and fdatasync(2) are async-signal-safe.
    let w = unsafe { nix::libc::write(fd, out.as_ptr().cast(), out.len()) };
    if usize::try_from(w).ok() != Some(out.len()) {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is the record's open descriptor.
    if unsafe { nix::libc::fdatasync(fd) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the child `cmd` will start write its own `proc` line to the active record (if a
/// create is running) between fork and exec: it is recorded before it can do anything, and
/// it does not run at all if it cannot be recorded. `role` is a plain word. Call it after the
/// command's other `pre_exec` hooks (so it runs last, once the child leads its own group).
pub fn record_child(cmd: &mut std::process::Command, role: &'static str) {
    use std::os::unix::process::CommandExt;
    let Some(active) = active() else {
        return;
    };
    let stat = c"/proc/self/stat";
    // SAFETY: the closure runs in the child between fork and exec; `record_self` calls only
    // open, read, close, write and fdatasync (async-signal-safe), allocates nothing and takes
    // no lock. The record's descriptor stays open in the parent (`active`, moved into the
    // closure, lives as long as `cmd`).
    unsafe {
        cmd.pre_exec(move || record_self(active.file.as_raw_fd(), stat, role.as_bytes()));
    }
}

/// Which stale records a sweep undoes.
#[derive(Debug, Clone, Copy)]
pub enum Filter<'a> {
    /// Every one.
    All,
    /// Those of a create of this name.
    Name(&'a str),
    /// Those whose domain is this one.
    Domain(u16),
}

impl Filter<'_> {
    fn matches(&self, r: &Record) -> bool {
        match self {
            Filter::All => true,
            Filter::Name(n) => r.name.as_deref() == Some(*n),
            Filter::Domain(d) => r.domid == Some(*d),
        }
    }
}

/// What a sweep did for one record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// The record.
    pub path: PathBuf,
    /// The create's domain name.
    pub name: Option<String>,
    /// Its pid.
    pub owner: Option<i32>,
    /// Process groups stopped (role and pid).
    pub stopped: Vec<(String, i32)>,
    /// The domain destroyed (or whose entries were removed).
    pub domain: Option<u16>,
    /// Directories removed.
    pub dirs: Vec<PathBuf>,
    /// What could not be undone (the record then stays, for the next sweep).
    pub errors: Vec<String>,
}

impl std::fmt::Display for Swept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cleaned up after a killed create of {} (pid {}):",
            self.name.as_deref().unwrap_or("?"),
            self.owner.map_or_else(|| "?".into(), |p| p.to_string())
        )?;
        let mut parts = Vec::new();
        if !self.stopped.is_empty() {
            let procs: Vec<String> = self
                .stopped
                .iter()
                .map(|(r, p)| format!("{r} {p}"))
                .collect();
            parts.push(format!("stopped {}", procs.join(", ")));
        }
        if let Some(d) = self.domain {
            parts.push(format!("destroyed domain {d}"));
        }
        if !self.dirs.is_empty() {
            parts.push(format!("removed {} directory(ies)", self.dirs.len()));
        }
        if parts.is_empty() {
            parts.push("nothing was held".into());
        }
        if !self.errors.is_empty() {
            parts.push(format!("could not undo: {}", self.errors.join("; ")));
        }
        write!(f, " {}", parts.join(", "))
    }
}

/// What a sweep needs to undo a domain: [`crate::commands`] gives the real or the fake one.
pub trait DomainUndo {
    /// Whether domain `domid` exists, and its handle.
    fn handle_of(&self, domid: u16) -> Result<Option<[u8; 16]>, String>;
    /// Domains with this handle that xenstore does not know (never named).
    fn unnamed_with_handle(&self, handle: &[u8; 16]) -> Result<Vec<u16>, String>;
    /// Destroys `domid` (gone already is fine) and removes its xenstore entries and those
    /// of `uuid`.
    fn destroy(&self, domid: u16, uuid: Option<&Uuid>) -> Result<(), String>;
    /// Removes `/vm/<uuid>` alone (no domain of ours was found).
    fn remove_vm(&self, uuid: &Uuid) -> Result<(), String>;
}

/// Stops process group `p.pid` if it is still the one recorded: its leader has the recorded
/// start time, or its leader is gone and members remain (the kernel does not hand out a pid
/// still used as a process group). SIGTERM, [`STOP_GRACE`], SIGKILL. Returns whether it ran.
pub fn stop_recorded(p: &Proc) -> Result<bool, String> {
    match start_time(p.pid) {
        Some(s) if s == p.start => {}
        // Another process has the pid now: ours is gone, and its group with it.
        Some(_) => return Ok(false),
        None => {
            if !group_alive(p.pid) {
                return Ok(false);
            }
        }
    }
    let pg = Pid::from_raw(p.pid);
    let _ = killpg(pg, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while group_alive(p.pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if group_alive(p.pid) {
        let _ = killpg(pg, Signal::SIGKILL);
        let hard = Instant::now() + KILL_WAIT;
        while group_alive(p.pid) {
            if Instant::now() >= hard {
                return Err(format!("{} {} survives SIGKILL", p.role, p.pid));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(true)
}

/// Whether `p` names a directory a record may remove: one pvbuild makes.
fn removable_dir(p: &Path) -> bool {
    p.is_absolute()
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pvbuild-"))
}

fn undo(r: &Record, host: &dyn DomainUndo, out: &mut Swept) {
    // The processes first: a device model holds the guest's pages mapped, a hotplug script
    // may still be plugging an interface in.
    for p in r.procs.iter().rev() {
        match stop_recorded(p) {
            Ok(true) => out.stopped.push((p.role.clone(), p.pid)),
            Ok(false) => {}
            Err(e) => out.errors.push(e),
        }
    }
    // The create's domain first: its destroy takes its stub domain along when the two were
    // linked; then any helper domain left (in reverse order of creation).
    undo_domain(r.domid, r.uuid, host, out, true);
    for (u, d) in r.helpers.iter().rev() {
        undo_domain(*d, Some(*u), host, out, false);
    }
    for d in &r.dirs {
        if !removable_dir(d) {
            continue;
        }
        match std::fs::remove_dir_all(d) {
            Ok(()) => out.dirs.push(d.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => out.errors.push(format!("{}: {e}", d.display())),
        }
    }
}

/// Destroys a recorded domain if it is still the one recorded (by its handle), or removes its
/// `/vm` entry when the domain never got an id; `primary`: the create's own domain (reported
/// in `out.domain`).
fn undo_domain(
    domid: Option<u16>,
    uuid: Option<Uuid>,
    host: &dyn DomainUndo,
    out: &mut Swept,
    primary: bool,
) {
    let ours = match (domid, uuid) {
        (Some(d), Some(u)) => match host.handle_of(d) {
            // Ours, or gone (its stale entries are ours to remove).
            Ok(Some(h)) if h == *u.as_bytes() => Some(d),
            Ok(None) => Some(d),
            // The id belongs to another domain now.
            Ok(Some(_)) => None,
            Err(e) => {
                out.errors.push(e);
                return;
            }
        },
        (Some(d), None) => Some(d),
        // Killed between asking Xen for the domain and learning its id: found by its handle,
        // among the domains nobody has named in xenstore.
        (None, Some(u)) => match host.unnamed_with_handle(u.as_bytes()) {
            Ok(ids) => ids.first().copied(),
            Err(e) => {
                out.errors.push(e);
                return;
            }
        },
        (None, None) => None,
    };
    match ours {
        Some(d) => match host.destroy(d, uuid.as_ref()) {
            Ok(()) if primary => out.domain = Some(d),
            Ok(()) => {}
            Err(e) => out.errors.push(format!("domain {d}: {e}")),
        },
        None => {
            if let Some(u) = &uuid {
                if let Err(e) = host.remove_vm(u) {
                    out.errors.push(e);
                }
            }
        }
    }
}

/// Undoes every stale record in `dir` that `filter` selects (a record is stale when no
/// process holds its lock and it does not say `done`); leaves the records of running
/// creates alone. Records whose creator died before renaming them into place (`tmp-PID-N`,
/// PID gone) are removed. Returns what was done, one entry per record.
pub fn sweep_in(dir: &Path, filter: Filter<'_>, host: &dyn DomainUndo) -> Vec<Swept> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let path = dir.join(&n);
        if let Some(rest) = n.strip_prefix("tmp-") {
            let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| start_time(p).is_none()) {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        if !(n.starts_with("create-") && n.ends_with(".journal")) {
            continue;
        }
        if let Some(s) = sweep_one(&path, filter, host) {
            out.push(s);
        }
    }
    let _ = sync_dir(dir);
    out
}

fn sweep_one(path: &Path, filter: Filter<'_>, host: &dyn DomainUndo) -> Option<Swept> {
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    // Held: its create runs (or another sweep has it).
    let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()?;
    // Removed meanwhile (its create ended, or another sweep finished it).
    if lock.metadata().ok()?.nlink() == 0 {
        return None;
    }
    let mut text = Vec::new();
    (&*lock).take(RECORD_MAX).read_to_end(&mut text).ok()?;
    let rec = Record::parse(&text).unwrap_or_default();
    if !rec.done && !filter.matches(&rec) {
        return None;
    }
    let mut s = Swept {
        path: path.to_owned(),
        name: rec.name.clone(),
        owner: rec.owner,
        ..Default::default()
    };
    if !rec.done {
        undo(&rec, host, &mut s);
    }
    if s.errors.is_empty() {
        let _ = std::fs::remove_file(path);
    }
    // A finished create's leftover record is removed quietly.
    (!rec.done).then_some(s)
}

#[cfg(test)]
mod tests;

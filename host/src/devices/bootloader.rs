//! Running a bootloader (pygrub) to take the kernel, ramdisk and command line out of the
//! guest's own disk, as libxl does (tools/libs/light/libxl_bootloader.c).
//!
//! What is the same as libxl: the program (`bootloader = "pygrub"`, looked up in Xen's private
//! bin directory when it is not a path), its arguments (`--kernel=`, `--ramdisk=`, `--args=`
//! from the config, `--output=FILE --output-format=simple0 --output-directory=DIR`, the
//! config's `bootloader_args`, then the first disk's path), its environment (`TERM=vt100` and
//! nothing else), its terminal (a pty, with the program as session leader), and the result
//! format: NUL-separated items `kernel PATH`, `ramdisk PATH`, `args LINE`; an item of
//! `PATH_MAX * 2` bytes or more is skipped, an unknown one is warned about.
//!
//! What differs, on purpose:
//! - **The bootloader runs before any domain exists.** libxl creates the domain first (its
//!   pty is published as the domain's console so `xl console` can reach the menu). pvbuild
//!   needs no domid to run it, so a failing or hostile bootloader leaves nothing to destroy,
//!   and the kernel it extracts is parsed and planned before Xen is touched, like any other.
//!   With `create -c` the menu is on pvbuild's own terminal.
//! - **A deadline.** A bootloader that has not finished within the timeout (default
//!   [`DEFAULT_TIMEOUT`], `--bootloader-timeout`) is killed (its whole process group) and the
//!   create fails; libxl waits forever. The deadline holds with `-c` too (a user who wants to
//!   linger at the menu gives a longer timeout), and after the bootloader closed its terminal.
//! - **The result is not trusted.** libxl maps and then `unlink`s whatever paths the output
//!   names, as root. Here the kernel and ramdisk must be regular files (not symlinks) directly
//!   inside the private output directory pvbuild made for this run; anything else is refused.
//!   The output file is read through a bound ([`RESULT_MAX`]), the bootloader's terminal output
//!   is kept only as a bounded tail for error messages ([`LOG_KEEP`]), and the whole directory
//!   is removed when the run is dropped.
//! - **Restricted by default.** libxl runs pygrub as root unless `LIBXL_BOOTLOADER_RESTRICT`
//!   or `LIBXL_BOOTLOADER_USER` is set (or the config names `bootloader_user`); since XSA-443
//!   pygrub is security-supported only in that restricted mode. pvbuild restricts it unless the
//!   config says `bootloader_restrict = 0` (and neither variable is set, as libxl's variables
//!   take precedence): it passes libxl's `--runas=UID --quiet`, and pygrub then unshares its
//!   namespaces, chroots into an empty read-only tmpfs holding only the disk, drops to that
//!   user and limits what it may write. The user is `bootloader_user` /
//!   `LIBXL_BOOTLOADER_USER`, else `xen-qemuuser-shared`, else `xen-qemuuser-range-base`
//!   itself (libxl adds the domid to the range's base; pvbuild runs the bootloader before there
//!   is a domid, and domid 0's slot is never a guest's); never root ([`runas_uid`]).
//! - **Bounded files.** The bootloader runs with `RLIMIT_FSIZE` at the bound
//!   ([`DEFAULT_MAX_FILE`], `--bootloader-max-size`), and the kernel and ramdisk it names are
//!   opened without following links (`O_NOFOLLOW`), checked with `fstat` (a regular file, no
//!   larger than the bound) and read through that descriptor, never by name again.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use thiserror::Error;

/// The most of the result file that is read.
pub const RESULT_MAX: u64 = 64 * 1024;
/// Items this long or longer are skipped (libxl's `char buf[PATH_MAX * 2]`).
pub const ITEM_MAX: usize = 2 * 4096;
/// How much of the bootloader's terminal output is kept, for error messages.
pub const LOG_KEEP: usize = 16 * 1024;
/// How long a bootloader may run when nobody is at its menu.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a bootloader may write into one file, and the largest kernel or ramdisk taken
/// from it: pygrub's own bound in restricted mode (`LIMIT_FSIZE`, 128 MiB).
pub const DEFAULT_MAX_FILE: u64 = 128 << 20;
/// The user libxl shares between device models, and pvbuild's first choice for the bootloader.
pub const USER_SHARED: &str = "xen-qemuuser-shared";
/// The base of libxl's per-domain device-model users.
pub const USER_RANGE_BASE: &str = "xen-qemuuser-range-base";
/// Where Xen's tools install pygrub, newest first after sorting (`libxl__private_bindir_path`).
const PRIVATE_BINDIRS: &[&str] = &["/usr/libexec/xen/bin", "/usr/lib/xen/bin"];

/// What is wrong with a bootloader's result.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ResultError {
    /// The result file is larger than [`RESULT_MAX`].
    #[error("its result is larger than {RESULT_MAX} bytes")]
    TooLarge,
    /// No `kernel` item.
    #[error("it gave no kernel")]
    NoKernel,
    /// A path outside the output directory, or not a plain file name in it.
    #[error("its {what} {path:?} is not a file in the output directory it was given")]
    Outside {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path it named.
        path: String,
    },
    /// The named path is a symlink, a directory, a device... or missing.
    #[error("its {what} {path:?} is not a regular file")]
    NotRegular {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path it named.
        path: String,
    },
    /// An item that is not UTF-8.
    #[error("its {what} is not UTF-8")]
    NotUtf8 {
        /// `kernel`, `ramdisk` or `args`.
        what: &'static str,
    },
    /// The named file is larger than the bound.
    #[error("its {what} {path:?} is {size} bytes, more than the bound of {max} bytes (--bootloader-max-size)")]
    TooBig {
        /// `kernel` or `ramdisk`.
        what: &'static str,
        /// The path it named.
        path: String,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
    },
}

/// Why running the bootloader failed.
#[derive(Debug, Error)]
pub enum BootloaderError {
    /// The program was not found.
    #[error("bootloader {0:?} not found (looked in Xen's bin directories and PATH)")]
    NotFound(String),
    /// A file or directory for the run could not be made or read.
    #[error("bootloader: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The program ran past its deadline and was killed.
    #[error("bootloader {program} did not finish within {secs} s and was killed{}", tail_note(.tail))]
    Timeout {
        /// The program.
        program: String,
        /// The deadline.
        secs: u64,
        /// The end of what it printed.
        tail: String,
    },
    /// A signal asked pvbuild to stop: the program was killed.
    #[error("bootloader {program}: interrupted")]
    Interrupted {
        /// The program.
        program: String,
    },
    /// The program failed.
    #[error("bootloader {program} {status}{}", tail_note(.tail))]
    Failed {
        /// The program.
        program: String,
        /// How it ended.
        status: String,
        /// The end of what it printed.
        tail: String,
    },
    /// No unprivileged user to run the bootloader as.
    #[error("bootloader: cannot run it restricted: {0}")]
    Restrict(String),
    /// Its result was refused.
    #[error("bootloader {program}: {source}")]
    Result {
        /// The program.
        program: String,
        /// What is wrong.
        source: ResultError,
    },
}

fn tail_note(tail: &str) -> String {
    let text = plain_text(tail);
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    if last.is_empty() {
        String::new()
    } else {
        format!(
            " (its last output: {:?})",
            last.chars().take(200).collect::<String>()
        )
    }
}

/// What a terminal would show of `raw`, roughly: escape sequences (pygrub draws its menu
/// with curses) and control characters removed, carriage returns as line ends.
fn plain_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters up to a final byte in '@'..='~'.
                Some('[') => {
                    for f in chars.by_ref() {
                        if ('@'..='~').contains(&f) {
                            break;
                        }
                    }
                }
                // Character set designations take one more character.
                Some('(' | ')' | '*' | '+') => {
                    chars.next();
                }
                _ => {}
            },
            '\r' | '\n' => out.push('\n'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// What a bootloader chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootResult {
    /// The kernel it extracted.
    pub kernel: PathBuf,
    /// The ramdisk it extracted, if any.
    pub ramdisk: Option<PathBuf>,
    /// The command line, if it gave one.
    pub args: Option<String>,
    /// Items skipped (too long, unknown), as libxl warns about them.
    pub warnings: Vec<String>,
}

/// libxl's `bootloader_result_command`: `item` is `name`, then at least one space, then the
/// value (leading spaces dropped).
fn command<'a>(item: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let rest = item.strip_prefix(name.as_bytes())?;
    // C's isspace: space, \t, \n, \v, \f, \r.
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    if !rest.first().is_some_and(space) {
        return None;
    }
    let start = rest.iter().position(|b| !space(b)).unwrap_or(rest.len());
    rest.get(start..)
}

/// A `kernel` or `ramdisk` value: it must name a plain file directly inside `dir`.
fn file_in(dir: &Path, value: &[u8], what: &'static str) -> Result<PathBuf, ResultError> {
    let s = std::str::from_utf8(value).map_err(|_| ResultError::NotUtf8 { what })?;
    let path = Path::new(s);
    let outside = || ResultError::Outside {
        what,
        path: s.to_owned(),
    };
    let name = path.file_name().ok_or_else(outside)?;
    // Exactly DIR/NAME: no `..`, `.`, doubled or trailing slash, subdirectory or other place.
    let joined = dir.join(name);
    let plain = path.parent() == Some(dir) && joined.as_os_str() == path.as_os_str();
    if plain {
        Ok(joined)
    } else {
        Err(outside())
    }
}

/// Parses a bootloader's `simple0` result, given the output directory it was told to use.
/// Pure: the files it names are checked by [`check_files`].
pub fn parse_result(out: &[u8], dir: &Path) -> Result<BootResult, ResultError> {
    if out.len() as u64 > RESULT_MAX {
        return Err(ResultError::TooLarge);
    }
    let (mut kernel, mut ramdisk, mut args) = (None, None, None);
    let mut warnings = Vec::new();
    for item in out.split(|b| *b == 0) {
        if item.len() >= ITEM_MAX {
            let head = String::from_utf8_lossy(item.get(..150).unwrap_or(item)).into_owned();
            warnings.push(format!("overly long item `{head}...' skipped"));
            continue;
        }
        if let Some(v) = command(item, "kernel") {
            kernel = Some(file_in(dir, v, "kernel")?);
        } else if let Some(v) = command(item, "ramdisk") {
            ramdisk = Some(file_in(dir, v, "ramdisk")?);
        } else if let Some(v) = command(item, "args") {
            let s = std::str::from_utf8(v).map_err(|_| ResultError::NotUtf8 { what: "args" })?;
            args = Some(s.to_owned());
        } else if !item.is_empty() {
            warnings.push(format!(
                "unexpected output from bootloader: `{}'",
                String::from_utf8_lossy(item)
            ));
        }
    }
    Ok(BootResult {
        kernel: kernel.ok_or(ResultError::NoKernel)?,
        ramdisk,
        args,
        warnings,
    })
}

/// Opens one file a result names: without following a link (`O_NOFOLLOW`), without blocking
/// on a FIFO (`O_NONBLOCK`), then `fstat`: a regular file no larger than `max`.
fn open_result_file(path: &Path, what: &'static str, max: u64) -> Result<File, ResultError> {
    let not_regular = || ResultError::NotRegular {
        what,
        path: path.display().to_string(),
    };
    let file = File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|_| not_regular())?;
    let meta = file.metadata().map_err(|_| not_regular())?;
    if !meta.file_type().is_file() {
        return Err(not_regular());
    }
    if meta.len() > max {
        return Err(ResultError::TooBig {
            what,
            path: path.display().to_string(),
            size: meta.len(),
            max,
        });
    }
    Ok(file)
}

/// The files a result names, opened by [`open_result_file`].
#[derive(Debug)]
pub struct ResultFiles {
    /// The kernel.
    pub kernel: File,
    /// The ramdisk, if the result names one.
    pub ramdisk: Option<File>,
}

/// Opens the files a result names (see [`open_result_file`]).
pub fn open_files(r: &BootResult, max: u64) -> Result<ResultFiles, ResultError> {
    Ok(ResultFiles {
        kernel: open_result_file(&r.kernel, "kernel", max)?,
        ramdisk: r
            .ramdisk
            .as_deref()
            .map(|p| open_result_file(p, "ramdisk", max))
            .transpose()?,
    })
}

/// The uid to run the bootloader as, or `None` to run it as root, by libxl's rules for its
/// variables and pvbuild's default (restricted). `restrict` and `user` are the config's
/// `bootloader_restrict` and `bootloader_user`; `env` reads the environment; `lookup` finds a
/// user's uid by name.
pub fn runas_uid(
    restrict: Option<bool>,
    user: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Result<Option<u32>, BootloaderError> {
    let env_user = env("LIBXL_BOOTLOADER_USER");
    // libxl: the variables take precedence over the config; a user implies restriction.
    let restricted = env("LIBXL_BOOTLOADER_RESTRICT").is_some()
        || env_user.is_some()
        || restrict.unwrap_or(true);
    if !restricted {
        return Ok(None);
    }
    let named = env_user.as_deref().or(user);
    let uid = match named {
        Some(name) => lookup(name).ok_or_else(|| {
            BootloaderError::Restrict(format!("no user {name:?} (bootloader_user)"))
        })?,
        None => lookup(USER_SHARED)
            .or_else(|| lookup(USER_RANGE_BASE))
            .ok_or_else(|| {
                BootloaderError::Restrict(format!(
                    "neither {USER_SHARED} nor {USER_RANGE_BASE} exists: create one \
                     (useradd --system --no-create-home {USER_SHARED}), name another with \
                     bootloader_user or LIBXL_BOOTLOADER_USER, or run it as root with \
                     bootloader_restrict = 0"
                ))
            })?,
    };
    if uid == 0 {
        return Err(BootloaderError::Restrict(format!(
            "the user {} is root",
            named.unwrap_or(USER_SHARED)
        )));
    }
    Ok(Some(uid))
}

/// A user's uid from the system's user database.
pub fn system_uid(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// Finds the bootloader program: a path as given, else in Xen's private bin directories
/// (as libxl looks in `libxl__private_bindir_path()`), else on `PATH`.
pub fn find_program(name: &str) -> Result<PathBuf, BootloaderError> {
    let not_found = || BootloaderError::NotFound(name.to_owned());
    if name.is_empty() {
        return Err(not_found());
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() { Ok(p) } else { Err(not_found()) };
    }
    // Debian installs Xen's private binaries in /usr/lib/xen-<version>/bin.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("xen-"))
                })
                .map(|p| p.join("bin"))
                .collect()
        })
        .unwrap_or_default();
    // Newest version first, by number (4.17 after 4.9).
    dirs.sort_by_key(|d| std::cmp::Reverse(version_key(d)));
    dirs.extend(PRIVATE_BINDIRS.iter().map(PathBuf::from));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(not_found)
}

/// The numbers in a `/usr/lib/xen-4.17/bin` path's version, for ordering.
fn version_key(dir: &Path) -> Vec<u64> {
    let name = dir
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.trim_start_matches("xen-")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `bootloader` (a name or a path).
    pub program: &'a str,
    /// `bootloader_args`.
    pub extra_args: &'a [String],
    /// The first disk's image or device.
    pub disk: &'a Path,
    /// `kernel`, `ramdisk`, the command line from the config: passed on as hints.
    pub kernel: Option<&'a Path>,
    /// See `kernel`.
    pub ramdisk: Option<&'a Path>,
    /// See `kernel`.
    pub cmdline: Option<&'a str>,
    /// Put the bootloader on this process's terminal (`create -c`).
    pub interactive: bool,
    /// The deadline (interactive or not).
    pub timeout: Duration,
    /// Run it restricted as this uid (libxl's `--runas=UID --quiet`); `None`: as root.
    pub runas: Option<u32>,
    /// The largest file it may write, and the largest kernel or ramdisk taken from it.
    pub max_file: u64,
    /// Where to make the private output directory (default: the system's temporary directory).
    pub work_dir: Option<&'a Path>,
}

/// A private directory, removed with everything in it when dropped.
#[derive(Debug)]
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new(parent: &Path) -> Result<Self, BootloaderError> {
        let io_err = |path: PathBuf| {
            move |source| BootloaderError::Io {
                what: "making directory",
                path,
                source,
            }
        };
        std::fs::create_dir_all(parent).map_err(io_err(parent.to_owned()))?;
        for n in 0..1000u32 {
            let path = parent.join(format!("pvbuild-bootloader.{}.{n}", std::process::id()));
            // In the create's crash-safety record before it exists.
            crate::build::journal::note(&crate::build::journal::Entry::Dir(path.clone()))
                .map_err(io_err(path.clone()))?;
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        Err(io_err(parent.to_owned())(io::Error::from(
            io::ErrorKind::AlreadyExists,
        )))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.0).is_ok() {
            let _ =
                crate::build::journal::note(&crate::build::journal::Entry::DirGone(self.0.clone()));
        }
    }
}

/// A finished run: what the bootloader chose, valid while this lives (the files are in a
/// private directory removed on drop).
#[derive(Debug)]
pub struct Extracted {
    /// The result, checked.
    pub result: BootResult,
    /// Its kernel and ramdisk, open.
    pub files: ResultFiles,
    /// The end of what the bootloader printed on its terminal.
    pub tail: String,
    _dir: PrivateDir,
}

/// The argument vector libxl's `make_bootloader_args` builds (without the program).
pub fn arguments(req: &Request<'_>, output: &Path, dir: &Path) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(k) = req.kernel {
        a.push(format!("--kernel={}", k.display()));
    }
    if let Some(r) = req.ramdisk {
        a.push(format!("--ramdisk={}", r.display()));
    }
    if let Some(c) = req.cmdline.filter(|c| !c.is_empty()) {
        a.push(format!("--args={c}"));
    }
    if let Some(uid) = req.runas {
        a.push(format!("--runas={uid}"));
        a.push("--quiet".into());
    }
    a.push(format!("--output={}", output.display()));
    a.push("--output-format=simple0".into());
    a.push(format!("--output-directory={}", dir.display()));
    a.extend(req.extra_args.iter().cloned());
    a.push(req.disk.display().to_string());
    a
}

/// Keeps the last [`LOG_KEEP`] bytes written.
#[derive(Debug, Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
        let excess = self.0.len().saturating_sub(LOG_KEEP);
        self.0.drain(..excess);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// Runs the bootloader `req` describes and returns what it chose. When interactive, its
/// terminal is relayed with this process's stdin (raw mode while it runs) and stdout.
pub fn run(req: &Request<'_>) -> Result<Extracted, BootloaderError> {
    if !req.interactive {
        return run_with(req, None);
    }
    let (mut input, _raw) =
        crate::devices::console::stdin_input().map_err(|e| BootloaderError::Io {
            what: "opening",
            path: "/dev/stdin".into(),
            source: io::Error::other(e),
        })?;
    let mut out = io::stdout();
    run_with(req, Some((&mut input, &mut out)))
}

/// The user's side of an interactive run: keystrokes in, the bootloader's display out.
type UserIo<'u> = (&'u mut File, &'u mut dyn Write);

/// [`run`], with the user's side given (`None`: nobody at the menu).
fn run_with(req: &Request<'_>, user: Option<UserIo<'_>>) -> Result<Extracted, BootloaderError> {
    let program = find_program(req.program)?;
    let name = program.display().to_string();
    let parent = req
        .work_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = PrivateDir::new(&parent)?;
    let outdir = dir.0.join("files");
    let output = dir.0.join("result");
    let mk = |what, path: &Path| {
        let path = path.to_owned();
        move |source| BootloaderError::Io { what, path, source }
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&outdir)
        .map_err(mk("making directory", &outdir))?;
    File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&output)
        .map_err(mk("creating", &output))?;

    let (master, slave) = open_pty().map_err(|e| BootloaderError::Io {
        what: "opening",
        path: "a pty".into(),
        source: e,
    })?;
    let child = spawn(
        &program,
        &arguments(req, &output, &outdir),
        slave,
        req.max_file,
    )
    .map_err(mk("starting", &program))?;
    crate::support::testhook::stop_at("bootloader-spawned");
    let mut master = File::from(master);
    // A deadline whether or not someone is at the menu: a bootloader that stops answering
    // must not hold the create forever (`--bootloader-timeout` for a longer stay).
    let deadline = Instant::now() + req.timeout;
    let (status, tail) = supervise(child, &mut master, user, deadline).map_err(|e| match e {
        Supervised::Io(source) => BootloaderError::Io {
            what: "relaying",
            path: program.clone(),
            source,
        },
        Supervised::Timeout(tail) => BootloaderError::Timeout {
            program: name.clone(),
            secs: req.timeout.as_secs(),
            tail,
        },
        Supervised::Interrupted => BootloaderError::Interrupted {
            program: name.clone(),
        },
    })?;
    if !status.success() {
        let status = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "failed".into(),
        };
        return Err(BootloaderError::Failed {
            program: name,
            status,
            tail,
        });
    }
    let mut out = Vec::new();
    File::open(&output)
        .and_then(|f| f.take(RESULT_MAX + 1).read_to_end(&mut out))
        .map_err(mk("reading", &output))?;
    let (result, files) = parse_result(&out, &outdir)
        .and_then(|r| open_files(&r, req.max_file).map(|f| (r, f)))
        .map_err(|source| BootloaderError::Result {
            program: name,
            source,
        })?;
    Ok(Extracted {
        result,
        files,
        tail,
        _dir: dir,
    })
}

/// A pty, both ends close-on-exec (so no other child pvbuild starts inherits them; the
/// bootloader gets the slave as its stdin, stdout and stderr, which `dup2` leaves open).
fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = File::options()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(name)?;
    // SAFETY: `into_raw_fd` gives up the PtyMaster's ownership of a valid open descriptor,
    // which the OwnedFd then owns alone.
    let master = unsafe {
        use std::os::fd::{FromRawFd, IntoRawFd};
        OwnedFd::from_raw_fd(master.into_raw_fd())
    };
    Ok((master, OwnedFd::from(slave)))
}

/// Starts `program` with `args` on the pty whose slave is `slave`: its stdin, stdout and
/// stderr, and its controlling terminal (libxl's `login_tty`), in a session of its own, with
/// only `TERM=vt100` in its environment, and at most `max_file` bytes in any file it writes
/// (`RLIMIT_FSIZE`'s soft limit).
fn spawn(program: &Path, args: &[String], slave: OwnedFd, max_file: u64) -> io::Result<Child> {
    // The hard limit leaves room for pygrub's own `setrlimit(RLIMIT_FSIZE, 128 MiB)` in
    // restricted mode, which fails where raising a hard limit is not permitted; what the
    // bootloader writes past `max_file` is refused by `open_result_file` all the same.
    let hard_fsize = max_file.max(DEFAULT_MAX_FILE);
    // libxl logs each at debug level ("bootloader arg: ...").
    for a in args {
        crate::support::log::debug(format_args!("bootloader arg: {a}"));
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("TERM", "vt100")
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: the closure runs in the child between fork and exec and calls only setsid(2),
    // ioctl(2) and setrlimit(2), all async-signal-safe; it allocates nothing and touches no
    // lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_FSIZE,
                max_file,
                hard_fsize,
            )?;
            // SAFETY: TIOCSCTTY takes an int argument; fd 0 is the pty slave set up above.
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    crate::build::journal::record_child(&mut cmd, "bootloader");
    // `cmd` (holding the parent's copies of the slave) is dropped on return, so the pty
    // reads EOF once the bootloader and its children have closed it.
    cmd.spawn()
}

enum Supervised {
    Io(io::Error),
    Timeout(String),
    Interrupted,
}

/// Relays the bootloader's terminal until it closes, then reaps it; kills its process group
/// at `deadline`.
fn supervise(
    mut child: Child,
    master: &mut File,
    user: Option<UserIo<'_>>,
    deadline: Instant,
) -> Result<(std::process::ExitStatus, String), Supervised> {
    let r = supervise_child(&mut child, master, user, deadline);
    if let Err(Supervised::Io(_)) = &r {
        // The relay broke (not the bootloader): it must not outlive its directory.
        stop_group(&mut child);
    }
    r
}

/// Ends the bootloader's process group, a second's grace ([`procgroup::stop_group`]).
fn stop_group(child: &mut Child) {
    crate::support::procgroup::stop_group(child, Duration::from_secs(1));
}

fn supervise_child(
    child: &mut Child,
    master: &mut File,
    user: Option<UserIo<'_>>,
    deadline: Instant,
) -> Result<(std::process::ExitStatus, String), Supervised> {
    let mut tail = Tail::default();
    let (mut input, mut display) = match user {
        Some((i, o)) => (Some(i), Some(o)),
        None => (None, None),
    };
    let mut buf = [0u8; 4096];
    let kill = |child: &mut Child, tail: &Tail| {
        stop_group(child);
        Supervised::Timeout(tail.text())
    };
    // Relay until the pty closes (every holder of the slave is gone).
    'relay: loop {
        if crate::support::interrupt::requested() {
            stop_group(child);
            return Err(Supervised::Interrupted);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(kill(child, &tail));
        }
        let timeout =
            PollTimeout::try_from(left.min(Duration::from_secs(1))).unwrap_or(PollTimeout::MAX);
        let (master_ready, input_ready) = {
            let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            if let Some(i) = &input {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Supervised::Io(e.into())),
            }
            let ready =
                |f: Option<&PollFd<'_>>| f.and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            (ready(fds.first()), ready(fds.get(1)))
        };
        if master_ready {
            match master.read(&mut buf) {
                Ok(0) => break 'relay,
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => break 'relay,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Supervised::Io(e)),
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    tail.push(data);
                    if let Some(d) = display.as_mut() {
                        d.write_all(data).map_err(Supervised::Io)?;
                        d.flush().map_err(Supervised::Io)?;
                    }
                }
            }
        }
        if input_ready {
            if let Some(i) = input.as_mut() {
                match i.read(&mut buf) {
                    Ok(0) => input = None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Supervised::Io(e)),
                    Ok(n) => master
                        .write_all(buf.get(..n).unwrap_or_default())
                        .map_err(Supervised::Io)?,
                }
            }
        }
    }
    // The terminal is closed; the program should be exiting. Wait for that on a pidfd (no
    // polling loop), until the deadline, waking at least every 250 ms for an interrupt.
    let pidfd = pidfd_open(child.id()).map_err(Supervised::Io)?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok((status, tail.text())),
            Ok(None) => {}
            Err(e) => return Err(Supervised::Io(e)),
        }
        if crate::support::interrupt::requested() {
            stop_group(child);
            return Err(Supervised::Interrupted);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(kill(child, &tail));
        }
        let slice =
            PollTimeout::try_from(left.min(Duration::from_millis(250))).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, slice) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Supervised::Io(e.into())),
        }
    }
}

/// A pidfd for process `pid` (Linux 5.3): readable once the process has exited.
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = nix::libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1; no
    // memory is passed.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = std::os::fd::RawFd::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing else.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

#[cfg(test)]
pub(crate) mod tests;

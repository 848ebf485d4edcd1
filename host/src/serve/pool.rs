//! `pvbuild serve --pool CONFIG --pool-size N`: domains made ahead of their creates, from one
//! config, and handed to the creates of that config. LightVM's split toolstack: the work that
//! does not depend on the request (the domain, its memory, its kernel loaded, its xenstore
//! entries, its interfaces plugged in) is done while the server is idle; a create that the
//! pool answers only names the domain and starts it.
//!
//! A prepared domain (a *shell*) is an ordinary `pvbuild create -p` of the pool's config,
//! named `pvbuild-pool-<server pid>-<n>` and left paused, with no monitor. A served `create`
//! takes one when its resolved config is the pool's but for the name, and when the config,
//! kernel and ramdisk files are those the shells were made from (their inode and change
//! times, [`FileStamp`]); then it renames the domain in xenstore (one transaction, which checks
//! the name as a create does), sets the name in the stored configuration, unpauses the guest
//! unless `-p`, and returns. Every other create is made as without a pool.
//!
//! What a pooled config may not have: a bootloader (it reads the guest's disk at each create),
//! disks (two shells would share the images), an HVM guest (its device model), a fixed
//! `uuid` (every shell would have it). Those are refused when the server starts.
//!
//! Crash safety: each shell keeps its create's record ([`crate::build::journal`]) open and
//! locked while it waits, so that a server killed with its shells leaves them to the next
//! sweep (`pvbuild cleanup`); a shell taken ends its record. A server stopped by a signal
//! destroys its shells itself.
//!
//! The shells are refilled between connections, while no request runs: a request never waits
//! for more than the shell being made when it came.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::build::journal::Journal;
use crate::commands::create::{self, CreateArgs};
use crate::commands::CommandError;
use crate::config::DomainConfig;
use crate::plan::filemap::FileStamp;
use crate::support::log;
use crate::xenstore::{self, Uuid, XsConnection};

/// The most shells a pool may hold.
pub const MAX_SIZE: usize = 64;

/// How long the pool waits before it prepares again after a preparation failed.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The stamps of a pooled config's files.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamps {
    config: FileStamp,
    kernel: Option<FileStamp>,
    ramdisk: Option<FileStamp>,
}

impl Stamps {
    fn of(config: &Path, cfg: &DomainConfig) -> std::io::Result<Self> {
        let opt = |p: &Option<PathBuf>| p.as_deref().map(FileStamp::of).transpose();
        Ok(Self {
            config: FileStamp::of(config)?,
            kernel: opt(&cfg.kernel)?,
            ramdisk: opt(&cfg.ramdisk)?,
        })
    }
}

/// Why `cfg` cannot be pooled, if it cannot.
pub fn unpoolable(cfg: &DomainConfig) -> Option<&'static str> {
    if cfg.bootloader.is_some() {
        Some("it has a bootloader, which reads the guest's disk at each create")
    } else if !cfg.disks.is_empty() {
        Some("it has disks, which the prepared domains would share")
    } else if cfg.hvm.is_some() {
        Some("it is an HVM guest, whose device model is not prepared ahead")
    } else if cfg.uuid.is_some() {
        Some("it sets a uuid, which every prepared domain would have")
    } else if cfg.kernel.is_none() {
        Some("it names no kernel")
    } else {
        None
    }
}

/// Whether a create with `args` may be answered by a shell at all: not `-n`, `-d`, a test's
/// `--fail-at`, a monitor's `--adopt`, nor one that stays with the guest.
pub fn fits(args: &CreateArgs) -> bool {
    !(args.dry_run
        || args.debug
        || args.fail_at.is_some()
        || args.adopt.is_some()
        || args.console
        || args.wait)
}

/// Whether `request` is the pool's config `pooled` under another name: then a shell is the
/// domain the create would make.
pub fn same_but_name(pooled: &DomainConfig, request: &DomainConfig) -> bool {
    let mut r = request.clone();
    r.name.clone_from(&pooled.name);
    r == *pooled
}

/// The name of a pool's `n`th shell, for the server of pid `pid`.
pub fn shell_name(pid: u32, n: u64) -> String {
    format!("pvbuild-pool-{pid}-{n}")
}

/// One prepared domain.
#[derive(Debug)]
struct Shell {
    domid: u16,
    name: String,
    uuid: Uuid,
    prepared_in: Duration,
    /// Its create's record, kept until the domain is taken or destroyed.
    journal: Journal,
}

/// The pool of one config.
#[derive(Debug)]
struct Pool {
    /// The config file, canonical.
    config: PathBuf,
    size: usize,
    /// The config as resolved when the shells were made (its own name).
    base: DomainConfig,
    stamps: Stamps,
    shells: VecDeque<Shell>,
    made: u64,
    retry_at: Option<Instant>,
    /// A create found the files changed: the next idle moment replaces the shells.
    stale: bool,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn lock() -> std::sync::MutexGuard<'static, Option<Pool>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The arguments of a shell's create: the config, paused, no monitor, through the kernel
/// cache.
fn shell_args(config: &Path) -> CreateArgs {
    CreateArgs {
        config: Some(config.to_path_buf()),
        paused: true,
        monitor: false,
        kernel_cache: true,
        ..CreateArgs::default()
    }
}

/// Reads `config` and checks it can be pooled: its config, resolved, and its files' stamps.
fn read_config(config: &Path) -> Result<(DomainConfig, Stamps), CommandError> {
    let base = create::resolve(&shell_args(config))?;
    if let Some(why) = unpoolable(&base) {
        return Err(CommandError::Usage(format!(
            "--pool {}: cannot be pooled: {why}",
            config.display()
        )));
    }
    let stamps = Stamps::of(config, &base)
        .map_err(|e| CommandError::Usage(format!("--pool {}: {e}", config.display())))?;
    Ok((base, stamps))
}

/// Sets the server's pool up: `size` shells of `config` (none made yet: [`fill_one`] makes
/// them while the server is idle).
pub fn install(config: &Path, size: usize) -> Result<(), CommandError> {
    if !(1..=MAX_SIZE).contains(&size) {
        return Err(CommandError::Usage(format!(
            "--pool-size {size}: 1 to {MAX_SIZE}"
        )));
    }
    let config = std::fs::canonicalize(config)
        .map_err(|e| CommandError::Usage(format!("--pool {}: {e}", config.display())))?;
    let (base, stamps) = read_config(&config)?;
    *lock() = Some(Pool {
        config,
        size,
        base,
        stamps,
        shells: VecDeque::new(),
        made: 0,
        retry_at: None,
        stale: false,
    });
    Ok(())
}

/// Whether the pool has shells to make now.
pub fn wants_more() -> bool {
    lock().as_ref().is_some_and(|p| {
        p.stale || (p.shells.len() < p.size && p.retry_at.is_none_or(|t| Instant::now() >= t))
    })
}

/// Destroys `shell` and ends its record (kept when the domain could not be destroyed, for
/// the next sweep).
fn discard(shell: Shell) -> Result<(), String> {
    let xen = crate::xen::Xen::open().map_err(|e| e.to_string())?;
    crate::commands::lifecycle::destroy_domid(&xen, shell.domid)
        .map_err(|e| format!("domain {} ({}): {e}", shell.domid, shell.name))?;
    create::end_journal(shell.journal);
    Ok(())
}

/// Makes one shell; `say` gets a line about it (the server's log). Runs between requests,
/// in the server's own context.
pub fn fill_one(say: &mut dyn FnMut(std::fmt::Arguments<'_>)) {
    let mut guard = lock();
    let Some(pool) = guard.as_mut() else {
        return;
    };
    // As a command of its own: no request's words, level or quiet flag.
    crate::support::invocation::set(
        vec!["create".into(), "-p".into(), pool.config.clone().into()],
        false,
    );
    log::set_level(0);
    crate::support::progress::set_quiet(true);
    // The config or its files changed since the shells were made: they go, and the pool
    // follows the config as it is now (or stops, if it can no longer be pooled).
    pool.stale = false;
    let now = read_config(&pool.config);
    match now {
        Ok((base, stamps)) if base == pool.base && stamps == pool.stamps => {}
        Ok((base, stamps)) => {
            say(format_args!(
                "pool: {} changed: its {} prepared domain(s) go",
                pool.config.display(),
                pool.shells.len()
            ));
            for s in pool.shells.drain(..) {
                if let Err(e) = discard(s) {
                    say(format_args!("pool: {e}"));
                }
            }
            pool.base = base;
            pool.stamps = stamps;
            pool.retry_at = None;
        }
        Err(e) => {
            say(format_args!("pool: stopped: {e}"));
            for s in pool.shells.drain(..) {
                if let Err(e) = discard(s) {
                    say(format_args!("pool: {e}"));
                }
            }
            *guard = None;
            return;
        }
    }
    if pool.shells.len() >= pool.size {
        return;
    }
    let name = shell_name(std::process::id(), pool.made);
    pool.made += 1;
    let mut cfg = pool.base.clone();
    cfg.name.clone_from(&name);
    let args = shell_args(&pool.config);
    let started = Instant::now();
    let uuid = Uuid::new_v4();
    let mut host = None;
    match create::start_journaled(&args, &cfg, uuid, &mut host, started) {
        Ok((Ok((domid, _)), Some(journal))) => {
            journal.set_aside();
            let prepared_in = started.elapsed();
            pool.shells.push_back(Shell {
                domid,
                name,
                uuid,
                prepared_in,
                journal,
            });
            pool.retry_at = None;
            say(format_args!(
                "pool: prepared domain {domid} in {:.3} ms ({} of {} ready)",
                prepared_in.as_secs_f64() * 1e3,
                pool.shells.len(),
                pool.size
            ));
        }
        Ok((r, _)) => {
            let why = r
                .err()
                .map_or_else(|| "no record".to_owned(), |e| e.to_string());
            pool.retry_at = Some(Instant::now() + RETRY_AFTER);
            say(format_args!(
                "pool: preparing {name} failed: {why}; again in {} s",
                RETRY_AFTER.as_secs()
            ));
        }
        Err(e) => {
            pool.retry_at = Some(Instant::now() + RETRY_AFTER);
            say(format_args!(
                "pool: preparing {name} failed: {e}; again in {} s",
                RETRY_AFTER.as_secs()
            ));
        }
    }
}

/// Destroys every shell (the server is stopping).
pub fn drain(say: &mut dyn FnMut(std::fmt::Arguments<'_>)) {
    let Some(mut pool) = lock().take() else {
        return;
    };
    let n = pool.shells.len();
    for s in pool.shells.drain(..) {
        if let Err(e) = discard(s) {
            say(format_args!("pool: {e}"));
        }
    }
    say(format_args!("pool: {n} prepared domain(s) destroyed"));
}

/// A served `create` of `base` (resolved from `args`): the domain, named and started as the
/// create asks, when the pool has one for it; `None` when the create is to be made as without
/// a pool. `started` is the request's start, for the line that says the domain was made.
pub fn take(
    args: &CreateArgs,
    base: &DomainConfig,
    started: Instant,
) -> Result<Option<u16>, CommandError> {
    if !crate::support::invocation::served() || !fits(args) {
        return Ok(None);
    }
    let mut guard = lock();
    let Some(pool) = guard.as_mut() else {
        return Ok(None);
    };
    // The pool's config file is the one asked for when it is the same file (its device and
    // inode: no path walk).
    let Some(asked) = args
        .config
        .as_deref()
        .and_then(|c| Stamps::of(c, base).ok())
    else {
        return Ok(None);
    };
    if !asked.config.same_file(&pool.stamps.config) || !same_but_name(&pool.base, base) {
        return Ok(None);
    }
    // Made from other files than these: not this create's domains (the next refill replaces
    // them).
    if asked != pool.stamps {
        log::info(format_args!(
            "pool: {} or its files changed since its domains were prepared: not used",
            pool.config.display()
        ));
        pool.stale = true;
        return Ok(None);
    }
    // At -vv, the take's steps as a create's (crate::build::steps).
    crate::build::steps::start();
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    crate::build::steps::lap("pool-match");
    while let Some(shell) = pool.shells.pop_front() {
        match xenstore::rename_domain(&xs, u32::from(shell.domid), &shell.name, &base.name) {
            Ok(()) => {
                crate::build::steps::lap("pool-rename");
                return finish(&xs, shell, args, base, started).map(Some);
            }
            // Taken: as a create of that name, refused; the shell stays for the next.
            Err(e @ xenstore::DomainXsError::NameTaken { .. }) => {
                pool.shells.push_front(shell);
                return Err(CommandError::Usage(e.to_string()));
            }
            // Gone or renamed meanwhile (`pvbuild destroy` of it): forgotten, and the next.
            Err(xenstore::DomainXsError::Renamed { .. }) => {
                log::info(format_args!(
                    "pool: domain {} ({}) is no longer the pool's",
                    shell.domid, shell.name
                ));
                create::end_journal(shell.journal);
            }
            Err(e) => {
                let msg = format!("naming prepared domain {}: {e}", shell.domid);
                return Err(match discard(shell) {
                    Ok(()) => CommandError::Usage(msg),
                    Err(d) => CommandError::Usage(format!("{msg}; undoing: {d}")),
                });
            }
        }
    }
    Ok(None)
}

/// The rest of a take once the shell has the create's name: its start time is the take's
/// (`xl uptime` counts from it), its stored configuration has the name, the guest starts
/// unless `-p`, and its record ends. A failure destroys it.
fn finish(
    xs: &XsConnection,
    shell: Shell,
    args: &CreateArgs,
    base: &DomainConfig,
    started: Instant,
) -> Result<u16, CommandError> {
    let domid = shell.domid;
    let name = &base.name;
    let timed = xs
        .write(
            &format!("{}/start_time", xenstore::vm_path(&shell.uuid)),
            &xenstore::start_time_string(std::time::SystemTime::now()),
        )
        .map_err(|e| format!("its start time: {e}"));
    crate::build::steps::lap("start-time");
    let stored = timed.and_then(|()| {
        crate::config::userdata::update_config_in(
            Path::new(crate::config::userdata::XEN_LIB_DIR),
            u32::from(domid),
            shell.uuid,
            |t| crate::config::libxl_json::set_name(t, name).map_err(|e| e.to_string()),
        )
        .map_err(|e| e.to_string())
    });
    crate::build::steps::lap("userdata");
    let unpaused = stored.and_then(|_| {
        if args.paused {
            Ok(())
        } else {
            crate::xen::Xen::open()
                .and_then(|x| x.unpause_domain(domid))
                .map_err(|e| format!("unpausing: {e}"))
        }
    });
    if let Err(msg) = unpaused {
        let msg = format!("prepared domain {domid}: {msg}");
        return Err(match discard(shell) {
            Ok(()) => CommandError::Usage(msg),
            Err(d) => CommandError::Usage(format!("{msg}; undoing: {d}")),
        });
    }
    if !args.paused {
        crate::build::steps::lap("unpause");
    }
    log::info(format_args!(
        "taken from the pool: domain {domid}, prepared as {} in {:.3} s",
        shell.name,
        shell.prepared_in.as_secs_f64()
    ));
    create::end_journal(shell.journal);
    crate::say!(
        "pvbuild: created domain {domid} ({name}) in {:.3} s{}",
        started.elapsed().as_secs_f64(),
        if args.paused { ", paused" } else { "" }
    );
    Ok(domid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small PV guest's config, resolved as a create resolves it.
    fn cfg() -> DomainConfig {
        let dir = std::env::temp_dir().join(format!("pvbuild-pool-cfg.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("small.cfg");
        std::fs::write(
            &f,
            "name = \"small\"\nkernel = \"/boot/k\"\nmemory = 16\nvif = [ 'bridge=xenbr0' ]\n",
        )
        .expect("write");
        create::resolve(&shell_args(&f)).expect("a config")
    }

    #[test]
    fn a_request_under_another_name_is_the_pools() {
        let pooled = cfg();
        let mut r = cfg();
        r.name = "other".into();
        assert!(same_but_name(&pooled, &r));
        r.memory_mib = 32;
        assert!(!same_but_name(&pooled, &r));
        let mut r = cfg();
        r.cmdline = Some("quiet".into());
        assert!(!same_but_name(&pooled, &r));
    }

    #[test]
    fn what_cannot_be_pooled_is_named() {
        assert_eq!(unpoolable(&cfg()), None);
        let mut c = cfg();
        c.uuid = Some(Uuid::new_v4());
        assert!(unpoolable(&c).is_some_and(|w| w.contains("uuid")));
        let mut c = cfg();
        c.bootloader = Some("pygrub".into());
        assert!(unpoolable(&c).is_some_and(|w| w.contains("bootloader")));
        let mut c = cfg();
        c.kernel = None;
        assert!(unpoolable(&c).is_some());
    }

    #[test]
    fn only_a_plain_create_fits() {
        let plain = CreateArgs {
            paused: true,
            monitor: true,
            ..CreateArgs::default()
        };
        assert!(fits(&plain));
        for args in [
            CreateArgs {
                dry_run: true,
                ..plain.clone()
            },
            CreateArgs {
                debug: true,
                ..plain.clone()
            },
            CreateArgs {
                adopt: Some(3),
                ..plain.clone()
            },
            CreateArgs {
                wait: true,
                ..plain.clone()
            },
            CreateArgs {
                console: true,
                ..plain.clone()
            },
        ] {
            assert!(!fits(&args), "{args:?}");
        }
    }

    #[test]
    fn a_stamp_changes_with_the_file() {
        let dir = std::env::temp_dir().join(format!("pvbuild-pool-test.{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("k");
        std::fs::write(&f, b"one").expect("write");
        let a = FileStamp::of(&f).expect("stamp");
        assert_eq!(FileStamp::of(&f).expect("stamp"), a);
        std::fs::write(&f, b"other").expect("write");
        assert_ne!(FileStamp::of(&f).expect("stamp"), a);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn shells_are_named_by_server_and_number() {
        assert_eq!(shell_name(812, 3), "pvbuild-pool-812-3");
        assert!(xenstore::check_domain_name(&shell_name(u32::MAX, u64::MAX)).is_ok());
    }
}

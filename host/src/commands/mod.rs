//! The domain commands of `pvbuild`, as xl does them: the layer `main.rs` dispatches to, one
//! file per group ([`create`], [`lifecycle`], [`devices`]), each handler parsing its
//! arguments, calling the layer that does the work ([`crate::build`], [`crate::control`],
//! [`crate::devices`]) and mapping its error to a [`CommandError`].
//!
//! `create` works in two halves. Everything that reads outside input (the config file, the
//! kernel, the ramdisk, the command line) is parsed and the layout solved first, without
//! touching the hypervisor, so bad input never leaves a domain behind. Then
//! [`crate::build::domain::make_domain`] builds the domain, the xenstore entries are written
//! and the guest is unpaused; a failure in any of these undoes what came before it, in
//! reverse order.

pub mod create;
pub mod devices;
pub mod lifecycle;
pub mod manual;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pvbuild_core::limits::MAX_GUEST_CMDLINE;

use crate::build::domain::{
    hvm_dm_args, make_domain, FailAt, Host, Image, Prepared, BACKEND_DOMID,
};
use crate::build::pv;
use crate::config::{Action, DiskFormat, DomainConfig};
use crate::devices::vif::{self, HotplugAction};
use crate::devmodel::{self, DmRequest};
use crate::plan::{Inputs, PlanError};
use crate::support::log;
use crate::xen::{DomainInfo, Xen};
use crate::xenstore::{self, Uuid, VbdBackend, XsConnection};

/// Why a domain command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad arguments or config.
    #[error("{0}")]
    Usage(String),
    /// The config file.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The kernel or ramdisk, or their layout.
    #[error("{0}")]
    Input(#[from] PlanError),
    /// The hypervisor could not be reached or refused.
    #[error("{0}")]
    Xen(#[from] crate::xen::XenError),
    /// The domain build.
    #[error("create: {0}")]
    Create(#[from] pv::CreateError),
    #[error("creating the PVH domain: {0}")]
    Pvh(#[from] crate::build::pvh::PvhCreateError),
    /// An HVM guest's build.
    #[error("creating the HVM domain: {0}")]
    Hvm(#[from] crate::build::hvm::HvmCreateError),
    /// Xenstore.
    #[error("xenstore: {0}")]
    Xs(String),
    /// The console.
    #[error("console: {0}")]
    Console(#[from] crate::devices::console::ConsoleError),
    /// The bootloader.
    #[error("{0}")]
    Bootloader(#[from] crate::devices::bootloader::BootloaderError),
    /// A `disk` entry that cannot be attached.
    #[error("{0}")]
    Disk(#[from] crate::devices::disk::DiskError),
    /// A `vif` entry that cannot be attached.
    #[error("{0}")]
    Vif(#[from] vif::VifError),
    /// The device model.
    #[error("{0}")]
    DeviceModel(#[from] devmodel::DmError),
    /// The config's pool, cpus or scheduler parameters, which this host cannot honour.
    #[error("{0}")]
    Placement(#[from] crate::control::placement::PlacementError),
    /// A step after the build failed; what it made was undone.
    #[error("{step}: {msg}{}", crate::build::runner::undo_note(.undo_errors))]
    After {
        /// The step.
        step: &'static str,
        /// What went wrong.
        msg: String,
        /// Undo steps that failed.
        undo_errors: Vec<String>,
    },
    /// A signal asked pvbuild to stop; what was made was undone.
    #[error("interrupted")]
    Interrupted,
    /// `--wait` ran out of time.
    #[error("domain {0} did not shut down within {1} s")]
    Timeout(u16, u64),
    /// A shutdown or reboot request the guest did not take.
    #[error("{0}")]
    Control(#[from] crate::control::shutdown::ControlError),
    /// The domain's device lock.
    #[error("{0}")]
    Lock(#[from] crate::devices::domlock::LockError),
}

impl From<crate::xenstore::XsError> for CommandError {
    fn from(e: crate::xenstore::XsError) -> Self {
        CommandError::Xs(e.to_string())
    }
}

/// The xl shutdown reason names.
pub fn shutdown_reason_name(code: u32) -> &'static str {
    match code {
        0 => "poweroff",
        1 => "reboot",
        2 => "suspend",
        3 => "crash",
        4 => "watchdog",
        5 => "soft_reset",
        _ => "unknown",
    }
}

/// From here a signal is a request to stop at the next safe point ([`crate::support::interrupt`]), so
/// that what a command made is undone. (Not in unit tests: Ctrl-C must still stop `cargo
/// test`; they set the flag per thread.)
pub(crate) fn catch_signals() -> Result<(), CommandError> {
    #[cfg(not(test))]
    crate::support::interrupt::catch()
        .map_err(|e| CommandError::Usage(format!("installing signal handlers: {e}")))?;
    Ok(())
}

/// `v` for a terminal: control characters as `?`, at most `max` characters (then `...`).
pub(crate) fn printable(v: &str, max: usize) -> String {
    let mut out: String = v
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if v.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// The name xenstore gives `domid`, or `?`.
pub(crate) fn domain_name(xs: &XsConnection, domid: u16) -> String {
    xs.read_opt(&format!("{}/name", xenstore::dom_path(u32::from(domid))))
        .ok()
        .flatten()
        .unwrap_or_else(|| "?".to_owned())
}

/// A guest named by id or by name, for the commands that change it: dom0 is refused however
/// it is named (`0` or `Domain-0`).
pub(crate) fn lookup(target: &str) -> Result<u16, CommandError> {
    let id = lookup_any(target)?;
    if id == 0 {
        return Err(CommandError::Usage(format!(
            "{target:?} is domain 0: pvbuild does not act on dom0"
        )));
    }
    Ok(id)
}

/// A domain named by id or by name, dom0 included: for the commands that only read, or that
/// check dom0 themselves.
pub fn lookup_any(target: &str) -> Result<u16, CommandError> {
    if let Ok(id) = target.parse::<u16>() {
        return Ok(id);
    }
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    match xenstore::domid_by_name(&xs, target).map_err(|e| CommandError::Xs(e.to_string()))? {
        Some(id) => u16::try_from(id)
            .map_err(|_| CommandError::Usage(format!("domain id {id} out of range"))),
        None => Err(CommandError::Usage(format!("no domain named {target:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::create::*;
    use super::*;
    use crate::build::pv::CreateStep;

    #[test]
    fn dom0_is_refused_by_the_commands_that_change_a_guest() {
        let e = lookup("0").unwrap_err().to_string();
        assert!(e.contains("pvbuild does not act on dom0"), "{e}");
        assert_eq!(lookup_any("0").unwrap(), 0);
        assert_eq!(lookup("7").unwrap(), 7);
    }

    #[test]
    fn guest_written_values_are_shown_not_obeyed() {
        assert_eq!(printable("4", 80), "4");
        assert_eq!(printable("\u{1b}]0;owned\u{7}x", 80), "?]0;owned?x");
        assert_eq!(printable("a\nb\r", 80), "a?b?");
        assert_eq!(printable(&"z".repeat(100), 5), "zzzzz...");
    }

    #[test]
    fn the_bootloader_runs_and_its_kernel_is_planned_before_xen_is_opened() {
        use crate::devices::bootloader::tests::{debian_kernel, pygrub_disk, scratch};
        let work = scratch("create");
        let img = pygrub_disk(&work, &debian_kernel(), b"ramdisk", "console=hvc0");
        let args = CreateArgs {
            name: Some("g".into()),
            bootloader: Some("pygrub".into()),
            // Restricted runs need a user this test machine may not have (see the bootloader's
            // own tests for them).
            bootloader_as_root: true,
            disks: vec![format!("file:{},xvda,w", img.display())],
            memory_mib: Some(256),
            ..Default::default()
        };
        // This machine has no Xen: getting as far as opening it means the bootloader ran,
        // and the kernel it extracted was read, parsed and laid out.
        match create_cmd(&args) {
            Err(CommandError::Xen(_)) => {}
            other => panic!("{other:?}"),
        }
        // A bootloader that fails stops create before Xen.
        let bad = CreateArgs {
            bootloader: Some("/bin/false".into()),
            ..args.clone()
        };
        assert!(matches!(create_cmd(&bad), Err(CommandError::Bootloader(_))));
        // No disk, an empty one, a qcow2 one: refused up front.
        for (disks, want) in [
            (vec![], "no disk"),
            (vec![",,hdc,devtype=cdrom".to_string()], "empty"),
            (vec![format!("{},qcow2,xvda", img.display())], "qcow2"),
        ] {
            let a = CreateArgs {
                disks,
                ..args.clone()
            };
            let e = create_cmd(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let _ = std::fs::remove_dir_all(&work);
    }

    #[test]
    fn waiting_on_a_domain_someone_destroyed_ends_quietly() {
        use crate::xen::fake::{FakeConfig, FakeXen};
        let xen = Xen::with_backend(std::sync::Arc::new(
            FakeXen::new(FakeConfig::default()).unwrap(),
        ));
        let cfg = resolve(&CreateArgs {
            name: Some("g".into()),
            kernel: Some("/k".into()),
            ..Default::default()
        })
        .unwrap();
        // No such domain (destroyed before the monitor looked): done, no action, no error.
        assert_eq!(wait_and_act(&xen, 42, &cfg, None).unwrap().0, Next::Done);
    }

    #[test]
    fn shutdown_actions_as_xl_applies_them() {
        let mut cfg = resolve(&CreateArgs {
            name: Some("g".into()),
            kernel: Some("/k".into()),
            ..Default::default()
        })
        .unwrap();
        // xl's defaults: poweroff destroys, reboot restarts, crash destroys.
        assert_eq!(action_for(&cfg, 0), (Action::Destroy, true, Next::Done));
        assert_eq!(action_for(&cfg, 1), (Action::Restart, true, Next::Restart));
        assert_eq!(action_for(&cfg, 3), (Action::Destroy, true, Next::Done));
        assert_eq!(action_for(&cfg, 4).2, Next::Done, "watchdog");
        cfg.on_watchdog = Action::Restart;
        assert_eq!(action_for(&cfg, 4), (Action::Restart, true, Next::Restart));
        cfg.on_crash = Action::Preserve;
        assert_eq!(action_for(&cfg, 3), (Action::Preserve, false, Next::Done));
        cfg.on_poweroff = Action::CoredumpRestart;
        assert_eq!(action_for(&cfg, 0).2, Next::Restart);
        cfg.on_reboot = Action::RenameRestart;
        assert_eq!(
            action_for(&cfg, 1),
            (Action::RenameRestart, true, Next::Done)
        );
        // A suspended guest is left alone, whatever the config says (xl's handle_domain_death).
        cfg.on_poweroff = Action::Destroy;
        assert_eq!(action_for(&cfg, 2), (Action::Preserve, false, Next::Done));
    }

    #[test]
    fn fail_at_names_round_trip() {
        for s in FailAt::all() {
            assert_eq!(FailAt::from_name(s.name()), Some(s));
        }
        assert_eq!(FailAt::from_name("nonsense"), None);
        assert_eq!(FailAt::all().len(), CreateStep::ALL.len() + 4);
    }

    #[test]
    fn flags_alone_need_name_and_kernel() {
        let args = CreateArgs {
            kernel: Some("/nonexistent".into()),
            ..Default::default()
        };
        assert!(matches!(resolve(&args), Err(CommandError::Usage(_))));
        let args = CreateArgs {
            name: Some("g".into()),
            kernel: Some("/nonexistent/kernel".into()),
            ..Default::default()
        };
        // Input is read before Xen is opened: a missing kernel is an input error.
        assert!(matches!(create_cmd(&args), Err(CommandError::Input(_))));
    }

    #[test]
    fn bad_values_are_refused() {
        let base = CreateArgs {
            name: Some("g".into()),
            kernel: Some("/k".into()),
            ..Default::default()
        };
        let zero_mem = CreateArgs {
            memory_mib: Some(0),
            ..base.clone()
        };
        assert!(matches!(resolve(&zero_mem), Err(CommandError::Usage(_))));
        let long = CreateArgs {
            cmdline: Some("x".repeat(MAX_GUEST_CMDLINE)),
            ..base.clone()
        };
        assert!(matches!(resolve(&long), Err(CommandError::Usage(_))));
        assert!(resolve(&base).is_ok());
    }
}

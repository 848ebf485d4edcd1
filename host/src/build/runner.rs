//! The step runner every guest type's build shares: what a build made ([`Created`]), and the
//! guard that holds it ([`Building`]) with its undo stack, run in reverse when the build fails
//! or is abandoned, discarded when it is finished. The PV sequence ([`crate::build::pv`])
//! and the PVH and HVM ones ([`crate::build::pvh`], [`crate::build::hvm`]) return one;
//! the steps after the build ([`crate::build::domain::make_domain`]) push their own undo.

use std::fmt;

use pvbuild_core::addr::Mfn;

use crate::xen::{Xen, XenError};

/// libxl's `LIBXL_MAXMEM_CONSTANT`: KiB above the guest's memory allowed for its limit.
pub const MAXMEM_SLACK_KIB: u64 = 1024;

/// " (and undoing failed: ...)" when undo steps failed, else nothing.
pub(crate) fn undo_note(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" (and undoing failed: {})", errors.join("; "))
    }
}

/// Why [`gate`] stopped a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GateStop {
    /// The test-only failure switch (`--fail-at`) fired.
    #[error("failure injected for testing")]
    Injected,
    /// A signal (Ctrl-C, SIGTERM, SIGHUP) asked pvbuild to stop ([`crate::support::interrupt`]).
    #[error("interrupted")]
    Interrupted,
}

/// What runs before each step of a create, in every step runner (PV, PVH, HVM) and before
/// the steps after the build: the test hook's stop at `step` (kill-create's), then an
/// injected failure, then a pending signal.
pub(crate) fn gate(step: &str, injected: bool) -> Result<(), GateStop> {
    crate::support::testhook::stop_at(step);
    if injected {
        Err(GateStop::Injected)
    } else if crate::support::interrupt::requested() {
        Err(GateStop::Interrupted)
    } else {
        Ok(())
    }
}

/// What a successful build made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The new domain.
    pub domid: u16,
    /// Its memory in pages.
    pub nr_pages: u64,
    /// Machine frame of the xenstore ring.
    pub store_mfn: Mfn,
    /// Xenstore event channel (in the guest).
    pub store_port: u32,
    /// Machine frame of the console ring.
    pub console_mfn: Mfn,
    /// Console event channel (in the guest).
    pub console_port: u32,
    /// Machine frame of the pinned top page table.
    pub top_table_mfn: Mfn,
}

pub(crate) type UndoFn = Box<dyn FnOnce(&Xen) -> Result<(), String> + Send>;

/// A domain being built: undone on drop unless finished.
pub struct Building<'x> {
    xen: &'x Xen,
    undo: Vec<(&'static str, UndoFn)>,
    /// What was made.
    pub created: Created,
}

impl fmt::Debug for Building<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Building")
            .field("created", &self.created)
            .field(
                "undo",
                &self.undo.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

pub(crate) fn run_undo(xen: &Xen, undo: &mut Vec<(&'static str, UndoFn)>) -> Vec<String> {
    let mut errors = Vec::new();
    while let Some((name, f)) = undo.pop() {
        if let Err(e) = f(xen) {
            errors.push(format!("{name}: {e}"));
        }
    }
    errors
}

impl<'x> Building<'x> {
    /// A build made by a guest type's sequence ([`crate::build::pv`], [`crate::build::pvh`],
    /// [`crate::build::hvm`]), with its undo stack.
    pub(crate) fn from_parts(
        xen: &'x Xen,
        undo: Vec<(&'static str, UndoFn)>,
        created: Created,
    ) -> Self {
        Self { xen, undo, created }
    }

    /// Adds an undo step, run (in reverse order of pushing) if the build is abandoned.
    pub fn push_undo(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&Xen) -> Result<(), String> + Send + 'static,
    ) {
        self.undo.push((name, Box::new(f)));
    }

    /// Names of the pending undo steps, oldest first.
    pub fn undo_steps(&self) -> Vec<&'static str> {
        self.undo.iter().map(|(n, _)| *n).collect()
    }

    /// Unpauses the guest.
    pub fn unpause(&self) -> Result<(), XenError> {
        self.xen.unpause_domain(self.created.domid)
    }

    /// Keeps the domain: the undo stack is discarded.
    pub fn finish(mut self) -> Created {
        self.undo.clear();
        self.created.clone()
    }

    /// Abandons the build now, running the undo stack; returns the undo steps that failed.
    pub fn abandon(mut self) -> Vec<String> {
        run_undo(self.xen, &mut self.undo)
    }
}

impl Drop for Building<'_> {
    fn drop(&mut self) {
        let _ = run_undo(self.xen, &mut self.undo);
    }
}

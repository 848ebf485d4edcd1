//! Ctrl-C (and SIGTERM, SIGHUP) while `create` runs: noticed, not obeyed on the spot.
//!
//! A signal's default action would kill pvbuild between two hypercalls and leave a half-built
//! domain (and the bootloader's private directory) behind: no destructor runs. So `create`
//! installs [`catch`]: the handler only sets a flag, and the long operations look at it at
//! their boundaries: each build step ([`crate::build::pv`]), the steps after the build
//! ([`crate::build::domain::make_domain`]), the bootloader's relay loop (whose `poll` the signal
//! interrupts), the wait for a guest to shut down. Each then fails with its own error, so the
//! undo stack and the destructors run as for any other failure, and pvbuild exits with
//! `error: interrupted`.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    // Async-signal-safe: one atomic store.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT, SIGTERM and SIGHUP to the flag for the rest of the process's life. Without
/// `SA_RESTART`, so a blocking `poll` or `read` returns `EINTR` and its loop looks at the flag.
pub fn catch() -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and it
        // replaces no handler another part of the program relies on.
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Unit tests set this instead of the process-wide flag (which they never read), so
    /// tests running in parallel threads do not interrupt each other.
    static TEST_INTERRUPTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a signal asked pvbuild to stop.
#[cfg(not(test))]
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Whether a signal asked pvbuild to stop (unit tests: whether this thread's test said so).
#[cfg(test)]
pub fn requested() -> bool {
    TEST_INTERRUPTED.with(std::cell::Cell::get)
}

/// Test only: acts as if a signal had arrived (on this thread) or had not.
#[cfg(test)]
pub fn set_for_test(v: bool) {
    TEST_INTERRUPTED.with(|c| c.set(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_signal_sets_the_flag_and_does_not_kill() {
        catch().unwrap();
        nix::sys::signal::raise(Signal::SIGHUP).unwrap();
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        // Still alive, and the flag is set (other tests never read it: see `requested`).
        assert!(INTERRUPTED.load(Ordering::SeqCst));
        INTERRUPTED.store(false, Ordering::SeqCst);
        // Give the test process its default dispositions back (Ctrl-C stops `cargo test`).
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            // SAFETY: restoring the default disposition.
            unsafe { sigaction(sig, &default) }.unwrap();
        }
    }
}

//! A test-only hook: `PVBUILD_TEST_STOP_AT=STEP` makes `pvbuild create` stop at STEP, print
//! `pvbuild: test hook: stopped at STEP (pid N)` on stderr, and block there, so that a test can
//! kill it at that exact point (the harness's `kill-create` scenario sends SIGKILL). The steps
//! are those of `--fail-at list` (pvbuild stops where `--fail-at` would fail, before the step
//! runs), three points where a child runs: `bootloader-spawned` (the bootloader started,
//! its result not read), `device-model-spawned` (QEMU started, not yet running) and
//! `vif-hotplug-spawned` (a hotplug script's `online` started, not finished), and
//! `stubdom-built` (an HVM guest's stub domain and its dom0 QEMU made, not yet tied to the
//! guest). Without the
//! variable (or with a name matching no step) it does nothing. A Ctrl-C (SIGINT, SIGTERM,
//! SIGHUP) ends the block, and the create then stops as interrupted.

use std::time::Duration;

/// The variable.
pub const STOP_AT: &str = "PVBUILD_TEST_STOP_AT";

/// The points that are not `--fail-at` steps.
pub const SPAWN_POINTS: [&str; 4] = [
    "bootloader-spawned",
    "device-model-spawned",
    "vif-hotplug-spawned",
    "stubdom-built",
];

/// Blocks here if [`STOP_AT`] names `step`.
pub fn stop_at(step: &str) {
    if std::env::var_os(STOP_AT).is_none_or(|v| v != step) {
        return;
    }
    crate::say_err!(
        "pvbuild: test hook: stopped at {step} (pid {})",
        std::process::id()
    );
    while !crate::support::interrupt::requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

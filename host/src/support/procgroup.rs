//! Stopping a helper pvbuild started in a process group of its own (the bootloader, the
//! device model, a hotplug script): one way for all of them, so that a child the helper left
//! behind, or one that ignores SIGTERM, is never outlived.

use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How often [`stop_group`] looks whether the group is gone.
const POLL: Duration = Duration::from_millis(20);

/// Ends the process group `child` leads: SIGTERM, up to `grace` for the whole group (not
/// just its leader: a child that ignores SIGTERM outlives a leader that obeys it), then
/// SIGKILL for whatever is left; reaps the leader. A zero `grace` kills at once.
pub fn stop_group(child: &mut Child, grace: Duration) {
    let pgid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let _ = killpg(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut leader_done = false;
    while Instant::now() < deadline {
        if !leader_done {
            leader_done = matches!(child.try_wait(), Ok(Some(_)));
        }
        // Signal 0: does any process of the group remain (the leader reaped or not)?
        if leader_done && killpg(pgid, None).is_err() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.kill();
    let _ = child.wait();
}

//! Where the time of `pvbuild create` goes: each step's wall time, and the privcmd/evtchn
//! ioctls and xenstore requests it made, printed at `-vv` (issue 17).
//!
//! One line per step, on stderr, in the order the steps ran:
//!
//! ```text
//! pvbuild: step decode 4123.456 ms, 0 ioctls, 0 xenstore requests
//! pvbuild: step populate 12.003 ms, 2 ioctls, 0 xenstore requests
//! pvbuild: steps total 4301.220 ms, 58 ioctls, 31 xenstore requests
//! ```
//!
//! A step's time runs from the end of the step before it (or [`start`]) to its [`lap`], so
//! the steps add up to the total. The counters are process-wide and always kept (two relaxed
//! atomic additions per request, next to a system call); the lines only appear when
//! [`enable`]d, which `main` does at `-vv`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static IOCTLS: AtomicU64 = AtomicU64::new(0);
static XS_REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds spent making foreign mappings (part of the build step).
static MAP_NS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy)]
struct Mark {
    first: Instant,
    first_ioctls: u64,
    first_xs: u64,
    last: Instant,
    ioctls: u64,
    xs: u64,
    map_ns: u64,
}

static CLOCK: Mutex<Option<Mark>> = Mutex::new(None);

fn clock() -> MutexGuard<'static, Option<Mark>> {
    CLOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Turns the step lines on (or off).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the step lines are printed.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Counts one ioctl on privcmd or evtchn (a hypercall, a mapping, an event-channel call).
pub fn count_ioctl() {
    IOCTLS.fetch_add(1, Ordering::Relaxed);
}

/// Counts one xenstore request (one request-reply round trip).
pub fn count_xs_request() {
    XS_REQUESTS.fetch_add(1, Ordering::Relaxed);
}

/// Adds the time one foreign mapping took (reported as the build's `map` part).
pub fn add_map_time(d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    MAP_NS.fetch_add(ns, Ordering::Relaxed);
}

/// The counters so far: (ioctls, xenstore requests).
pub fn counts() -> (u64, u64) {
    (
        IOCTLS.load(Ordering::Relaxed),
        XS_REQUESTS.load(Ordering::Relaxed),
    )
}

fn now_mark() -> Mark {
    let t = Instant::now();
    let (ioctls, xs) = counts();
    Mark {
        first: t,
        first_ioctls: ioctls,
        first_xs: xs,
        last: t,
        ioctls,
        xs,
        map_ns: MAP_NS.load(Ordering::Relaxed),
    }
}

/// Starts the clock: the next [`lap`] measures from here.
pub fn start() {
    *clock() = Some(now_mark());
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The step line of `name`, which took `d` and made `ioctls` ioctls and `xs` xenstore requests.
pub fn line(name: &str, d: Duration, ioctls: u64, xs: u64) -> String {
    format!(
        "step {name} {:.3} ms, {ioctls} ioctls, {xs} xenstore requests",
        ms(d)
    )
}

/// Ends step `name`: prints its line (when enabled) and starts the next step's clock. Without
/// a [`start`] (`plan`, whose log is libxenguest's lines alone), does nothing.
pub fn lap(name: &str) {
    let mut c = clock();
    let now = now_mark();
    if let Some(prev) = *c {
        if enabled() {
            let d = now.last.saturating_duration_since(prev.last);
            let map_ns = now.map_ns.saturating_sub(prev.map_ns);
            let (io, xs) = (
                now.ioctls.saturating_sub(prev.ioctls),
                now.xs.saturating_sub(prev.xs),
            );
            if map_ns > 0 {
                // The build maps guest frames as it writes them: its two parts.
                let map = Duration::from_nanos(map_ns);
                crate::say_err!("pvbuild: {}", line("map", map, io, xs));
                crate::say_err!(
                    "pvbuild: {}",
                    line(&format!("{name}-write"), d.saturating_sub(map), 0, 0)
                );
            } else {
                crate::say_err!("pvbuild: {}", line(name, d, io, xs));
            }
        }
        *c = Some(Mark {
            first: prev.first,
            first_ioctls: prev.first_ioctls,
            first_xs: prev.first_xs,
            ..now
        });
    }
}

/// Prints the total since [`start`] (when enabled), and stops the clock.
pub fn total() {
    let mut c = clock();
    if let (Some(first), true) = (c.take(), enabled()) {
        let now = now_mark();
        crate::say_err!(
            "pvbuild: steps total {:.3} ms, {} ioctls, {} xenstore requests",
            ms(now.last.saturating_duration_since(first.first)),
            now.ioctls.saturating_sub(first.first_ioctls),
            now.xs.saturating_sub(first.first_xs)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_line_names_its_time_and_counts() {
        assert_eq!(
            line("populate", Duration::from_micros(12_345), 2, 0),
            "step populate 12.345 ms, 2 ioctls, 0 xenstore requests"
        );
    }

    #[test]
    fn the_counters_count() {
        let (io, xs) = counts();
        count_ioctl();
        count_xs_request();
        count_xs_request();
        let (io2, xs2) = counts();
        // Other tests may count at the same time: at least ours.
        assert!(io2 > io && xs2 >= xs + 2, "{io}->{io2} {xs}->{xs2}");
    }
}

//! Waiting for xenstore to say something: a watch wakes the wait, as libxl's `xswait` does,
//! instead of a fixed poll interval. One helper for every such wait (a backend leaving
//! Initialising, a backend reaching Closed, a guest acknowledging a control request, a
//! domain shutting down).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{XsConnection, XsError};

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited<T> {
    /// The condition held: what the check returned.
    Done(T),
    /// The time ran out first.
    TimedOut,
    /// A signal asked pvbuild to stop ([`crate::support::interrupt`]).
    Interrupted,
}

/// The longest a wait blocks before it looks at the condition again when no event came (for
/// conditions that are not all in xenstore, such as a device model's process), and at the
/// interrupt flag (a signal that comes while the wait blocks on xenstored's socket ends that
/// block at once; one that comes just before it is seen after this long).
pub const SLICE: Duration = Duration::from_millis(250);

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Watches `paths` (nodes, or special paths such as `@releaseDomain`) and calls `check` at
/// once, after every watch event and at least every [`SLICE`], until it returns `Some`,
/// `timeout` passes (`None`: no limit) or a signal asks pvbuild to stop. The watches are
/// removed again however the wait ends. A failed check ends the wait with its error.
pub fn wait_watched<T, E: From<XsError>>(
    xs: &XsConnection,
    paths: &[&str],
    timeout: Option<Duration>,
    check: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Waited<T>, E> {
    wait_watched_every(xs, paths, timeout, SLICE, check)
}

/// [`wait_watched`], calling `check` without an event at least every `slice` (not
/// [`SLICE`]): for long waits on conditions whose every change fires a watch, such as a
/// domain's shutdown (`@releaseDomain`). A signal still ends the wait at once: it interrupts
/// the wait on xenstored's socket.
pub fn wait_watched_every<T, E: From<XsError>>(
    xs: &XsConnection,
    paths: &[&str],
    timeout: Option<Duration>,
    slice: Duration,
    mut check: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Waited<T>, E> {
    let token = format!(
        "pvbuild-wait-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut watched: Vec<&str> = Vec::with_capacity(paths.len());
    let mut result = Ok(Waited::TimedOut);
    for p in paths {
        match xs.watch(p, &token) {
            Ok(()) => watched.push(p),
            Err(e) => {
                result = Err(E::from(e));
                break;
            }
        }
    }
    if result.is_ok() {
        result = wait_loop(xs, timeout, slice, &mut check);
    }
    // Best effort: the connection may be the reason the wait failed.
    for p in watched {
        let _ = xs.unwatch(p, &token);
    }
    result
}

fn wait_loop<T, E: From<XsError>>(
    xs: &XsConnection,
    timeout: Option<Duration>,
    slice: Duration,
    check: &mut impl FnMut() -> Result<Option<T>, E>,
) -> Result<Waited<T>, E> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        if let Some(v) = check()? {
            return Ok(Waited::Done(v));
        }
        if crate::support::interrupt::requested() {
            return Ok(Waited::Interrupted);
        }
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Waited::TimedOut);
                }
                left.min(slice)
            }
            None => slice,
        };
        xs.next_event(Some(slice))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::fake::FakeXenstore;
    use crate::xenstore::wire::MsgType;

    fn unwatched(store: &FakeXenstore) -> bool {
        store.log().iter().any(|(t, _)| *t == MsgType::Unwatch)
    }

    #[test]
    fn a_write_elsewhere_wakes_the_wait_long_before_a_slice() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        let writer = store.connect();
        xs.write("/t/state", "1").unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            writer.write("/t/state", "4").unwrap();
        });
        let started = Instant::now();
        let mut checks = 0;
        let got = wait_watched(&xs, &["/t/state"], Some(Duration::from_secs(10)), || {
            checks += 1;
            Ok::<_, XsError>(xs.read_opt("/t/state")?.filter(|v| v == "4"))
        })
        .unwrap();
        t.join().unwrap();
        assert_eq!(got, Waited::Done("4".to_owned()));
        assert!(started.elapsed() < Duration::from_secs(5));
        // Once at the start, once for the watch's first firing, once after the write: not a
        // poll loop.
        assert!(checks <= 4, "{checks} checks");
        assert!(unwatched(&store), "the watch was not removed");
    }

    #[test]
    fn the_time_runs_out_and_the_watch_goes() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        let started = Instant::now();
        let got = wait_watched(&xs, &["/never"], Some(Duration::from_millis(300)), || {
            Ok::<_, XsError>(None::<()>)
        })
        .unwrap();
        assert_eq!(got, Waited::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(290));
        assert!(unwatched(&store));
    }

    #[test]
    fn a_failed_check_ends_the_wait_with_its_error_and_the_watch_goes() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        let got = wait_watched(&xs, &["/x", "/y"], None, || {
            Err::<Option<()>, XsError>(XsError::Protocol {
                op: "test",
                what: "bad".into(),
            })
        });
        assert!(matches!(got, Err(XsError::Protocol { op: "test", .. })));
        assert!(unwatched(&store));
    }

    #[test]
    fn a_signal_ends_the_wait() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        crate::support::interrupt::set_for_test(true);
        let got = wait_watched(&xs, &["/x"], None, || Ok::<_, XsError>(None::<()>));
        crate::support::interrupt::set_for_test(false);
        assert_eq!(got.unwrap(), Waited::Interrupted);
    }
}

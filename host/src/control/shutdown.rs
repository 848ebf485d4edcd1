//! Asking a running guest to power off or reboot: the PV control protocol, as `xl shutdown`
//! and `xl reboot` use it (libxl's `libxl__domain_pvcontrol`).
//!
//! The toolstack writes the request (`poweroff`, `reboot`) to the guest's
//! `/local/domain/N/control/shutdown`; the guest's xenbus driver watches that node, clears it
//! to acknowledge, and shuts itself down with that reason. libxl waits up to 60 s for the
//! acknowledgement (an empty or removed node) and fails the request otherwise. What happens
//! to the domain after its shutdown is the business of whoever waits for it (`create
//! --wait`, the monitor, or nobody: the domain then stays shut down, as with xl).

use std::time::Duration;

use thiserror::Error;

use crate::xenstore::{wait_watched, Waited, XsConnection, XsError};

/// How long a guest has to acknowledge a request: libxl's 60 s.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// What the guest is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Power off (`xl shutdown`).
    Poweroff,
    /// Reboot (`xl reboot`).
    Reboot,
}

impl Request {
    /// The word written to `control/shutdown`.
    pub fn word(self) -> &'static str {
        match self {
            Request::Poweroff => "poweroff",
            Request::Reboot => "reboot",
        }
    }
}

/// A request the guest did not take.
#[derive(Debug, Error)]
pub enum ControlError {
    /// Xenstore refused or failed.
    #[error("domain {domid}: {step}: {source}")]
    Xenstore {
        /// The domain.
        domid: u32,
        /// What was being done.
        step: &'static str,
        /// The failure.
        source: XsError,
    },
    /// The domain has no xenstore home (it is not a domain a toolstack made, or it is gone).
    #[error("domain {0}: no /local/domain/{0} in xenstore")]
    NoDomain(u32),
    /// The guest did not clear the request in time: its PV drivers are not running (not booted
    /// yet, or a kernel without them), as libxl's "guest didn't acknowledge control request".
    #[error(
        "domain {domid}: the guest did not acknowledge the {word} request within {secs} s \
         (no PV control driver running?); the request stays in control/shutdown"
    )]
    NoAck {
        /// The domain.
        domid: u32,
        /// The request.
        word: &'static str,
        /// The limit.
        secs: u64,
    },
    /// A signal asked pvbuild to stop.
    #[error("domain {0}: interrupted while waiting for the guest's acknowledgement")]
    Interrupted(u32),
}

/// The node a request goes to.
pub fn shutdown_path(domid: u32) -> String {
    format!("/local/domain/{domid}/control/shutdown")
}

/// Writes `req` to `domid`'s `control/shutdown` and waits (at most `timeout`) until the guest
/// acknowledged it by clearing the node, or the node went away with the domain.
pub fn request(
    xs: &XsConnection,
    domid: u32,
    req: Request,
    timeout: Duration,
) -> Result<(), ControlError> {
    let xs_err = |step, source| ControlError::Xenstore {
        domid,
        step,
        source,
    };
    let home = crate::xenstore::dom_path(domid);
    if xs
        .read_opt(&home)
        .map_err(|e| xs_err("reading its home", e))?
        .is_none()
    {
        return Err(ControlError::NoDomain(domid));
    }
    let path = shutdown_path(domid);
    xs.write(&path, req.word())
        .map_err(|e| xs_err("writing control/shutdown", e))?;
    let acked = wait_watched(xs, &[&path], Some(timeout), || {
        let v = xs.read_opt(&path)?;
        Ok::<_, XsError>(v.is_none_or(|v| v.is_empty()).then_some(()))
    })
    .map_err(|e| xs_err("waiting for the acknowledgement", e))?;
    match acked {
        Waited::Done(()) => Ok(()),
        Waited::Interrupted => Err(ControlError::Interrupted(domid)),
        Waited::TimedOut => Err(ControlError::NoAck {
            domid,
            word: req.word(),
            secs: timeout.as_secs(),
        }),
    }
}

/// The node a SysRq key goes to.
pub fn sysrq_path(domid: u32) -> String {
    format!("/local/domain/{domid}/control/sysrq")
}

/// Whether `key` is one a guest can be sent: one printable ASCII character (xl: "sysrq must
/// be just one character").
pub fn sysrq_key(key: &str) -> Option<char> {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_graphic() => Some(c),
        _ => None,
    }
}

/// `xl sysrq` (libxl's `libxl_send_sysrq`): writes the magic SysRq `key` to `domid`'s
/// `control/sysrq`; the guest's xenbus driver clears the node and hands the key to its
/// kernel's SysRq handler. As with libxl, nothing is waited for.
pub fn sysrq(xs: &XsConnection, domid: u32, key: char) -> Result<(), ControlError> {
    let xs_err = |step, source| ControlError::Xenstore {
        domid,
        step,
        source,
    };
    if xs
        .read_opt(&crate::xenstore::dom_path(domid))
        .map_err(|e| xs_err("reading its home", e))?
        .is_none()
    {
        return Err(ControlError::NoDomain(domid));
    }
    xs.write(&sysrq_path(domid), &key.to_string())
        .map_err(|e| xs_err("writing control/sysrq", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::fake::FakeXenstore;

    /// A guest's xenbus driver: watches control/shutdown, clears what is written there and
    /// reports it.
    fn guest_driver(store: &FakeXenstore, domid: u32) -> std::thread::JoinHandle<Option<String>> {
        let xs = store.connect();
        let path = shutdown_path(domid);
        xs.watch(&path, "guest").unwrap();
        std::thread::spawn(move || {
            for _ in 0..50 {
                let _ = xs.next_event(Some(Duration::from_millis(100)));
                if let Some(v) = xs.read_opt(&path).unwrap().filter(|v| !v.is_empty()) {
                    xs.write(&path, "").unwrap();
                    return Some(v);
                }
            }
            None
        })
    }

    #[test]
    fn a_guest_that_clears_the_request_acknowledged_it() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        xs.write("/local/domain/7/name", "g").unwrap();
        let guest = guest_driver(&store, 7);
        request(&xs, 7, Request::Reboot, Duration::from_secs(10)).unwrap();
        assert_eq!(guest.join().unwrap().as_deref(), Some("reboot"));
        assert_eq!(
            xs.read_opt("/local/domain/7/control/shutdown").unwrap(),
            Some(String::new())
        );
    }

    #[test]
    fn no_acknowledgement_is_an_error_naming_the_request_and_the_request_stays() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        xs.write("/local/domain/8/name", "g").unwrap();
        let e = request(&xs, 8, Request::Poweroff, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(
            e,
            ControlError::NoAck {
                domid: 8,
                word: "poweroff",
                secs: 0
            }
        ));
        assert_eq!(
            xs.read_opt("/local/domain/8/control/shutdown").unwrap(),
            Some("poweroff".into())
        );
    }

    #[test]
    fn a_domain_without_a_home_gets_nothing_written() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        let e = request(&xs, 9, Request::Poweroff, ACK_TIMEOUT).unwrap_err();
        assert!(matches!(e, ControlError::NoDomain(9)));
        assert_eq!(
            xs.read_opt("/local/domain/9/control/shutdown").unwrap(),
            None
        );
    }

    #[test]
    fn a_domain_that_goes_away_meanwhile_counts_as_acknowledged() {
        let store = FakeXenstore::new();
        let xs = store.connect();
        xs.write("/local/domain/5/name", "g").unwrap();
        let other = store.connect();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.rm("/local/domain/5").unwrap();
        });
        request(&xs, 5, Request::Poweroff, Duration::from_secs(10)).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn a_sysrq_key_is_one_printable_character_written_to_control_sysrq() {
        assert_eq!(sysrq_key("h"), Some('h'));
        assert_eq!(sysrq_key("9"), Some('9'));
        for bad in ["", "hs", " ", "\n", "\u{e9}"] {
            assert_eq!(sysrq_key(bad), None, "{bad:?}");
        }
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        assert!(matches!(sysrq(&xs, 7, 'h'), Err(ControlError::NoDomain(7))));
        assert_eq!(xs.read_opt(&sysrq_path(7)).unwrap(), None);
        xs.write("/local/domain/7/name", "g").unwrap();
        sysrq(&xs, 7, 'h').unwrap();
        assert_eq!(xs.read(&sysrq_path(7)).unwrap(), "h");
    }
}

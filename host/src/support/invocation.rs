//! The command line this command was run with: the process's own, or a request's when the
//! resident toolstack ([`crate::serve`]) runs it. What is started again from it (the
//! background monitor, `create`'s `--adopt` run) must see the request's words, not the
//! server's.

use std::ffi::OsString;
use std::sync::Mutex;

/// The words after `pvbuild`, and whether a server runs them.
static CURRENT: Mutex<Option<(Vec<OsString>, bool)>> = Mutex::new(None);

/// The monitors a served `create` leaves for the server to start after its reply: domain id
/// and name.
static DEFERRED: Mutex<Vec<(u16, String)>> = Mutex::new(Vec::new());

/// Records the words of the command about to run (`served`: run by `pvbuild serve`).
pub fn set(args: Vec<OsString>, served: bool) {
    *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = Some((args, served));
}

/// The words after `pvbuild` of the running command (the process's own if none was set).
pub fn args() -> Vec<OsString> {
    match &*CURRENT.lock().unwrap_or_else(|p| p.into_inner()) {
        Some((a, _)) => a.clone(),
        None => std::env::args_os().skip(1).collect(),
    }
}

/// Whether the running command is a request of `pvbuild serve`.
pub fn served() -> bool {
    CURRENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .is_some_and(|(_, s)| *s)
}

/// Asks the server to start `domid`'s monitor once the request is answered.
pub fn defer_monitor(domid: u16, name: &str) {
    DEFERRED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((domid, name.to_owned()));
}

/// The monitors asked for since the last call, emptied.
pub fn take_deferred_monitors() -> Vec<(u16, String)> {
    std::mem::take(&mut *DEFERRED.lock().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_monitors_are_taken_once() {
        // Other tests do not defer monitors (only a served create does).
        defer_monitor(7, "a");
        defer_monitor(9, "b");
        assert_eq!(
            take_deferred_monitors(),
            vec![(7, "a".to_owned()), (9, "b".to_owned())]
        );
        assert!(take_deferred_monitors().is_empty());
    }
}

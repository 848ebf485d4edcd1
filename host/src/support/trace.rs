//! What the fakes acquire and release, in one order across both of them.
//!
//! [`crate::xen::fake::FakeXen`] and [`crate::xenstore::fake::FakeXenstore`] report the
//! resources they hand out (a domain, a mapping area; a domain's xenstore entries, an
//! introduced domain) to a shared [`Trace`]. A fault test then checks more than
//! "nothing was left": [`Trace::check_lifo`] proves each release undid the most recent
//! acquisition still held, so teardown ran in the exact reverse order of setup.

use std::sync::{Arc, Mutex, MutexGuard};

/// One acquisition or release, named by the fake that saw it ("domain 1", "area 0x7f..").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A resource was handed out.
    Acquire(String),
    /// A resource was handed out that lives and dies with another (its owner): xenstored's
    /// record of an introduced domain goes when the domain dies, not when the toolstack says.
    /// It stands outside the stack order, but must go while its owner is still held.
    AcquireOwned {
        /// The resource.
        what: String,
        /// Its owner.
        owner: String,
    },
    /// A resource was given back.
    Release(String),
}

/// A shared, ordered record of [`Event`]s.
#[derive(Clone, Debug, Default)]
pub struct Trace(Arc<Mutex<Vec<Event>>>);

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `what` was handed out.
    pub fn acquire(&self, what: String) {
        self.lock().push(Event::Acquire(what));
    }

    /// Records that `what`, owned by `owner`, was handed out.
    pub fn acquire_owned(&self, what: String, owner: String) {
        self.lock().push(Event::AcquireOwned { what, owner });
    }

    /// Records that `what` was given back.
    pub fn release(&self, what: String) {
        self.lock().push(Event::Release(what));
    }

    /// Every event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// Checks that every release gave back the most recently acquired resource still held
    /// (a stack discipline), and returns what is still held, oldest first. The error names
    /// the first release out of order, or of something never acquired.
    pub fn check_lifo(&self) -> Result<Vec<String>, String> {
        let mut held: Vec<String> = Vec::new();
        // Owned resources still held: (what, owner).
        let mut owned: Vec<(String, String)> = Vec::new();
        for (i, e) in self.lock().iter().enumerate() {
            match e {
                Event::Acquire(what) => held.push(what.clone()),
                Event::AcquireOwned { what, owner } => {
                    if !held.contains(owner) {
                        return Err(format!(
                            "event {i}: {what} acquired without its owner {owner}"
                        ));
                    }
                    owned.push((what.clone(), owner.clone()));
                }
                Event::Release(what) => {
                    if let Some(k) = owned.iter().position(|(w, _)| w == what) {
                        owned.remove(k);
                        continue;
                    }
                    if let Some((w, _)) = owned.iter().find(|(_, o)| o == what) {
                        return Err(format!(
                            "event {i}: released {what} while {w}, which it owns, was held"
                        ));
                    }
                    match held.last() {
                        Some(top) if top == what => {
                            held.pop();
                        }
                        Some(top) => {
                            return Err(format!(
                            "event {i}: released {what} while {top}, acquired after it, was held"
                        ))
                        }
                        None => return Err(format!("event {i}: released {what}, never acquired")),
                    }
                }
            }
        }
        held.extend(owned.into_iter().map(|(w, _)| w));
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_order_is_accepted_and_anything_else_named() {
        let t = Trace::new();
        t.acquire("a".into());
        t.acquire("b".into());
        t.release("b".into());
        assert_eq!(t.check_lifo(), Ok(vec!["a".to_string()]));
        t.acquire("c".into());
        t.release("a".into());
        assert_eq!(
            t.check_lifo(),
            Err("event 4: released a while c, acquired after it, was held".into())
        );
        let u = Trace::new();
        u.release("x".into());
        assert!(u.check_lifo().is_err());
    }

    #[test]
    fn owned_resources_go_while_their_owner_is_held() {
        let t = Trace::new();
        t.acquire("domain 1".into());
        t.acquire("entries".into());
        t.acquire_owned("introduced 1".into(), "domain 1".into());
        assert_eq!(
            t.check_lifo(),
            Ok(vec![
                "domain 1".to_string(),
                "entries".into(),
                "introduced 1".into()
            ])
        );
        // Outside the stack order: the entries may go first.
        t.release("entries".into());
        t.release("introduced 1".into());
        t.release("domain 1".into());
        assert_eq!(t.check_lifo(), Ok(vec![]));
        // But not after the owner.
        let u = Trace::new();
        u.acquire("domain 1".into());
        u.acquire_owned("introduced 1".into(), "domain 1".into());
        u.release("domain 1".into());
        assert!(u.check_lifo().unwrap_err().contains("which it owns"));
        let v = Trace::new();
        v.acquire_owned("introduced 1".into(), "domain 1".into());
        assert!(v.check_lifo().is_err());
    }
}

//! An in-process fake xenstored, for tests without Xen.
//!
//! [`FakeXenstore::connect`] gives a real [`XsConnection`] whose transport is this fake: every
//! request goes through the same encoder, reply parser and error paths as with xenstored.
//! The fake keeps a tree of nodes with permissions, transactions as snapshots (a commit after
//! another writer's change fails with EAGAIN, as in xenstored), watches across connections,
//! and the introduced domains. For fault tests it can fail the n-th request with an errno,
//! fail the next commits with EAGAIN, or answer with raw bytes.
//!
//! The fake is privileged (it treats every connection as dom0): permissions are stored and
//! returned, not enforced.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::conn::{Access, Perm, Transport, XsConnection};
use super::wire::{self, Errno, MsgType, HEADER_LEN};
use crate::support::trace::Trace;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
}

type Tree = BTreeMap<String, Node>;

#[derive(Debug)]
struct Tx {
    tree: Tree,
    start_gen: u64,
}

#[derive(Debug, Default)]
struct Conn {
    out: VecDeque<u8>,
    watches: Vec<(String, String)>,
}

#[derive(Debug)]
struct State {
    tree: Tree,
    generation: u64,
    txs: HashMap<u32, Tx>,
    next_tx: u32,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    introduced: BTreeMap<u32, (u64, u32)>,
    /// Stub domains and their targets (`XS_SET_TARGET`).
    targets: BTreeMap<u32, u32>,
    requests: u64,
    log: Vec<(MsgType, String)>,
    fail_at: Option<(u64, Errno)>,
    commit_eagain: u32,
    raw_replies: VecDeque<Vec<u8>>,
    /// Where domains' entries and introductions are reported, if a test asked.
    trace: Option<Trace>,
}

/// What the store holds for the trace: each guest's `/local/domain/N` and each introduced
/// domain.
fn held(s: &State) -> BTreeSet<String> {
    let dirs = s.tree.keys().filter_map(|k| {
        let n = k.strip_prefix("/local/domain/")?;
        (!n.contains('/') && n != "0").then(|| format!("xenstore entries of domain {n}"))
    });
    let introduced = s
        .introduced
        .keys()
        .map(|d| format!("introduced domain {d}"));
    dirs.chain(introduced).collect()
}

/// Reports `w` acquired: an introduction as owned by its domain (xenstored drops it when the
/// domain dies, see [`FakeXenstore::domain_died`]).
fn acquired(t: &Trace, w: &str) {
    match w.strip_prefix("introduced domain ") {
        Some(d) => t.acquire_owned(w.to_owned(), format!("domain {d}")),
        None => t.acquire(w.to_owned()),
    }
}

/// A fake xenstored shared by the connections made from it.
#[derive(Clone, Debug)]
pub struct FakeXenstore {
    state: Arc<Mutex<State>>,
}

impl Default for FakeXenstore {
    fn default() -> Self {
        Self::new()
    }
}

fn dom0_node() -> Node {
    Node {
        value: Vec::new(),
        perms: vec![Perm::new(0, Access::None)],
    }
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => path.get(..i),
        None => None,
    }
}

fn is_under(path: &str, top: &str) -> bool {
    top == "/"
        || path == top
        || (path.starts_with(top) && path.as_bytes().get(top.len()) == Some(&b'/'))
}

impl FakeXenstore {
    /// An empty store: `/`, `/local`, `/local/domain`, `/local/domain/0` (named Domain-0), as
    /// after `xen-init-dom0`.
    pub fn new() -> Self {
        let mut tree = Tree::new();
        for p in [
            "/",
            "/local",
            "/local/domain",
            "/local/domain/0",
            "/vm",
            "/libxl",
        ] {
            tree.insert(p.to_owned(), dom0_node());
        }
        tree.insert(
            "/local/domain/0/name".into(),
            Node {
                value: b"Domain-0".to_vec(),
                perms: vec![Perm::new(0, Access::None)],
            },
        );
        tree.insert(
            "/local/domain/0/domid".into(),
            Node {
                value: b"0".to_vec(),
                perms: vec![Perm::new(0, Access::None)],
            },
        );
        Self {
            state: Arc::new(Mutex::new(State {
                tree,
                generation: 0,
                txs: HashMap::new(),
                next_tx: 1,
                conns: HashMap::new(),
                next_conn: 1,
                introduced: BTreeMap::new(),
                targets: BTreeMap::new(),
                requests: 0,
                log: Vec::new(),
                fail_at: None,
                commit_eagain: 0,
                raw_replies: VecDeque::new(),
                trace: None,
            })),
        }
    }

    /// Reports each guest's `/local/domain/N` appearing or going, and each domain introduced
    /// or released, from now on to `trace`.
    pub fn set_trace(&self, trace: Trace) {
        self.lock().trace = Some(trace);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection to this store.
    pub fn connect(&self) -> XsConnection {
        let id = {
            let mut s = self.lock();
            let id = s.next_conn;
            s.next_conn += 1;
            s.conns.insert(id, Conn::default());
            id
        };
        XsConnection::with_transport(Box::new(FakeTransport {
            store: self.clone(),
            conn: id,
            inbuf: Vec::new(),
        }))
    }

    /// Every node with its value, sorted by path (the committed store).
    pub fn dump(&self) -> BTreeMap<String, String> {
        self.lock()
            .tree
            .iter()
            .map(|(k, n)| (k.clone(), String::from_utf8_lossy(&n.value).into_owned()))
            .collect()
    }

    /// A committed node's permissions.
    pub fn perms(&self, path: &str) -> Option<Vec<Perm>> {
        self.lock().tree.get(path).map(|n| n.perms.clone())
    }

    /// What xenstored does when Xen reports a domain dead (`VIRQ_DOM_EXC`): forgets the
    /// domain if it was introduced, and fires `@releaseDomain`.
    pub fn domain_died(&self, domid: u32) {
        let mut s = self.lock();
        let before = held(&s);
        if s.introduced.remove(&domid).is_some() {
            s.fire("@releaseDomain");
        }
        if let Some(t) = &s.trace {
            before
                .difference(&held(&s))
                .for_each(|w| t.release(w.clone()));
        }
    }

    /// Domains introduced and not released: domid -> (store mfn, store port).
    pub fn introduced(&self) -> BTreeMap<u32, (u64, u32)> {
        self.lock().introduced.clone()
    }

    /// Requests handled so far (across connections).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// The requests handled so far: type and first argument.
    pub fn log(&self) -> Vec<(MsgType, String)> {
        self.lock().log.clone()
    }

    /// Open transactions.
    pub fn open_transactions(&self) -> usize {
        self.lock().txs.len()
    }

    /// Make request number `n` (counting from the next one, 1-based) fail with `errno`.
    pub fn fail_request_in(&self, n: u64, errno: Errno) {
        let mut s = self.lock();
        let at = s.requests.saturating_add(n);
        s.fail_at = Some((at, errno));
    }

    /// Make the next `k` commits fail with EAGAIN.
    pub fn eagain_next_commits(&self, k: u32) {
        self.lock().commit_eagain = k;
    }

    /// Answer the next request with these raw bytes instead of the real reply.
    pub fn push_raw_reply(&self, bytes: Vec<u8>) {
        self.lock().raw_replies.push_back(bytes);
    }

    /// Write a node directly (as another toolstack component would), firing watches.
    pub fn poke(&self, path: &str, value: &str) {
        let mut s = self.lock();
        let perms = vec![Perm::new(0, Access::None)];
        write_node(&mut s.tree, path, value.as_bytes(), &perms);
        s.generation += 1;
        s.fire(path);
    }
}

fn write_node(tree: &mut Tree, path: &str, value: &[u8], default_perms: &[Perm]) {
    // Missing parents are created, inheriting their parent's permissions (as xenstored does).
    let mut missing = Vec::new();
    let mut p = Some(path);
    while let Some(q) = p {
        if tree.contains_key(q) {
            break;
        }
        missing.push(q.to_owned());
        p = parent_of(q);
    }
    for q in missing.iter().rev() {
        let perms = parent_of(q)
            .and_then(|par| tree.get(par))
            .map(|n| n.perms.clone())
            .unwrap_or_else(|| default_perms.to_vec());
        tree.insert(
            q.clone(),
            Node {
                value: Vec::new(),
                perms,
            },
        );
    }
    if let Some(n) = tree.get_mut(path) {
        n.value = value.to_vec();
    }
}

fn remove_subtree(tree: &mut Tree, path: &str) {
    tree.retain(|k, _| !is_under(k, path));
}

impl State {
    fn fire(&mut self, changed: &str) {
        for c in self.conns.values_mut() {
            let mut events = Vec::new();
            for (wpath, token) in &c.watches {
                if is_under(changed, wpath) || is_under(wpath, changed) {
                    events.push((changed.to_owned(), token.clone()));
                }
            }
            for (p, t) in events {
                if let Ok(b) = wire::encode(
                    MsgType::WatchEvent,
                    0,
                    0,
                    &[p.as_bytes(), t.as_bytes()],
                    true,
                ) {
                    c.out.extend(b);
                }
            }
        }
    }

    fn tree_for(&mut self, tx: u32) -> Result<&mut Tree, Errno> {
        if tx == 0 {
            Ok(&mut self.tree)
        } else {
            self.txs
                .get_mut(&tx)
                .map(|t| &mut t.tree)
                .ok_or(Errno::ENOENT)
        }
    }

    fn handle(
        &mut self,
        conn: u64,
        ty: MsgType,
        tx: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, Errno> {
        let args = wire::parse_list(payload).map_err(|_| Errno::EINVAL)?;
        let arg = |i: usize| args.get(i).cloned().ok_or(Errno::EINVAL);
        let abs = |p: String| -> String {
            if p.starts_with('/') || p.starts_with('@') {
                p
            } else {
                format!("/local/domain/0/{p}")
            }
        };
        let ok = b"OK\0".to_vec();
        match ty {
            MsgType::Read => {
                let p = abs(arg(0)?);
                let t = self.tree_for(tx)?;
                t.get(&p).map(|n| n.value.clone()).ok_or(Errno::ENOENT)
            }
            MsgType::Write => {
                // path\0value, the value not NUL-terminated and possibly containing NULs.
                let split = payload.iter().position(|b| *b == 0).ok_or(Errno::EINVAL)?;
                let p = abs(
                    String::from_utf8(payload.get(..split).unwrap_or(&[]).to_vec())
                        .map_err(|_| Errno::EINVAL)?,
                );
                let v = payload.get(split + 1..).unwrap_or(&[]).to_vec();
                let t = self.tree_for(tx)?;
                write_node(t, &p, &v, &[Perm::new(0, Access::None)]);
                if tx == 0 {
                    self.generation += 1;
                    self.fire(&p);
                }
                Ok(ok)
            }
            MsgType::Mkdir => {
                let p = abs(arg(0)?);
                let t = self.tree_for(tx)?;
                if !t.contains_key(&p) {
                    write_node(t, &p, b"", &[Perm::new(0, Access::None)]);
                    if tx == 0 {
                        self.generation += 1;
                        self.fire(&p);
                    }
                }
                Ok(ok)
            }
            MsgType::Rm => {
                let p = abs(arg(0)?);
                if p == "/" {
                    return Err(Errno::EINVAL);
                }
                let t = self.tree_for(tx)?;
                if t.contains_key(&p) {
                    remove_subtree(t, &p);
                    if tx == 0 {
                        self.generation += 1;
                        self.fire(&p);
                    }
                    Ok(ok)
                } else if parent_of(&p).is_some_and(|par| t.contains_key(par)) {
                    Ok(ok)
                } else {
                    Err(Errno::ENOENT)
                }
            }
            MsgType::Directory => {
                let p = abs(arg(0)?);
                let t = self.tree_for(tx)?;
                if !t.contains_key(&p) {
                    return Err(Errno::ENOENT);
                }
                let mut out = Vec::new();
                for k in t.keys() {
                    if k != &p && parent_of(k) == Some(p.as_str()) {
                        let name = k.rsplit('/').next().unwrap_or("");
                        out.extend_from_slice(name.as_bytes());
                        out.push(0);
                    }
                }
                Ok(out)
            }
            MsgType::GetPerms => {
                let p = abs(arg(0)?);
                let t = self.tree_for(tx)?;
                let n = t.get(&p).ok_or(Errno::ENOENT)?;
                let mut out = Vec::new();
                for perm in &n.perms {
                    out.extend_from_slice(perm.to_wire().as_bytes());
                    out.push(0);
                }
                Ok(out)
            }
            MsgType::SetPerms => {
                let p = abs(arg(0)?);
                let perms = args
                    .get(1..)
                    .unwrap_or(&[])
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| Perm::parse(s).ok_or(Errno::EINVAL))
                    .collect::<Result<Vec<_>, _>>()?;
                if perms.is_empty() {
                    return Err(Errno::EINVAL);
                }
                let t = self.tree_for(tx)?;
                let n = t.get_mut(&p).ok_or(Errno::ENOENT)?;
                n.perms = perms;
                if tx == 0 {
                    self.generation += 1;
                }
                Ok(ok)
            }
            MsgType::TransactionStart => {
                let id = self.next_tx;
                self.next_tx = self.next_tx.wrapping_add(1).max(1);
                self.txs.insert(
                    id,
                    Tx {
                        tree: self.tree.clone(),
                        start_gen: self.generation,
                    },
                );
                Ok(format!("{id}\0").into_bytes())
            }
            MsgType::TransactionEnd => {
                let t = self.txs.remove(&tx).ok_or(Errno::ENOENT)?;
                match arg(0)?.as_str() {
                    "F" => Ok(ok),
                    "T" => {
                        if self.commit_eagain > 0 {
                            self.commit_eagain -= 1;
                            return Err(Errno::EAGAIN);
                        }
                        if t.start_gen != self.generation {
                            return Err(Errno::EAGAIN);
                        }
                        let changed: Vec<String> = t
                            .tree
                            .iter()
                            .filter(|(k, n)| self.tree.get(*k) != Some(n))
                            .map(|(k, _)| k.clone())
                            .chain(
                                self.tree
                                    .keys()
                                    .filter(|k| !t.tree.contains_key(*k))
                                    .cloned(),
                            )
                            .collect();
                        self.tree = t.tree;
                        self.generation += 1;
                        for c in changed {
                            self.fire(&c);
                        }
                        Ok(ok)
                    }
                    _ => Err(Errno::EINVAL),
                }
            }
            MsgType::Introduce => {
                let domid: u32 = arg(0)?.parse().map_err(|_| Errno::EINVAL)?;
                let mfn: u64 = arg(1)?.parse().map_err(|_| Errno::EINVAL)?;
                let port: u32 = arg(2)?.parse().map_err(|_| Errno::EINVAL)?;
                if domid == 0 {
                    return Err(Errno::EINVAL);
                }
                self.introduced.insert(domid, (mfn, port));
                self.fire("@introduceDomain");
                Ok(ok)
            }
            MsgType::SetTarget => {
                let domid: u32 = arg(0)?.parse().map_err(|_| Errno::EINVAL)?;
                let target: u32 = arg(1)?.parse().map_err(|_| Errno::EINVAL)?;
                // xenstored: both must be introduced.
                if !self.introduced.contains_key(&domid) || !self.introduced.contains_key(&target) {
                    return Err(Errno::ENOENT);
                }
                self.targets.insert(domid, target);
                Ok(ok)
            }
            MsgType::Release => {
                let domid: u32 = arg(0)?.parse().map_err(|_| Errno::EINVAL)?;
                self.introduced.remove(&domid).ok_or(Errno::ENOENT)?;
                self.fire("@releaseDomain");
                Ok(ok)
            }
            MsgType::IsDomainIntroduced => {
                let domid: u32 = arg(0)?.parse().map_err(|_| Errno::EINVAL)?;
                Ok(if domid == 0 || self.introduced.contains_key(&domid) {
                    b"T\0"
                } else {
                    b"F\0"
                }
                .to_vec())
            }
            MsgType::GetDomainPath => {
                let domid: u32 = arg(0)?.parse().map_err(|_| Errno::EINVAL)?;
                Ok(format!("/local/domain/{domid}\0").into_bytes())
            }
            MsgType::Watch => {
                let (p, token) = (abs(arg(0)?), arg(1)?);
                let c = self.conns.get_mut(&conn).ok_or(Errno::EINVAL)?;
                c.watches.push((p, token));
                Ok(ok)
            }
            MsgType::Unwatch => {
                let (p, token) = (abs(arg(0)?), arg(1)?);
                let c = self.conns.get_mut(&conn).ok_or(Errno::EINVAL)?;
                let before = c.watches.len();
                c.watches.retain(|w| *w != (p.clone(), token.clone()));
                if c.watches.len() == before {
                    return Err(Errno::ENOENT);
                }
                Ok(ok)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn process(&mut self, conn: u64, msg: &wire::Message) {
        self.requests += 1;
        let first = wire::parse_list(&msg.payload)
            .ok()
            .and_then(|l| l.into_iter().next())
            .unwrap_or_default();
        self.log.push((msg.msg_type, first));
        let reply = if let Some(raw) = self.raw_replies.pop_front() {
            raw
        } else {
            let result = match self.fail_at {
                Some((n, errno)) if n == self.requests => {
                    // A failed commit still ends the transaction, as in xenstored.
                    if msg.msg_type == MsgType::TransactionEnd {
                        self.txs.remove(&msg.tx_id);
                    }
                    Err(errno)
                }
                _ => {
                    let before = self.trace.as_ref().map(|_| held(self));
                    let r = self.handle(conn, msg.msg_type, msg.tx_id, &msg.payload);
                    if let (Some(t), Some(before)) = (&self.trace, before) {
                        let after = held(self);
                        before.difference(&after).for_each(|w| t.release(w.clone()));
                        after.difference(&before).for_each(|w| acquired(t, w));
                    }
                    r
                }
            };
            let enc = match result {
                Ok(p) => wire::encode_raw(msg.msg_type, msg.req_id, msg.tx_id, &p),
                Err(e) => wire::encode(
                    MsgType::Error,
                    msg.req_id,
                    msg.tx_id,
                    &[e.name().as_bytes()],
                    true,
                ),
            };
            enc.unwrap_or_default()
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.out.extend(reply);
        }
        // A watch fires once as soon as it is set, after the acknowledgement.
        if msg.msg_type == MsgType::Watch {
            if let Ok(l) = wire::parse_list(&msg.payload) {
                if let (Some(p), Some(t)) = (l.first(), l.get(1)) {
                    if let (Ok(b), Some(c)) = (
                        wire::encode(
                            MsgType::WatchEvent,
                            0,
                            0,
                            &[p.as_bytes(), t.as_bytes()],
                            true,
                        ),
                        self.conns.get_mut(&conn),
                    ) {
                        c.out.extend(b);
                    }
                }
            }
        }
    }
}

struct FakeTransport {
    store: FakeXenstore,
    conn: u64,
    inbuf: Vec<u8>,
}

impl Write for FakeTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inbuf.extend_from_slice(buf);
        loop {
            match wire::parse_reply(&self.inbuf) {
                Ok((msg, used)) => {
                    self.inbuf.drain(..used);
                    self.store.lock().process(self.conn, &msg);
                }
                Err(wire::WireError::Truncated { .. }) => break,
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for FakeTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut s = self.store.lock();
        let Some(c) = s.conns.get_mut(&self.conn) else {
            return Ok(0);
        };
        let n = buf.len().min(c.out.len());
        for (dst, src) in buf.iter_mut().zip(c.out.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}

impl Transport for FakeTransport {
    fn wait_readable(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        // Other threads may write through other connections: look until the timeout.
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if self
                .store
                .lock()
                .conns
                .get(&self.conn)
                .is_some_and(|c| !c.out.is_empty())
            {
                return Ok(true);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for FakeTransport {
    fn drop(&mut self) {
        self.store.lock().conns.remove(&self.conn);
    }
}

/// The header length, re-exported for tests that build raw replies.
pub const RAW_HEADER_LEN: usize = HEADER_LEN;

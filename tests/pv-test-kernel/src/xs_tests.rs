//! The xenstore client against a simulated daemon on the same ring layout: requests are
//! decoded by the simulator independently of the client's encoder (byte offsets from
//! xs_wire.h), replies may arrive in pieces, indices wrap.

use std::vec::Vec;

use crate::xs::{self, ty, Client, Header, Interface, XsError, HEADER_LEN, RING_SIZE};

/// What the simulator does with the next request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Never answers.
    Silent,
    /// Answers with the wrong req_id.
    WrongId,
    /// Sends a watch event first.
    WatchFirst,
    /// Pushes at most this many reply bytes per wait.
    Trickle(usize),
}

struct Sim {
    req: [u8; 1024],
    rsp: [u8; 1024],
    req_cons: u32,
    req_prod: u32,
    rsp_cons: u32,
    rsp_prod: u32,
    pending: Vec<u8>,
    store: Vec<(Vec<u8>, Vec<u8>)>,
    /// Writes under these prefixes get EACCES.
    denied: Vec<&'static [u8]>,
    mode: Mode,
    waits: u32,
    budget: u32,
    notified: u32,
    seen: Vec<(Header, Vec<u8>)>,
}

impl Sim {
    fn new(start: u32) -> Sim {
        Sim {
            req: [0; 1024],
            rsp: [0; 1024],
            req_cons: start,
            req_prod: start,
            rsp_cons: start,
            rsp_prod: start,
            pending: Vec::new(),
            store: Vec::new(),
            denied: Vec::new(),
            mode: Mode::Normal,
            waits: 0,
            budget: 1000,
            notified: 0,
            seen: Vec::new(),
        }
    }

    fn reply(&mut self, ty: u32, req_id: u32, payload: &[u8]) {
        // Header laid out by hand from xs_wire.h: type, req_id, tx_id, len (LE u32 each).
        for v in [ty, req_id, 0, payload.len() as u32] {
            self.pending.extend_from_slice(&v.to_le_bytes());
        }
        self.pending.extend_from_slice(payload);
    }

    fn step(&mut self) {
        if self.mode == Mode::Silent {
            return;
        }
        loop {
            let avail = self.req_prod.wrapping_sub(self.req_cons) as usize;
            if avail < HEADER_LEN {
                break;
            }
            let at = |s: &Sim, i: usize| s.req[(s.req_cons as usize + i) % 1024];
            let word = |s: &Sim, w: usize| {
                u32::from_le_bytes([
                    at(s, 4 * w),
                    at(s, 4 * w + 1),
                    at(s, 4 * w + 2),
                    at(s, 4 * w + 3),
                ])
            };
            let (t, id, tx, len) = (word(self, 0), word(self, 1), word(self, 2), word(self, 3));
            if avail < HEADER_LEN + len as usize {
                break;
            }
            let payload: Vec<u8> = (0..len as usize)
                .map(|i| at(self, HEADER_LEN + i))
                .collect();
            self.req_cons = self.req_cons.wrapping_add(HEADER_LEN as u32 + len);
            self.seen.push((
                Header {
                    ty: t,
                    req_id: id,
                    tx_id: tx,
                    len,
                },
                payload.clone(),
            ));
            let id = if self.mode == Mode::WrongId {
                id + 7
            } else {
                id
            };
            if self.mode == Mode::WatchFirst {
                self.reply(ty::WATCH_EVENT, 0, b"/some/path\0tok\0");
            }
            let nul = payload
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(payload.len());
            let path = payload[..nul].to_vec();
            let rest = payload.get(nul + 1..).unwrap_or(&[]).to_vec();
            match t {
                ty::READ => match self.store.iter().find(|(p, _)| *p == path) {
                    Some((_, v)) => {
                        let v = v.clone();
                        self.reply(t, id, &v)
                    }
                    None => self.reply(ty::ERROR, id, b"ENOENT\0"),
                },
                ty::WRITE | ty::MKDIR | ty::RM | ty::SET_PERMS => {
                    if self.denied.iter().any(|d| path.starts_with(d)) {
                        self.reply(ty::ERROR, id, b"EACCES\0");
                    } else {
                        if t == ty::WRITE {
                            self.store.retain(|(p, _)| *p != path);
                            self.store.push((path, rest));
                        }
                        self.reply(t, id, b"OK\0");
                    }
                }
                _ => self.reply(ty::ERROR, id, b"EINVAL\0"),
            }
        }
        let room = RING_SIZE as usize - self.rsp_prod.wrapping_sub(self.rsp_cons) as usize;
        let mut n = room.min(self.pending.len());
        if let Mode::Trickle(k) = self.mode {
            n = n.min(k);
        }
        for b in self.pending.drain(..n) {
            self.rsp[(self.rsp_prod % 1024) as usize] = b;
            self.rsp_prod = self.rsp_prod.wrapping_add(1);
        }
    }
}

impl Interface for Sim {
    fn req_cons(&self) -> u32 {
        self.req_cons
    }
    fn req_prod(&self) -> u32 {
        self.req_prod
    }
    fn set_req_prod(&mut self, v: u32) {
        self.req_prod = v;
    }
    fn put_req(&mut self, idx: u32, b: u8) {
        self.req[xs::mask(idx) as usize] = b;
    }
    fn rsp_prod(&self) -> u32 {
        self.rsp_prod
    }
    fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }
    fn set_rsp_cons(&mut self, v: u32) {
        self.rsp_cons = v;
    }
    fn get_rsp(&self, idx: u32) -> u8 {
        self.rsp[xs::mask(idx) as usize]
    }
    fn notify(&mut self) {
        self.notified += 1;
    }
    fn wait(&mut self) -> bool {
        self.waits += 1;
        if self.waits > self.budget {
            return false;
        }
        self.step();
        true
    }
    fn reset_budget(&mut self) {
        self.waits = 0;
    }
}

#[test]
fn header_is_four_little_endian_words() {
    let h = Header {
        ty: 11,
        req_id: 0x0102_0304,
        tx_id: 0,
        len: 300,
    };
    let b = h.encode();
    assert_eq!(b, [11, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0, 44, 1, 0, 0]);
    assert_eq!(Header::decode(&b), h);
}

#[test]
fn ring_distance_and_mask() {
    assert_eq!(xs::used(10, 10), Some(0));
    assert_eq!(xs::used(5, u32::MAX - 2), Some(8));
    assert_eq!(xs::used(1024, 0), Some(1024));
    assert_eq!(xs::used(1025, 0), None);
    assert_eq!(xs::used(0, 1), None);
    assert_eq!(xs::mask(1024 + 17), 17);
    assert_eq!(xs::mask(u32::MAX), 1023);
}

#[test]
fn write_then_read_back_on_the_wire() {
    let mut c = Client::new(Sim::new(0));
    c.write(b"data/probe", b"hello").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(c.read(b"data/probe", &mut buf).unwrap(), b"hello");
    // The simulator decoded exactly xs_wire's layout: path NUL value, no trailing NUL.
    let (h, p) = &c.io.seen[0];
    assert_eq!((h.ty, h.req_id, h.tx_id, h.len), (ty::WRITE, 1, 0, 16));
    assert_eq!(p, b"data/probe\0hello");
    let (h, p) = &c.io.seen[1];
    assert_eq!((h.ty, h.req_id), (ty::READ, 2));
    assert_eq!(p, b"data/probe\0");
    assert!(c.io.notified >= 2);
}

#[test]
fn errors_come_back_by_name() {
    let mut sim = Sim::new(0);
    sim.denied.push(b"/local/domain/0");
    let mut c = Client::new(sim);
    match c.write(b"/local/domain/0/name", b"x") {
        Err(XsError::Errno(e)) => assert!(e.is("EACCES"), "{e}"),
        other => panic!("{other:?}"),
    }
    match c.read(b"nothing", &mut [0u8; 8]) {
        Err(XsError::Errno(e)) => assert!(e.is("ENOENT")),
        other => panic!("{other:?}"),
    }
    match c.mkdir(b"/local/domain/0/x") {
        Err(XsError::Errno(e)) => assert!(e.is("EACCES")),
        other => panic!("{other:?}"),
    }
    assert!(c.rm(b"data/x").is_ok());
    c.set_perms(b"data/x", b"b5").unwrap();
    assert_eq!(c.io.seen.last().unwrap().1, b"data/x\0b5\0");
}

#[test]
fn indices_wrap_around_u32_and_the_ring() {
    // Start 3 bytes before both wraps: every message straddles the end of the ring.
    let mut c = Client::new(Sim::new(u32::MAX - 2));
    for i in 0..200u32 {
        let v = std::format!("value-{i}");
        c.write(b"data/k", v.as_bytes()).unwrap();
        let mut buf = [0u8; 32];
        assert_eq!(c.read(b"data/k", &mut buf).unwrap(), v.as_bytes());
    }
    assert!(c.io.req_prod < 1_000_000, "req_prod wrapped");
}

#[test]
fn a_reply_longer_than_the_ring_is_read_in_pieces() {
    let mut sim = Sim::new(1000);
    let big: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    sim.store.push((b"big".to_vec(), big.clone()));
    sim.mode = Mode::Trickle(100);
    let mut c = Client::new(sim);
    let mut buf = [0u8; 4096];
    assert_eq!(c.read(b"big", &mut buf).unwrap(), &big[..]);
    // Truncated into a small buffer, and the next request still lines up.
    let mut small = [0u8; 10];
    assert_eq!(c.read(b"big", &mut small).unwrap(), &big[..10]);
    c.write(b"after", b"1").unwrap();
}

#[test]
fn watch_events_are_skipped() {
    let mut sim = Sim::new(0);
    sim.mode = Mode::WatchFirst;
    sim.store.push((b"k".to_vec(), b"v".to_vec()));
    let mut c = Client::new(sim);
    assert_eq!(c.read(b"k", &mut [0u8; 8]).unwrap(), b"v");
}

#[test]
fn a_silent_daemon_times_out() {
    let mut sim = Sim::new(0);
    sim.mode = Mode::Silent;
    let mut c = Client::new(sim);
    assert_eq!(c.write(b"k", b"v"), Err(XsError::Timeout));
}

#[test]
fn a_reply_to_another_request_is_refused() {
    let mut sim = Sim::new(0);
    sim.mode = Mode::WrongId;
    let mut c = Client::new(sim);
    assert!(matches!(c.write(b"k", b"v"), Err(XsError::Protocol(_))));
}

#[test]
fn a_corrupt_ring_is_reported() {
    let mut sim = Sim::new(0);
    sim.req_cons = 5000; // cons ahead of prod
    let mut c = Client::new(sim);
    assert!(matches!(c.write(b"k", b"v"), Err(XsError::Corrupt { .. })));
    let mut sim = Sim::new(0);
    sim.rsp_prod = 4000;
    let mut c = Client::new(sim);
    assert!(matches!(c.write(b"k", b"v"), Err(XsError::Corrupt { .. })));
}

#[test]
fn requests_longer_than_the_buffer_are_refused() {
    let mut c = Client::new(Sim::new(0));
    let long = [b'a'; 600];
    assert_eq!(c.write(&long, b"v"), Err(XsError::TooLong));
    assert!(c.io.seen.is_empty());
}

#[test]
fn domids_and_paths() {
    assert_eq!(xs::parse_domid(b"5"), Some(5));
    assert_eq!(xs::parse_domid(b"32751"), Some(32751));
    assert_eq!(xs::parse_domid(b"32752"), None);
    assert_eq!(xs::parse_domid(b""), None);
    assert_eq!(xs::parse_domid(b"0x5"), None);
    assert_eq!(xs::parse_domid(b"5\0"), None);
    let p = xs::path(format_args!("/local/domain/{}/name", 7));
    assert_eq!(p.as_bytes(), b"/local/domain/7/name");
    assert!(!p.overflowed());
    let p = xs::path(format_args!("{:200}", 1));
    assert!(p.overflowed());
    assert_eq!(xs::Errno::from_payload(b"EACCES\0").as_bytes(), b"EACCES");
    assert_eq!(xs::Errno::from_payload(b"E\x01\0").as_bytes(), b"E?");
}

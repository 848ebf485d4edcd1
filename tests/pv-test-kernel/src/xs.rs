//! A minimal xenstore client over the shared ring page (`struct xenstore_domain_interface`,
//! xen/include/public/io/xs_wire.h): a request is an `xsd_sockmsg` header (type, req_id,
//! tx_id, len; four little-endian u32) followed by `len` payload bytes, written into `req[]`
//! at `req_prod`; the reply comes back the same way in `rsp[]` at `rsp_cons`. Indices are
//! free-running u32s, masked with `XENSTORE_RING_SIZE - 1` to index the 1024-byte rings.
//!
//! The page access and the waiting are behind [`Interface`], so the kernel drives a real
//! ring (src/xenstore.rs) and the host tests drive a simulated daemon.

/// `XENSTORE_RING_SIZE`.
pub const RING_SIZE: u32 = 1024;
/// `sizeof(struct xsd_sockmsg)`.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: u32 = 4096;
/// The longest request this client sends: header + payload, so a request fits the ring whole.
pub const REQUEST_MAX: usize = 512;

/// `enum xsd_sockmsg_type` values this client uses.
pub mod ty {
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 11;
    pub const MKDIR: u32 = 12;
    pub const RM: u32 = 13;
    pub const SET_PERMS: u32 = 14;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
}

/// `struct xsd_sockmsg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        for (chunk, v) in b
            .chunks_exact_mut(4)
            .zip([self.ty, self.req_id, self.tx_id, self.len])
        {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        let mut w = b
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4])));
        let mut next = || w.next().unwrap_or(0);
        Header {
            ty: next(),
            req_id: next(),
            tx_id: next(),
            len: next(),
        }
    }
}

/// Bytes between `cons` and `prod`, or None if the indices are further apart than the ring
/// (a corrupt ring: the other end moved an index it does not own, or ours went wild).
pub fn used(prod: u32, cons: u32) -> Option<u32> {
    let n = prod.wrapping_sub(cons);
    (n <= RING_SIZE).then_some(n)
}

/// The offset in a ring of free-running index `idx` (`MASK_XENSTORE_IDX`).
pub fn mask(idx: u32) -> u32 {
    idx & (RING_SIZE - 1)
}

/// What an error reply names (`"EACCES"`, `"ENOENT"`...: xsd_errors), up to 15 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno {
    name: [u8; 15],
    len: u8,
}

impl Errno {
    pub fn from_payload(p: &[u8]) -> Errno {
        let text = p.split(|&b| b == 0).next().unwrap_or(&[]);
        let mut name = [0u8; 15];
        let mut len = 0u8;
        for (slot, &b) in name.iter_mut().zip(text) {
            *slot = if b.is_ascii_graphic() { b } else { b'?' };
            len += 1;
        }
        Errno { name, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.name.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn is(&self, name: &str) -> bool {
        self.as_bytes() == name.as_bytes()
    }
}

impl core::fmt::Debug for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.len == 0 {
            return f.write_str("(empty error)");
        }
        for &b in self.as_bytes() {
            core::fmt::Write::write_char(f, char::from(b))?;
        }
        Ok(())
    }
}

/// Why a request did not get a normal reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsError {
    /// xenstored answered XS_ERROR with this errno name.
    Errno(Errno),
    /// The request does not fit [`REQUEST_MAX`].
    TooLong,
    /// The request or its reply did not move within the wait budget.
    Timeout,
    /// The ring's indices are further apart than the ring.
    Corrupt { prod: u32, cons: u32 },
    /// A reply with another request id or type, or a length above XENSTORE_PAYLOAD_MAX.
    Protocol(Header),
}

impl core::fmt::Display for XsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XsError::Errno(e) => write!(f, "{e}"),
            XsError::TooLong => f.write_str("request too long"),
            XsError::Timeout => f.write_str("no reply (timeout)"),
            XsError::Corrupt { prod, cons } => write!(f, "corrupt ring prod={prod} cons={cons}"),
            XsError::Protocol(h) => write!(
                f,
                "unexpected reply type={} req_id={} len={}",
                h.ty, h.req_id, h.len
            ),
        }
    }
}

/// The shared page and the event channel, as the client needs them.
pub trait Interface {
    fn req_cons(&self) -> u32;
    fn req_prod(&self) -> u32;
    /// Publish `req[]` bytes up to `v` (after a release fence).
    fn set_req_prod(&mut self, v: u32);
    /// `req[mask(idx)] = b`.
    fn put_req(&mut self, idx: u32, b: u8);
    /// `rsp_prod` (followed by an acquire fence).
    fn rsp_prod(&self) -> u32;
    fn rsp_cons(&self) -> u32;
    fn set_rsp_cons(&mut self, v: u32);
    /// `rsp[mask(idx)]`.
    fn get_rsp(&self, idx: u32) -> u8;
    /// Tell xenstored the ring moved (EVTCHNOP_send on the store port).
    fn notify(&mut self);
    /// Let xenstored run a little; false when the wait budget of this request is spent.
    fn wait(&mut self) -> bool;
    /// Start a new wait budget (one per request).
    fn reset_budget(&mut self);
}

/// A request/reply client; one request at a time, no transactions, no watches.
#[derive(Debug)]
pub struct Client<I> {
    pub io: I,
    next_id: u32,
}

impl<I: Interface> Client<I> {
    pub fn new(io: I) -> Self {
        Client { io, next_id: 1 }
    }

    /// Send `ty` with `parts` concatenated as the payload; the reply's payload goes to `out`
    /// (truncated to its length). Returns the reply's full payload length.
    pub fn request(&mut self, ty: u32, parts: &[&[u8]], out: &mut [u8]) -> Result<usize, XsError> {
        let mut msg = [0u8; REQUEST_MAX];
        let mut len = HEADER_LEN;
        for p in parts {
            let end = len.checked_add(p.len()).ok_or(XsError::TooLong)?;
            msg.get_mut(len..end)
                .ok_or(XsError::TooLong)?
                .copy_from_slice(p);
            len = end;
        }
        let req_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let header = Header {
            ty,
            req_id,
            tx_id: 0,
            len: (len - HEADER_LEN) as u32,
        };
        msg.get_mut(..HEADER_LEN)
            .ok_or(XsError::TooLong)?
            .copy_from_slice(&header.encode());
        self.io.reset_budget();
        self.send(msg.get(..len).ok_or(XsError::TooLong)?)?;
        loop {
            let mut hb = [0u8; HEADER_LEN];
            let mut sink = Sink::new(&mut hb);
            self.receive(HEADER_LEN as u32, &mut sink)?;
            let h = Header::decode(&hb);
            if h.len > PAYLOAD_MAX {
                return Err(XsError::Protocol(h));
            }
            if h.ty == ty::WATCH_EVENT {
                // Not ours (this client sets no watches): skip it.
                self.receive(h.len, &mut Sink::new(&mut []))?;
                continue;
            }
            if h.ty == ty::ERROR {
                let mut eb = [0u8; 16];
                let mut sink = Sink::new(&mut eb);
                self.receive(h.len, &mut sink)?;
                if h.req_id != req_id {
                    return Err(XsError::Protocol(h));
                }
                let n = sink.kept;
                return Err(XsError::Errno(Errno::from_payload(
                    eb.get(..n).unwrap_or(&[]),
                )));
            }
            self.receive(h.len, &mut Sink::new(out))?;
            if h.req_id != req_id {
                return Err(XsError::Protocol(h));
            }
            if h.ty != ty {
                return Err(XsError::Protocol(h));
            }
            return Ok(h.len as usize);
        }
    }

    /// Copy `bytes` into `req[]` once there is room for all of them, publish, notify.
    fn send(&mut self, bytes: &[u8]) -> Result<(), XsError> {
        let n = bytes.len() as u32;
        loop {
            let (prod, cons) = (self.io.req_prod(), self.io.req_cons());
            let busy = used(prod, cons).ok_or(XsError::Corrupt { prod, cons })?;
            if RING_SIZE - busy >= n {
                for (i, &b) in bytes.iter().enumerate() {
                    self.io.put_req(prod.wrapping_add(i as u32), b);
                }
                self.io.set_req_prod(prod.wrapping_add(n));
                self.io.notify();
                return Ok(());
            }
            self.io.notify();
            if !self.io.wait() {
                return Err(XsError::Timeout);
            }
        }
    }

    /// Consume `n` bytes of `rsp[]` into `sink`, as they arrive.
    fn receive(&mut self, n: u32, sink: &mut Sink<'_>) -> Result<(), XsError> {
        let mut left = n;
        while left > 0 {
            let (prod, cons) = (self.io.rsp_prod(), self.io.rsp_cons());
            let avail = used(prod, cons).ok_or(XsError::Corrupt { prod, cons })?;
            if avail == 0 {
                if !self.io.wait() {
                    return Err(XsError::Timeout);
                }
                continue;
            }
            let take = avail.min(left);
            for i in 0..take {
                sink.push(self.io.get_rsp(cons.wrapping_add(i)));
            }
            self.io.set_rsp_cons(cons.wrapping_add(take));
            self.io.notify();
            left -= take;
        }
        Ok(())
    }

    /// XS_READ: the value, truncated to `out`.
    pub fn read<'o>(&mut self, path: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], XsError> {
        let n = self.request(ty::READ, &[path, b"\0"], out)?;
        Ok(out.get(..n.min(out.len())).unwrap_or(&[]))
    }

    /// XS_WRITE of `value` (no terminating NUL: the value is the rest of the payload).
    pub fn write(&mut self, path: &[u8], value: &[u8]) -> Result<(), XsError> {
        self.request(ty::WRITE, &[path, b"\0", value], &mut [])
            .map(drop)
    }

    pub fn mkdir(&mut self, path: &[u8]) -> Result<(), XsError> {
        self.request(ty::MKDIR, &[path, b"\0"], &mut []).map(drop)
    }

    pub fn rm(&mut self, path: &[u8]) -> Result<(), XsError> {
        self.request(ty::RM, &[path, b"\0"], &mut []).map(drop)
    }

    /// XS_SET_PERMS with one permission entry such as `b"b5"` (owner 5, others both).
    pub fn set_perms(&mut self, path: &[u8], perm: &[u8]) -> Result<(), XsError> {
        self.request(ty::SET_PERMS, &[path, b"\0", perm, b"\0"], &mut [])
            .map(drop)
    }
}

/// Where reply bytes go: the first `buf.len()` are kept, the rest counted and dropped.
struct Sink<'a> {
    buf: &'a mut [u8],
    kept: usize,
}

impl<'a> Sink<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Sink { buf, kept: 0 }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.kept) {
            *slot = b;
            self.kept += 1;
        }
    }
}

/// A small fixed-capacity string builder for paths (`/local/domain/5/name`).
#[derive(Clone, Copy)]
pub struct PathBuf {
    buf: [u8; 128],
    len: usize,
    overflow: bool,
}

impl Default for PathBuf {
    fn default() -> Self {
        PathBuf {
            buf: [0; 128],
            len: 0,
            overflow: false,
        }
    }
}

impl PathBuf {
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Did anything not fit?
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
}

impl core::fmt::Write for PathBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = b;
                    self.len += 1;
                }
                None => self.overflow = true,
            }
        }
        Ok(())
    }
}

impl core::fmt::Debug for PathBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&crate::expect::Shown(self.as_bytes()), f)
    }
}

/// A path built with `format_args!`.
pub fn path(args: core::fmt::Arguments<'_>) -> PathBuf {
    let mut p = PathBuf::default();
    let _ = core::fmt::write(&mut p, args);
    p
}

/// A decimal domid as xenstore stores it (`domid`: `"5"`), below DOMID_FIRST_RESERVED.
pub fn parse_domid(v: &[u8]) -> Option<u16> {
    if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = crate::expect::parse_u64(v)?;
    (n < 0x7ff0).then_some(n as u16)
}

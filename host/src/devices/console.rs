//! `pvbuild console DOMID`: attach the terminal to a guest's console, through xenconsoled's
//! pty when xenconsoled serves it, otherwise straight to the shared ring.
//!
//! Pty mode: xenconsoled serves each guest's console ring on a pty and writes the pty's path
//! to `/local/domain/<domid>/console/tty`. Like `xl console` (tools/console/client/main.c) we
//! wait for that node, open the pty, put it and our terminal in raw mode, and relay bytes both
//! ways until the guest's side closes or the user types Ctrl-] ([`ESCAPE`]).
//!
//! Ring mode (no xenconsoled): we do xenconsoled's job for one guest. The console page's frame
//! and event channel come from `console/ring-ref` and `console/port`; the page
//! (`struct xencons_interface`, `xen/io/console.h`) is mapped with privcmd, the port bound
//! through `/dev/xen/evtchn` ([`crate::xen::evtchn`]), and [`relay_ring`] moves `out[]` to our
//! output and our input into `in[]`, kicking the guest after each, until Ctrl-] or the domain
//! shuts down. [`attach`] picks the mode; `docs/console.md` describes the choice.

use std::fs::File;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};
use thiserror::Error;

use crate::xen::evtchn::{EvtchnDev, EvtchnError};
use crate::xen::{Xen, XenError};
use crate::xenstore::{XsConnection, XsError};

/// Ctrl-]: detaches, as in `xl console`.
pub const ESCAPE: u8 = 0x1d;
/// How long [`console_attach`] waits for xenconsoled to publish the pty by default.
pub const DEFAULT_TTY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes moved per read.
const CHUNK: usize = 4096;

/// Why the console could not be attached or relayed.
#[derive(Debug, Error)]
pub enum ConsoleError {
    /// xenstore failed.
    #[error(transparent)]
    Xs(#[from] XsError),
    /// The domain has no console node (no such domain, or not built by a toolstack).
    #[error("domain {0} has no console in xenstore")]
    NoConsole(u32),
    /// xenconsoled did not publish a pty in time (is xenconsoled running?).
    #[error("no console pty for domain {domid} after {secs}s: is xenconsoled running?")]
    NoTty {
        /// The domain.
        domid: u32,
        /// Seconds waited.
        secs: u64,
    },
    /// The tty node holds something that is not a pty path.
    #[error("console tty of domain {domid} is not a device path: {path:?}")]
    BadTty {
        /// The domain.
        domid: u32,
        /// The value found.
        path: String,
    },
    /// Opening or configuring the pty or the terminal failed.
    #[error("console {what} {path}: {source}")]
    Open {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Relaying failed.
    #[error("console relay: {0}")]
    Io(#[from] io::Error),
    /// A hypercall or mapping of ring mode failed.
    #[error(transparent)]
    Xen(#[from] XenError),
    /// The event channel of ring mode failed.
    #[error(transparent)]
    Evtchn(#[from] EvtchnError),
    /// A console node of ring mode holds a bad value.
    #[error("domain {domid}: bad console {what}: {value:?}")]
    BadRing {
        /// The domain.
        domid: u32,
        /// The node or field.
        what: &'static str,
        /// The value found.
        value: String,
    },
}

/// How a relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// The user typed the escape byte.
    Detached,
    /// The console's side closed (the guest is gone or xenconsoled let go).
    ConsoleClosed,
}

/// Wait until xenconsoled has written the pty path of `domid`'s console, at most `timeout`.
pub fn wait_for_tty(
    xs: &XsConnection,
    domid: u32,
    timeout: Duration,
) -> Result<PathBuf, ConsoleError> {
    let node = format!("/local/domain/{domid}/console/tty");
    let token = format!("pvbuild-console-{domid}");
    let deadline = Instant::now() + timeout;
    xs.watch(&node, &token)?;
    let result = loop {
        match xs.read_opt(&node)? {
            Some(v) if !v.is_empty() => break check_tty(domid, v),
            Some(_) => {}
            None => {
                if xs
                    .read_opt(&format!("/local/domain/{domid}/console"))?
                    .is_none()
                {
                    break Err(ConsoleError::NoConsole(domid));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || xs.next_event(Some(left))?.is_none() {
            break Err(ConsoleError::NoTty {
                domid,
                secs: timeout.as_secs(),
            });
        }
    };
    let _ = xs.unwatch(&node, &token);
    result
}

fn check_tty(domid: u32, v: String) -> Result<PathBuf, ConsoleError> {
    // The node is dom0-owned and read-only for the guest; still accept only device paths.
    if v.starts_with("/dev/") && !v.contains("/../") && !v.contains('\0') {
        Ok(PathBuf::from(v))
    } else {
        Err(ConsoleError::BadTty {
            domid,
            path: v.chars().take(128).collect(),
        })
    }
}

/// Put a terminal in raw mode; the previous mode comes back when this is dropped.
#[derive(Debug)]
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// Make `fd` raw (`cfmakeraw`), remembering its mode.
    pub fn enter(fd: BorrowedFd<'a>) -> io::Result<Self> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(Self { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

/// Relay between `input`/`output` (the user) and `console` (the pty) until the escape byte
/// arrives on `input` or the console closes. Input that ends (EOF) stops being read; console
/// output keeps flowing until the console closes.
pub fn relay(
    input: &mut File,
    output: &mut impl Write,
    console: &mut File,
    escape: Option<u8>,
) -> Result<RelayEnd, ConsoleError> {
    let mut buf = [0u8; CHUNK];
    let mut input_open = true;
    loop {
        let (in_ready, con_ready) = {
            let mut fds = vec![PollFd::new(console.as_fd(), PollFlags::POLLIN)];
            if input_open {
                fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
            }
            let ready =
                |f: Option<&PollFd<'_>>| f.and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            (ready(fds.get(1)), ready(fds.first()))
        };
        if con_ready {
            match console.read(&mut buf) {
                Ok(0) => return Ok(RelayEnd::ConsoleClosed),
                // A pty whose other side has closed reads EIO.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    return Ok(RelayEnd::ConsoleClosed)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
                Ok(n) => {
                    output.write_all(buf.get(..n).unwrap_or(&[]))?;
                    output.flush()?;
                }
            }
        }
        if in_ready {
            match input.read(&mut buf) {
                Ok(0) => input_open = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or(&[]);
                    let cut = escape.and_then(|e| data.iter().position(|b| *b == e));
                    console.write_all(data.get(..cut.unwrap_or(n)).unwrap_or(&[]))?;
                    if cut.is_some() {
                        return Ok(RelayEnd::Detached);
                    }
                }
            }
        }
    }
}

/// Open the console pty at `path` in raw mode and relay it with `input`/`output`.
pub fn attach_path(
    path: &Path,
    input: &mut File,
    output: &mut impl Write,
    escape: Option<u8>,
) -> Result<RelayEnd, ConsoleError> {
    use std::os::unix::fs::OpenOptionsExt;
    let open_err = |what, source| ConsoleError::Open {
        what,
        path: path.to_owned(),
        source,
    };
    let mut pty = File::options()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| open_err("open", e))?;
    // xenconsole makes the pty raw too (and leaves it so), so nothing is echoed or translated
    // on the way.
    make_raw(pty.as_fd()).map_err(|e| open_err("set raw mode on", e))?;
    relay(input, output, &mut pty, escape)
}

fn make_raw(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut t = termios::tcgetattr(fd)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(fd, SetArg::TCSANOW, &t)?;
    Ok(())
}

/// `pvbuild console DOMID`: wait for xenconsoled's pty (at most `tty_timeout`), then relay it
/// with this process's stdin and stdout (stdin in raw mode when it is a terminal) until
/// Ctrl-] or the guest's console closes.
pub fn console_attach(domid: u32, tty_timeout: Duration) -> Result<RelayEnd, ConsoleError> {
    let xs = XsConnection::open()?;
    let path = wait_for_tty(&xs, domid, tty_timeout)?;
    drop(xs);
    let (mut input, _raw) = stdin_input()?;
    let mut out = io::stdout().lock();
    attach_path(&path, &mut input, &mut out, Some(ESCAPE))
}

/// A dup of stdin, put in raw mode (restored on drop) when it is a terminal; never raw mode
/// for a file, pipe or `/dev/null`.
pub(crate) fn stdin_input() -> Result<(File, Option<RawMode<'static>>), ConsoleError> {
    let stdin = io::stdin();
    let dup_err = |e| ConsoleError::Open {
        what: "duplicate",
        path: PathBuf::from("/dev/stdin"),
        source: e,
    };
    let input = File::from(stdin.as_fd().try_clone_to_owned().map_err(dup_err)?);
    let raw = if std::io::IsTerminal::is_terminal(&stdin) {
        // SAFETY: fd 0 is stdin, which this process never closes: it stays open for as
        // long as any borrow can live.
        let fd: BorrowedFd<'static> = unsafe { BorrowedFd::borrow_raw(0) };
        Some(RawMode::enter(fd).map_err(|e| ConsoleError::Open {
            what: "set raw mode on",
            path: PathBuf::from("/dev/stdin"),
            source: e,
        })?)
    } else {
        None
    };
    Ok((input, raw))
}

// ---------------------------------------------------------------------------------------------
// Ring mode.

/// `sizeof(((struct xencons_interface *)0)->in)`: guest input, written by us.
pub const IN_SIZE: usize = 1024;
/// `sizeof(((struct xencons_interface *)0)->out)`: guest output, read by us.
pub const OUT_SIZE: usize = 2048;
/// Offset of `in[]` in `struct xencons_interface`.
pub const OFF_IN: usize = 0;
/// Offset of `out[]`.
pub const OFF_OUT: usize = OFF_IN + IN_SIZE;
/// Offset of `in_cons` (advanced by the guest).
pub const OFF_IN_CONS: usize = OFF_OUT + OUT_SIZE;
/// Offset of `in_prod` (advanced by us).
pub const OFF_IN_PROD: usize = OFF_IN_CONS + 4;
/// Offset of `out_cons` (advanced by us).
pub const OFF_OUT_CONS: usize = OFF_IN_PROD + 4;
/// Offset of `out_prod` (advanced by the guest).
pub const OFF_OUT_PROD: usize = OFF_OUT_CONS + 4;
/// `sizeof(struct xencons_interface)`.
pub const INTERFACE_SIZE: usize = OFF_OUT_PROD + 4;
const _: () = assert!(INTERFACE_SIZE == 3088 && INTERFACE_SIZE <= crate::sys::PAGE_SIZE);

fn ring_pos(idx: u32, len: usize) -> usize {
    // MASK_XENCONS_IDX for power-of-two rings; `len` is never 0 here.
    (idx as usize) % len.max(1)
}

/// Consumer side of a console ring: appends to `out` the bytes the producer published in
/// `ring` between `cons` and `prod`, and returns the new consumer index.
///
/// Indexes are free-running `u32`s, wrapped with `MASK_XENCONS_IDX` (`ring.len()` must be a
/// power of two for wrap-around to match C; any length is safe). The producer may be hostile:
/// when it claims more than the ring holds (`prod - cons > ring.len()`), only the last
/// `ring.len()` bytes before `prod` (all that can still be there) are taken and the
/// consumer catches up to `prod`. So one call never reads more than the ring, never panics,
/// and always leaves `cons == prod`.
pub fn ring_read(ring: &[u8], cons: u32, prod: u32, out: &mut Vec<u8>) -> u32 {
    let len = ring.len();
    if len == 0 {
        return cons;
    }
    let n = (prod.wrapping_sub(cons) as usize).min(len);
    let first = ring_pos(prod.wrapping_sub(n as u32), len);
    let head = ring.get(first..).unwrap_or_default();
    let head = head.get(..n).unwrap_or(head);
    out.extend_from_slice(head);
    let rest = n.saturating_sub(head.len());
    out.extend_from_slice(ring.get(..rest).unwrap_or_default());
    prod
}

/// Producer side of a console ring: copies as much of `data` as fits into `ring` at `prod`
/// (the consumer being at `cons`); returns the new producer index and the bytes taken. A
/// consumer index that claims more than a full ring (hostile) leaves no room: nothing is
/// written.
pub fn ring_write(ring: &mut [u8], cons: u32, prod: u32, data: &[u8]) -> (u32, usize) {
    let len = ring.len();
    let used = prod.wrapping_sub(cons) as usize;
    let n = len.saturating_sub(used).min(data.len());
    for (i, b) in data.iter().take(n).enumerate() {
        if let Some(slot) = ring.get_mut(ring_pos(prod.wrapping_add(i as u32), len)) {
            *slot = *b;
        }
    }
    (prod.wrapping_add(n as u32), n)
}

/// [`ring_read`] of the `out` ring of a whole console page (a `struct xencons_interface`
/// snapshot): the fuzz-friendly entry. Returns the new `out_cons`, or `None` when `page` is
/// shorter than [`INTERFACE_SIZE`].
pub fn read_console_page(page: &[u8], out: &mut Vec<u8>) -> Option<u32> {
    let word = |off: usize| -> Option<u32> {
        let b: [u8; 4] = page.get(off..off + 4)?.try_into().ok()?;
        Some(u32::from_ne_bytes(b))
    };
    let cons = word(OFF_OUT_CONS)?;
    let prod = word(OFF_OUT_PROD)?;
    let ring = page.get(OFF_OUT..OFF_OUT + OUT_SIZE)?;
    Some(ring_read(ring, cons, prod, out))
}

/// A `struct xencons_interface` shared with a guest. Every access is an atomic load or store,
/// so whatever the guest writes concurrently (any index, any byte) is defined behaviour; the
/// fences are xenconsoled's `xen_mb`/`xen_wmb`.
#[derive(Debug)]
pub struct ConsRing<'a> {
    base: NonNull<u8>,
    _page: PhantomData<&'a mut [u8]>,
}

impl<'a> ConsRing<'a> {
    /// The interface at the start of `page` (a mapped console frame), which must hold
    /// [`INTERFACE_SIZE`] bytes and be 4-byte aligned. Borrowing `page` for `'a` guarantees
    /// nothing else in this process touches it meanwhile.
    pub fn new(page: &'a mut [u8]) -> Option<Self> {
        if page.len() < INTERFACE_SIZE || page.as_ptr().align_offset(4) != 0 {
            return None;
        }
        NonNull::new(page.as_mut_ptr()).map(|base| Self {
            base,
            _page: PhantomData,
        })
    }

    /// A view of an interface shared with another thread of this process (the tests' guest).
    ///
    /// # Safety
    /// `base` must point to [`INTERFACE_SIZE`] bytes, 4-byte aligned, valid for reads and
    /// writes for `'a` and accessed, for that time, only through atomic operations.
    pub unsafe fn from_raw(base: NonNull<u8>) -> Self {
        Self {
            base,
            _page: PhantomData,
        }
    }

    fn byte(&self, off: usize) -> &AtomicU8 {
        debug_assert!(off < INTERFACE_SIZE);
        // SAFETY: every caller passes `off < INTERFACE_SIZE` (ring offsets plus a position
        // masked to the ring); the bytes are valid for 'a and only accessed atomically (the
        // contract of `new`/`from_raw`).
        unsafe { AtomicU8::from_ptr(self.base.as_ptr().add(off)) }
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off + 4 <= INTERFACE_SIZE && off % 4 == 0);
        // SAFETY: the index offsets are 4-aligned within INTERFACE_SIZE and the base is
        // 4-aligned; valid and atomic-only as in `byte`.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast::<u32>()) }
    }

    /// One round of guest output: appends the published bytes of `out[]` (at most
    /// [`OUT_SIZE`]) to `out`, advances `out_cons`, and returns the count.
    pub fn take_output(&self, out: &mut Vec<u8>) -> usize {
        let cons = self.word(OFF_OUT_CONS).load(Ordering::Relaxed);
        let prod = self.word(OFF_OUT_PROD).load(Ordering::Relaxed);
        if cons == prod {
            return 0;
        }
        // Read the bytes only after the index that published them.
        fence(Ordering::Acquire);
        let mut snap = [0u8; OUT_SIZE];
        for (i, b) in snap.iter_mut().enumerate() {
            *b = self.byte(OFF_OUT + i).load(Ordering::Relaxed);
        }
        let before = out.len();
        let new_cons = ring_read(&snap, cons, prod, out);
        // Done reading before the guest may overwrite them.
        fence(Ordering::SeqCst);
        self.word(OFF_OUT_CONS).store(new_cons, Ordering::Relaxed);
        out.len() - before
    }

    /// Puts as much of `data` as fits into `in[]`, advances `in_prod`, returns the count.
    pub fn put_input(&self, data: &[u8]) -> usize {
        let cons = self.word(OFF_IN_CONS).load(Ordering::Relaxed);
        let prod = self.word(OFF_IN_PROD).load(Ordering::Relaxed);
        // The guest's reads of the slots it freed come before we refill them.
        fence(Ordering::SeqCst);
        let mut snap = [0u8; IN_SIZE];
        let (new_prod, n) = ring_write(&mut snap, cons, prod, data);
        for i in 0..n {
            let pos = ring_pos(prod.wrapping_add(i as u32), IN_SIZE);
            if let Some(b) = snap.get(pos) {
                self.byte(OFF_IN + pos).store(*b, Ordering::Relaxed);
            }
        }
        // The bytes must be visible before the index that publishes them.
        fence(Ordering::Release);
        self.word(OFF_IN_PROD).store(new_prod, Ordering::Relaxed);
        n
    }
}

/// The event channel of a console ring, as [`relay_ring`] needs it.
pub trait ConsoleEvents {
    /// Readable when the guest has kicked us.
    fn fd(&self) -> BorrowedFd<'_>;
    /// Consumes (and unmasks) the pending kicks.
    fn ack(&mut self) -> Result<(), ConsoleError>;
    /// Kicks the guest.
    fn kick(&mut self) -> Result<(), ConsoleError>;
}

/// A guest's console port bound through `/dev/xen/evtchn`.
#[derive(Debug)]
pub struct GuestPort {
    dev: EvtchnDev,
    port: u32,
}

impl GuestPort {
    /// Binds `remote_port` of `domid`.
    pub fn bind(domid: u32, remote_port: u32) -> Result<Self, ConsoleError> {
        let mut dev = EvtchnDev::open()?;
        let port = dev.bind_interdomain(domid, remote_port)?;
        Ok(Self { dev, port })
    }
}

impl ConsoleEvents for GuestPort {
    fn fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
    fn ack(&mut self) -> Result<(), ConsoleError> {
        while let Some(p) = self.dev.pending()? {
            self.dev.unmask(p)?;
        }
        Ok(())
    }
    fn kick(&mut self) -> Result<(), ConsoleError> {
        Ok(self.dev.notify(self.port)?)
    }
}

/// How often [`relay_ring`] re-reads the ring without a kick, and asks whether the guest lives.
const RING_POLL: Duration = Duration::from_millis(200);
/// Output rounds per loop: a guest that never stops writing cannot starve input or the
/// liveness check.
const OUT_ROUNDS: usize = 8;
/// How long a detach (Ctrl-]) waits for the guest to take the input typed before it.
const DETACH_FLUSH: Duration = Duration::from_secs(2);

/// Relays a console ring with `input`/`output` until the escape byte arrives on `input`
/// (returns [`RelayEnd::Detached`]) or `alive` says the domain is gone or shut down (after a
/// last drain of its output: [`RelayEnd::ConsoleClosed`]). `None` or an input that ends stops
/// input, not the relay. Input that does not fit waits for the guest to make room.
pub fn relay_ring(
    ring: &ConsRing<'_>,
    events: &mut impl ConsoleEvents,
    input: Option<&mut File>,
    output: &mut impl Write,
    escape: Option<u8>,
    mut alive: impl FnMut() -> Result<bool, ConsoleError>,
) -> Result<RelayEnd, ConsoleError> {
    let mut input = input;
    let mut queued: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; IN_SIZE];
    let mut out = Vec::with_capacity(OUT_SIZE);
    let mut last_check = Instant::now();
    let mut drain = |events: &mut dyn FnMut() -> Result<(), ConsoleError>,
                     output: &mut dyn Write|
     -> Result<(), ConsoleError> {
        let mut moved = false;
        for _ in 0..OUT_ROUNDS {
            out.clear();
            if ring.take_output(&mut out) == 0 {
                break;
            }
            output.write_all(&out)?;
            moved = true;
        }
        if moved {
            output.flush()?;
            // The guest may be waiting for room (or, like the test kernel, for out_cons to
            // catch up before it shuts down).
            events()?;
        }
        Ok(())
    };
    loop {
        drain(&mut || events.kick(), output)?;
        if !queued.is_empty() {
            let n = ring.put_input(&queued);
            if n > 0 {
                queued.drain(..n);
                events.kick()?;
            }
        }
        if last_check.elapsed() >= RING_POLL {
            last_check = Instant::now();
            if !alive()? {
                drain(&mut || events.kick(), output)?;
                return Ok(RelayEnd::ConsoleClosed);
            }
        }
        let (ev_ready, in_ready) = {
            let mut fds = vec![PollFd::new(events.fd(), PollFlags::POLLIN)];
            let read_input = queued.is_empty();
            if let (Some(f), true) = (input.as_deref(), read_input) {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            }
            let wait = if queued.is_empty() {
                RING_POLL
            } else {
                RING_POLL / 10
            };
            match poll(
                &mut fds,
                PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io::Error::from(e).into()),
            }
            let ready =
                |f: Option<&PollFd<'_>>| f.and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            (ready(fds.first()), ready(fds.get(1)))
        };
        if ev_ready {
            events.ack()?;
        }
        if in_ready {
            if let Some(f) = input.as_deref_mut() {
                match f.read(&mut buf) {
                    Ok(0) => input = None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                    Ok(n) => {
                        let data = buf.get(..n).unwrap_or(&[]);
                        let cut = escape.and_then(|e| data.iter().position(|b| *b == e));
                        queued.extend_from_slice(data.get(..cut.unwrap_or(n)).unwrap_or(&[]));
                        if cut.is_some() {
                            // What came before Ctrl-] goes to the guest: room is waited
                            // for (output kept flowing) up to DETACH_FLUSH, then the rest
                            // is dropped.
                            let start = Instant::now();
                            loop {
                                let n = ring.put_input(&queued);
                                if n > 0 {
                                    queued.drain(..n);
                                    events.kick()?;
                                }
                                if queued.is_empty() || start.elapsed() >= DETACH_FLUSH {
                                    return Ok(RelayEnd::Detached);
                                }
                                drain(&mut || events.kick(), output)?;
                                std::thread::sleep(RING_POLL / 40);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn console_node(xs: &XsConnection, domid: u32, what: &'static str) -> Result<String, ConsoleError> {
    xs.read_opt(&format!("/local/domain/{domid}/console/{what}"))?
        .ok_or(ConsoleError::NoConsole(domid))
}

/// Ring mode: map `domid`'s console page, bind its port, and [`relay_ring`] it with
/// `input`/`output` until Ctrl-] or the domain shuts down.
pub fn ring_attach(
    domid: u32,
    input: Option<&mut File>,
    output: &mut impl Write,
    escape: Option<u8>,
) -> Result<RelayEnd, ConsoleError> {
    let bad = |what: &'static str, value: &str| ConsoleError::BadRing {
        domid,
        what,
        value: value.chars().take(64).collect(),
    };
    let (ring_ref, port) = {
        let xs = XsConnection::open()?;
        (
            console_node(&xs, domid, "ring-ref")?,
            console_node(&xs, domid, "port")?,
        )
    };
    let mfn = ring_ref
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|m| pvbuild_core::addr::Mfn::new(m).ok())
        .ok_or_else(|| bad("ring-ref", &ring_ref))?;
    let port: u32 = port.trim().parse().map_err(|_| bad("port", &port))?;
    let dom = u16::try_from(domid).map_err(|_| bad("domain id", &domid.to_string()))?;
    let xen = Xen::open()?;
    let mut page = xen.map_foreign(dom, &[mfn])?;
    let ring = ConsRing::new(page.as_mut_slice())
        .ok_or_else(|| bad("page mapping", "too small or misaligned"))?;
    let mut events = GuestPort::bind(domid, port)?;
    // Kick once: a guest that filled the ring before we came waits for room.
    events.kick()?;
    relay_ring(&ring, &mut events, input, output, escape, || {
        match xen.domain_info(dom) {
            Ok(info) => Ok(!info.shutdown() && !info.dying()),
            Err(XenError::NoSuchDomain { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
}

/// How [`attach`] reaches a console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// Through xenconsoled's pty.
    Pty,
    /// Straight to the shared ring.
    Ring,
}

/// The mode for a console whose `console/tty` node holds `tty` (absent or empty until
/// xenconsoled publishes a pty), xenconsoled running or not: the pty when it is published or
/// will be (xenconsoled runs: two consumers of one ring would each get half the output), the
/// ring otherwise.
pub fn choose_mode(tty: Option<&str>, xenconsoled_running: bool) -> ConsoleMode {
    match tty {
        Some(t) if !t.is_empty() => ConsoleMode::Pty,
        _ if xenconsoled_running => ConsoleMode::Pty,
        _ => ConsoleMode::Ring,
    }
}

/// Whether a live (not zombie) process named `xenconsoled` runs on this system (`/proc`).
pub fn xenconsoled_running() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| {
            std::fs::read_to_string(e.path().join("stat"))
                .is_ok_and(|stat| stat_is_live_xenconsoled(&stat))
        })
}

/// `/proc/PID/stat` names a live process called `xenconsoled` ("PID (COMM) STATE ...").
fn stat_is_live_xenconsoled(stat: &str) -> bool {
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = stat.get(open + 1..close).unwrap_or_default();
    let state = stat
        .get(close + 1..)
        .unwrap_or_default()
        .trim_start()
        .chars()
        .next();
    comm == "xenconsoled" && !matches!(state, Some('Z' | 'X' | 'x'))
}

/// `pvbuild console DOMID`: attach stdin/stdout to `domid`'s console by the mode
/// [`choose_mode`] picks (waiting at most `tty_timeout` for xenconsoled's pty in pty mode).
pub fn attach(domid: u32, tty_timeout: Duration) -> Result<RelayEnd, ConsoleError> {
    let tty = {
        let xs = XsConnection::open()?;
        if xs
            .read_opt(&format!("/local/domain/{domid}/console"))?
            .is_none()
        {
            return Err(ConsoleError::NoConsole(domid));
        }
        xs.read_opt(&format!("/local/domain/{domid}/console/tty"))?
    };
    match choose_mode(tty.as_deref(), xenconsoled_running()) {
        ConsoleMode::Pty => console_attach(domid, tty_timeout),
        ConsoleMode::Ring => {
            let (mut input, _raw) = stdin_input()?;
            let mut out = io::stdout().lock();
            ring_attach(domid, Some(&mut input), &mut out, Some(ESCAPE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::fake::FakeXenstore;
    use std::os::fd::OwnedFd;

    fn pipe() -> (File, File) {
        let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
        (File::from(r), File::from(w))
    }

    #[test]
    fn relays_a_real_pty_and_detaches_on_ctrl_bracket() {
        // The master is xenconsoled's side; the relay opens the slave by path, as from xenstore.
        // xenconsoled makes its pty raw (cfmakeraw) before publishing it: so does the test, or
        // the line discipline would echo the guest's output back to it.
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut t = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
        let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
        let mut master = File::from(pty.master);
        let (mut in_r, mut in_w) = pipe();
        let (mut out_r, out_w) = pipe();
        let t = std::thread::spawn(move || {
            let mut out_w = out_w;
            attach_path(&slave_path, &mut in_r, &mut out_w, Some(ESCAPE))
        });
        // Guest output reaches our output untouched (raw: no \n -> \r\n translation).
        master.write_all(b"login: \n").unwrap();
        let mut got = [0u8; 8];
        out_r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"login: \n");
        // Our input reaches the guest, without echo back to us.
        in_w.write_all(b"root\r").unwrap();
        let mut got = [0u8; 5];
        master.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"root\r");
        // Bytes before Ctrl-] still go; the relay then ends.
        in_w.write_all(b"x\x1dignored").unwrap();
        assert_eq!(t.join().unwrap().unwrap(), RelayEnd::Detached);
        let mut got = [0u8; 1];
        master.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
        drop(pty.slave);
    }

    #[test]
    fn ends_when_the_console_side_closes() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave_path = nix::unistd::ttyname(&pty.slave).unwrap();
        drop(pty.slave);
        let mut master = File::from(pty.master);
        let (mut in_r, _in_w) = pipe();
        let (mut out_r, out_w) = pipe();
        let t = std::thread::spawn(move || {
            let mut out_w = out_w;
            attach_path(&slave_path, &mut in_r, &mut out_w, Some(ESCAPE))
        });
        master.write_all(b"bye").unwrap();
        let mut got = [0u8; 3];
        out_r.read_exact(&mut got).unwrap();
        drop(master);
        assert_eq!(t.join().unwrap().unwrap(), RelayEnd::ConsoleClosed);
    }

    #[test]
    fn waits_for_xenconsoled_to_publish_the_tty() {
        let fake = FakeXenstore::new();
        let xs = fake.connect();
        xs.write("/local/domain/4/console/tty", "").unwrap();
        // Published before the wait: found at once.
        fake.poke("/local/domain/4/console/tty", "/dev/pts/7");
        assert_eq!(
            wait_for_tty(&xs, 4, Duration::from_millis(10)).unwrap(),
            PathBuf::from("/dev/pts/7")
        );
        // Published while waiting: the watch wakes the wait.
        xs.write("/local/domain/8/console/tty", "").unwrap();
        let poker = fake.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            poker.poke("/local/domain/8/console/tty", "/dev/pts/8");
        });
        let start = Instant::now();
        assert_eq!(
            wait_for_tty(&xs, 8, Duration::from_secs(10)).unwrap(),
            PathBuf::from("/dev/pts/8")
        );
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        // Not published: a timeout error naming xenconsoled.
        xs.write("/local/domain/5/console/tty", "").unwrap();
        let e = wait_for_tty(&xs, 5, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("xenconsoled"), "{e}");
        // No console at all.
        assert!(matches!(
            wait_for_tty(&xs, 6, Duration::ZERO),
            Err(ConsoleError::NoConsole(6))
        ));
        // Not a device path.
        xs.write("/local/domain/7/console/tty", "/etc/shadow")
            .unwrap();
        assert!(matches!(
            wait_for_tty(&xs, 7, Duration::ZERO),
            Err(ConsoleError::BadTty { .. })
        ));
    }

    // ---- ring mode ----

    #[test]
    fn ring_read_takes_published_bytes_and_wraps() {
        let ring: Vec<u8> = (0..8u8).collect();
        let mut out = Vec::new();
        // Nothing published.
        assert_eq!(ring_read(&ring, 5, 5, &mut out), 5);
        assert!(out.is_empty());
        // A plain span.
        assert_eq!(ring_read(&ring, 1, 4, &mut out), 4);
        assert_eq!(out, [1, 2, 3]);
        // Across the end of the ring: positions 6, 7, 0, 1.
        out.clear();
        assert_eq!(ring_read(&ring, 6, 10, &mut out), 10);
        assert_eq!(out, [6, 7, 0, 1]);
        // Across the u32 wrap of the free-running indexes.
        out.clear();
        assert_eq!(ring_read(&ring, u32::MAX - 1, 2, &mut out), 2);
        assert_eq!(out, [6, 7, 0, 1]);
        // Exactly a full ring.
        out.clear();
        assert_eq!(ring_read(&ring, 3, 11, &mut out), 11);
        assert_eq!(out, [3, 4, 5, 6, 7, 0, 1, 2]);
    }

    #[test]
    fn ring_read_survives_hostile_indexes() {
        let ring: Vec<u8> = (0..8u8).collect();
        let mut out = Vec::new();
        // prod far ahead: only the last ring-full before prod, and cons catches up.
        assert_eq!(ring_read(&ring, 0, 1_000_003, &mut out), 1_000_003);
        assert_eq!(out, [3, 4, 5, 6, 7, 0, 1, 2]);
        // prod "behind" cons: a distance of nearly 2^32, clamped the same way.
        out.clear();
        assert_eq!(ring_read(&ring, 10, 9, &mut out), 9);
        assert_eq!(out.len(), 8);
        // Every pair of a grid of indexes: never more than the ring, always cons = prod.
        let probes = [
            0u32,
            1,
            7,
            8,
            9,
            2047,
            2048,
            2049,
            0x7fff_ffff,
            u32::MAX - 8,
            u32::MAX,
        ];
        let big: Vec<u8> = (0..OUT_SIZE).map(|i| i as u8).collect();
        for &c in &probes {
            for &p in &probes {
                out.clear();
                assert_eq!(ring_read(&big, c, p, &mut out), p);
                assert_eq!(out.len(), (p.wrapping_sub(c) as usize).min(OUT_SIZE));
            }
        }
        // Degenerate rings: empty, and not a power of two: no panic.
        out.clear();
        assert_eq!(ring_read(&[], 3, 9, &mut out), 3);
        assert!(out.is_empty());
        assert_eq!(ring_read(&[1, 2, 3], 0, u32::MAX, &mut out), u32::MAX);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn ring_write_fills_free_room_only() {
        let mut ring = [0u8; 8];
        // Room for 8 - (5 - 2) = 5 bytes, written at positions 5, 6, 7, 0, 1.
        assert_eq!(ring_write(&mut ring, 2, 5, b"abcdefg"), (10, 5));
        assert_eq!(&ring, b"de\0\0\0abc");
        // Full: nothing.
        assert_eq!(ring_write(&mut ring, 2, 10, b"x"), (10, 0));
        // Hostile consumer index (claims more than a ring in use, or ahead of prod).
        assert_eq!(ring_write(&mut ring, 0, 100, b"x"), (100, 0));
        assert_eq!(ring_write(&mut ring, 101, 100, b"x"), (100, 0));
        assert_eq!(&ring, b"de\0\0\0abc");
        // Across the u32 wrap.
        assert_eq!(ring_write(&mut ring, u32::MAX, u32::MAX, b"yz"), (1, 2));
        assert_eq!(ring[7], b'y');
        assert_eq!(ring[0], b'z');
        // Degenerate ring.
        assert_eq!(ring_write(&mut [], 0, 0, b"x"), (0, 0));
    }

    #[test]
    fn read_console_page_parses_the_interface() {
        let mut page = vec![0u8; 4096];
        page[OFF_OUT..OFF_OUT + 5].copy_from_slice(b"hello");
        page[OFF_OUT_CONS..OFF_OUT_CONS + 4].copy_from_slice(&1u32.to_ne_bytes());
        page[OFF_OUT_PROD..OFF_OUT_PROD + 4].copy_from_slice(&5u32.to_ne_bytes());
        let mut out = Vec::new();
        assert_eq!(read_console_page(&page, &mut out), Some(5));
        assert_eq!(out, b"ello");
        assert_eq!(
            read_console_page(&page[..INTERFACE_SIZE - 1], &mut out),
            None
        );
        // Hostile: prod a gigabyte ahead: one ring's worth.
        page[OFF_OUT_PROD..OFF_OUT_PROD + 4].copy_from_slice(&(1u32 << 30).to_ne_bytes());
        out.clear();
        assert_eq!(read_console_page(&page, &mut out), Some(1 << 30));
        assert_eq!(out.len(), OUT_SIZE);
    }

    #[test]
    fn mode_choice_and_xenconsoled_detection() {
        assert_eq!(choose_mode(Some("/dev/pts/3"), false), ConsoleMode::Pty);
        assert_eq!(choose_mode(Some("/dev/pts/3"), true), ConsoleMode::Pty);
        assert_eq!(choose_mode(Some(""), true), ConsoleMode::Pty);
        assert_eq!(choose_mode(None, true), ConsoleMode::Pty);
        assert_eq!(choose_mode(Some(""), false), ConsoleMode::Ring);
        assert_eq!(choose_mode(None, false), ConsoleMode::Ring);
        assert!(stat_is_live_xenconsoled(
            "412 (xenconsoled) S 1 412 412 0 -1"
        ));
        assert!(!stat_is_live_xenconsoled(
            "412 (xenconsoled) Z 1 412 412 0 -1"
        ));
        assert!(!stat_is_live_xenconsoled("412 (xenconsoled2) S 1"));
        assert!(!stat_is_live_xenconsoled("412 (a) b) S 1"));
        assert!(!stat_is_live_xenconsoled("garbage"));
        // This test process is not xenconsoled.
        let me = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(!stat_is_live_xenconsoled(&me));
    }

    /// A console page shared between the relay and a "guest" thread.
    struct SharedPage(Box<[u32; 1024]>);
    impl SharedPage {
        fn new() -> Self {
            Self(Box::new([0u32; 1024]))
        }
        fn view(&self) -> ConsRing<'_> {
            let p = NonNull::new(self.0.as_ptr() as *mut u8).unwrap();
            // SAFETY: 4096 aligned bytes owned by `self`, only accessed atomically (by the
            // relay and the guest side below) while views live.
            unsafe { ConsRing::from_raw(p) }
        }
    }

    /// The guest's side of the page: producer of out[], consumer of in[].
    fn guest_put(r: &ConsRing<'_>, data: &[u8]) -> usize {
        let cons = r.word(OFF_OUT_CONS).load(Ordering::Acquire);
        let prod = r.word(OFF_OUT_PROD).load(Ordering::Relaxed);
        let room = OUT_SIZE - prod.wrapping_sub(cons) as usize;
        let n = room.min(data.len());
        for (i, b) in data[..n].iter().enumerate() {
            let pos = (prod.wrapping_add(i as u32) as usize) % OUT_SIZE;
            r.byte(OFF_OUT + pos).store(*b, Ordering::Relaxed);
        }
        r.word(OFF_OUT_PROD)
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        n
    }
    fn guest_get(r: &ConsRing<'_>, out: &mut Vec<u8>) {
        let cons = r.word(OFF_IN_CONS).load(Ordering::Relaxed);
        let prod = r.word(OFF_IN_PROD).load(Ordering::Acquire);
        for i in 0..prod.wrapping_sub(cons) {
            let pos = (cons.wrapping_add(i) as usize) % IN_SIZE;
            out.push(r.byte(OFF_IN + pos).load(Ordering::Relaxed));
        }
        r.word(OFF_IN_CONS).store(prod, Ordering::Release);
    }

    /// Kicks as a non-blocking pipe: the guest writes a byte to kick the relay; the relay's
    /// kicks are counted.
    struct PipeEvents {
        rx: File,
        kicks: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }
    impl ConsoleEvents for PipeEvents {
        fn fd(&self) -> BorrowedFd<'_> {
            self.rx.as_fd()
        }
        fn ack(&mut self) -> Result<(), ConsoleError> {
            let mut b = [0u8; 64];
            loop {
                match (&self.rx).read(&mut b) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        fn kick(&mut self) -> Result<(), ConsoleError> {
            self.kicks.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    fn events() -> (PipeEvents, File) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        (
            PipeEvents {
                rx: File::from(r),
                kicks: Default::default(),
            },
            File::from(w),
        )
    }

    #[test]
    fn relay_ring_moves_more_than_a_ring_of_output_then_ends_at_shutdown() {
        let page = SharedPage::new();
        let (mut ev, mut kick_w) = events();
        let kicks = ev.kicks.clone();
        let text: Vec<u8> = (0..7000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mut out_r, out_w) = pipe();
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            out_r.read_to_end(&mut v).unwrap();
            v
        });
        std::thread::scope(|s| {
            let guest_down = down.clone();
            let page = &page;
            let text = &text;
            s.spawn(move || {
                let g = page.view();
                let mut sent = 0;
                while sent < text.len() {
                    let n = guest_put(&g, &text[sent..]);
                    sent += n;
                    kick_w.write_all(b"k").unwrap();
                    if n == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                // Wait for the console to catch up, as the test kernel does, then "shut down".
                while g.word(OFF_OUT_CONS).load(Ordering::Acquire)
                    != g.word(OFF_OUT_PROD).load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                guest_down.store(true, Ordering::SeqCst);
            });
            let mut out_w = out_w;
            let end = relay_ring(
                &page.view(),
                &mut ev,
                None,
                &mut out_w,
                Some(ESCAPE),
                || Ok(!down.load(Ordering::SeqCst)),
            )
            .unwrap();
            assert_eq!(end, RelayEnd::ConsoleClosed);
        });
        assert_eq!(reader.join().unwrap(), text);
        assert!(
            kicks.load(Ordering::SeqCst) >= 3,
            "the guest was never kicked for room"
        );
    }

    #[test]
    fn relay_ring_feeds_input_and_detaches_on_ctrl_bracket() {
        let page = SharedPage::new();
        let (mut ev, mut kick_w) = events();
        let (mut in_r, mut in_w) = pipe();
        let got = std::thread::scope(|s| {
            let page = &page;
            let guest = s.spawn(move || {
                let g = page.view();
                let mut got = Vec::new();
                let start = Instant::now();
                while !got.ends_with(b"d") && start.elapsed() < Duration::from_secs(20) {
                    guest_get(&g, &mut got);
                    std::thread::sleep(Duration::from_millis(1));
                }
                got
            });
            // Input larger than in[]: it waits for the guest to make room.
            let big = vec![b'.'; IN_SIZE * 3];
            in_w.write_all(&big).unwrap();
            in_w.write_all(b"abc").unwrap();
            kick_w.write_all(b"k").unwrap();
            let relay = s.spawn(move || {
                relay_ring(
                    &page.view(),
                    &mut ev,
                    Some(&mut in_r),
                    &mut io::sink(),
                    Some(ESCAPE),
                    || Ok(true),
                )
            });
            std::thread::sleep(Duration::from_millis(100));
            in_w.write_all(b"d\x1dnot sent").unwrap();
            assert_eq!(relay.join().unwrap().unwrap(), RelayEnd::Detached);
            guest.join().unwrap()
        });
        let mut want = vec![b'.'; IN_SIZE * 3];
        want.extend_from_slice(b"abcd");
        assert_eq!(got, want);
    }

    #[test]
    fn relay_ring_bounds_a_hostile_guest() {
        let page = SharedPage::new();
        let (mut ev, _kick_w) = events();
        let g = page.view();
        // out_prod a billion bytes ahead, in_cons far ahead of in_prod.
        g.word(OFF_OUT_PROD).store(1_000_000_000, Ordering::SeqCst);
        g.word(OFF_IN_CONS).store(77_777, Ordering::SeqCst);
        let (mut in_r, mut in_w) = pipe();
        in_w.write_all(b"input").unwrap();
        let mut out = Vec::new();
        let mut rounds = 0;
        let end = relay_ring(
            &page.view(),
            &mut ev,
            Some(&mut in_r),
            &mut out,
            None,
            || {
                rounds += 1;
                // The guest keeps lying between rounds.
                let p = g.word(OFF_OUT_PROD).load(Ordering::SeqCst);
                g.word(OFF_OUT_PROD)
                    .store(p.wrapping_add(0x8000_0001), Ordering::SeqCst);
                Ok(rounds < 3)
            },
        )
        .unwrap();
        assert_eq!(end, RelayEnd::ConsoleClosed);
        // One ring's worth per round: the first drain, two lies, and a last drain.
        assert_eq!(out.len(), OUT_SIZE * 4);
        assert_eq!(
            g.word(OFF_OUT_CONS).load(Ordering::SeqCst),
            g.word(OFF_OUT_PROD).load(Ordering::SeqCst)
        );
        // No room claimed: nothing written into in[].
        assert_eq!(g.word(OFF_IN_PROD).load(Ordering::SeqCst), 0);
    }
}

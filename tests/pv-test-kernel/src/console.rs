//! The PV console: bytes go into the `out` ring of the console page
//! (`struct xencons_interface`, io/console.h), then an event on the console event channel
//! tells xenconsoled in dom0 to read them. If the ring cannot be used (its page is not where
//! the builder promised), lines go to CONSOLEIO_write instead, which only a debug Xen accepts.

use core::fmt;
use core::sync::atomic::{fence, Ordering};

use crate::global::Global;
use crate::hypercall;
use crate::xen::ConsIface;

/// How many SCHEDOP_yield rounds to wait for xenconsoled to drain the ring.
const DRAIN_YIELDS: u32 = 200_000;
const OUT_SIZE: u32 = 2048;

#[derive(Debug)]
struct Ring {
    iface: *mut ConsIface,
    evtchn: u32,
    /// xenconsoled stopped reading: drop output instead of waiting again.
    stalled: bool,
}

#[derive(Debug)]
struct Fallback {
    line: [u8; 160],
    len: usize,
}

#[derive(Debug)]
struct State {
    ring: Option<Ring>,
    fallback: Fallback,
}

static STATE: Global<State> = Global::new(State {
    ring: None,
    fallback: Fallback {
        line: [0; 160],
        len: 0,
    },
});

/// Use the ring at `va` (already checked to map the console frame) with `evtchn`.
///
/// # Safety
/// `va` maps the console page writable for the rest of the kernel's life.
pub unsafe fn init(va: u64, evtchn: u32) {
    // SAFETY: single-threaded; no other reference to STATE is alive here.
    let state = unsafe { STATE.get() };
    state.ring = Some(Ring {
        iface: va as *mut ConsIface,
        evtchn,
        stalled: false,
    });
}

pub fn ring_in_use() -> bool {
    // SAFETY: single-threaded; the reference does not outlive this call.
    unsafe { STATE.get() }.ring.is_some()
}

impl Ring {
    fn out_cons(&self) -> u32 {
        // SAFETY: `iface` maps the console page (init's contract); dom0 writes out_cons.
        unsafe { core::ptr::addr_of!((*self.iface).out_cons).read_volatile() }
    }

    fn out_prod(&self) -> u32 {
        // SAFETY: as above; only we write out_prod.
        unsafe { core::ptr::addr_of!((*self.iface).out_prod).read_volatile() }
    }

    fn notify(&self) {
        hypercall::evtchn_send(self.evtchn);
    }

    /// Wait (bounded) until at most `max_used` bytes are unread by xenconsoled.
    fn wait_until_used_at_most(&mut self, max_used: u32) -> bool {
        if self.stalled {
            return false;
        }
        for _ in 0..DRAIN_YIELDS {
            fence(Ordering::Acquire);
            if self.out_prod().wrapping_sub(self.out_cons()) <= max_used {
                return true;
            }
            self.notify();
            hypercall::sched_yield();
        }
        self.stalled = true;
        false
    }

    fn put(&mut self, byte: u8) {
        if !self.wait_until_used_at_most(OUT_SIZE - 1) {
            return;
        }
        let prod = self.out_prod();
        let idx = (prod % OUT_SIZE) as usize;
        // SAFETY: idx < 2048 = out.len(); the page is mapped writable (init's contract).
        unsafe {
            core::ptr::addr_of_mut!((*self.iface).out)
                .cast::<u8>()
                .add(idx)
                .write_volatile(byte);
        }
        // The byte must be visible before the producer index that publishes it.
        fence(Ordering::Release);
        // SAFETY: as above.
        unsafe {
            core::ptr::addr_of_mut!((*self.iface).out_prod).write_volatile(prod.wrapping_add(1));
        }
        if byte == b'\n' {
            self.notify();
        }
    }
}

impl Fallback {
    fn put(&mut self, byte: u8) {
        if let Some(slot) = self.line.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
        if byte == b'\n' || self.len == self.line.len() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Some(bytes) = self.line.get(..self.len) {
            hypercall::console_io_write(bytes);
        }
        self.len = 0;
    }
}

/// Write bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    // SAFETY: single-threaded; the reference does not outlive this call.
    let state = unsafe { STATE.get() };
    for &b in bytes {
        match state.ring.as_mut() {
            Some(ring) => ring.put(b),
            None => state.fallback.put(b),
        }
    }
}

/// Push everything out and wait (bounded) until xenconsoled has read it.
/// Returns false if the ring did not drain.
pub fn flush() -> bool {
    // SAFETY: single-threaded; the reference does not outlive this call.
    let state = unsafe { STATE.get() };
    state.fallback.flush();
    match state.ring.as_mut() {
        Some(ring) => {
            ring.notify();
            ring.wait_until_used_at_most(0)
        }
        None => true,
    }
}

/// `core::fmt` sink for the console.
#[derive(Debug)]
pub struct Writer;

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// `println!` for the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Writer, $($arg)*);
    }};
}

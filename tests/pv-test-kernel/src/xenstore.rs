//! The xenstore ring page of start_info (`store_mfn`, `store_evtchn`) as the client of
//! `pv_test_kernel::xs` needs it: volatile accesses to `struct xenstore_domain_interface`,
//! fences around the indices, EVTCHNOP_send to notify, SCHEDOP_yield to wait (bounded).

use core::sync::atomic::{fence, Ordering};

use crate::hypercall;
use crate::xen::XsIface;
use pv_test_kernel::xs::{mask, Interface};

/// SCHEDOP_yield rounds one request may wait for oxenstored (10x the console's drain budget:
/// under QEMU TCG on a loaded host the daemon can take seconds).
const YIELDS_PER_REQUEST: u32 = 2_000_000;

#[derive(Debug)]
pub struct Page {
    iface: *mut XsIface,
    evtchn: u32,
    waits: u32,
}

impl Page {
    /// # Safety
    /// `va` maps the xenstore ring frame writable for the rest of the kernel's life, and
    /// nothing else uses the ring.
    pub unsafe fn new(va: u64, evtchn: u32) -> Page {
        Page {
            iface: va as *mut XsIface,
            evtchn,
            waits: 0,
        }
    }
}

macro_rules! field {
    ($self:ident, $f:ident) => {
        // SAFETY: `iface` maps the ring page (Page::new's contract).
        unsafe { core::ptr::addr_of!((*$self.iface).$f).read_volatile() }
    };
}

macro_rules! set_field {
    ($self:ident, $f:ident, $v:expr) => {
        // SAFETY: `iface` maps the ring page writable (Page::new's contract).
        unsafe { core::ptr::addr_of_mut!((*$self.iface).$f).write_volatile($v) }
    };
}

impl Interface for Page {
    fn req_cons(&self) -> u32 {
        let v = field!(self, req_cons);
        fence(Ordering::Acquire);
        v
    }

    fn req_prod(&self) -> u32 {
        field!(self, req_prod)
    }

    fn set_req_prod(&mut self, v: u32) {
        // The request bytes must be visible before the index that publishes them.
        fence(Ordering::Release);
        set_field!(self, req_prod, v);
    }

    fn put_req(&mut self, idx: u32, b: u8) {
        // SAFETY: mask() < 1024 = req.len(); the page is mapped writable.
        unsafe {
            core::ptr::addr_of_mut!((*self.iface).req)
                .cast::<u8>()
                .add(mask(idx) as usize)
                .write_volatile(b);
        }
    }

    fn rsp_prod(&self) -> u32 {
        let v = field!(self, rsp_prod);
        // The reply bytes are read only after the index that published them.
        fence(Ordering::Acquire);
        v
    }

    fn rsp_cons(&self) -> u32 {
        field!(self, rsp_cons)
    }

    fn set_rsp_cons(&mut self, v: u32) {
        // Done reading the bytes before handing their space back.
        fence(Ordering::Release);
        set_field!(self, rsp_cons, v);
    }

    fn get_rsp(&self, idx: u32) -> u8 {
        // SAFETY: mask() < 1024 = rsp.len(); the page is mapped.
        unsafe {
            core::ptr::addr_of!((*self.iface).rsp)
                .cast::<u8>()
                .add(mask(idx) as usize)
                .read_volatile()
        }
    }

    fn notify(&mut self) {
        hypercall::evtchn_send(self.evtchn);
    }

    fn wait(&mut self) -> bool {
        if self.waits >= YIELDS_PER_REQUEST {
            return false;
        }
        self.waits += 1;
        hypercall::sched_yield();
        true
    }

    fn reset_budget(&mut self) {
        self.waits = 0;
    }
}

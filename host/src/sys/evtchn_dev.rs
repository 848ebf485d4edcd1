//! The Linux event-channel device's ioctl ABI (`xen/sys/evtchn.h`, Linux's
//! `include/uapi/xen/evtchn.h`).
//!
//! `/dev/xen/evtchn` binds event channels to this process. Its ioctl numbers are
//! `_IOC(_IOC_NONE, 'E', nr, sizeof(struct))`, computed here from the Rust structs with nix's
//! `ioc!`; `host/tests/abi_evtchn.rs` compares structs and numbers with the C header.
//!
//! Besides the ioctls, the device speaks through `read(2)` and `write(2)`: a read returns the
//! local ports (`u32` each) that fired since the last read, each then masked; writing the same
//! ports back unmasks them (libxenevtchn's `xenevtchn_pending` / `xenevtchn_unmask`).

use core::ffi::c_void;
use core::mem::size_of;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::privcmd::IoctlRequest;

/// Path of the event-channel device.
pub const EVTCHN_DEV_PATH: &str = "/dev/xen/evtchn";

/// `struct ioctl_evtchn_bind_interdomain`: bind a local port to `remote_port` of
/// `remote_domain` (a port that domain allocated unbound for us). Returns the local port.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct IoctlEvtchnBindInterdomain {
    /// The other domain.
    pub remote_domain: u32,
    /// Its port.
    pub remote_port: u32,
}
const _: () = assert!(size_of::<IoctlEvtchnBindInterdomain>() == 8);

/// `struct ioctl_evtchn_unbind`: unbind a local port bound through this fd.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct IoctlEvtchnUnbind {
    /// The local port.
    pub port: u32,
}
const _: () = assert!(size_of::<IoctlEvtchnUnbind>() == 4);

/// `struct ioctl_evtchn_notify`: send an event on a local port bound through this fd.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct IoctlEvtchnNotify {
    /// The local port.
    pub port: u32,
}
const _: () = assert!(size_of::<IoctlEvtchnNotify>() == 4);

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: IoctlRequest = nix::ioc!(
    nix::sys::ioctl::NONE,
    b'E',
    1,
    size_of::<IoctlEvtchnBindInterdomain>()
);
/// `IOCTL_EVTCHN_UNBIND`.
pub const IOCTL_EVTCHN_UNBIND: IoctlRequest = nix::ioc!(
    nix::sys::ioctl::NONE,
    b'E',
    3,
    size_of::<IoctlEvtchnUnbind>()
);
/// `IOCTL_EVTCHN_NOTIFY`.
pub const IOCTL_EVTCHN_NOTIFY: IoctlRequest = nix::ioc!(
    nix::sys::ioctl::NONE,
    b'E',
    4,
    size_of::<IoctlEvtchnNotify>()
);
/// `IOCTL_EVTCHN_RESET`: clear the pending-port buffer and its overflow error.
pub const IOCTL_EVTCHN_RESET: IoctlRequest = nix::ioc!(nix::sys::ioctl::NONE, b'E', 5, 0);

/// One evtchn ioctl on `fd`.
///
/// # Safety
/// `arg` must point to a valid, writable struct of the type `request` names (or be null for
/// [`IOCTL_EVTCHN_RESET`]), live for the whole call.
pub unsafe fn evtchn_ioctl(
    fd: BorrowedFd<'_>,
    request: IoctlRequest,
    arg: *mut c_void,
) -> Result<i32, Errno> {
    crate::build::steps::count_ioctl();
    // SAFETY: forwarded contract: the caller guarantees `arg` is what `request` expects.
    unsafe { super::raw_ioctl(fd, request, arg) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_evtchn_h() {
        // _IOC(_IOC_NONE = 0, 'E' = 0x45, nr, size): size in bits 16..30.
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
        assert_eq!(IOCTL_EVTCHN_RESET, 0x0000_4505);
    }
}

//! Event channels of this process through `/dev/xen/evtchn`, as libxenevtchn does them.
//!
//! [`EvtchnDev::bind_interdomain`] binds a local port to a port another domain allocated for
//! us (a guest's console port, say); [`EvtchnDev::notify`] kicks the other end;
//! [`EvtchnDev::wait`] blocks until one of our ports fires, then unmasks it. Ports bound
//! through a device are unbound when it is dropped (the kernel would also do it on close).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use thiserror::Error;

use crate::sys::evtchn_dev::*;
use crate::sys::privcmd::IoctlRequest;

/// Why an event-channel operation failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EvtchnError {
    /// The device could not be opened (is the xen-evtchn module loaded?).
    #[error("open {path}: {errno} (is the xen_evtchn module loaded?)")]
    Open {
        /// The device path.
        path: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// An ioctl failed.
    #[error("evtchn {op} (port {port}): {errno}")]
    Ioctl {
        /// The operation.
        op: &'static str,
        /// The port it was about (remote for a bind, local otherwise).
        port: u32,
        /// The errno.
        errno: Errno,
    },
    /// Reading or writing pending ports failed.
    #[error("evtchn {op}: {errno}")]
    Io {
        /// `read pending ports` or `unmask`.
        op: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// The port is not bound through this device.
    #[error("evtchn port {0} is not bound here")]
    NotBound(u32),
    /// The device returned a short or oversized record.
    #[error("evtchn device returned {0} bytes for a port")]
    BadRecord(usize),
}

fn io_errno(e: &io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// An open `/dev/xen/evtchn` and the ports bound through it.
#[derive(Debug)]
pub struct EvtchnDev {
    file: File,
    bound: Vec<u32>,
}

impl EvtchnDev {
    /// Opens [`EVTCHN_DEV_PATH`] (non-blocking: [`Self::wait`] polls).
    pub fn open() -> Result<Self, EvtchnError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(EVTCHN_DEV_PATH)
            .map_err(|e| EvtchnError::Open {
                path: EVTCHN_DEV_PATH,
                errno: io_errno(&e),
            })?;
        Ok(Self {
            file,
            bound: Vec::new(),
        })
    }

    fn ioctl<T>(
        &self,
        op: &'static str,
        port: u32,
        request: IoctlRequest,
        arg: &mut T,
    ) -> Result<i32, EvtchnError> {
        // SAFETY: every caller passes the struct type `request` names (checked against the
        // header by host/tests/abi_evtchn.rs); it lives on our stack for the whole call.
        unsafe { evtchn_ioctl(self.file.as_fd(), request, (arg as *mut T).cast()) }
            .map_err(|errno| EvtchnError::Ioctl { op, port, errno })
    }

    /// Binds a local port to `remote_port` of `remote_dom`; returns the local port.
    pub fn bind_interdomain(
        &mut self,
        remote_dom: u32,
        remote_port: u32,
    ) -> Result<u32, EvtchnError> {
        let mut arg = IoctlEvtchnBindInterdomain {
            remote_domain: remote_dom,
            remote_port,
        };
        let r = self.ioctl(
            "bind interdomain",
            remote_port,
            IOCTL_EVTCHN_BIND_INTERDOMAIN,
            &mut arg,
        )?;
        let port = u32::try_from(r).map_err(|_| EvtchnError::Ioctl {
            op: "bind interdomain",
            port: remote_port,
            errno: Errno::ERANGE,
        })?;
        self.bound.push(port);
        Ok(port)
    }

    /// Unbinds a local port bound through this device.
    pub fn unbind(&mut self, port: u32) -> Result<(), EvtchnError> {
        let at = self
            .bound
            .iter()
            .position(|p| *p == port)
            .ok_or(EvtchnError::NotBound(port))?;
        self.bound.swap_remove(at);
        let mut arg = IoctlEvtchnUnbind { port };
        self.ioctl("unbind", port, IOCTL_EVTCHN_UNBIND, &mut arg)
            .map(drop)
    }

    /// Sends an event on a local port bound through this device.
    pub fn notify(&self, port: u32) -> Result<(), EvtchnError> {
        let mut arg = IoctlEvtchnNotify { port };
        self.ioctl("notify", port, IOCTL_EVTCHN_NOTIFY, &mut arg)
            .map(drop)
    }

    /// Clears the pending-port buffer and its overflow error.
    pub fn reset(&self) -> Result<(), EvtchnError> {
        // SAFETY: IOCTL_EVTCHN_RESET takes no argument.
        unsafe { evtchn_ioctl(self.file.as_fd(), IOCTL_EVTCHN_RESET, core::ptr::null_mut()) }
            .map(drop)
            .map_err(|errno| EvtchnError::Ioctl {
                op: "reset",
                port: 0,
                errno,
            })
    }

    /// The next port that fired, without waiting; it stays masked until [`Self::unmask`].
    pub fn pending(&self) -> Result<Option<u32>, EvtchnError> {
        let mut buf = [0u8; 4];
        loop {
            return match (&self.file).read(&mut buf) {
                Ok(4) => Ok(Some(u32::from_ne_bytes(buf))),
                Ok(n) => Err(EvtchnError::BadRecord(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if io_errno(&e) == Errno::EFBIG => {
                    // The kernel's ring of pending ports overflowed: start afresh; the caller
                    // re-checks whatever it waits for anyway.
                    self.reset()?;
                    Err(EvtchnError::Io {
                        op: "read pending ports",
                        errno: Errno::EFBIG,
                    })
                }
                Err(e) => Err(EvtchnError::Io {
                    op: "read pending ports",
                    errno: io_errno(&e),
                }),
            };
        }
    }

    /// Unmasks a port returned by [`Self::pending`] so it can fire again.
    pub fn unmask(&self, port: u32) -> Result<(), EvtchnError> {
        loop {
            return match (&self.file).write(&port.to_ne_bytes()) {
                Ok(4) => Ok(()),
                Ok(n) => Err(EvtchnError::BadRecord(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(EvtchnError::Io {
                    op: "unmask",
                    errno: io_errno(&e),
                }),
            };
        }
    }

    /// Waits at most `timeout` (forever with `None`) for a port to fire; returns it, unmasked
    /// again, or `None` on timeout.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Option<u32>, EvtchnError> {
        if let Some(p) = self.pending()? {
            self.unmask(p)?;
            return Ok(Some(p));
        }
        let t = match timeout {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, t) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(EvtchnError::Io { op: "poll", errno }),
        }
        match self.pending()? {
            Some(p) => {
                self.unmask(p)?;
                Ok(Some(p))
            }
            None => Ok(None),
        }
    }

    /// Ports bound through this device.
    pub fn bound(&self) -> &[u32] {
        &self.bound
    }
}

impl AsFd for EvtchnDev {
    /// Readable when a port has fired.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for EvtchnDev {
    fn drop(&mut self) {
        for port in std::mem::take(&mut self.bound) {
            let mut arg = IoctlEvtchnUnbind { port };
            let _ = self.ioctl("unbind", port, IOCTL_EVTCHN_UNBIND, &mut arg);
        }
    }
}

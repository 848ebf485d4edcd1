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
    /// again, or `None` on timeout (or when a signal cut the wait short).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// A device over one end of a socket pair: the other end plays the kernel, writing port
    /// records and reading unmask records. Ioctls fail as on any non-evtchn fd.
    fn over_socket() -> (EvtchnDev, UnixStream) {
        let (dev_end, kernel) = UnixStream::pair().unwrap();
        dev_end.set_nonblocking(true).unwrap();
        kernel
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let dev = EvtchnDev {
            file: File::from(std::os::fd::OwnedFd::from(dev_end)),
            bound: Vec::new(),
        };
        (dev, kernel)
    }

    #[test]
    fn pending_reads_port_records_and_unmask_writes_them_back() {
        let (dev, mut kernel) = over_socket();
        assert_eq!(dev.pending(), Ok(None));
        kernel.write_all(&7u32.to_ne_bytes()).unwrap();
        assert_eq!(dev.pending(), Ok(Some(7)));
        assert_eq!(dev.pending(), Ok(None));
        dev.unmask(7).unwrap();
        let mut rec = [0u8; 4];
        kernel.read_exact(&mut rec).unwrap();
        assert_eq!(u32::from_ne_bytes(rec), 7);
        // A short record is an error, not a port.
        kernel.write_all(&[1, 2]).unwrap();
        assert_eq!(dev.pending(), Err(EvtchnError::BadRecord(2)));
    }

    #[test]
    fn wait_times_out_or_returns_the_fired_port_unmasked() {
        let (dev, mut kernel) = over_socket();
        let t = std::time::Instant::now();
        assert_eq!(dev.wait(Some(Duration::from_millis(30))), Ok(None));
        assert!(t.elapsed() >= Duration::from_millis(25));
        let k = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            kernel.write_all(&5u32.to_ne_bytes()).unwrap();
            let mut rec = [0u8; 4];
            kernel.read_exact(&mut rec).unwrap();
            u32::from_ne_bytes(rec)
        });
        assert_eq!(dev.wait(None), Ok(Some(5)));
        assert_eq!(k.join().unwrap(), 5, "the port was not unmasked");
    }

    #[test]
    fn ioctls_on_a_wrong_fd_fail_cleanly_and_drop_does_not_panic() {
        let (mut dev, _kernel) = over_socket();
        assert!(matches!(
            dev.bind_interdomain(3, 5),
            Err(EvtchnError::Ioctl {
                op: "bind interdomain",
                port: 5,
                ..
            })
        ));
        assert!(dev.bound().is_empty());
        assert!(matches!(
            dev.notify(4),
            Err(EvtchnError::Ioctl { op: "notify", .. })
        ));
        assert_eq!(dev.unbind(4), Err(EvtchnError::NotBound(4)));
        assert!(matches!(
            dev.reset(),
            Err(EvtchnError::Ioctl { op: "reset", .. })
        ));
        // Drop unbinds what it believes bound, ignoring failures.
        dev.bound.push(11);
        drop(dev);
    }
}

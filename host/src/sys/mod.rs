//! The sys layer: Xen's and privcmd's ABI as Rust structs, the ioctl numbers, and the devices.
//!
//! Modelled on propolis's `bhyve-api` split: this layer only describes the ABI and talks to
//! the kernel; [`crate::xen`] above it builds safe, typed operations.
//!
//! - [`privcmd`]: the `/dev/xen/privcmd` ioctl structs and numbers (`xen/sys/privcmd.h`).
//! - [`hypercall`], [`domctl`], [`memory`], [`evtchn`], [`grant`], [`vcpu`]: Xen 4.17's public
//!   ABI (`xen/*.h`) for the hypercalls of a PV build; [`sched`]: vcpu affinity, scheduler
//!   parameters and CPU pools; [`topo`]: the cpu, NUMA and PCI topology sysctls.
//! - [`Backend`]: the seam. Everything above goes through it: a privcmd ioctl, a mapping area
//!   for foreign frames, and hypercall buffers. [`Privcmd`] is the real one; tests use
//!   [`crate::xen::fake::FakeXen`].
//!
//! Every struct is `#[repr(C)]`, never packed, with the C compiler's implicit padding made
//! explicit (zerocopy's `IntoBytes` derive refuses hidden padding) and a size assertion after
//! it; `host/tests/abi_layout.rs` compares every size and field offset with Debian's
//! `libxen-dev` headers. The layouts are those of x86_64, the only architecture Xen PV dom0
//! runs on here.

pub mod domctl;
pub mod evtchn;
pub mod evtchn_dev;
pub mod grant;
pub mod hvm;
pub mod hypercall;
pub mod memory;
pub mod privcmd;
pub mod sched;
pub mod topo;
pub mod vcpu;

use std::ffi::c_void;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::libc;
use nix::sys::mman::{self, MapFlags, MmapAdvise, ProtFlags};

pub use privcmd::IoctlRequest;

/// The x86 page size, the unit of every mapping and hypercall buffer.
pub const PAGE_SIZE: usize = 4096;

#[cfg(not(target_arch = "x86_64"))]
compile_error!("pvbuild's Xen ABI layouts are those of x86_64");

/// What the safe layer needs from the kernel: the test seam.
///
/// [`Privcmd`] implements it with the real devices; a fake implements it in memory so the
/// wrappers in [`crate::xen`] can be tested without Xen.
pub trait Backend: fmt::Debug + Send + Sync {
    /// Issues privcmd ioctl `request` with argument `arg`; returns the ioctl's result (for a
    /// hypercall, the hypercall's non-negative return value) or the errno.
    ///
    /// # Safety
    /// `arg` must point to a valid, writable struct of the type `request` names, and every
    /// address inside it (hypercall buffers, arrays, mapping areas), and inside the hypercall
    /// arguments those point to, must be valid for what the ioctl does with it, for the whole
    /// call.
    unsafe fn ioctl(&self, request: IoctlRequest, arg: *mut c_void) -> Result<i32, Errno>;

    /// Reserves `pages` pages of address space for foreign mappings (an mmap of the privcmd
    /// device), readable and writable.
    fn map_area(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno>;

    /// Reserves `pages` pages for read-only foreign mappings (a PV guest's page tables and
    /// descriptor pages can only be mapped so, as libxenguest's `PROT_READ` maps them).
    /// Released by [`Backend::unmap_area`]. The default is [`Backend::map_area`].
    fn map_area_readonly(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno> {
        self.map_area(pages)
    }

    /// Releases an area from [`Backend::map_area`].
    ///
    /// # Safety
    /// `area` must have come from `map_area(pages)` on this backend, not yet released, and no
    /// reference into it may outlive this call.
    unsafe fn unmap_area(&self, area: NonNull<u8>, pages: NonZeroUsize);

    /// Allocates `pages` zeroed, page-aligned pages that Xen may read and write during a
    /// hypercall (locked in memory, not inherited by children).
    fn alloc_buffer(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno>;

    /// Frees a buffer from [`Backend::alloc_buffer`].
    ///
    /// # Safety
    /// `buf` must have come from `alloc_buffer(pages)` on this backend, not yet freed, and no
    /// reference into it may outlive this call.
    unsafe fn free_buffer(&self, buf: NonNull<u8>, pages: NonZeroUsize);
}

/// The one raw `ioctl(2)` of the crate.
///
/// # Safety
/// As [`Backend::ioctl`]: `arg` and every address it holds must be valid for `request`.
unsafe fn raw_ioctl(
    fd: BorrowedFd<'_>,
    request: IoctlRequest,
    arg: *mut c_void,
) -> Result<i32, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is open (borrowed for the call); the caller guarantees `arg` is what
    // `request` expects.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg) };
    Errno::result(ret)
}

/// Paths of the privcmd device, newest first (`/proc/xen/privcmd` needs xenfs mounted).
pub const PRIVCMD_PATHS: [&str; 2] = ["/dev/xen/privcmd", "/proc/xen/privcmd"];
/// Path of the hypercall-buffer device (Linux 4.18 and later).
pub const HYPERCALL_BUF_PATH: &str = "/dev/xen/hypercall";

/// The real devices: privcmd and, where the kernel has it, the hypercall-buffer device.
#[derive(Debug)]
pub struct Privcmd {
    privcmd: OwnedFd,
    hypercall_buf: Option<OwnedFd>,
}

/// Why [`Privcmd::open`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError {
    /// The device path tried last.
    pub path: &'static str,
    /// Its errno.
    pub errno: Errno,
}

fn open_rw(path: &str) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd` (or `/proc/xen/privcmd`) and, if present,
    /// `/dev/xen/hypercall`. Without the latter, hypercall buffers are locked anonymous
    /// memory, as libxencall falls back to.
    pub fn open() -> Result<Self, OpenError> {
        let mut last = OpenError {
            path: PRIVCMD_PATHS[0],
            errno: Errno::ENOENT,
        };
        let mut privcmd = None;
        for path in PRIVCMD_PATHS {
            match open_rw(path) {
                Ok(f) => {
                    privcmd = Some(OwnedFd::from(f));
                    break;
                }
                Err(e) => {
                    last = OpenError {
                        path,
                        errno: io_errno(&e),
                    }
                }
            }
        }
        let privcmd = privcmd.ok_or(last)?;
        let hypercall_buf = match open_rw(HYPERCALL_BUF_PATH) {
            Ok(f) => Some(OwnedFd::from(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(OpenError {
                    path: HYPERCALL_BUF_PATH,
                    errno: io_errno(&e),
                })
            }
        };
        Ok(Self {
            privcmd,
            hypercall_buf,
        })
    }
}

fn bytes(pages: NonZeroUsize) -> Result<NonZeroUsize, Errno> {
    pages
        .checked_mul(NonZeroUsize::MIN.saturating_add(PAGE_SIZE - 1))
        .ok_or(Errno::ENOMEM)
}

impl Backend for Privcmd {
    unsafe fn ioctl(&self, request: IoctlRequest, arg: *mut c_void) -> Result<i32, Errno> {
        crate::build::steps::count_ioctl();
        // SAFETY: forwarded contract: the caller guarantees `arg` is valid for `request`.
        unsafe { raw_ioctl(self.privcmd.as_fd(), request, arg) }
    }

    fn map_area(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno> {
        let len = bytes(pages)?;
        // SAFETY: a fresh shared mapping of the privcmd device at an address the kernel
        // picks: it aliases no Rust object.
        let p = unsafe {
            mman::mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                self.privcmd.as_fd(),
                0,
            )
        }?;
        Ok(p.cast())
    }

    fn map_area_readonly(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno> {
        let len = bytes(pages)?;
        // SAFETY: a fresh shared read-only mapping of the privcmd device at an address the
        // kernel picks: it aliases no Rust object.
        let p = unsafe {
            mman::mmap(
                None,
                len,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                self.privcmd.as_fd(),
                0,
            )
        }?;
        Ok(p.cast())
    }

    unsafe fn unmap_area(&self, area: NonNull<u8>, pages: NonZeroUsize) {
        if let Ok(len) = bytes(pages) {
            // SAFETY: the caller guarantees the area is ours, unreferenced, of this size.
            // An munmap failure can only mean a bad argument, which the contract excludes.
            let _ = unsafe { mman::munmap(area.cast(), len.get()) };
        }
    }

    fn alloc_buffer(&self, pages: NonZeroUsize) -> Result<NonNull<u8>, Errno> {
        let len = bytes(pages)?;
        let p = match &self.hypercall_buf {
            // SAFETY: a fresh shared mapping of the buffer device; aliases nothing.
            Some(fd) => unsafe {
                mman::mmap(
                    None,
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED,
                    fd.as_fd(),
                    0,
                )
            }?,
            None => {
                // SAFETY: a fresh private anonymous mapping; aliases nothing.
                let p = unsafe {
                    mman::mmap_anonymous(
                        None,
                        len,
                        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                        MapFlags::MAP_PRIVATE | MapFlags::MAP_LOCKED,
                    )
                }?;
                // SAFETY: `p` is the mapping just made, `len` bytes long.
                if let Err(e) = unsafe { mman::madvise(p, len.get(), MmapAdvise::MADV_DONTFORK) } {
                    // SAFETY: unmapping the mapping just made, never handed out.
                    let _ = unsafe { mman::munmap(p, len.get()) };
                    return Err(e);
                }
                p
            }
        };
        // SAFETY: the mapping is `len` bytes, writable, and ours alone; zeroing also faults
        // every page in before Xen touches it.
        unsafe { p.cast::<u8>().as_ptr().write_bytes(0, len.get()) };
        Ok(p.cast())
    }

    unsafe fn free_buffer(&self, buf: NonNull<u8>, pages: NonZeroUsize) {
        if let Ok(len) = bytes(pages) {
            // SAFETY: the caller guarantees the buffer is ours, unreferenced, of this size.
            let _ = unsafe { mman::munmap(buf.cast(), len.get()) };
        }
    }
}

//! Kernel and ramdisk files, mapped read-only as libxenguest's `xc_dom_malloc_filemap` maps
//! them, so that a 1 GiB ramdisk costs dom0 no heap.
//!
//! A regular file is opened, `fstat`ed for its size and mapped `PROT_READ`, `MAP_PRIVATE`
//! at exactly that size; the descriptor is held for as long as the mapping lives. (libxenguest
//! maps `MAP_SHARED` and closes the descriptor; private and shared read-only mappings of an
//! unchanged file read the same.) Anything else (a pipe, a character device such as
//! `/dev/zero`) is read into memory up to the limit, as before, and refused past it.
//!
//! **A file that shrinks while mapped.** Reading a mapped page that now lies past the end of
//! its file raises `SIGBUS`, which would kill pvbuild in the middle of a build. A `SIGBUS`
//! handler, installed with the first mapping, looks the faulting address up in the table of
//! live mappings: inside one, it maps an anonymous zero page over the faulting page (so the
//! read completes, with zeros) and marks the mapping damaged; anywhere else it puts back the
//! handler it replaced and returns, so the fault happens again and takes its usual course.
//! After a build, [`FileMap::check`] turns a damaged mapping, or a size that changed since
//! the `fstat`, into an error: the half-built domain is then destroyed like any other failed
//! build. A file whose bytes are rewritten in place without changing its size is read as it
//! is at the time of each read: neither this nor libxenguest can tell.
//!
//! [`FileMap::release`] drops pages already read from this process's mapping
//! (`MADV_DONTNEED`; they stay in the page cache and fault back in if read again), so that
//! reading a large ramdisk once does not make its whole size resident in pvbuild.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::libc;

/// Why a file could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FileMapError {
    /// open, fstat, read or mmap failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Larger than the limit.
    #[error("{path} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The file changed size while it was mapped.
    #[error("{path} changed size while it was being read ({was} bytes when opened)")]
    Changed {
        /// The file.
        path: PathBuf,
        /// Its size when mapped.
        was: u64,
    },
}

/// Live mappings the `SIGBUS` handler knows: start, length, and whether a read past the
/// file's end was caught in it.
const SLOTS: usize = 8;
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
}
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    hit: AtomicBool::new(false),
};
static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
/// Serialises claiming and freeing slots (the handler only reads).
static TABLE_LOCK: Mutex<()> = Mutex::new(());
/// Whether the handler is installed.
static INSTALLED: Mutex<bool> = Mutex::new(false);
/// The `SIGBUS` action the handler replaced.
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler; si_addr is the
    // faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = 4096usize;
    for slot in &TABLE {
        let start = slot.start.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Acquire);
        if len != 0 && addr >= start && addr - start < len {
            let at = addr & !(page - 1);
            // SAFETY: `at` is a page of a live read-only file mapping of ours (the slot is
            // cleared before the mapping is unmapped); replacing it with an anonymous zero
            // page keeps the range mapped, so no reference into it dangles.
            let r = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                slot.hit.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: put back what was there and let the fault happen again.
    match PREVIOUS.get() {
        Some(prev) => {
            // SAFETY: restoring a sigaction the kernel gave us earlier.
            unsafe { libc::sigaction(sig, prev, std::ptr::null_mut()) };
        }
        None => {
            // SAFETY: the default action, always valid.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

fn install_handler() -> std::io::Result<()> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return Ok(());
    }
    // SAFETY: an all-zero sigaction is a valid value to fill; the handler only touches
    // atomics and makes async-signal-safe system calls.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = on_sigbus as *const () as usize;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to sigaction values.
    if unsafe { libc::sigaction(libc::SIGBUS, &act, &mut old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let _ = PREVIOUS.set(old);
    *installed = true;
    Ok(())
}

/// Where a file's bytes live.
#[derive(Debug)]
enum Backing {
    /// A mapping: start, length, its slot in [`TABLE`] (if one was free), and the file.
    Mapped {
        ptr: usize,
        len: usize,
        slot: Option<usize>,
        file: File,
    },
    /// Read into memory (not a regular file).
    Read(Vec<u8>),
}

/// A kernel or ramdisk file's bytes.
#[derive(Debug)]
pub struct FileMap {
    path: PathBuf,
    backing: Backing,
    /// The mapped file's stamp, from the `fstat` of the descriptor it was mapped from (none
    /// for what was read, not mapped).
    stamp: Option<FileStamp>,
}

/// Which file a file is and when it last changed, from its metadata: what must not have
/// changed for two looks at a file to have seen the same bytes (`serve --pool`'s prepared
/// domains, the kernel cache's remembered keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of `path` (links followed).
    pub fn of(path: &Path) -> std::io::Result<Self> {
        std::fs::metadata(path).map(|m| Self::from_metadata(&m))
    }

    /// The stamp of the file `m` describes.
    pub fn from_metadata(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether `other` is a stamp of the same file (device and inode), changed or not.
    pub fn same_file(&self, other: &Self) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }

    /// Whether its last change is at least `margin` older than `now` (seconds since the
    /// epoch): a later change of its bytes then shows in its change time, whatever the
    /// clock's granularity, so the stamp stands for those bytes.
    pub fn settled(&self, now: i64, margin: i64) -> bool {
        self.ctime.0.saturating_add(margin) <= now
    }

    /// The stamp as text: seven decimal numbers.
    pub fn to_text(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }

    /// A stamp written by [`FileStamp::to_text`].
    pub fn parse(text: &str) -> Option<Self> {
        let mut w = text.split(' ');
        let mut u = || w.next()?.parse::<u64>().ok();
        let (dev, ino, size) = (u()?, u()?, u()?);
        let mut i = || w.next()?.parse::<i64>().ok();
        let stamp = Self {
            dev,
            ino,
            size,
            mtime: (i()?, i()?),
            ctime: (i()?, i()?),
        };
        w.next().is_none().then_some(stamp)
    }
}

impl FileMap {
    /// Map (or, if it is not a regular file, read) `path`, refusing more than `limit` bytes.
    pub fn open(path: &Path, limit: u64) -> Result<Self, FileMapError> {
        let file = File::open(path).map_err(|source| FileMapError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_file(file, path, limit)
    }

    /// [`FileMap::open`] of a file already open (`path` names it in messages).
    pub fn from_file(file: File, path: &Path, limit: u64) -> Result<Self, FileMapError> {
        let io = |source| FileMapError::Io {
            path: path.to_path_buf(),
            source,
        };
        let too_large = || FileMapError::TooLarge {
            path: path.to_path_buf(),
            limit,
        };
        let meta = file.metadata().map_err(io)?;
        if !meta.file_type().is_file() {
            use std::io::Read as _;
            let mut buf = Vec::new();
            file.take(limit.saturating_add(1))
                .read_to_end(&mut buf)
                .map_err(io)?;
            if buf.len() as u64 > limit {
                return Err(too_large());
            }
            return Ok(Self {
                path: path.to_path_buf(),
                backing: Backing::Read(buf),
                stamp: None,
            });
        }
        let size = meta.len();
        if size > limit {
            return Err(too_large());
        }
        if size == 0 {
            // mmap refuses a zero length; an empty slice needs no mapping.
            return Ok(Self {
                path: path.to_path_buf(),
                backing: Backing::Read(Vec::new()),
                stamp: Some(FileStamp::from_metadata(&meta)),
            });
        }
        let len = usize::try_from(size).map_err(|_| too_large())?;
        install_handler().map_err(io)?;
        // SAFETY: a fresh read-only private mapping of `len` bytes of an open file; it is
        // unmapped only in Drop. Reads past a shrunken file's end are caught (module docs).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io(std::io::Error::last_os_error()));
        }
        let ptr = ptr as usize;
        let slot = {
            let _g = TABLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let free = TABLE
                .iter()
                .position(|s| s.len.load(Ordering::Acquire) == 0);
            if let Some(s) = free.and_then(|i| TABLE.get(i)) {
                s.hit.store(false, Ordering::Release);
                s.start.store(ptr, Ordering::Release);
                s.len.store(len, Ordering::Release);
            }
            free
        };
        Ok(Self {
            path: path.to_path_buf(),
            backing: Backing::Mapped {
                ptr,
                len,
                slot,
                file,
            },
            stamp: Some(FileStamp::from_metadata(&meta)),
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.backing {
            // SAFETY: `ptr..ptr+len` is our live read-only mapping (unmapped only in Drop);
            // its bytes are the file's (or zeros where a shrunken file was caught, see the
            // module docs), and nothing in this process writes to it.
            Backing::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(*ptr as *const u8, *len)
            },
            Backing::Read(v) => v,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stamp of the file mapped, as it was when it was mapped (`None`: not a regular
    /// file, read instead).
    pub fn stamp(&self) -> Option<FileStamp> {
        self.stamp
    }

    /// Drop the mapped pages wholly below byte `upto` from this process (they are read again
    /// from the page cache if touched).
    pub fn release(&self, upto: usize) {
        if let Backing::Mapped { ptr, len, .. } = &self.backing {
            let end = upto.min(*len) & !4095;
            if end > 0 {
                // SAFETY: MADV_DONTNEED on part of our private read-only file mapping only
                // drops page-table entries; the bytes read back are the file's, unchanged.
                unsafe { libc::madvise(*ptr as *mut libc::c_void, end, libc::MADV_DONTNEED) };
            }
        }
    }

    /// Whether the file is still what was mapped: an error if a read past its end was caught
    /// or its size changed.
    pub fn check(&self) -> Result<(), FileMapError> {
        if let Backing::Mapped {
            len, slot, file, ..
        } = &self.backing
        {
            let hit = slot
                .and_then(|i| TABLE.get(i))
                .is_some_and(|s| s.hit.load(Ordering::Acquire));
            let now = file.metadata().map(|m| m.len()).ok();
            if hit || now != Some(*len as u64) {
                return Err(FileMapError::Changed {
                    path: self.path.clone(),
                    was: *len as u64,
                });
            }
        }
        Ok(())
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        if let Backing::Mapped { ptr, len, slot, .. } = &self.backing {
            if let Some(s) = slot.and_then(|i| TABLE.get(i)) {
                let _g = TABLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
                s.len.store(0, Ordering::Release);
                s.start.store(0, Ordering::Release);
            }
            // SAFETY: our mapping, no longer referenced (bytes() borrows self).
            unsafe { libc::munmap(*ptr as *mut libc::c_void, *len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str, data: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!("pvbuild-filemap-{}-{tag}", std::process::id()));
        std::fs::write(&p, data).unwrap();
        p
    }

    #[test]
    fn maps_a_file_and_refuses_past_the_limit() {
        let p = tmp("small", b"hello world");
        let m = FileMap::open(&p, 100).unwrap();
        assert_eq!(m.bytes(), b"hello world");
        m.check().unwrap();
        assert!(matches!(
            FileMap::open(&p, 5),
            Err(FileMapError::TooLarge { .. })
        ));
        std::fs::remove_file(p).unwrap();
    }

    /// A file truncated under its mapping: the read past its new end gives zeros instead of
    /// killing the process, and `check` reports the change.
    #[test]
    fn a_file_that_shrinks_while_mapped_is_an_error_not_a_sigbus() {
        let data = vec![7u8; 5 * 4096];
        let p = tmp("shrink", &data);
        let m = FileMap::open(&p, 1 << 20).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let sum: u64 = m.bytes().iter().map(|&b| u64::from(b)).sum();
        assert_eq!(sum, 7 * 4096);
        assert!(matches!(m.check(), Err(FileMapError::Changed { .. })));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn released_pages_read_back_the_same() {
        let data: Vec<u8> = (0..3 * 4096).map(|i| (i % 251) as u8).collect();
        let p = tmp("release", &data);
        let m = FileMap::open(&p, 1 << 20).unwrap();
        assert_eq!(m.bytes(), data.as_slice());
        m.release(2 * 4096 + 100);
        assert_eq!(m.bytes(), data.as_slice());
        std::fs::remove_file(p).unwrap();
    }
}

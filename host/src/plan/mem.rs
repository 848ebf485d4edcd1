//! The guest memory `pvbuild plan` builds into, sized so that dom0 pays for what the build
//! writes that is not payload, not for the guest's memory or its ramdisk.
//!
//! The guest's pages are one anonymous `MAP_NORESERVE` mapping: a page the build never
//! writes costs nothing (a read maps the shared zero page). The build writes every page of
//! the kernel, the ramdisk, the p2m list, the page tables and the special pages; of these
//! only the ramdisk grows without bound, so its pages are *payload*: as the build's
//! windows move on (it writes a module [`pvbuild_core::decompress::WINDOW`] bytes at a
//! time, in order), the payload pages below the window asked for are hashed (SHA-256, in
//! pfn order) and dropped (`MADV_DONTNEED`, after which they read as zeros). The digest of
//! the whole segment, as the guest would have it, is what [`PlanMemory::finish_payload`]
//! returns: a plan checks the ramdisk's contents without holding them.
//!
//! Machine frames are made up (pfn XOR 0x2a5, plus a base: no frame equals its pfn, so a
//! pfn/mfn mix-up shows in the walk) and computed, not stored.

use std::ops::Range;

use nix::libc;
use pvbuild_core::addr::{Mfn, Pfn, PAGE_SIZE};
use pvbuild_core::mem::GuestMemory;
use sha2::{Digest, Sha256};

/// Why the plan's memory refused an access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanMemError {
    /// A pfn range outside the guest.
    #[error("guest frames {first:#x}+{count:#x} are outside its {nr_pages:#x} pages")]
    OutOfRange {
        /// First pfn asked for.
        first: u64,
        /// Pages asked for.
        count: u64,
        /// Pages the guest has.
        nr_pages: u64,
    },
    /// The mapping could not be made.
    #[error("cannot reserve {bytes:#x} bytes of address space: {msg}")]
    Map {
        /// Bytes asked for.
        bytes: u64,
        /// The OS error.
        msg: String,
    },
}

/// A plan's guest (see the module docs).
#[derive(Debug)]
pub struct PlanMemory {
    ptr: usize,
    len: usize,
    nr_pages: u64,
    mfn_base: u64,
    payload: Range<u64>,
    /// Payload pages below this are hashed and dropped.
    hashed_to: u64,
    hash: Sha256,
}

impl PlanMemory {
    /// A guest of `nr_pages` zero pages whose pfn `p` is backed by machine frame
    /// `(p ^ 0x2a5) + mfn_base`; pages `payload` are hashed and dropped behind the build.
    pub fn new(nr_pages: u64, mfn_base: u64, payload: Range<u64>) -> Result<Self, PlanMemError> {
        let bytes = nr_pages.saturating_mul(PAGE_SIZE);
        let map_err = |msg: String| PlanMemError::Map { bytes, msg };
        let len = usize::try_from(bytes).map_err(|_| map_err("too large".into()))?;
        if len == 0 || (nr_pages ^ 0x3ff).checked_add(mfn_base).is_none() {
            return Err(map_err("empty or out of range".into()));
        }
        // SAFETY: a fresh anonymous private mapping, unmapped only in Drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(map_err(std::io::Error::last_os_error().to_string()));
        }
        Ok(Self {
            ptr: ptr as usize,
            len,
            nr_pages,
            mfn_base,
            hashed_to: payload.start,
            payload,
            hash: Sha256::new(),
        })
    }

    fn all(&mut self) -> &mut [u8] {
        // SAFETY: our live read-write mapping of `len` bytes, borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len) }
    }

    fn bytes_of(&mut self, pages: Range<u64>) -> &mut [u8] {
        let (s, e) = (
            (pages.start * PAGE_SIZE) as usize,
            (pages.end * PAGE_SIZE) as usize,
        );
        self.all().get_mut(s..e).unwrap_or_default()
    }

    /// Hash and drop the payload pages `[hashed_to, upto)`.
    fn retire(&mut self, upto: u64) {
        let upto = upto.min(self.payload.end);
        if upto <= self.hashed_to {
            return;
        }
        let range = self.hashed_to..upto;
        let mut hash = std::mem::take(&mut self.hash);
        let bytes = self.bytes_of(range);
        hash.update(&*bytes);
        let (p, n) = (bytes.as_mut_ptr(), bytes.len());
        // SAFETY: part of our anonymous mapping; its pages read back as zeros afterwards,
        // and no reference into them outlives this call.
        unsafe { libc::madvise(p.cast(), n, libc::MADV_DONTNEED) };
        self.hash = hash;
        self.hashed_to = upto;
    }

    /// Hash (and drop) the rest of the payload and return the SHA-256 of all its pages, in
    /// pfn order; later accesses to them are plain.
    pub fn finish_payload(&mut self) -> [u8; 32] {
        self.retire(self.payload.end);
        self.payload = 0..0;
        self.hashed_to = 0;
        std::mem::take(&mut self.hash).finalize().into()
    }
}

impl Drop for PlanMemory {
    fn drop(&mut self) {
        // SAFETY: our mapping, no longer borrowed.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

impl GuestMemory for PlanMemory {
    type Error = PlanMemError;

    fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    fn mfn(&self, pfn: Pfn) -> Result<Mfn, PlanMemError> {
        let p = pfn.get();
        let out = PlanMemError::OutOfRange {
            first: p,
            count: 1,
            nr_pages: self.nr_pages,
        };
        if p >= self.nr_pages {
            return Err(out);
        }
        Mfn::new((p ^ 0x2a5) + self.mfn_base).map_err(|_| out)
    }

    fn pages_mut(&mut self, first: Pfn, count: u64) -> Result<&mut [u8], PlanMemError> {
        let first = first.get();
        let end = first
            .checked_add(count)
            .filter(|&e| e <= self.nr_pages)
            .ok_or(PlanMemError::OutOfRange {
                first,
                count,
                nr_pages: self.nr_pages,
            })?;
        if self.payload.contains(&first) {
            if first < self.hashed_to {
                // Written again from an earlier page (the raw blob after a failed unzip):
                // the hash starts again from the payload's start.
                self.hash = Sha256::new();
                self.hashed_to = self.payload.start;
            }
            self.retire(first);
        }
        Ok(self.bytes_of(first..end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_hashed_in_order_and_dropped() {
        let mut m = PlanMemory::new(64, 0x76000, 8..40).unwrap();
        let mut expect = Sha256::new();
        for w in (8..40).step_by(8) {
            let v = m.pages_mut(Pfn::new(w).unwrap(), 8).unwrap();
            v.fill(w as u8);
            expect.update(&*v);
        }
        // A page outside the payload keeps its bytes.
        m.pages_mut(Pfn::new(50).unwrap(), 1).unwrap().fill(9);
        let digest = m.finish_payload();
        assert_eq!(digest, <[u8; 32]>::from(expect.finalize()));
        assert!(m
            .pages_mut(Pfn::new(8).unwrap(), 1)
            .unwrap()
            .iter()
            .all(|&b| b == 0));
        assert!(m
            .pages_mut(Pfn::new(50).unwrap(), 1)
            .unwrap()
            .iter()
            .all(|&b| b == 9));
        assert_ne!(m.mfn(Pfn::new(0).unwrap()).unwrap().get(), 0);
    }
}

//! The page-access trait: the only way the core touches guest memory.
//!
//! A backend knows which machine frame backs each guest pfn (the p2m it got when memory was
//! populated) and can give a byte view of a run of guest frames. The privcmd backend in
//! `host/` maps foreign frames; the in-memory backend here ([`InMemory`], in this module's
//! second half) keeps them in a caller-provided slice, so tests and fuzzers need no allocator
//! and no Xen.

use crate::addr::{Mfn, Pfn};

/// Access to a guest's pseudo-physical memory.
pub trait GuestMemory {
    /// The backend's error (a failed mapping, a pfn out of range).
    type Error: core::fmt::Debug;

    /// Number of pages the guest has (`[0, nr_pages)` are valid pfns).
    fn nr_pages(&self) -> u64;

    /// The machine frame backing `pfn`.
    fn mfn(&self, pfn: Pfn) -> Result<Mfn, Self::Error>;

    /// A writable byte view of the `count` frames starting at `first`
    /// (`count * PAGE_SIZE` bytes, contiguous in the view even when not in machine memory).
    fn pages_mut(&mut self, first: Pfn, count: u64) -> Result<&mut [u8], Self::Error>;
}

/// Why the in-memory backend refused an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InMemoryError {
    /// A pfn at or beyond the guest's page count.
    PfnOutOfRange {
        /// First pfn asked for.
        first: u64,
        /// Number of pages asked for.
        count: u64,
        /// Pages the guest has.
        nr_pages: u64,
    },
    /// The byte buffer is smaller than `nr_pages` pages.
    BufferTooSmall {
        /// Bytes needed.
        need: u64,
        /// Bytes given.
        have: u64,
    },
}

/// A guest held in a caller-provided byte slice, with a caller-provided p2m.
///
/// Pfn `n` lives at bytes `n * PAGE_SIZE ..` of the slice; the p2m says which machine frame
/// "backs" it. Tests give a p2m that is not the identity, so that a pfn written where an mfn
/// belongs (or the reverse) shows.
#[derive(Debug)]
pub struct InMemory<'a> {
    bytes: &'a mut [u8],
    p2m: &'a [Mfn],
}

impl<'a> InMemory<'a> {
    /// A guest of `p2m.len()` pages over `bytes` (at least that many pages long).
    pub fn new(bytes: &'a mut [u8], p2m: &'a [Mfn]) -> Result<Self, InMemoryError> {
        let need = (p2m.len() as u64).saturating_mul(crate::addr::PAGE_SIZE);
        let have = bytes.len() as u64;
        if have < need {
            return Err(InMemoryError::BufferTooSmall { need, have });
        }
        Ok(Self { bytes, p2m })
    }

    /// The guest's p2m.
    pub fn p2m(&self) -> &[Mfn] {
        self.p2m
    }

    /// Read-only view of `count` pages from `first`.
    pub fn pages(&self, first: Pfn, count: u64) -> Result<&[u8], InMemoryError> {
        let range = self.range(first, count)?;
        self.bytes.get(range).ok_or(self.out_of_range(first, count))
    }

    fn out_of_range(&self, first: Pfn, count: u64) -> InMemoryError {
        InMemoryError::PfnOutOfRange {
            first: first.get(),
            count,
            nr_pages: self.p2m.len() as u64,
        }
    }

    fn range(&self, first: Pfn, count: u64) -> Result<core::ops::Range<usize>, InMemoryError> {
        let err = self.out_of_range(first, count);
        let end = first.get().checked_add(count).ok_or(err)?;
        if end > self.p2m.len() as u64 {
            return Err(err);
        }
        let start = usize::try_from(first.addr()).map_err(|_| err)?;
        let len = usize::try_from(count.checked_mul(crate::addr::PAGE_SIZE).ok_or(err)?)
            .map_err(|_| err)?;
        Ok(start..start.checked_add(len).ok_or(err)?)
    }
}

impl GuestMemory for InMemory<'_> {
    type Error = InMemoryError;

    fn nr_pages(&self) -> u64 {
        self.p2m.len() as u64
    }

    fn mfn(&self, pfn: Pfn) -> Result<Mfn, Self::Error> {
        usize::try_from(pfn.get())
            .ok()
            .and_then(|i| self.p2m.get(i))
            .copied()
            .ok_or(self.out_of_range(pfn, 1))
    }

    fn pages_mut(&mut self, first: Pfn, count: u64) -> Result<&mut [u8], Self::Error> {
        let range = self.range(first, count)?;
        let err = self.out_of_range(first, count);
        self.bytes.get_mut(range).ok_or(err)
    }
}

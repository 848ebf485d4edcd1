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

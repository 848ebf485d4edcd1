//! The core's page-access trait over foreign mappings of a domain's frames.
//!
//! [`PrivcmdMemory`] knows the domain's pfn → mfn list (from
//! [`Xen::populate_physmap`](crate::xen::Xen::populate_physmap)) and maps frames lazily when
//! the core asks for them: each request for a run of pfns not yet mapped becomes one mapping,
//! rounded out to [`CHUNK_PAGES`]-page chunks so that neighbouring requests reuse it, made
//! with one `IOCTL_PRIVCMD_MMAPBATCH_V2` per mapped run (never one per
//! page). Every mapping is unmapped when the value is dropped (or on [`PrivcmdMemory::unmap_all`]).
//!
//! Two mappings may cover the same frame; both are views of the same machine page, so
//! writes through either are seen through the other.

use pvbuild_core::addr::{Mfn, Pfn, PAGE_SIZE};
use pvbuild_core::mem::GuestMemory;

use crate::xen::{ForeignMapping, Xen, XenError};

/// Mappings are made in whole chunks of this many pages (2 MiB).
pub const CHUNK_PAGES: u64 = 512;

/// Why guest memory could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// A pfn at or past the guest's end.
    #[error("guest frames {first:#x}+{count:#x} are outside its {nr_pages:#x} pages")]
    OutOfRange {
        /// First pfn asked for.
        first: u64,
        /// Pages asked for.
        count: u64,
        /// Pages the guest has.
        nr_pages: u64,
    },
    /// A view larger than this process can address.
    #[error("a view of {count:#x} pages is too large")]
    TooLarge {
        /// Pages asked for.
        count: u64,
    },
    /// The mapping failed.
    #[error(transparent)]
    Map(#[from] XenError),
}

#[derive(Debug)]
struct Mapped {
    first: u64,
    count: u64,
    map: ForeignMapping,
}

/// A domain's memory, mapped lazily through privcmd.
#[derive(Debug)]
pub struct PrivcmdMemory<'x> {
    xen: &'x Xen,
    domid: u16,
    p2m: Vec<Mfn>,
    maps: Vec<Mapped>,
    ioctls: u64,
}

impl<'x> PrivcmdMemory<'x> {
    /// Memory of `domid`, whose pfn `i` is backed by `p2m[i]`.
    pub fn new(xen: &'x Xen, domid: u16, p2m: Vec<Mfn>) -> Self {
        Self {
            xen,
            domid,
            p2m,
            maps: Vec::new(),
            ioctls: 0,
        }
    }

    /// The domain.
    pub fn domid(&self) -> u16 {
        self.domid
    }

    /// The pfn → mfn list.
    pub fn p2m(&self) -> &[Mfn] {
        &self.p2m
    }

    /// Number of mappings currently held.
    pub fn mappings(&self) -> usize {
        self.maps.len()
    }

    /// Number of mapping ioctls issued so far (one per mapped run of
    /// each new mapping).
    pub fn map_ioctls(&self) -> u64 {
        self.ioctls
    }

    /// Drops every mapping (they are made again on demand), newest first: like every
    /// teardown in pvbuild, in the reverse order of making.
    pub fn unmap_all(&mut self) {
        while self.maps.pop().is_some() {}
    }

    fn check(&self, first: u64, count: u64) -> Result<u64, MemError> {
        let nr_pages = self.p2m.len() as u64;
        match first.checked_add(count) {
            Some(end) if end <= nr_pages && count > 0 => Ok(end),
            _ => Err(MemError::OutOfRange {
                first,
                count,
                nr_pages,
            }),
        }
    }
}

impl Drop for PrivcmdMemory<'_> {
    fn drop(&mut self) {
        // A `Vec` would drop its elements oldest first.
        self.unmap_all();
    }
}

impl GuestMemory for PrivcmdMemory<'_> {
    type Error = MemError;

    fn nr_pages(&self) -> u64 {
        self.p2m.len() as u64
    }

    fn mfn(&self, pfn: Pfn) -> Result<Mfn, MemError> {
        let nr_pages = self.p2m.len() as u64;
        usize::try_from(pfn.get())
            .ok()
            .and_then(|i| self.p2m.get(i))
            .copied()
            .ok_or(MemError::OutOfRange {
                first: pfn.get(),
                count: 1,
                nr_pages,
            })
    }

    fn pages_mut(&mut self, first: Pfn, count: u64) -> Result<&mut [u8], MemError> {
        let first = first.get();
        let end = self.check(first, count)?;
        let idx = match self
            .maps
            .iter()
            .position(|m| m.first <= first && end <= m.first + m.count)
        {
            Some(i) => i,
            None => {
                let nr_pages = self.p2m.len() as u64;
                let start = first - first % CHUNK_PAGES;
                let stop = end.next_multiple_of(CHUNK_PAGES).min(nr_pages);
                let (s, e) = (
                    usize::try_from(start).map_err(|_| MemError::TooLarge { count })?,
                    usize::try_from(stop).map_err(|_| MemError::TooLarge { count })?,
                );
                let mfns = self.p2m.get(s..e).ok_or(MemError::OutOfRange {
                    first,
                    count,
                    nr_pages,
                })?;
                let t = std::time::Instant::now();
                let map = self.xen.map_foreign(self.domid, mfns)?;
                crate::build::steps::add_map_time(t.elapsed());
                self.ioctls += 1;
                self.maps.push(Mapped {
                    first: start,
                    count: stop - start,
                    map,
                });
                self.maps.len() - 1
            }
        };
        let m = self.maps.get_mut(idx).ok_or(MemError::TooLarge { count })?;
        let off = usize::try_from((first - m.first) * PAGE_SIZE)
            .map_err(|_| MemError::TooLarge { count })?;
        let len = usize::try_from(count * PAGE_SIZE).map_err(|_| MemError::TooLarge { count })?;
        m.map
            .as_mut_slice()
            .get_mut(off..off + len)
            .ok_or(MemError::TooLarge { count })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::xen::fake::{Call, FakeConfig, FakeXen};
    use crate::xen::DomainConfig;

    fn setup(pages: u64) -> (Arc<FakeXen>, Xen, u16, Vec<Mfn>) {
        let f = Arc::new(FakeXen::new(FakeConfig::default()).unwrap());
        let x = Xen::with_backend(f.clone());
        let d = x.create_domain(&DomainConfig::pv(1, 2), None).unwrap();
        x.max_mem(d, pages * 4).unwrap();
        let p2m = x.populate_physmap(d, pages).unwrap();
        (f, x, d, p2m)
    }

    fn batches(f: &FakeXen) -> usize {
        f.calls()
            .iter()
            .filter(|c| matches!(c, Call::MmapBatch(_)))
            .count()
    }

    #[test]
    fn maps_lazily_in_chunks_and_reuses_them() {
        let (f, x, d, p2m) = setup(4096);
        let mut mem = PrivcmdMemory::new(&x, d, p2m.clone());
        assert_eq!(mem.nr_pages(), 4096);
        assert_eq!(mem.mfn(Pfn::new(7).unwrap()), Ok(p2m[7]));
        assert_eq!(batches(&f), 0, "nothing mapped before it is asked for");
        mem.pages_mut(Pfn::new(10).unwrap(), 3).unwrap()[4096] = 0x5a;
        assert_eq!(batches(&f), 1);
        // Another run inside the same 2 MiB chunk reuses the mapping.
        mem.pages_mut(Pfn::new(500).unwrap(), 12).unwrap()[0] = 0x77;
        assert_eq!((batches(&f), mem.mappings()), (1, 1));
        assert_eq!(f.read_frame(p2m[11].get()).unwrap()[0], 0x5a);
        assert_eq!(f.read_frame(p2m[500].get()).unwrap()[0], 0x77);
        // A run across chunks is one new mapping, contiguous in the view.
        let view = mem.pages_mut(Pfn::new(1000).unwrap(), 100).unwrap();
        assert_eq!(view.len(), 100 * 4096);
        view[99 * 4096 + 1] = 0x42;
        assert_eq!(f.read_frame(p2m[1099].get()).unwrap()[1], 0x42);
        assert_eq!(mem.mappings(), 2);
        drop(mem);
        assert_eq!(f.live_areas(), 0, "every mapping is unmapped on drop");
    }

    #[test]
    fn a_large_run_is_one_mapping_in_few_ioctls() {
        let (f, x, d, p2m) = setup(4096);
        let mut mem = PrivcmdMemory::new(&x, d, p2m);
        let v = mem.pages_mut(Pfn::new(0).unwrap(), 4096).unwrap();
        v.fill(1);
        assert_eq!(batches(&f), 1);
        assert_eq!(mem.map_ioctls(), 1);
    }

    #[test]
    fn out_of_range_is_an_error() {
        let (_f, x, d, p2m) = setup(64);
        let mut mem = PrivcmdMemory::new(&x, d, p2m);
        assert_eq!(
            mem.pages_mut(Pfn::new(60).unwrap(), 5).unwrap_err(),
            MemError::OutOfRange {
                first: 60,
                count: 5,
                nr_pages: 64
            }
        );
        assert!(mem.pages_mut(Pfn::new(0).unwrap(), 0).is_err());
        assert!(mem.mfn(Pfn::new(64).unwrap()).is_err());
        // The last page is reachable even though the chunk is cut short.
        mem.pages_mut(Pfn::new(63).unwrap(), 1).unwrap()[4095] = 9;
    }

    #[test]
    fn a_failed_mapping_is_reported() {
        let (f, x, d, mut p2m) = setup(64);
        p2m[3] = Mfn::new(0x10).unwrap();
        let mut mem = PrivcmdMemory::new(&x, d, p2m);
        let e = mem.pages_mut(Pfn::new(2).unwrap(), 1).unwrap_err();
        assert!(
            matches!(
                e,
                MemError::Map(XenError::MapPage {
                    index: 3,
                    mfn: 0x10,
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(f.live_areas(), 0);
    }
}

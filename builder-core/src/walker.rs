//! A checker that reads a built guest the way the MMU and the kernel will.
//!
//! [`check`] starts from the top table (cr3), follows machine frames back to pfns through
//! the inverse of the backend's p2m, and verifies: every page of `[virt_base, v_end)` maps
//! to its own pfn; page-table frames are mapped read-only and everything else writable;
//! upper-level entries carry exactly the flags libxenguest writes and point only at
//! page-table frames; nothing is mapped just past `v_end`; the INIT_P2M mapping maps the p2m
//! list; the p2m list holds the backend's p2m; and start_info agrees with the layout, its
//! `pt_base` and `mfn_list` translating to the tables and the list.
//!
//! Needs the `alloc` feature (the m2p inverse is a sorted vector).

use alloc::vec;
use alloc::vec::Vec;

use zerocopy::FromBytes;

use crate::addr::{Mfn, Pfn, PAGE_SIZE};
use crate::image::GuestType;
use crate::layout::Layout;
use crate::mem::GuestMemory;
use crate::paging::{self, PagingMode, PteFlags, L1_PROT, UPPER_PROT};
use crate::start_info::{StartInfoX86_32, StartInfoX86_64};

/// What the walker found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError<E> {
    /// The memory backend failed.
    Memory(E),
    /// An entry on the way to `vaddr` is not present.
    NotPresent {
        /// The address.
        vaddr: u64,
        /// Level of the missing entry (0 = L1).
        level: usize,
    },
    /// An entry points at a machine frame no pfn owns.
    UnknownMfn {
        /// The address.
        vaddr: u64,
        /// Level of the entry.
        level: usize,
        /// The frame.
        mfn: u64,
    },
    /// An upper-level entry points at a frame that is not a page-table frame.
    NotATable {
        /// The address.
        vaddr: u64,
        /// Level of the entry.
        level: usize,
        /// The frame's pfn.
        pfn: u64,
    },
    /// An entry's flags differ from what libxenguest writes.
    Flags {
        /// The address.
        vaddr: u64,
        /// Level of the entry.
        level: usize,
        /// Found flags.
        found: u64,
        /// Expected flags.
        expected: u64,
    },
    /// `vaddr` maps the wrong page.
    WrongPage {
        /// The address.
        vaddr: u64,
        /// Pfn it should map.
        expected: u64,
        /// Pfn it maps.
        found: u64,
    },
    /// Something is mapped where nothing should be.
    Unexpected {
        /// The address.
        vaddr: u64,
    },
    /// A p2m list entry differs from the backend's p2m.
    P2mEntry {
        /// The pfn.
        pfn: u64,
        /// Found.
        found: u64,
        /// Expected.
        expected: u64,
    },
    /// A start_info field differs from the layout.
    StartInfo {
        /// The field.
        field: &'static str,
        /// Found.
        found: u64,
        /// Expected.
        expected: u64,
    },
    /// Two pfns share a machine frame.
    DuplicateMfn(u64),
    /// Address arithmetic overflowed.
    Overflow,
}

/// What the walk covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalkReport {
    /// Virtual pages translated.
    pub pages_checked: u64,
    /// Of which read-only page-table frames.
    pub readonly_pages: u64,
    /// p2m entries compared.
    pub p2m_entries: u64,
}

struct Walker<'l, M: GuestMemory> {
    layout: &'l Layout,
    mode: PagingMode,
    /// (mfn, pfn), sorted by mfn.
    m2p: Vec<(u64, u64)>,
    cache: Vec<(u64, Vec<u8>)>,
    _m: core::marker::PhantomData<M>,
}

impl<'l, M: GuestMemory> Walker<'l, M> {
    fn new(layout: &'l Layout, mem: &M) -> Result<Self, WalkError<M::Error>> {
        let mut m2p = Vec::new();
        for pfn in 0..mem.nr_pages() {
            let p = Pfn::new(pfn).map_err(|_| WalkError::Overflow)?;
            m2p.push((mem.mfn(p).map_err(WalkError::Memory)?.get(), pfn));
        }
        m2p.sort_unstable();
        if let Some(w) = m2p
            .windows(2)
            .find(|w| w.first().map(|a| a.0) == w.get(1).map(|b| b.0))
        {
            return Err(WalkError::DuplicateMfn(w.first().map_or(0, |a| a.0)));
        }
        let mode = layout.mode;
        Ok(Self {
            layout,
            mode,
            m2p,
            cache: vec![(u64::MAX, vec![0u8; PAGE_SIZE as usize]); mode.levels()],
            _m: core::marker::PhantomData,
        })
    }

    fn page_into(mem: &mut M, pfn: u64, buf: &mut [u8]) -> Result<(), WalkError<M::Error>> {
        let p = Pfn::new(pfn).map_err(|_| WalkError::Overflow)?;
        let src = mem.pages_mut(p, 1).map_err(WalkError::Memory)?;
        let src = src.get(..buf.len()).ok_or(WalkError::Overflow)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Translate `vaddr`: the pfn it maps and the L1 entry's flags; `Ok(None)` if unmapped.
    fn translate(
        &mut self,
        mem: &mut M,
        vaddr: u64,
    ) -> Result<Option<(u64, PteFlags)>, WalkError<M::Error>> {
        let top = self.mode.levels() - 1;
        let epp = self.mode.entries_per_page() as u64;
        let mut table_pfn = self.layout.pgtables.pfn;
        for l in (0..=top).rev() {
            let idx = ((vaddr >> self.mode.entry_span_shift(l)) & (epp - 1)) as usize;
            let slot = self.cache.get_mut(l).ok_or(WalkError::Overflow)?;
            if slot.0 != table_pfn {
                Self::page_into(mem, table_pfn, &mut slot.1)?;
                slot.0 = table_pfn;
            }
            let pte = paging::read_entry(self.mode, &slot.1, idx).ok_or(WalkError::Overflow)?;
            if !pte.is_present() {
                if pte.raw() != 0 {
                    return Err(WalkError::Flags {
                        vaddr,
                        level: l,
                        found: pte.raw(),
                        expected: 0,
                    });
                }
                return Ok(None);
            }
            let mfn = pte.mfn().get();
            let pfn = self
                .m2p
                .binary_search_by_key(&mfn, |e| e.0)
                .ok()
                .and_then(|i| self.m2p.get(i))
                .map(|e| e.1)
                .ok_or(WalkError::UnknownMfn {
                    vaddr,
                    level: l,
                    mfn,
                })?;
            let flags = pte.flags();
            if l == 0 {
                return Ok(Some((pfn, flags)));
            }
            if flags != UPPER_PROT {
                return Err(WalkError::Flags {
                    vaddr,
                    level: l,
                    found: flags.bits(),
                    expected: UPPER_PROT.bits(),
                });
            }
            if !self.layout.is_pagetable_pfn(pfn) {
                return Err(WalkError::NotATable {
                    vaddr,
                    level: l,
                    pfn,
                });
            }
            table_pfn = pfn;
        }
        Err(WalkError::Overflow)
    }

    /// Check that `pages` pages from `vaddr` map the pfns from `pfn`, with the right rights.
    fn check_range(
        &mut self,
        mem: &mut M,
        vaddr: u64,
        pfn: u64,
        pages: u64,
        rep: &mut WalkReport,
    ) -> Result<(), WalkError<M::Error>> {
        for i in 0..pages {
            let va = i
                .checked_mul(PAGE_SIZE)
                .and_then(|o| vaddr.checked_add(o))
                .ok_or(WalkError::Overflow)?;
            let expected = pfn + i;
            let (found, flags) = self.translate(mem, va)?.ok_or(WalkError::NotPresent {
                vaddr: va,
                level: 0,
            })?;
            if found != expected {
                return Err(WalkError::WrongPage {
                    vaddr: va,
                    expected,
                    found,
                });
            }
            let want = if self.layout.is_pagetable_pfn(found) {
                rep.readonly_pages += 1;
                L1_PROT.difference(PteFlags::RW)
            } else {
                L1_PROT
            };
            if flags != want {
                return Err(WalkError::Flags {
                    vaddr: va,
                    level: 0,
                    found: flags.bits(),
                    expected: want.bits(),
                });
            }
            rep.pages_checked += 1;
        }
        Ok(())
    }
}

fn expect<E>(field: &'static str, found: u64, expected: u64) -> Result<(), WalkError<E>> {
    if found == expected {
        Ok(())
    } else {
        Err(WalkError::StartInfo {
            field,
            found,
            expected,
        })
    }
}

/// Walk the guest built from `layout` in `mem` and verify it (see the module docs).
pub fn check<M: GuestMemory>(
    layout: &Layout,
    mem: &mut M,
) -> Result<WalkReport, WalkError<M::Error>> {
    let mut w = Walker::new(layout, mem)?;
    let mut rep = WalkReport::default();

    // The initial mapping, and nothing right after it.
    let pages = (layout.virt_pgtab_end - layout.virt_base) / PAGE_SIZE;
    w.check_range(mem, layout.virt_base, 0, pages, &mut rep)?;
    let past = layout.virt_pgtab_end;
    let in_p2m_map = layout
        .p2m_base
        .is_some_and(|b| past >= b && past - b < layout.p2m_list_pages * PAGE_SIZE);
    let in_space = past & !layout.mode.vaddr_mask() == 0 || layout.mode == PagingMode::FourLevel;
    if in_space && !in_p2m_map && w.translate(mem, past)?.is_some() {
        return Err(WalkError::Unexpected { vaddr: past });
    }

    // The INIT_P2M mapping.
    if let Some(base) = layout.p2m_base {
        w.check_range(mem, base, layout.p2m.pfn, layout.p2m_list_pages, &mut rep)?;
    }

    // The p2m list's contents.
    let entry = layout.guest_type.p2m_entry_size();
    let per_page = PAGE_SIZE / entry;
    let mut buf = vec![0u8; PAGE_SIZE as usize];
    for page in 0..layout.p2m_list_pages {
        Walker::<M>::page_into(mem, layout.p2m.pfn + page, &mut buf)?;
        for k in 0..per_page {
            let pfn = page * per_page + k;
            if pfn >= layout.nr_pages {
                break;
            }
            let at = (k * entry) as usize;
            let bytes = buf
                .get(at..at + entry as usize)
                .ok_or(WalkError::Overflow)?;
            let found = if entry == 8 {
                u64::from_le_bytes(bytes.try_into().map_err(|_| WalkError::Overflow)?)
            } else {
                u64::from(u32::from_le_bytes(
                    bytes.try_into().map_err(|_| WalkError::Overflow)?,
                ))
            };
            let expected = mem
                .mfn(Pfn::new(pfn).map_err(|_| WalkError::Overflow)?)
                .map_err(WalkError::Memory)?
                .get();
            if found != expected {
                return Err(WalkError::P2mEntry {
                    pfn,
                    found,
                    expected,
                });
            }
            rep.p2m_entries += 1;
        }
    }

    // start_info.
    Walker::<M>::page_into(mem, layout.start_info_pfn, &mut buf)?;
    let mfn_of = |mem: &M, pfn: u64| -> Result<Mfn, WalkError<M::Error>> {
        mem.mfn(Pfn::new(pfn).map_err(|_| WalkError::Overflow)?)
            .map_err(WalkError::Memory)
    };
    let store = mfn_of(mem, layout.xenstore_pfn)?.get();
    let console = mfn_of(mem, layout.console_pfn)?.get();
    let (first_p2m, nr_p2m) = layout.p2m_frames();
    // Both start_info layouts, read into one guest-word-independent view and checked once.
    let si = match layout.guest_type {
        GuestType::X86_64 => {
            let (si, _) =
                StartInfoX86_64::read_from_prefix(&buf).map_err(|_| WalkError::Overflow)?;
            StartInfoView {
                magic: si.magic,
                nr_pages: si.nr_pages,
                flags: si.flags.into(),
                store_mfn: si.store_mfn,
                console_mfn: si.console_mfn,
                pt_base: si.pt_base,
                nr_pt_frames: si.nr_pt_frames,
                mfn_list: si.mfn_list,
                mod_start: si.mod_start,
                mod_len: si.mod_len,
                cmd_line_end: si.cmd_line.last().copied(),
                first_p2m_pfn: si.first_p2m_pfn,
                nr_p2m_frames: si.nr_p2m_frames,
            }
        }
        GuestType::X86_32Pae | GuestType::X86_32 => {
            let (si, _) =
                StartInfoX86_32::read_from_prefix(&buf).map_err(|_| WalkError::Overflow)?;
            StartInfoView {
                magic: si.magic,
                nr_pages: si.nr_pages.into(),
                flags: si.flags.into(),
                store_mfn: si.store_mfn.into(),
                console_mfn: si.console_mfn.into(),
                pt_base: si.pt_base.into(),
                nr_pt_frames: si.nr_pt_frames.into(),
                mfn_list: si.mfn_list.into(),
                mod_start: si.mod_start.into(),
                mod_len: si.mod_len.into(),
                cmd_line_end: si.cmd_line.last().copied(),
                first_p2m_pfn: si.first_p2m_pfn.into(),
                nr_p2m_frames: si.nr_p2m_frames.into(),
            }
        }
    };
    let name = layout.guest_type.xen_caps_name().as_bytes();
    if si.magic.get(..name.len()) != Some(name) || si.magic.get(name.len()) != Some(&0) {
        return Err(WalkError::StartInfo {
            field: "magic",
            found: 0,
            expected: 0,
        });
    }
    expect("nr_pages", si.nr_pages, layout.nr_pages)?;
    expect("flags", si.flags, layout.flags.into())?;
    expect("store_mfn", si.store_mfn, store)?;
    expect("console_mfn", si.console_mfn, console)?;
    expect("nr_pt_frames", si.nr_pt_frames, layout.nr_pt_frames())?;
    expect("mod_start", si.mod_start, layout.mod_start)?;
    expect("mod_len", si.mod_len, layout.mod_len)?;
    expect("first_p2m_pfn", si.first_p2m_pfn, first_p2m)?;
    expect("nr_p2m_frames", si.nr_p2m_frames, nr_p2m)?;
    if si.cmd_line_end != Some(0) {
        return Err(WalkError::StartInfo {
            field: "cmd_line",
            found: 1,
            expected: 0,
        });
    }
    let (pt_base, mfn_list) = (si.pt_base, si.mfn_list);
    // pt_base and mfn_list must lead, through the tables, to the tables and the list.
    let pt = w.translate(mem, pt_base)?.map(|(p, _)| p);
    expect("pt_base", pt.unwrap_or(u64::MAX), layout.pgtables.pfn)?;
    let list = w.translate(mem, mfn_list)?.map(|(p, _)| p);
    expect("mfn_list", list.unwrap_or(u64::MAX), layout.p2m.pfn)?;
    Ok(rep)
}

/// The start_info fields the walker checks, widened to u64 from either guest word size.
struct StartInfoView {
    magic: [u8; 32],
    nr_pages: u64,
    flags: u64,
    store_mfn: u64,
    console_mfn: u64,
    pt_base: u64,
    nr_pt_frames: u64,
    mfn_list: u64,
    mod_start: u64,
    mod_len: u64,
    cmd_line_end: Option<u8>,
    first_p2m_pfn: u64,
    nr_p2m_frames: u64,
}

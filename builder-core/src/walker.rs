//! An independent checker of a built PV guest: it reads guest memory the way the CPU and the
//! guest's kernel will, starting from what Xen hands the kernel, and holds it to the PV boot
//! protocol as Xen's public headers and libxenguest state it.
//!
//! It is told only what the guest itself declares or is given ([`Boot`]): the guest type,
//! `VIRT_BASE`, the entry point and the `INIT_P2M` / `HV_START_LOW` notes of the kernel, and the
//! boot vcpu's context. It does not look at the layout, and takes no constant from the writer
//! (`paging`, `layout`, `start_info`): its definitions are in [`defs`], each with its source.
//!
//! [`check`]:
//! 1. follows `cr3` (the folded machine frame of the top table, `xen_cr3_to_pfn`) back to a pfn
//!    through the inverse of the memory backend's p2m, and scans **every slot of every table**
//!    reachable from it: an entry is either zero or present; a present entry names one of the
//!    guest's own frames; upper-level entries carry exactly libxenguest's flags (so no PSE, no
//!    NX, no G) and each reaches a table no other entry reaches; nothing lies in Xen's part of
//!    the address space (for 64-bit guests: L4 slots 256..=271 are empty, as libxenguest leaves
//!    them) or outside the guest's address space;
//! 2. finds the bootstrap region as the guest does (start-of-day layout, xen.h): the pages
//!    mapped 1:1 from `virt_base`, pfn `i` at `virt_base + i * 4 KiB`, each with libxenguest's
//!    L1 flags, the page-table frames found by the walk read-only and every other page
//!    writable; the region ends on a 4 MiB boundary, at least 512 KiB after the boot stack, and
//!    (libxenguest's `alloc_pgtables_pv`) no more than 4 MiB past the stack plus that padding;
//! 3. reads start_info at `rsi` (field offsets from `xen/foreign/x86_{64,32}.h`): the magic of
//!    the guest type, `nr_pages` equal to the backend's, the `SIF_*` flags libxenguest sets, the
//!    xenstore and console frames right after start_info and the page tables right after them
//!    (xen.h's order d, e, f, g, h, "packed together"), `pt_base` at cr3's frame, `nr_pt_frames`
//!    equal to the number of tables the walk found in the region, `rsp` at the top of the page
//!    after the tables, `rip` at the kernel's entry, a terminated command line;
//! 4. finds the p2m list at `mfn_list`: in the region before start_info, or (a 64-bit kernel
//!    with a usable `INIT_P2M` note) at the note's address, mapped 1:1 to the frames
//!    `first_p2m_pfn..` outside the region, whose page tables are the rest of the
//!    `nr_p2m_frames`; every entry holds the backend's frame for its pfn;
//! 5. requires every other present entry to be absent: a mapping or a table the protocol does
//!    not explain is an error; and checks the module (`mod_start`, `mod_len`) lies in the guest.
//!
//! It checks a guest as the builder leaves it, before Xen pins the top table: pinning
//! (`alloc_l4_table` / `init_xen_l4_slots` in xen/arch/x86/mm.c, and the compat L2 slots of a
//! 32-bit guest) writes Xen's own entries into the guest's top-level page, which this checker
//! would then report as entries in Xen's part of the address space, and validation rewrites
//! the guest's entries through `adjust_guest_l*e`.
//!
//! Needs the `alloc` feature (the m2p inverse and the walk's findings are vectors).

use alloc::vec;
use alloc::vec::Vec;

use crate::addr::Pfn;
use crate::image::{GuestType, KernelParams};
use crate::mem::GuestMemory;
use crate::vcpu::VcpuContext;

/// The definitions the checker works from, written from their sources (never imported from the
/// code that writes the guest).
pub mod defs {
    /// 4 KiB pages (Intel SDM Vol. 3A, 4.3-4.5).
    pub const PAGE_SHIFT: u32 = 12;
    /// 4 KiB.
    pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

    // Paging-structure entry bits, Intel SDM Vol. 3A, Tables 4-4..4-6 (32-bit), 4-8..4-11
    // (PAE) and 4-15..4-20 (4-level). Xen's `_PAGE_*` (xen/arch/x86/include/asm/page.h) are the
    // same bits.
    /// P: present.
    pub const PTE_P: u64 = 1 << 0;
    /// R/W: writes allowed.
    pub const PTE_RW: u64 = 1 << 1;
    /// U/S: user-mode accesses allowed.
    pub const PTE_US: u64 = 1 << 2;
    /// PWT: page-level write-through.
    pub const PTE_PWT: u64 = 1 << 3;
    /// PCD: page-level cache disable.
    pub const PTE_PCD: u64 = 1 << 4;
    /// A: accessed.
    pub const PTE_A: u64 = 1 << 5;
    /// D: dirty (L1), ignored in upper levels.
    pub const PTE_D: u64 = 1 << 6;
    /// PS: the entry maps a large page (upper levels).
    pub const PTE_PSE: u64 = 1 << 7;
    /// G: global (L1).
    pub const PTE_G: u64 = 1 << 8;
    /// XD/NX: execute disable (PAE and 4-level).
    pub const PTE_NX: u64 = 1 << 63;
    /// Frame-address bits of a PAE or 4-level entry: 12..=51 (MAXPHYADDR is at most 52).
    pub const PTE_ADDR_64: u64 = 0x000f_ffff_ffff_f000;
    /// Frame-address bits of a 32-bit-paging entry: 12..=31.
    pub const PTE_ADDR_32: u64 = 0xffff_f000;

    /// Flags of the L1 entries libxenguest writes: `lvl_prot[0] = _PAGE_PRESENT|_PAGE_RW|
    /// _PAGE_ACCESSED` (xg_dom_x86.c, `alloc_pgtables_x86_64` and `alloc_pgtables_x86_32_pae`);
    /// `get_pg_prot` clears `_PAGE_RW` for the frames of the page tables.
    pub const L1_FLAGS: u64 = PTE_P | PTE_RW | PTE_A;
    /// Flags of the entries above L1: `lvl_prot[1 ... 3] = _PAGE_PRESENT|_PAGE_RW|
    /// _PAGE_ACCESSED|_PAGE_DIRTY|_PAGE_USER` (the PAE L3 too: "64bit Xen runs 32bit PV guests
    /// with the PAE entries in an L3 pagetable").
    pub const UPPER_FLAGS: u64 = PTE_P | PTE_RW | PTE_A | PTE_D | PTE_US;
    // libxenguest maps nothing large, global, uncached or non-executable: an entry with PS, G,
    // PWT, PCD or NX set is not one it wrote (checked by exact comparison with the above).
    const _: () =
        assert!((L1_FLAGS | UPPER_FLAGS) & (PTE_PSE | PTE_G | PTE_PWT | PTE_PCD | PTE_NX) == 0);

    /// `__HYPERVISOR_VIRT_START` of 64-bit guests (xen/include/public/arch-x86/xen-x86_64.h).
    pub const HYPERVISOR_VIRT_START_X86_64: u64 = 0xFFFF_8000_0000_0000;
    /// `__HYPERVISOR_VIRT_END` of 64-bit guests (xen-x86_64.h): L4 slots 256..=271.
    pub const HYPERVISOR_VIRT_END_X86_64: u64 = 0xFFFF_8800_0000_0000;
    /// `__HYPERVISOR_VIRT_START_PAE` (xen-x86_32.h): where Xen's part of a PAE guest's address
    /// space starts, unless the kernel's `HV_START_LOW` note asks for lower.
    pub const HYPERVISOR_VIRT_START_PAE: u64 = 0xF580_0000;
    /// `__HYPERVISOR_VIRT_START_NONPAE` (xen-x86_32.h), for 2-level guests.
    pub const HYPERVISOR_VIRT_START_NONPAE: u64 = 0xFC00_0000;

    /// `SIF_MOD_START_PFN` (xen/include/public/xen.h): `mod_start` is a pfn.
    pub const SIF_MOD_START_PFN: u64 = 1 << 3;
    /// `SIF_VIRT_P2M_4TOOLS` (xen.h). libxenguest's `xc_dom_allocate` sets it, but libxl's
    /// `libxl__build_pv` then replaces the flags with its own (0), so an xl-built guest never
    /// has it (seen on real Xen by the built-memory scenario): it must be clear.
    pub const SIF_VIRT_P2M_4TOOLS: u64 = 1 << 4;
    /// `MAX_GUEST_CMDLINE` (xen.h).
    pub const MAX_GUEST_CMDLINE: usize = 1024;
    /// Start-of-day rule 2 (xen.h): the bootstrap region ends on a 4 MiB boundary.
    pub const REGION_ALIGN: u64 = 4 << 20;
    /// Start-of-day rule 7 (xen.h): at least 512 KiB after the last bootstrap element.
    pub const MIN_PADDING: u64 = 512 << 10;

    /// `start_info.magic` per guest type: libxenguest copies the image's `guest_type`
    /// ("xen-3.0-x86_64", "xen-3.0-x86_32p"; "xen-3.0-x86_32" for 2-level guests).
    pub const MAGIC_X86_64: &[u8] = b"xen-3.0-x86_64";
    /// See [`MAGIC_X86_64`].
    pub const MAGIC_X86_32P: &[u8] = b"xen-3.0-x86_32p";
    /// See [`MAGIC_X86_64`].
    pub const MAGIC_X86_32: &[u8] = b"xen-3.0-x86_32";

    /// Byte offsets of `struct start_info`'s fields, from `xen/foreign/x86_64.h` and
    /// `x86_32.h` (`start_info_x86_64_t`, `start_info_x86_32_t`; `offsetof` with gcc).
    #[derive(Debug, Clone, Copy)]
    pub struct StartInfoOffsets {
        /// Width of `unsigned long` and `xen_pfn_t` (8 or 4).
        pub word: usize,
        /// `nr_pages`
        pub nr_pages: usize,
        /// `flags` (always 32 bits)
        pub flags: usize,
        /// `store_mfn`
        pub store_mfn: usize,
        /// `console.domU.mfn`
        pub console_mfn: usize,
        /// `pt_base`
        pub pt_base: usize,
        /// `nr_pt_frames`
        pub nr_pt_frames: usize,
        /// `mfn_list`
        pub mfn_list: usize,
        /// `mod_start`
        pub mod_start: usize,
        /// `mod_len`
        pub mod_len: usize,
        /// `cmd_line`
        pub cmd_line: usize,
        /// `first_p2m_pfn`
        pub first_p2m_pfn: usize,
        /// `nr_p2m_frames`
        pub nr_p2m_frames: usize,
    }
    /// `start_info_x86_64_t` (1168 bytes).
    pub const START_INFO_X86_64: StartInfoOffsets = StartInfoOffsets {
        word: 8,
        nr_pages: 32,
        flags: 48,
        store_mfn: 56,
        console_mfn: 72,
        pt_base: 88,
        nr_pt_frames: 96,
        mfn_list: 104,
        mod_start: 112,
        mod_len: 120,
        cmd_line: 128,
        first_p2m_pfn: 1152,
        nr_p2m_frames: 1160,
    };
    /// `start_info_x86_32_t` (1112 bytes).
    pub const START_INFO_X86_32: StartInfoOffsets = StartInfoOffsets {
        word: 4,
        nr_pages: 32,
        flags: 40,
        store_mfn: 44,
        console_mfn: 52,
        pt_base: 60,
        nr_pt_frames: 64,
        mfn_list: 68,
        mod_start: 72,
        mod_len: 76,
        cmd_line: 80,
        first_p2m_pfn: 1104,
        nr_p2m_frames: 1108,
    };
}

use defs::*;

/// What the checker is told: what the kernel declares (its ELF notes, via [`KernelParams`])
/// and what Xen hands the boot vcpu. Nothing from the layout.
#[derive(Debug, Clone, Copy)]
pub struct Boot<'a> {
    /// The guest's ABI.
    pub guest_type: GuestType,
    /// `VIRT_BASE`.
    pub virt_base: u64,
    /// The entry point (`ENTRY`).
    pub virt_entry: u64,
    /// The `INIT_P2M` note, as the kernel gives it.
    pub init_p2m: Option<u64>,
    /// The `HV_START_LOW` note (32-bit guests).
    pub hv_start_low: Option<u64>,
    /// The boot vcpu's context, as handed to `XEN_DOMCTL_setvcpucontext`.
    pub vcpu: &'a VcpuContext,
}

impl<'a> Boot<'a> {
    /// The checker's inputs for a kernel and the context built for it.
    pub fn new(kernel: &KernelParams, vcpu: &'a VcpuContext) -> Self {
        Self {
            guest_type: kernel.guest_type,
            virt_base: kernel.virt_base,
            virt_entry: kernel.virt_entry,
            init_p2m: kernel.p2m_base,
            hv_start_low: kernel.virt_hv_start_low,
            vcpu,
        }
    }
}

/// What the checker found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkError<E> {
    /// The memory backend failed.
    Memory(E),
    /// Address arithmetic overflowed, or a page could not be read whole.
    Overflow,
    /// Two pfns share a machine frame in the backend's p2m.
    DuplicateMfn(u64),
    /// The vcpu context is for the other word size.
    ContextKind,
    /// A register holds the wrong value.
    Register {
        /// The register.
        name: &'static str,
        /// Found.
        found: u64,
        /// What the protocol requires.
        expected: u64,
    },
    /// An entry names a machine frame that is not the guest's.
    UnknownMfn {
        /// First address the entry covers.
        vaddr: u64,
        /// Level of the entry (0 = L1).
        level: usize,
        /// The frame.
        mfn: u64,
    },
    /// An entry whose present bit is clear holds other bits.
    JunkEntry {
        /// The table's pfn.
        table: u64,
        /// Level of the table (0 = L1).
        level: usize,
        /// The slot.
        slot: usize,
        /// The raw entry.
        raw: u64,
    },
    /// An entry's flags differ from what libxenguest writes.
    Flags {
        /// First address the entry covers.
        vaddr: u64,
        /// Level of the entry (0 = L1).
        level: usize,
        /// Found flags.
        found: u64,
        /// Expected flags.
        expected: u64,
    },
    /// A page-table frame is mapped writable.
    WritableTable {
        /// Where.
        vaddr: u64,
        /// The table's pfn.
        pfn: u64,
    },
    /// A table is reached by two entries (or by cr3 and an entry).
    TableReused {
        /// The table's pfn.
        pfn: u64,
    },
    /// An entry maps into Xen's part of the address space.
    HypervisorArea {
        /// First address the entry covers.
        vaddr: u64,
        /// Level of the entry.
        level: usize,
    },
    /// A present top-level entry beyond the guest's address space (PAE L3 slot 4 and up).
    OutsideAddressSpace {
        /// The slot.
        slot: usize,
    },
    /// Nothing mapped where the protocol requires a page.
    NotMapped {
        /// The address.
        vaddr: u64,
    },
    /// An address maps the wrong pfn.
    WrongPage {
        /// The address.
        vaddr: u64,
        /// Pfn it should map.
        expected: u64,
        /// Pfn it maps.
        found: u64,
    },
    /// A mapping the protocol does not explain.
    Unexpected {
        /// The address.
        vaddr: u64,
        /// The pfn it maps.
        pfn: u64,
    },
    /// A page table that is neither a bootstrap table nor one of the p2m mapping's.
    StrayTable {
        /// The table's pfn.
        pfn: u64,
    },
    /// The bootstrap region does not end as xen.h and libxenguest say.
    RegionEnd {
        /// Where it ends.
        v_end: u64,
        /// The boot stack's top.
        rsp: u64,
    },
    /// A start_info field is wrong.
    StartInfo {
        /// The field.
        field: &'static str,
        /// Found.
        found: u64,
        /// Expected (or the bound it breaks).
        expected: u64,
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
}

/// What the checker verified, for the CLI to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalkReport {
    /// Page-table frames reached from cr3.
    pub tables: u64,
    /// Of which bootstrap tables (inside the region: `nr_pt_frames`).
    pub bootstrap_tables: u64,
    /// Table slots read.
    pub slots_scanned: u64,
    /// Pages mapped (present L1 entries).
    pub pages_mapped: u64,
    /// Of which read-only page-table frames.
    pub readonly_pages: u64,
    /// p2m list entries compared with the backend's p2m.
    pub p2m_entries: u64,
    /// End of the bootstrap region found (`v_end`).
    pub v_end: u64,
}

/// The paging format of a guest type, from the SDM.
#[derive(Debug, Clone, Copy)]
struct Format {
    levels: usize,
    entry_bytes: usize,
    index_bits: u32,
    addr_mask: u64,
    guest: GuestType,
}

impl Format {
    const fn of(guest: GuestType) -> Self {
        match guest {
            // 4-level: 512 8-byte entries per table, 9 bits per level.
            GuestType::X86_64 => Self {
                levels: 4,
                entry_bytes: 8,
                index_bits: 9,
                addr_mask: PTE_ADDR_64,
                guest,
            },
            // PAE: 8-byte entries, a 4-entry L3 (Xen gives it a whole page).
            GuestType::X86_32Pae => Self {
                levels: 3,
                entry_bytes: 8,
                index_bits: 9,
                addr_mask: PTE_ADDR_64,
                guest,
            },
            // 32-bit paging: 1024 4-byte entries, 10 bits per level.
            GuestType::X86_32 => Self {
                levels: 2,
                entry_bytes: 4,
                index_bits: 10,
                addr_mask: PTE_ADDR_32,
                guest,
            },
        }
    }
    fn slots(self) -> usize {
        PAGE_SIZE as usize / self.entry_bytes
    }
    fn shift(self, level: usize) -> u32 {
        PAGE_SHIFT + self.index_bits * level as u32
    }
    /// Xen's part of the address space, `[start, end)`.
    fn reserved(self, hv_start_low: Option<u64>) -> (u64, u64) {
        match self.guest {
            GuestType::X86_64 => (HYPERVISOR_VIRT_START_X86_64, HYPERVISOR_VIRT_END_X86_64),
            GuestType::X86_32Pae => (
                hv_start_low.map_or(HYPERVISOR_VIRT_START_PAE, |h| {
                    h.min(HYPERVISOR_VIRT_START_PAE)
                }),
                1 << 32,
            ),
            GuestType::X86_32 => (
                hv_start_low.map_or(HYPERVISOR_VIRT_START_NONPAE, |h| {
                    h.min(HYPERVISOR_VIRT_START_NONPAE)
                }),
                1 << 32,
            ),
        }
    }
    /// Bytes of one p2m list entry (`unsigned long` of the guest).
    fn p2m_entry_bytes(self) -> u64 {
        match self.guest {
            GuestType::X86_64 => 8,
            GuestType::X86_32Pae | GuestType::X86_32 => 4,
        }
    }
    fn magic(self) -> &'static [u8] {
        match self.guest {
            GuestType::X86_64 => MAGIC_X86_64,
            GuestType::X86_32Pae => MAGIC_X86_32P,
            GuestType::X86_32 => MAGIC_X86_32,
        }
    }
    fn start_info(self) -> StartInfoOffsets {
        match self.guest {
            GuestType::X86_64 => START_INFO_X86_64,
            GuestType::X86_32Pae | GuestType::X86_32 => START_INFO_X86_32,
        }
    }
}

/// The registers the checker reads from the vcpu context.
struct Regs {
    top_mfn: u64,
    rip: u64,
    rsp: u64,
    rsi: u64,
}

fn regs(guest: GuestType, vcpu: &VcpuContext) -> Option<Regs> {
    match (guest, vcpu) {
        // xen_cr3_to_pfn, xen-x86_64.h: cr3 >> 12.
        (GuestType::X86_64, VcpuContext::X86_64(c)) => Some(Regs {
            top_mfn: c.ctrlreg.get(3)? >> 12,
            rip: c.user_regs.rip,
            rsp: c.user_regs.rsp,
            rsi: c.user_regs.rsi,
        }),
        // xen_cr3_to_pfn, xen-x86_32.h: (cr3 >> 12) | (cr3 << 20), in 32 bits.
        (GuestType::X86_32Pae | GuestType::X86_32, VcpuContext::X86_32(c)) => {
            let cr3 = *c.ctrlreg.get(3)?;
            Some(Regs {
                top_mfn: u64::from(cr3.rotate_right(12)),
                rip: c.user_regs.eip.into(),
                rsp: c.user_regs.esp.into(),
                rsi: c.user_regs.esi.into(),
            })
        }
        _ => None,
    }
}

/// A present L1 entry.
#[derive(Debug, Clone, Copy)]
struct Leaf {
    vaddr: u64,
    pfn: u64,
    flags: u64,
}

/// Everything reachable from cr3.
struct Scan<'m> {
    fmt: Format,
    reserved: (u64, u64),
    /// (mfn, pfn), sorted by mfn.
    m2p: &'m [(u64, u64)],
    /// Table pfns, sorted.
    tables: Vec<u64>,
    leaves: Vec<Leaf>,
    slots: u64,
}

impl Scan<'_> {
    fn pfn_of(&self, mfn: u64) -> Option<u64> {
        self.m2p
            .binary_search_by_key(&mfn, |e| e.0)
            .ok()
            .and_then(|i| self.m2p.get(i))
            .map(|e| e.1)
    }

    fn add_table<E>(&mut self, pfn: u64) -> Result<(), WalkError<E>> {
        match self.tables.binary_search(&pfn) {
            Ok(_) => Err(WalkError::TableReused { pfn }),
            Err(at) => {
                self.tables.insert(at, pfn);
                Ok(())
            }
        }
    }

    /// The first address slot `slot` of a level-`level` table covering from `base` maps.
    fn slot_vaddr<E>(&self, base: u64, level: usize, slot: usize) -> Result<u64, WalkError<E>> {
        let off = (slot as u64)
            .checked_shl(self.fmt.shift(level))
            .ok_or(WalkError::Overflow)?;
        let va = base.checked_add(off).ok_or(WalkError::Overflow)?;
        let top = level + 1 == self.fmt.levels;
        match self.fmt.guest {
            // Canonical form: bits 63..48 copy bit 47 (SDM 4.5).
            GuestType::X86_64 if top && va & (1 << 47) != 0 => Ok(va | 0xffff_0000_0000_0000),
            GuestType::X86_32Pae if top && slot >= 4 => {
                Err(WalkError::OutsideAddressSpace { slot })
            }
            _ => Ok(va),
        }
    }

    fn table<M: GuestMemory>(
        &mut self,
        mem: &mut M,
        pfn: u64,
        level: usize,
        base: u64,
    ) -> Result<(), WalkError<M::Error>> {
        let page = read_page(mem, pfn)?;
        for slot in 0..self.fmt.slots() {
            let raw = entry(&page, slot, self.fmt.entry_bytes).ok_or(WalkError::Overflow)?;
            self.slots += 1;
            if raw == 0 {
                continue;
            }
            if raw & PTE_P == 0 {
                return Err(WalkError::JunkEntry {
                    table: pfn,
                    level,
                    slot,
                    raw,
                });
            }
            let vaddr = self.slot_vaddr(base, level, slot)?;
            let span_end = vaddr
                .checked_add((1u64 << self.fmt.shift(level)) - 1)
                .ok_or(WalkError::Overflow)?;
            if vaddr >= self.reserved.0 && span_end < self.reserved.1 {
                return Err(WalkError::HypervisorArea { vaddr, level });
            }
            let mfn = (raw & self.fmt.addr_mask) >> PAGE_SHIFT;
            let flags = raw & !self.fmt.addr_mask;
            let child = self
                .pfn_of(mfn)
                .ok_or(WalkError::UnknownMfn { vaddr, level, mfn })?;
            if level == 0 {
                self.leaves.push(Leaf {
                    vaddr,
                    pfn: child,
                    flags,
                });
                continue;
            }
            if flags != UPPER_FLAGS {
                return Err(WalkError::Flags {
                    vaddr,
                    level,
                    found: flags,
                    expected: UPPER_FLAGS,
                });
            }
            self.add_table(child)?;
            self.table(mem, child, level - 1, vaddr)?;
        }
        Ok(())
    }

    /// The leaf mapping `vaddr`, if any.
    fn leaf(&self, vaddr: u64) -> Option<Leaf> {
        self.leaves
            .binary_search_by_key(&vaddr, |l| l.vaddr)
            .ok()
            .and_then(|i| self.leaves.get(i))
            .copied()
    }

    fn is_table(&self, pfn: u64) -> bool {
        self.tables.binary_search(&pfn).is_ok()
    }
}

fn read_page<M: GuestMemory>(mem: &mut M, pfn: u64) -> Result<Vec<u8>, WalkError<M::Error>> {
    let p = Pfn::new(pfn).map_err(|_| WalkError::Overflow)?;
    let src = mem.pages_mut(p, 1).map_err(WalkError::Memory)?;
    let src = src.get(..PAGE_SIZE as usize).ok_or(WalkError::Overflow)?;
    let mut v = vec![0u8; PAGE_SIZE as usize];
    v.copy_from_slice(src);
    Ok(v)
}

/// Little-endian value of `bytes` (1..=8) bytes at `at`.
fn le(page: &[u8], at: usize, bytes: usize) -> Option<u64> {
    let b = page.get(at..at.checked_add(bytes)?)?;
    let mut v = [0u8; 8];
    v.get_mut(..bytes)?.copy_from_slice(b);
    Some(u64::from_le_bytes(v))
}

fn entry(page: &[u8], slot: usize, bytes: usize) -> Option<u64> {
    le(page, slot.checked_mul(bytes)?, bytes)
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

fn va<E>(base: u64, pages: u64) -> Result<u64, WalkError<E>> {
    pages
        .checked_mul(PAGE_SIZE)
        .and_then(|o| base.checked_add(o))
        .ok_or(WalkError::Overflow)
}

/// The start_info fields the checker reads, widened to 64 bits.
struct StartInfo {
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
    cmd_line_end: u8,
    first_p2m_pfn: u64,
    nr_p2m_frames: u64,
}

fn read_start_info(page: &[u8], o: StartInfoOffsets) -> Option<StartInfo> {
    let w = |at| le(page, at, o.word);
    let mut magic = [0u8; 32];
    magic.copy_from_slice(page.get(..32)?);
    Some(StartInfo {
        magic,
        nr_pages: w(o.nr_pages)?,
        flags: le(page, o.flags, 4)?,
        store_mfn: w(o.store_mfn)?,
        console_mfn: w(o.console_mfn)?,
        pt_base: w(o.pt_base)?,
        nr_pt_frames: w(o.nr_pt_frames)?,
        mfn_list: w(o.mfn_list)?,
        mod_start: w(o.mod_start)?,
        mod_len: w(o.mod_len)?,
        cmd_line_end: *page.get(o.cmd_line.checked_add(MAX_GUEST_CMDLINE - 1)?)?,
        first_p2m_pfn: w(o.first_p2m_pfn)?,
        nr_p2m_frames: w(o.nr_p2m_frames)?,
    })
}

/// The inverse of the backend's p2m, sorted by mfn; two pfns on one frame are refused.
fn m2p<M: GuestMemory>(mem: &M) -> Result<Vec<(u64, u64)>, WalkError<M::Error>> {
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
    Ok(m2p)
}

/// Check the guest in `mem` that `boot` starts (see the module docs).
pub fn check<M: GuestMemory>(
    boot: &Boot<'_>,
    mem: &mut M,
) -> Result<WalkReport, WalkError<M::Error>> {
    let fmt = Format::of(boot.guest_type);
    let r = regs(boot.guest_type, boot.vcpu).ok_or(WalkError::ContextKind)?;
    let nr_pages = mem.nr_pages();
    let m2p = m2p(mem)?;
    let mut s = Scan {
        fmt,
        reserved: fmt.reserved(boot.hv_start_low),
        m2p: &m2p,
        tables: Vec::new(),
        leaves: Vec::new(),
        slots: 0,
    };

    // 1. Every table reachable from cr3, every slot of each.
    let top = s.pfn_of(r.top_mfn).ok_or(WalkError::UnknownMfn {
        vaddr: 0,
        level: fmt.levels,
        mfn: r.top_mfn,
    })?;
    s.add_table(top)?;
    s.table(mem, top, fmt.levels - 1, 0)?;
    s.leaves.sort_unstable_by_key(|l| l.vaddr);

    // 2. The bootstrap region: pfn i at virt_base + i pages, up to the first gap.
    let vb = boot.virt_base;
    let first = s
        .leaves
        .binary_search_by_key(&vb, |l| l.vaddr)
        .map_err(|_| WalkError::NotMapped { vaddr: vb })?;
    let mut n = 0u64;
    let mut rep = WalkReport::default();
    for l in s.leaves.get(first..).unwrap_or(&[]) {
        let want = va(vb, n)?;
        if l.vaddr != want {
            break;
        }
        if l.pfn != n {
            return Err(WalkError::WrongPage {
                vaddr: l.vaddr,
                expected: n,
                found: l.pfn,
            });
        }
        let expected = if s.is_table(l.pfn) {
            if l.flags & PTE_RW != 0 {
                return Err(WalkError::WritableTable {
                    vaddr: l.vaddr,
                    pfn: l.pfn,
                });
            }
            rep.readonly_pages += 1;
            L1_FLAGS & !PTE_RW
        } else {
            L1_FLAGS
        };
        if l.flags != expected {
            return Err(WalkError::Flags {
                vaddr: l.vaddr,
                level: 0,
                found: l.flags,
                expected,
            });
        }
        n += 1;
    }
    let v_end = va(vb, n)?;
    let region_end = first.checked_add(n as usize).ok_or(WalkError::Overflow)?;
    // A page missing inside the region: the 1:1 mapping resumes after the gap.
    let resumes = s
        .leaves
        .get(region_end..)
        .unwrap_or(&[])
        .iter()
        .any(|l| l.vaddr.checked_sub(vb) == l.pfn.checked_mul(PAGE_SIZE));
    if resumes {
        return Err(WalkError::NotMapped { vaddr: v_end });
    }
    let in_region = |v: u64| v >= vb && v < v_end;

    // 3. The registers and start_info.
    if !in_region(r.rip) || r.rip != boot.virt_entry {
        return Err(WalkError::Register {
            name: "rip",
            found: r.rip,
            expected: boot.virt_entry,
        });
    }
    if !in_region(r.rsi) || r.rsi % PAGE_SIZE != 0 {
        return Err(WalkError::Register {
            name: "rsi",
            found: r.rsi,
            expected: vb,
        });
    }
    let si_pfn = (r.rsi - vb) >> PAGE_SHIFT;
    let page = read_page(mem, si_pfn)?;
    let si = read_start_info(&page, fmt.start_info()).ok_or(WalkError::Overflow)?;
    let magic = fmt.magic();
    if si.magic.get(..magic.len()) != Some(magic) || si.magic.get(magic.len()) != Some(&0) {
        return Err(WalkError::StartInfo {
            field: "magic",
            found: le(&si.magic, 0, 8).unwrap_or(0),
            expected: le(magic, 0, 8).unwrap_or(0),
        });
    }
    expect("nr_pages", si.nr_pages, nr_pages)?;
    if si.cmd_line_end != 0 {
        return Err(WalkError::StartInfo {
            field: "cmd_line",
            found: si.cmd_line_end.into(),
            expected: 0,
        });
    }
    let mod_flag = if si.mod_len != 0 && si.flags & SIF_MOD_START_PFN != 0 {
        SIF_MOD_START_PFN
    } else {
        0
    };
    // As xl's guests: only SIF_MOD_START_PFN, when there is a module given by pfn; never
    // SIF_VIRT_P2M_4TOOLS (see its definition).
    expect("flags", si.flags, mod_flag)?;
    let mfn_pfn = |mfn: u64| s.pfn_of(mfn).unwrap_or(u64::MAX);
    // xen.h order d, e, f, g, h, packed: start_info, xenstore, console, tables, stack.
    expect("store_mfn (as pfn)", mfn_pfn(si.store_mfn), si_pfn + 1)?;
    expect("console_mfn (as pfn)", mfn_pfn(si.console_mfn), si_pfn + 2)?;
    expect("pt_base", si.pt_base, va(vb, top)?)?;
    if top != si_pfn + 3 {
        return Err(WalkError::Register {
            name: "cr3 (as pfn)",
            found: top,
            expected: si_pfn + 3,
        });
    }
    // The bootstrap tables: those in the region, contiguous from cr3's.
    let boot_tables: Vec<u64> = s.tables.iter().copied().filter(|&p| p < n).collect();
    for (i, &p) in boot_tables.iter().enumerate() {
        if p != top + i as u64 {
            return Err(WalkError::StrayTable { pfn: p });
        }
    }
    let nr_pt = boot_tables.len() as u64;
    expect("nr_pt_frames", si.nr_pt_frames, nr_pt)?;
    let stack_top = va(vb, top + nr_pt + 1)?;
    if r.rsp != stack_top {
        return Err(WalkError::Register {
            name: "rsp",
            found: r.rsp,
            expected: stack_top,
        });
    }
    let need = stack_top
        .checked_add(MIN_PADDING)
        .ok_or(WalkError::Overflow)?;
    if v_end % REGION_ALIGN != 0 || v_end < need || v_end - REGION_ALIGN > need {
        return Err(WalkError::RegionEnd { v_end, rsp: r.rsp });
    }

    // 4. The p2m list: in the region, or at a usable INIT_P2M address.
    let list_pages = nr_pages
        .checked_mul(fmt.p2m_entry_bytes())
        .and_then(|b| b.checked_add(PAGE_SIZE - 1))
        .ok_or(WalkError::Overflow)?
        / PAGE_SIZE;
    // xc_dom_build_image: the note counts only for 64-bit guests, below virt_base, aligned.
    let init_p2m = boot
        .init_p2m
        .filter(|&b| boot.guest_type == GuestType::X86_64 && b < vb && b % PAGE_SIZE == 0);
    let outside: Vec<Leaf> = s
        .leaves
        .get(..first)
        .unwrap_or(&[])
        .iter()
        .chain(s.leaves.get(region_end..).unwrap_or(&[]))
        .copied()
        .collect();
    let p2m_pfn = match init_p2m {
        Some(base) => {
            expect("mfn_list", si.mfn_list, base)?;
            let l0 = s.leaf(base).ok_or(WalkError::NotMapped { vaddr: base })?;
            let p0 = l0.pfn;
            if p0 < n {
                return Err(WalkError::StartInfo {
                    field: "first_p2m_pfn (inside the region)",
                    found: p0,
                    expected: n,
                });
            }
            let mut mapped = 0u64;
            for l in &outside {
                let i = l.vaddr.wrapping_sub(base) / PAGE_SIZE;
                if l.vaddr < base || i >= list_pages {
                    return Err(WalkError::Unexpected {
                        vaddr: l.vaddr,
                        pfn: l.pfn,
                    });
                }
                if l.pfn != p0 + i {
                    return Err(WalkError::WrongPage {
                        vaddr: l.vaddr,
                        expected: p0 + i,
                        found: l.pfn,
                    });
                }
                if l.flags != L1_FLAGS {
                    return Err(WalkError::Flags {
                        vaddr: l.vaddr,
                        level: 0,
                        found: l.flags,
                        expected: L1_FLAGS,
                    });
                }
                mapped += 1;
            }
            if mapped != list_pages {
                // The leaves are sorted and all in [base, base + list_pages): the first gap.
                let gap = outside
                    .iter()
                    .enumerate()
                    .find(|(i, l)| l.vaddr != base + *i as u64 * PAGE_SIZE)
                    .map_or(mapped, |(i, _)| i as u64);
                return Err(WalkError::NotMapped {
                    vaddr: va(base, gap)?,
                });
            }
            // The p2m mapping's own tables follow the list, and nothing else lies outside.
            let own_tables = s.tables.iter().filter(|&&p| p >= n).count() as u64;
            for &p in s.tables.iter().filter(|&&p| p >= n) {
                if p < p0 + list_pages || p >= p0 + list_pages + own_tables {
                    return Err(WalkError::StrayTable { pfn: p });
                }
            }
            expect("first_p2m_pfn", si.first_p2m_pfn, p0)?;
            expect("nr_p2m_frames", si.nr_p2m_frames, list_pages + own_tables)?;
            p0
        }
        None => {
            if let Some(l) = outside.first() {
                return Err(WalkError::Unexpected {
                    vaddr: l.vaddr,
                    pfn: l.pfn,
                });
            }
            if let Some(&p) = s.tables.iter().find(|&&p| p >= n) {
                return Err(WalkError::StrayTable { pfn: p });
            }
            if !in_region(si.mfn_list) || si.mfn_list % PAGE_SIZE != 0 {
                return Err(WalkError::StartInfo {
                    field: "mfn_list",
                    found: si.mfn_list,
                    expected: vb,
                });
            }
            let p0 = (si.mfn_list - vb) >> PAGE_SHIFT;
            // Order c before d: the list ends before start_info.
            if p0 + list_pages > si_pfn {
                return Err(WalkError::StartInfo {
                    field: "mfn_list (overlaps start_info)",
                    found: si.mfn_list,
                    expected: va(vb, si_pfn - list_pages.min(si_pfn))?,
                });
            }
            expect("first_p2m_pfn", si.first_p2m_pfn, 0)?;
            expect("nr_p2m_frames", si.nr_p2m_frames, 0)?;
            p0
        }
    };

    // The list's contents: entry i is the backend's frame for pfn i.
    let entry_bytes = fmt.p2m_entry_bytes();
    let per_page = PAGE_SIZE / entry_bytes;
    for page_i in 0..list_pages {
        let buf = read_page(mem, p2m_pfn + page_i)?;
        for k in 0..per_page {
            let pfn = page_i * per_page + k;
            if pfn >= nr_pages {
                break;
            }
            let found = le(&buf, (k * entry_bytes) as usize, entry_bytes as usize)
                .ok_or(WalkError::Overflow)?;
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

    // 5. The module: absent, in the region before the p2m list (or start_info), or by pfn
    //    outside the region and clear of the p2m frames.
    if si.mod_len == 0 {
        expect("mod_start", si.mod_start, 0)?;
    } else if mod_flag != 0 {
        let pages = si.mod_len.div_ceil(PAGE_SIZE);
        let end = si.mod_start.checked_add(pages).ok_or(WalkError::Overflow)?;
        let p2m_frames = (si.first_p2m_pfn, si.first_p2m_pfn + si.nr_p2m_frames);
        if si.mod_start < n
            || end > nr_pages
            || (init_p2m.is_some() && si.mod_start < p2m_frames.1 && end > p2m_frames.0)
        {
            return Err(WalkError::StartInfo {
                field: "mod_start (pfn)",
                found: si.mod_start,
                expected: n,
            });
        }
    } else {
        let limit = if init_p2m.is_some() {
            r.rsi
        } else {
            si.mfn_list
        };
        let end = si.mod_start.checked_add(si.mod_len);
        if si.mod_start < vb || si.mod_start % PAGE_SIZE != 0 || end.is_none_or(|e| e > limit) {
            return Err(WalkError::StartInfo {
                field: "mod_start",
                found: si.mod_start,
                expected: vb,
            });
        }
    }

    rep.tables = s.tables.len() as u64;
    rep.bootstrap_tables = nr_pt;
    rep.slots_scanned = s.slots;
    rep.pages_mapped = s.leaves.len() as u64;
    rep.v_end = v_end;
    Ok(rep)
}

impl<E: core::fmt::Debug> core::fmt::Display for WalkError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WalkError::Memory(e) => write!(f, "guest memory: {e:?}"),
            WalkError::Overflow => f.write_str("address arithmetic overflowed"),
            WalkError::DuplicateMfn(m) => write!(f, "two pfns share machine frame {m:#x}"),
            WalkError::ContextKind => {
                f.write_str("the vcpu context is for the other guest word size")
            }
            WalkError::Register {
                name,
                found,
                expected,
            } => write!(f, "{name} is {found:#x}, the protocol wants {expected:#x}"),
            WalkError::UnknownMfn { vaddr, level, mfn } => write!(
                f,
                "L{} entry for {vaddr:#x} names machine frame {mfn:#x}, not the guest's",
                level + 1
            ),
            WalkError::JunkEntry {
                table,
                level,
                slot,
                raw,
            } => write!(
                f,
                "L{} table at pfn {table:#x}, slot {slot}: not present but holds {raw:#x}",
                level + 1
            ),
            WalkError::Flags {
                vaddr,
                level,
                found,
                expected,
            } => write!(
                f,
                "L{} entry for {vaddr:#x} has flags {found:#x}, libxenguest writes {expected:#x}",
                level + 1
            ),
            WalkError::WritableTable { vaddr, pfn } => {
                write!(
                    f,
                    "page table at pfn {pfn:#x} is mapped writable at {vaddr:#x}"
                )
            }
            WalkError::TableReused { pfn } => {
                write!(f, "page table at pfn {pfn:#x} is reached twice")
            }
            WalkError::HypervisorArea { vaddr, level } => write!(
                f,
                "L{} entry for {vaddr:#x} lies in Xen's part of the address space",
                level + 1
            ),
            WalkError::OutsideAddressSpace { slot } => {
                write!(
                    f,
                    "top-level slot {slot} is beyond the guest's address space"
                )
            }
            WalkError::NotMapped { vaddr } => write!(f, "nothing is mapped at {vaddr:#x}"),
            WalkError::WrongPage {
                vaddr,
                expected,
                found,
            } => write!(f, "{vaddr:#x} maps pfn {found:#x}, not pfn {expected:#x}"),
            WalkError::Unexpected { vaddr, pfn } => write!(
                f,
                "{vaddr:#x} maps pfn {pfn:#x}, outside the bootstrap region and the p2m mapping"
            ),
            WalkError::StrayTable { pfn } => write!(
                f,
                "page table at pfn {pfn:#x} is neither a bootstrap table nor the p2m mapping's"
            ),
            WalkError::RegionEnd { v_end, rsp } => write!(
                f,
                "bootstrap region ends at {v_end:#x}: not the first 4 MiB boundary at least \
                 512 KiB past the boot stack ({rsp:#x})"
            ),
            WalkError::StartInfo {
                field,
                found,
                expected,
            } => write!(
                f,
                "start_info.{field} is {found:#x}, expected {expected:#x}"
            ),
            WalkError::P2mEntry {
                pfn,
                found,
                expected,
            } => write!(
                f,
                "p2m list entry for pfn {pfn:#x} is {found:#x}, the guest's frame is {expected:#x}"
            ),
        }
    }
}

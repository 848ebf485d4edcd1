//! Whole builds into an in-memory guest with a p2m that is not the identity, checked by the
//! walker for each paging mode; and the walker catching what it must catch.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use pvbuild_core::addr::{Mfn, Pfn};
use pvbuild_core::build::{self, BuildConfig, BuildError};
use pvbuild_core::image::{GuestType, KernelParams, LoadKernel, PaeMode};
use pvbuild_core::layout::{LayoutRequest, SIF_MOD_START_PFN};
use pvbuild_core::mem::{GuestMemory, InMemory};
use pvbuild_core::p2m::MMU_MACHPHYS_UPDATE;
use pvbuild_core::paging::{self, PagingMode};
use pvbuild_core::start_info::{StartInfoX86_32, StartInfoX86_64};
use pvbuild_core::vcpu::{VcpuContext, FLAT_KERNEL_CS_X86_32, FLAT_KERNEL_CS_X86_64};
use pvbuild_core::walker::{self, Boot, WalkError, WalkReport};
use zerocopy::FromBytes;

/// The checker on `mem`, told what the kernel `params` declares and the context `out` built.
fn walk(
    params: &KernelParams,
    vcpu: &VcpuContext,
    mem: &mut InMemory<'_>,
) -> Result<WalkReport, WalkError<pvbuild_core::mem::InMemoryError>> {
    walker::check(&Boot::new(params, vcpu), mem)
}

/// A kernel that writes its page index at the start of every page.
struct TinyKernel(KernelParams);

impl LoadKernel for TinyKernel {
    type Error = ();
    fn params(&self) -> &KernelParams {
        &self.0
    }
    fn load(&self, dest: &mut [u8]) -> Result<(), ()> {
        let want = (self.0.virt_kend - self.0.virt_kstart) as usize;
        if dest.len() != want {
            return Err(());
        }
        for (i, page) in dest.chunks_mut(4096).enumerate() {
            page[..4].copy_from_slice(&(i as u32 ^ 0xabcd_0000).to_le_bytes());
        }
        Ok(())
    }
}

fn debian() -> KernelParams {
    common::debian_params()
}

fn pae() -> KernelParams {
    let mut k = debian();
    k.guest_type = GuestType::X86_32Pae;
    // `PAE=yes` of a legacy `__xen_guest` string, without `[extended-cr3]` (libelf's
    // XEN_PAE_YES): the one mode whose L3 must sit below 4 GiB. Debian's kernel says
    // extended-cr3 (PAE_MODE note "yes").
    k.pae = PaeMode::Yes;
    k.virt_base = 0xc000_0000;
    k.virt_kstart = 0xc100_0000;
    k.virt_kend = 0xc180_0000;
    k.virt_entry = 0xc100_1000;
    k.virt_hypercall = Some(0xc100_2000);
    k.virt_hv_start_low = Some(0xf580_0000);
    k.p2m_base = None;
    k.unmapped_initrd = false;
    k
}

fn two_level() -> KernelParams {
    let mut k = pae();
    k.guest_type = GuestType::X86_32;
    k.pae = PaeMode::No;
    k.virt_hv_start_low = None;
    k
}

/// A p2m with the log's 0x76000 offset scrambled by an XOR, so no pfn equals its mfn.
fn scrambled_p2m(n: u64, base: u64) -> Vec<Mfn> {
    (0..n)
        .map(|p| Mfn::new((p ^ 0x2a5) + base).unwrap())
        .collect()
}

fn cfg<'a>(ramdisk: Option<&'a [u8]>, relocated: &'a [Pfn]) -> BuildConfig<'a> {
    BuildConfig {
        ramdisk,
        cmdline: b"console=hvc0 quiet",
        store_evtchn: 1,
        console_evtchn: 2,
        shared_info_mfn: Mfn::new(0x7fd70).unwrap(),
        relocated,
    }
}

fn ramdisk_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 253) as u8).collect()
}

#[test]
fn x86_64_build_walks_clean() {
    let params = debian();
    let rd = ramdisk_bytes(1_983_504);
    let nr = 0x10000;
    let layout = build::plan(
        &params,
        &LayoutRequest {
            nr_pages: nr,
            ramdisk_len: Some(rd.len() as u64),
        },
    )
    .unwrap();
    let p2m = scrambled_p2m(nr, 0x76000);
    let mut bytes = vec![0u8; (nr * 4096) as usize];
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let out = build::build(
        &TinyKernel(params.clone()),
        &layout,
        &cfg(Some(&rd), &[]),
        &mut mem,
    )
    .unwrap();

    // Figures from libxenguest's log of the same kernel (/work/shared/reference): a region of
    // 0x4c00 pages to v_end 0xffffffff84c00000 with 0x29 tables, and a p2m mapping of 0x80
    // list pages plus 3 tables (nr_p2m_frames 0x83).
    let rep = walk(&params, &out.vcpu, &mut mem).unwrap();
    assert_eq!(rep.pages_mapped, 0x4c00 + 0x80);
    assert_eq!(rep.readonly_pages, 0x29);
    assert_eq!(rep.bootstrap_tables, 0x29);
    assert_eq!(rep.tables, 0x29 + 3);
    assert_eq!(rep.slots_scanned, (0x29 + 3) * 512);
    assert_eq!(rep.p2m_entries, nr);
    assert_eq!(rep.v_end, 0xffffffff84c00000);

    assert_eq!(out.top_table_pfn.get(), 0x4a03);
    assert_eq!(out.top_table_mfn, p2m[0x4a03]);
    assert_eq!(out.pin_cmd, 3);
    assert!(out.m2p_updates.is_empty());
    assert_eq!(out.hypercall_mfn, None);
    let VcpuContext::X86_64(c) = &out.vcpu else {
        panic!("wrong context")
    };
    assert_eq!(c.user_regs.rip, 0xffffffff830791c0);
    assert_eq!(c.user_regs.rsp, 0xffffffff84a2d000);
    assert_eq!(c.user_regs.rsi, 0xffffffff84a00000);
    assert_eq!(c.user_regs.rflags, 1 << 9);
    assert_eq!(c.user_regs.cs, FLAT_KERNEL_CS_X86_64);
    assert_eq!(c.ctrlreg[3], p2m[0x4a03].get() << 12);
    assert_eq!(c.flags, (1 << 2) | (1 << 5));
    assert_eq!(out.vcpu.as_bytes().len(), 5168);

    // start_info as the kernel sees it.
    let page = mem.pages(Pfn::new(0x4a00).unwrap(), 1).unwrap();
    let (si, _) = StartInfoX86_64::read_from_prefix(page).unwrap();
    assert_eq!(&si.magic[..15], b"xen-3.0-x86_64\0");
    assert_eq!(si.shared_info, 0x7fd70 << 12);
    assert_eq!(si.mfn_list, 0x8000000000);
    assert_eq!(si.pt_base, 0xffffffff84a03000);
    assert_eq!((si.mod_start, si.mod_len), (0x4c00, 0x1e5000));
    assert_eq!(si.flags & SIF_MOD_START_PFN, SIF_MOD_START_PFN);
    assert_eq!((si.first_p2m_pfn, si.nr_p2m_frames), (0x4de5, 0x83));
    assert_eq!((si.store_evtchn, si.console_evtchn), (1, 2));
    assert_eq!(&si.cmd_line[..19], b"console=hvc0 quiet\0");

    // Kernel and ramdisk bytes where the layout put them.
    let k = mem.pages(Pfn::new(0x1000 + 7).unwrap(), 1).unwrap();
    assert_eq!(&k[..4], &(7u32 ^ 0xabcd_0000).to_le_bytes());
    let r = mem.pages(Pfn::new(0x4c00).unwrap(), 0x1e5).unwrap();
    assert_eq!(&r[..rd.len()], &rd[..]);
    assert!(r[rd.len()..].iter().all(|&b| b == 0));
}

#[test]
fn pae_build_walks_clean_and_relocates_l3() {
    let params = pae();
    let nr = 0x6000;
    let rd = ramdisk_bytes(70_000);
    let layout = build::plan(
        &params,
        &LayoutRequest {
            nr_pages: nr,
            ramdisk_len: Some(rd.len() as u64),
        },
    )
    .unwrap();
    assert_eq!(layout.mode, PagingMode::Pae);
    let l3 = paging::l3_below_4g_pfn(&layout, params.pae).unwrap();
    assert_eq!(l3.get(), layout.pgtables.pfn);

    // All frames above 4 GiB: the L3 must be refused until the host moves it.
    let mut p2m = scrambled_p2m(nr, 0x200000);
    let mut bytes = vec![0u8; (nr * 4096) as usize];
    {
        let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
        let e = build::build(
            &TinyKernel(params.clone()),
            &layout,
            &cfg(Some(&rd), &[]),
            &mut mem,
        )
        .unwrap_err();
        assert!(
            matches!(e, BuildError::L3AboveFourGiB { pfn, .. } if pfn == l3),
            "{e:?}"
        );
    }
    // The host exchanged the L3's frame for one below 4 GiB.
    p2m[l3.get() as usize] = Mfn::new(0x1234).unwrap();
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let out = build::build(
        &TinyKernel(params.clone()),
        &layout,
        &cfg(Some(&rd), &[l3]),
        &mut mem,
    )
    .unwrap();
    assert_eq!(out.m2p_updates.len(), 1);
    assert_eq!(out.m2p_updates[0].ptr, (0x1234 << 12) | MMU_MACHPHYS_UPDATE);
    assert_eq!(out.m2p_updates[0].val, l3.get());
    assert_eq!(out.pin_cmd, 2);
    let hc_pfn = (0xc100_2000u64 - 0xc000_0000) >> 12;
    assert_eq!(out.hypercall_mfn, Some(p2m[hc_pfn as usize]));
    let VcpuContext::X86_32(c) = &out.vcpu else {
        panic!("wrong context")
    };
    assert_eq!(c.ctrlreg[3], (0x1234 << 12) as u32);
    assert_eq!(c.user_regs.cs, FLAT_KERNEL_CS_X86_32);
    assert_eq!(c.user_regs.eip, 0xc100_1000);
    assert_eq!(c.vm_assist, 0);
    assert_eq!(out.vcpu.as_bytes().len(), 2800);

    // 32-bit p2m entries need frames below 2^32: these are.
    let rep = walk(&params, &out.vcpu, &mut mem).unwrap();
    assert_eq!(rep.p2m_entries, nr);
    assert_eq!(rep.readonly_pages, rep.bootstrap_tables);
    // One L3, one L2 (the 1 GiB at 0xc0000000), 4 MiB-aligned v_end: an L1 per 2 MiB.
    assert_eq!(
        rep.bootstrap_tables,
        2 + (rep.v_end - 0xc000_0000) / (2 << 20)
    );
    assert_eq!(rep.tables, rep.bootstrap_tables);
    let page = mem.pages(out.start_info_pfn, 1).unwrap();
    let (si, _) = StartInfoX86_32::read_from_prefix(page).unwrap();
    assert_eq!(&si.magic[..16], b"xen-3.0-x86_32p\0");
    assert_eq!(u64::from(si.mod_start), layout.ramdisk.unwrap().vstart);
    assert_eq!(si.mod_len, 70_000);
}

#[test]
fn two_level_build_walks_clean() {
    let params = two_level();
    let nr = 0x3000;
    let layout = build::plan(
        &params,
        &LayoutRequest {
            nr_pages: nr,
            ramdisk_len: None,
        },
    )
    .unwrap();
    assert_eq!(layout.mode, PagingMode::TwoLevel);
    let p2m = scrambled_p2m(nr, 0x40000);
    let mut bytes = vec![0u8; (nr * 4096) as usize];
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let out = build::build(
        &TinyKernel(params.clone()),
        &layout,
        &cfg(None, &[]),
        &mut mem,
    )
    .unwrap();
    assert_eq!(out.pin_cmd, 1);
    let rep = walk(&params, &out.vcpu, &mut mem).unwrap();
    assert_eq!(rep.pages_mapped, (rep.v_end - 0xc000_0000) >> 12);
    // One L2 and an L1 per 4 MiB.
    assert_eq!(rep.tables, 1 + (rep.v_end - 0xc000_0000) / (4 << 20));
    assert_eq!(rep.slots_scanned, rep.tables * 1024);
    assert_eq!(mem.nr_pages(), nr);

    // Frames that do not fit a 2-level entry are refused.
    let big = scrambled_p2m(nr, 0x100000);
    let mut mem = InMemory::new(&mut bytes, &big).unwrap();
    let e = build::build(&TinyKernel(two_level()), &layout, &cfg(None, &[]), &mut mem).unwrap_err();
    assert!(matches!(e, BuildError::Paging(_)), "{e:?}");
}

#[test]
fn build_refuses_mismatched_inputs() {
    let params = debian();
    let nr = 0x8000;
    let layout = build::plan(
        &params,
        &LayoutRequest {
            nr_pages: nr,
            ramdisk_len: Some(100),
        },
    )
    .unwrap();
    let p2m = scrambled_p2m(nr, 0x76000);
    let mut bytes = vec![0u8; (nr * 4096) as usize];
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let big = vec![1u8; 0x1e5000 + 1];
    let e = build::build(
        &TinyKernel(params.clone()),
        &layout,
        &cfg(Some(&big), &[]),
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(e, BuildError::Ramdisk { .. }), "{e:?}");
    let e = build::build(
        &TinyKernel(params.clone()),
        &layout,
        &cfg(None, &[]),
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(e, BuildError::Ramdisk { .. }), "{e:?}");
    // Backend smaller than the layout.
    let small = scrambled_p2m(nr - 1, 0x76000);
    let mut mem = InMemory::new(&mut bytes, &small).unwrap();
    let e = build::build(
        &TinyKernel(params),
        &layout,
        &cfg(Some(&[1, 2, 3]), &[]),
        &mut mem,
    )
    .unwrap_err();
    assert!(matches!(e, BuildError::MemorySize { .. }), "{e:?}");
    // InMemory refuses a buffer shorter than its p2m.
    assert!(InMemory::new(&mut [0u8; 4095], &p2m[..1]).is_err());
}

// ---------------------------------------------------------------------------------------------
// The checker against corrupted builds: each test below changes one thing in a guest that the
// checker passes (`*_control`), and names the error the checker must report. The tests find
// the entries they corrupt with their own reading of x86 paging (SDM 4.3-4.5), from cr3.
// ---------------------------------------------------------------------------------------------

/// Paging format, as the tests read it: levels, entry bytes, index bits per level.
#[derive(Debug, Clone, Copy)]
struct Fmt {
    levels: usize,
    bytes: usize,
    bits: u32,
}

/// x86 entry bits (SDM Tables 4-15..4-20), written out here for the tests.
const P: u64 = 1;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const A: u64 = 1 << 5;
const D: u64 = 1 << 6;
const PS: u64 = 1 << 7;
const G: u64 = 1 << 8;
const NX: u64 = 1 << 63;
const L1: u64 = P | RW | A;
const UPPER: u64 = P | RW | A | D | US;

/// A built guest to corrupt.
#[derive(Clone)]
struct Built {
    params: KernelParams,
    p2m: Vec<Mfn>,
    bytes: Vec<u8>,
    vcpu: VcpuContext,
    fmt: Fmt,
}

impl Built {
    fn new(params: KernelParams, nr: u64, ramdisk: Option<usize>, mfn_base: u64) -> Self {
        let rd = ramdisk.map(ramdisk_bytes);
        let layout = build::plan(
            &params,
            &LayoutRequest {
                nr_pages: nr,
                ramdisk_len: rd.as_ref().map(|r| r.len() as u64),
            },
        )
        .unwrap();
        let p2m = scrambled_p2m(nr, mfn_base);
        let mut bytes = vec![0u8; (nr * 4096) as usize];
        let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
        let out = build::build(
            &TinyKernel(params.clone()),
            &layout,
            &cfg(rd.as_deref(), &[]),
            &mut mem,
        )
        .unwrap();
        let fmt = match params.guest_type {
            GuestType::X86_64 => Fmt {
                levels: 4,
                bytes: 8,
                bits: 9,
            },
            GuestType::X86_32Pae => Fmt {
                levels: 3,
                bytes: 8,
                bits: 9,
            },
            GuestType::X86_32 => Fmt {
                levels: 2,
                bytes: 4,
                bits: 10,
            },
        };
        Self {
            params,
            p2m,
            bytes,
            vcpu: out.vcpu,
            fmt,
        }
    }

    fn check(&mut self) -> Result<WalkReport, WalkError<pvbuild_core::mem::InMemoryError>> {
        let mut mem = InMemory::new(&mut self.bytes, &self.p2m).unwrap();
        walk(&self.params, &self.vcpu, &mut mem)
    }

    fn nr(&self) -> u64 {
        self.p2m.len() as u64
    }
    fn mfn(&self, pfn: u64) -> u64 {
        self.p2m[pfn as usize].get()
    }
    fn pfn_of(&self, mfn: u64) -> u64 {
        self.p2m.iter().position(|m| m.get() == mfn).unwrap() as u64
    }
    fn read(&self, off: usize, n: usize) -> u64 {
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(&self.bytes[off..off + n]);
        u64::from_le_bytes(v)
    }
    fn write(&mut self, off: usize, n: usize, val: u64) {
        self.bytes[off..off + n].copy_from_slice(&val.to_le_bytes()[..n]);
    }
    /// (cr3's pfn, rsi, rsp) from the vcpu context.
    fn regs(&self) -> (u64, u64, u64) {
        match &self.vcpu {
            VcpuContext::X86_64(c) => (
                self.pfn_of(c.ctrlreg[3] >> 12),
                c.user_regs.rsi,
                c.user_regs.rsp,
            ),
            VcpuContext::X86_32(c) => (
                self.pfn_of(u64::from(c.ctrlreg[3].rotate_right(12))),
                c.user_regs.esi.into(),
                c.user_regs.esp.into(),
            ),
        }
    }
    fn top(&self) -> u64 {
        self.regs().0
    }
    /// Byte offset of entry `slot` of the table at `pfn`.
    fn slot_off(&self, pfn: u64, slot: usize) -> usize {
        pfn as usize * 4096 + slot * self.fmt.bytes
    }
    /// Byte offset of the level-`level` entry (0 = L1) on the way to `vaddr`.
    fn entry_off(&self, vaddr: u64, level: usize) -> usize {
        let mut table = self.top();
        for l in (level..self.fmt.levels).rev() {
            let idx = (vaddr >> (12 + self.fmt.bits * l as u32)) & ((1 << self.fmt.bits) - 1);
            let off = self.slot_off(table, idx as usize);
            if l == level {
                return off;
            }
            let raw = self.read(off, self.fmt.bytes);
            assert!(raw & P != 0, "no table on the way to {vaddr:#x}");
            table = self.pfn_of((raw & 0x000f_ffff_ffff_f000) >> 12);
        }
        unreachable!()
    }
    fn entry(&self, vaddr: u64, level: usize) -> u64 {
        self.read(self.entry_off(vaddr, level), self.fmt.bytes)
    }
    fn set_entry(&mut self, vaddr: u64, level: usize, raw: u64) {
        let off = self.entry_off(vaddr, level);
        self.write(off, self.fmt.bytes, raw);
    }
    fn set_slot(&mut self, pfn: u64, slot: usize, raw: u64) {
        let off = self.slot_off(pfn, slot);
        self.write(off, self.fmt.bytes, raw);
    }
    /// An entry pointing at pfn's frame with `flags`.
    fn pte(&self, pfn: u64, flags: u64) -> u64 {
        (self.mfn(pfn) << 12) | flags
    }
    /// start_info as the guest finds it at rsi (64-bit guests).
    fn start_info(&self) -> StartInfoX86_64 {
        let (_, rsi, _) = self.regs();
        let pfn = (rsi - self.params.virt_base) >> 12;
        let at = pfn as usize * 4096;
        StartInfoX86_64::read_from_prefix(&self.bytes[at..at + 4096])
            .unwrap()
            .0
    }
    fn start_info_off(&self) -> usize {
        let (_, rsi, _) = self.regs();
        ((rsi - self.params.virt_base) >> 12) as usize * 4096
    }
}

const VB: u64 = 0xffff_ffff_8000_0000;

/// Debian's kernel (INIT_P2M at 0x8000000000, ramdisk by pfn) in 128 MiB.
fn debian_guest() -> Built {
    Built::new(debian(), 0x8000, Some(70_000), 0x12_3000)
}

type E = WalkError<pvbuild_core::mem::InMemoryError>;

fn fails(mut g: Built, want: E) {
    assert_eq!(g.check().unwrap_err(), want);
}

#[test]
fn x86_64_control_passes() {
    let mut g = debian_guest();
    let rep = g.check().unwrap();
    assert_eq!(rep.v_end, 0xffff_ffff_84c0_0000);
    assert_eq!(rep.bootstrap_tables, 0x29);
    assert_eq!(rep.pages_mapped, 0x4c00 + 0x40);
    assert_eq!(rep.p2m_entries, 0x8000);
}

#[test]
fn x86_64_l1_flag() {
    let mut g = debian_guest();
    let v = VB + 7 * 4096;
    let e = g.entry(v, 0);
    assert_eq!(e & 0xfff, L1);
    g.set_entry(v, 0, e | NX);
    fails(
        g,
        WalkError::Flags {
            vaddr: v,
            level: 0,
            found: L1 | NX,
            expected: L1,
        },
    );
    let mut g = debian_guest();
    let e = g.entry(v, 0);
    g.set_entry(v, 0, e & !A);
    fails(
        g,
        WalkError::Flags {
            vaddr: v,
            level: 0,
            found: P | RW,
            expected: L1,
        },
    );
}

#[test]
fn x86_64_upper_flag() {
    let mut g = debian_guest();
    let e = g.entry(VB, 1);
    assert_eq!(e & 0xfff, UPPER);
    g.set_entry(VB, 1, e | PS);
    fails(
        g,
        WalkError::Flags {
            vaddr: VB,
            level: 1,
            found: UPPER | PS,
            expected: UPPER,
        },
    );
}

#[test]
fn x86_64_writable_page_table() {
    let mut g = debian_guest();
    let pt_base = g.start_info().pt_base;
    let top = g.top();
    let e = g.entry(pt_base, 0);
    assert_eq!(e & 0xfff, L1 & !RW);
    g.set_entry(pt_base, 0, e | RW);
    fails(
        g,
        WalkError::WritableTable {
            vaddr: pt_base,
            pfn: top,
        },
    );
    // The last table (an L1 of the region) too: every table found from cr3, not a list.
    let mut g = debian_guest();
    let last = g.start_info().pt_base + (0x29 - 1) * 4096;
    let e = g.entry(last, 0);
    g.set_entry(last, 0, e | RW);
    fails(
        g,
        WalkError::WritableTable {
            vaddr: last,
            pfn: top + 0x28,
        },
    );
}

#[test]
fn x86_64_mapping_in_a_far_slot() {
    // L4 slot 300 (0xffff960000000000, a guest slot outside every mapping) -> L3 -> L2 -> L1
    // built in three free pages at the top of memory, mapping pfn 5.
    let mut g = debian_guest();
    let (top, n) = (g.top(), g.nr());
    let (l3, l2, l1) = (n - 1, n - 2, n - 3);
    let e = g.pte(l3, UPPER);
    g.set_slot(top, 300, e);
    let e = g.pte(l2, UPPER);
    g.set_slot(l3, 0, e);
    let e = g.pte(l1, UPPER);
    g.set_slot(l2, 0, e);
    let e = g.pte(5, L1);
    g.set_slot(l1, 0, e);
    fails(
        g,
        WalkError::Unexpected {
            vaddr: 0xffff_9600_0000_0000,
            pfn: 5,
        },
    );
    // An empty table hung in a far slot is a stray table.
    let mut g = debian_guest();
    let e = g.pte(n - 1, UPPER);
    g.set_slot(top, 300, e);
    fails(g, WalkError::StrayTable { pfn: n - 1 });
    // A far mapping in the lower half, below the p2m mapping.
    let mut g = debian_guest();
    let pfn_l2 = n - 2;
    let l3_of_p2m = g.entry(0x80_0000_0000, 3);
    let l3 = g.pfn_of((l3_of_p2m & 0x000f_ffff_ffff_f000) >> 12);
    let e = g.pte(pfn_l2, UPPER);
    g.set_slot(l3, 5, e);
    let e = g.pte(n - 3, UPPER);
    g.set_slot(pfn_l2, 511, e);
    let e = g.pte(9, L1);
    g.set_slot(n - 3, 0, e);
    fails(
        g,
        WalkError::Unexpected {
            vaddr: 0x80_0000_0000 + (5 << 30) + (511 << 21),
            pfn: 9,
        },
    );
}

#[test]
fn x86_64_xen_slots_stay_empty() {
    for slot in [256usize, 271] {
        let mut g = debian_guest();
        let (top, n) = (g.top(), g.nr());
        let e = g.pte(n - 1, UPPER);
        g.set_slot(top, slot, e);
        fails(
            g,
            WalkError::HypervisorArea {
                vaddr: 0xffff_0000_0000_0000 | ((slot as u64) << 39),
                level: 3,
            },
        );
    }
    // Slot 272 is the guest's: an empty table there is stray, not Xen's.
    let mut g = debian_guest();
    let (top, n) = (g.top(), g.nr());
    let e = g.pte(n - 1, UPPER);
    g.set_slot(top, 272, e);
    fails(g, WalkError::StrayTable { pfn: n - 1 });
}

#[test]
fn x86_64_junk_and_shared_entries() {
    let mut g = debian_guest();
    let top = g.top();
    g.set_slot(top, 5, RW);
    fails(
        g,
        WalkError::JunkEntry {
            table: top,
            level: 3,
            slot: 5,
            raw: RW,
        },
    );
    // L4 slot 2 reaches the L3 of slot 511 again.
    let mut g = debian_guest();
    let e = g.read(g.slot_off(top, 511), 8);
    g.set_slot(top, 2, e);
    let l3 = g.pfn_of((e & 0x000f_ffff_ffff_f000) >> 12);
    fails(g, WalkError::TableReused { pfn: l3 });
    // An entry naming a frame that is not the guest's: a pfn written where the mfn belongs.
    let mut g = debian_guest();
    let v = VB + 5 * 4096;
    g.set_entry(v, 0, (5 << 12) | L1);
    fails(
        g,
        WalkError::UnknownMfn {
            vaddr: v,
            level: 0,
            mfn: 5,
        },
    );
}

#[test]
fn x86_64_missing_or_wrong_page() {
    let mut g = debian_guest();
    let v = VB + 0x100 * 4096;
    g.set_entry(v, 0, 0);
    fails(g, WalkError::NotMapped { vaddr: v });
    // The last page of the region: the region then ends one page short of 4 MiB.
    let mut g = debian_guest();
    let (_, _, rsp) = g.regs();
    let v = 0xffff_ffff_84c0_0000 - 4096;
    g.set_entry(v, 0, 0);
    fails(g, WalkError::RegionEnd { v_end: v, rsp });
    let mut g = debian_guest();
    let v = VB + 5 * 4096;
    let e = g.pte(6, L1);
    g.set_entry(v, 0, e);
    fails(
        g,
        WalkError::WrongPage {
            vaddr: v,
            expected: 5,
            found: 6,
        },
    );
}

#[test]
fn x86_64_region_one_page_too_long() {
    // Map pfn 0x4c00 at v_end through a new L1 in the region's L2: v_end moves off 4 MiB.
    let mut g = debian_guest();
    let (_, _, rsp) = g.regs();
    let v_end = 0xffff_ffff_84c0_0000u64;
    let n = g.nr();
    let l2_off = g.entry_off(v_end, 1);
    let e = g.pte(n - 1, UPPER);
    g.write(l2_off, 8, e);
    let e = g.pte(0x4c00, L1);
    g.set_slot(n - 1, 0, e);
    fails(
        g,
        WalkError::RegionEnd {
            v_end: v_end + 4096,
            rsp,
        },
    );
}

#[test]
fn x86_64_p2m_list_and_its_mapping() {
    let mut g = debian_guest();
    let si = g.start_info();
    let p0 = si.first_p2m_pfn;
    let off = p0 as usize * 4096 + 17 * 8;
    g.bytes[off] ^= 1;
    let expected = g.mfn(17);
    fails(
        g,
        WalkError::P2mEntry {
            pfn: 17,
            found: expected ^ 1,
            expected,
        },
    );
    let mut g = debian_guest();
    let v = 0x80_0000_0000 + 3 * 4096;
    let e = g.pte(p0 + 4, L1);
    g.set_entry(v, 0, e);
    fails(
        g,
        WalkError::WrongPage {
            vaddr: v,
            expected: p0 + 3,
            found: p0 + 4,
        },
    );
    let mut g = debian_guest();
    g.set_entry(v, 0, 0);
    fails(g, WalkError::NotMapped { vaddr: v });
    // Told the kernel has no INIT_P2M note: the p2m mapping is unexplained.
    let mut g = debian_guest();
    g.params.p2m_base = None;
    fails(
        g,
        WalkError::Unexpected {
            vaddr: 0x80_0000_0000,
            pfn: p0,
        },
    );
}

#[test]
fn x86_64_start_info_fields() {
    let base = debian_guest();
    let si = base.start_info();
    let at = base.start_info_off();
    // (offset in start_info_x86_64_t, new value, field the checker names, found, expected)
    let pt = si.nr_pt_frames;
    let cases: [(usize, usize, u64, &str, u64, u64); 8] = [
        (96, 8, pt - 1, "nr_pt_frames", pt - 1, pt),
        (32, 8, 0x7fff, "nr_pages", 0x7fff, 0x8000),
        (56, 8, si.console_mfn, "store_mfn (as pfn)", 0, 0),
        (72, 8, si.store_mfn, "console_mfn (as pfn)", 0, 0),
        (
            88,
            8,
            si.pt_base + 4096,
            "pt_base",
            si.pt_base + 4096,
            si.pt_base,
        ),
        (
            104,
            8,
            si.mfn_list + 4096,
            "mfn_list",
            si.mfn_list + 4096,
            si.mfn_list,
        ),
        // SIF_VIRT_P2M_4TOOLS set: xl's guests never have it.
        (
            48,
            4,
            u64::from(si.flags | (1 << 4)),
            "flags",
            u64::from(si.flags | (1 << 4)),
            u64::from(si.flags),
        ),
        (1152, 8, si.first_p2m_pfn + 1, "first_p2m_pfn", 0, 0),
    ];
    for (off, n, val, field, found, expected) in cases {
        let mut g = base.clone();
        g.write(at + off, n, val);
        match g.check().unwrap_err() {
            WalkError::StartInfo {
                field: f,
                found: fo,
                expected: ex,
            } => {
                assert_eq!(f, field);
                if found != 0 || expected != 0 {
                    assert_eq!((fo, ex), (found, expected), "{field}");
                }
            }
            e => panic!("{field}: {e:?}"),
        }
    }
    // nr_p2m_frames, the magic and the command line's terminator.
    let mut g = base.clone();
    g.write(at + 1160, 8, si.nr_p2m_frames + 1);
    assert!(matches!(
        g.check().unwrap_err(),
        WalkError::StartInfo {
            field: "nr_p2m_frames",
            ..
        }
    ));
    let mut g = base.clone();
    g.bytes[at + 8] = b'4';
    assert!(matches!(
        g.check().unwrap_err(),
        WalkError::StartInfo { field: "magic", .. }
    ));
    let mut g = base.clone();
    g.bytes[at + 128 + 1023] = b'x';
    assert!(matches!(
        g.check().unwrap_err(),
        WalkError::StartInfo {
            field: "cmd_line",
            ..
        }
    ));
    // The module: by pfn, but inside the region.
    let mut g = base.clone();
    g.write(at + 112, 8, 0x100);
    assert!(matches!(
        g.check().unwrap_err(),
        WalkError::StartInfo {
            field: "mod_start (pfn)",
            ..
        }
    ));
}

#[test]
fn x86_64_registers() {
    let base = debian_guest();
    let (_, rsi, rsp) = base.regs();
    let with = |f: &dyn Fn(&mut pvbuild_core::vcpu::VcpuGuestContextX86_64)| {
        let mut g = base.clone();
        let VcpuContext::X86_64(c) = &mut g.vcpu else {
            unreachable!()
        };
        f(c);
        g
    };
    fails(
        with(&|c| c.user_regs.rsp += 4096),
        WalkError::Register {
            name: "rsp",
            found: rsp + 4096,
            expected: rsp,
        },
    );
    fails(
        with(&|c| c.user_regs.rip += 1),
        WalkError::Register {
            name: "rip",
            found: 0xffffffff830791c1,
            expected: 0xffffffff830791c0,
        },
    );
    // rsi one page on: the xenstore page has no magic.
    assert!(matches!(
        with(&|c| c.user_regs.rsi = rsi + 4096).check().unwrap_err(),
        WalkError::StartInfo { field: "magic", .. }
    ));
    // cr3 naming a frame the guest does not own.
    fails(
        with(&|c| c.ctrlreg[3] = 0x5000),
        WalkError::UnknownMfn {
            vaddr: 0,
            level: 4,
            mfn: 5,
        },
    );
    // cr3 at the region's L3: its L2 entries read as L3 ones, its L1 entries as L2 ones.
    let l3 = base.entry(VB, 3) & 0x000f_ffff_ffff_f000;
    assert!(matches!(
        with(&|c| c.ctrlreg[3] = l3).check().unwrap_err(),
        WalkError::Flags { level: 1, .. }
    ));
    // A 32-bit context for a 64-bit guest.
    let mut g = base.clone();
    g.vcpu = VcpuContext::X86_32(zerocopy::FromZeros::new_zeroed());
    fails(g, WalkError::ContextKind);
}

#[test]
fn x86_64_p2m_in_the_region_and_mapped_ramdisk() {
    // No INIT_P2M, ramdisk mapped: the list sits in the region before start_info.
    let mut k = debian();
    k.p2m_base = None;
    k.unmapped_initrd = false;
    let mut g = Built::new(k.clone(), 0x8000, Some(70_000), 0x12_3000);
    let rep = g.check().unwrap();
    assert_eq!(rep.tables, rep.bootstrap_tables);
    assert_eq!(rep.p2m_entries, 0x8000);
    let si = g.start_info();
    assert!(si.mfn_list > si.mod_start && si.mfn_list < g.regs().1);
    let at = g.start_info_off();
    let mut bad = g.clone();
    bad.write(at + 112, 8, si.mfn_list);
    assert!(matches!(
        bad.check().unwrap_err(),
        WalkError::StartInfo {
            field: "mod_start",
            ..
        }
    ));
    let mut bad = g.clone();
    bad.write(at + 104, 8, si.mfn_list + 0x10 * 4096);
    assert!(matches!(
        bad.check().unwrap_err(),
        WalkError::StartInfo {
            field: "mfn_list (overlaps start_info)",
            ..
        }
    ));
    // An INIT_P2M note libxenguest ignores (not below virt_base): the same build passes.
    let mut k2 = k;
    k2.p2m_base = Some(VB + (1 << 30));
    let mut g2 = Built::new(k2, 0x8000, Some(70_000), 0x12_3000);
    assert_eq!(g2.check().unwrap(), rep);
}

fn pae_guest() -> Built {
    Built::new(pae(), 0x6000, Some(70_000), 0x4_0000)
}

#[test]
fn pae_control_and_corruptions() {
    let mut g = pae_guest();
    let rep = g.check().unwrap();
    assert_eq!(rep.pages_mapped, (rep.v_end - 0xc000_0000) >> 12);
    let top = g.top();
    // L3 slot 4 does not exist in PAE paging.
    let mut g = pae_guest();
    let e = g.read(g.slot_off(top, 3), 8);
    g.set_slot(top, 4, e);
    fails(g, WalkError::OutsideAddressSpace { slot: 4 });
    // An L2 entry at 0xf6000000, above HV_START_LOW (0xf5800000): Xen's.
    let mut g = pae_guest();
    let n = g.nr();
    let e = g.pte(n - 1, UPPER);
    g.set_entry(0xf600_0000, 1, e);
    fails(
        g,
        WalkError::HypervisorArea {
            vaddr: 0xf600_0000,
            level: 1,
        },
    );
    // Below it, an empty table is only stray.
    let mut g = pae_guest();
    let e = g.pte(n - 1, UPPER);
    g.set_entry(0xf540_0000, 1, e);
    fails(g, WalkError::StrayTable { pfn: n - 1 });
    // A global L1 entry.
    let mut g = pae_guest();
    let v = 0xc000_0000 + 3 * 4096;
    let e = g.entry(v, 0);
    g.set_entry(v, 0, e | G);
    fails(
        g,
        WalkError::Flags {
            vaddr: v,
            level: 0,
            found: L1 | G,
            expected: L1,
        },
    );
    // start_info_x86_32_t.nr_pt_frames (offset 64).
    let mut g = pae_guest();
    let at = g.start_info_off();
    let nr_pt = g.read(at + 64, 4);
    g.write(at + 64, 4, nr_pt + 1);
    fails(
        g,
        WalkError::StartInfo {
            field: "nr_pt_frames",
            found: nr_pt + 1,
            expected: nr_pt,
        },
    );
    // A p2m entry (32-bit entries).
    let mut g = pae_guest();
    let list = g.read(at + 68, 4);
    let off = ((list - 0xc000_0000) >> 12) as usize * 4096 + 4 * 9;
    g.bytes[off] ^= 2;
    let expected = g.mfn(9);
    fails(
        g,
        WalkError::P2mEntry {
            pfn: 9,
            found: expected ^ 2,
            expected,
        },
    );
}

#[test]
fn two_level_control_and_corruptions() {
    let guest = || Built::new(two_level(), 0x3000, None, 0x4_0000);
    let mut g = guest();
    g.check().unwrap();
    // L2 slot 0x3f0 maps 0xfc000000, Xen's part of a 2-level guest's space.
    let mut g = guest();
    let (top, n) = (g.top(), g.nr());
    let e = g.pte(n - 1, UPPER);
    g.set_slot(top, 0x3f0, e);
    fails(
        g,
        WalkError::HypervisorArea {
            vaddr: 0xfc00_0000,
            level: 1,
        },
    );
    // The top table (4-byte entries) mapped writable.
    let mut g = guest();
    let pt_base = 0xc000_0000 + top * 4096;
    let e = g.entry(pt_base, 0);
    assert_eq!(e & 0xfff, L1 & !RW);
    g.set_entry(pt_base, 0, e | RW);
    fails(
        g,
        WalkError::WritableTable {
            vaddr: pt_base,
            pfn: top,
        },
    );
}

#[test]
fn pae_below_3gib_keeps_libxenguest_s_extra_l2() {
    // count_pgtables: a PAE mapping ending below 0xc0000000 gets its L2 range stretched to
    // the top of the address space ("PAE: extra l2 page table for l3#3"): here L2s for L3
    // slots 1 (the region), 2 and 3 (both empty).
    let mut k = pae();
    k.virt_base = 0x4000_0000;
    k.virt_kstart = 0x4100_0000;
    k.virt_kend = 0x4180_0000;
    k.virt_entry = 0x4100_1000;
    k.virt_hypercall = Some(0x4100_2000);
    let mut g = Built::new(k, 0x6000, None, 0x4_0000);
    let rep = g.check().unwrap();
    let l1s = (rep.v_end - 0x4000_0000) / (2 << 20);
    assert_eq!(rep.bootstrap_tables, 1 + 3 + l1s);
    let l3_slot3 = g.read(g.slot_off(g.top(), 3), 8);
    assert_eq!(l3_slot3 & 0xfff, UPPER);
    let l2 = g.pfn_of((l3_slot3 & 0x000f_ffff_ffff_f000) >> 12);
    assert!(g.bytes[l2 as usize * 4096..][..4096]
        .iter()
        .all(|&b| b == 0));
    // The same L2 made to map a page at 0xc0000000: unexplained.
    let e = g.pte(3, L1);
    let n = g.nr();
    let l1 = n - 1;
    let t = g.pte(l1, UPPER);
    g.set_slot(l2, 0, t);
    g.set_slot(l1, 0, e);
    fails(
        g,
        WalkError::Unexpected {
            vaddr: 0xc000_0000,
            pfn: 3,
        },
    );
}

/// The fuzz targets' oracle over a sweep of kernels the layout accepts: every build that
/// succeeds passes the checker. Varies the INIT_P2M note (usable, absent, at or above
/// virt_base, unaligned, right below virt_base where its tables share the region's), the
/// ramdisk (none, small, 3 MiB; by pfn or mapped), the memory and an unaligned virt_base.
#[test]
fn every_build_of_a_sweep_passes_the_checker() {
    let mut built = 0;
    let mut shared_tables = 0;
    for (vb, kstart) in [
        (0xffff_ffff_8000_0000u64, 0xffff_ffff_8100_0000u64),
        (0xffff_ffff_8010_0000, 0xffff_ffff_8020_0000),
    ] {
        for p2m in [
            Some(0x80_0000_0000u64),
            None,
            Some(vb),
            Some(0x80_0000_0008),
            Some(vb - (1 << 20)),
        ] {
            for unmapped in [true, false] {
                for rd in [None, Some(70_000usize), Some(3 << 20)] {
                    for nr in [0x1000u64, 0x6000] {
                        let mut k = debian();
                        k.virt_base = vb;
                        k.virt_kstart = kstart;
                        k.virt_kend = kstart + (2 << 20);
                        k.virt_entry = kstart + 0x1000;
                        k.p2m_base = p2m;
                        k.unmapped_initrd = unmapped;
                        let req = LayoutRequest {
                            nr_pages: nr,
                            ramdisk_len: rd.map(|r| r as u64),
                        };
                        if build::plan(&k, &req).is_err() {
                            continue;
                        }
                        let mut g = Built::new(k.clone(), nr, rd, 0x5_5000);
                        let rep = g.check().unwrap_or_else(|e| {
                            panic!("{e}: {vb:#x} {p2m:x?} {unmapped} {rd:?} {nr:#x}")
                        });
                        assert_eq!(rep.p2m_entries, nr);
                        if p2m == Some(vb - (1 << 20)) && rep.tables == rep.bootstrap_tables {
                            shared_tables += 1;
                        }
                        built += 1;
                    }
                }
            }
        }
    }
    for (params, nr) in [(pae(), 0x3000u64), (pae(), 0x6000), (two_level(), 0x3000)] {
        let mut g = Built::new(params, nr, None, 0x4_0000);
        g.check().unwrap();
        built += 1;
    }
    assert!(built >= 90, "{built} builds");
    assert!(shared_tables > 0);
}

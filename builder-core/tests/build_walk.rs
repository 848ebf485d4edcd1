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
use pvbuild_core::walker::{self, WalkError};
use zerocopy::FromBytes;

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

    let rep = walker::check(&layout, &mut mem).unwrap();
    assert_eq!(rep.pages_checked, 0x4c00 + 0x80);
    assert_eq!(rep.readonly_pages, 0x29);
    assert_eq!(rep.p2m_entries, nr);

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
fn walker_catches_corruption() {
    let params = debian();
    let nr = 0x8000;
    let layout = build::plan(
        &params,
        &LayoutRequest {
            nr_pages: nr,
            ramdisk_len: None,
        },
    )
    .unwrap();
    let p2m = scrambled_p2m(nr, 0x123000);
    let fresh = || {
        let mut bytes = vec![0u8; (nr * 4096) as usize];
        let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
        build::build(
            &TinyKernel(params.clone()),
            &layout,
            &cfg(None, &[]),
            &mut mem,
        )
        .unwrap();
        bytes
    };
    let l1_first = layout.maps[0].lvls[0].pfn;
    let pt_pfn = layout.pgtables.pfn;
    // The L1 entry mapping the first page-table frame: make it writable.
    let idx = ((layout.virt_base + pt_pfn * 4096
        - (layout.maps[0].lvls[0].from | 0xffff_0000_0000_0000))
        >> 12) as usize;
    let mut bytes = fresh();
    let off = (l1_first * 4096) as usize + idx * 8;
    bytes[off] |= 2;
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let e = walker::check(&layout, &mut mem).unwrap_err();
    assert!(matches!(e, WalkError::Flags { level: 0, .. }), "{e:?}");

    // A pfn written where the mfn belongs.
    let mut bytes = fresh();
    let off = (l1_first * 4096) as usize + 8 * 5;
    let raw = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
    let pfn_entry = (5u64 << 12) | (raw & 0xfff);
    bytes[off..off + 8].copy_from_slice(&pfn_entry.to_le_bytes());
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let e = walker::check(&layout, &mut mem).unwrap_err();
    assert!(
        matches!(
            e,
            WalkError::UnknownMfn { .. } | WalkError::WrongPage { .. }
        ),
        "{e:?}"
    );

    // A wrong p2m entry.
    let mut bytes = fresh();
    let off = (layout.p2m.pfn * 4096) as usize + 8 * 17;
    bytes[off] ^= 1;
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let e = walker::check(&layout, &mut mem).unwrap_err();
    assert!(matches!(e, WalkError::P2mEntry { pfn: 17, .. }), "{e:?}");

    // A start_info field.
    let mut bytes = fresh();
    let off = (layout.start_info_pfn * 4096) as usize + 96; // nr_pt_frames
    bytes[off] ^= 1;
    let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
    let e = walker::check(&layout, &mut mem).unwrap_err();
    assert!(
        matches!(
            e,
            WalkError::StartInfo {
                field: "nr_pt_frames",
                ..
            }
        ),
        "{e:?}"
    );

    // An extra mapping right after v_end.
    let mut bytes = fresh();
    let last_l1 = l1_first + layout.maps[0].lvls[0].pgtables - 1;
    let slot = ((layout.virt_pgtab_end >> 12) & 511) as usize;
    if slot != 0 {
        let off = (last_l1 * 4096) as usize + slot * 8;
        let e = (p2m[3].get() << 12) | 0x23;
        bytes[off..off + 8].copy_from_slice(&e.to_le_bytes());
        let mut mem = InMemory::new(&mut bytes, &p2m).unwrap();
        assert!(walker::check(&layout, &mut mem).is_err());
    }
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
    let rep = walker::check(&layout, &mut mem).unwrap();
    assert_eq!(rep.p2m_entries, nr);
    assert_eq!(rep.readonly_pages, layout.nr_pt_frames());
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
    let out = build::build(&TinyKernel(params), &layout, &cfg(None, &[]), &mut mem).unwrap();
    assert_eq!(out.pin_cmd, 1);
    let rep = walker::check(&layout, &mut mem).unwrap();
    assert_eq!(
        rep.pages_checked,
        (layout.virt_pgtab_end - layout.virt_base) >> 12
    );
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

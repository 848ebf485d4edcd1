//! `start_info` (what a PV kernel finds at `%rsi` when it starts) and `shared_info` (the page
//! Xen shares with it), in the 64-bit and 32-bit layouts of xen/include/public/xen.h
//! (`struct start_info`, `struct shared_info`; see also `xen/foreign/x86_{32,64}.h`).
//!
//! [`fill_start_info`] fills the page as `start_info_x86_64` / `start_info_x86_32` do;
//! [`shared_info_page`] is `shared_info_x86_64` / `_x86_32`: all zero except every legacy
//! vcpu's `evtchn_upcall_mask`, so no event is delivered before the kernel is ready.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::addr::{Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};
use crate::image::GuestType;
use crate::layout::Layout;
use crate::limits::MAX_GUEST_CMDLINE;
use crate::mem::GuestMemory;

/// `XEN_LEGACY_MAX_VCPUS`: vcpus with a `vcpu_info` slot in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;

/// `struct start_info` of a 64-bit guest.
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StartInfoX86_64 {
    /// "xen-3.0-x86_64", NUL terminated.
    pub magic: [u8; 32],
    /// Total pages of the domain.
    pub nr_pages: u64,
    /// Machine address of shared_info.
    pub shared_info: u64,
    /// `SIF_*`.
    pub flags: u32,
    /// Padding.
    pub _pad0: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u64,
    /// Xenstore event channel.
    pub store_evtchn: u32,
    /// Padding.
    pub _pad1: u32,
    /// Machine frame of the console ring (`console.domU.mfn`).
    pub console_mfn: u64,
    /// Console event channel (`console.domU.evtchn`).
    pub console_evtchn: u32,
    /// Padding.
    pub _pad2: u32,
    /// Virtual address of the top page table.
    pub pt_base: u64,
    /// Number of page-table frames of the initial mapping.
    pub nr_pt_frames: u64,
    /// Virtual address of the p2m list.
    pub mfn_list: u64,
    /// Module start (virtual address, or pfn with `SIF_MOD_START_PFN`).
    pub mod_start: u64,
    /// Module length in bytes.
    pub mod_len: u64,
    /// Command line, NUL terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First pfn of the separately mapped p2m (INIT_P2M), else 0.
    pub first_p2m_pfn: u64,
    /// Frames of the separately mapped p2m, with its page tables.
    pub nr_p2m_frames: u64,
}
const _: () = assert!(core::mem::size_of::<StartInfoX86_64>() == 1168);

/// `struct start_info` of a 32-bit guest.
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StartInfoX86_32 {
    /// "xen-3.0-x86_32p" (or "xen-3.0-x86_32"), NUL terminated.
    pub magic: [u8; 32],
    /// Total pages of the domain.
    pub nr_pages: u32,
    /// Machine address of shared_info.
    pub shared_info: u32,
    /// `SIF_*`.
    pub flags: u32,
    /// Machine frame of the xenstore ring.
    pub store_mfn: u32,
    /// Xenstore event channel.
    pub store_evtchn: u32,
    /// Machine frame of the console ring.
    pub console_mfn: u32,
    /// Console event channel.
    pub console_evtchn: u32,
    /// Virtual address of the top page table.
    pub pt_base: u32,
    /// Number of page-table frames.
    pub nr_pt_frames: u32,
    /// Virtual address of the p2m list.
    pub mfn_list: u32,
    /// Module start.
    pub mod_start: u32,
    /// Module length.
    pub mod_len: u32,
    /// Command line, NUL terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First pfn of a separately mapped p2m (never set for 32-bit guests).
    pub first_p2m_pfn: u32,
    /// Frames of a separately mapped p2m.
    pub nr_p2m_frames: u32,
}
const _: () = assert!(core::mem::size_of::<StartInfoX86_32>() == 1112);

/// `struct vcpu_info` (64 bytes in both layouts); only the mask is ever set by a builder.
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuInfo {
    /// `evtchn_upcall_pending`
    pub evtchn_upcall_pending: u8,
    /// `evtchn_upcall_mask`
    pub evtchn_upcall_mask: u8,
    /// The rest: `evtchn_pending_sel`, `arch_vcpu_info`, `vcpu_time_info`.
    pub rest: [u8; 62],
}
const _: () = assert!(core::mem::size_of::<VcpuInfo>() == 64);

/// The whole shared_info page (`struct shared_info` is 3136 bytes for 64-bit guests and
/// 2344 for 32-bit ones; both begin with the vcpu_info array, the rest of the page is 0).
#[derive(Debug, Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SharedInfoPage {
    /// `vcpu_info[XEN_LEGACY_MAX_VCPUS]`
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// Event-channel bitmaps, wallclock and `arch_shared_info`, then the page's tail.
    pub rest: [u8; PAGE_SIZE as usize - 64 * XEN_LEGACY_MAX_VCPUS],
}
const _: () = assert!(core::mem::size_of::<SharedInfoPage>() == PAGE_SIZE as usize);

/// The shared_info page as the builder initialises it.
pub fn shared_info_page() -> SharedInfoPage {
    let mut page = SharedInfoPage::new_zeroed();
    for v in page.vcpu_info.iter_mut() {
        v.evtchn_upcall_mask = 1;
    }
    page
}

/// What start_info needs besides the layout.
#[derive(Debug, Clone, Copy)]
pub struct StartInfoInput<'a> {
    /// Machine frame of shared_info (from the domain's info).
    pub shared_info_mfn: Mfn,
    /// Xenstore event channel.
    pub store_evtchn: u32,
    /// Console event channel.
    pub console_evtchn: u32,
    /// The command line (truncated to 1023 bytes plus NUL, as `strncpy` + terminator).
    pub cmdline: &'a [u8],
}

/// Errors filling start_info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartInfoError<E> {
    /// The memory backend failed.
    Memory(E),
    /// A value does not fit a 32-bit guest's field.
    FieldTooLarge(&'static str, u64),
    /// Inconsistent layout.
    Overflow,
}

fn copy_cmdline(dst: &mut [u8; MAX_GUEST_CMDLINE], src: &[u8]) {
    // strncpy stops at the first NUL; the last byte is always NUL.
    let len = src
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(src.len())
        .min(MAX_GUEST_CMDLINE - 1);
    if let (Some(d), Some(s)) = (dst.get_mut(..len), src.get(..len)) {
        d.copy_from_slice(s);
    }
}

fn magic(guest: GuestType) -> [u8; 32] {
    let mut m = [0u8; 32];
    let name = guest.xen_caps_name().as_bytes();
    let n = name.len().min(31);
    if let (Some(d), Some(s)) = (m.get_mut(..n), name.get(..n)) {
        d.copy_from_slice(s);
    }
    m
}

/// Fill the start_info page of `layout` in guest memory.
pub fn fill_start_info<M: GuestMemory>(
    layout: &Layout,
    input: &StartInfoInput<'_>,
    mem: &mut M,
) -> Result<(), StartInfoError<M::Error>> {
    let pfn = |p: u64| Pfn::new(p).map_err(|_| StartInfoError::Overflow);
    let store_mfn = mem
        .mfn(pfn(layout.xenstore_pfn)?)
        .map_err(StartInfoError::Memory)?
        .get();
    let console_mfn = mem
        .mfn(pfn(layout.console_pfn)?)
        .map_err(StartInfoError::Memory)?
        .get();
    let shared_info = input
        .shared_info_mfn
        .get()
        .checked_shl(PAGE_SHIFT)
        .ok_or(StartInfoError::Overflow)?;
    let (first_p2m_pfn, nr_p2m_frames) = layout.p2m_frames();
    let page = mem
        .pages_mut(pfn(layout.start_info_pfn)?, 1)
        .map_err(StartInfoError::Memory)?;
    match layout.guest_type {
        GuestType::X86_64 => {
            let mut si = StartInfoX86_64::new_zeroed();
            si.magic = magic(layout.guest_type);
            si.nr_pages = layout.nr_pages;
            si.shared_info = shared_info;
            si.flags = layout.flags;
            si.store_mfn = store_mfn;
            si.store_evtchn = input.store_evtchn;
            si.console_mfn = console_mfn;
            si.console_evtchn = input.console_evtchn;
            si.pt_base = layout.pgtables.vstart;
            si.nr_pt_frames = layout.nr_pt_frames();
            si.mfn_list = layout.p2m_vaddr;
            si.first_p2m_pfn = first_p2m_pfn;
            si.nr_p2m_frames = nr_p2m_frames;
            si.mod_start = layout.mod_start;
            si.mod_len = layout.mod_len;
            copy_cmdline(&mut si.cmd_line, input.cmdline);
            si.write_to_prefix(page)
                .map_err(|_| StartInfoError::Overflow)?;
        }
        GuestType::X86_32Pae | GuestType::X86_32 => {
            let w = |name: &'static str, v: u64| {
                u32::try_from(v).map_err(|_| StartInfoError::FieldTooLarge(name, v))
            };
            let mut si = StartInfoX86_32::new_zeroed();
            si.magic = magic(layout.guest_type);
            si.nr_pages = w("nr_pages", layout.nr_pages)?;
            si.shared_info = w("shared_info", shared_info)?;
            si.flags = layout.flags;
            si.store_mfn = w("store_mfn", store_mfn)?;
            si.store_evtchn = input.store_evtchn;
            si.console_mfn = w("console_mfn", console_mfn)?;
            si.console_evtchn = input.console_evtchn;
            si.pt_base = w("pt_base", layout.pgtables.vstart)?;
            si.nr_pt_frames = w("nr_pt_frames", layout.nr_pt_frames())?;
            si.mfn_list = w("mfn_list", layout.p2m_vaddr)?;
            si.mod_start = w("mod_start", layout.mod_start)?;
            si.mod_len = w("mod_len", layout.mod_len)?;
            copy_cmdline(&mut si.cmd_line, input.cmdline);
            si.write_to_prefix(page)
                .map_err(|_| StartInfoError::Overflow)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    #[test]
    fn shared_info_masks_every_legacy_vcpu() {
        let p = shared_info_page();
        let b = p.as_bytes();
        for i in 0..XEN_LEGACY_MAX_VCPUS {
            assert_eq!(b[i * 64 + 1], 1);
            assert_eq!(b[i * 64], 0);
        }
        assert_eq!(b.iter().map(|&x| u32::from(x)).sum::<u32>(), 32);
    }

    #[test]
    fn cmdline_is_bounded_and_terminated() {
        let mut d = [0xffu8; MAX_GUEST_CMDLINE];
        d.fill(0);
        copy_cmdline(&mut d, &[b'a'; 5000]);
        assert_eq!(d[MAX_GUEST_CMDLINE - 2], b'a');
        assert_eq!(d[MAX_GUEST_CMDLINE - 1], 0);
        let mut d = [0u8; MAX_GUEST_CMDLINE];
        copy_cmdline(&mut d, b"ab\0cd");
        assert_eq!(&d[..4], b"ab\0\0");
    }

    #[test]
    fn magic_names_guest() {
        assert_eq!(&magic(GuestType::X86_64)[..15], b"xen-3.0-x86_64\0");
        assert_eq!(&magic(GuestType::X86_32Pae)[..16], b"xen-3.0-x86_32p\0");
    }
}

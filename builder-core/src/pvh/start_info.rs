//! `struct hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h, version 1): what a
//! PVH kernel finds at `%ebx` when it starts, and the segment that holds it.
//!
//! libxenguest's `bootlate_hvm` fills the "HVM start info" segment as: the struct, then the
//! command line (`cmdline_size` bytes), then [`MODULE_MAX_COUNT`] module entries, then their
//! command lines ([`MAX_GUEST_CMDLINE`] bytes each), then the memory map; every address in
//! it is guest-physical. [`fill`] writes that layout into the segment's bytes.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::limits::MAX_GUEST_CMDLINE;

use super::layout::{PvhLayout, MODULE_MAX_COUNT};

/// `XEN_HVM_START_MAGIC_VALUE`
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `struct hvm_start_info`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// 1: the memory map fields are valid.
    pub version: u32,
    /// `SIF_*` (none for a domU).
    pub flags: u32,
    /// Entries of the module list.
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the command line.
    pub cmdline_paddr: u64,
    /// Physical address of the RSDP.
    pub rsdp_paddr: u64,
    /// Physical address of the memory map.
    pub memmap_paddr: u64,
    /// Entries of the memory map.
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<HvmStartInfo>() == 56);

/// `struct hvm_modlist_entry`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Physical address of its command line (0: none).
    pub cmdline_paddr: u64,
    /// Must be zero.
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<HvmModlistEntry>() == 32);

/// `struct hvm_memmap_table_entry`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HvmMemmapEntry {
    /// Base address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*` (the e820 type numbers).
    pub r#type: u32,
    /// Must be zero.
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<HvmMemmapEntry>() == 24);

/// Why the start info cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartInfoError {
    /// The segment's bytes are fewer than the layout needs.
    SegmentTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The command line does not fit its slot.
    CmdlineTooLong(usize),
    /// More modules than the segment has entries for.
    TooManyModules(usize),
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SegmentTooSmall { need, have } => write!(
                f,
                "the start info segment has {have} bytes, {need} are needed"
            ),
            Self::CmdlineTooLong(n) => write!(f, "command line of {n} bytes does not fit"),
            Self::TooManyModules(n) => write!(f, "{n} modules do not fit the start info"),
        }
    }
}

/// One module of the start info's list: where it is, how long, and its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartModule<'a> {
    /// Guest-physical address.
    pub paddr: u64,
    /// Length in bytes.
    pub size: u64,
    /// Its command line (`add_module_to_list`'s `cmdline`), if any.
    pub cmdline: Option<&'a [u8]>,
}

/// Writes the start info segment `seg` (the segment's bytes, zero-filled) for `layout` with
/// `cmdline`, the RSDP at `rsdp_paddr` and the memory map `memmap`, as `bootlate_hvm` does
/// for a guest without a device model.
pub fn fill(
    seg: &mut [u8],
    layout: &PvhLayout,
    cmdline: Option<&[u8]>,
    rsdp_paddr: u64,
    memmap: &[HvmMemmapEntry],
) -> Result<HvmStartInfo, StartInfoError> {
    // add_module_to_list: a module of length 0 is skipped; the ramdisk has no command line.
    let module = layout.module.and_then(|m| {
        let size = m.vend - m.vstart;
        (size != 0).then_some(StartModule {
            paddr: m.vstart,
            size,
            cmdline: None,
        })
    });
    write(
        seg,
        layout.start_info.pfn << crate::addr::PAGE_SHIFT,
        layout.cmdline_size,
        cmdline,
        rsdp_paddr,
        module.as_slice(),
        memmap,
    )
}

/// Writes a start info segment `seg` at guest-physical `base` as `bootlate_hvm` lays it out:
/// the struct, `cmdline` in a slot of `cmdline_size` bytes (0 for a guest with a device
/// model, which gets none), [`MODULE_MAX_COUNT`] module entries (`modules` filled in), their
/// command lines, then `memmap`.
pub fn write(
    seg: &mut [u8],
    base: u64,
    cmdline_size: u64,
    cmdline: Option<&[u8]>,
    rsdp_paddr: u64,
    modules: &[StartModule<'_>],
    memmap: &[HvmMemmapEntry],
) -> Result<HvmStartInfo, StartInfoError> {
    let si_len = core::mem::size_of::<HvmStartInfo>();
    let cmd_len = usize::try_from(cmdline_size).unwrap_or(usize::MAX);
    let modlist_off = si_len.saturating_add(cmd_len);
    let mod_entries = MODULE_MAX_COUNT as usize;
    let entry_len = core::mem::size_of::<HvmModlistEntry>();
    let cmdlines_off = modlist_off.saturating_add(mod_entries * entry_len);
    let modsize = mod_entries * (entry_len + MAX_GUEST_CMDLINE);
    let memmap_off = modlist_off.saturating_add(modsize);
    let need = memmap_off.saturating_add(core::mem::size_of_val(memmap));
    if seg.len() < need {
        return Err(StartInfoError::SegmentTooSmall {
            need,
            have: seg.len(),
        });
    }
    if modules.len() > mod_entries {
        return Err(StartInfoError::TooManyModules(modules.len()));
    }
    let mut si = HvmStartInfo::default();
    if let Some(c) = cmdline {
        // strncpy(cmdline, dom->cmdline, cmdline_size): the slot is at least len + 1.
        if c.len() >= cmd_len {
            return Err(StartInfoError::CmdlineTooLong(c.len()));
        }
        if let Some(dst) = seg.get_mut(si_len..si_len + c.len()) {
            dst.copy_from_slice(c);
        }
        si.cmdline_paddr = base + si_len as u64;
    }
    si.rsdp_paddr = rsdp_paddr;
    for (i, m) in modules.iter().enumerate() {
        let mut e = HvmModlistEntry {
            paddr: m.paddr,
            size: m.size,
            cmdline_paddr: 0,
            reserved: 0,
        };
        if let Some(c) = m.cmdline {
            if c.len() >= MAX_GUEST_CMDLINE {
                return Err(StartInfoError::CmdlineTooLong(c.len()));
            }
            let off = cmdlines_off + i * MAX_GUEST_CMDLINE;
            if let Some(dst) = seg.get_mut(off..off + c.len()) {
                dst.copy_from_slice(c);
            }
            e.cmdline_paddr = base + off as u64;
        }
        let off = modlist_off + i * entry_len;
        if let Some(dst) = seg.get_mut(off..off + entry_len) {
            dst.copy_from_slice(e.as_bytes());
        }
        si.nr_modules += 1;
    }
    if si.nr_modules != 0 {
        si.modlist_paddr = base + modlist_off as u64;
    }
    si.memmap_paddr = base + memmap_off as u64;
    si.memmap_entries = memmap.len() as u32;
    for (i, e) in memmap.iter().enumerate() {
        let off = memmap_off + i * 24;
        if let Some(dst) = seg.get_mut(off..off + 24) {
            dst.copy_from_slice(e.as_bytes());
        }
    }
    si.magic = XEN_HVM_START_MAGIC_VALUE;
    si.version = 1;
    if let Some(dst) = seg.get_mut(..si_len) {
        dst.copy_from_slice(si.as_bytes());
    }
    Ok(si)
}

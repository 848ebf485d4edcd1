//! HVM guests (`type = "hvm"`): an HVM container with every emulated device, started in
//! firmware (hvmloader, which loads SeaBIOS) with a device model (QEMU) beside it. The
//! container is PVH's ([`crate::pvh`]): the same special pages, populate, start info and
//! boot vcpu; what differs is libxl's `libxl__build_hvm` with `device_model` set and
//! libxenguest's HVM loader (xg_dom_hvmloader.c, `meminit_hvm`, `alloc_magic_pages_hvm`,
//! `bootlate_hvm`):
//!
//! - the hole below 4 GiB is the device model's MMIO window (256 MiB from 0xf0000000), and
//!   pfns 0xa0..0xc0 (the VGA hole) are not RAM;
//! - the "kernel" is hvmloader ([`firmware`]), loaded at its physical addresses; SeaBIOS is
//!   the "System Firmware module", the start info's only module, with command line
//!   `firmware`; there is no command line, no RSDP (hvmloader builds the ACPI tables);
//! - the memory map starts at 1 MiB;
//! - eight ioreq server pages below the special pages, and `struct hvm_info_table`
//!   ([`info`]) in pfn 0x9f.

pub mod firmware;
pub mod info;

use crate::addr::PAGE_SHIFT;
use crate::pvh::layout::{
    cmdline_size, start_info_size, Alloc, Memory, PvhLayoutError, Seg, E820_RAM, GIB4,
    HVM_BELOW_4G_MMIO_START, SPECIAL_FIRST_PFN,
};
use crate::pvh::start_info::{self, HvmMemmapEntry, HvmStartInfo, StartInfoError, StartModule};

use firmware::{Firmware, FirmwareError};
use info::HvmInfoTable;

/// `NR_IOREQ_SERVER_PAGES` (xg_dom_x86.c): pages for ioreq servers below the special pages.
pub const NR_IOREQ_SERVER_PAGES: u64 = 8;
/// `ioreq_server_pfn(0)`: the first of them.
pub const IOREQ_SERVER_FIRST_PFN: u64 = SPECIAL_FIRST_PFN - NR_IOREQ_SERVER_PAGES;
/// libxl's `GUEST_LOW_MEM_START_DEFAULT`: where the memory map's low RAM starts for a
/// guest with a device model.
pub const GUEST_LOW_MEM_START: u64 = 0x10_0000;
/// The system firmware module's command line (`bootlate_hvm`).
pub const FIRMWARE_MODULE_CMDLINE: &[u8] = b"firmware";
/// At most this many memory-map entries (low RAM, high RAM).
pub const MAX_E820: usize = 2;

/// What an HVM guest is built from, besides hvmloader.
#[derive(Debug, Clone, Copy)]
pub struct HvmRequest {
    /// The guest's RAM in MiB: libxl's `max_memkb - video_memkb`.
    pub memory_mib: u64,
    /// vcpus the domain has (`maxvcpus`).
    pub max_vcpus: u32,
    /// vcpus online at boot (`vcpus`).
    pub vcpus: u32,
    /// `apic`: whether hvmloader builds APIC tables.
    pub apic: bool,
    /// Bytes of the system firmware (SeaBIOS).
    pub bios_len: u64,
}

/// Why an HVM guest cannot be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HvmError {
    /// The memory or a segment.
    Layout(PvhLayoutError),
    /// hvmloader.
    Firmware(FirmwareError),
    /// The system firmware is empty (`libxl__load_hvm_firmware_module`).
    EmptyBios,
    /// More vcpus than hvm_info can describe.
    TooManyVcpus(u32),
}

impl core::fmt::Display for HvmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Layout(e) => e.fmt(f),
            Self::Firmware(e) => write!(f, "hvmloader: {e}"),
            Self::EmptyBios => f.write_str("the system firmware (BIOS) file is empty"),
            Self::TooManyVcpus(n) => write!(
                f,
                "{n} vcpus: an HVM guest has at most {}",
                info::HVM_MAX_VCPUS
            ),
        }
    }
}

impl From<PvhLayoutError> for HvmError {
    fn from(e: PvhLayoutError) -> Self {
        Self::Layout(e)
    }
}

/// The memory map (`domain_construct_memmap` with a device model).
pub type MemoryMap = heapless::Vec<HvmMemmapEntry, MAX_E820>;

/// A planned HVM guest.
#[derive(Debug, Clone)]
pub struct HvmPlan {
    /// The RAM split.
    pub memory: Memory,
    /// hvmloader's entry point.
    pub entry: u32,
    /// hvmloader ("kernel").
    pub firmware: Seg,
    /// SeaBIOS ("System Firmware module").
    pub bios: Seg,
    /// The start info segment.
    pub start_info: Seg,
    /// The allocator's end after the start info.
    pub virt_alloc_end: u64,
    /// The memory map.
    pub memmap: MemoryMap,
    /// The hvm_info table.
    pub info: HvmInfoTable,
}

/// The memory map: RAM from 1 MiB to the hole, RAM above 4 GiB.
pub fn memory_map(mem: &Memory) -> MemoryMap {
    let mut m = MemoryMap::new();
    let e = |addr, size| HvmMemmapEntry {
        addr,
        size,
        r#type: E820_RAM,
        reserved: 0,
    };
    let _ = m.push(e(
        GUEST_LOW_MEM_START,
        mem.lowmem_end().saturating_sub(GUEST_LOW_MEM_START),
    ));
    if mem.highmem_end() > GIB4 {
        let _ = m.push(e(GIB4, mem.highmem_end() - GIB4));
    }
    m
}

/// Plans an HVM guest as `libxl__build_hvm` and libxenguest lay it out.
pub fn plan(fw: &Firmware<'_>, req: &HvmRequest) -> Result<HvmPlan, HvmError> {
    if req.bios_len == 0 {
        return Err(HvmError::EmptyBios);
    }
    if req.max_vcpus > info::HVM_MAX_VCPUS {
        return Err(HvmError::TooManyVcpus(req.max_vcpus));
    }
    let memory = Memory::split(req.memory_mib, HVM_BELOW_4G_MMIO_START, true)?;
    if memory.lowmem_end() <= GUEST_LOW_MEM_START {
        return Err(PvhLayoutError::NoMemory.into());
    }
    let memmap = memory_map(&memory);
    let mut a = Alloc {
        total_pages: memory.total_pages(),
        end: 0,
    };
    let firmware = a.segment("kernel", fw.pstart(), fw.pend() - fw.pstart())?;
    let bios = a.segment("System Firmware module", 0, req.bios_len)?;
    let start_info = a.segment(
        "HVM start info",
        0,
        start_info_size(memmap.len() as u64, cmdline_size(None)),
    )?;
    for s in [&firmware, &bios, &start_info] {
        let end = s.pfn.checked_add(s.pages).ok_or(PvhLayoutError::Overflow)? << PAGE_SHIFT;
        if end > memory.lowmem_end() {
            return Err(PvhLayoutError::IntoHole { name: s.name, end }.into());
        }
    }
    let pgend = |b: u64| u32::try_from(b >> PAGE_SHIFT).map_err(|_| PvhLayoutError::Overflow);
    let info = info::table(
        req.apic,
        req.max_vcpus,
        req.vcpus,
        pgend(memory.lowmem_end())?,
        pgend(memory.highmem_end())?,
        pgend(IOREQ_SERVER_FIRST_PFN << PAGE_SHIFT)?,
    );
    Ok(HvmPlan {
        memory,
        entry: fw.entry(),
        firmware,
        bios,
        virt_alloc_end: a.end,
        start_info,
        memmap,
        info,
    })
}

/// Writes the start info segment's bytes (`bootlate_hvm` with a device model): the system
/// firmware as the one module, the memory map, no command line.
pub fn start_info(seg: &mut [u8], plan: &HvmPlan) -> Result<HvmStartInfo, StartInfoError> {
    let bios = StartModule {
        paddr: plan.bios.vstart,
        size: plan.bios.vend - plan.bios.vstart,
        cmdline: Some(FIRMWARE_MODULE_CMDLINE),
    };
    start_info::write(
        seg,
        plan.start_info.pfn << PAGE_SHIFT,
        0,
        None,
        0,
        &[bios],
        &plan.memmap,
    )
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pvh::layout::populate;

    #[test]
    fn device_model_hole_and_vga_hole() {
        let m = Memory::split(256, HVM_BELOW_4G_MMIO_START, true).unwrap();
        assert_eq!(m.lowmem_end(), 0x1000_0000);
        let mut calls = heapless::Vec::<(u32, u64, u64), 64>::new();
        let st = populate::<()>(&m, &mut |o, g, n| {
            let _ = calls.push((o, g, n));
            Ok(n)
        })
        .unwrap();
        // 0xa0 pages, then 0xc0..0x200 in 4 KiB pages, then 2 MiB extents.
        assert_eq!(calls[0], (0, 0, 0xa0));
        assert_eq!(calls[1], (0, 0xc0, 0x200 - 0xc0));
        assert_eq!(calls[2], (9, 0x200, 4));
        // meminit_hvm's stats count the hole among the 4 KiB pages.
        assert_eq!(st.normal, 0x200);
        assert_eq!(st.mb2, 127);
        let big = Memory::split(4096, HVM_BELOW_4G_MMIO_START, true).unwrap();
        assert_eq!(big.lowmem_end(), 0xf000_0000);
        assert_eq!(big.highmem_end(), GIB4 + 0x1000_0000);
        assert_eq!(memory_map(&big).len(), 2);
    }

    #[test]
    fn ioreq_pages_below_the_special_pages() {
        assert_eq!(IOREQ_SERVER_FIRST_PFN, 0xfeff0);
    }
}

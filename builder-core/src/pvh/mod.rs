//! PVH guests: a PV-aware kernel started in an HVM container, with no firmware and no device
//! model (libxl's `type = "pvh"`; libxenguest's `xc_hvm_32` arch hooks in xg_dom_x86.c).
//!
//! The kernel names its 32-bit physical entry point (`XEN_ELFNOTE_PHYS32_ENTRY`) and is
//! loaded at its physical addresses; it starts with paging off and `%ebx` pointing at an
//! `hvm_start_info` that lists its ramdisk, its command line, the RSDP of the ACPI tables
//! libxl builds, and the memory map. One module per concept:
//!
//! - [`layout`]: the RAM split around the hole below 4 GiB, how it is populated, the special
//!   pages, and the segments (kernel, ramdisk, start info);
//! - [`acpi`]: the tables (RSDP, XSDT/RSDT, FADT, FACS, MADT, DSDT) and where they go;
//! - [`dsdt`]: libacpi's `dsdt_pvh` (processor objects and CPU hotplug), in AML that
//!   [`aml`] encodes as `iasl` does;
//! - [`start_info`]: `struct hvm_start_info` and its segment;
//! - [`vcpu`]: the boot vcpu's HVM save records.
//!
//! [`plan`] puts them together in libxl's order: the memory split, the ACPI tables, the
//! memory map (which the start info's size depends on), then the segments.

pub mod acpi;
pub mod aml;
pub mod dsdt;
pub mod layout;
pub mod start_info;
pub mod vcpu;

use crate::image::KernelParams;

use acpi::{AcpiConfig, AcpiError, AcpiLayout};
use layout::{Memory, PvhLayout, PvhLayoutError, E820_RAM, E820_RESERVED};
use start_info::HvmMemmapEntry;

/// `XENFEAT_linux_rsdp_unrestricted`
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;

/// At most this many memory-map entries (RAM, special pages, 3 ACPI modules, high RAM).
pub const MAX_E820: usize = 6;

/// The memory map libxl gives a PVH guest (`domain_construct_memmap`), in its order.
pub type MemoryMap = heapless::Vec<HvmMemmapEntry, MAX_E820>;

/// What a PVH guest is built from, besides its kernel.
#[derive(Debug, Clone, Copy)]
pub struct PvhRequest<'a> {
    /// Memory in MiB (`memory`, equal to `maxmem`).
    pub memory_mib: u64,
    /// vcpus the domain has (`maxvcpus`).
    pub max_vcpus: u32,
    /// vcpus online at boot (`vcpus`).
    pub vcpus: u32,
    /// The ramdisk's segment length ([`crate::module::segment_len`]), if it has one.
    pub module_len: Option<u64>,
    /// The command line, if any.
    pub cmdline: Option<&'a [u8]>,
}

/// Why a PVH guest cannot be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvhError {
    /// The layout.
    Layout(PvhLayoutError),
    /// The ACPI tables.
    Acpi(AcpiError),
}

impl core::fmt::Display for PvhError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Layout(e) => e.fmt(f),
            Self::Acpi(e) => e.fmt(f),
        }
    }
}

impl From<PvhLayoutError> for PvhError {
    fn from(e: PvhLayoutError) -> Self {
        Self::Layout(e)
    }
}
impl From<AcpiError> for PvhError {
    fn from(e: AcpiError) -> Self {
        Self::Acpi(e)
    }
}

/// A planned PVH guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhPlan {
    /// Segments and memory.
    pub layout: PvhLayout,
    /// Where the ACPI modules go.
    pub acpi: AcpiLayout,
    /// The memory map.
    pub memmap: MemoryMap,
}

/// The memory map: low RAM, the special pages (reserved), the ACPI modules, high RAM.
pub fn memory_map(mem: &Memory, acpi: &AcpiLayout) -> MemoryMap {
    let mut m = MemoryMap::new();
    let e = |addr, size, r#type| HvmMemmapEntry {
        addr,
        size,
        r#type,
        reserved: 0,
    };
    let _ = m.push(e(0, mem.lowmem_end(), E820_RAM));
    let _ = m.push(e(
        layout::SPECIAL_FIRST_PFN << crate::addr::PAGE_SHIFT,
        layout::NR_SPECIAL_PAGES << crate::addr::PAGE_SHIFT,
        E820_RESERVED,
    ));
    for (a, l, t) in acpi.e820() {
        let _ = m.push(e(a, l, t));
    }
    if mem.highmem_end() > layout::GIB4 {
        let _ = m.push(e(layout::GIB4, mem.highmem_end() - layout::GIB4, E820_RAM));
    }
    m
}

/// Plans a PVH guest; the ACPI tables are written into `tables`, `info` and `rsdp` (see
/// [`acpi::build`]).
pub fn plan(
    params: &KernelParams,
    req: &PvhRequest<'_>,
    tables: &mut [u8],
    info: &mut [u8],
    rsdp: &mut [u8],
) -> Result<PvhPlan, PvhError> {
    if params.phys_entry.is_none() {
        return Err(PvhLayoutError::NotPvh.into());
    }
    let memory = Memory::new(req.memory_mib)?;
    // libxl: the RSDP after the tables unless a Linux kernel lacks the feature
    // (`xc_dom_feature_get` reads the kernel's supported features).
    let linux = params.guest_os.as_str() == "linux";
    let cfg = AcpiConfig {
        nr_vcpus: req.max_vcpus,
        online: req.vcpus,
        rsdp_unrestricted: !linux || params.supports(XENFEAT_LINUX_RSDP_UNRESTRICTED),
    };
    let acpi = acpi::build(&cfg, tables, info, rsdp)?;
    let memmap = memory_map(&memory, &acpi);
    let layout = layout::solve(
        params,
        memory,
        req.module_len,
        req.cmdline,
        memmap.len() as u64,
    )?;
    Ok(PvhPlan {
        layout,
        acpi,
        memmap,
    })
}

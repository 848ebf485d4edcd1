//! The firmware an HVM guest starts in: hvmloader, a 32-bit ELF loaded at its physical
//! addresses and entered at `e_entry` (libxenguest's "HVM-generic" loader,
//! tools/libs/guest/xg_dom_hvmloader.c).

use crate::elf::{Class, Elf, ElfError};

/// Why an image is not HVM firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirmwareError {
    /// Not a well-formed ELF image.
    Elf(ElfError),
    /// `xc_dom_parse_hvm_kernel`: "ELF image is not 32bit".
    Not32Bit,
    /// It carries `XEN_ELFNOTE_PHYS32_ENTRY`: a PVH kernel, which the HVM loader's probe
    /// turns away.
    PvhKernel,
    /// The entry point or load range does not fit 32 bits.
    Above4G,
}

impl core::fmt::Display for FirmwareError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Elf(e) => write!(f, "{e}"),
            Self::Not32Bit => f.write_str("ELF image is not 32bit"),
            Self::PvhKernel => f.write_str("the image is a PVH kernel, not HVM firmware"),
            Self::Above4G => f.write_str("the image's load range or entry is above 4 GiB"),
        }
    }
}

/// A parsed firmware image: its physical load range and entry point.
#[derive(Debug, Clone, Copy)]
pub struct Firmware<'a> {
    elf: Elf<'a>,
    entry: u32,
}

impl<'a> Firmware<'a> {
    /// Parses `bytes` as `xc_dom_probe_hvm_kernel` and `xc_dom_parse_hvm_kernel` do.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FirmwareError> {
        let elf = Elf::parse(bytes).map_err(FirmwareError::Elf)?;
        if elf.class() != Class::Elf32 {
            return Err(FirmwareError::Not32Bit);
        }
        let parms = elf.xen_parms().map_err(FirmwareError::Elf)?;
        if parms.phys_entry.is_some() {
            return Err(FirmwareError::PvhKernel);
        }
        let entry = u32::try_from(elf.entry()).map_err(|_| FirmwareError::Above4G)?;
        if elf.pend() > 1 << 32 {
            return Err(FirmwareError::Above4G);
        }
        Ok(Self { elf, entry })
    }
    /// First physical address (`elf->pstart`).
    pub fn pstart(&self) -> u64 {
        self.elf.pstart()
    }
    /// End of the image (`elf->pend`).
    pub fn pend(&self) -> u64 {
        self.elf.pend()
    }
    /// The entry point (`e_entry`: `phys_entry`).
    pub fn entry(&self) -> u32 {
        self.entry
    }
    /// Copies the image into `dest`, which covers `[pstart, pend)` (`elf_load_binary`).
    pub fn load(&self, dest: &mut [u8]) -> Result<(), FirmwareError> {
        self.elf.load(dest).map_err(FirmwareError::Elf)
    }
}

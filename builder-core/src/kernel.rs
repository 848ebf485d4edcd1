//! A parsed, uncompressed kernel: ELF or 'bin', with its [`KernelParams`], ready to be
//! loaded. Compressed files are unpacked first (`decompress::unpack_kernel`).

use crate::bin::{BinError, BinImage};
use crate::bsdsym::BsdSymtab;
use crate::elf::{Elf, ElfError};
use crate::image::{FeatureError, KernelParams, LoadKernel};

/// Why a kernel image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelError {
    /// Neither an ELF image nor a 'bin' image (compressed images must be unpacked first).
    UnknownFormat,
    /// A refused ELF image.
    Elf(ElfError),
    /// A refused 'bin' image.
    Bin(BinError),
    /// A kernel that cannot run as an unprivileged PV guest (its required features).
    Features(FeatureError),
}

impl From<ElfError> for KernelError {
    fn from(e: ElfError) -> Self {
        KernelError::Elf(e)
    }
}

impl From<BinError> for KernelError {
    fn from(e: BinError) -> Self {
        KernelError::Bin(e)
    }
}

impl core::fmt::Display for KernelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KernelError::UnknownFormat => f.write_str("not an ELF or 'bin' kernel image"),
            KernelError::Elf(e) => write!(f, "ELF: {e}"),
            KernelError::Bin(e) => write!(f, "bin: {e}"),
            KernelError::Features(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    Elf(Elf<'a>),
    Bin(BinImage),
}

/// A kernel ready to load.
#[derive(Debug, Clone)]
pub struct Kernel<'a> {
    image: &'a [u8],
    kind: Kind<'a>,
    params: KernelParams,
    /// The symbol table to load after the image (`BSD_SYMTAB`).
    bsd_symtab: Option<BsdSymtab>,
}

impl<'a> Kernel<'a> {
    /// Whether this is an ELF image (else 'bin').
    pub fn is_elf(&self) -> bool {
        matches!(self.kind, Kind::Elf(_))
    }
    /// The ELF view, for an ELF kernel.
    pub fn elf(&self) -> Option<&Elf<'a>> {
        match &self.kind {
            Kind::Elf(e) => Some(e),
            Kind::Bin(_) => None,
        }
    }
    /// The image bytes.
    pub fn image(&self) -> &'a [u8] {
        self.image
    }
}

/// Parse an uncompressed kernel, probing as libxenguest does: the 'bin' loader first (a
/// valid header table in the first 8 KiB), then ELF. A kernel whose required features rule
/// out an unprivileged PV guest is refused here
/// ([`KernelParams::check_pv_domu_features`]), before any domain exists.
pub fn parse_kernel(image: &[u8]) -> Result<Kernel<'_>, KernelError> {
    let k = parse_any(image)?;
    k.params
        .check_pv_domu_features()
        .map_err(KernelError::Features)?;
    Ok(k)
}

fn parse_any(image: &[u8]) -> Result<Kernel<'_>, KernelError> {
    if crate::bin::find_table(image).is_some() {
        let bin = BinImage::parse(image)?;
        return Ok(Kernel {
            image,
            params: bin.params(),
            kind: Kind::Bin(bin),
            bsd_symtab: None,
        });
    }
    if !image.starts_with(b"\x7fELF") {
        return Err(KernelError::UnknownFormat);
    }
    let elf = Elf::parse(image)?;
    let params = elf.params()?;
    let bsd_symtab = if params.bsd_symtab {
        Some(elf.bsd_symtab()?)
    } else {
        None
    };
    Ok(Kernel {
        image,
        kind: Kind::Elf(elf),
        params,
        bsd_symtab,
    })
}

impl LoadKernel for Kernel<'_> {
    type Error = KernelError;

    fn params(&self) -> &KernelParams {
        &self.params
    }

    fn load(&self, dest: &mut [u8]) -> Result<(), KernelError> {
        match &self.kind {
            Kind::Elf(e) => match &self.bsd_symtab {
                None => Ok(e.load(dest)?),
                // The segments, then the symbol table after them (`elf_load_binary`).
                Some(b) => {
                    let image_len = usize::try_from(e.pend() - e.pstart())
                        .map_err(|_| ElfError::AddressOverflow)?;
                    let got = dest.len() as u64;
                    let segs = dest.get_mut(..image_len).ok_or(ElfError::DestSize {
                        expected: b.pend - e.pstart(),
                        got,
                    })?;
                    e.load(segs)?;
                    b.load(e, dest).map_err(ElfError::BsdSymtab)?;
                    Ok(())
                }
            },
            Kind::Bin(b) => Ok(b.load(self.image, dest)?),
        }
    }
}

//! The 'bin' kernel format of libxenguest's multiboot-binary loader
//! (tools/libs/guest/xg_dom_binloader.c): a flat image with, in its first 8 KiB at a 4-byte
//! aligned offset, a multiboot-like table of eight little-endian words starting with
//! `XEN_MULTIBOOT_MAGIC3` (0x336ec578) whose first three words sum to 0.
//!
//! `header_addr` is the virtual address the table itself loads at, which places the whole
//! file; `[load_addr, load_end_addr)` is copied from the file, `[load_end_addr,
//! bss_end_addr)` is zeroed, `entry_addr` is the entry point.

use crate::image::{GuestType, KernelParams, NoteText, PaeMode, XENFEAT_NR_SUBMAPS};
use crate::limits;

/// `XEN_MULTIBOOT_MAGIC3`.
pub const MAGIC: u32 = 0x336e_c578;
/// `XEN_MULTIBOOT_FLAG_ALIGN4K`.
pub const FLAG_ALIGN4K: u32 = 0x0000_0001;
/// `XEN_MULTIBOOT_FLAG_ADDRSVALID`: the address fields are valid (required).
pub const FLAG_ADDRSVALID: u32 = 0x0001_0000;
/// `XEN_MULTIBOOT_FLAG_PAE_SHIFT`.
pub const FLAG_PAE_SHIFT: u32 = 14;
/// `XEN_MULTIBOOT_FLAG_PAE_MASK`.
pub const FLAG_PAE_MASK: u32 = 3 << FLAG_PAE_SHIFT;
/// The flags libxenguest tests (`FLAGS_MASK`): all but ALIGN4K and the PAE bits.
pub const FLAGS_MASK: u32 = !FLAG_ALIGN4K & !FLAG_PAE_MASK;
/// What those flags must be (`FLAGS_REQUIRED`).
pub const FLAGS_REQUIRED: u32 = FLAG_ADDRSVALID;
/// Size of the table.
pub const TABLE_SIZE: usize = 32;

/// The header table, with the offset it was found at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// File offset of the table.
    pub offset: usize,
    /// `flags`
    pub flags: u32,
    /// `header_addr`
    pub header_addr: u32,
    /// `load_addr`
    pub load_addr: u32,
    /// `load_end_addr` (0: to the end of the file)
    pub load_end_addr: u32,
    /// `bss_end_addr` (0: no bss)
    pub bss_end_addr: u32,
    /// `entry_addr`
    pub entry_addr: u32,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_le_bytes)
}

/// `find_table`: the first valid table in the first 8 KiB.
pub fn find_table(image: &[u8]) -> Option<Table> {
    if image.len() < TABLE_SIZE {
        return None;
    }
    let end = if image.len() > limits::BIN_HEADER_SEARCH + TABLE_SIZE {
        limits::BIN_HEADER_SEARCH
    } else {
        image.len() - TABLE_SIZE
    };
    (0..end).step_by(4).find_map(|at| {
        if le32(image, at)? != MAGIC {
            return None;
        }
        let w = |i: usize| le32(image, at + 4 * i);
        let (flags, checksum) = (w(1)?, w(2)?);
        if MAGIC.wrapping_add(flags).wrapping_add(checksum) != 0 {
            return None;
        }
        Some(Table {
            offset: at,
            flags,
            header_addr: w(3)?,
            load_addr: w(4)?,
            load_end_addr: w(5)?,
            bss_end_addr: w(6)?,
            entry_addr: w(7)?,
        })
    })
}

/// Why a 'bin' image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinError {
    /// No header table in the first 8 KiB.
    NoTable,
    /// Flags other than ADDRSVALID (and ALIGN4K / PAE) set, or ADDRSVALID missing.
    BadFlags {
        /// `flags & FLAGS_MASK`.
        flags: u32,
    },
    /// `header_addr < load_addr`, or the table lies closer to the file start than
    /// `header_addr - load_addr`.
    BadHeaderAddr,
    /// `load_end_addr` beyond the end of the file, or below `load_addr`.
    BadLoadEndAddr,
    /// `bss_end_addr < load_end_addr`.
    BadBssEndAddr,
    /// The entry point is outside `[load_addr, bss_end_addr]`.
    EntryOutside {
        /// `entry_addr`.
        entry: u32,
    },
    /// An address computation overflows 32 bits.
    AddressOverflow,
    /// The destination given to `load` is not the size of the image.
    DestSize {
        /// `bss_end_addr - load_addr`.
        expected: u64,
        /// The destination's length.
        got: u64,
    },
}

impl core::fmt::Display for BinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BinError::NoTable => f.write_str("no multiboot-binary header table"),
            BinError::BadFlags { flags } => write!(
                f,
                "header table flags {flags:#010x}, required {FLAGS_REQUIRED:#010x}"
            ),
            BinError::BadHeaderAddr => f.write_str("invalid header_addr"),
            BinError::BadLoadEndAddr => f.write_str("invalid load_end_addr"),
            BinError::BadBssEndAddr => f.write_str("invalid bss_end_addr"),
            BinError::EntryOutside { entry } => {
                write!(f, "entry {entry:#x} is outside the image")
            }
            BinError::AddressOverflow => f.write_str("address computation overflows"),
            BinError::DestSize { expected, got } => write!(
                f,
                "load destination is {got:#x} bytes, the image needs {expected:#x}"
            ),
        }
    }
}

/// A validated 'bin' image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinImage {
    /// The table.
    pub table: Table,
    /// Virtual address of the first byte of the file.
    pub start_addr: u32,
    /// End of the loaded text and data.
    pub load_end_addr: u32,
    /// End of the bss.
    pub bss_end_addr: u32,
    /// File offset the loaded part starts at (`load_addr - start_addr`).
    pub skip: usize,
    /// Bytes copied from the file.
    pub text_size: usize,
}

impl BinImage {
    /// `xc_dom_parse_bin_kernel`'s checks, with 32-bit arithmetic checked instead of
    /// wrapping.
    pub fn parse(image: &[u8]) -> Result<BinImage, BinError> {
        let t = find_table(image).ok_or(BinError::NoTable)?;
        if t.flags & FLAGS_MASK != FLAGS_REQUIRED {
            return Err(BinError::BadFlags {
                flags: t.flags & FLAGS_MASK,
            });
        }
        let table_off = u32::try_from(t.offset).map_err(|_| BinError::BadHeaderAddr)?;
        if t.header_addr < t.load_addr || table_off < t.header_addr - t.load_addr {
            return Err(BinError::BadHeaderAddr);
        }
        let start_addr = t
            .header_addr
            .checked_sub(table_off)
            .ok_or(BinError::AddressOverflow)?;
        let image_size = u32::try_from(image.len()).map_err(|_| BinError::AddressOverflow)?;
        let file_end = start_addr
            .checked_add(image_size)
            .ok_or(BinError::AddressOverflow)?;
        let load_end_addr = if t.load_end_addr != 0 {
            t.load_end_addr
        } else {
            file_end
        };
        let bss_end_addr = if t.bss_end_addr != 0 {
            t.bss_end_addr
        } else {
            load_end_addr
        };
        if file_end < load_end_addr || load_end_addr < t.load_addr {
            return Err(BinError::BadLoadEndAddr);
        }
        if bss_end_addr < load_end_addr {
            return Err(BinError::BadBssEndAddr);
        }
        if t.entry_addr < t.load_addr || t.entry_addr > bss_end_addr {
            return Err(BinError::EntryOutside {
                entry: t.entry_addr,
            });
        }
        // load_addr >= start_addr: header_addr - load_addr <= table offset.
        let skip = (t.load_addr - start_addr) as usize;
        let text_size = (load_end_addr - t.load_addr) as usize;
        Ok(BinImage {
            table: t,
            start_addr,
            load_end_addr,
            bss_end_addr,
            skip,
            text_size,
        })
    }

    /// The guest type from the table's PAE bits. 3 ("PAE detected at run time") is taken as
    /// PAE, as libxenguest does when Xen offers `xen-3.0-x86_32p`.
    pub fn guest_type(&self) -> (GuestType, PaeMode) {
        match (self.table.flags & FLAG_PAE_MASK) >> FLAG_PAE_SHIFT {
            0 => (GuestType::X86_32, PaeMode::No),
            1 => (GuestType::X86_32Pae, PaeMode::No),
            2 => (GuestType::X86_64, PaeMode::No),
            _ => (GuestType::X86_32Pae, PaeMode::ExtendedCr3),
        }
    }

    /// The parameters libxenguest derives: `virt_base = start_addr`, the image from
    /// `load_addr` to `bss_end_addr`, `virt_entry = entry_addr`, nothing else set.
    pub fn params(&self) -> KernelParams {
        let (guest_type, pae) = self.guest_type();
        let virt_base = u64::from(self.start_addr);
        KernelParams {
            guest_type,
            guest_os: NoteText::new(),
            guest_ver: NoteText::new(),
            xen_ver: NoteText::new(),
            loader: NoteText::new(),
            pae,
            bsd_symtab: false,
            unmapped_initrd: false,
            virt_base,
            virt_entry: u64::from(self.table.entry_addr),
            virt_hypercall: None,
            virt_hv_start_low: None,
            p2m_base: None,
            elf_paddr_offset: 0,
            f_supported: [0; XENFEAT_NR_SUBMAPS],
            f_required: [0; XENFEAT_NR_SUBMAPS],
            phys_entry: None,
            virt_offset: virt_base,
            virt_kstart: u64::from(self.table.load_addr),
            virt_kend: u64::from(self.bss_end_addr),
        }
    }

    /// `xc_dom_load_bin_kernel`: copy the text and data, zero the bss. `dest` covers
    /// `[load_addr, bss_end_addr)`.
    pub fn load(&self, image: &[u8], dest: &mut [u8]) -> Result<(), BinError> {
        let expected = u64::from(self.bss_end_addr - self.table.load_addr);
        if dest.len() as u64 != expected {
            return Err(BinError::DestSize {
                expected,
                got: dest.len() as u64,
            });
        }
        let src = self
            .skip
            .checked_add(self.text_size)
            .and_then(|end| image.get(self.skip..end))
            .ok_or(BinError::BadLoadEndAddr)?;
        let (text, bss) = dest
            .split_at_mut_checked(src.len())
            .ok_or(BinError::BadLoadEndAddr)?;
        text.copy_from_slice(src);
        bss.fill(0);
        Ok(())
    }
}

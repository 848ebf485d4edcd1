//! The ACPI tables of a PVH guest, as libxl builds them (`libxl__dom_load_acpi`,
//! tools/libs/light/libxl_x86_acpi.c, with tools/libacpi/build.c's `acpi_build_tables`).
//!
//! libxl gives libacpi no table flags for a PVH guest (no IOAPIC, HPET, PM timer, buttons,
//! VGA, 8042 or CMOS RTC), ACPI revision 5 and LAPIC ids `2 * vcpu`. libacpi then hands out,
//! from its bump allocator starting one page after the `acpi_info` page at
//! [`ACPI_INFO_PHYSICAL_ADDRESS`], in this order: the FACS, the DSDT, a revision 1 FADT for
//! the RSDT, the revision 5 FADT, the MADT (one Processor Local APIC entry per vcpu, enabled
//! when the vcpu is online: what lets the guest bring up its other vcpus), the XSDT and the
//! RSDT. The RSDP goes in its own 64-byte module, after the tables' pages (a kernel with
//! `XENFEAT_linux_rsdp_unrestricted`, or not Linux) or in the last 64 bytes below 1 MiB.
//!
//! The allocator is libxl's `mem_alloc`, quirk included: its cursor keeps the *last* byte of
//! the previous table, so a table that follows another aligns from there.
//!
//! The DSDT is libacpi's `dsdt_pvh` ([`super::dsdt`]: a Processor object with `_MAT`, `_STA`
//! and `_EJ0` per possible vcpu and the CPU hotplug GPE handler, 27,803 bytes of AML), so the
//! tables take libxl's 7 pages and the RSDP lands where libxl puts it.
//! The tables are written field by field: libacpi's structs are `#pragma pack(1)`.

use super::dsdt;
use super::layout::{ACPI_INFO_PHYSICAL_ADDRESS, E820_ACPI, LAPIC_BASE_ADDRESS};

/// Pages libxl reserves for the tables (`NUM_ACPI_PAGES`).
pub const NUM_ACPI_PAGES: u64 = 16;
/// Bytes of the RSDP module (`acpi_modules[0].length`).
pub const RSDP_MODULE_LEN: usize = 64;
/// Bytes of the `acpi_info` module.
pub const INFO_MODULE_LEN: usize = 4096;
/// Bytes of the tables' buffer ([`NUM_ACPI_PAGES`] pages).
pub const TABLES_BUF_LEN: usize = (NUM_ACPI_PAGES as usize) * 4096;
/// The most vcpus libacpi's MADT describes (`HVM_MAX_VCPUS`).
pub const HVM_MAX_VCPUS: u32 = 128;

const HEADER_LEN: usize = 36;
const FACS_LEN: u32 = 64;
const FADT10_LEN: u32 = 116;
const FADT_LEN: u32 = 268;
const MADT_LEN: u32 = 44;
const MADT_INTSRCOVR_LEN: u32 = 10;
const MADT_IOAPIC_LEN: u32 = 12;
const MADT_LAPIC_LEN: u32 = 8;
const RSDP_LEN: usize = 36;

/// ACPI_PM1A_EVT_BLK_ADDRESS_V1 and friends (public/hvm/ioreq.h).
const PM1A_EVT_BLK: u32 = 0xb000;
const PM1A_CNT_BLK: u32 = PM1A_EVT_BLK + 4;
const PM_TMR_BLK: u32 = PM1A_EVT_BLK + 8;
const GPE0_BLK: u32 = 0xafe0;
const GPE0_BLK_LEN: u8 = 4;

/// FADT flags of libacpi's static FADT: PROC_C1 | WBINVD | FIX_RTC | TMR_VAL_EXT |
/// USE_PLATFORM_CLOCK.
const FADT_FLAGS: u32 = (1 << 2) | (1 << 0) | (1 << 6) | (1 << 8) | (1 << 15);
/// PWR_BUTTON | SLP_BUTTON: no buttons (`!ACPI_HAS_BUTTONS`).
const FADT_NO_BUTTONS: u32 = (1 << 4) | (1 << 5);
/// `ACPI_FADT_NO_VGA | ACPI_FADT_NO_CMOS_RTC`.
const IAPC_NO_VGA_NO_RTC: u16 = (1 << 2) | (1 << 5);

/// What the tables are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiConfig {
    /// vcpus the domain has (`max_vcpu_id + 1`).
    pub nr_vcpus: u32,
    /// vcpus online at boot (the first `online` are; `avail_vcpus`).
    pub online: u32,
    /// Whether the RSDP goes after the tables (not Linux, or a Linux kernel with
    /// `XENFEAT_linux_rsdp_unrestricted`) rather than at 1 MiB - 64.
    pub rsdp_unrestricted: bool,
}

/// Why the tables cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// More vcpus than the MADT's 8-bit ids carry.
    TooManyVcpus(u32),
    /// The tables do not fit libxl's 16 pages.
    OutOfSpace,
    /// A buffer given is shorter than needed.
    BufferTooSmall,
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooManyVcpus(n) => {
                write!(
                    f,
                    "{n} vcpus: a PVH guest's ACPI tables describe at most {HVM_MAX_VCPUS}"
                )
            }
            Self::OutOfSpace => f.write_str("the ACPI tables do not fit their 16 pages"),
            Self::BufferTooSmall => f.write_str("ACPI table buffer too small"),
        }
    }
}

/// Where the three ACPI modules go (`dom->acpi_modules[0..3]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiLayout {
    /// Guest-physical address of the RSDP (module 0, [`RSDP_MODULE_LEN`] bytes).
    pub rsdp_addr: u64,
    /// Guest-physical address of the `acpi_info` page (module 1).
    pub info_addr: u64,
    /// Guest-physical address of the tables (module 2).
    pub tables_addr: u64,
    /// Bytes of module 2 (whole pages).
    pub tables_len: u64,
    /// Where each table went, for the log and the tests.
    pub facs: u64,
    /// The DSDT.
    pub dsdt: u64,
    /// The revision 1 FADT.
    pub fadt10: u64,
    /// The revision 5 FADT.
    pub fadt: u64,
    /// The MADT.
    pub madt: u64,
    /// The XSDT.
    pub xsdt: u64,
    /// The RSDT.
    pub rsdt: u64,
}

impl AcpiLayout {
    /// The modules as (guest address, length), in libxl's order.
    pub fn modules(&self) -> [(u64, u64); 3] {
        [
            (self.rsdp_addr, RSDP_MODULE_LEN as u64),
            (self.info_addr, INFO_MODULE_LEN as u64),
            (self.tables_addr, self.tables_len),
        ]
    }

    /// The memory-map entries of the modules (`domain_construct_memmap`: each from its
    /// page start, type ACPI).
    pub fn e820(&self) -> [(u64, u64, u32); 3] {
        self.modules()
            .map(|(a, l)| (a & !0xfff, l + (a & 0xfff), E820_ACPI))
    }
}

/// libxl's `mem_alloc` over the tables' buffer.
struct Alloc<'b> {
    buf: &'b mut [u8],
    start: u64,
    curr: u64,
    end: u64,
}

impl Alloc<'_> {
    /// Returns the guest address of `size` bytes aligned to `align` (at least 16).
    fn alloc(&mut self, size: u32, align: u64) -> Result<u64, AcpiError> {
        let align = align.max(16);
        let s = self.curr.next_multiple_of(align);
        let e = s + u64::from(size) - 1;
        if e < s || e >= self.end {
            return Err(AcpiError::OutOfSpace);
        }
        self.curr = e;
        Ok(s)
    }
    /// Where the next allocation aligned to `align` (at least 16) starts.
    fn next(&self, align: u64) -> u64 {
        self.curr.next_multiple_of(align.max(16))
    }
    fn at(&mut self, addr: u64, len: usize) -> Result<&mut [u8], AcpiError> {
        let off = usize::try_from(addr - self.start).map_err(|_| AcpiError::OutOfSpace)?;
        self.buf
            .get_mut(off..off + len)
            .ok_or(AcpiError::BufferTooSmall)
    }
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(off..off + v.len()) {
        d.copy_from_slice(v);
    }
}

/// The common header (`struct acpi_header`) with libacpi's OEM fields; checksum left 0.
fn header(b: &mut [u8], sig: &[u8; 4], len: u32, rev: u8) {
    put(b, 0, sig);
    put(b, 4, &len.to_le_bytes());
    put(b, 8, &[rev]);
    put(b, 10, b"Xen\0\0\0");
    put(b, 16, b"HVM\0\0\0\0\0");
    put(b, 24, &0u32.to_le_bytes());
    put(b, 28, b"HVML");
    put(b, 32, &0u32.to_le_bytes());
}

/// `set_checksum`: the byte at `at` so that the first `len` bytes sum to 0.
fn checksum(b: &mut [u8], at: usize, len: usize) {
    if let Some(c) = b.get_mut(at) {
        *c = 0;
    }
    let sum = b
        .get(..len)
        .unwrap_or(&[])
        .iter()
        .fold(0u8, |s, x| s.wrapping_add(*x));
    if let Some(c) = b.get_mut(at) {
        *c = sum.wrapping_neg();
    }
}

/// A Generic Address Structure in system I/O space.
fn gas_io(b: &mut [u8], off: usize, width: u8, addr: u64) {
    put(b, off, &[1, width, 0, 0]);
    put(b, off + 4, &addr.to_le_bytes());
}

/// libacpi's static FADT (static_tables.c), the first `len` bytes, before `acpi_build_tables`
/// changes it.
fn fadt_static(b: &mut [u8], len: u32, rev: u8) {
    header(b, b"FACP", len, rev);
    put(b, 46, &9u16.to_le_bytes()); // sci_int
    put(b, 56, &PM1A_EVT_BLK.to_le_bytes());
    put(b, 64, &PM1A_CNT_BLK.to_le_bytes());
    put(b, 76, &PM_TMR_BLK.to_le_bytes());
    put(b, 80, &GPE0_BLK.to_le_bytes());
    put(b, 88, &[4, 2, 0, 4, GPE0_BLK_LEN]); // pm1_evt, pm1_cnt, pm2_cnt, pm_tmr, gpe0 lens
    put(b, 96, &0x0fffu16.to_le_bytes()); // p_lvl2_lat
    put(b, 98, &0x0fffu16.to_le_bytes()); // p_lvl3_lat
    put(b, 112, &FADT_FLAGS.to_le_bytes());
    if len > FADT10_LEN {
        gas_io(b, 116, 8, 0xcf9); // reset_reg
        put(b, 128, &[6]); // reset_value
        gas_io(b, 148, 32, u64::from(PM1A_EVT_BLK));
        gas_io(b, 172, 16, u64::from(PM1A_CNT_BLK));
        gas_io(b, 208, 32, u64::from(PM_TMR_BLK));
    }
}

/// Builds the tables into `tables` (at least [`TABLES_BUF_LEN`] bytes, zeroed), the
/// `acpi_info` page into `info` ([`INFO_MODULE_LEN`]) and the RSDP into `rsdp`
/// ([`RSDP_MODULE_LEN`]).
pub fn build(
    cfg: &AcpiConfig,
    tables: &mut [u8],
    info: &mut [u8],
    rsdp: &mut [u8],
) -> Result<AcpiLayout, AcpiError> {
    if cfg.nr_vcpus == 0 || cfg.nr_vcpus > HVM_MAX_VCPUS {
        return Err(AcpiError::TooManyVcpus(cfg.nr_vcpus));
    }
    if tables.len() < TABLES_BUF_LEN || info.len() < INFO_MODULE_LEN || rsdp.len() < RSDP_MODULE_LEN
    {
        return Err(AcpiError::BufferTooSmall);
    }
    let start = ACPI_INFO_PHYSICAL_ADDRESS + 4096;
    let mut a = Alloc {
        buf: tables,
        start,
        curr: start,
        end: start + NUM_ACPI_PAGES * 4096,
    };

    let facs = a.alloc(FACS_LEN, 64)?;
    {
        let b = a.at(facs, FACS_LEN as usize)?;
        put(b, 0, b"FACS");
        put(b, 4, &FACS_LEN.to_le_bytes());
        put(b, 32, &[1]); // version
    }

    // The DSDT, libacpi's `dsdt_pvh`: written where the allocator will put it, then
    // allocated at its length.
    let dsdt_at = a.next(16);
    let dsdt_len = {
        let room = usize::try_from(a.end.saturating_sub(dsdt_at)).unwrap_or(0);
        let b = a.at(dsdt_at, room)?;
        dsdt::write(b).map_err(|_| AcpiError::OutOfSpace)?
    };
    let dsdt = a.alloc(
        u32::try_from(dsdt_len).map_err(|_| AcpiError::OutOfSpace)?,
        16,
    )?;

    let fadt10 = a.alloc(FADT10_LEN, 16)?;
    {
        let b = a.at(fadt10, FADT10_LEN as usize)?;
        fadt_static(b, FADT10_LEN, 1);
        put(b, 36, &(facs as u32).to_le_bytes());
        put(b, 40, &(dsdt as u32).to_le_bytes());
        checksum(b, 9, FADT10_LEN as usize);
    }

    let fadt = a.alloc(FADT_LEN, 16)?;
    {
        let b = a.at(fadt, FADT_LEN as usize)?;
        fadt_static(b, FADT_LEN, 5);
        // No PM timer: its block, length and extended block cleared.
        put(b, 76, &0u32.to_le_bytes());
        put(b, 91, &[0]);
        put(b, 208, &[0; 12]);
        put(b, 112, &(FADT_FLAGS | FADT_NO_BUTTONS).to_le_bytes());
        put(b, 36, &(facs as u32).to_le_bytes());
        put(b, 40, &(dsdt as u32).to_le_bytes());
        put(b, 132, &facs.to_le_bytes());
        put(b, 140, &dsdt.to_le_bytes());
        put(b, 109, &IAPC_NO_VGA_NO_RTC.to_le_bytes());
        checksum(b, 9, FADT_LEN as usize);
    }

    // MADT: libacpi sizes it with room for 16 overrides and an IOAPIC even when, as here,
    // it writes neither.
    let madt_alloc =
        MADT_LEN + MADT_INTSRCOVR_LEN * 16 + MADT_IOAPIC_LEN + MADT_LAPIC_LEN * cfg.nr_vcpus;
    let madt = a.alloc(madt_alloc, 16)?;
    let madt_len = MADT_LEN + MADT_LAPIC_LEN * cfg.nr_vcpus;
    {
        let b = a.at(madt, madt_len as usize)?;
        header(b, b"APIC", madt_len, 2);
        put(b, 36, &(LAPIC_BASE_ADDRESS as u32).to_le_bytes());
        put(b, 40, &1u32.to_le_bytes()); // ACPI_PCAT_COMPAT
        for i in 0..cfg.nr_vcpus {
            let off = (MADT_LEN + MADT_LAPIC_LEN * i) as usize;
            let enabled = u32::from(i < cfg.online);
            // Processor ids match the DSDT's; LAPIC ids are libxl's `acpi_lapic_id`: 2 * cpu.
            put(b, off, &[0, MADT_LAPIC_LEN as u8, i as u8, (i * 2) as u8]);
            put(b, off + 4, &enabled.to_le_bytes());
        }
        checksum(b, 9, madt_len as usize);
    }

    // XSDT and RSDT: the FADT, then the MADT.
    let xsdt_len = HEADER_LEN as u32 + 2 * 8;
    let xsdt = a.alloc(HEADER_LEN as u32 + 8 + 8, 16)?;
    {
        let b = a.at(xsdt, xsdt_len as usize)?;
        header(b, b"XSDT", xsdt_len, 1);
        put(b, 36, &fadt.to_le_bytes());
        put(b, 44, &madt.to_le_bytes());
        checksum(b, 9, xsdt_len as usize);
    }
    let rsdt_len = HEADER_LEN as u32 + 2 * 4;
    let rsdt = a.alloc(HEADER_LEN as u32 + 4 + 4, 16)?;
    {
        let b = a.at(rsdt, rsdt_len as usize)?;
        header(b, b"RSDT", rsdt_len, 1);
        put(b, 36, &(fadt10 as u32).to_le_bytes());
        put(b, 40, &(madt as u32).to_le_bytes());
        checksum(b, 9, rsdt_len as usize);
    }
    let pages = (a.curr.next_multiple_of(4096) - start) >> 12;

    // acpi_info: nr_cpus, the MADT's checksum and first LAPIC entry (what the DSDT's CPU
    // hotplug would patch); no COM, LPT, HPET or PCI hole.
    put(info, 2, &(cfg.nr_vcpus as u16).to_le_bytes());
    put(info, 12, &((madt + 9) as u32).to_le_bytes());
    put(
        info,
        16,
        &((madt + u64::from(MADT_LEN)) as u32).to_le_bytes(),
    );

    put(rsdp, 0, b"RSD PTR ");
    put(rsdp, 9, b"Xen\0\0\0");
    put(rsdp, 15, &[2]);
    put(rsdp, 16, &(rsdt as u32).to_le_bytes());
    put(rsdp, 20, &(RSDP_LEN as u32).to_le_bytes());
    put(rsdp, 24, &xsdt.to_le_bytes());
    checksum(rsdp, 8, 20);
    checksum(rsdp, 32, RSDP_LEN);

    let rsdp_addr = if cfg.rsdp_unrestricted {
        ACPI_INFO_PHYSICAL_ADDRESS + (1 + pages) * 4096
    } else {
        0x10_0000 - 64
    };
    Ok(AcpiLayout {
        rsdp_addr,
        info_addr: ACPI_INFO_PHYSICAL_ADDRESS,
        tables_addr: start,
        tables_len: pages * 4096,
        facs,
        dsdt,
        fadt10,
        fadt,
        madt,
        xsdt,
        rsdt,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
    }

    #[test]
    fn tables_checksum_and_point_at_each_other() {
        let mut t = [0u8; TABLES_BUF_LEN];
        let mut i = [0u8; INFO_MODULE_LEN];
        let mut r = [0u8; RSDP_MODULE_LEN];
        let cfg = AcpiConfig {
            nr_vcpus: 2,
            online: 2,
            rsdp_unrestricted: true,
        };
        let l = build(&cfg, &mut t, &mut i, &mut r).unwrap();
        let off = |a: u64| (a - l.tables_addr) as usize;
        assert_eq!(&r[..8], b"RSD PTR ");
        assert_eq!(sum(&r[..20]), 0);
        assert_eq!(sum(&r[..36]), 0);
        for (a, sig) in [
            (l.dsdt, b"DSDT"),
            (l.fadt10, b"FACP"),
            (l.fadt, b"FACP"),
            (l.madt, b"APIC"),
            (l.xsdt, b"XSDT"),
            (l.rsdt, b"RSDT"),
        ] {
            let o = off(a);
            assert_eq!(&t[o..o + 4], sig);
            let len = u32::from_le_bytes(t[o + 4..o + 8].try_into().unwrap()) as usize;
            assert_eq!(sum(&t[o..o + len]), 0, "{sig:?}");
        }
        // Two enabled LAPICs, ids 0 and 2.
        let m = off(l.madt) + 44;
        assert_eq!(&t[m..m + 8], &[0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&t[m + 8..m + 16], &[0, 8, 1, 2, 1, 0, 0, 0]);
        // xl's layout for this config (xl -vvv create of a 2-vcpu PVH guest on the harness's
        // Xen): the tables take 7 pages, the RSDP follows them at 0xfc008000.
        assert_eq!(l.tables_len, 7 * 4096);
        assert_eq!(l.rsdp_addr, 0xfc00_8000);
        // libacpi's allocator: FACS first at the page start, 64-aligned.
        assert_eq!(l.facs, ACPI_INFO_PHYSICAL_ADDRESS + 4096);
    }

    #[test]
    fn offline_vcpus_are_disabled() {
        let mut t = [0u8; TABLES_BUF_LEN];
        let mut i = [0u8; INFO_MODULE_LEN];
        let mut r = [0u8; RSDP_MODULE_LEN];
        let cfg = AcpiConfig {
            nr_vcpus: 3,
            online: 1,
            rsdp_unrestricted: false,
        };
        let l = build(&cfg, &mut t, &mut i, &mut r).unwrap();
        let m = (l.madt - l.tables_addr) as usize + 44;
        assert_eq!(t[m + 4], 1);
        assert_eq!(t[m + 12], 0);
        assert_eq!(t[m + 20], 0);
        assert_eq!(l.rsdp_addr, 0xfffc0);
        assert!(build(
            &AcpiConfig {
                nr_vcpus: 129,
                ..cfg
            },
            &mut t,
            &mut i,
            &mut r
        )
        .is_err());
    }
}

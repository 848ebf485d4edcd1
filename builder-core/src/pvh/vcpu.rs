//! The boot vcpu of a PVH guest: the HVM save records `vcpu_hvm` (xg_dom_x86.c) loads with
//! `XEN_DOMCTL_sethvmcontext` (public/arch-x86/hvm/save.h).
//!
//! The vcpu starts in 32-bit flat protected mode, paging off: CS, DS, ES and SS with base 0
//! and limit 4 GiB (access rights 0xc9b and 0xc93), a busy 32-bit TSS of limit 0x67, CR0 =
//! PE | ET, `%rip` at the kernel's `PHYS32_ENTRY` and `%rbx` at the start info. The record
//! must carry the header Xen gave for the domain (its CPUID and TSC rate), so the caller
//! fetches the domain's whole context first and [`bsp_record`] copies its header. Without a
//! device model every vcpu's MTRRs are enabled with write-back as the default type
//! ([`mtrr_record`]), loaded before the BSP's record.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `HVM_SAVE_CODE(END)`
pub const HVM_SAVE_CODE_END: u16 = 0;
/// `HVM_SAVE_CODE(HEADER)`
pub const HVM_SAVE_CODE_HEADER: u16 = 1;
/// `HVM_SAVE_CODE(CPU)`
pub const HVM_SAVE_CODE_CPU: u16 = 2;
/// `HVM_SAVE_CODE(MTRR)`
pub const HVM_SAVE_CODE_MTRR: u16 = 14;
/// `HVM_SAVE_LENGTH(HEADER)`
pub const HEADER_LEN: usize = 24;
/// `HVM_SAVE_LENGTH(CPU)`: `struct hvm_hw_cpu`.
pub const CPU_LEN: usize = 1032;
/// `HVM_SAVE_LENGTH(MTRR)`: `struct hvm_hw_mtrr`.
pub const MTRR_LEN: usize = 240;
/// `struct hvm_save_descriptor`.
pub const DESC_LEN: usize = 8;
/// Bytes of the BSP's record: header, CPU and END, each after its descriptor.
pub const BSP_RECORD_LEN: usize = DESC_LEN + HEADER_LEN + DESC_LEN + CPU_LEN + DESC_LEN;
/// Bytes of an MTRR record: header, MTRR and END.
pub const MTRR_RECORD_LEN: usize = DESC_LEN + HEADER_LEN + DESC_LEN + MTRR_LEN + DESC_LEN;

/// Offsets in `struct hvm_hw_cpu` (checked against save.h by host/tests/abi_layout.rs).
pub mod cpu_off {
    /// `rbx`
    pub const RBX: usize = 520;
    /// `rip`
    pub const RIP: usize = 640;
    /// `rflags`
    pub const RFLAGS: usize = 648;
    /// `cr0`
    pub const CR0: usize = 656;
    /// `dr6`
    pub const DR6: usize = 720;
    /// `dr7`
    pub const DR7: usize = 728;
    /// `cs_limit`; then ds, es, fs, gs, ss, tr (u32 each).
    pub const CS_LIMIT: usize = 768;
    /// `cs_base`; then ds, es, fs, gs, ss, tr (u64 each).
    pub const CS_BASE: usize = 808;
    /// `cs_arbytes`; then ds, es, fs, gs, ss, tr (u32 each).
    pub const CS_ARBYTES: usize = 888;
}
/// Offset of `msr_mtrr_def_type` in `struct hvm_hw_mtrr`.
pub const MTRR_DEF_TYPE_OFF: usize = 232;

const X86_CR0_PE: u64 = 0x01;
const X86_CR0_ET: u64 = 0x10;
const X86_DR6_DEFAULT: u64 = 0xffff_0ff0;
const X86_DR7_DEFAULT: u64 = 0x0000_0400;
const MTRR_TYPE_WRBACK: u64 = 6;
const MTRR_DEF_TYPE_ENABLE: u64 = 1 << 11;

/// Why a record cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HvmContextError {
    /// The domain's context does not start with a header record.
    NoHeader,
    /// The domain's context has no MTRR record for the vcpu.
    NoMtrr(u16),
    /// The domain's context is malformed (a record runs past its end).
    Truncated,
}

impl core::fmt::Display for HvmContextError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoHeader => f.write_str("the domain's HVM context has no header record"),
            Self::NoMtrr(i) => write!(
                f,
                "the domain's HVM context has no MTRR record for vcpu {i}"
            ),
            Self::Truncated => f.write_str("the domain's HVM context is truncated"),
        }
    }
}

/// `struct hvm_save_descriptor`.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Desc {
    typecode: u16,
    instance: u16,
    length: u32,
}
const _: () = assert!(core::mem::size_of::<Desc>() == DESC_LEN);

fn desc(code: u16, instance: u16, len: usize) -> [u8; DESC_LEN] {
    let d = Desc {
        typecode: code,
        instance,
        length: len as u32,
    };
    let mut out = [0u8; DESC_LEN];
    out.copy_from_slice(d.as_bytes());
    out
}

fn read_desc(b: &[u8]) -> Result<Desc, HvmContextError> {
    Desc::read_from_prefix(b)
        .map(|(d, _)| d)
        .map_err(|_| HvmContextError::Truncated)
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(off..off + v.len()) {
        d.copy_from_slice(v);
    }
}

/// The header record (descriptor and `struct hvm_save_header`) at the start of `full`.
fn header(full: &[u8]) -> Result<&[u8], HvmContextError> {
    let h = full
        .get(..DESC_LEN + HEADER_LEN)
        .ok_or(HvmContextError::NoHeader)?;
    let d = read_desc(h)?;
    if d.typecode != HVM_SAVE_CODE_HEADER || d.length as usize != HEADER_LEN {
        return Err(HvmContextError::NoHeader);
    }
    Ok(h)
}

/// Finds record `code`/`instance` in `full` (`hvm_get_save_record`): its body.
pub fn find_record(
    full: &[u8],
    code: u16,
    instance: u16,
) -> Result<Option<&[u8]>, HvmContextError> {
    let mut off = 0usize;
    loop {
        let d = read_desc(full.get(off..).ok_or(HvmContextError::Truncated)?)?;
        let (c, i, len) = (d.typecode, d.instance, d.length as usize);
        if c == HVM_SAVE_CODE_END {
            return Ok(None);
        }
        let body_start = off + DESC_LEN;
        let body = full
            .get(body_start..body_start + len)
            .ok_or(HvmContextError::Truncated)?;
        if c == code && i == instance {
            return Ok(Some(body));
        }
        off = body_start + len;
    }
}

/// The BSP's record for a kernel entered at `entry` with its start info at
/// `start_info_paddr`, carrying the header of the domain's context `full`.
pub fn bsp_record(
    full: &[u8],
    entry: u32,
    start_info_paddr: u64,
) -> Result<[u8; BSP_RECORD_LEN], HvmContextError> {
    let mut r = [0u8; BSP_RECORD_LEN];
    put(&mut r, 0, header(full)?);
    let cpu = DESC_LEN + HEADER_LEN;
    put(&mut r, cpu, &desc(HVM_SAVE_CODE_CPU, 0, CPU_LEN));
    let c = cpu + DESC_LEN;
    use cpu_off::*;
    // cs, ds, es, ss (fs and gs stay null); tr.
    for seg in [0usize, 1, 2, 5] {
        put(&mut r, c + CS_BASE + 8 * seg, &0u64.to_le_bytes());
        put(&mut r, c + CS_LIMIT + 4 * seg, &u32::MAX.to_le_bytes());
        let ar: u32 = if seg == 0 { 0xc9b } else { 0xc93 };
        put(&mut r, c + CS_ARBYTES + 4 * seg, &ar.to_le_bytes());
    }
    put(&mut r, c + CS_LIMIT + 4 * 6, &0x67u32.to_le_bytes());
    put(&mut r, c + CS_ARBYTES + 4 * 6, &0x8bu32.to_le_bytes());
    put(&mut r, c + CR0, &(X86_CR0_PE | X86_CR0_ET).to_le_bytes());
    put(&mut r, c + RIP, &u64::from(entry).to_le_bytes());
    put(&mut r, c + DR6, &X86_DR6_DEFAULT.to_le_bytes());
    put(&mut r, c + DR7, &X86_DR7_DEFAULT.to_le_bytes());
    put(&mut r, c + RBX, &start_info_paddr.to_le_bytes());
    put(&mut r, c + CPU_LEN, &desc(HVM_SAVE_CODE_END, 0, 0));
    Ok(r)
}

/// The MTRR record of vcpu `instance`: the domain's own (from `full`, vcpu 0's, as
/// libxenguest reads it) with MTRRs enabled and write-back as the default type.
pub fn mtrr_record(full: &[u8], instance: u16) -> Result<[u8; MTRR_RECORD_LEN], HvmContextError> {
    let mut r = [0u8; MTRR_RECORD_LEN];
    put(&mut r, 0, header(full)?);
    let mtrr = find_record(full, HVM_SAVE_CODE_MTRR, 0)?.ok_or(HvmContextError::NoMtrr(0))?;
    let m = DESC_LEN + HEADER_LEN;
    put(&mut r, m, &desc(HVM_SAVE_CODE_MTRR, instance, MTRR_LEN));
    put(
        &mut r,
        m + DESC_LEN,
        mtrr.get(..MTRR_LEN).ok_or(HvmContextError::Truncated)?,
    );
    put(
        &mut r,
        m + DESC_LEN + MTRR_DEF_TYPE_OFF,
        &(MTRR_TYPE_WRBACK | MTRR_DEF_TYPE_ENABLE).to_le_bytes(),
    );
    put(
        &mut r,
        m + DESC_LEN + MTRR_LEN,
        &desc(HVM_SAVE_CODE_END, 0, 0),
    );
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn full() -> [u8; 8 + 24 + 8 + 240 + 8] {
        let mut f = [0u8; 8 + 24 + 8 + 240 + 8];
        f[..8].copy_from_slice(&desc(1, 0, 24));
        f[8..12].copy_from_slice(&0x5438_1286u32.to_le_bytes());
        f[32..40].copy_from_slice(&desc(14, 0, 240));
        f[40 + 232] = 0x55;
        f
    }

    #[test]
    fn bsp_starts_flat_at_the_entry() {
        let r = bsp_record(&full(), 0x100_0850, 0x4a0_0000).unwrap();
        let c = 8 + 24 + 8;
        assert_eq!(&r[32..40], &desc(2, 0, 1032));
        assert_eq!(&r[8..12], &0x5438_1286u32.to_le_bytes());
        assert_eq!(
            r[c + cpu_off::RIP..c + cpu_off::RIP + 8],
            0x100_0850u64.to_le_bytes()
        );
        assert_eq!(
            r[c + cpu_off::RBX..c + cpu_off::RBX + 8],
            0x4a0_0000u64.to_le_bytes()
        );
        assert_eq!(r[c + cpu_off::CR0], 0x11);
        assert_eq!(
            r[c + cpu_off::CS_ARBYTES..c + cpu_off::CS_ARBYTES + 2],
            [0x9b, 0x0c]
        );
        assert_eq!(&r[BSP_RECORD_LEN - 8..], &[0u8; 8]);
    }

    #[test]
    fn mtrr_enabled_write_back() {
        let r = mtrr_record(&full(), 1).unwrap();
        assert_eq!(&r[32..40], &desc(14, 1, 240));
        let d = 40 + MTRR_DEF_TYPE_OFF;
        assert_eq!(r[d..d + 8], (6u64 | 1 << 11).to_le_bytes());
        assert!(bsp_record(&[0u8; 4], 0, 0).is_err());
    }
}

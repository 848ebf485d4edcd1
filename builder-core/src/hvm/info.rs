//! `struct hvm_info_table` (public/hvm/hvm_info_table.h): what hvmloader reads at
//! `HVM_INFO_PADDR` to learn the guest's vcpus and memory. libxenguest's `build_hvm_info`
//! writes it with defaults; libxl's `hvm_build_set_params` then sets `apic_mode`,
//! `nr_vcpus` and `vcpu_online` and fixes the checksum. [`table`] writes the final result.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `HVM_INFO_PFN`
pub const HVM_INFO_PFN: u64 = 0x9f;
/// `HVM_INFO_OFFSET`
pub const HVM_INFO_OFFSET: usize = 0x800;
/// `HVM_MAX_VCPUS`
pub const HVM_MAX_VCPUS: u32 = 128;

/// `struct hvm_info_table`.
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct HvmInfoTable {
    /// "HVM INFO"
    pub signature: [u8; 8],
    /// `sizeof(struct hvm_info_table)`
    pub length: u32,
    /// Makes the bytes sum to 0.
    pub checksum: u8,
    /// Whether the firmware builds APIC tables (`apic`).
    pub apic_mode: u8,
    /// Padding before `nr_vcpus`.
    pub pad: [u8; 2],
    /// vcpus of the domain.
    pub nr_vcpus: u32,
    /// End of RAM below the hole, in pages.
    pub low_mem_pgend: u32,
    /// First page of the reserved range below 4 GiB (the ioreq server pages).
    pub reserved_mem_pgstart: u32,
    /// End of RAM above 4 GiB, in pages (0: none).
    pub high_mem_pgend: u32,
    /// Bitmap of the vcpus online at boot.
    pub vcpu_online: [u8; (HVM_MAX_VCPUS as usize).div_ceil(8)],
}
const _: () = assert!(core::mem::size_of::<HvmInfoTable>() == 48);

/// The table libxenguest and libxl leave: `max_vcpus` vcpus, the first `vcpus` online.
pub fn table(
    apic: bool,
    max_vcpus: u32,
    vcpus: u32,
    low_mem_pgend: u32,
    high_mem_pgend: u32,
    reserved_mem_pgstart: u32,
) -> HvmInfoTable {
    let mut t = HvmInfoTable {
        signature: *b"HVM INFO",
        length: core::mem::size_of::<HvmInfoTable>() as u32,
        apic_mode: u8::from(apic),
        nr_vcpus: max_vcpus,
        low_mem_pgend,
        reserved_mem_pgstart,
        high_mem_pgend,
        ..HvmInfoTable::default()
    };
    // libxl copies its avail_vcpus bitmap: bit n for vcpu n.
    for v in 0..vcpus.min(HVM_MAX_VCPUS) {
        if let Some(b) = t.vcpu_online.get_mut((v / 8) as usize) {
            *b |= 1 << (v % 8);
        }
    }
    let sum = t.as_bytes().iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t.checksum = sum.wrapping_neg();
    t
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sums_to_zero_with_online_bits() {
        let t = table(true, 2, 2, 0xf000, 0, 0xfefe8);
        assert_eq!(t.as_bytes().iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(t.vcpu_online[0], 0b11);
        assert_eq!(t.vcpu_online[1], 0);
        assert_eq!(&t.as_bytes()[..8], b"HVM INFO");
        // nr_vcpus at offset 16, as the C layout has it.
        assert_eq!(t.as_bytes()[16], 2);
    }
}

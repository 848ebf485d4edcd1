//! The PVH guest's ACPI tables (pvbuild_core::pvh::acpi) read back by an independent parser,
//! rust-osdev's `acpi` crate, from a model of the guest's physical memory: the RSDP must
//! validate, the XSDT lead to the FADT and MADT, the DSDT be found, and the MADT give one
//! local APIC per vcpu (ids 0, 2, 4, ... as Xen numbers them), enabled when online.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::ptr::NonNull;

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use pvbuild_core::pvh::acpi::{self as pacpi, AcpiConfig};
use pvbuild_core::pvh::layout::ACPI_INFO_PHYSICAL_ADDRESS;

/// Guest-physical memory from `base`, backed by 8-byte aligned storage.
#[derive(Clone)]
struct Mem {
    base: usize,
    ptr: *mut u8,
    len: usize,
}

impl AcpiHandler for Mem {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        assert!(
            phys >= self.base && phys + size <= self.base + self.len,
            "{phys:#x}+{size:#x} outside the model"
        );
        // SAFETY: in bounds of the live buffer (checked above); the mapping does not outlive
        // the test's buffer.
        unsafe {
            let v = NonNull::new(self.ptr.add(phys - self.base).cast::<T>()).unwrap();
            PhysicalMapping::new(phys, v, size, size, self.clone())
        }
    }
    fn unmap_physical_region<T>(_: &PhysicalMapping<Self, T>) {}
}

fn tables(nr_vcpus: u32, online: u32) -> (Vec<u64>, pacpi::AcpiLayout) {
    let mut t = vec![0u8; pacpi::TABLES_BUF_LEN];
    let mut i = vec![0u8; pacpi::INFO_MODULE_LEN];
    let mut r = vec![0u8; pacpi::RSDP_MODULE_LEN];
    let cfg = AcpiConfig {
        nr_vcpus,
        online,
        rsdp_unrestricted: true,
    };
    let l = pacpi::build(&cfg, &mut t, &mut i, &mut r).unwrap();
    // The guest's view from ACPI_INFO_PHYSICAL_ADDRESS: the modules where the plan puts them.
    let mut mem = vec![0u64; (18 * 4096) / 8];
    let bytes: &mut [u8] = bytemuck_bytes(&mut mem);
    for (addr, data) in [
        (l.info_addr, &i[..]),
        (l.tables_addr, &t[..l.tables_len as usize]),
        (l.rsdp_addr, &r[..]),
    ] {
        let off = (addr - ACPI_INFO_PHYSICAL_ADDRESS) as usize;
        bytes[off..off + data.len()].copy_from_slice(data);
    }
    (mem, l)
}

fn bytemuck_bytes(v: &mut [u64]) -> &mut [u8] {
    zerocopy::IntoBytes::as_mut_bytes(v)
}

fn parse(mem: &mut [u64], l: &pacpi::AcpiLayout) -> AcpiTables<Mem> {
    let h = Mem {
        base: ACPI_INFO_PHYSICAL_ADDRESS as usize,
        ptr: mem.as_mut_ptr().cast::<u8>(),
        len: mem.len() * 8,
    };
    // SAFETY: the handler maps only inside `mem`, which outlives the tables in each test.
    unsafe { AcpiTables::from_rsdp(h, l.rsdp_addr as usize) }
        .expect("the acpi crate rejects the tables")
}

/// (processor id, APIC id, enabled) of every local APIC entry of the MADT, and its LAPIC
/// address; any other entry is an error.
fn lapics(t: &AcpiTables<Mem>) -> (u32, Vec<(u8, u8, bool)>) {
    let madt = t.find_table::<Madt>().expect("no MADT");
    let addr = madt.get().local_apic_address;
    let mut v = Vec::new();
    for e in madt.get().entries() {
        match e {
            MadtEntry::LocalApic(l) => v.push((l.processor_id, l.apic_id, { l.flags } & 1 == 1)),
            _ => panic!("unexpected MADT entry"),
        }
    }
    (addr, v)
}

#[test]
fn an_independent_parser_reads_two_online_vcpus() {
    let (mut mem, l) = tables(2, 2);
    let t = parse(&mut mem, &l);
    let dsdt = t.dsdt().expect("no DSDT");
    assert_eq!(dsdt.address, l.dsdt as usize + 36);
    // libacpi's dsdt_pvh: 27,803 bytes with its header (builder-core/tests/dsdt_libxl.rs
    // holds the bytes to libxl's own).
    assert_eq!(dsdt.length, 27_803 - 36);
    let fadt = t.find_table::<Fadt>().expect("no FADT");
    assert_eq!(fadt.dsdt_address().unwrap(), l.dsdt as usize);
    assert_eq!(fadt.facs_address().unwrap(), l.facs as usize);
    assert!(
        fadt.pm_timer_block().unwrap().is_none(),
        "libxl gives a PVH guest no PM timer"
    );
    let (lapic, cpus) = lapics(&t);
    assert_eq!(lapic, 0xfee0_0000);
    assert_eq!(cpus, [(0, 0, true), (1, 2, true)]);
}

#[test]
fn offline_vcpus_are_disabled_processors() {
    let (mut mem, l) = tables(4, 1);
    let t = parse(&mut mem, &l);
    let (_, cpus) = lapics(&t);
    assert_eq!(
        cpus,
        [(0, 0, true), (1, 2, false), (2, 4, false), (3, 6, false)]
    );
}

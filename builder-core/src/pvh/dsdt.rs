//! The DSDT of a PVH guest: libacpi's `dsdt_pvh`, which libxl copies in unchanged
//! (`acpi_build_tables`, `memcpy` of `config->dsdt_anycpu`).
//!
//! Xen's build makes it from ASL (tools/libacpi/Makefile): a definition block
//! `("DSDT.aml", "DSDT", 5, "Xen", "HVM", 0)` holding `dsdt_acpi_info.asl` (the fields of the
//! `acpi_info` page at [`ACPI_INFO_PHYSICAL_ADDRESS`]) and the output of
//! `mk_dsdt --maxcpu any --dm-version none`: a Processor object for each of the 128 possible
//! vcpus, with `_MAT` (its MADT entry, through the `acpi_info` page), `_STA` (present when
//! its MADT entry is enabled and it is below `NCPU`) and `_EJ0`; the `PRSC` method, which
//! compares the online-vcpu bitmap Xen keeps at I/O port 0xaf00 with the MADT and notifies
//! the OS of each change; and the GPE 2 handler that calls it (CPU hotplug). `iasl` compiles
//! it. This module writes the same AML, in the same order, as [`super::aml`] encodes it.
//!
//! The table does not depend on the guest: `NCPU` and the MADT's address are read at run
//! time from `acpi_info`. Its header's creator fields are those of the `iasl` that compiled
//! libxl's copy (Debian's Xen 4.17: "INTL", 2020-09-25), so that the guest's tables are
//! libxl's byte for byte; the test against Debian's libxenlight holds it to that.

use super::aml::{self, arg, local, op, Aml, AmlOverflow};
use super::layout::ACPI_INFO_PHYSICAL_ADDRESS;

/// Processor objects in the DSDT (`HVM_MAX_VCPUS`: `mk_dsdt --maxcpu any`).
pub const DSDT_MAX_CPUS: u32 = 128;
/// Bytes of the `acpi_info` fields the DSDT maps (`OperationRegion (BIOS, ..., 0x28)`).
const ACPI_INFO_LEN: u64 = 0x28;
/// The processor block every Processor object names (`0x0000b010`, length 6).
const PBLK_ADDR: u32 = 0xb010;
const PBLK_LEN: u8 = 6;
/// The I/O port of Xen's online-vcpu bitmap (`PRST`), one bit per possible vcpu.
const PRST_PORT: u64 = 0xaf00;
/// What `PMAT` returns for a vcpu beyond `NCPU`: a disabled LAPIC entry.
const PMAT_ABSENT: [u8; 8] = [0, 8, 0xff, 0xff, 0, 0, 0, 0];
/// The definition block's header fields.
const REVISION: u8 = 5;
const OEM_ID: &[u8; 6] = b"Xen\0\0\0";
const OEM_TABLE_ID: &[u8; 8] = b"HVM\0\0\0\0\0";
const CREATOR_ID: &[u8; 4] = b"INTL";
const CREATOR_REVISION: u32 = 0x2020_0925;
const HEADER_LEN: usize = 36;

/// The fields of the `acpi_info` page (`dsdt_acpi_info.asl`), in order, with their widths in
/// bits; `""` is `Offset (0x02)`.
const ACPI_INFO_FIELDS: [(&str, usize); 15] = [
    ("UAR1", 1),
    ("UAR2", 1),
    ("LTP1", 1),
    ("HPET", 1),
    ("", 12),
    ("NCPU", 16),
    ("PMIN", 32),
    ("PLEN", 32),
    ("MSUA", 32),
    ("MAPA", 32),
    ("VGIA", 32),
    ("LMIN", 32),
    ("HMIN", 32),
    ("LLEN", 32),
    ("HLEN", 32),
];

/// A processor's name, `PR%02X`.
struct PrName([u8; 4]);

impl PrName {
    fn new(cpu: u32) -> Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let d = |n: u32| HEX.get((n & 0xf) as usize).copied().unwrap_or(b'0');
        Self([b'P', b'R', d(cpu >> 4), d(cpu)])
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or("PR00")
    }
}

/// `dsdt_acpi_info.asl`: the `acpi_info` page's fields.
fn acpi_info(a: &mut Aml<'_>) {
    a.package(op::SCOPE, |a| {
        a.name("_SB")
            .op_region(
                "BIOS",
                aml::SYSTEM_MEMORY,
                |a| {
                    a.int(ACPI_INFO_PHYSICAL_ADDRESS);
                },
                |a| {
                    a.int(ACPI_INFO_LEN);
                },
            )
            .field("BIOS", aml::BYTE_ACC_NOLOCK_PRESERVE, &ACPI_INFO_FIELDS);
    });
}

/// `Processor (PRnn, n, 0x0000b010, 0x06) { ... }` with its `_HID`, `_UID`, MADT entry
/// fields and `_MAT`, `_STA`, `_EJ0`.
fn processor(a: &mut Aml<'_>, cpu: u32) {
    let name = PrName::new(cpu);
    a.package(op::PROCESSOR, |a| {
        a.name(name.as_str())
            .byte(cpu as u8)
            .bytes(&PBLK_ADDR.to_le_bytes())
            .byte(PBLK_LEN)
            .named("_HID", |a| {
                a.string("ACPI0007");
            })
            .named("_UID", |a| {
                a.int(cpu.into());
            })
            // This processor's MADT LAPIC entry: `Add (\_SB.MAPA, cpu * 8)`, 8 bytes.
            .op_region(
                "MATR",
                aml::SYSTEM_MEMORY,
                |a| {
                    a.bytes(op::ADD)
                        .name("MAPA")
                        .int(u64::from(cpu) * 8)
                        .null_target();
                },
                |a| {
                    a.int(8);
                },
            )
            .field("MATR", aml::BYTE_ACC_NOLOCK_PRESERVE, &[("MAT", 64)])
            .field(
                "MATR",
                aml::BYTE_ACC_NOLOCK_PRESERVE,
                &[("", 32), ("FLG", 1)],
            )
            .method("_MAT", 0, |a| {
                a.bytes(op::RETURN);
                if cpu == 0 {
                    a.bytes(op::TO_BUFFER).name("MAT").null_target();
                } else {
                    a.name("PMAT").int(cpu.into()).name("MAT");
                }
            })
            .method("_STA", 0, |a| {
                let present = |a: &mut Aml<'_>| {
                    a.package(op::IF, |a| {
                        a.name("FLG").bytes(op::RETURN).int(0x0f);
                    });
                };
                if cpu == 0 {
                    present(a);
                } else {
                    a.package(op::IF, |a| {
                        a.bytes(op::LLESS).int(cpu.into()).name("NCPU");
                        present(a);
                    });
                }
                a.bytes(op::RETURN).int(0);
            })
            .method("_EJ0", 1, |a| {
                a.bytes(op::SLEEP).int(0xc8);
            });
    });
}

/// `PRSC`: for each vcpu, its bit of `PRS` against its MADT entry's enabled flag; a change
/// is copied to the MADT (and its checksum `MSU` adjusted) and notified (1: device check,
/// 3: eject request).
fn prsc(a: &mut Aml<'_>) {
    a.method("PRSC", 0, |a| {
        a.bytes(op::STORE)
            .bytes(op::TO_BUFFER)
            .name("PRS")
            .null_target()
            .byte(local(0));
        for cpu in 0..DSDT_MAX_CPUS {
            if cpu & 7 == 0 {
                // Store (DerefOf (Index (Local0, cpu / 8)), Local1)
                a.bytes(op::STORE)
                    .bytes(op::DEREF_OF)
                    .bytes(op::INDEX)
                    .byte(local(0))
                    .int((cpu / 8).into())
                    .null_target()
                    .byte(local(1));
            } else {
                a.bytes(op::SHIFT_RIGHT)
                    .byte(local(1))
                    .int(1)
                    .byte(local(1));
            }
            a.bytes(op::AND).byte(local(1)).int(1).byte(local(2));
            let name = PrName::new(cpu);
            let flg = flg_path(&name);
            let flg = core::str::from_utf8(&flg).unwrap_or("");
            a.package(op::IF, |a| {
                a.bytes(op::LNOT).bytes(op::LEQUAL).byte(local(2)).name(flg);
                a.bytes(op::STORE).byte(local(2)).name(flg);
                a.package(op::IF, |a| {
                    a.bytes(op::LEQUAL).byte(local(2)).int(1);
                    a.bytes(op::NOTIFY).name(name.as_str()).int(1);
                    a.bytes(op::SUBTRACT).name("MSU").int(1).name("MSU");
                });
                a.package(op::ELSE, |a| {
                    a.bytes(op::NOTIFY).name(name.as_str()).int(3);
                    a.bytes(op::ADD).name("MSU").int(1).name("MSU");
                });
            });
        }
        a.bytes(op::RETURN).int(1);
    });
}

/// `^PRnn.FLG`: iasl's shortening of `\_SB.PRnn.FLG` inside `\_SB.PRSC`.
fn flg_path(name: &PrName) -> [u8; 9] {
    let [p, r, h, l] = name.0;
    [b'^', p, r, h, l, b'.', b'F', b'L', b'G']
}

/// `mk_dsdt --maxcpu any --dm-version none`: the processors and CPU hotplug.
fn processors(a: &mut Aml<'_>) {
    a.package(op::SCOPE, |a| {
        a.name("_SB");
        // The MADT's checksum byte, which PRSC keeps right.
        a.op_region(
            "MSUM",
            aml::SYSTEM_MEMORY,
            |a| {
                a.name("MSUA");
            },
            |a| {
                a.int(1);
            },
        )
        .field("MSUM", aml::BYTE_ACC_NOLOCK_PRESERVE, &[("MSU", 8)]);
        // PMAT (cpu, MAT): the MADT entry of a vcpu below NCPU, else a disabled one.
        a.method("PMAT", 2, |a| {
            a.package(op::IF, |a| {
                a.bytes(op::LLESS).byte(arg(0)).name("NCPU");
                a.bytes(op::RETURN)
                    .bytes(op::TO_BUFFER)
                    .byte(arg(1))
                    .null_target();
            });
            a.bytes(op::RETURN).package(op::BUFFER, |a| {
                a.int(PMAT_ABSENT.len() as u64).bytes(&PMAT_ABSENT);
            });
        });
        for cpu in 0..DSDT_MAX_CPUS {
            processor(a, cpu);
        }
        a.op_region(
            "PRST",
            aml::SYSTEM_IO,
            |a| {
                a.int(PRST_PORT);
            },
            |a| {
                a.int(u64::from(DSDT_MAX_CPUS / 8));
            },
        )
        .field(
            "PRST",
            aml::BYTE_ACC_NOLOCK_PRESERVE,
            &[("PRS", DSDT_MAX_CPUS as usize)],
        );
        prsc(a);
    });
    // GPE 2 (edge, `_E02` for a device model other than qemu-traditional): CPU hotplug.
    a.package(op::SCOPE, |a| {
        a.name("_GPE").method("_E02", 0, |a| {
            a.name("\\_SB.PRSC");
        });
    });
}

/// Writes the DSDT into `buf`; returns its length.
pub fn write(buf: &mut [u8]) -> Result<usize, AmlOverflow> {
    let mut a = Aml::new(buf);
    a.bytes(&[0; HEADER_LEN]);
    acpi_info(&mut a);
    processors(&mut a);
    let len = a.finish()?;
    let h = buf.get_mut(..len).ok_or(AmlOverflow { needed: len })?;
    let len32 = u32::try_from(len).map_err(|_| AmlOverflow { needed: len })?;
    // struct acpi_header: signature, length, revision, checksum, OEM ids, creator.
    for (off, v) in [
        (0, &b"DSDT"[..]),
        (4, &len32.to_le_bytes()[..]),
        (8, &[REVISION][..]),
        (10, &OEM_ID[..]),
        (16, &OEM_TABLE_ID[..]),
        (28, &CREATOR_ID[..]),
        (32, &CREATOR_REVISION.to_le_bytes()[..]),
    ] {
        if let Some(d) = h.get_mut(off..off + v.len()) {
            d.copy_from_slice(v);
        }
    }
    let sum = h.iter().fold(0u8, |s, x| s.wrapping_add(*x));
    if let Some(c) = h.get_mut(9) {
        *c = sum.wrapping_neg();
    }
    Ok(len)
}

//! # pvbuild-core: the Xen PV boot protocol, as pure computation
//!
//! This crate is the part of a Xen PV domain builder that needs no hypervisor: it probes and
//! parses guest images, decompresses them, solves the guest's initial virtual layout, writes
//! page tables, the phys-to-machine list, `start_info` and `shared_info`, and fills the boot
//! vcpu's context. It touches guest memory only through [`mem::GuestMemory`], so the same code
//! runs against privcmd mappings in dom0, an in-memory image in tests, or a unikernel's own
//! mappings.
//!
//! It is `#![no_std]`; the `alloc` feature (on by default) adds the decoders that need a heap.
//!
//! Reading order, following a build:
//! [`addr`] → [`probe`] → [`bzimage`] / [`decompress`] → [`elf`] / [`notes`] → [`image`] →
//! [`layout`] → [`module`] → [`paging`] → [`p2m`] → [`start_info`] → [`vcpu`] → [`build`];
//! [`walker`] checks the result independently, from what the guest is handed (cr3, rsi), the
//! way the MMU and the kernel will see it.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod addr;
pub mod bin;
pub mod bsdsym;
pub mod build;
pub mod bzimage;
pub mod decompress;
pub mod elf;
pub mod hvm;
pub mod image;
pub mod kernel;
pub mod layout;
pub mod limits;
pub mod mem;
pub mod module;
pub mod notes;
pub mod p2m;
pub mod paging;
pub mod probe;
pub mod pvh;
pub mod start_info;
pub mod vcpu;
#[cfg(feature = "alloc")]
pub mod walker;
pub mod xen_guest;

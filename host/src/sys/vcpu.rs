//! `xen/arch-x86/xen.h` and `xen-x86_64.h`: the initial state of a 64-bit PV vcpu.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `VGCF_i387_valid`.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_in_kernel`.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_online`.
pub const VGCF_ONLINE: u64 = 1 << 5;

/// The 64-bit `struct cpu_user_regs` and `struct vcpu_guest_context`: the core's definitions
/// (it fills them), re-exported so that the header test checks the very type `create` passes to
/// `XEN_DOMCTL_setvcpucontext`.
pub use pvbuild_core::vcpu::{
    CpuUserRegsX86_64 as CpuUserRegs, VcpuGuestContextX86_64 as VcpuGuestContext,
};

/// `struct trap_info`: one entry of the virtual IDT.
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-3: privilege level; bit 4: clear the event mask on entry.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Implicit C padding, made explicit.
    pub _pad: u32,
    /// Handler address.
    pub address: u64,
}
const _: () = assert!(size_of::<TrapInfo>() == 16);

//! `xen/arch-x86/xen.h` and `xen-x86_64.h`: the initial state of a 64-bit PV vcpu.

use core::mem::size_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `VGCF_i387_valid`.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_in_kernel`.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_online`.
pub const VGCF_ONLINE: u64 = 1 << 5;

/// `struct cpu_user_regs` (x86_64).
#[repr(C)]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[allow(missing_docs)]
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub error_code: u32,
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub _pad0: [u16; 1],
    pub saved_upcall_mask: u8,
    pub _pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub _pad2: [u16; 3],
    pub es: u16,
    pub _pad3: [u16; 3],
    pub ds: u16,
    pub _pad4: [u16; 3],
    pub fs: u16,
    pub _pad5: [u16; 3],
    pub gs: u16,
    pub _pad6: [u16; 3],
}
const _: () = assert!(size_of::<CpuUserRegs>() == 200);

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

/// `struct vcpu_guest_context` (x86_64, as the toolstack sees it).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuGuestContext {
    /// FXSAVE image.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// General registers, rip, rflags, selectors.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT machine frames.
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Kernel stack selector (virtual TSS SS1).
    pub kernel_ss: u64,
    /// Kernel stack pointer (virtual TSS SP1).
    pub kernel_sp: u64,
    /// CR0-CR7; cr3 holds the top page table as `mfn << 12` (and ctrlreg\[1\] the user one).
    pub ctrlreg: [u64; 8],
    /// DR0-DR7.
    pub debugreg: [u64; 8],
    /// Event callback.
    pub event_callback_eip: u64,
    /// Failsafe callback.
    pub failsafe_callback_eip: u64,
    /// Syscall callback.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}
const _: () = assert!(size_of::<VcpuGuestContext>() == 5168);

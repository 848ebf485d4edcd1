//! The boot vcpu's initial context (`struct vcpu_guest_context`, arch-x86/xen-x86_64.h and
//! xen-x86_32.h; `xen/foreign/x86_{32,64}.h`), filled as libxenguest's `vcpu_x86_64` /
//! `vcpu_x86_32`: flat kernel selectors, `rip` at the entry point, `rsp` at the top of the
//! boot stack, `rsi` at start_info, interrupts enabled, the default debug registers,
//! `VGCF_in_kernel | VGCF_online`, and cr3 holding the top table's machine frame. Trap table,
//! LDT, GDT and callbacks stay zero: the kernel sets them up itself.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::addr::{Mfn, PAGE_SIZE};
use crate::image::{GuestType, PaeMode};
use crate::layout::Layout;

/// `VGCF_in_kernel`
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `VGCF_online`
pub const VGCF_ONLINE: u64 = 1 << 5;
/// `FLAT_KERNEL_CS` of a 64-bit guest (`FLAT_RING3_CS64`).
pub const FLAT_KERNEL_CS_X86_64: u16 = 0xe033;
/// `FLAT_KERNEL_DS` of a 64-bit guest (`FLAT_RING3_DS64`, the null selector).
pub const FLAT_KERNEL_DS_X86_64: u16 = 0x0000;
/// `FLAT_KERNEL_SS` of a 64-bit guest (`FLAT_RING3_SS64`).
pub const FLAT_KERNEL_SS_X86_64: u16 = 0xe02b;
/// `FLAT_KERNEL_CS` of a 32-bit guest (`FLAT_RING1_CS`).
pub const FLAT_KERNEL_CS_X86_32: u16 = 0xe019;
/// `FLAT_KERNEL_DS` of a 32-bit guest (`FLAT_RING1_DS`).
pub const FLAT_KERNEL_DS_X86_32: u16 = 0xe021;
/// `FLAT_KERNEL_SS` of a 32-bit guest (`FLAT_RING1_SS`).
pub const FLAT_KERNEL_SS_X86_32: u16 = 0xe021;
/// `X86_DR6_DEFAULT`
pub const X86_DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `X86_DR7_DEFAULT`
pub const X86_DR7_DEFAULT: u64 = 0x0000_0400;
/// EFLAGS.IF
pub const EFLAGS_IF: u64 = 1 << 9;
/// `VMASST_TYPE_pae_extended_cr3`
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;

/// `struct cpu_user_regs` of a 64-bit guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct CpuUserRegsX86_64 {
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
    pub _pad0: u16,
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
const _: () = assert!(core::mem::size_of::<CpuUserRegsX86_64>() == 200);

/// `struct vcpu_guest_context` of a 64-bit guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct VcpuGuestContextX86_64 {
    pub fpu_ctxt: [u8; 512],
    pub flags: u64,
    pub user_regs: CpuUserRegsX86_64,
    /// `trap_info[256]`, 16 bytes each.
    pub trap_ctxt: [[u64; 2]; 256],
    pub ldt_base: u64,
    pub ldt_ents: u64,
    pub gdt_frames: [u64; 16],
    pub gdt_ents: u64,
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    pub ctrlreg: [u64; 8],
    pub debugreg: [u64; 8],
    pub event_callback_eip: u64,
    pub failsafe_callback_eip: u64,
    pub syscall_callback_eip: u64,
    pub vm_assist: u64,
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
}
const _: () = assert!(core::mem::size_of::<VcpuGuestContextX86_64>() == 5168);

/// `struct cpu_user_regs` of a 32-bit guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct CpuUserRegsX86_32 {
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub esi: u32,
    pub edi: u32,
    pub ebp: u32,
    pub eax: u32,
    pub error_code: u16,
    pub entry_vector: u16,
    pub eip: u32,
    pub cs: u16,
    pub saved_upcall_mask: u8,
    pub _pad0: u8,
    pub eflags: u32,
    pub esp: u32,
    pub ss: u16,
    pub _pad1: u16,
    pub es: u16,
    pub _pad2: u16,
    pub ds: u16,
    pub _pad3: u16,
    pub fs: u16,
    pub _pad4: u16,
    pub gs: u16,
    pub _pad5: u16,
}
const _: () = assert!(core::mem::size_of::<CpuUserRegsX86_32>() == 68);

/// `struct vcpu_guest_context` of a 32-bit guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct VcpuGuestContextX86_32 {
    pub fpu_ctxt: [u8; 512],
    pub flags: u32,
    pub user_regs: CpuUserRegsX86_32,
    /// `trap_info[256]`, 8 bytes each.
    pub trap_ctxt: [[u32; 2]; 256],
    pub ldt_base: u32,
    pub ldt_ents: u32,
    pub gdt_frames: [u32; 16],
    pub gdt_ents: u32,
    pub kernel_ss: u32,
    pub kernel_sp: u32,
    pub ctrlreg: [u32; 8],
    pub debugreg: [u32; 8],
    pub event_callback_cs: u32,
    pub event_callback_eip: u32,
    pub failsafe_callback_cs: u32,
    pub failsafe_callback_eip: u32,
    pub vm_assist: u32,
}
const _: () = assert!(core::mem::size_of::<VcpuGuestContextX86_32>() == 2800);

/// The boot vcpu's context, in the guest's layout.
// Held by value: the core allocates nothing, and the host only borrows the bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum VcpuContext {
    /// 64-bit guest.
    X86_64(VcpuGuestContextX86_64),
    /// 32-bit guest (PAE or 2-level).
    X86_32(VcpuGuestContextX86_32),
}

impl VcpuContext {
    /// The bytes to hand to `XEN_DOMCTL_setvcpucontext`.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            VcpuContext::X86_64(c) => c.as_bytes(),
            VcpuContext::X86_32(c) => c.as_bytes(),
        }
    }
}

/// `xen_pfn_to_cr3` of a 32-bit guest: the frame number folded into 32 bits.
pub const fn xen_pfn_to_cr3_x86_32(mfn: u64) -> u32 {
    // `(pfn << 12) | (pfn >> 20)` on a 32-bit value: a rotation.
    (mfn as u32).rotate_left(12)
}

/// `xen_pfn_to_cr3` of a 64-bit guest.
pub const fn xen_pfn_to_cr3_x86_64(mfn: u64) -> u64 {
    mfn << 12
}

/// Errors making the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VcpuError {
    /// A value does not fit a 32-bit register.
    TooLarge(&'static str, u64),
    /// Address arithmetic overflowed.
    Overflow,
}

/// The boot vcpu's context for `layout`; `top_mfn` is the machine frame of the top table.
pub fn boot_context(layout: &Layout, pae: PaeMode, top_mfn: Mfn) -> Result<VcpuContext, VcpuError> {
    let va = |pfn: u64| {
        pfn.checked_mul(PAGE_SIZE)
            .and_then(|o| layout.virt_base.checked_add(o))
            .ok_or(VcpuError::Overflow)
    };
    let sp = va(layout
        .bootstack_pfn
        .checked_add(1)
        .ok_or(VcpuError::Overflow)?)?;
    let si = va(layout.start_info_pfn)?;
    match layout.guest_type {
        GuestType::X86_64 => {
            let mut c = VcpuGuestContextX86_64::new_zeroed();
            c.user_regs.rip = layout.virt_entry;
            c.user_regs.rsp = sp;
            c.user_regs.rsi = si;
            c.user_regs.rflags = EFLAGS_IF;
            c.debugreg[6] = X86_DR6_DEFAULT;
            c.debugreg[7] = X86_DR7_DEFAULT;
            c.flags = VGCF_IN_KERNEL | VGCF_ONLINE;
            c.ctrlreg[3] = xen_pfn_to_cr3_x86_64(top_mfn.get());
            c.user_regs.ds = FLAT_KERNEL_DS_X86_64;
            c.user_regs.es = FLAT_KERNEL_DS_X86_64;
            c.user_regs.fs = FLAT_KERNEL_DS_X86_64;
            c.user_regs.gs = FLAT_KERNEL_DS_X86_64;
            c.user_regs.ss = FLAT_KERNEL_SS_X86_64;
            c.user_regs.cs = FLAT_KERNEL_CS_X86_64;
            c.kernel_ss = u64::from(c.user_regs.ss);
            // libxenguest writes `kernel_sp = user_regs.esp`; in the tools' x86_64 view
            // (xen/foreign/x86_64.h, `__DECL_REG`) `esp` and `rsp` are one 64-bit union
            // member, so that is the whole of rsp.
            c.kernel_sp = c.user_regs.rsp;
            Ok(VcpuContext::X86_64(c))
        }
        GuestType::X86_32Pae | GuestType::X86_32 => {
            let w =
                |n: &'static str, v: u64| u32::try_from(v).map_err(|_| VcpuError::TooLarge(n, v));
            let mut c = VcpuGuestContextX86_32::new_zeroed();
            c.user_regs.eip = w("eip", layout.virt_entry)?;
            c.user_regs.esp = w("esp", sp)?;
            c.user_regs.esi = w("esi", si)?;
            c.user_regs.eflags = EFLAGS_IF as u32;
            c.debugreg[6] = X86_DR6_DEFAULT as u32;
            c.debugreg[7] = X86_DR7_DEFAULT as u32;
            c.flags = (VGCF_IN_KERNEL | VGCF_ONLINE) as u32;
            if matches!(pae, PaeMode::ExtendedCr3 | PaeMode::Bimodal) {
                c.vm_assist |= 1 << VMASST_TYPE_PAE_EXTENDED_CR3;
            }
            c.ctrlreg[3] = xen_pfn_to_cr3_x86_32(top_mfn.get());
            c.user_regs.ds = FLAT_KERNEL_DS_X86_32;
            c.user_regs.es = FLAT_KERNEL_DS_X86_32;
            c.user_regs.fs = FLAT_KERNEL_DS_X86_32;
            c.user_regs.gs = FLAT_KERNEL_DS_X86_32;
            c.user_regs.ss = FLAT_KERNEL_SS_X86_32;
            c.user_regs.cs = FLAT_KERNEL_CS_X86_32;
            c.kernel_ss = u32::from(c.user_regs.ss);
            c.kernel_sp = c.user_regs.esp;
            Ok(VcpuContext::X86_32(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cr3_folding() {
        assert_eq!(xen_pfn_to_cr3_x86_64(0x7aa03), 0x7aa03000);
        assert_eq!(xen_pfn_to_cr3_x86_32(0x123456), 0x23456001);
    }

    #[test]
    fn field_offsets_match_xen_headers() {
        // Offsets from xen/foreign/x86_64.h and x86_32.h (offsetof, gcc).
        let c = VcpuGuestContextX86_64::new_zeroed();
        let base = core::ptr::addr_of!(c) as usize;
        assert_eq!(core::ptr::addr_of!(c.user_regs) as usize - base, 520);
        assert_eq!(
            core::ptr::addr_of!(c.user_regs.rip) as usize - base,
            520 + 128
        );
        assert_eq!(
            core::ptr::addr_of!(c.user_regs.rsp) as usize - base,
            520 + 152
        );
        assert_eq!(core::ptr::addr_of!(c.kernel_ss) as usize - base, 4968);
        assert_eq!(core::ptr::addr_of!(c.ctrlreg) as usize - base, 4984);
        assert_eq!(core::ptr::addr_of!(c.vm_assist) as usize - base, 5136);
        let c = VcpuGuestContextX86_32::new_zeroed();
        let base = core::ptr::addr_of!(c) as usize;
        assert_eq!(core::ptr::addr_of!(c.user_regs) as usize - base, 516);
        assert_eq!(core::ptr::addr_of!(c.trap_ctxt) as usize - base, 584);
        assert_eq!(core::ptr::addr_of!(c.kernel_ss) as usize - base, 2708);
        assert_eq!(core::ptr::addr_of!(c.ctrlreg) as usize - base, 2716);
        assert_eq!(
            core::ptr::addr_of!(c.event_callback_cs) as usize - base,
            2780
        );
    }
}

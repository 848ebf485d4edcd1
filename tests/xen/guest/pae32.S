/*
 * pae32.S: a tiny 32-bit PAE Xen PV kernel (issue 3, scenario 5).
 *
 * An ELF32 i386 image whose PT_NOTE segment carries the Xen ELF notes of
 * xen/include/public/elfnote.h: GUEST_OS, XEN_VERSION "xen-3.0", VIRT_BASE
 * 0xC0000000, PADDR_OFFSET 0, ENTRY, HYPERCALL_PAGE, PAE_MODE "yes" and
 * LOADER "generic". A builder reads it as guest type xen-3.0-x86_32p. The
 * harness's Xen is built without 32-bit PV (CONFIG_PV32 off), so it must be
 * refused there before any domain exists; on a Xen that runs 32-bit PV guests
 * it would print a line on the Xen console and power off.
 *
 * Linked by build-pae32.sh at virtual 0xC0100000, physical 0x100000 (virtual =
 * physical + VIRT_BASE - PADDR_OFFSET, as libelf computes it).
 * Build: as --32 pae32.S; ld -m elf_i386 with the script build-pae32.sh writes.
 */

#define XEN_ELFNOTE_ENTRY          1
#define XEN_ELFNOTE_HYPERCALL_PAGE 2
#define XEN_ELFNOTE_VIRT_BASE      3
#define XEN_ELFNOTE_PADDR_OFFSET   4
#define XEN_ELFNOTE_XEN_VERSION    5
#define XEN_ELFNOTE_GUEST_OS       6
#define XEN_ELFNOTE_LOADER         8
#define XEN_ELFNOTE_PAE_MODE       9

#define __HYPERVISOR_console_io 18
#define __HYPERVISOR_sched_op   29
#define CONSOLEIO_write         0
#define SCHEDOP_shutdown        2
#define SHUTDOWN_poweroff       0

/* One ELF note, in the layout of Linux's ELFNOTE macro: name "Xen". */
#define XEN_NOTE(type, desc...)         \
    .balign 4;                          \
    .long 2f - 1f;                      \
    .long 4f - 3f;                      \
    .long type;                         \
1:  .asciz "Xen";                       \
2:  .balign 4;                          \
3:  desc;                               \
4:  .balign 4

    .section .note.Xen, "a", @note
    XEN_NOTE(XEN_ELFNOTE_GUEST_OS,       .asciz "pvbuild-pae32")
    XEN_NOTE(XEN_ELFNOTE_XEN_VERSION,    .asciz "xen-3.0")
    XEN_NOTE(XEN_ELFNOTE_VIRT_BASE,      .long 0xC0000000)
    XEN_NOTE(XEN_ELFNOTE_PADDR_OFFSET,   .long 0)
    XEN_NOTE(XEN_ELFNOTE_ENTRY,          .long _start)
    XEN_NOTE(XEN_ELFNOTE_HYPERCALL_PAGE, .long hypercall_page)
    XEN_NOTE(XEN_ELFNOTE_PAE_MODE,       .asciz "yes")
    XEN_NOTE(XEN_ELFNOTE_LOADER,         .asciz "generic")

    .text
    .code32
    .globl _start
_start:
    /* Xen starts us with esi = start_info and a stack inside the boot area. */
    movl $__HYPERVISOR_console_io * 32 + hypercall_page, %eax
    movl $CONSOLEIO_write, %ebx
    movl $msg_end - msg, %ecx
    movl $msg, %edx
    call *%eax
    movl $SHUTDOWN_poweroff, shutdown_reason
    movl $SCHEDOP_shutdown, %ebx
    movl $shutdown_reason, %ecx
    call hypercall_page + __HYPERVISOR_sched_op * 32
1:  hlt
    jmp 1b

    /* Xen fills this page with the hypercall stubs (32 bytes each). */
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc

    .data
msg:
    .ascii "PAE32-GUEST-RAN\n"
msg_end:
    .balign 4
shutdown_reason:
    .long 0

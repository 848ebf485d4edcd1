//! The Xen ELF notes (xen/include/public/elfnote.h) in a `.note.Xen` section that the
//! linker script puts in the PT_NOTE segment.
//!
//! Declared: GUEST_OS, GUEST_VERSION, XEN_VERSION, LOADER, VIRT_BASE, PADDR_OFFSET, ENTRY,
//! HYPERCALL_PAGE, FEATURES. Deliberately NOT declared: INIT_P2M (the p2m list must be in
//! the initial mapping, so `mfn_list` is checked there) and MOD_START_PFN (the module must be
//! mapped by the builder and `mod_start` is a virtual address).

core::arch::global_asm!(
    r#"
    .macro xen_note type, desc_start, desc_end
        .p2align 2
        .long 4
        .long \desc_end - \desc_start
        .long \type
        .asciz "Xen"
        .p2align 2
    .endm

    .pushsection .note.Xen, "a", @note

    xen_note 6, 10f, 11f           /* XEN_ELFNOTE_GUEST_OS */
10: .asciz "pvbuild-test"
11:
    xen_note 7, 10f, 11f           /* XEN_ELFNOTE_GUEST_VERSION */
10: .asciz "1"
11:
    xen_note 5, 10f, 11f           /* XEN_ELFNOTE_XEN_VERSION */
10: .asciz "xen-3.0"
11:
    xen_note 8, 10f, 11f           /* XEN_ELFNOTE_LOADER */
10: .asciz "generic"
11:
    xen_note 3, 10f, 11f           /* XEN_ELFNOTE_VIRT_BASE */
10: .quad 0xffffffff80000000
11:
    xen_note 4, 10f, 11f           /* XEN_ELFNOTE_PADDR_OFFSET */
10: .quad 0
11:
    xen_note 1, 10f, 11f           /* XEN_ELFNOTE_ENTRY */
10: .quad _start
11:
    xen_note 2, 10f, 11f           /* XEN_ELFNOTE_HYPERCALL_PAGE */
10: .quad hypercall_page
11:
    xen_note 10, 10f, 11f          /* XEN_ELFNOTE_FEATURES */
10: .asciz "!writable_page_tables"
11:
    .p2align 2
    .popsection
"#
);

#!/bin/sh
# Regenerates the image fixtures of builder-core/tests/image_formats.rs:
#   xen-pv64.elf      a small real x86-64 Xen PV ELF kernel (GNU as + ld), Xen notes as Linux
#                     writes them, 32 KiB of real x86 code (from /usr/bin/bash) as its text
#   bz-<fmt>.bin      that ELF as the payload of a bzImage-shaped file, compressed as Linux's
#                     arch/x86/boot/compressed/Makefile does (gzip -9; bzip2/lzma/xz/lz4/zstd
#                     followed by the le32 decompressed size)
#   xen-pv64.elf.gz   the ELF gzip-wrapped (a gzip kernel)
#   initrd.gz         a gzip ramdisk (the ELF again: any bytes do)
# Needs: binutils, gzip, bzip2, xz-utils (xz, lzma), lz4, zstd, python3.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 32 KiB of real machine code.
python3 - "$tmp/code.bin" <<'PY'
import sys
data = open("/usr/bin/bash", "rb").read()
off = 0x30000
open(sys.argv[1], "wb").write(data[off:off + 32 * 1024])
PY

cat > "$tmp/k.S" <<'ASM'
#define NOTE(type, desc_directive, value)       \
    .balign 4;                                  \
    .long 2f - 1f; .long 4f - 3f; .long type;   \
1:  .asciz "Xen"; 2: .balign 4;                 \
3:  desc_directive value; 4: .balign 4

    .section .text, "ax"
    .globl _start
_start:
    jmp _start
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc
    .incbin "CODE"

    .section .data, "aw"
    .quad 0x1122334455667788

    .section .bss, "aw", @nobits
    .fill 8192, 1, 0

    .section .note.Xen, "a", @note
    NOTE(6,  .asciz, "linux")                   /* GUEST_OS */
    NOTE(7,  .asciz, "2.6")                     /* GUEST_VERSION */
    NOTE(5,  .asciz, "xen-3.0")                 /* XEN_VERSION */
    NOTE(3,  .quad,  0xffffffff80000000)        /* VIRT_BASE */
    NOTE(15, .quad,  0x8000000000)              /* INIT_P2M */
    NOTE(1,  .quad,  _start)                    /* ENTRY */
    NOTE(2,  .quad,  hypercall_page)            /* HYPERCALL_PAGE */
    NOTE(10, .asciz, "!writable_page_tables|pae_pgdir_above_4gb") /* FEATURES */
    NOTE(17, .long,  0x8801)                    /* SUPPORTED_FEATURES */
    NOTE(9,  .asciz, "yes")                     /* PAE_MODE */
    NOTE(8,  .asciz, "generic")                 /* LOADER */
    NOTE(14, .long,  1)                         /* SUSPEND_CANCEL */
    NOTE(16, .long,  1)                         /* MOD_START_PFN */
    NOTE(12, .quad,  0xffff800000000000)        /* HV_START_LOW */
    NOTE(4,  .quad,  0)                         /* PADDR_OFFSET */
    NOTE(18, .long,  0x1000000)                 /* PHYS32_ENTRY */
ASM
sed "s|\"CODE\"|\"$tmp/code.bin\"|" "$tmp/k.S" > "$tmp/k2.S"

cat > "$tmp/k.ld" <<'LD'
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(5); data PT_LOAD FLAGS(6); note PT_NOTE FLAGS(4); }
SECTIONS {
    . = 0xffffffff81000000;
    .text : AT(0x1000000) { *(.text) } :text
    . = ALIGN(4096);
    .data : AT(ADDR(.data) - 0xffffffff80000000) { *(.data) } :data
    .notes : AT(ADDR(.notes) - 0xffffffff80000000) { *(.note.Xen) } :data :note
    .bss : AT(ADDR(.bss) - 0xffffffff80000000) { *(.bss) } :data
    /DISCARD/ : { *(.note.gnu.property) *(.comment) }
}
LD
gcc -c -x assembler-with-cpp "$tmp/k2.S" -o "$tmp/k.o"
ld -n -T "$tmp/k.ld" -o xen-pv64.elf "$tmp/k.o"
strip xen-pv64.elf

size=$(stat -c %s xen-pv64.elf)
le32() { python3 -c "import sys,struct; sys.stdout.buffer.write(struct.pack('<I', $1))"; }

# A bzImage: setup_sects = 3 (4 sectors of setup), "HdrS" version 2.15, payload at 0 of the
# protected-mode part, payload_length set.
bzimage() { # $1 = payload file, $2 = output
    python3 - "$1" "$2" <<'PY'
import sys, struct
payload = open(sys.argv[1], "rb").read()
setup = bytearray(4 * 512)
setup[0x1f1] = 3                                  # setup_sects
setup[0x1fe:0x200] = b"\x55\xaa"                  # boot_flag
setup[0x202:0x206] = b"HdrS"
struct.pack_into("<H", setup, 0x206, 0x020f)      # version 2.15
struct.pack_into("<I", setup, 0x248, 0)           # payload_offset
struct.pack_into("<I", setup, 0x24c, len(payload))
open(sys.argv[2], "wb").write(bytes(setup) + payload)
PY
}

gzip -n -9 -c xen-pv64.elf > "$tmp/p.gz"
{ bzip2 -9 -c xen-pv64.elf; le32 "$size"; } > "$tmp/p.bz2"
{ lzma -9 -c xen-pv64.elf; le32 "$size"; } > "$tmp/p.lzma"
{ xz --check=crc32 --x86 --lzma2=dict=32MiB -c xen-pv64.elf; le32 "$size"; } > "$tmp/p.xz"
{ lz4 -l -9 -c xen-pv64.elf; le32 "$size"; } > "$tmp/p.lz4"
{ zstd -q -22 --ultra -c xen-pv64.elf; le32 "$size"; } > "$tmp/p.zst"
for f in gz bz2 lzma xz lz4 zst; do bzimage "$tmp/p.$f" "bz-$f.bin"; done

gzip -n -9 -c xen-pv64.elf > xen-pv64.elf.gz
cp xen-pv64.elf.gz initrd.gz
ls -l

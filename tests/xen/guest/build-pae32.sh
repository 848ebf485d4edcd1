#!/bin/sh
# build-pae32.sh OUT: assemble and link tests/xen/guest/pae32.S into OUT, a
# 32-bit PAE Xen PV kernel (ELF32 i386, Xen notes in a PT_NOTE segment), with
# binutils only: `as --32` (through cpp for the #defines) and `ld -m elf_i386`.
# POSIX sh; runs on the host or in dom0.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-pae32.sh OUT}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pae32.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The C preprocessor for the #defines: cpp when there is one, else gcc -E.
if command -v cpp > /dev/null 2>&1; then
    cpp -P "$here/pae32.S" > "$tmp/pae32.s"
else
    gcc -E -P -x assembler-with-cpp "$here/pae32.S" > "$tmp/pae32.s"
fi
as --32 -o "$tmp/pae32.o" "$tmp/pae32.s"
# Virtual 0xC0100000, physical 0x100000: VIRT_BASE 0xC0000000 - PADDR_OFFSET 0.
cat > "$tmp/pae32.ld" <<'LD'
OUTPUT_FORMAT("elf32-i386")
OUTPUT_ARCH(i386)
ENTRY(_start)
PHDRS { text PT_LOAD FLAGS(5); data PT_LOAD FLAGS(6); note PT_NOTE FLAGS(4); }
SECTIONS {
    . = 0xC0100000;
    .text : AT(0x100000) { *(.text) } :text
    .note.Xen : { *(.note.Xen) } :text :note
    . = ALIGN(4096);
    .data : { *(.data) *(.bss) } :data
    /DISCARD/ : { *(.note.GNU-stack) *(.comment) }
}
LD
ld -m elf_i386 -nostdlib -T "$tmp/pae32.ld" -o "$tmp/pae32" "$tmp/pae32.o"
mv "$tmp/pae32" "$out"

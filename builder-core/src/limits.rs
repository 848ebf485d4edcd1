//! Named limits on everything read from outside. Each is the bound libxenguest applies where
//! it has one (xen/include/public/... and tools/libs/guest), and documented where it does not.
//!
//! Every parser in this crate refuses input beyond these with a typed error, so the memory
//! and time any input can cost are bounded by them.

/// Largest kernel file accepted, compressed or not. libxenguest's `xc_dom_allocate` sets
/// `dom->max_kernel_size = XC_DOM_DECOMPRESS_MAX` (tools/include/xenguest.h, 1 GiB) and
/// `xc_dom_kernel_check_size` refuses larger files.
pub const MAX_KERNEL_FILE: u64 = 1 << 30;
/// Largest decompressed kernel image: `XC_DOM_DECOMPRESS_MAX` (1 GiB), the bound
/// libxenguest's `xc_dom_kernel_check_size` applies to every decompressed kernel.
pub const MAX_DECOMPRESSED_KERNEL: u64 = 1 << 30;
/// Largest ramdisk (module) accepted, compressed or decompressed: `dom->max_module_size =
/// XC_DOM_DECOMPRESS_MAX` in `xc_dom_allocate`, checked by `xc_dom_module_check_size`; and
/// `xc_dom_check_gzip` calls a gzip module whose ISIZE exceeds `XC_DOM_DECOMPRESS_MAX`
/// "insane".
pub const MAX_RAMDISK: u64 = 1 << 30;
/// Longest command line: `MAX_GUEST_CMDLINE` (xen/include/public/xen.h), including the NUL.
pub const MAX_GUEST_CMDLINE: usize = 1024;
/// Most ELF notes walked in one image, Xen's or not: libelf's `ELF_MAX_TOTAL_NOTE_COUNT`
/// (xen/common/libelf/libelf-private.h), past which libelf marks the image broken.
pub const MAX_ELF_NOTES: u32 = 65536;
/// Most ELF program headers accepted. libelf has no figure of its own (it only checks that
/// the table lies inside the file; `e_phnum` is 16 bits). A Linux or BSD kernel has fewer
/// than 10; 256 bounds the pairwise overlap check of loadable segments at 32640 pairs.
pub const MAX_ELF_SEGMENTS: u16 = 256;
/// Most ELF section headers walked (SHT_NOTE fallback, `__xen_guest`). libelf has no figure;
/// Linux's vmlinux has about 80 sections.
pub const MAX_ELF_SECTIONS: u16 = 4096;
/// Memory a stream decoder (xz/lzma dictionary, zstd window) may ask for: libxenguest's
/// `LZMA_BLOCK_SIZE` (256 MiB), the memory limit `xc_try_xz_decode` and `xc_try_lzma_decode`
/// (xg_dom_bzimageloader.c) give liblzma. Linux compresses its kernel with a 32 MiB (xz) or
/// at most 128 MiB (zstd -22 --ultra window) dictionary.
pub const MAX_DECODER_MEMORY: u64 = 256 << 20;
/// How far into a kernel the 'bin' (multiboot-style) loader looks for its header table:
/// `find_table` in tools/libs/guest/xg_dom_binloader.c scans the first 8192 bytes.
pub const BIN_HEADER_SEARCH: usize = 8192;

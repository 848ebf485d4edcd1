//! Named limits on everything read from outside. Each is the bound libxenguest applies where
//! it has one (xen/include/public/... and tools/libs/guest), and documented where it does not.

/// Largest kernel file accepted, compressed or not (libxenguest's `XC_DOM_DECOMPRESS_MAX`
/// bounds the decompressed side; the file side is bounded by the same figure).
pub const MAX_KERNEL_FILE: u64 = 1 << 30;
/// Largest decompressed kernel image (`XC_DOM_DECOMPRESS_MAX`, 1 GiB).
pub const MAX_DECOMPRESSED_KERNEL: u64 = 1 << 30;
/// Largest ramdisk (module) accepted, compressed or decompressed (libxl's default
/// `max_ramdisk_size`... see docs/limits.md).
pub const MAX_RAMDISK: u64 = 1 << 30;
/// Longest command line: `MAX_GUEST_CMDLINE` (xen/include/public/xen.h), including the NUL.
pub const MAX_GUEST_CMDLINE: usize = 1024;

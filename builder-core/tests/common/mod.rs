//! Shared by the build tests: kernels as the parser returns them for real images.
//!
//! `debian_params` parses Debian's own kernel (the newest `/boot/vmlinuz-*`, whatever version
//! the machine has: CI installs linux-image-amd64), so every fixture is what a real kernel
//! gives, never hand-written values. Without a kernel in /boot the tests fail, they do not
//! skip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::OnceLock;

use pvbuild_core::image::{KernelParams, LoadKernel};
use pvbuild_core::kernel::parse_kernel;

/// The newest `/boot/vmlinuz-*`.
pub fn debian_kernel_path() -> PathBuf {
    std::fs::read_dir("/boot")
        .unwrap_or_else(|e| panic!("/boot: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .max()
        .unwrap_or_else(|| {
            panic!("no /boot/vmlinuz-*: install linux-image-amd64 (the tests need a real kernel)")
        })
}

/// Debian's kernel, unpacked (an xz bzImage's ELF payload), read once.
pub fn debian_kernel_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let path = debian_kernel_path();
        let file = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        pvbuild_core::decompress::unpack_kernel(&file)
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
            .into_owned()
    })
}

/// What the parser returns for Debian's kernel.
pub fn debian_params() -> KernelParams {
    parse_kernel(debian_kernel_image())
        .unwrap_or_else(|e| panic!("{}: {e:?}", debian_kernel_path().display()))
        .params()
        .clone()
}

//! libxenguest's feature checks against real kernels: Debian's (the newest /boot/vmlinuz-*)
//! and the PV test kernel (tests/pv-test-kernel, built by the harness or by
//! `cargo build --release` there) parse and pass; the supported-set check of
//! `xc_dom_parse_image` fires on a real kernel's parameters with a required bit added.

// Test code: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use pvbuild_core::image::{xenfeat, FeatureError, LoadKernel};
use pvbuild_core::kernel::parse_kernel;

#[test]
fn debian_kernel_passes_the_feature_checks() {
    let p = common::debian_params();
    // FEATURES "!writable_page_tables|pae_pgdir_above_4gb", SUPPORTED_FEATURES 0x8801:
    // dom0 supported (bit 11), not required.
    assert!(p.supports(xenfeat::DOM0));
    assert!(!p.requires(xenfeat::DOM0));
    assert_eq!(p.check_pv_domu_features(), Ok(()));
}

#[test]
fn pv_test_kernel_passes_the_feature_checks() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/pv-test-kernel/target/x86_64-unknown-none/release/pv-test-kernel"
    );
    let image = std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e}: build it (cd tests/pv-test-kernel && cargo build --release)")
    });
    let k = parse_kernel(&image).unwrap();
    assert_eq!(k.params().check_pv_domu_features(), Ok(()));
}

#[test]
fn a_required_feature_outside_the_supported_set_is_refused() {
    // libelf's parser marks every `!name` supported too, so this needs the parameters
    // changed after a real parse: what xc_dom_parse_image's f_active/f_supported check sees
    // for a feature requested and not supported.
    let mut p = common::debian_params();
    assert!(!p.supports(xenfeat::MMU_PT_UPDATE_PRESERVE_AD));
    p.f_required[0] |= 1 << xenfeat::MMU_PT_UPDATE_PRESERVE_AD;
    assert_eq!(
        p.check_pv_domu_features(),
        Err(FeatureError::Unsupported { bit: 5 })
    );
    assert_eq!(
        FeatureError::Unsupported { bit: 5 }.to_string(),
        "the kernel requires feature bit 5 but does not support it"
    );
    let mut p = common::debian_params();
    p.f_supported[0] &= !(1 << xenfeat::WRITABLE_PAGE_TABLES);
    assert_eq!(
        p.check_pv_domu_features(),
        Err(FeatureError::Unsupported { bit: 0 })
    );
}

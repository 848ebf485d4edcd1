//! HVM guests (`type = "hvm"`): the plan ([`plan`]: hvmloader, SeaBIOS, the layout, pure
//! computation in [`pvbuild_core::hvm`]) and the build sequence on Xen ([`create`]), as
//! libxl's `libxl__build_hvm` and libxenguest's HVM loader do it; the guest's kernel,
//! ramdisk and command line go to the device model (direct kernel boot), not into the build.

pub mod create;
pub mod plan;
pub mod xenstore;

pub use create::{create, HvmCreateError, HvmRequest, HvmStep};
pub use plan::HvmPlanned;

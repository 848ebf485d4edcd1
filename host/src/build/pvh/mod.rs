//! PVH guests (`type = "pvh"`): the plan from the kernel, ramdisk and config
//! ([`plan`], pure computation in [`pvbuild_core::pvh`]) and the build sequence on Xen
//! ([`create`]), as libxl's `libxl__build_hvm` and libxenguest's HVM hooks do it.

pub mod create;
pub mod plan;

pub use create::{create, PvhCreateError, PvhRequest, PvhStep};
pub use plan::{PvhPlanned, PLAN_LOG_PREFIX};

//! The domain build, per guest type, and what every type shares.
//!
//! - [`pv`], [`pvh`], [`hvm`]: each type's build sequence (libxenguest's `xc_dom_*` and
//!   libxl's build steps for it), from a planned image to a domain ready to unpause;
//! - [`runner`]: the [`runner::Building`] guard and its undo stack, which each sequence
//!   returns;
//! - [`domain`]: a whole domain made from a prepared configuration: the type's build, then
//!   its xenstore entries, device model, disks, network interfaces, stored configuration and
//!   unpause, all undone on failure;
//! - [`journal`]: what a create acquired, on disk, so a later pvbuild undoes a killed one;
//! - [`steps`]: where a create's time goes (`-vv`).

pub mod domain;
pub mod hvm;
pub mod journal;
pub mod pv;
pub mod pvh;
pub mod runner;
pub mod steps;

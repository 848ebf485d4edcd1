//! Verbosity-gated logging to stderr: one global level, the count of `-v`, with xl's meaning
//! (xl lowers its logger's minimum one step per `-v` from `XTL_PROGRESS`): 0 progress, 1
//! ([`DETAIL`]) adds the builder's detail lines ([`crate::plan::detail`]) and pvbuild's own
//! notes, 2 ([`VERBOSE`]) and 3 ([`DEBUG`]) add what is logged at those levels.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(0);
/// `-v`: xl's `XTL_DETAIL` (libxenguest's `domainbuilder: detail:` lines).
pub const DETAIL: u8 = 1;
/// `-vv`: xl's `XTL_VERBOSE`.
pub const VERBOSE: u8 = 2;
/// `-vvv`: xl's `XTL_DEBUG`.
pub const DEBUG: u8 = 3;

/// Set the level (the count of `-v`).
pub fn set_level(v: u8) {
    LEVEL.store(v, Ordering::Relaxed);
}
/// The level (the count of `-v`).
pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}
/// Print at `-vvv` and above (`pvbuild: debug: ...`).
pub fn debug(args: std::fmt::Arguments<'_>) {
    if level() >= DEBUG {
        crate::say_err!("pvbuild: debug: {args}");
    }
}
/// Print at `-v` and above.
pub fn info(args: std::fmt::Arguments<'_>) {
    if LEVEL.load(Ordering::Relaxed) >= 1 {
        crate::say_err!("pvbuild: {args}");
    }
}

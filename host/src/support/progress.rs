//! Progress lines, as xl prints them at its default level ("Parsing config from ...") as
//! each long step starts (the bootloader, the device model, the hotplug scripts), on stderr;
//! `create -q` silences them, as xl's `-q` silences its one.

use std::sync::atomic::{AtomicBool, Ordering};

// Quiet in unit tests: their fakes run whole creates, whose lines would only be noise.
static QUIET: AtomicBool = AtomicBool::new(cfg!(test));

/// `-q`: no progress lines.
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

/// One progress line on stderr, unless quiet.
pub fn line(args: std::fmt::Arguments<'_>) {
    if !QUIET.load(Ordering::Relaxed) {
        crate::say_err!("{args}");
    }
}

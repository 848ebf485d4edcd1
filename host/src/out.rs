//! Lines for the user that never panic: `println!` and `eprintln!` panic when their stream is
//! closed or full (`pvbuild create ... | head -1`, a full disk), which in the middle of a
//! create would skip its undo. These lose the line instead; the command goes on.

use std::io::Write as _;

/// Writes one line to stdout, if it can.
pub fn line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{args}");
}

/// Writes one line to stderr, if it can.
pub fn line_err(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `println!`, without the panic ([`line`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}

/// `eprintln!`, without the panic ([`line_err`]).
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => { $crate::out::line_err(format_args!($($arg)*)) };
}

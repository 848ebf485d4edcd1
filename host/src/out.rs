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

/// Writes `s` to stdout and flushes it. A reader that went away is not an error (what it
/// did not read, it did not want); any other failure is returned.
pub fn write_all(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Writes `s` to stderr, if it can.
pub fn write_all_err(s: &str) {
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

//! Lines for the user that never panic: `println!` and `eprintln!` panic when their stream is
//! closed or full (`pvbuild create ... | head -1`, a full disk), which in the middle of a
//! create would skip its undo. These lose the line instead; the command goes on.

use std::io::Write as _;

/// Writes one line to stdout, if it can.
pub fn line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{args}");
}

/// Writes one line to stderr, if it can, in one `write` (see [`write_line`]).
pub fn line_err(args: std::fmt::Arguments<'_>) {
    let _ = write_line(&mut std::io::stderr().lock(), args);
}

/// Writes `args` and a newline to `w` with one `write_all`: stderr is unbuffered, and
/// `writeln!` on it makes a system call per piece of the format (two or three a line). In the
/// harness a log on 9p makes each a round trip: the 90 lines of `pvbuild -vv create` cost
/// seconds of its own time (issue 17).
pub fn write_line(
    w: &mut impl std::io::Write,
    args: std::fmt::Arguments<'_>,
) -> std::io::Result<()> {
    let mut s = args.to_string();
    s.push('\n');
    w.write_all(s.as_bytes())
}

/// `println!`, without the panic ([`line`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::support::out::line(format_args!($($arg)*)) };
}

/// `eprintln!`, without the panic ([`line_err`]).
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => { $crate::support::out::line_err(format_args!($($arg)*)) };
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

#[cfg(test)]
mod tests {
    /// Counts the `write` calls made on it.
    struct Counting(Vec<u8>, usize);

    impl std::io::Write for Counting {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.1 += 1;
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_one_write() {
        let mut w = Counting(Vec::new(), 0);
        let (name, ms) = ("populate", 11.405);
        super::write_line(
            &mut w,
            format_args!("pvbuild: step {name} {ms:.3} ms, {} ioctls", 1),
        )
        .unwrap_or_default();
        assert_eq!(w.0, b"pvbuild: step populate 11.405 ms, 1 ioctls\n");
        assert_eq!(w.1, 1);
    }
}

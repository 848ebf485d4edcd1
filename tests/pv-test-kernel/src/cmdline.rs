//! The command-line check: the line arrived NUL-terminated, the rest of the field zeroed,
//! and it carries the token the harness asked for (parsing: `pv_test_kernel::expect`).

use crate::report::Report;
use pv_test_kernel::expect::{parse, terminated, tokens, Expect, Shown, MAX_GUEST_CMDLINE};

/// The command line arrived NUL-terminated with the rest of the field zeroed, and carries
/// the token the harness asked for.
pub fn check<'a>(r: &mut Report, raw: &'a [u8; MAX_GUEST_CMDLINE]) -> Option<Expect<'a>> {
    let Some(line) = terminated(raw) else {
        r.check(
            "cmdline",
            false,
            format_args!("no NUL terminator within {MAX_GUEST_CMDLINE} bytes"),
        );
        return None;
    };
    let tail_zero = raw
        .get(line.len()..)
        .is_some_and(|t| t.iter().all(|&b| b == 0));
    let e = parse(line);
    if let Some(bad) = e.malformed {
        r.check(
            "cmdline",
            false,
            format_args!(
                "malformed expectation '{}' in \"{}\"",
                Shown(bad),
                Shown(line)
            ),
        );
        return Some(e);
    }
    let token_ok = match e.token {
        Some(t) => tokens(line).any(|tok| tok == t),
        None => true,
    };
    r.check(
        "cmdline",
        tail_zero && token_ok && e.token.is_some(),
        format_args!(
            "len={} token={} found={} tail_zeroed={} \"{}\"",
            line.len(),
            Shown(e.token.unwrap_or(b"(none: pass expect_cmdline_token=T)")),
            token_ok,
            tail_zero,
            Shown(line)
        ),
    );
    Some(e)
}

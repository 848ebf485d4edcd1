//! Parsing the command line (`start_info.cmd_line`) and the expectations the harness puts
//! in it:
//!
//! `expect_nr_pages=N`: start_info.nr_pages; `expect_mod_len=N`: the module's length in
//! bytes; `expect_mod_sum=HEX`: CRC-32 (zlib's, as gzip stores it) of the module's bytes;
//! `expect_cmdline_token=T`: `T` must also appear as a token of its own on the line;
//! `selftest=fault`: touch an unmapped page to prove faults are reported;
//! `pvtk.xsprobe=1`: probe which xenstore nodes this guest can write (src/xsprobe.rs);
//! `pvtk.xsprobe_other=DOMID`: another guest whose tree the probe tries to write.
//! Numbers are decimal or 0x-prefixed hex.

pub const MAX_GUEST_CMDLINE: usize = 1024;

#[derive(Debug, Default, Clone, Copy)]
pub struct Expect<'a> {
    pub nr_pages: Option<u64>,
    pub mod_len: Option<u64>,
    pub mod_sum: Option<u32>,
    pub token: Option<&'a [u8]>,
    /// `selftest=fault`.
    pub selftest_fault: bool,
    /// `pvtk.xsprobe=1`.
    pub xsprobe: bool,
    /// `pvtk.xsprobe_other=DOMID`.
    pub xsprobe_other: Option<u64>,
    /// An `expect_*` token whose value did not parse.
    pub malformed: Option<&'a [u8]>,
}

/// The bytes before the terminating NUL, or None if there is none within 1024 bytes.
pub fn terminated(raw: &[u8; MAX_GUEST_CMDLINE]) -> Option<&[u8]> {
    let nul = raw.iter().position(|&b| b == 0)?;
    raw.get(..nul)
}

pub fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|t| !t.is_empty())
}

pub fn parse_u64(s: &[u8]) -> Option<u64> {
    let (digits, radix) = match s {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (s, 10),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        v = v.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    Some(v)
}

pub fn parse_hex32(s: &[u8]) -> Option<u32> {
    let digits = match s {
        [b'0', b'x' | b'X', rest @ ..] => rest,
        _ => s,
    };
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in digits {
        v = (v << 4) | (c as char).to_digit(16)?;
    }
    Some(v)
}

pub fn parse(line: &[u8]) -> Expect<'_> {
    let mut e = Expect::default();
    for tok in tokens(line) {
        let Some(eq) = tok.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, val) = (
            tok.get(..eq).unwrap_or(&[]),
            tok.get(eq + 1..).unwrap_or(&[]),
        );
        let ok = match key {
            b"expect_nr_pages" => parse_u64(val).map(|v| e.nr_pages = Some(v)).is_some(),
            b"expect_mod_len" => parse_u64(val).map(|v| e.mod_len = Some(v)).is_some(),
            b"expect_mod_sum" => parse_hex32(val).map(|v| e.mod_sum = Some(v)).is_some(),
            b"selftest" => {
                e.selftest_fault = val == b"fault";
                e.selftest_fault
            }
            b"pvtk.xsprobe" => {
                e.xsprobe = val == b"1";
                val == b"1" || val == b"0"
            }
            b"pvtk.xsprobe_other" => parse_u64(val).map(|v| e.xsprobe_other = Some(v)).is_some(),
            b"expect_cmdline_token" => {
                e.token = Some(val);
                !val.is_empty()
            }
            _ => true,
        };
        if !ok && e.malformed.is_none() {
            e.malformed = Some(tok);
        }
    }
    e
}

/// Printable form of command-line bytes.
#[derive(Debug)]
pub struct Shown<'a>(pub &'a [u8]);

impl core::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) {
                core::fmt::Write::write_char(f, b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

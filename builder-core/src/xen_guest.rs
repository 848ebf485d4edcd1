//! The legacy `__xen_guest` section: before ELF notes, a PV kernel described itself with a
//! string such as `GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,HYPERCALL_PAGE=0x2`.
//! libelf still reads it when an image has no Xen notes (`elf_xen_parse_guest_info`,
//! xen/common/libelf/libelf-dominfo.c), with its own conventions: `HYPERCALL_PAGE` is a page
//! index relative to `VIRT_BASE`, and `ELF_PADDR_OFFSET` defaults to `VIRT_BASE`
//! (see [`crate::elf`]).

use crate::image::PaeMode;
use crate::notes::{self, DomParms, ParmSource};

/// libelf's `strtoull(value, NULL, 0)`: optional spaces and sign, then `0x` hex, `0` octal
/// or decimal digits, stopping at the first other character; overflow saturates; no digits
/// gives 0. A leading `-` negates modulo 2^64, as C does.
pub fn strtoull(s: &[u8]) -> u64 {
    let mut i = 0usize;
    while s
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
    {
        i += 1;
    }
    let mut neg = false;
    if let Some(&c @ (b'+' | b'-')) = s.get(i) {
        neg = c == b'-';
        i += 1;
    }
    let hex_digit = |c: Option<&u8>| c.is_some_and(u8::is_ascii_hexdigit);
    let base: u64 = if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && hex_digit(s.get(i + 2))
    {
        i += 2;
        16
    } else if s.get(i) == Some(&b'0') {
        8
    } else {
        10
    };
    let mut val: u64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|&c| char::from(c).to_digit(base as u32)) {
        match val
            .checked_mul(base)
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => val = v,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow {
        return u64::MAX;
    }
    if neg {
        val.wrapping_neg()
    } else {
        val
    }
}

/// The `__xen_guest` string of a section: its bytes up to the first NUL.
pub fn section_string(section: &[u8]) -> &[u8] {
    notes::c_str(section)
}

/// Read one `NAME=VALUE` pair at `*h` exactly as libelf's loop does (name cut at 31 bytes,
/// value at 127, `,` ends a pair), advancing `*h`.
fn next_pair(s: &[u8], h: &mut usize) -> (heapless::Vec<u8, 31>, heapless::Vec<u8, 127>) {
    let mut name = heapless::Vec::<u8, 31>::new();
    let mut value = heapless::Vec::<u8, 127>::new();
    let star = |h: usize| s.get(h).copied().unwrap_or(0);
    loop {
        if name.len() >= 31 {
            break;
        }
        match star(*h) {
            0 => break,
            b',' => {
                *h += 1;
                break;
            }
            b'=' => {
                *h += 1;
                loop {
                    if value.len() >= 127 {
                        break;
                    }
                    match star(*h) {
                        0 => break,
                        b',' => {
                            *h += 1;
                            break;
                        }
                        c => {
                            let _ = value.push(c);
                            *h += 1;
                        }
                    }
                }
                break;
            }
            c => {
                let _ = name.push(c);
                *h += 1;
            }
        }
    }
    (name, value)
}

/// Parse a `__xen_guest` string into `parms` (`elf_xen_parse_guest_info`). As in libelf, a
/// `FEATURES` entry requiring an unknown feature stops the parse (and libelf's caller ignores
/// that failure, so this does not fail either).
pub fn parse(s: &[u8], parms: &mut DomParms) {
    let s = notes::c_str(s);
    parms.source = ParmSource::XenGuest;
    let mut h = 0usize;
    while s.get(h).is_some_and(|&c| c != 0) {
        let before = h;
        let (name, value) = next_pair(s, &mut h);
        let (name, value) = (name.as_slice(), value.as_slice());
        match name {
            b"LOADER" => parms.loader = notes::note_text(value),
            b"GUEST_OS" => parms.guest_os = notes::note_text(value),
            b"GUEST_VER" => parms.guest_ver = notes::note_text(value),
            b"XEN_VER" => parms.xen_ver = notes::note_text(value),
            b"PAE" => {
                if value == b"yes[extended-cr3]" {
                    parms.pae = PaeMode::ExtendedCr3;
                } else if value.starts_with(b"yes") {
                    parms.pae = PaeMode::Yes;
                }
            }
            b"BSD_SYMTAB" => parms.bsd_symtab = true,
            b"VIRT_BASE" => parms.virt_base = Some(strtoull(value)),
            b"VIRT_ENTRY" => parms.virt_entry = Some(strtoull(value)),
            b"ELF_PADDR_OFFSET" => parms.elf_paddr_offset = Some(strtoull(value)),
            // A page index; C's shift drops the high bits.
            b"HYPERCALL_PAGE" => parms.virt_hypercall = Some(strtoull(value) << 12),
            b"FEATURES"
                if notes::parse_features(value, &mut parms.f_supported, &mut parms.f_required)
                    .is_err() =>
            {
                break;
            }
            _ => {}
        }
        if h == before {
            // A name of 31 bytes with nothing consumed cannot happen (each pass consumes at
            // least one byte or stops at NUL), but never loop without progress.
            break;
        }
    }
    if let (Some(base), Some(hc)) = (parms.virt_base, parms.virt_hypercall) {
        parms.virt_hypercall = Some(hc.wrapping_add(base));
    }
}

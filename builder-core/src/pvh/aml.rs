//! ACPI Machine Language (AML) encoding, the subset a PVH guest's DSDT uses (ACPI 6.4,
//! section 20.2: "AML Grammar Definition"), written the way `iasl` writes it, so that a table
//! built here is byte for byte the one `iasl` compiles from the same ASL:
//!
//! - integers take the smallest form: `ZeroOp`, `OneOp`, then byte, word, dword and qword
//!   constants (20.2.3);
//! - a package length (`PkgLength`, 20.2.4) takes the fewest bytes that can hold it, and it
//!   counts its own bytes;
//! - name strings are given as `iasl` emits them after its namepath optimisation (it shortens
//!   `\_SB.MSUA` to `MSUA` where the search rules find the same object): the callers pass the
//!   shortened paths.
//!
//! [`Aml`] writes into a caller's buffer (no heap); a write past its end is remembered and
//! reported once, by [`Aml::finish`].

/// `ZeroOp`, `OneOp` and the integer prefixes.
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const QWORD_PREFIX: u8 = 0x0e;
const STRING_PREFIX: u8 = 0x0d;
/// Name string prefixes.
const ROOT_CHAR: u8 = b'\\';
const PARENT_PREFIX: u8 = b'^';
const DUAL_NAME_PREFIX: u8 = 0x2e;
const MULTI_NAME_PREFIX: u8 = 0x2f;
const NULL_NAME: u8 = 0x00;

/// Opcodes (20.2.5).
pub mod op {
    /// `ScopeOp`
    pub const SCOPE: &[u8] = &[0x10];
    /// `NameOp`
    pub const NAME: &[u8] = &[0x08];
    /// `BufferOp`
    pub const BUFFER: &[u8] = &[0x11];
    /// `MethodOp`
    pub const METHOD: &[u8] = &[0x14];
    /// `IfOp`
    pub const IF: &[u8] = &[0xa0];
    /// `ElseOp`
    pub const ELSE: &[u8] = &[0xa1];
    /// `ReturnOp`
    pub const RETURN: &[u8] = &[0xa4];
    /// `StoreOp`
    pub const STORE: &[u8] = &[0x70];
    /// `AddOp`
    pub const ADD: &[u8] = &[0x72];
    /// `SubtractOp`
    pub const SUBTRACT: &[u8] = &[0x74];
    /// `ShiftRightOp`
    pub const SHIFT_RIGHT: &[u8] = &[0x7a];
    /// `AndOp`
    pub const AND: &[u8] = &[0x7b];
    /// `DerefOfOp`
    pub const DEREF_OF: &[u8] = &[0x83];
    /// `NotifyOp`
    pub const NOTIFY: &[u8] = &[0x86];
    /// `IndexOp`
    pub const INDEX: &[u8] = &[0x88];
    /// `LNotOp`
    pub const LNOT: &[u8] = &[0x92];
    /// `LEqualOp`
    pub const LEQUAL: &[u8] = &[0x93];
    /// `LLessOp`
    pub const LLESS: &[u8] = &[0x95];
    /// `ToBufferOp`
    pub const TO_BUFFER: &[u8] = &[0x96];
    /// `SleepOp`
    pub const SLEEP: &[u8] = &[0x5b, 0x22];
    /// `OpRegionOp`
    pub const OP_REGION: &[u8] = &[0x5b, 0x80];
    /// `FieldOp`
    pub const FIELD: &[u8] = &[0x5b, 0x81];
    /// `ProcessorOp` (deprecated since ACPI 6.4, still what libacpi's DSDT uses)
    pub const PROCESSOR: &[u8] = &[0x5b, 0x83];
}

/// `Local0`..`Local7`.
pub const fn local(n: u8) -> u8 {
    0x60 + (n & 7)
}

/// `Arg0`..`Arg6`.
pub const fn arg(n: u8) -> u8 {
    0x68 + if n > 6 { 6 } else { n }
}

/// Region spaces of `OperationRegion`.
pub const SYSTEM_MEMORY: u8 = 0;
/// `SystemIO`
pub const SYSTEM_IO: u8 = 1;
/// Field flags `ByteAcc, NoLock, Preserve`.
pub const BYTE_ACC_NOLOCK_PRESERVE: u8 = 0x01;

/// The AML did not fit the buffer given to [`Aml`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmlOverflow {
    /// Bytes the AML needed.
    pub needed: usize,
}

/// An AML writer over a caller's buffer.
pub struct Aml<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl core::fmt::Debug for Aml<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Aml")
            .field("len", &self.len)
            .field("capacity", &self.buf.len())
            .field("overflow", &self.overflow)
            .finish()
    }
}

/// The bytes a package length of a body of `body` bytes takes (it counts itself).
fn pkg_len_bytes(body: usize) -> usize {
    if body < 63 {
        1
    } else if body + 2 < 1 << 12 {
        2
    } else if body + 3 < 1 << 20 {
        3
    } else {
        4
    }
}

/// Encodes `value` as a `PkgLength` of `n` bytes into `out`; returns the bytes used.
fn encode_pkg_len(value: usize, n: usize, out: &mut [u8; 4]) -> usize {
    if n == 1 {
        out[0] = (value & 0x3f) as u8;
        return 1;
    }
    out[0] = (((n - 1) as u8) << 6) | (value & 0x0f) as u8;
    let mut rest = value >> 4;
    for b in out.iter_mut().take(n).skip(1) {
        *b = (rest & 0xff) as u8;
        rest >>= 8;
    }
    n
}

impl<'b> Aml<'b> {
    /// A writer that starts at the beginning of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// Bytes written so far (or that would have been, past an overflow).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length written, or the overflow.
    pub fn finish(self) -> Result<usize, AmlOverflow> {
        if self.overflow {
            Err(AmlOverflow { needed: self.len })
        } else {
            Ok(self.len)
        }
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(d) => d.copy_from_slice(b),
            None => self.overflow = true,
        }
        self.len += b.len();
        self
    }

    /// One raw byte.
    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.bytes(&[b])
    }

    /// An opcode whose body is preceded by its `PkgLength`: `op`, the length, then what
    /// `body` writes.
    pub fn package(&mut self, op: &[u8], body: impl FnOnce(&mut Self)) -> &mut Self {
        self.bytes(op);
        let at = self.len;
        // Room for the longest PkgLength; the body moves back once its length is known.
        self.len += 4;
        body(self);
        let body_len = self.len - at - 4;
        let n = pkg_len_bytes(body_len);
        let mut enc = [0u8; 4];
        encode_pkg_len(body_len + n, n, &mut enc);
        if at + 4 + body_len > self.buf.len() {
            self.overflow = true;
        }
        if !self.overflow {
            self.buf.copy_within(at + 4..at + 4 + body_len, at + n);
            if let Some(d) = self.buf.get_mut(at..at + n) {
                d.copy_from_slice(enc.get(..n).unwrap_or(&[]));
            }
            // The bytes the body vacated: what follows the AML stays as it was given (zero).
            if let Some(d) = self.buf.get_mut(at + n + body_len..at + 4 + body_len) {
                d.fill(0);
            }
        }
        self.len = at + n + body_len;
        self
    }

    /// A name string: `\` or `^`s, then dot-separated segments of up to four characters,
    /// each padded with `_` (`"^PR00.FLG"`, `"\\_SB.PRSC"`, `"MSU"`); `""` is `NullName`.
    pub fn name(&mut self, path: &str) -> &mut Self {
        let mut rest = path.as_bytes();
        while let Some((&c, tail)) = rest.split_first() {
            if c != ROOT_CHAR && c != PARENT_PREFIX {
                break;
            }
            self.byte(c);
            rest = tail;
        }
        let segs = if rest.is_empty() {
            0
        } else {
            rest.split(|&c| c == b'.').count()
        };
        match segs {
            0 => {
                self.byte(NULL_NAME);
            }
            1 => {}
            2 => {
                self.byte(DUAL_NAME_PREFIX);
            }
            n => {
                self.byte(MULTI_NAME_PREFIX).byte(n as u8);
            }
        }
        for seg in rest.split(|&c| c == b'.').filter(|_| segs > 0) {
            let mut s = [b'_'; 4];
            for (d, c) in s.iter_mut().zip(seg) {
                *d = *c;
            }
            self.bytes(&s);
        }
        self
    }

    /// `NullName`: an absent target.
    pub fn null_target(&mut self) -> &mut Self {
        self.byte(NULL_NAME)
    }

    /// An integer in its smallest encoding.
    pub fn int(&mut self, v: u64) -> &mut Self {
        match v {
            0 => self.byte(ZERO_OP),
            1 => self.byte(ONE_OP),
            2..=0xff => self.byte(BYTE_PREFIX).byte(v as u8),
            0x100..=0xffff => self.byte(WORD_PREFIX).bytes(&(v as u16).to_le_bytes()),
            0x1_0000..=0xffff_ffff => self.byte(DWORD_PREFIX).bytes(&(v as u32).to_le_bytes()),
            _ => self.byte(QWORD_PREFIX).bytes(&v.to_le_bytes()),
        }
    }

    /// A string constant.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.byte(STRING_PREFIX).bytes(s.as_bytes()).byte(0)
    }

    /// `Name (NAME, <what write puts>)`.
    pub fn named(&mut self, name: &str, value: impl FnOnce(&mut Self)) -> &mut Self {
        self.bytes(op::NAME).name(name);
        value(self);
        self
    }

    /// `Method (NAME, ARGS, NotSerialized) { body }`.
    pub fn method(&mut self, name: &str, args: u8, body: impl FnOnce(&mut Self)) -> &mut Self {
        self.package(op::METHOD, |a| {
            a.name(name).byte(args & 7);
            body(a);
        })
    }

    /// `OperationRegion (NAME, SPACE, offset, length)`, offset and length written by the
    /// closures (integers or expressions).
    pub fn op_region(
        &mut self,
        name: &str,
        space: u8,
        offset: impl FnOnce(&mut Self),
        length: impl FnOnce(&mut Self),
    ) -> &mut Self {
        self.bytes(op::OP_REGION).name(name).byte(space);
        offset(self);
        length(self);
        self
    }

    /// `Field (REGION, flags) { ... }` with its units as (name, bits); a name of `""` is an
    /// `Offset`/reserved gap of that many bits.
    pub fn field(&mut self, region: &str, flags: u8, units: &[(&str, usize)]) -> &mut Self {
        self.package(op::FIELD, |a| {
            a.name(region).byte(flags);
            for &(name, bits) in units {
                if name.is_empty() {
                    a.byte(0);
                } else {
                    a.name(name);
                }
                let mut enc = [0u8; 4];
                // A field unit's length is a PkgLength of the bit count, not counting itself.
                let n = match bits {
                    0..=63 => 1,
                    64..=0xfff => 2,
                    0x1000..=0xf_ffff => 3,
                    _ => 4,
                };
                let n = encode_pkg_len(bits, n, &mut enc);
                a.bytes(enc.get(..n).unwrap_or(&[]));
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn aml(f: impl FnOnce(&mut Aml<'_>)) -> ([u8; 256], usize) {
        let mut b = [0u8; 256];
        let mut a = Aml::new(&mut b);
        f(&mut a);
        let n = a.finish().unwrap();
        (b, n)
    }

    #[test]
    fn integers_take_their_smallest_form() {
        let (b, n) = aml(|a| {
            a.int(0).int(1).int(0x0f).int(0x100).int(0xfc00_0000);
        });
        assert_eq!(
            &b[..n],
            &[0, 1, 0x0a, 0x0f, 0x0b, 0, 1, 0x0c, 0, 0, 0, 0xfc]
        );
    }

    #[test]
    fn names_pad_and_prefix_as_the_grammar_says() {
        let (b, n) = aml(|a| {
            a.name("MSU").name("^PR00.FLG").name("\\_SB.PRSC").name("");
        });
        assert_eq!(&b[..n], b"MSU_^\x2ePR00FLG_\\\x2e_SB_PRSC\0");
    }

    #[test]
    fn package_lengths_count_themselves_and_grow_to_fit() {
        // 61 bytes of body: 1 + 61 = 62 fits one byte.
        let (b, n) = aml(|a| {
            a.package(&[0x10], |a| {
                a.bytes(&[7; 61]);
            });
        });
        assert_eq!((b[1], n), (62, 63));
        // 63 bytes: two bytes, 65 = 0x41 -> 0x41, 0x04.
        let (b, n) = aml(|a| {
            a.package(&[0x10], |a| {
                a.bytes(&[7; 63]);
            });
        });
        assert_eq!((&b[1..3], n), (&[0x41, 0x04][..], 66));
        assert!(b[3..66].iter().all(|&x| x == 7));
    }

    #[test]
    fn a_package_leaves_no_bytes_behind_its_end() {
        // A 3-byte body moves back 3 bytes: the 3 it left must be zero again.
        let (b, n) = aml(|a| {
            a.package(&[0x10], |a| {
                a.bytes(&[7, 7, 7]);
            });
        });
        assert_eq!(&b[..n], &[0x10, 4, 7, 7, 7]);
        assert!(b[n..].iter().all(|&x| x == 0), "{:x?}", &b[n..n + 8]);
    }

    #[test]
    fn an_overflow_is_reported_with_the_length_needed() {
        let mut b = [0u8; 8];
        let mut a = Aml::new(&mut b);
        a.package(op::SCOPE, |a| {
            a.name("_SB").bytes(&[1; 20]);
        });
        assert_eq!(a.finish(), Err(AmlOverflow { needed: 26 }));
    }
}

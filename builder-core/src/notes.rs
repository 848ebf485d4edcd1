//! Xen's ELF notes (xen/include/public/elfnote.h): what a PV kernel tells its builder, as
//! libelf reads them (`elf_xen_parse_note`, xen/common/libelf/libelf-dominfo.c).
//!
//! A note is `namesz`, `descsz`, `type` (three 32-bit words in both ELF classes), then the
//! name and the descriptor, each padded to 4 bytes. Only notes named "Xen" count; unknown
//! Xen note types are skipped, as libelf does.

use crate::image::{NoteText, PaeMode, XENFEAT_NR_SUBMAPS};
use crate::limits;

/// Xen note types (`XEN_ELFNOTE_*`).
pub mod ty {
    /// `XEN_ELFNOTE_INFO` (unused by loaders).
    pub const INFO: u32 = 0;
    /// `XEN_ELFNOTE_ENTRY`
    pub const ENTRY: u32 = 1;
    /// `XEN_ELFNOTE_HYPERCALL_PAGE`
    pub const HYPERCALL_PAGE: u32 = 2;
    /// `XEN_ELFNOTE_VIRT_BASE`
    pub const VIRT_BASE: u32 = 3;
    /// `XEN_ELFNOTE_PADDR_OFFSET`
    pub const PADDR_OFFSET: u32 = 4;
    /// `XEN_ELFNOTE_XEN_VERSION`
    pub const XEN_VERSION: u32 = 5;
    /// `XEN_ELFNOTE_GUEST_OS`
    pub const GUEST_OS: u32 = 6;
    /// `XEN_ELFNOTE_GUEST_VERSION`
    pub const GUEST_VERSION: u32 = 7;
    /// `XEN_ELFNOTE_LOADER`
    pub const LOADER: u32 = 8;
    /// `XEN_ELFNOTE_PAE_MODE`
    pub const PAE_MODE: u32 = 9;
    /// `XEN_ELFNOTE_FEATURES`
    pub const FEATURES: u32 = 10;
    /// `XEN_ELFNOTE_BSD_SYMTAB`
    pub const BSD_SYMTAB: u32 = 11;
    /// `XEN_ELFNOTE_HV_START_LOW`
    pub const HV_START_LOW: u32 = 12;
    /// `XEN_ELFNOTE_L1_MFN_VALID`
    pub const L1_MFN_VALID: u32 = 13;
    /// `XEN_ELFNOTE_SUSPEND_CANCEL`
    pub const SUSPEND_CANCEL: u32 = 14;
    /// `XEN_ELFNOTE_INIT_P2M`
    pub const INIT_P2M: u32 = 15;
    /// `XEN_ELFNOTE_MOD_START_PFN`
    pub const MOD_START_PFN: u32 = 16;
    /// `XEN_ELFNOTE_SUPPORTED_FEATURES`
    pub const SUPPORTED_FEATURES: u32 = 17;
    /// `XEN_ELFNOTE_PHYS32_ENTRY`
    pub const PHYS32_ENTRY: u32 = 18;
}

/// Why a note area was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteError {
    /// A note header runs past the end of its note area.
    TruncatedHeader {
        /// Offset of the note within its area.
        at: usize,
    },
    /// `namesz` / `descsz` reach past the end of the note area.
    ImpossibleSize {
        /// Offset of the note within its area.
        at: usize,
        /// The note's `namesz`.
        namesz: u32,
        /// The note's `descsz`.
        descsz: u32,
    },
    /// More notes than [`limits::MAX_ELF_NOTES`].
    TooManyNotes,
    /// `FEATURES` requires (`!name`) a feature libelf does not know.
    UnknownRequiredFeature,
}

impl core::fmt::Display for NoteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            NoteError::TruncatedHeader { at } => write!(f, "ELF note header at {at:#x} truncated"),
            NoteError::ImpossibleSize { at, namesz, descsz } => write!(
                f,
                "ELF note at {at:#x} has impossible sizes (namesz {namesz:#x}, descsz {descsz:#x})"
            ),
            NoteError::TooManyNotes => write!(f, "more than {} ELF notes", limits::MAX_ELF_NOTES),
            NoteError::UnknownRequiredFeature => {
                f.write_str("FEATURES note requires an unknown feature")
            }
        }
    }
}

/// One ELF note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    /// The name, without padding (including its NUL if the producer wrote one).
    pub name: &'a [u8],
    /// The note type.
    pub ntype: u32,
    /// The descriptor, without padding.
    pub desc: &'a [u8],
}

impl Note<'_> {
    /// Whether this note is Xen's (name "Xen", compared as libelf's `strcmp` does).
    pub fn is_xen(&self) -> bool {
        c_str(self.name) == b"Xen"
    }
}

/// The bytes up to the first NUL (or all of them).
pub(crate) fn c_str(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.get(..end).unwrap_or(b)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map(u32::from_le_bytes)
}

const fn round4(n: usize) -> Option<usize> {
    match n.checked_add(3) {
        Some(v) => Some(v & !3),
        None => None,
    }
}

/// Iterator over the notes of one note area (a PT_NOTE segment or SHT_NOTE section).
/// Yields an error, then stops, at the first malformed note.
#[derive(Debug, Clone)]
pub struct Notes<'a> {
    area: &'a [u8],
    pos: usize,
    done: bool,
}

/// Walk the notes of `area`.
pub fn iter(area: &[u8]) -> Notes<'_> {
    Notes {
        area,
        pos: 0,
        done: false,
    }
}

impl<'a> Iterator for Notes<'a> {
    type Item = Result<Note<'a>, NoteError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.area.len() {
            return None;
        }
        let at = self.pos;
        let fail = |e| Some(Err(e));
        let (Some(namesz), Some(descsz), Some(ntype)) = (
            le32(self.area, at),
            le32(self.area, at.saturating_add(4)),
            le32(self.area, at.saturating_add(8)),
        ) else {
            self.done = true;
            return fail(NoteError::TruncatedHeader { at });
        };
        let impossible = NoteError::ImpossibleSize { at, namesz, descsz };
        let name_at = at + 12;
        let parts = (|| {
            let name_len = usize::try_from(namesz).ok()?;
            let desc_len = usize::try_from(descsz).ok()?;
            let desc_at = name_at.checked_add(round4(name_len)?)?;
            let name = self.area.get(name_at..name_at.checked_add(name_len)?)?;
            let desc = self.area.get(desc_at..desc_at.checked_add(desc_len)?)?;
            // The next note starts after the padded descriptor; the last note's padding may
            // be cut off by the end of the area.
            let next = desc_at.checked_add(round4(desc_len)?)?;
            Some((name, desc, next))
        })();
        let Some((name, desc, next)) = parts else {
            self.done = true;
            return fail(impossible);
        };
        self.pos = next;
        Some(Ok(Note { name, ntype, desc }))
    }
}

/// Where a kernel's Xen parameters came from (libelf's `elf_note_start` / `guest_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParmSource {
    /// Neither notes nor a `__xen_guest` section.
    #[default]
    None,
    /// ELF note areas were walked (`elf_note_start` set, even if none was Xen's).
    Notes,
    /// The legacy `__xen_guest` string.
    XenGuest,
}

/// The raw Xen parameters of a kernel before defaults: libelf's `struct elf_dom_parms`
/// with `UNSET_ADDR` as `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomParms {
    /// Where the values came from.
    pub source: ParmSource,
    /// `GUEST_OS`.
    pub guest_os: NoteText,
    /// `GUEST_VERSION`.
    pub guest_ver: NoteText,
    /// `XEN_VERSION`.
    pub xen_ver: NoteText,
    /// `LOADER`.
    pub loader: NoteText,
    /// `PAE_MODE`.
    pub pae: PaeMode,
    /// `BSD_SYMTAB`.
    pub bsd_symtab: bool,
    /// `MOD_START_PFN`.
    pub unmapped_initrd: bool,
    /// `SUSPEND_CANCEL` (parsed, not used by the builder).
    pub suspend_cancel: Option<u64>,
    /// `L1_MFN_VALID` (parsed, not used by the builder).
    pub l1_mfn_valid: Option<u64>,
    /// `VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `ENTRY`.
    pub virt_entry: Option<u64>,
    /// `HYPERCALL_PAGE` (a virtual address).
    pub virt_hypercall: Option<u64>,
    /// `HV_START_LOW`.
    pub virt_hv_start_low: Option<u64>,
    /// `INIT_P2M`.
    pub p2m_base: Option<u64>,
    /// `PADDR_OFFSET`.
    pub elf_paddr_offset: Option<u64>,
    /// `PHYS32_ENTRY`.
    pub phys_entry: Option<u32>,
    /// Supported features.
    pub f_supported: [u32; XENFEAT_NR_SUBMAPS],
    /// Required features.
    pub f_required: [u32; XENFEAT_NR_SUBMAPS],
    /// Number of Xen notes seen.
    pub xen_notes: u32,
}

/// Copy a C string into a libelf `char[16]` field (15 bytes and the NUL: `safe_strcpy`).
/// Bytes outside ASCII become `?` so the result is valid UTF-8 and compares like the C.
pub(crate) fn note_text(s: &[u8]) -> NoteText {
    let mut t = NoteText::new();
    for &b in c_str(s).iter().take(15) {
        let ch = if b.is_ascii() { char::from(b) } else { '?' };
        if t.push(ch).is_err() {
            break;
        }
    }
    t
}

/// `elf_note_numeric`: a 1, 2, 4 or 8 byte little-endian value; 0 for any other size.
fn numeric(desc: &[u8]) -> u64 {
    match desc.len() {
        1 | 2 | 4 | 8 => desc
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        _ => 0,
    }
}

/// `elf_note_numeric_array` for 32-bit units: word `idx`, or 0.
fn numeric_array_u32(desc: &[u8], idx: usize) -> u32 {
    if desc.len() % 4 != 0 {
        return 0;
    }
    le32(desc, idx.saturating_mul(4)).unwrap_or(0)
}

/// libelf's feature names, by `XENFEAT_*` bit (`elf_xen_feature_names`).
const FEATURE_NAMES: [(u32, &[u8]); 7] = [
    (0, b"writable_page_tables"),
    (1, b"writable_descriptor_tables"),
    (2, b"auto_translated_physmap"),
    (3, b"supervisor_mode_kernel"),
    (4, b"pae_pgdir_above_4gb"),
    (8, b"hvm_callback_vector"),
    (11, b"dom0"),
];

/// libelf's name of feature bit `bit`, if it has one.
pub fn feature_name(bit: u32) -> Option<&'static str> {
    FEATURE_NAMES
        .iter()
        .find(|(b, _)| *b == bit)
        .and_then(|(_, n)| core::str::from_utf8(n).ok())
}

fn feature_set(map: &mut [u32; XENFEAT_NR_SUBMAPS], bit: u32) {
    if let Some(w) = map.get_mut((bit / 32) as usize) {
        *w |= 1 << (bit % 32);
    }
}

/// `elf_xen_parse_features`: `name|!name|...`; `!` marks a required feature. An unknown
/// required feature is an error, an unknown supported one is ignored. Tokens are cut at 63
/// bytes as libelf's buffer cuts them.
pub fn parse_features(
    features: &[u8],
    supported: &mut [u32; XENFEAT_NR_SUBMAPS],
    required: &mut [u32; XENFEAT_NR_SUBMAPS],
) -> Result<(), NoteError> {
    let s = c_str(features);
    let mut pos = 0usize;
    while pos < s.len() {
        let rest = s.get(pos..).unwrap_or_default();
        let mut len = 0usize;
        let mut token_len = 0usize;
        loop {
            if len >= 63 {
                break;
            }
            match rest.get(len) {
                None => break,
                Some(b'|') => {
                    len += 1;
                    break;
                }
                Some(_) => {
                    len += 1;
                    token_len = len;
                }
            }
        }
        let token = rest.get(..token_len).unwrap_or_default();
        let (req, name) = match token.split_first() {
            Some((b'!', name)) => (true, name),
            _ => (false, token),
        };
        match FEATURE_NAMES.iter().find(|(_, n)| *n == name) {
            Some(&(bit, _)) => {
                feature_set(supported, bit);
                if req {
                    feature_set(required, bit);
                }
            }
            None if req => return Err(NoteError::UnknownRequiredFeature),
            None => {}
        }
        if len == 0 {
            break;
        }
        pos += len;
    }
    Ok(())
}

impl DomParms {
    /// Apply one Xen note (`elf_xen_parse_note`). Unknown types are ignored.
    pub fn apply_note(&mut self, note: &Note<'_>) -> Result<(), NoteError> {
        let d = note.desc;
        let str_val = c_str(d);
        let num = numeric(d);
        match note.ntype {
            ty::LOADER => self.loader = note_text(str_val),
            ty::GUEST_OS => self.guest_os = note_text(str_val),
            ty::GUEST_VERSION => self.guest_ver = note_text(str_val),
            ty::XEN_VERSION => self.xen_ver = note_text(str_val),
            ty::PAE_MODE => {
                // As libelf: exactly "yes" means extended-cr3 capable; "bimodal" anywhere
                // means bimodal; anything else (even "yes[extended-cr3]") leaves it unset.
                if str_val == b"yes" {
                    self.pae = PaeMode::ExtendedCr3;
                }
                if str_val.windows(7).any(|w| w == b"bimodal") {
                    self.pae = PaeMode::Bimodal;
                }
            }
            ty::BSD_SYMTAB => {
                if str_val == b"yes" {
                    self.bsd_symtab = true;
                }
            }
            ty::VIRT_BASE => self.virt_base = Some(num),
            ty::ENTRY => self.virt_entry = Some(num),
            ty::INIT_P2M => self.p2m_base = Some(num),
            ty::MOD_START_PFN => self.unmapped_initrd = num != 0,
            ty::PADDR_OFFSET => self.elf_paddr_offset = Some(num),
            ty::HYPERCALL_PAGE => self.virt_hypercall = Some(num),
            ty::HV_START_LOW => self.virt_hv_start_low = Some(num),
            ty::SUSPEND_CANCEL => self.suspend_cancel = Some(num),
            ty::L1_MFN_VALID => self.l1_mfn_valid = Some(num),
            ty::FEATURES => parse_features(str_val, &mut self.f_supported, &mut self.f_required)?,
            ty::SUPPORTED_FEATURES => {
                for (i, w) in self.f_supported.iter_mut().enumerate() {
                    *w |= numeric_array_u32(d, i);
                }
            }
            // PHYS32_ENTRY is a 32-bit physical address; libelf stores it truncated.
            ty::PHYS32_ENTRY => self.phys_entry = Some(num as u32),
            _ => return Ok(()),
        }
        self.xen_notes = self.xen_notes.saturating_add(1);
        Ok(())
    }

    /// Walk one note area (`elf_xen_parse_notes`), applying the Xen notes and counting every
    /// note against [`limits::MAX_ELF_NOTES`] via `total`. Returns how many Xen notes it had.
    pub fn parse_area(&mut self, area: &[u8], total: &mut u32) -> Result<u32, NoteError> {
        self.source = ParmSource::Notes;
        let mut xen = 0u32;
        for note in iter(area) {
            let note = note?;
            if *total >= limits::MAX_ELF_NOTES {
                return Err(NoteError::TooManyNotes);
            }
            *total += 1;
            if !note.is_xen() {
                continue;
            }
            // libelf counts every note named "Xen", known type or not.
            self.apply_note(&note)?;
            xen += 1;
        }
        Ok(xen)
    }
}

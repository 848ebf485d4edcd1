//! xl configuration files (`xl.cfg(5)`): the parser, and the keys pvbuild supports.
//!
//! The syntax is libxlutil's (`tools/libs/util/libxlu_cfg_l.l` and `libxlu_cfg_y.y`):
//! statements `key = value` or `key += value` ended by a newline or `;`; a value is a string
//! in single or double quotes (C-like escapes), a number (`[0-9][0-9a-fx]*`, kept as text and
//! read like `strtol(.., 0)`), or a list `[ atom, atom, ]` of those, which may span lines;
//! `#` comments run to the end of the line. A later assignment replaces an earlier one; `+=`
//! appends to a list. Unlike libxlutil, the first syntax error ends the parse (with its line).
//!
//! [`DomainConfig::from_xl`] maps the supported keys to a typed config. Keys that ask for
//! isolation pvbuild cannot give ([`REFUSED_KEYS`]: XSM labels, passthrough, a restricted or
//! stub-domain device model) refuse the whole config with an error naming the key; other keys
//! xl knows but pvbuild does not implement, and unknown keys, become warnings.
//!
//! Around the parser: where `create`'s configuration comes from ([`source`]: a file and
//! `KEY=VALUE` settings), the configuration as libxl stores it ([`libxl_json`]) and where it
//! is stored for xl's commands ([`userdata`]).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;
use uuid::Uuid;

use crate::control::placement::{Affinity, CpuSpec, Placement};

pub mod libxl_json;
pub mod source;
pub mod userdata;
mod vif;
pub use vif::{parse_vif_spec, Mac, VifSpec, IFNAME_MAX, VIFS_MAX};

/// Largest config file accepted, in bytes.
pub const CONFIG_MAX_BYTES: usize = 1 << 20;
/// Most items in one list.
pub const LIST_MAX_ITEMS: usize = 4096;
/// Most settings in one file.
pub const SETTINGS_MAX: usize = 4096;
/// xl's default memory when `memory` is absent (libxl's `max_memkb` default), MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 32;
/// Largest `memory`/`maxmem` accepted, MiB (16 TiB: above any PV guest Xen can build).
pub const MEMORY_MAX_MIB: u64 = 16 << 20;
/// Largest `vcpus`/`maxvcpus` accepted (Xen's PV limit is lower; this bounds the input).
pub const VCPUS_MAX: u32 = 512;
/// Most `disk` entries accepted (a PV guest's xvd names reach far beyond; this bounds the
/// input, and every disk is one more backend in the device model).
pub const DISKS_MAX: usize = 64;

/// A config that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Larger than [`CONFIG_MAX_BYTES`].
    #[error("config file larger than {CONFIG_MAX_BYTES} bytes")]
    TooBig,
    /// Reading the file failed.
    #[error("cannot read config file {path}: {msg}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// A syntax error.
    #[error("config line {line}: {msg}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A setting has a value pvbuild cannot use.
    #[error("config line {line}: {key}: {msg}")]
    Value {
        /// The key.
        key: String,
        /// Its line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A key that asks for isolation pvbuild cannot give: the config is refused.
    #[error("config line {line}: key '{key}' is not supported by pvbuild: {why}")]
    Refused {
        /// The key.
        key: String,
        /// Its line.
        line: usize,
        /// What it asks for and pvbuild lacks.
        why: &'static str,
    },
    /// A required setting is missing, or settings contradict.
    #[error("config: {0}")]
    Invalid(String),
}

/// A value: one atom, or a list of atoms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string or a number (numbers are kept as written).
    Atom(String),
    /// A list.
    List(Vec<String>),
}

/// One setting and the line its value starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The value.
    pub value: Value,
    /// 1-based line.
    pub line: usize,
}

/// A parsed xl config: settings by key, in first-appearance order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XlConfig {
    order: Vec<String>,
    settings: HashMap<String, Setting>,
}

impl XlConfig {
    /// The setting of `key`.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.get(key)
    }

    /// Keys in the order they first appear.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// No settings at all.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Number(String),
    Str(String),
    Assign,
    Append,
    Open,
    Close,
    Comma,
    Semi,
    Newline,
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

fn syntax(line: usize, msg: impl Into<String>) -> ConfigError {
    ConfigError::Syntax {
        line,
        msg: msg.into(),
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// The next token and its line; `None` at the end.
    fn next(&mut self) -> Result<Option<(Tok, usize)>, ConfigError> {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
        let line = self.line;
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let tok = match c {
            b'\n' => {
                self.pos += 1;
                self.line += 1;
                Tok::Newline
            }
            b'#' => {
                while !matches!(self.peek(), None | Some(b'\n')) {
                    self.pos += 1;
                }
                if self.peek().is_some() {
                    self.pos += 1;
                    self.line += 1;
                }
                Tok::Newline
            }
            b'=' => {
                self.pos += 1;
                Tok::Assign
            }
            b'+' if self.s.get(self.pos + 1) == Some(&b'=') => {
                self.pos += 2;
                Tok::Append
            }
            b'[' => {
                self.pos += 1;
                Tok::Open
            }
            b']' => {
                self.pos += 1;
                Tok::Close
            }
            b',' => {
                self.pos += 1;
                Tok::Comma
            }
            b';' => {
                self.pos += 1;
                Tok::Semi
            }
            b'\'' | b'"' => Tok::Str(self.string(c)?),
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                Tok::Ident(self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_'))
            }
            b'0'..=b'9' => Tok::Number(
                self.take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'x'),
            ),
            b'+' | b'-' | b'.' | b'(' | b')' | b':' => {
                return Err(syntax(
                    line,
                    "lexical error (this looks like Python syntax)",
                ))
            }
            _ => {
                return Err(syntax(
                    line,
                    format!("lexical error at {:?}", char::from(c)),
                ))
            }
        };
        Ok(Some((tok, line)))
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        String::from_utf8_lossy(self.s.get(start..self.pos).unwrap_or(&[])).into_owned()
    }

    /// A quoted string with libxlutil's escapes (`xlu__cfgl_dequote`): `\n \r \t \a \b \f \v`,
    /// `\xHH`, octal `\ooo`, and `\` before any other character for that character.
    fn string(&mut self, quote: u8) -> Result<String, ConfigError> {
        let line = self.line;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(syntax(line, "unterminated string"));
            };
            self.pos += 1;
            match c {
                b'\n' => return Err(syntax(line, "unterminated string")),
                c if c == quote => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(syntax(line, "unterminated string"));
                    };
                    if e == b'\n' {
                        return Err(syntax(line, "unterminated string"));
                    }
                    self.pos += 1;
                    let b = match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'a' => 0x07,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'v' => 0x0b,
                        b'x' => self.numeric(16, 2, 2, line)?,
                        b'0'..=b'7' => {
                            self.pos -= 1;
                            self.numeric(8, 1, 3, line)?
                        }
                        other => other,
                    };
                    if b == 0 {
                        return Err(syntax(line, "NUL character in string"));
                    }
                    out.push(b);
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| syntax(line, "string is not UTF-8"))
    }

    fn numeric(
        &mut self,
        base: u32,
        min: usize,
        max: usize,
        line: usize,
    ) -> Result<u8, ConfigError> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            let Some(d) = self.peek().and_then(|b| char::from(b).to_digit(base)) else {
                break;
            };
            v = v * base + d;
            self.pos += 1;
            n += 1;
        }
        if n < min {
            return Err(syntax(line, "invalid escape in string"));
        }
        u8::try_from(v).map_err(|_| syntax(line, "escape out of range in string"))
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Option<(Tok, usize)>>,
}

impl Parser<'_> {
    fn peek(&mut self) -> Result<Option<&(Tok, usize)>, ConfigError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next()?);
        }
        Ok(self.peeked.as_ref().and_then(|p| p.as_ref()))
    }

    fn next(&mut self) -> Result<Option<(Tok, usize)>, ConfigError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next(),
        }
    }

    fn skip_newlines(&mut self) -> Result<(), ConfigError> {
        while matches!(self.peek()?, Some((Tok::Newline, _))) {
            self.next()?;
        }
        Ok(())
    }

    fn atom(&mut self, what: &str) -> Result<String, ConfigError> {
        match self.next()? {
            Some((Tok::Str(s) | Tok::Number(s), _)) => Ok(s),
            Some((_, line)) => Err(syntax(line, format!("expected {what}"))),
            None => Err(syntax(
                self.lex.line,
                format!("expected {what} before end of file"),
            )),
        }
    }

    fn value(&mut self) -> Result<(Value, usize), ConfigError> {
        let line = match self.peek()? {
            Some((_, l)) => *l,
            None => return Err(syntax(self.lex.line, "expected a value before end of file")),
        };
        if !matches!(self.peek()?, Some((Tok::Open, _))) {
            return Ok((Value::Atom(self.atom("a string, number or list")?), line));
        }
        self.next()?;
        let mut items = Vec::new();
        self.skip_newlines()?;
        loop {
            match self.peek()? {
                Some((Tok::Close, _)) => {
                    self.next()?;
                    return Ok((Value::List(items), line));
                }
                Some(_) => {}
                None => return Err(syntax(line, "unterminated list")),
            }
            if items.len() >= LIST_MAX_ITEMS {
                return Err(syntax(
                    line,
                    format!("list longer than {LIST_MAX_ITEMS} items"),
                ));
            }
            items.push(self.atom("a list item or ]")?);
            self.skip_newlines()?;
            match self.next()? {
                Some((Tok::Comma, _)) => self.skip_newlines()?,
                Some((Tok::Close, _)) => return Ok((Value::List(items), line)),
                Some((_, l)) => return Err(syntax(l, "expected , or ] in list")),
                None => return Err(syntax(line, "unterminated list")),
            }
        }
    }
}

/// Parse xl config text.
pub fn parse(text: &[u8]) -> Result<XlConfig, ConfigError> {
    if text.len() > CONFIG_MAX_BYTES {
        return Err(ConfigError::TooBig);
    }
    let mut p = Parser {
        lex: Lexer {
            s: text,
            pos: 0,
            line: 1,
        },
        peeked: None,
    };
    let mut cfg = XlConfig::default();
    while let Some((tok, line)) = p.next()? {
        let key = match tok {
            Tok::Newline | Tok::Semi => continue,
            Tok::Ident(k) => k,
            _ => return Err(syntax(line, "expected a setting name")),
        };
        let append = match p.next()? {
            Some((Tok::Assign, _)) => false,
            Some((Tok::Append, _)) => true,
            _ => return Err(syntax(line, format!("expected = after {key}"))),
        };
        let (value, vline) = p.value()?;
        match p.next()? {
            None | Some((Tok::Newline | Tok::Semi, _)) => {}
            Some((_, l)) => return Err(syntax(l, "expected end of line after value")),
        }
        let value = match (append, cfg.settings.get(&key)) {
            (false, _) | (true, None) => value,
            (true, Some(prev)) => match (&prev.value, value) {
                (Value::List(old), Value::List(new)) => {
                    let mut all = old.clone();
                    all.extend(new);
                    if all.len() > LIST_MAX_ITEMS {
                        return Err(syntax(
                            vline,
                            format!("list longer than {LIST_MAX_ITEMS} items"),
                        ));
                    }
                    Value::List(all)
                }
                _ => {
                    return Err(syntax(
                        vline,
                        format!("+= on {key} needs lists on both sides"),
                    ))
                }
            },
        };
        if !cfg.settings.contains_key(&key) {
            if cfg.order.len() >= SETTINGS_MAX {
                return Err(syntax(line, format!("more than {SETTINGS_MAX} settings")));
            }
            cfg.order.push(key.clone());
        }
        cfg.settings.insert(key, Setting { value, line: vline });
    }
    Ok(cfg)
}

/// What to do when the guest powers off, reboots or crashes (xl's `on_*` actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `destroy`.
    Destroy,
    /// `restart`.
    Restart,
    /// `rename-restart`.
    RenameRestart,
    /// `preserve`.
    Preserve,
    /// `coredump-destroy`.
    CoredumpDestroy,
    /// `coredump-restart`.
    CoredumpRestart,
    /// `soft-reset`.
    SoftReset,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "destroy" => Self::Destroy,
            "restart" => Self::Restart,
            "rename-restart" => Self::RenameRestart,
            "preserve" => Self::Preserve,
            "coredump-destroy" => Self::CoredumpDestroy,
            "coredump-restart" => Self::CoredumpRestart,
            "soft-reset" => Self::SoftReset,
            _ => return None,
        })
    }
}

/// A PV domain as an xl config describes it, with xl's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// `name` (required).
    pub name: String,
    /// `uuid`; `None`: a new one for each start.
    pub uuid: Option<Uuid>,
    /// `kernel` (required unless `bootloader` is set).
    pub kernel: Option<PathBuf>,
    /// `ramdisk`.
    pub ramdisk: Option<PathBuf>,
    /// The command line: `cmdline`, else `root=<root> <extra>` as xl assembles it.
    pub cmdline: Option<String>,
    /// `memory`, MiB (target).
    pub memory_mib: u64,
    /// `maxmem`, MiB (static maximum; `memory` when absent).
    pub maxmem_mib: u64,
    /// `vcpus`: vcpus online at boot.
    pub vcpus: u32,
    /// `maxvcpus`: vcpus the domain may have (`vcpus` when absent).
    pub max_vcpus: u32,
    /// `on_poweroff` (default destroy).
    pub on_poweroff: Action,
    /// `on_reboot` (default restart).
    pub on_reboot: Action,
    /// `on_crash` (default destroy).
    pub on_crash: Action,
    /// `on_watchdog` (default destroy).
    pub on_watchdog: Action,
    /// `bootloader` (e.g. pygrub).
    pub bootloader: Option<String>,
    /// `bootloader_args`.
    pub bootloader_args: Vec<String>,
    /// `bootloader_restrict`: `Some(false)` runs the bootloader as root (pvbuild restricts it
    /// by default; see [`crate::devices::bootloader::runas_uid`]).
    pub bootloader_restrict: Option<bool>,
    /// `bootloader_user`: the user to run the bootloader as.
    pub bootloader_user: Option<String>,
    /// `disk`: the guest's disks, in order; the first is what the bootloader reads.
    pub disks: Vec<DiskSpec>,
    /// `device_model_override`: the QEMU that serves the disks, instead of the default.
    pub device_model: Option<PathBuf>,
    /// `dm_restrict` and `device_model_user`: how the QEMU that serves the disks is
    /// restricted ([`crate::devmodel::restrict`]).
    pub dm_privileges: crate::devmodel::restrict::DmPrivileges,
    /// `vif`: the guest's network interfaces, in order.
    pub vifs: Vec<VifSpec>,
    /// `pool`, `cpus`, `cpus_soft`, `cpu_weight`, `cap`.
    pub placement: Placement,
    /// `type = "pvh"`: a PVH guest (HVM container, no device model) instead of PV.
    pub pvh: bool,
    /// `type = "hvm"` (or `builder = "hvm"`): an HVM guest, with what only it has.
    pub hvm: Option<HvmGuest>,
}

/// What an HVM guest's config says beyond a PV one's ([`crate::build::hvm`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmGuest {
    /// `acpi` (default 1): hvmloader builds ACPI tables (`platform/acpi`).
    pub acpi: bool,
    /// `apic` (default 1): hvmloader builds APIC tables (`hvm_info`'s `apic_mode`).
    pub apic: bool,
    /// `acpi_s3` (default 1).
    pub acpi_s3: bool,
    /// `acpi_s4` (default 1).
    pub acpi_s4: bool,
    /// `acpi_laptop_slate` (default 0).
    pub acpi_laptop_slate: bool,
    /// The video memory QEMU takes out of the guest's memory (libxl's `video_memkb`), KiB.
    pub video_memkb: u64,
    /// The device model's keys (serial, vga, vnc, boot...).
    pub dm: crate::devmodel::hvm::HvmDm,
    /// `device_model_stubdomain_override = 1`: the device model runs in a stub domain of its
    /// own, with these images and memory ([`crate::devmodel::stubdom`]).
    pub stubdom: Option<crate::devmodel::stubdom::StubdomSpec>,
}

impl DomainConfig {
    /// The first disk: what a bootloader reads.
    pub fn boot_disk(&self) -> Option<&DiskSpec> {
        self.disks.first()
    }
}

/// An image format a disk may have (`format=`, or a deprecated `raw:`/`qcow2:`... prefix).
/// The default is raw, as xl's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskFormat {
    /// `raw` (the default).
    #[default]
    Raw,
    /// `qcow`.
    Qcow,
    /// `qcow2`.
    Qcow2,
    /// `vhd`.
    Vhd,
    /// `qed`.
    Qed,
    /// `empty`: a CD-ROM drive with nothing in it.
    Empty,
}

impl DiskFormat {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "raw" => DiskFormat::Raw,
            "qcow" => DiskFormat::Qcow,
            "qcow2" => DiskFormat::Qcow2,
            "vhd" => DiskFormat::Vhd,
            "qed" => DiskFormat::Qed,
            "empty" => DiskFormat::Empty,
            _ => return None,
        })
    }

    /// The name xl uses.
    pub fn name(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow => "qcow",
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Vhd => "vhd",
            DiskFormat::Qed => "qed",
            DiskFormat::Empty => "empty",
        }
    }
}

/// One `disk` entry, as far as pvbuild uses it (xl-disk-configuration(5)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskSpec {
    /// The image or device (`target`); empty for an empty CD-ROM drive.
    pub target: String,
    /// Its format.
    pub format: DiskFormat,
    /// The guest's name for it (`vdev`), if given.
    pub vdev: Option<String>,
    /// `access=r`/`ro` (or positional): the guest may only read it.
    pub readonly: bool,
    /// `devtype=cdrom`, or a `vdev` ending in `:cdrom`.
    pub cdrom: bool,
    /// `backendtype=`, if given (`phy`, `qdisk`, `tap`, `standalone`).
    pub backendtype: Option<String>,
    /// `backend=`: the backend domain, if given.
    pub backend: Option<String>,
    /// `script=`, if given.
    pub script: Option<String>,
    /// `discard` / `no-discard`, if given.
    pub discard: Option<bool>,
    /// `untrusted` (the default is trusted).
    pub untrusted: bool,
}

/// Keys a disk spec may have whose values pvbuild does not use.
const DISK_KEYS_UNUSED: &[&str] = &[
    "specification",
    "transport",
    "colo-host",
    "colo-port",
    "colo-export",
    "active-disk",
    "hidden-disk",
];

/// Flags a disk spec may carry as bare words (libxlu_disk_l.l).
const DISK_FLAGS: &[&str] = &[
    "direct-io-safe",
    "discard",
    "no-discard",
    "trusted",
    "untrusted",
    "colo",
    "no-colo",
];

/// Deprecated target prefixes (libxlu_disk_l.l); the ones naming a format set it.
const DISK_PREFIXES: &[(&str, Option<DiskFormat>)] = &[
    ("tap:", None),
    ("tap2:", None),
    ("tapdisk:", None),
    ("aio:", None),
    ("ioemu:", None),
    ("file:", None),
    ("phy:", None),
    ("raw:", Some(DiskFormat::Raw)),
    ("qcow:", Some(DiskFormat::Qcow)),
    ("qcow2:", Some(DiskFormat::Qcow2)),
    ("vhd:", Some(DiskFormat::Vhd)),
];

/// Parses one `disk` entry the way xl's disk spec parser reads it: `key=value` parameters,
/// positional ones in the order target, format, vdev, access (format skipped after a
/// deprecated `phy:`/`file:`/... prefix), and `target=`, which takes the rest of the string.
pub fn parse_disk_spec(spec: &str) -> Result<DiskSpec, String> {
    let mut target: Option<String> = None;
    let mut format: Option<DiskFormat> = None;
    let mut vdev: Option<String> = None;
    let mut access = false;
    let mut d = DiskSpec::default();
    let mut had_prefix = false;
    let mut format_slot = false;
    let mut rest = spec;
    while !rest.trim_start().is_empty() {
        let r = rest.trim_start();
        if let Some(t) = r.strip_prefix("target=") {
            target = Some(t.to_owned());
            break;
        }
        let (param, next) = r.split_once(',').unwrap_or((r, ""));
        rest = next;
        let param = param.trim();
        if let Some((key, value)) = param.split_once('=') {
            match key {
                "format" => {
                    format = Some(
                        DiskFormat::parse(value)
                            .ok_or_else(|| format!("unknown format {value:?}"))?,
                    )
                }
                "vdev" => vdev = Some(value.to_owned()),
                "access" => d.readonly = parse_access(value)?,
                "devtype" => match value {
                    "cdrom" => d.cdrom = true,
                    "disk" => d.cdrom = false,
                    v => return Err(format!("unknown devtype {v:?}")),
                },
                "backendtype" => match value {
                    "phy" | "qdisk" | "tap" | "standalone" => d.backendtype = Some(value.into()),
                    v => return Err(format!("unknown backendtype {v:?}")),
                },
                "backend" => d.backend = Some(value.into()),
                "script" => d.script = Some(value.into()),
                k if DISK_KEYS_UNUSED.contains(&k) => {}
                k => return Err(format!("unknown parameter {k:?}")),
            }
            continue;
        }
        if DISK_FLAGS.contains(&param) {
            match param {
                "discard" => d.discard = Some(true),
                "no-discard" => d.discard = Some(false),
                "trusted" => d.untrusted = false,
                "untrusted" => d.untrusted = true,
                _ => {}
            }
            continue;
        }
        if target.is_none() {
            let mut t = param;
            while let Some((p, f)) = DISK_PREFIXES.iter().find(|(p, _)| t.starts_with(p)) {
                t = t.get(p.len()..).unwrap_or_default();
                had_prefix = true;
                if let Some(f) = f {
                    format = Some(*f);
                }
            }
            target = Some(t.to_owned());
        } else if !had_prefix && !format_slot {
            format_slot = true;
            if param.is_empty() {
                // An empty positional leaves the format unset.
            } else if target.as_deref() == Some("") && DiskFormat::parse(param).is_none() {
                // No target, and a vdev where the format goes: an empty drive (xl's
                // `vdev_and_devtype`).
                format = Some(DiskFormat::Empty);
                vdev = Some(param.to_owned());
            } else {
                format = Some(
                    DiskFormat::parse(param).ok_or_else(|| format!("unknown format {param:?}"))?,
                );
            }
        } else if vdev.is_none() {
            vdev = Some(param.to_owned());
        } else if !access {
            access = true;
            d.readonly = parse_access(param)?;
        } else {
            return Err(format!("too many positional parameters at {param:?}"));
        }
    }
    let target = target.unwrap_or_default();
    let format = match format {
        Some(f) => f,
        None if target.is_empty() => DiskFormat::Empty,
        None => DiskFormat::Raw,
    };
    // xl's `vdev_and_devtype`: "hdc:cdrom" names a CD-ROM drive.
    if let Some(v) = vdev.as_deref().and_then(|v| v.strip_suffix(":cdrom")) {
        vdev = Some(v.to_owned());
        d.cdrom = true;
    }
    Ok(DiskSpec {
        target,
        format,
        vdev,
        ..d
    })
}

/// An `access` value: `r`/`ro` is read-only, `w`/`rw` read-write (xl's `setaccess`).
fn parse_access(v: &str) -> Result<bool, String> {
    match v {
        "r" | "ro" => Ok(true),
        "w" | "rw" => Ok(false),
        v => Err(format!("unknown value for access: {v:?}")),
    }
}

/// Keys xl accepts that pvbuild does not implement: a warning each, not an error.
pub const XL_KEYS_IGNORED: &[&str] = &[
    "vfb",
    "vkb",
    "channel",
    "usb",
    "usbctrl",
    "usbdev",
    "vtpm",
    "p9",
    "pvcalls",
    "vsnd",
    "vdispl",
    "virtio",
    "rdm",
    "on_soft_reset",
    "localtime",
    "rtc_timeoffset",
    "max_grant_frames",
    "max_maptrack_frames",
    "max_grant_version",
    "e820_host",
    "claim_mode",
    "driver_domain",
    "xen_platform_pci",
    "serial",
    "sdl",
    "vnc",
    "vnclisten",
    "vncpasswd",
    "keymap",
    "nomigrate",
    "event_channels",
    "tsc_mode",
    "gfx_passthru",
    "features",
    "shadow_memory",
    "vcpu_hard_affinity",
    "vcpu_soft_affinity",
    "passthrough",
    "vnuma",
    "altp2m",
    "vpmu",
];

/// Keys that ask for isolation or access control pvbuild does not implement: a config with
/// one is refused (an error naming the key), never started with less than it asks. The
/// list keys (`pci`, `iomem`, `ioports`, `irqs`, `dtdev`) are accepted empty, and
/// (`device_model_stubdomain_override` is read for HVM guests: [`crate::devmodel::stubdom`].)
pub const REFUSED_KEYS: &[(&str, &str)] = &[
    (
        "seclabel",
        "XSM/FLASK labels are not implemented (the domain would run unlabelled)",
    ),
    (
        "init_seclabel",
        "XSM/FLASK labels are not implemented (the domain would run unlabelled)",
    ),
    ("pci", "PCI passthrough is not implemented"),
    ("iomem", "I/O memory passthrough is not implemented"),
    ("ioports", "I/O port passthrough is not implemented"),
    ("irqs", "IRQ passthrough is not implemented"),
    ("dtdev", "device-tree passthrough is not implemented"),
];

/// Keys of [`REFUSED_KEYS`] that are lists: an empty one asks for nothing.
const REFUSED_LIST_KEYS: &[&str] = &["pci", "iomem", "ioports", "irqs", "dtdev"];
/// Keys of [`REFUSED_KEYS`] that are xl booleans: 0 asks for nothing.
const REFUSED_BOOL_KEYS: &[&str] = &[];

/// Refuses the config if it asks for what [`REFUSED_KEYS`] lists.
fn refuse_keys(cfg: &XlConfig) -> Result<(), ConfigError> {
    for key in cfg.keys() {
        let Some((k, why)) = REFUSED_KEYS.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        let Some(s) = cfg.get(key) else { continue };
        let asks = match &s.value {
            Value::List(l) if REFUSED_LIST_KEYS.contains(k) => !l.is_empty(),
            Value::Atom(a) if REFUSED_BOOL_KEYS.contains(k) => match parse_long(a) {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(value_err(key, s, format!("{a:?} is not 0 or 1"))),
            },
            _ => true,
        };
        if asks {
            return Err(ConfigError::Refused {
                key: (*k).to_owned(),
                line: s.line,
                why,
            });
        }
    }
    Ok(())
}

/// Keys of a PVH guest's config that pvbuild cannot honour yet, and why: any of them set
/// to other than its default refuses the config (an error naming the key). The value given
/// is the default that is accepted (None: any setting refuses).
pub const PVH_REFUSED_KEYS: &[(&str, Option<&str>, &str)] = &[
    (
        "hap",
        Some("1"),
        "PVH guests are built with HAP only (no shadow paging)",
    ),
    (
        "acpi",
        Some("1"),
        "PVH guests always get libxl's ACPI tables",
    ),
    ("apic", Some("1"), "PVH guests always get a local APIC"),
    ("pvshim", Some("0"), "the PV shim is not implemented"),
    ("pvshim_path", None, "the PV shim is not implemented"),
    ("pvshim_cmdline", None, "the PV shim is not implemented"),
    ("pvshim_extra", None, "the PV shim is not implemented"),
    (
        "mmio_hole",
        None,
        "only libxl's default hole below 4 GiB is implemented",
    ),
    (
        "shadow_memory",
        None,
        "the paging pool is libxl's default size",
    ),
    (
        "nestedhvm",
        Some("0"),
        "nested virtualisation is not implemented",
    ),
    (
        "timer_mode",
        None,
        "only libxl's default timer mode is implemented",
    ),
];

/// Keys of an HVM guest's config that pvbuild cannot honour yet, as [`PVH_REFUSED_KEYS`].
pub const HVM_REFUSED_KEYS: &[(&str, Option<&str>, &str)] = &[
    (
        "bootloader",
        None,
        "HVM guests boot through their firmware, not a PV bootloader",
    ),
    (
        "hap",
        Some("1"),
        "HVM guests are built with HAP only (no shadow paging)",
    ),
    (
        "viridian",
        Some("0"),
        "Viridian enlightenments are not implemented",
    ),
    (
        "hpet",
        Some("1"),
        "only libxl's default HPET is implemented",
    ),
    (
        "vpt_align",
        Some("1"),
        "only libxl's default vpt_align is implemented",
    ),
    (
        "mmio_hole",
        None,
        "only libxl's default hole below 4 GiB is implemented",
    ),
    (
        "shadow_memory",
        None,
        "the paging pool is libxl's default size",
    ),
    (
        "nestedhvm",
        Some("0"),
        "nested virtualisation is not implemented",
    ),
    (
        "timer_mode",
        None,
        "only libxl's default timer mode is implemented",
    ),
    ("altp2m", None, "altp2m is not implemented"),
    ("altp2mhvm", None, "altp2m is not implemented"),
    ("firmware", None, "only hvmloader is implemented"),
    ("bios", Some("seabios"), "only SeaBIOS is implemented"),
    (
        "bios_path_override",
        None,
        "only Debian's SeaBIOS is implemented",
    ),
    (
        "acpi_firmware",
        None,
        "extra ACPI tables are not implemented",
    ),
    (
        "smbios_firmware",
        None,
        "extra SMBIOS tables are not implemented",
    ),
    ("rdm", None, "reserved device memory is not implemented"),
    ("vnuma", None, "vNUMA is not implemented"),
    (
        "tsc_mode",
        Some("default"),
        "only the default TSC mode is implemented",
    ),
    (
        "localtime",
        Some("0"),
        "only UTC for the emulated clock is implemented",
    ),
    (
        "rtc_timeoffset",
        Some("0"),
        "an RTC offset is not implemented",
    ),
    ("timeoffset", None, "an RTC offset is not implemented"),
    (
        "device_model_version",
        Some("qemu-xen"),
        "only the upstream QEMU device model (qemu-xen) is implemented",
    ),
    ("pvshim", Some("0"), "the PV shim is for PVH guests"),
];

/// Refuses a config that asks for a key of `keys` set other than its default, or for
/// `maxmem` above `memory` (populate-on-demand, not implemented).
fn refuse_type_keys(
    cfg: &XlConfig,
    keys: &[(&str, Option<&str>, &str)],
    ty: &str,
) -> Result<(), ConfigError> {
    for (k, default, why) in keys {
        let Some(s) = cfg.get(k) else { continue };
        let asks = match (&s.value, default) {
            (Value::List(l), _) => !l.is_empty(),
            (Value::Atom(a), Some(d)) => a != d,
            (Value::Atom(_), None) => true,
        };
        if asks {
            return Err(value_err(
                k,
                s,
                format!("not supported for a {ty} guest: {why}"),
            ));
        }
    }
    if let (Some(mm), Some(m)) = (cfg.get("maxmem"), cfg.get("memory")) {
        if mm.value != m.value {
            return Err(value_err(
                "maxmem",
                mm,
                format!(
                    "not supported for a {ty} guest: maxmem above memory needs populate-on-demand"
                ),
            ));
        }
    }
    Ok(())
}

/// `dm_restrict` and `device_model_user`, read early (the HVM device model's check).
fn dm_privileges_of(
    cfg: &XlConfig,
) -> Result<crate::devmodel::restrict::DmPrivileges, ConfigError> {
    let restrict = match cfg.get("dm_restrict") {
        Some(
            s @ Setting {
                value: Value::Atom(a),
                ..
            },
        ) => match parse_long(a) {
            Some(v @ 0..=1) => v == 1,
            _ => return Err(value_err("dm_restrict", s, format!("{a:?} is not 0 or 1"))),
        },
        Some(s) => return Err(value_err("dm_restrict", s, "expected a string, not a list")),
        None => false,
    };
    Ok(crate::devmodel::restrict::DmPrivileges {
        restrict,
        user: None,
    })
}

/// `cpus` / `cpus_soft`: a string (every vcpu) or a list (one entry per vcpu), in xl's
/// cpu-list syntax.
fn affinity(cfg: &XlConfig, key: &str) -> Result<Option<Affinity>, ConfigError> {
    let Some(s) = cfg.get(key) else {
        return Ok(None);
    };
    let spec = |t: &str| CpuSpec::parse(t).map_err(|m| value_err(key, s, m));
    Ok(match &s.value {
        Value::Atom(a) => Some(Affinity::All(spec(a)?)),
        Value::List(l) if l.is_empty() => None,
        Value::List(l) => Some(Affinity::PerVcpu(
            l.iter()
                .enumerate()
                .map(|(i, t)| {
                    CpuSpec::parse(t).map_err(|m| value_err(key, s, format!("entry {i}: {m}")))
                })
                .collect::<Result<_, _>>()?,
        )),
    })
}

/// What [`DomainConfig::from_xl`] noticed but did not refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Line of the setting.
    pub line: usize,
    /// The message.
    pub msg: String,
}

/// A list of device specs (`disk`, `vif`): a list, or one string as xl also takes; at most
/// `max` (`what` names them in the error); each parsed by `parse`, an error naming its entry.
fn spec_list<T>(
    cfg: &XlConfig,
    key: &str,
    what: &str,
    max: usize,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let Some(s) = cfg.get(key) else {
        return Ok(Vec::new());
    };
    let specs = match &s.value {
        Value::List(l) => l.clone(),
        Value::Atom(a) => vec![a.clone()],
    };
    if specs.len() > max {
        return Err(value_err(
            key,
            s,
            format!("{} {what}, at most {max}", specs.len()),
        ));
    }
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| parse(spec).map_err(|m| value_err(key, s, format!("entry {i}: {m}"))))
        .collect()
}

pub(crate) fn value_err(key: &str, s: &Setting, msg: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key: key.into(),
        line: s.line,
        msg: msg.into(),
    }
}

/// `strtol(s, &end, 0)` with the whole string consumed: decimal, `0x` hex or `0` octal, with
/// an optional sign.
pub fn parse_long(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(body.get(1..)?, 8).ok()?
    } else {
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        body.parse().ok()?
    };
    if neg {
        v.checked_neg()
    } else {
        Some(v)
    }
}

impl DomainConfig {
    /// Read and map a config file (at most [`CONFIG_MAX_BYTES`]).
    pub fn load(path: &Path) -> Result<(Self, Vec<Warning>), ConfigError> {
        let read_err = |e: std::io::Error| ConfigError::Read {
            path: path.into(),
            msg: e.to_string(),
        };
        let f = std::fs::File::open(path).map_err(read_err)?;
        let mut buf = Vec::new();
        f.take(CONFIG_MAX_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        Self::from_xl(&parse(&buf)?)
    }

    /// Map parsed settings, applying xl's defaults.
    pub fn from_xl(cfg: &XlConfig) -> Result<(Self, Vec<Warning>), ConfigError> {
        let mut warnings = Vec::new();
        let string = |key: &str| -> Result<Option<(String, &Setting)>, ConfigError> {
            match cfg.get(key) {
                None => Ok(None),
                Some(s) => match &s.value {
                    Value::Atom(a) => Ok(Some((a.clone(), s))),
                    Value::List(_) => Err(value_err(key, s, "expected a string, not a list")),
                },
            }
        };
        let number = |key: &str, min: i64, max: i64| -> Result<Option<i64>, ConfigError> {
            match string(key)? {
                None => Ok(None),
                Some((a, s)) => match parse_long(&a) {
                    Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                    Some(v) => Err(value_err(key, s, format!("{v} is outside {min}..={max}"))),
                    None => Err(value_err(key, s, format!("{a:?} is not a number"))),
                },
            }
        };
        let action = |key: &str, default: Action| -> Result<Action, ConfigError> {
            match string(key)? {
                None => Ok(default),
                Some((a, s)) => match Action::parse(&a) {
                    None => Err(value_err(key, s, format!("unknown action {a:?}"))),
                    // What pvbuild cannot carry out is refused now, not when the guest stops.
                    Some(
                        Action::RenameRestart
                        | Action::SoftReset
                        | Action::CoredumpDestroy
                        | Action::CoredumpRestart,
                    ) => Err(value_err(
                        key,
                        s,
                        format!(
                            "action {a:?} is not supported by pvbuild (it writes no core dump, \
                             renames no domain and does no soft reset): use destroy, restart \
                             or preserve"
                        ),
                    )),
                    Some(act) => Ok(act),
                },
            }
        };

        refuse_keys(cfg)?;
        // An HVM guest's device-model keys are read (crate::devmodel::hvm), a PV guest's not.
        let is_hvm = [("type", "hvm"), ("builder", "hvm")].iter().any(|(k, v)| {
            cfg.get(k)
                .is_some_and(|s| s.value == Value::Atom((*v).into()))
        });
        for key in cfg.keys() {
            let line = cfg.get(key).map_or(0, |s| s.line);
            if SUPPORTED_KEYS.contains(&key)
                || REFUSED_KEYS.iter().any(|(k, _)| *k == key)
                || (is_hvm && crate::devmodel::hvm::HVM_DM_KEYS.contains(&key))
            {
                continue;
            }
            let msg = if XL_KEYS_IGNORED.contains(&key) {
                format!("{key}: not supported by pvbuild, ignored")
            } else {
                format!("{key}: unknown setting, ignored")
            };
            warnings.push(Warning { line, msg });
        }

        let mut pvh = false;
        let mut hvm = false;
        if let Some((t, s)) = string("type")? {
            match t.as_str() {
                "pv" => {}
                "pvh" => pvh = true,
                "hvm" => hvm = true,
                _ => return Err(value_err("type", s, format!("unknown domain type {t:?}"))),
            }
        }
        if let Some((b, s)) = string("builder")? {
            match b.as_str() {
                "generic" | "linux" => {}
                // xl: `builder = "hvm"` is the old spelling of `type = "hvm"`.
                "hvm" if !pvh => hvm = true,
                "hvm" => return Err(value_err("builder", s, "builder hvm with type pvh")),
                _ => return Err(value_err("builder", s, format!("unknown builder {b:?}"))),
            }
        }
        if pvh {
            refuse_type_keys(cfg, PVH_REFUSED_KEYS, "pvh")?;
        }
        let hvm = if hvm {
            refuse_type_keys(cfg, HVM_REFUSED_KEYS, "hvm")?;
            let dm = crate::devmodel::hvm::HvmDm::from_xl(cfg)?;
            if let Err(why) = crate::devmodel::hvm::check_privileges(&dm_privileges_of(cfg)?) {
                return Err(ConfigError::Invalid(why));
            }
            let flag = |key: &str, default: bool| -> Result<bool, ConfigError> {
                Ok(number(key, 0, 1)?.map_or(default, |v| v != 0))
            };
            Some(HvmGuest {
                acpi: flag("acpi", true)?,
                apic: flag("apic", true)?,
                acpi_s3: flag("acpi_s3", true)?,
                acpi_s4: flag("acpi_s4", true)?,
                acpi_laptop_slate: flag("acpi_laptop_slate", false)?,
                video_memkb: dm.video_memkb(),
                stubdom: crate::devmodel::stubdom::StubdomSpec::from_xl(cfg)?,
                dm,
            })
        } else {
            if let Some(s) = cfg.get("device_model_stubdomain_override") {
                if number("device_model_stubdomain_override", 0, 1)? == Some(1) {
                    return Err(value_err(
                        "device_model_stubdomain_override",
                        s,
                        "a stub-domain device model is for HVM guests only",
                    ));
                }
            }
            None
        };

        let name = match string("name")? {
            Some((n, s)) => match crate::xenstore::check_domain_name(&n) {
                Ok(()) => n,
                Err(why) => return Err(value_err("name", s, why)),
            },
            None => return Err(ConfigError::Invalid("domain name must be specified".into())),
        };
        let uuid = match string("uuid")? {
            None => None,
            Some((u, s)) => Some(
                Uuid::parse_str(&u)
                    .map_err(|_| value_err("uuid", s, format!("invalid uuid {u:?}")))?,
            ),
        };
        let kernel = string("kernel")?.map(|(k, _)| PathBuf::from(k));
        let ramdisk = string("ramdisk")?.map(|(r, _)| PathBuf::from(r));
        let bootloader = string("bootloader")?.map(|(b, _)| b);
        let bootloader_args = match cfg.get("bootloader_args") {
            None => Vec::new(),
            Some(Setting {
                value: Value::List(l),
                ..
            }) => l.clone(),
            Some(
                s @ Setting {
                    value: Value::Atom(a),
                    ..
                },
            ) => {
                warnings.push(Warning {
                    line: s.line,
                    msg: "bootloader_args: a string is deprecated, use a list".into(),
                });
                a.split(' ')
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect()
            }
        };
        let bootloader_restrict = number("bootloader_restrict", 0, 1)?.map(|v| v != 0);
        let bootloader_user = match string("bootloader_user")? {
            Some((u, s)) if u.is_empty() => {
                return Err(value_err("bootloader_user", s, "empty user"))
            }
            other => other.map(|(u, _)| u),
        };
        // An HVM guest without a kernel boots from its disks through its firmware.
        if hvm.is_none() && kernel.is_none() && bootloader.is_none() {
            return Err(ConfigError::Invalid(
                "a PV domain needs kernel or bootloader".into(),
            ));
        }
        let disks = spec_list(cfg, "disk", "disks", DISKS_MAX, parse_disk_spec)?;
        let device_model = string("device_model_override")?.map(|(p, _)| PathBuf::from(p));
        let dm_privileges = crate::devmodel::restrict::DmPrivileges {
            restrict: number("dm_restrict", 0, 1)? == Some(1),
            user: match string("device_model_user")? {
                Some((u, s)) if u.is_empty() => {
                    return Err(value_err("device_model_user", s, "empty user"))
                }
                other => other.map(|(u, _)| u),
            },
        };
        let vifs = spec_list(cfg, "vif", "interfaces", VIFS_MAX, parse_vif_spec)?;
        // libxl's `libxl__device_nic_setdefault`: only an HVM guest has emulated NICs.
        if hvm.is_none() {
            if let (Some(i), Some(s)) = (
                vifs.iter().position(|v: &VifSpec| v.ioemu == Some(true)),
                cfg.get("vif"),
            ) {
                return Err(value_err(
                    "vif",
                    s,
                    format!("entry {i}: type=ioemu: a PV or PVH guest has no emulated interfaces"),
                ));
            }
        }

        // xl: cmdline wins over root/extra; otherwise "root=<root> <extra>".
        let cmdline_set = string("cmdline")?;
        let root = string("root")?;
        let extra = string("extra")?;
        let cmdline = match (cmdline_set, &root, &extra) {
            (Some((c, s)), r, e) => {
                if r.is_some() || e.is_some() {
                    warnings.push(Warning {
                        line: s.line,
                        msg: "cmdline: ignoring root= and extra= in favour of cmdline=".into(),
                    });
                }
                Some(c)
            }
            (None, Some((r, _)), Some((e, _))) => Some(format!("root={r} {e}")),
            (None, Some((r, _)), None) => Some(format!("root={r}")),
            (None, None, Some((e, _))) => Some(e.clone()),
            (None, None, None) => None,
        };
        // ramdisk and the command line of an HVM guest are its device model's direct kernel
        // boot: QEMU's -initrd and -append need -kernel.
        if hvm.is_some() && kernel.is_none() {
            let given = [
                ("ramdisk", ramdisk.is_some()),
                ("cmdline", cmdline.is_some()),
            ];
            if let Some((key, _)) = given.into_iter().find(|(_, set)| *set) {
                return Err(ConfigError::Invalid(format!(
                    "{key} needs kernel (direct kernel boot); without kernel an HVM guest boots \
                     from its disks"
                )));
            }
        }

        let max_mem = i64::try_from(MEMORY_MAX_MIB).unwrap_or(i64::MAX);
        let memory = number("memory", 1, max_mem)?.map(|v| v.unsigned_abs());
        let maxmem = number("maxmem", 1, max_mem)?.map(|v| v.unsigned_abs());
        let memory_mib = memory.or(maxmem).unwrap_or(DEFAULT_MEMORY_MIB);
        let maxmem_mib = maxmem.unwrap_or(memory_mib);
        if maxmem_mib < memory_mib {
            return Err(ConfigError::Invalid(format!(
                "maxmem ({maxmem_mib} MiB) is below memory ({memory_mib} MiB)"
            )));
        }
        let vmax = i64::from(VCPUS_MAX);
        let vcpus = number("vcpus", 1, vmax)?.and_then(|v| u32::try_from(v).ok());
        let max_vcpus = number("maxvcpus", 1, vmax)?.and_then(|v| u32::try_from(v).ok());
        let vcpus_n = vcpus.unwrap_or(1);
        let max_vcpus_n = max_vcpus.unwrap_or(vcpus_n);
        if max_vcpus_n < vcpus_n {
            return Err(ConfigError::Invalid(format!(
                "maxvcpus ({max_vcpus_n}) is below vcpus ({vcpus_n})"
            )));
        }

        let pool = match string("pool")? {
            Some((p, s)) if p.is_empty() => return Err(value_err("pool", s, "empty pool name")),
            other => other.map(|(p, _)| p),
        };
        let placement = Placement {
            pool,
            hard: affinity(cfg, "cpus")?,
            soft: affinity(cfg, "cpus_soft")?,
            weight: number("cpu_weight", 1, 65535)?.and_then(|v| u16::try_from(v).ok()),
            cap: number("cap", 0, 65535)?.and_then(|v| u16::try_from(v).ok()),
        };

        Ok((
            Self {
                name,
                uuid,
                kernel,
                ramdisk,
                cmdline,
                memory_mib,
                maxmem_mib,
                vcpus: vcpus_n,
                max_vcpus: max_vcpus_n,
                on_poweroff: action("on_poweroff", Action::Destroy)?,
                on_reboot: action("on_reboot", Action::Restart)?,
                on_crash: action("on_crash", Action::Destroy)?,
                on_watchdog: action("on_watchdog", Action::Destroy)?,
                bootloader,
                bootloader_args,
                bootloader_restrict,
                bootloader_user,
                disks,
                device_model,
                dm_privileges,
                vifs,
                placement,
                pvh,
                hvm,
            },
            warnings,
        ))
    }
}

/// The keys [`DomainConfig::from_xl`] reads.
pub const SUPPORTED_KEYS: &[&str] = &[
    "name",
    "type",
    "builder",
    "kernel",
    "ramdisk",
    "extra",
    "cmdline",
    "root",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "bootloader",
    "bootloader_args",
    "bootloader_restrict",
    "bootloader_user",
    "uuid",
    "disk",
    "device_model_override",
    "device_model_stubdomain_override",
    "device_model_version",
    "stubdomain_kernel",
    "stubdomain_ramdisk",
    "stubdomain_cmdline",
    "stubdomain_memory",
    "dm_restrict",
    "device_model_user",
    "vif",
    "pool",
    "cpus",
    "cpus_soft",
    "cpu_weight",
    "cap",
    "hap",
    "acpi",
    "apic",
    "pvshim",
    "pvshim_path",
    "pvshim_cmdline",
    "pvshim_extra",
    "mmio_hole",
    "nestedhvm",
    "timer_mode",
    "acpi_s3",
    "acpi_s4",
    "acpi_laptop_slate",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_and_parses_the_grammar() {
        let c = parse(
            b"# comment\nname = \"a\\tb\" ; memory = 0x100\nvif = [ 'x',\n  \"y\",\n]\n\
              disk=[]\nextra='q\\'s\\x41\\101' # trailing\nlast = 7",
        )
        .unwrap();
        assert_eq!(c.get("name").unwrap().value, Value::Atom("a\tb".into()));
        assert_eq!(c.get("memory").unwrap().value, Value::Atom("0x100".into()));
        assert_eq!(
            c.get("vif").unwrap().value,
            Value::List(vec!["x".into(), "y".into()])
        );
        assert_eq!(c.get("vif").unwrap().line, 3);
        assert_eq!(c.get("disk").unwrap().value, Value::List(vec![]));
        assert_eq!(c.get("extra").unwrap().value, Value::Atom("q'sAA".into()));
        assert_eq!(c.get("last").unwrap().line, 8);
        assert_eq!(
            c.keys().collect::<Vec<_>>(),
            ["name", "memory", "vif", "disk", "extra", "last"]
        );
    }

    #[test]
    fn pvh_type_and_its_refused_keys() {
        let base = "name = \"g\"\ntype = \"pvh\"\nkernel = \"/k\"\nmemory = 256\n";
        let load = |extra: &str| {
            DomainConfig::from_xl(&parse(format!("{base}{extra}").as_bytes()).unwrap())
        };
        let (c, _) = load("hap = 1\nacpi = 1\nmaxmem = 256\n").unwrap();
        assert!(c.pvh);
        let (c, _) =
            DomainConfig::from_xl(&parse(b"name = \"g\"\nkernel = \"/k\"\n").unwrap()).unwrap();
        assert!(!c.pvh);
        for (extra, key) in [
            ("hap = 0\n", "hap"),
            ("pvshim = 1\n", "pvshim"),
            ("maxmem = 512\n", "maxmem"),
            ("mmio_hole = 1024\n", "mmio_hole"),
        ] {
            match load(extra) {
                Err(ConfigError::Value { key: k, msg, .. }) => {
                    assert_eq!(k, key);
                    assert!(msg.contains("pvh"), "{msg}");
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
        // A refused key at its accepted default asks for nothing.
        assert!(load("nestedhvm = 0\n").is_ok());
        // Disks, interfaces and a bootloader are a PVH guest's as a PV guest's (libxl runs
        // the bootloader for PV and PVH, skipping only HVM).
        let (c, _) = load(
            "disk = [ 'x.img,raw,xvda,w' ]\nvif = [ 'bridge=xenbr0' ]\nbootloader = \"pygrub\"\n",
        )
        .unwrap();
        assert!(c.pvh);
        assert_eq!((c.disks.len(), c.vifs.len()), (1, 1));
        assert_eq!(c.bootloader.as_deref(), Some("pygrub"));
    }

    #[test]
    fn hvm_type_and_its_refused_keys() {
        let load = |extra: &str| {
            let text =
                format!("name = \"g\"\ntype = \"hvm\"\nkernel = \"/k\"\nvga = \"none\"\n{extra}");
            DomainConfig::from_xl(&parse(text.as_bytes()).unwrap()).map(|(c, _)| c)
        };
        let c = load("acpi = 0\nvcpus = 2\n").unwrap();
        let h = c.hvm.unwrap();
        assert!(!h.acpi && h.apic && h.acpi_s3 && !h.acpi_laptop_slate);
        assert_eq!(h.video_memkb, 0);
        assert!(!c.pvh);
        for (extra, key) in [
            ("hap = 0\n", "hap"),
            ("viridian = 1\n", "viridian"),
            ("shadow_memory = 8\n", "shadow_memory"),
            ("mmio_hole = 1024\n", "mmio_hole"),
            ("bios = \"ovmf\"\n", "bios"),
            ("memory = 256\nmaxmem = 512\n", "maxmem"),
        ] {
            match load(extra) {
                Err(ConfigError::Value { key: k, msg, .. }) => {
                    assert_eq!(k, key);
                    assert!(msg.contains("hvm"), "{msg}");
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
        // Disks and interfaces (emulated beside their PV devices); `type=ioemu` is for HVM
        // guests only, as libxl's `libxl__device_nic_setdefault` says.
        let c = load("disk = [ \"/x,raw,hda,rw\" ]\nvif = [ \"model=e1000\", \"type=vif\" ]\n")
            .unwrap();
        assert_eq!((c.disks.len(), c.vifs.len()), (1, 2));
        assert_eq!(c.vifs[0].model.as_deref(), Some("e1000"));
        assert_eq!(c.vifs[1].ioemu, Some(false));
        for ty in ["pv", "pvh"] {
            let text = format!(
                "name = \"g\"\ntype = \"{ty}\"\nkernel = \"/k\"\nvif = [ \"type=ioemu\" ]\n"
            );
            match DomainConfig::from_xl(&parse(text.as_bytes()).unwrap()) {
                Err(ConfigError::Value { key, msg, .. }) => {
                    assert_eq!(key, "vif");
                    assert!(msg.contains("type=ioemu"), "{msg}");
                }
                other => panic!("{ty}: {other:?}"),
            }
        }
        // builder = "hvm" is the old spelling.
        let b =
            parse(b"name = \"g\"\nbuilder = \"hvm\"\nkernel = \"/k\"\nvga = \"none\"\n").unwrap();
        assert!(DomainConfig::from_xl(&b).unwrap().0.hvm.is_some());
    }

    #[test]
    fn hvm_without_kernel_boots_from_its_disks() {
        let load = |extra: &str| {
            let text = format!("name = \"g\"\ntype = \"hvm\"\nvga = \"none\"\n{extra}");
            DomainConfig::from_xl(&parse(text.as_bytes()).unwrap()).map(|(c, _)| c)
        };
        let c = load("boot = \"c\"\n").unwrap();
        assert!(c.hvm.is_some() && c.kernel.is_none());
        // QEMU's -initrd and -append need -kernel.
        for (extra, key) in [
            ("ramdisk = \"/r\"\n", "ramdisk"),
            ("cmdline = \"x\"\n", "cmdline"),
            ("extra = \"x\"\n", "cmdline"),
        ] {
            match load(extra) {
                Err(ConfigError::Invalid(msg)) => {
                    assert!(msg.starts_with(&format!("{key} needs kernel")), "{msg}")
                }
                other => panic!("{extra}: {other:?}"),
            }
        }
        // A PV or PVH guest still needs a kernel (or a bootloader).
        for ty in ["pv", "pvh"] {
            let text = format!("name = \"g\"\ntype = \"{ty}\"\n");
            assert!(matches!(
                DomainConfig::from_xl(&parse(text.as_bytes()).unwrap()),
                Err(ConfigError::Invalid(_))
            ));
        }
    }

    #[test]
    fn strtol_numbers() {
        assert_eq!(parse_long("256"), Some(256));
        assert_eq!(parse_long("0x100"), Some(256));
        assert_eq!(parse_long("0100"), Some(64));
        assert_eq!(parse_long("-3"), Some(-3));
        assert_eq!(parse_long("0"), Some(0));
        assert_eq!(parse_long("12ab"), None);
        assert_eq!(parse_long("09"), None);
        assert_eq!(parse_long(""), None);
        assert_eq!(parse_long("99999999999999999999"), None);
    }

    #[test]
    fn disk_specs_as_xl_reads_them() {
        let d = |s: &str| parse_disk_spec(s).unwrap();
        let spec = |t: &str, f, v: Option<&str>| DiskSpec {
            target: t.into(),
            format: f,
            vdev: v.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            d("phy:/dev/vg/guest,xvda,w"),
            spec("/dev/vg/guest", DiskFormat::Raw, Some("xvda"))
        );
        assert_eq!(
            d("file:/srv/g.img,xvda1,w"),
            spec("/srv/g.img", DiskFormat::Raw, Some("xvda1"))
        );
        assert_eq!(
            d("tap:aio:/srv/g.img,xvda,w"),
            spec("/srv/g.img", DiskFormat::Raw, Some("xvda"))
        );
        assert_eq!(
            d("tap:qcow2:/srv/g.qcow2,xvda,w"),
            spec("/srv/g.qcow2", DiskFormat::Qcow2, Some("xvda"))
        );
        assert_eq!(
            d("/srv/g.img,raw,xvda,rw"),
            spec("/srv/g.img", DiskFormat::Raw, Some("xvda"))
        );
        assert_eq!(
            d("/srv/g.img,qcow2,xvda"),
            spec("/srv/g.img", DiskFormat::Qcow2, Some("xvda"))
        );
        assert_eq!(
            d("format=raw, vdev=xvda, access=rw, target=/srv/a,b.img"),
            spec("/srv/a,b.img", DiskFormat::Raw, Some("xvda"))
        );
        assert_eq!(d(",,hdc,devtype=cdrom").format, DiskFormat::Empty);
        assert!(d(",,hdc,devtype=cdrom").cdrom);
        let c = d("/iso,raw,hdc:cdrom,r");
        assert!(c.cdrom && c.readonly);
        assert_eq!(c.vdev.as_deref(), Some("hdc"));
        assert!(d("/srv/g.img,raw,xvda,ro").readonly);
        assert!(!d("/srv/g.img,raw,xvda,rw").readonly);
        assert!(d("access=r,target=/x").readonly);
        assert_eq!(d("target=/x,access=r").target, "/x,access=r");
        let f = d("/srv/g.img,raw,xvda,w,no-discard,untrusted");
        assert_eq!(
            (f.discard, f.untrusted, f.readonly),
            (Some(false), true, false)
        );
        let b = d("vdev=xvdb,backendtype=qdisk,backend=0,script=block,target=/x");
        assert_eq!(
            (
                b.backendtype.as_deref(),
                b.backend.as_deref(),
                b.script.as_deref()
            ),
            (Some("qdisk"), Some("0"), Some("block"))
        );
        assert!(parse_disk_spec("/a,raw,xvda,x").is_err());
        assert!(parse_disk_spec("/a,backendtype=floppy").is_err());
        assert!(parse_disk_spec("/a,raw,xvda,w,extra").is_err());
        assert!(parse_disk_spec("/a,bogusformat,xvda").is_err());
        assert!(parse_disk_spec("/a,nosuchkey=1").is_err());
    }

    #[test]
    fn the_first_disk_is_the_bootloaders() {
        let (c, w) = DomainConfig::from_xl(
            &parse(
                b"name='g'\nbootloader='pygrub'\ndisk=['/srv/one.img,raw,xvda,w', 'phy:/dev/two,xvdb,w']\n",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(c.boot_disk().unwrap().target, "/srv/one.img");
        assert_eq!(c.disks.len(), 2);
        assert_eq!(c.disks[1].vdev.as_deref(), Some("xvdb"));
        assert!(w.is_empty(), "{w:?}");
        let e = DomainConfig::from_xl(
            &parse(b"name='g'\nkernel='/k'\ndisk=['/a,bad,xvda']\n").unwrap(),
        );
        assert!(e.is_err());
    }
}

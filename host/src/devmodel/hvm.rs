//! The device model of an HVM guest: Debian's QEMU (`xen-qemu-system-i386`) with Xen's
//! `xenfv` machine, started as libxl 4.17 starts it (`libxl__build_device_model_args_new` for
//! `LIBXL_DOMAIN_TYPE_HVM`, `libxl__spawn_local_dm`, the post-start QMP queries of
//! `device_model_postconfig_*`).
//!
//! - [`HvmDm::from_xl`] reads the device-model keys of an xl config with xl's and libxl's
//!   defaults (`vga` cirrus, `vnc` on at 127.0.0.1, `boot` "cda"...), and refuses, naming the
//!   key, what pvbuild cannot serve here.
//! - [`qemu_args`] is QEMU's argv, in libxl's order (checked against what xl logged on real
//!   Xen: tests/xen/reference/xl-hvm-dm-*.log).
//! - [`request`] makes the [`DmRequest`] that [`super::launch`] starts and waits for, as
//!   for a PV guest's QEMU (log, pid in xenstore, `running`, crash journal); then
//!   [`postconfig`] asks QEMU over QMP where its serial ptys and VNC server are, and writes
//!   them where `xl console -t serial` and VNC viewers look, as libxl does.
//! - Teardown is [`super::stop_for_domain`] (destroy), or the [`super::RunningDm`]'s stop on a
//!   failed create: [`quit`] asks QEMU to exit over QMP first.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{parse_long, ConfigError, DiskFormat, DiskSpec, Setting, Value, XlConfig};
use crate::xenstore::{dom_path, XsConnection};

use super::restrict::Restriction;
use super::DmRequest;

/// The keys [`HvmDm::from_xl`] reads (the create adds them to the keys it knows).
pub const HVM_DM_KEYS: &[&str] = &[
    "serial",
    "vga",
    "stdvga",
    "videoram",
    "vnc",
    "vnclisten",
    "vncdisplay",
    "vncunused",
    "vncpasswd",
    "sdl",
    "nographic",
    "boot",
    "usb",
    "usbdevice",
    "usbversion",
    "soundhw",
    "keymap",
    "spice",
    "xen_platform_pci",
    "hdtype",
    "vendor_device",
    "device_model_args",
    "device_model_args_hvm",
];

/// How long libxl waits for each QMP answer after the start (`LIBXL_QMP_CMD_TIMEOUT`).
pub const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// The emulated graphics card (`vga`, or the older `stdvga`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vga {
    /// `stdvga`: QEMU's `VGA` device.
    Std,
    /// `cirrus` (libxl's default): `cirrus-vga`.
    Cirrus,
    /// `none`.
    None,
}

/// QEMU's VNC server (`vnc`, on by default for HVM in libxl).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vnc {
    /// `vnclisten` (default 127.0.0.1); may carry the display after a colon.
    pub listen: String,
    /// `vncdisplay` (default 0).
    pub display: u32,
    /// `vncunused` (default on): try the next 99 displays when this one is taken.
    pub find_unused: bool,
}

/// The device-model keys of an HVM xl config, with libxl's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmDm {
    /// `serial`: QEMU `-serial` backends, in order (none when absent).
    pub serial: Vec<String>,
    /// `vga`.
    pub vga: Vga,
    /// `videoram` in KiB, or libxl's default for the card.
    video_memkb: u64,
    /// `vnc`.
    pub vnc: Option<Vnc>,
    /// `nographic`.
    pub nographic: bool,
    /// `boot`: QEMU's boot order (default "cda").
    pub boot: String,
    /// `hdtype = "ahci"`: the disks on an AHCI controller (`-device ahci,id=ahci0`) instead
    /// of the IDE buses (libxl's `LIBXL_HDTYPE_AHCI`; default "ide").
    pub ahci: bool,
}

/// A refusal of `key` at `s`'s line.
fn refused(key: &str, s: &Setting, why: &'static str) -> ConfigError {
    ConfigError::Refused {
        key: key.into(),
        line: s.line,
        why,
    }
}

fn bad(key: &str, s: &Setting, msg: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key: key.into(),
        line: s.line,
        msg: msg.into(),
    }
}

/// `key`'s value as one string.
pub(crate) fn atom<'a>(
    cfg: &'a XlConfig,
    key: &str,
) -> Result<Option<(&'a str, &'a Setting)>, ConfigError> {
    match cfg.get(key) {
        None => Ok(None),
        Some(s) => match &s.value {
            Value::Atom(a) => Ok(Some((a.as_str(), s))),
            Value::List(_) => Err(bad(key, s, "expected a string, not a list")),
        },
    }
}

/// `key` as a number in `min..=max`.
pub(crate) fn number(
    cfg: &XlConfig,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ConfigError> {
    match atom(cfg, key)? {
        None => Ok(None),
        Some((a, s)) => match parse_long(a) {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            Some(v) => Err(bad(key, s, format!("{v} is outside {min}..={max}"))),
            None => Err(bad(key, s, format!("{a:?} is not a number"))),
        },
    }
}

/// `key` as an xl boolean (`xlu_cfg_get_defbool`: a number, non-zero is true).
fn boolean(cfg: &XlConfig, key: &str) -> Result<Option<bool>, ConfigError> {
    Ok(number(cfg, key, i64::MIN, i64::MAX)?.map(|v| v != 0))
}

/// Refuses `key` when it is set to anything but what asks for nothing (`idle`).
fn refuse_unless(
    cfg: &XlConfig,
    key: &str,
    idle: impl Fn(&Value) -> bool,
    why: &'static str,
) -> Result<(), ConfigError> {
    match cfg.get(key) {
        Some(s) if !idle(&s.value) => Err(refused(key, s, why)),
        _ => Ok(()),
    }
}

/// A value that is an xl boolean 0.
fn is_zero(v: &Value) -> bool {
    matches!(v, Value::Atom(a) if parse_long(a) == Some(0))
}

/// Whether `s` is a `-serial` backend pvbuild starts QEMU with: `pty`, `none`, `null`, or
/// `file:` with an absolute path (others would open listeners or devices pvbuild does not
/// vouch for).
fn serial_ok(s: &str) -> bool {
    matches!(s, "pty" | "none" | "null")
        || s.strip_prefix("file:").is_some_and(|p| {
            p.starts_with('/') && !p.contains(',') && !p.chars().any(char::is_control)
        })
}

impl HvmDm {
    /// Reads the device-model keys of `cfg` (an HVM guest's), with xl's parsing and
    /// libxl's defaults (`libxl__domain_build_info_setdefault` for qemu-xen).
    pub fn from_xl(cfg: &XlConfig) -> Result<Self, ConfigError> {
        // What QEMU here cannot serve, or pvbuild does not yet start it with.
        refuse_unless(
            cfg,
            "sdl",
            is_zero,
            "SDL needs an X display, which dom0 does not have here: use vnc",
        )?;
        refuse_unless(cfg, "spice", is_zero, "SPICE is not implemented")?;
        refuse_unless(
            cfg,
            "usb",
            is_zero,
            "emulated USB is not implemented for HVM guests",
        )?;
        refuse_unless(
            cfg,
            "usbversion",
            is_zero,
            "emulated USB is not implemented for HVM guests",
        )?;
        refuse_unless(
            cfg,
            "usbdevice",
            |v| matches!(v, Value::List(l) if l.is_empty()),
            "emulated USB is not implemented for HVM guests",
        )?;
        refuse_unless(
            cfg,
            "soundhw",
            |_| false,
            "emulated sound is not implemented",
        )?;
        refuse_unless(cfg, "keymap", |_| false, "a VNC keymap is not implemented")?;
        refuse_unless(
            cfg,
            "xen_platform_pci",
            |v| matches!(v, Value::Atom(a) if parse_long(a).is_some_and(|n| n != 0)),
            "the xenfv machine's Xen platform device (PV drivers, unplug) is always present",
        )?;
        let ahci = match atom(cfg, "hdtype")? {
            None | Some(("ide", _)) => false,
            Some(("ahci", _)) => true,
            Some((t, s)) => {
                return Err(bad(
                    "hdtype",
                    s,
                    format!("{t:?}: the disk controller is \"ide\" or \"ahci\""),
                ))
            }
        };
        refuse_unless(
            cfg,
            "vendor_device",
            |v| matches!(v, Value::Atom(a) if a == "none"),
            "the XenServer vendor device is not implemented",
        )?;
        for key in ["device_model_args", "device_model_args_hvm"] {
            refuse_unless(
                cfg,
                key,
                |v| matches!(v, Value::List(l) if l.is_empty()),
                "extra QEMU arguments are not passed (pvbuild cannot vouch for them)",
            )?;
        }
        if let Some((p, s)) = atom(cfg, "vncpasswd")? {
            if !p.is_empty() {
                return Err(refused(
                    "vncpasswd",
                    s,
                    "VNC passwords are not implemented (libxl leaves them readable in xenstore)",
                ));
            }
        }

        let vga = match atom(cfg, "vga")? {
            Some(("stdvga", _)) => Vga::Std,
            Some(("cirrus", _)) => Vga::Cirrus,
            Some(("none", _)) => Vga::None,
            Some(("qxl", s)) => {
                return Err(refused(
                    "vga",
                    s,
                    "the QXL card needs SPICE, not implemented",
                ))
            }
            Some((other, s)) => {
                return Err(bad(
                    "vga",
                    s,
                    format!("unknown vga {other:?} (stdvga, cirrus or none)"),
                ))
            }
            // xl's older key, then libxl's default.
            None => match boolean(cfg, "stdvga")? {
                Some(true) => Vga::Std,
                Some(false) | None => Vga::Cirrus,
            },
        };
        let (default_kb, min_kb) = match vga {
            Vga::Std => (16 * 1024, 16 * 1024),
            Vga::Cirrus => (8 * 1024, 8 * 1024),
            Vga::None => (0, 0),
        };
        let video_memkb = match number(cfg, "videoram", 0, 1 << 20)? {
            None => default_kb,
            Some(mib) => {
                let kb = u64::try_from(mib).unwrap_or(0) * 1024;
                if kb < min_kb {
                    let s = cfg.get("videoram").map_or(0, |s| s.line);
                    return Err(ConfigError::Value {
                        key: "videoram".into(),
                        line: s,
                        msg: format!(
                            "must be at least {} MB for this vga on qemu-xen",
                            min_kb / 1024
                        ),
                    });
                }
                kb
            }
        };
        if vga == Vga::Cirrus {
            check_cirrus_rom(cfg)?;
        }

        let vnc = if boolean(cfg, "vnc")?.unwrap_or(true) {
            let listen = atom(cfg, "vnclisten")?.map_or("127.0.0.1", |(l, _)| l);
            let display = number(cfg, "vncdisplay", 0, 65535)?.unwrap_or(0);
            if let Some(s) = cfg.get("vnclisten") {
                if listen.is_empty()
                    || listen.contains(',')
                    || listen.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(bad("vnclisten", s, format!("{listen:?} is not an address")));
                }
                if listen.contains(':') && display != 0 {
                    return Err(bad(
                        "vnclisten",
                        s,
                        "vncdisplay set, vnclisten contains display",
                    ));
                }
            }
            Some(Vnc {
                listen: listen.to_owned(),
                display: u32::try_from(display).unwrap_or(0),
                find_unused: boolean(cfg, "vncunused")?.unwrap_or(true),
            })
        } else {
            None
        };

        let serial = match cfg.get("serial") {
            None => Vec::new(),
            Some(s) => {
                let list = match &s.value {
                    Value::Atom(a) => vec![a.clone()],
                    Value::List(l) => l.clone(),
                };
                if let Some(b) = list.iter().find(|b| !serial_ok(b)) {
                    return Err(bad(
                        "serial",
                        s,
                        format!(
                            "{b:?}: pvbuild starts QEMU's serial ports as pty, file:/PATH, \
                             none or null only"
                        ),
                    ));
                }
                list
            }
        };

        let boot = match atom(cfg, "boot")? {
            None => "cda".to_owned(),
            Some((b, s)) => {
                if b.is_empty() || !b.bytes().all(|c| matches!(c, b'a'..=b'd' | b'n')) {
                    return Err(bad(
                        "boot",
                        s,
                        format!("{b:?}: a boot order is letters of a, b, c, d and n"),
                    ));
                }
                b.to_owned()
            }
        };

        Ok(Self {
            serial,
            vga,
            video_memkb,
            vnc,
            nographic: boolean(cfg, "nographic")?.unwrap_or(false),
            boot,
            ahci,
        })
    }

    /// The video memory in KiB as libxl sets it (`video_memkb`): taken from the guest's
    /// memory (`-m` is `maxmem - video`).
    pub fn video_memkb(&self) -> u64 {
        self.video_memkb
    }
}

/// Where Debian's QEMU finds `vgabios-cirrus.bin` (its data directories; package seabios
/// installs it in /usr/share/seabios).
pub const CIRRUS_ROM_DIRS: &[&str] = &["/usr/share/qemu", "/usr/share/seabios"];

/// `vga = "cirrus"` (libxl's default) needs the card's ROM, which Debian's QEMU aborts
/// without: refused, naming the package, when no data directory has it.
fn check_cirrus_rom(cfg: &XlConfig) -> Result<(), ConfigError> {
    if CIRRUS_ROM_DIRS
        .iter()
        .any(|d| Path::new(d).join("vgabios-cirrus.bin").is_file())
    {
        return Ok(());
    }
    let line = cfg
        .get("vga")
        .or_else(|| cfg.get("stdvga"))
        .map_or(0, |s| s.line);
    Err(ConfigError::Value {
        key: "vga".into(),
        line,
        msg: "the cirrus card (libxl's default) needs vgabios-cirrus.bin: install package \
              seabios, or set vga = \"stdvga\" or \"none\""
            .into(),
    })
}

/// One disk as QEMU emulates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatedDisk {
    /// The guest's name for it (`hda`, `xvdb`...).
    pub vdev: String,
    /// The image or device QEMU opens (the config's `target`).
    pub target: String,
    /// Its format.
    pub format: DiskFormat,
    /// Read-write.
    pub writable: bool,
    /// A CD-ROM.
    pub cdrom: bool,
}

impl EmulatedDisk {
    /// From a config's disk entry.
    pub fn from_spec(d: &DiskSpec) -> Self {
        Self {
            vdev: d.vdev.clone().unwrap_or_default(),
            target: d.target.clone(),
            format: d.format,
            writable: !d.readonly,
            cdrom: d.cdrom,
        }
    }
}

/// One emulated network card beside its PV vif (`vif = [ 'model=...' ]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatedNic {
    /// `devid`.
    pub devid: u32,
    /// The MAC address, as the PV vif has it (`LIBXL_MAC_FMT`).
    pub mac: String,
    /// `model=` (libxl's default `rtl8139`; `e1000` too).
    pub model: String,
    /// `bridge=` (libxl's default `xenbr0`).
    pub bridge: String,
    /// The tap QEMU makes: `vif<domid>.<devid>-emu` (libxl's `libxl__device_nic_devname`;
    /// the hotplug script renames it to `<vifname>-emu` when `vifname=` is set).
    pub ifname: String,
}

/// The NIC models pvbuild starts QEMU with.
pub const NIC_MODELS: &[&str] = &["rtl8139", "e1000"];

/// Everything an HVM guest's QEMU is started with beyond a PV guest's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HvmArgs {
    /// The device-model keys.
    pub dm: HvmDm,
    /// The domain's maximum memory in KiB (`-m` is this less the video memory).
    pub max_memkb: u64,
    /// vcpus online at boot.
    pub vcpus: u32,
    /// vcpus the domain may have.
    pub max_vcpus: u32,
    /// `acpi` (`-no-acpi` when off).
    pub acpi: bool,
    /// `mmio_hole` in KiB (0: libxl's default hole).
    pub mmio_hole_memkb: u64,
    /// Direct kernel boot: `-kernel`.
    pub kernel: Option<PathBuf>,
    /// `-initrd`.
    pub ramdisk: Option<PathBuf>,
    /// `-append`.
    pub cmdline: Option<String>,
    /// The disks, in config order.
    pub disks: Vec<EmulatedDisk>,
    /// The emulated NICs.
    pub nics: Vec<EmulatedNic>,
}

/// Why an HVM guest's disks or NICs cannot be given to QEMU as libxl gives them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HvmArgsError {
    /// A disk whose vdev libxl cannot number.
    #[error("disk {0}: no disk number for vdev {1:?}")]
    Vdev(usize, String),
    /// An emulated SCSI disk (`sd*`).
    #[error("disk {0}: vdev {1}: emulated SCSI disks are not implemented (use hd* or xvd*)")]
    Scsi(usize, String),
    /// A read-only IDE disk, which qemu-xen refuses.
    #[error("disk {0}: qemu-xen doesn't support read-only IDE disk drivers")]
    ReadOnlyIde(usize),
    /// A read-only AHCI disk, which qemu-xen refuses.
    #[error("disk {0}: qemu-xen doesn't support read-only AHCI disk drivers")]
    ReadOnlyAhci(usize),
    /// A CD-ROM beyond the two IDE buses.
    #[error("disk {0}: vdev {1}: an emulated CD-ROM must be one of the first 4 disks (hda-hdd)")]
    CdromIndex(usize, String),
    /// A target QEMU would parse as options.
    #[error("disk {0}: target {1:?} has a comma, which QEMU's -drive would read as options")]
    Comma(usize, String),
    /// A NIC model pvbuild does not start.
    #[error("vif {0}: model {1:?}: pvbuild emulates rtl8139 and e1000")]
    NicModel(u32, String),
    /// A NIC value with a character QEMU's option parser would split on.
    #[error("vif {0}: {1:?} cannot be passed to QEMU")]
    NicValue(u32, String),
    /// A tap name longer than Linux takes (a large domain id and devid).
    #[error("vif {0}: the emulated NIC's tap {1:?} would be longer than 15 characters (a smaller devid, or type=vif)")]
    TapName(u32, String),
    /// mmio_hole too small for libxl to honour.
    #[error("mmio_hole {0} KiB leaves more than 0xF0000000 bytes below 4 GiB")]
    MmioHole(u64),
}

/// The disk index (`hda`/`xvda` 0, `hdb`/`xvdb` 1...) libxl's
/// `libxl__device_disk_dev_number` gives `vdev`, if it gives one.
fn disk_index(vdev: &str) -> Option<u32> {
    let dev = crate::devices::disk::devid(vdev)?;
    let major = dev >> 8;
    if dev & (1 << 28) != 0 {
        return Some((dev >> 8) & 0xfffff);
    }
    match major {
        202 => Some((dev >> 4) & 0xf),
        3 => Some((dev >> 6) & 1),
        22 => Some(2 + ((dev >> 6) & 1)),
        8 => Some((dev >> 4) & 0xf),
        _ => None,
    }
}

/// The format word QEMU's `-drive` gets (`libxl__qemu_disk_format_string`).
fn qemu_format(f: DiskFormat) -> &'static str {
    match f {
        DiskFormat::Raw | DiskFormat::Empty => "raw",
        DiskFormat::Qcow => "qcow",
        DiskFormat::Qcow2 => "qcow2",
        DiskFormat::Vhd => "vpc",
        DiskFormat::Qed => "qed",
    }
}

/// `-machine` for an HVM guest.
const BELOW_4G_MMIO_START: u64 = 0xF000_0000;

/// Checks what [`qemu_args`] would pass through from the disks and NICs, as libxl does when
/// it builds them (and the commas libxl would pass on to QEMU's option parser): call it
/// before any domain exists.
pub fn check(args: &HvmArgs) -> Result<(), HvmArgsError> {
    for (i, d) in args.disks.iter().enumerate() {
        if d.vdev.starts_with("sd") {
            return Err(HvmArgsError::Scsi(i, d.vdev.clone()));
        }
        let Some(index) = disk_index(&d.vdev) else {
            return Err(HvmArgsError::Vdev(i, d.vdev.clone()));
        };
        if d.target.contains(',') {
            return Err(HvmArgsError::Comma(i, d.target.clone()));
        }
        // libxl's order: an AHCI disk (the first six, with hdtype = "ahci"), else an IDE one.
        let on_ahci = args.dm.ahci && index < 6;
        if !d.cdrom && !d.writable && on_ahci {
            return Err(HvmArgsError::ReadOnlyAhci(i));
        }
        if !d.cdrom && !d.writable && !on_ahci && index < 4 {
            return Err(HvmArgsError::ReadOnlyIde(i));
        }
        // libxl lets a fifth (`disk > 4`), for which QEMU has no IDE bus.
        if d.cdrom && index >= 4 {
            return Err(HvmArgsError::CdromIndex(i, d.vdev.clone()));
        }
    }
    for n in &args.nics {
        if !NIC_MODELS.contains(&n.model.as_str()) {
            return Err(HvmArgsError::NicModel(n.devid, n.model.clone()));
        }
        for v in [&n.bridge, &n.ifname, &n.mac] {
            if v.is_empty() || v.contains(',') || v.chars().any(|c| c.is_control()) {
                return Err(HvmArgsError::NicValue(n.devid, v.clone()));
            }
        }
        if n.ifname.len() > crate::config::IFNAME_MAX {
            return Err(HvmArgsError::TapName(n.devid, n.ifname.clone()));
        }
    }
    if args.mmio_hole_memkb != 0 {
        let below = (1u64 << 32).saturating_sub(args.mmio_hole_memkb.saturating_mul(1024));
        if below > BELOW_4G_MMIO_START {
            return Err(HvmArgsError::MmioHole(args.mmio_hole_memkb));
        }
    }
    Ok(())
}

/// QEMU's arguments (after the program) for HVM guest `domid` named `name`, exactly as
/// libxl 4.17 passes them (`libxl__build_device_model_args_new`, not a stub domain, no
/// `dm_restrict`), with `restriction`'s `-runas` last as libxl puts it.
pub fn qemu_args(domid: u32, name: &str, h: &HvmArgs, restriction: &Restriction) -> Vec<String> {
    build_args(domid, name, h, restriction, Home::Dom0)
}

/// QEMU's arguments for HVM guest `domid` when QEMU runs in a Linux stub domain: what libxl
/// 4.17 writes to the guest's `/vm/<uuid>/image/dm-argv` (`libxl__build_device_model_args_new`
/// with `is_stubdom`). Against [`qemu_args`]: no QMP sockets (the stub's init adds its own,
/// reached through vchan), no `-vnc`, each serial port on the stub's console
/// `/dev/hvc<3+i>` ([`super::stubdom::SERIAL_CONSOLE`]), and each disk the stub's own
/// `/dev/xvd<letter>` as `format=host_device`.
pub fn stub_qemu_args(domid: u32, name: &str, h: &HvmArgs) -> Vec<String> {
    build_args(domid, name, h, &Restriction::default(), Home::Stub)
}

/// Where QEMU runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Home {
    /// In dom0, opening the images itself.
    Dom0,
    /// In a stub domain, the images its block devices.
    Stub,
}

/// [`qemu_args`] and [`stub_qemu_args`].
fn build_args(
    domid: u32,
    name: &str,
    h: &HvmArgs,
    restriction: &Restriction,
    home: Home,
) -> Vec<String> {
    let stub = home == Home::Stub;
    let mut a: Vec<String> = vec![
        "-xen-domid".into(),
        domid.to_string(),
        "-no-shutdown".into(),
    ];
    let sockets: &[(&str, &str)] = if stub {
        &[]
    } else {
        &[
            ("libxl-cmd", "qmp-libxl"),
            ("libxenstat-cmd", "qmp-libxenstat"),
        ]
    };
    for (id, sock) in sockets {
        a.extend([
            "-chardev".into(),
            format!("socket,id={id},path=/var/run/xen/{sock}-{domid},server=on,wait=off"),
            "-mon".into(),
            format!("chardev={id},mode=control"),
        ]);
    }
    a.extend(["-nodefaults", "-no-user-config", "-name", name].map(String::from));
    if !stub {
        a.push("-vnc".into());
        a.push(match &h.dm.vnc {
            None => "none".into(),
            Some(v) => {
                let mut arg = if v.listen.contains(':') {
                    v.listen.clone()
                } else {
                    format!("{}:{}", v.listen, v.display)
                };
                if v.find_unused {
                    arg.push_str(",to=99");
                }
                arg
            }
        });
    }
    a.extend(["-display", "none"].map(String::from));
    let mut flag = |f: &str, v: Option<String>| {
        if let Some(v) = v {
            a.extend([f.to_owned(), v]);
        }
    };
    flag(
        "-kernel",
        h.kernel.as_ref().map(|k| k.display().to_string()),
    );
    flag(
        "-initrd",
        h.ramdisk.as_ref().map(|r| r.display().to_string()),
    );
    flag("-append", h.cmdline.clone());
    for (i, s) in h.dm.serial.iter().enumerate() {
        a.push("-serial".into());
        a.push(if stub {
            format!("/dev/hvc{}", super::stubdom::SERIAL_CONSOLE as usize + i)
        } else {
            s.clone()
        });
    }
    if h.dm.nographic && h.dm.vnc.is_none() {
        a.push("-nographic".into());
    }
    let vgamem_mb = h.dm.video_memkb.div_ceil(1024);
    match h.dm.vga {
        Vga::Std => a.extend(["-device".into(), format!("VGA,vgamem_mb={vgamem_mb}")]),
        Vga::Cirrus => a.extend([
            "-device".into(),
            format!("cirrus-vga,vgamem_mb={vgamem_mb}"),
        ]),
        Vga::None => {}
    }
    a.extend(["-boot".into(), format!("order={}", h.dm.boot)]);
    if !h.acpi {
        a.push("-no-acpi".into());
    }
    if h.max_vcpus > 1 {
        a.extend([
            "-smp".into(),
            format!("{},maxcpus={}", h.vcpus, h.max_vcpus),
        ]);
    }
    for n in &h.nics {
        a.extend([
            "-device".into(),
            format!(
                "{},id=nic{},netdev=net{},mac={}",
                n.model, n.devid, n.devid, n.mac
            ),
            "-netdev".into(),
            format!(
                "type=tap,id=net{},ifname={},br={},script=no,downscript=no",
                n.devid, n.ifname, n.bridge
            ),
        ]);
    }
    if h.nics.is_empty() {
        a.extend(["-net", "none"].map(String::from));
    }
    if let Some(dir) = &restriction.chroot {
        a.extend([
            "-xen-domid-restrict".into(),
            "-chroot".into(),
            dir.display().to_string(),
        ]);
    }
    let mut machine = "xenfv,suppress-vmdesc=on".to_owned();
    if h.mmio_hole_memkb != 0 {
        let below = (1u64 << 32).saturating_sub(h.mmio_hole_memkb.saturating_mul(1024));
        machine.push_str(&format!(",max-ram-below-4g={below}"));
    }
    a.extend(["-machine".into(), machine, "-m".into()]);
    a.push(
        h.max_memkb
            .saturating_sub(h.dm.video_memkb)
            .div_ceil(1024)
            .to_string(),
    );
    if h.dm.ahci {
        a.extend(["-device".into(), "ahci,id=ahci0".into()]);
    }
    for d in &h.disks {
        let (Some(index), Some(number)) =
            (disk_index(&d.vdev), crate::devices::disk::devid(&d.vdev))
        else {
            continue;
        };
        // In a stub domain each disk is the stub's block device of the same number
        // (libxl: `/dev/xvd<'a' + disk>`, `host_device`; only the first 26).
        let stub_dev;
        let (format, target) = match home {
            Home::Dom0 => (qemu_format(d.format), d.target.as_str()),
            Home::Stub => {
                let Some(letter) = u8::try_from(index).ok().filter(|i| *i < 26) else {
                    continue;
                };
                stub_dev = format!("/dev/xvd{}", char::from(b'a' + letter));
                ("host_device", stub_dev.as_str())
            }
        };
        let d = &EmulatedDisk {
            target: target.to_owned(),
            ..d.clone()
        };
        if d.cdrom {
            if index > 4 {
                continue;
            }
            let id = format!("ide-{number}");
            let mut drive = format!("if=none,readonly=on,id={id}");
            if !d.target.is_empty() && d.format != DiskFormat::Empty {
                drive.push_str(&format!(",file={},format={format}", d.target));
            }
            a.extend([
                "-drive".into(),
                drive,
                "-device".into(),
                format!(
                    "ide-cd,id={id},drive={id},bus=ide.{},unit={}",
                    index / 2,
                    index % 2
                ),
            ]);
        } else if h.dm.ahci && index < 6 && d.format != DiskFormat::Empty {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},if=none,id=ahcidisk-{index},format={format},cache=writeback",
                    d.target
                ),
                "-device".into(),
                format!("ide-hd,bus=ahci0.{index},unit=0,drive=ahcidisk-{index}"),
            ]);
        } else if index < 4 && d.format != DiskFormat::Empty {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},if=ide,index={index},media=disk,format={format},cache=writeback",
                    d.target
                ),
            ]);
        }
    }
    if let Some(user) = &restriction.runas {
        a.extend(["-runas".into(), user.clone()]);
    }
    a
}

/// The environment libxl adds for an HVM guest's QEMU, beyond `XEN_QEMU_CONSOLE_LIMIT`.
pub fn extra_env(domid: u32) -> Vec<(String, String)> {
    vec![("XEN_DOMAIN_ID".into(), domid.to_string())]
}

/// The request [`super::launch`] starts an HVM guest's QEMU from: `program` (libxl's default
/// when `None`), the guest's `domid` and `name`, and `args`. The caller sets `backends` (the
/// qdisk backends this QEMU serves) and `privileges` as for a PV guest.
pub fn request(program: Option<&Path>, domid: u32, name: &str, args: HvmArgs) -> DmRequest {
    let mut req = DmRequest::new(program, domid, name, args.max_memkb / 1024);
    req.images = args
        .disks
        .iter()
        .filter(|d| !d.target.is_empty())
        .map(|d| (PathBuf::from(&d.target), !d.writable))
        .collect();
    req.hvm = Some(Box::new(args));
    req
}

/// Refuses `dm_restrict` for an HVM guest: restricted, QEMU loses xenstore and cannot say
/// `running` there, so libxl hands it a pre-opened QMP socket and waits over QMP instead
/// (`-S`, `query-status`), which pvbuild does not do yet. (`device_model_user` alone is
/// served: `-runas`.)
pub fn check_privileges(p: &super::restrict::DmPrivileges) -> Result<(), String> {
    if p.restrict {
        return Err(
            "dm_restrict is not implemented for HVM guests' device models (it is for PV guests' disks)"
                .into(),
        );
    }
    Ok(())
}

/// Why talking to QEMU's QMP socket failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Connecting, reading or writing failed.
    #[error("QMP {0}: {1}")]
    Io(String, std::io::Error),
    /// QEMU answered with an error or something that is not QMP.
    #[error("QMP {0}: {1}")]
    Protocol(String, String),
}

/// A QMP connection (`/var/run/xen/qmp-libxl-<domid>`), past the capabilities handshake.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: String,
}

/// Longest QMP line read (a `query-chardev` answer is a few hundred bytes).
const QMP_LINE_MAX: u64 = 1 << 20;

impl Qmp {
    /// Connects to `path` and negotiates (`qmp_capabilities`), each read bounded by `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let name = path.display().to_string();
        let io = |e| QmpError::Io(name.clone(), e);
        let s = UnixStream::connect(path).map_err(io)?;
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        let writer = s.try_clone().map_err(io)?;
        let mut q = Self {
            reader: BufReader::new(s),
            writer,
            path: name.clone(),
        };
        let greeting = q.read()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(name, format!("no greeting: {greeting}")));
        }
        q.execute("qmp_capabilities")?;
        Ok(q)
    }

    fn read(&mut self) -> Result<serde_json::Value, QmpError> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(QMP_LINE_MAX)
            .read_line(&mut line)
            .map_err(|e| QmpError::Io(self.path.clone(), e))?;
        if n == 0 {
            return Err(QmpError::Protocol(self.path.clone(), "closed".into()));
        }
        serde_json::from_str(&line)
            .map_err(|e| QmpError::Protocol(self.path.clone(), format!("not JSON: {e}")))
    }

    /// Runs `command` (no arguments) and returns its `return` value (events in between
    /// are skipped).
    pub fn execute(&mut self, command: &str) -> Result<serde_json::Value, QmpError> {
        let msg = serde_json::json!({ "execute": command });
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| QmpError::Io(self.path.clone(), e))?;
        loop {
            let mut v = self.read()?;
            if v.get("event").is_some() {
                continue;
            }
            if let Some(r) = v.get_mut("return") {
                return Ok(r.take());
            }
            let why = v
                .get("error")
                .and_then(|e| e.get("desc"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no return")
                .to_owned();
            return Err(QmpError::Protocol(format!("{} {command}", self.path), why));
        }
    }
}

/// The path of `domid`'s QMP socket libxl talks to.
pub fn qmp_path(domid: u32) -> PathBuf {
    Path::new(super::restrict::RUN_DIR).join(format!("qmp-libxl-{domid}"))
}

/// `serial<N>` labels with `pty:<path>` filenames in a `query-chardev` answer.
pub fn serial_ptys(chardevs: &serde_json::Value) -> Result<Vec<(u32, String)>, String> {
    let list = chardevs
        .as_array()
        .ok_or_else(|| format!("query-chardev: not a list: {chardevs}"))?;
    let mut out = Vec::new();
    for c in list {
        let label = c
            .get("label")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("query-chardev: no label in {c}"))?;
        let Some(port) = label.strip_prefix("serial") else {
            continue;
        };
        let port: u32 = port
            .parse()
            .map_err(|_| format!("Invalid serial port number: {label}"))?;
        let file = c
            .get("filename")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("query-chardev: no filename in {c}"))?;
        if let Some(tty) = file.strip_prefix("pty:") {
            out.push((port, tty.to_owned()));
        }
    }
    Ok(out)
}

/// What libxl does once QEMU runs (`device_model_postconfig_chardev`, `_vnc`): asks it over
/// QMP for its serial ptys and writes each at `/local/domain/<domid>/serial/<n>/tty` (where
/// `xl console -t serial` looks), and where its VNC server listens
/// (`console/vnc-listen`, `console/vnc-port`).
pub fn postconfig(xs: &XsConnection, domid: u32, h: &HvmArgs) -> Result<(), String> {
    let mut q = Qmp::connect(&qmp_path(domid), QMP_TIMEOUT).map_err(|e| e.to_string())?;
    let chardevs = q.execute("query-chardev").map_err(|e| e.to_string())?;
    let dom = dom_path(domid);
    for (port, tty) in serial_ptys(&chardevs)? {
        xs.write(&format!("{dom}/serial/{port}/tty"), &tty)
            .map_err(|e| format!("writing serial {port}'s tty: {e}"))?;
    }
    if h.dm.vnc.is_some() {
        let vnc = q.execute("query-vnc").map_err(|e| e.to_string())?;
        if vnc.get("enabled").and_then(serde_json::Value::as_bool) == Some(true) {
            for (key, field) in [("vnc-listen", "host"), ("vnc-port", "service")] {
                let v = vnc
                    .get(field)
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| format!("query-vnc: no {field} in {vnc}"))?;
                xs.write(&format!("{dom}/console/{key}"), v)
                    .map_err(|e| format!("writing {key}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Asks `domid`'s QEMU to exit (QMP `quit`) and waits up to `grace` for `pid` to be gone;
/// whether it went. The caller kills it otherwise.
pub fn quit(domid: u32, pid: u32, grace: Duration) -> bool {
    let Ok(mut q) = Qmp::connect(&qmp_path(domid), grace) else {
        return false;
    };
    // QEMU may close the socket before it answers.
    let _ = q.execute("quit");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |st| {
            st.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        });
        if gone {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests;

use super::*;
use crate::config::parse;

fn dm(text: &str) -> Result<HvmDm, ConfigError> {
    HvmDm::from_xl(&parse(text.as_bytes()).unwrap())
}

fn args(dm: HvmDm) -> HvmArgs {
    HvmArgs {
        dm,
        max_memkb: 256 * 1024,
        vcpus: 1,
        max_vcpus: 1,
        acpi: true,
        mmio_hole_memkb: 0,
        kernel: None,
        ramdisk: None,
        cmdline: None,
        disks: Vec::new(),
        nics: Vec::new(),
    }
}

fn none() -> Restriction {
    Restriction {
        chroot: None,
        runas: None,
    }
}

#[test]
fn libxl_defaults() {
    let d = dm("").unwrap();
    assert_eq!(d.vga, Vga::Cirrus);
    assert_eq!(d.video_memkb(), 8 * 1024);
    assert_eq!(
        d.vnc,
        Some(Vnc {
            listen: "127.0.0.1".into(),
            display: 0,
            find_unused: true
        })
    );
    assert_eq!(d.boot, "cda");
    assert!(d.serial.is_empty());
    assert!(!d.nographic);
    let d = dm("vga = \"stdvga\"\nvnc = 0\n").unwrap();
    assert_eq!((d.vga, d.video_memkb(), d.vnc), (Vga::Std, 16 * 1024, None));
    let d = dm("vga = \"none\"\n").unwrap();
    assert_eq!((d.vga, d.video_memkb()), (Vga::None, 0));
    let d = dm("stdvga = 1\nvideoram = 32\n").unwrap();
    assert_eq!((d.vga, d.video_memkb()), (Vga::Std, 32 * 1024));
    let d = dm("serial = [ 'pty', 'file:/tmp/s.log' ]\nboot = \"dc\"\n").unwrap();
    assert_eq!(d.serial, ["pty", "file:/tmp/s.log"]);
    assert_eq!(d.boot, "dc");
}

#[test]
fn refusals_name_the_key() {
    for (text, key) in [
        ("sdl = 1\n", "sdl"),
        ("spice = 1\n", "spice"),
        ("usb = 1\n", "usb"),
        ("usbdevice = 'tablet'\n", "usbdevice"),
        ("usbversion = 2\n", "usbversion"),
        ("soundhw = 'hda'\n", "soundhw"),
        ("keymap = 'de'\n", "keymap"),
        ("vga = \"qxl\"\n", "vga"),
        ("vga = \"matrox\"\n", "vga"),
        ("vncpasswd = \"x\"\n", "vncpasswd"),
        ("xen_platform_pci = 0\n", "xen_platform_pci"),
        ("hdtype = 'scsi'\n", "hdtype"),
        ("vendor_device = 'xenserver'\n", "vendor_device"),
        ("device_model_args = [ '-foo' ]\n", "device_model_args"),
        ("serial = 'tcp:0.0.0.0:4444'\n", "serial"),
        ("serial = 'file:relative'\n", "serial"),
        ("serial = 'file:/a,b'\n", "serial"),
        ("boot = 'c,menu=on'\n", "boot"),
        ("vga = \"stdvga\"\nvideoram = 8\n", "videoram"),
        ("vnclisten = '1.2.3.4:1'\nvncdisplay = 2\n", "vnclisten"),
    ] {
        let e = dm(text).unwrap_err();
        let named = match &e {
            ConfigError::Refused { key: k, .. } | ConfigError::Value { key: k, .. } => k.clone(),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(named, key, "{text}: {e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    // What asks for nothing is accepted.
    for text in [
        "sdl = 0\n",
        "usb = 0\n",
        "usbdevice = []\n",
        "xen_platform_pci = 1\n",
        "hdtype = 'ide'\n",
        "hdtype = 'ahci'\n",
        "vncpasswd = ''\n",
        "device_model_args = []\n",
    ] {
        assert!(dm(text).is_ok(), "{text}");
    }
}

#[test]
fn vnc_argument_as_libxl_builds_it() {
    let vnc = |text: &str| {
        let a = qemu_args(3, "g", &args(dm(text).unwrap()), &none());
        let i = a.iter().position(|x| x == "-vnc").unwrap();
        a.get(i + 1).unwrap().clone()
    };
    assert_eq!(vnc(""), "127.0.0.1:0,to=99");
    assert_eq!(vnc("vnc = 0\n"), "none");
    assert_eq!(
        vnc("vnclisten = '0.0.0.0'\nvncdisplay = 3\nvncunused = 0\n"),
        "0.0.0.0:3"
    );
    assert_eq!(vnc("vnclisten = '10.0.0.1:7'\n"), "10.0.0.1:7,to=99");
}

#[test]
fn nographic_only_without_vnc() {
    let has = |text: &str| {
        qemu_args(3, "g", &args(dm(text).unwrap()), &none())
            .iter()
            .any(|a| a == "-nographic")
    };
    assert!(has("nographic = 1\nvnc = 0\n"));
    assert!(!has("nographic = 1\n"));
    assert!(!has("vnc = 0\n"));
}

#[test]
fn memory_smp_acpi_and_machine() {
    let mut h = args(dm("vga = \"stdvga\"\nvnc = 0\n").unwrap());
    h.max_vcpus = 4;
    h.vcpus = 2;
    h.acpi = false;
    h.mmio_hole_memkb = 1024 * 1024;
    let a = qemu_args(7, "g", &h, &none());
    let after = |f: &str| {
        let i = a.iter().position(|x| x == f).unwrap();
        a.get(i + 1).unwrap().as_str()
    };
    // 256 MiB less stdvga's 16.
    assert_eq!(after("-m"), "240");
    assert_eq!(after("-smp"), "2,maxcpus=4");
    assert!(a.iter().any(|x| x == "-no-acpi"));
    assert_eq!(
        after("-machine"),
        "xenfv,suppress-vmdesc=on,max-ram-below-4g=3221225472"
    );
    assert_eq!(after("-net"), "none");
    assert!(!a.iter().any(|x| x == "-xen-attach"));
}

/// A raw emulated disk.
fn disk(vdev: &str, target: &str, writable: bool, cdrom: bool) -> EmulatedDisk {
    EmulatedDisk {
        vdev: vdev.into(),
        target: target.into(),
        format: DiskFormat::Raw,
        writable,
        cdrom,
    }
}

#[test]
fn checks_disks_and_nics() {
    let with = |disks: Vec<EmulatedDisk>| {
        let mut h = args(dm("").unwrap());
        h.disks = disks;
        check(&h)
    };
    assert_eq!(with(vec![disk("hda", "/i", true, false)]), Ok(()));
    assert_eq!(
        with(vec![disk("hda", "/i", false, false)]),
        Err(HvmArgsError::ReadOnlyIde(0))
    );
    assert_eq!(with(vec![disk("hdc", "/i", false, true)]), Ok(()));
    assert!(matches!(
        with(vec![disk("xvde", "/i", false, true)]),
        Err(HvmArgsError::CdromIndex(0, _))
    ));
    // A fifth hard disk is the guest's through its PV driver only, as libxl leaves it.
    assert_eq!(with(vec![disk("xvde", "/i", false, false)]), Ok(()));
    assert!(matches!(
        with(vec![disk("sda", "/i", true, false)]),
        Err(HvmArgsError::Scsi(0, _))
    ));
    assert!(matches!(
        with(vec![disk("hda", "/i,format=qcow2", true, false)]),
        Err(HvmArgsError::Comma(0, _))
    ));
    assert!(matches!(
        with(vec![disk("bogus", "/i", true, false)]),
        Err(HvmArgsError::Vdev(0, _))
    ));
    let mut h = args(dm("").unwrap());
    h.nics = vec![EmulatedNic {
        devid: 0,
        mac: "00:16:3e:00:00:01".into(),
        model: "ne2k_pci".into(),
        bridge: "xenbr0".into(),
        ifname: "vif1.0-emu".into(),
    }];
    assert!(matches!(check(&h), Err(HvmArgsError::NicModel(0, _))));
    if let Some(n) = h.nics.first_mut() {
        n.model = "e1000".into();
        n.bridge = "br0,script=/tmp/x".into();
    }
    assert!(matches!(check(&h), Err(HvmArgsError::NicValue(0, _))));
}

#[test]
fn ahci_disks_as_libxl_gives_them() {
    // libxl_dm.c (4.17): `-device ahci,id=ahci0` after `-m`; the first six hard disks on it
    // (`file=...,if=none,id=ahcidisk-N,format=...,cache=writeback` and `ide-hd,bus=ahci0.N,
    // unit=0,drive=ahcidisk-N`), read-only ones refused; CD-ROMs stay on the IDE buses; the
    // seventh on is the guest's through its PV driver only.
    let mut h = args(dm("hdtype = \"ahci\"\n").unwrap());
    h.disks = vec![
        disk("hda", "/a.img", true, false),
        disk("hdc", "/cd.iso", false, true),
        disk("xvdf", "/f.img", true, false),
        disk("xvdg", "/g.img", false, false),
    ];
    assert_eq!(check(&h), Ok(()));
    let argv = qemu_args(1, "g", &h, &none());
    let m = argv.iter().position(|a| a == "-m").unwrap();
    assert_eq!(argv[m + 2..m + 4], ["-device", "ahci,id=ahci0"]);
    let want = [
        "-drive",
        "file=/a.img,if=none,id=ahcidisk-0,format=raw,cache=writeback",
        "-device",
        "ide-hd,bus=ahci0.0,unit=0,drive=ahcidisk-0",
        "-drive",
        "if=none,readonly=on,id=ide-5632,file=/cd.iso,format=raw",
        "-device",
        "ide-cd,id=ide-5632,drive=ide-5632,bus=ide.1,unit=0",
        "-drive",
        "file=/f.img,if=none,id=ahcidisk-5,format=raw,cache=writeback",
        "-device",
        "ide-hd,bus=ahci0.5,unit=0,drive=ahcidisk-5",
    ];
    assert_eq!(argv[m + 4..m + 4 + want.len()], want);
    assert!(!argv.iter().any(|a| a.contains("/g.img")));
    h.disks = vec![disk("xvdb", "/b.img", false, false)];
    assert_eq!(check(&h), Err(HvmArgsError::ReadOnlyAhci(0)));
    // Without it, the IDE buses as before.
    let mut ide = args(dm("").unwrap());
    ide.disks = vec![disk("hda", "/a.img", true, false)];
    let argv = qemu_args(1, "g", &ide, &none());
    assert!(!argv.iter().any(|a| a.contains("ahci")));
    assert!(argv
        .iter()
        .any(|a| a == "file=/a.img,if=ide,index=0,media=disk,format=raw,cache=writeback"));
}

#[test]
fn ahci_argv_equals_xls() {
    // xl's QEMU for scenario xl-hvm-diskboot's config: a guest without kernel booting from its
    // disk on the AHCI controller.
    let text = include_str!("../../../../tests/xen/reference/xl-hvm-dm-ahci-diskboot.txt");
    let (cfg, argv) = text.split_once("# --- argv ---\n").unwrap();
    let mut want: Vec<String> = argv.lines().map(String::from).collect();
    assert_eq!(want.remove(0), crate::devmodel::DEFAULT_QEMU);
    let (cfg, _) = crate::config::DomainConfig::from_xl(&parse(cfg.as_bytes()).unwrap()).unwrap();
    assert!(cfg.kernel.is_none());
    let h = cfg.hvm.as_ref().unwrap();
    let a = crate::build::domain::hvm_dm_args(&cfg, h, &[], 2);
    check(&a).unwrap();
    assert_eq!(qemu_args(2, &cfg.name, &a, &none()), want);
}

#[test]
fn disk_indexes_as_libxl_numbers_them() {
    for (vdev, index) in [
        ("hda", 0),
        ("hdb", 1),
        ("hdc", 2),
        ("hdd", 3),
        ("xvda", 0),
        ("xvdb", 1),
        ("xvde", 4),
        ("d3p0", 3),
    ] {
        assert_eq!(disk_index(vdev), Some(index), "{vdev}");
    }
}

#[test]
fn query_chardev_ptys() {
    let v: serde_json::Value = serde_json::from_str(
        r#"[{"frontend-open": true, "filename": "pty:/dev/pts/3", "label": "serial0"},
            {"frontend-open": false, "filename": "file", "label": "serial1"},
            {"frontend-open": true, "filename": "unix:/var/run/xen/qmp-libxl-1,server=on", "label": "libxl-cmd"}]"#,
    )
    .unwrap();
    assert_eq!(serial_ptys(&v).unwrap(), [(0, "/dev/pts/3".to_owned())]);
    let bad: serde_json::Value =
        serde_json::from_str(r#"[{"filename": "pty:/dev/pts/3", "label": "serialx"}]"#).unwrap();
    assert!(serial_ptys(&bad).is_err());
    assert!(serial_ptys(&serde_json::json!({})).is_err());
}

#[test]
fn dm_restrict_is_refused_for_hvm() {
    let mut p = super::super::restrict::DmPrivileges::default();
    assert!(check_privileges(&p).is_ok());
    p.user = Some("qemu".into());
    assert!(check_privileges(&p).is_ok());
    p.restrict = true;
    assert!(check_privileges(&p).is_err());
}

/// One reference: an xl config and what libxl logged starting its QEMU
/// (tests/xen/reference/xl-hvm-dm-*.txt).
struct Reference {
    cfg: XlConfig,
    domid: u32,
    args: Vec<String>,
    env: Vec<String>,
}

fn reference(text: &str) -> Reference {
    let (cfg, log) = text.split_once("# --- libxl ---\n").unwrap();
    let mut domid = None;
    let (mut args, mut env) = (Vec::new(), Vec::new());
    let mut into_env = false;
    for line in log.lines() {
        let (_, rest) = line.split_once(": Domain ").unwrap();
        let (d, msg) = rest.split_once(':').unwrap();
        domid = Some(d.parse::<u32>().unwrap());
        if msg.starts_with("Spawning device-model") {
            into_env = msg.ends_with("additional environment:");
            continue;
        }
        let item = msg.strip_prefix("  ").unwrap().to_owned();
        if into_env {
            env.push(item);
        } else {
            args.push(item);
        }
    }
    // The first is the program.
    assert_eq!(args.remove(0), crate::devmodel::DEFAULT_QEMU);
    Reference {
        cfg: parse(cfg.as_bytes()).unwrap(),
        domid: domid.unwrap(),
        args,
        env,
    }
}

/// The HVM arguments of `r`'s config as the create maps them (xl's defaults). A vif without
/// `mac=` gets a random one per create: taken from xl's argv.
fn hvm_args_of(r: &Reference) -> HvmArgs {
    let c = &r.cfg;
    let atom = |k: &str| match c.get(k).map(|s| &s.value) {
        Some(Value::Atom(a)) => Some(a.clone()),
        _ => None,
    };
    let num = |k: &str| atom(k).and_then(|a| parse_long(&a)).map(|v| v as u64);
    let list = |k: &str| match c.get(k).map(|s| &s.value) {
        Some(Value::List(l)) => l.clone(),
        _ => Vec::new(),
    };
    let memory = num("memory").unwrap();
    let vcpus = num("vcpus").unwrap_or(1) as u32;
    let nics = list("vif")
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let kv = |k: &str| {
                spec.split(',')
                    .find_map(|t| t.trim().strip_prefix(k)?.strip_prefix('='))
                    .map(str::to_owned)
            };
            let devid = i as u32;
            let mac = kv("mac").unwrap_or_else(|| {
                let id = format!("id=nic{devid},");
                r.args
                    .iter()
                    .find(|a| a.contains(&id))
                    .and_then(|a| a.rsplit_once("mac="))
                    .map(|(_, m)| m.to_owned())
                    .unwrap()
            });
            EmulatedNic {
                devid,
                mac,
                model: kv("model").unwrap_or_else(|| "rtl8139".into()),
                bridge: kv("bridge").unwrap_or_else(|| "xenbr0".into()),
                ifname: format!("vif{}.{devid}-emu", r.domid),
            }
        })
        .collect();
    HvmArgs {
        dm: HvmDm::from_xl(c).unwrap(),
        max_memkb: num("maxmem").unwrap_or(memory) * 1024,
        vcpus,
        max_vcpus: num("maxvcpus").map_or(vcpus, |v| v as u32),
        acpi: num("acpi") != Some(0),
        mmio_hole_memkb: 0,
        kernel: atom("kernel").map(PathBuf::from),
        ramdisk: atom("ramdisk").map(PathBuf::from),
        cmdline: atom("cmdline").or_else(|| atom("extra")),
        disks: list("disk")
            .iter()
            .map(|d| EmulatedDisk::from_spec(&crate::config::parse_disk_spec(d).unwrap()))
            .collect(),
        nics,
    }
}

#[test]
fn argv_equals_xls() {
    // What libxl 4.17 logged for `xl -vvv create -p` on the harness's Xen (the name in each
    // file says what the config exercises).
    for (file, text) in [
        (
            "xl-hvm-dm-stdvga.txt",
            include_str!("../../../../tests/xen/reference/xl-hvm-dm-stdvga.txt"),
        ),
        (
            "xl-hvm-dm-none.txt",
            include_str!("../../../../tests/xen/reference/xl-hvm-dm-none.txt"),
        ),
        (
            "xl-hvm-dm-vnc-default.txt",
            include_str!("../../../../tests/xen/reference/xl-hvm-dm-vnc-default.txt"),
        ),
        (
            "xl-hvm-dm-cirrus.txt",
            include_str!("../../../../tests/xen/reference/xl-hvm-dm-cirrus.txt"),
        ),
        (
            "xl-hvm-dm-disks-nics.txt",
            include_str!("../../../../tests/xen/reference/xl-hvm-dm-disks-nics.txt"),
        ),
        (
            "xl-hvm-dm-firmware-disk.txt",
            include_str!("../../../../tests/xen/reference/xl-hvm-dm-firmware-disk.txt"),
        ),
    ] {
        let r = reference(text);
        let name = match &r.cfg.get("name").unwrap().value {
            Value::Atom(a) => a.clone(),
            Value::List(_) => panic!("{file}: name"),
        };
        let h = hvm_args_of(&r);
        check(&h).unwrap();
        assert_eq!(
            qemu_args(r.domid, &name, &h, &none()),
            r.args,
            "{file}: argv"
        );
        let mut env = vec![format!("XEN_QEMU_CONSOLE_LIMIT=1048576")];
        env.extend(
            extra_env(r.domid)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        );
        assert_eq!(env, r.env, "{file}: environment");
    }
}

/// The create's own mapping (the config parsed as `pvbuild create` parses it, the interfaces
/// planned and made `vif_ioemu` as libxl makes an HVM guest's, then
/// `build::domain::hvm_dm_args`) gives QEMU exactly xl's argv for the config with IDE
/// disks, a CD-ROM and two emulated NICs. (The vif without `mac=` gets a random address per
/// create: xl's is taken.)
#[test]
fn the_creates_disks_and_nics_give_xls_argv() {
    let r = reference(include_str!(
        "../../../../tests/xen/reference/xl-hvm-dm-disks-nics.txt"
    ));
    let (cfg, _) = crate::config::DomainConfig::from_xl(&r.cfg).unwrap();
    let h = cfg.hvm.as_ref().unwrap();
    let mut vifs = crate::devices::vif::plan_vifs(&cfg.vifs, || [0x12, 0x34, 0x56]).unwrap();
    crate::devices::vif::emulate(&mut vifs, &cfg.vifs).unwrap();
    assert_eq!(
        vifs.iter().map(|v| v.nictype()).collect::<Vec<_>>(),
        ["vif_ioemu", "vif_ioemu"]
    );
    for v in &mut vifs {
        let id = format!("id=nic{},", v.devid);
        if let Some(m) = r
            .args
            .iter()
            .find(|a| a.contains(&id))
            .and_then(|a| a.rsplit_once("mac="))
        {
            v.mac = m.1.to_owned();
        }
    }
    let a = crate::build::domain::hvm_dm_args(&cfg, h, &vifs, r.domid);
    check(&a).unwrap();
    assert_eq!(qemu_args(r.domid, &cfg.name, &a, &none()), r.args);
    // `type=vif`: PV only, no emulated NIC (`-net none` when none is left).
    let pv_only: Vec<_> = cfg
        .vifs
        .iter()
        .map(|s| crate::config::VifSpec {
            ioemu: Some(false),
            ..s.clone()
        })
        .collect();
    let mut vifs = crate::devices::vif::plan_vifs(&pv_only, || [1, 2, 3]).unwrap();
    crate::devices::vif::emulate(&mut vifs, &pv_only).unwrap();
    assert!(vifs
        .iter()
        .all(|v| v.model.is_none() && v.nictype() == "vif"));
    let a = crate::build::domain::hvm_dm_args(&cfg, h, &vifs, r.domid);
    assert!(a.nics.is_empty());
    let argv = qemu_args(r.domid, &cfg.name, &a, &none());
    assert!(argv.windows(2).any(|w| w == ["-net", "none"]));
}

#[test]
fn a_tap_name_linux_cannot_take_is_refused() {
    let mut a = args(dm("vga = \"none\"\nvnc = 0\n").unwrap());
    a.nics.push(EmulatedNic {
        devid: 0,
        mac: "00:16:3e:00:00:01".into(),
        model: "e1000".into(),
        bridge: "xenbr0".into(),
        ifname: "longvifname1-emu".into(),
    });
    assert_eq!(
        check(&a),
        Err(HvmArgsError::TapName(0, "longvifname1-emu".into()))
    );
    a.nics[0].ifname = "vif32767.9-emu".into();
    check(&a).unwrap();
}

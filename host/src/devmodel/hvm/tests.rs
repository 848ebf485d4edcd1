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
        ("hdtype = 'ahci'\n", "hdtype"),
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

#[test]
fn checks_disks_and_nics() {
    let disk = |vdev: &str, target: &str, writable: bool, cdrom: bool| EmulatedDisk {
        vdev: vdev.into(),
        target: target.into(),
        format: DiskFormat::Raw,
        writable,
        cdrom,
    };
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

//! The stub path's entries and arguments against xl's: the oracle is the xenstore tree of
//! xl's own stub-domain guest (tests/xen/reference/xl-stubdom-xenstore.txt: `xenstore-ls -f`
//! in the opt-in xl-stubdom scenario; guest 3 `xlstub`, stub 4 `xlstub-dm`).

use std::collections::BTreeMap;

use super::*;
use crate::config::{parse, DomainConfig};
use crate::xenstore::{Access, Op, Perm};

const XL_TREE: &str = include_str!("../../../../tests/xen/reference/xl-stubdom-xenstore.txt");

/// `path = "value"` lines of xl's tree.
fn xl_tree() -> BTreeMap<String, String> {
    XL_TREE
        .lines()
        .filter_map(|l| {
            let (p, v) = l.split_once(" = ")?;
            Some((p.to_owned(), v.trim_matches('"').to_owned()))
        })
        .collect()
}

/// What `ops` write: path to value.
fn written(ops: &[Op]) -> BTreeMap<String, String> {
    ops.iter()
        .filter_map(|o| match o {
            Op::Write(p, v) | Op::WritePerms(p, v, _) => Some((p.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

fn xl_cfg(extra: &str) -> String {
    format!(
        "name = \"xlstub\"\ntype = \"hvm\"\nmemory = 128\nvcpus = 1\nvga = \"none\"\nvnc = 0\n\
         serial = \"file:/tmp/xl-stubdom/xlstub-serial.log\"\nboot = \"c\"\n\
         disk = [ 'format=raw,vdev=hda,access=rw,target=/tmp/xl-stubdom/disk.img' ]\n{extra}"
    )
}

const STUB_KEYS: &str = "device_model_stubdomain_override = 1\n\
     device_model_version = \"qemu-xen\"\n\
     stubdomain_kernel = \"/tmp/xl-stubdom/img/stubdom-linux-kernel\"\n\
     stubdomain_ramdisk = \"/tmp/xl-stubdom/img/stubdom-linux-initrd\"\n\
     stubdomain_cmdline = \"console=hvc0 pvbuild.privcmd=unrestricted\"\n\
     stubdomain_memory = 256\n";

fn config(text: &str) -> Result<DomainConfig, crate::config::ConfigError> {
    DomainConfig::from_xl(&parse(text.as_bytes()).unwrap()).map(|(c, _)| c)
}

#[test]
fn dm_argv_equals_xls() {
    let cfg = config(&xl_cfg(STUB_KEYS)).unwrap();
    let h = cfg.hvm.as_ref().unwrap();
    let args = crate::devmodel::hvm::stub_qemu_args(
        3,
        &cfg.name,
        &crate::build::domain::hvm_dm_args(&cfg, h, &[], 3),
    );
    let tree = xl_tree();
    let xl: Vec<&String> = tree
        .iter()
        .filter(|(p, _)| p.contains("/image/dm-argv/"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(xl.len(), 21);
    assert_eq!(args.iter().collect::<Vec<_>>(), xl);
    // Written one per node, from 001, under the guest's /vm entry, readable by the stub.
    let ops = entries::argv_entries("/vm/d199ab2a-2a05-45d5-9df6-e53ab6a9a2a2", 4, &args);
    assert_eq!(
        ops[0],
        Op::Mknod(
            "/vm/d199ab2a-2a05-45d5-9df6-e53ab6a9a2a2/image/dm-argv".into(),
            vec![Perm::new(0, Access::None), Perm::new(4, Access::Read)]
        )
    );
    for (p, v) in written(&ops) {
        assert_eq!(tree.get(&p), Some(&v), "{p}");
    }
}

#[test]
fn consoles_and_links_as_xl_wrote_them() {
    let role = StubRole {
        guest_domid: 3,
        guest_name: "xlstub".into(),
        serials: vec!["file:/tmp/xl-stubdom/xlstub-serial.log".into()],
    };
    let mut ops = entries::console_entries(4, &role);
    ops.extend(entries::link_entries(3, 4));
    let ours = written(&ops);
    let tree = xl_tree();
    // What the frontend, QEMU or the hotplug machinery write later is not the toolstack's.
    let later = |p: &str| {
        ["/state", "/port", "/ring-ref", "/hotplug-status"]
            .iter()
            .any(|k| p.ends_with(k))
    };
    for (p, v) in &ours {
        if later(p) {
            continue;
        }
        assert_eq!(tree.get(p), Some(v), "{p}");
    }
    let console_nodes = tree.iter().filter(|(p, v)| {
        let under = [
            "/local/domain/4/device/console/",
            "/local/domain/0/backend/console/4/",
            "/libxl/4/device/console/",
        ]
        .iter()
        .any(|d| p.starts_with(d))
            && !p.contains("/console/4/0/")
            && !p.contains("/device/console/0/");
        under && !v.is_empty() && !later(p)
    });
    let mut n = 0;
    for (p, v) in console_nodes {
        assert_eq!(ours.get(p), Some(v), "xl wrote {p}");
        n += 1;
    }
    assert!(n >= 30, "{n} console nodes compared");
    assert_eq!(
        tree.get("/local/domain/4/console/output"),
        Some(&format!("file:{}", role.log().display()))
    );
}

#[test]
fn the_keys_as_libxl_reads_them() {
    let cfg = config(&xl_cfg(STUB_KEYS)).unwrap();
    let spec = cfg.hvm.as_ref().unwrap().stubdom.clone().unwrap();
    assert_eq!(spec.memory_mib, 256);
    assert_eq!(
        spec.cmdline.as_deref(),
        Some("console=hvc0 pvbuild.privcmd=unrestricted")
    );
    // Defaults: libxl's images and 128 MiB.
    let cfg = config(&xl_cfg(
        "device_model_stubdomain_override = 1\ndevice_model_version = \"qemu-xen\"\n",
    ))
    .unwrap();
    let spec = cfg.hvm.as_ref().unwrap().stubdom.clone().unwrap();
    assert_eq!(spec.kernel, std::path::Path::new(DEFAULT_KERNEL));
    assert_eq!(spec.ramdisk, std::path::Path::new(DEFAULT_RAMDISK));
    assert_eq!(spec.memory_mib, DEFAULT_MEMORY_MIB);
    // The stub's own config: a PV domain of one vcpu named <guest>-dm with the guest's disks.
    let h = cfg.hvm.as_ref().unwrap();
    let s = stub_config(&cfg, h, &spec);
    assert_eq!(s.name, "xlstub-dm");
    assert_eq!((s.vcpus, s.max_vcpus, s.memory_mib), (1, 1, 128));
    assert!(s.hvm.is_none() && !s.pvh);
    assert_eq!(s.disks, cfg.disks);
    // 0 asks for nothing, as libxl; the stubdomain_* keys alone neither.
    let cfg = config(&xl_cfg(
        "device_model_stubdomain_override = 0\nstubdomain_memory = 64\n",
    ))
    .unwrap();
    assert!(cfg.hvm.unwrap().stubdom.is_none());
}

#[test]
fn what_is_refused() {
    // libxl's default for a stub is qemu-xen-traditional (MiniOS).
    let e = config(&xl_cfg("device_model_stubdomain_override = 1\n")).unwrap_err();
    assert!(e.to_string().contains("qemu-xen-traditional"), "{e}");
    // A PV guest has no device model to put in a stub.
    let e = config(
        "name = \"p\"\nkernel = \"/k\"\nmemory = 64\ndevice_model_stubdomain_override = 1\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("HVM guests only"), "{e}");
    // What the stub path does not do is refused before Xen is touched.
    for (extra, why) in [
        ("kernel = \"/boot/vmlinuz\"\n", "direct kernel boot"),
        ("device_model_user = \"nobody\"\n", "dm_restrict"),
    ] {
        let cfg = config(&xl_cfg(&format!("{STUB_KEYS}{extra}"))).unwrap();
        let e = check(&cfg).unwrap_err();
        assert!(e.contains(why), "{extra}: {e}");
    }
    let cfg = config(&xl_cfg(STUB_KEYS)).unwrap();
    assert_eq!(check(&cfg), Ok(()));
    // Network interfaces are the stub's too (stub_vifs).
    let cfg = config(&xl_cfg(&format!("{STUB_KEYS}vif = [ 'bridge=xenbr0' ]\n"))).unwrap();
    assert_eq!(check(&cfg), Ok(()));
}

#[test]
fn the_stubs_interfaces_are_the_guests_as_pv_ones() {
    use crate::xenstore::Vif;
    let mut emu = Vif::bridged_for_test(0, "00:16:3e:01:02:03");
    emu.model = Some("e1000".into());
    let mut named = Vif::bridged_for_test(1, "00:16:3e:01:02:04");
    named.model = Some("rtl8139".into());
    named.vifname = Some("web".into());
    named.bridge = "xenbr1".into();
    let s = stub_vifs(&[emu.clone(), named.clone()]);
    assert_eq!(s.len(), 2);
    // libxl__dm_vifs_from_hvm_guest_config: nictype VIF, ifname + TAP_DEVICE_SUFFIX.
    assert_eq!(s[0].model, None);
    assert_eq!(s[0].vifname, None);
    assert_eq!((s[0].devid, s[0].mac.as_str()), (0, "00:16:3e:01:02:03"));
    assert_eq!(s[1].model, None);
    assert_eq!(s[1].vifname.as_deref(), Some("web-emu"));
    assert_eq!(
        (
            s[1].devid,
            s[1].mac.as_str(),
            s[1].bridge.as_str(),
            s[1].script.as_str()
        ),
        (1, "00:16:3e:01:02:04", "xenbr1", named.script.as_str())
    );
}

#[test]
fn step_names_round_trip() {
    for s in StubStep::ALL {
        assert_eq!(StubStep::from_name(s.name()), Some(s));
        assert_eq!(
            crate::build::domain::FailAt::from_name(s.name()),
            Some(crate::build::domain::FailAt::Stub(s))
        );
    }
}

/// xl's tree of a stub-domain guest with permissions (`xenstore-ls -f -p`, the opt-in
/// xl-stubdom-diskboot scenario: guest 1 `xlstub`, stub 2 `xlstub-dm`).
const XL_TREE_PERMS: &str =
    include_str!("../../../../tests/xen/reference/xl-stubdom-diskboot-xenstore-p.txt");

/// A permission list as `xenstore-ls -p` prints it: `n0,r2`.
fn perms_text(perms: &[Perm]) -> String {
    perms
        .iter()
        .map(|p| p.to_wire())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn console_permissions_as_xl_set_them() {
    // The stub's consoles 1 and up: what the backend (dom0's QEMU) acts on, `output` first
    // (the file it writes), is dom0's and only readable by the stub (libxl's `ro_front`).
    let role = StubRole {
        guest_domid: 1,
        guest_name: "xlstub".into(),
        serials: vec![
            "file:/work/hw-stubxl/share/results/xl-stubdom-diskboot/xlstub-serial.log".into(),
        ],
    };
    // Written to the fake xenstore, which gives a node without permissions of its own its
    // parent's, as xenstored does.
    let store = crate::xenstore::fake::FakeXenstore::new();
    let xs = store.connect();
    crate::xenstore::write_ops(&xs, &entries::console_entries(2, &role)).unwrap();
    let set: BTreeMap<String, String> = store
        .dump()
        .into_keys()
        .filter_map(|p| Some((p.clone(), perms_text(&store.perms(&p)?))))
        .collect();
    let xl: BTreeMap<&str, &str> = XL_TREE_PERMS
        .lines()
        .filter_map(|l| {
            let (p, rest) = l.split_once(" = ")?;
            let perms = rest.rsplit_once('(')?.1.trim_end_matches(')');
            Some((p, perms))
        })
        .collect();
    let mut n = 0;
    for (p, perms) in &set {
        let under = p.starts_with("/local/domain/2/device/console/")
            || p.starts_with("/local/domain/0/backend/console/2/");
        if !under {
            continue;
        }
        let Some(theirs) = xl.get(p.as_str()) else {
            continue;
        };
        assert_eq!(perms, theirs, "{p}");
        n += 1;
    }
    assert!(n >= 40, "{n} console nodes' permissions compared");
    assert_eq!(
        set.get("/local/domain/2/device/console/3/output")
            .map(String::as_str),
        Some("n0,r2")
    );
}

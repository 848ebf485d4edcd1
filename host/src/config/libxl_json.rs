//! A domain's configuration as libxl stores it (`libxl_domain_config`, in the JSON that
//! libxl_types.idl's generated `libxl_domain_config_gen_json` writes), so that xl's commands
//! (`xl list -l`, `xl block-attach`, xl's restart of a rebooted guest...) find a pvbuild
//! domain's configuration where they look ([`crate::config::userdata`]), and so that pvbuild reads
//! back the devices that `block-attach` / `network-attach` (pvbuild's or xl's) added.
//!
//! As libxl's generator, a field at its default is left out. The oracle is what xl 4.17
//! stored for the same config on real Xen (the `xl-interop` scenario keeps both and
//! compares them; `host/tests/data/xl-userdata/` holds one). The differences pvbuild keeps
//! deliberately are in docs/user-guide.md: no `claim_mode` (pvbuild claims no memory), and
//! `cpus`/`cpus_soft` are not written (xl writes them as per-vcpu bitmaps).

pub mod yajl;

use serde_json::{json, Map, Value};

use crate::config::{Action, DiskFormat, DiskSpec, DomainConfig, Mac, VifSpec};
use crate::xenstore::{Uuid, Vbd, VbdBackend, Vif};

/// libxl's `LIBXL_MAC_FMT`.
fn mac_string(m: &Mac) -> String {
    m.to_string()
}

/// An `action_on_shutdown` field: left out at libxl's default (`destroy`).
fn action(obj: &mut Map<String, Value>, key: &str, a: Action) {
    let name = match a {
        Action::Destroy => return,
        Action::Restart => "restart",
        Action::Preserve => "preserve",
        Action::RenameRestart => "rename_restart",
        Action::CoredumpDestroy => "coredump_destroy",
        Action::CoredumpRestart => "coredump_restart",
        Action::SoftReset => "soft_reset",
    };
    obj.insert(key.into(), Value::String(name.into()));
}

fn defbool(b: bool) -> Value {
    Value::String(if b { "True" } else { "False" }.into())
}

/// One `disks` entry: the config's spec, with the backend pvbuild chose for it.
/// `created`: for the config's disks, which xl's config parser gives `colo_restore_enable`
/// (its block-attach parser does not).
pub fn disk_json(d: &DiskSpec, vbd: Option<&Vbd>, created: bool) -> Value {
    let mut o = Map::new();
    if let Some(b) = &d.backend {
        o.insert("backend_domname".into(), b.clone().into());
    }
    if !d.target.is_empty() {
        o.insert("pdev_path".into(), d.target.clone().into());
    }
    if let Some(v) = vbd.map(|v| v.vdev.clone()).or_else(|| d.vdev.clone()) {
        o.insert("vdev".into(), v.into());
    }
    let backend = match (vbd.map(|v| v.backend), d.backendtype.as_deref()) {
        (Some(VbdBackend::Qdisk), _) => Some("qdisk"),
        (Some(VbdBackend::Phy { .. }), _) => Some("phy"),
        (None, Some(t)) => Some(t),
        (None, None) => None,
    };
    if let Some(b) = backend {
        o.insert("backend".into(), b.into());
    }
    o.insert("format".into(), d.format.name().into());
    if let Some(s) = &d.script {
        o.insert("script".into(), s.clone().into());
    }
    if d.cdrom {
        o.insert("removable".into(), 1.into());
    }
    if !d.readonly {
        o.insert("readwrite".into(), 1.into());
    }
    if d.cdrom {
        o.insert("is_cdrom".into(), 1.into());
    }
    if let Some(dis) = d.discard {
        o.insert("discard_enable".into(), defbool(dis));
    }
    // xl's config parser sets it for every disk; pvbuild has no COLO.
    if created {
        o.insert("colo_restore_enable".into(), defbool(false));
    }
    if d.untrusted {
        o.insert("trusted".into(), defbool(false));
    }
    Value::Object(o)
}

/// One `nics` entry: the config's spec, with the device number and MAC pvbuild gave it.
pub fn nic_json(v: &VifSpec, vif: Option<&Vif>, position: usize) -> Value {
    let mut o = Map::new();
    if let Some(b) = &v.backend {
        o.insert("backend_domname".into(), b.clone().into());
    }
    let devid = vif
        .map(|x| x.devid)
        .or(v.devid)
        .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
    o.insert("devid".into(), devid.into());
    if let Some(m) = v.mtu {
        o.insert("mtu".into(), m.into());
    }
    match (vif, &v.mac) {
        (Some(x), _) => {
            o.insert("mac".into(), x.mac.clone().into());
        }
        (None, Some(m)) => {
            o.insert("mac".into(), mac_string(m).into());
        }
        (None, None) => {}
    }
    if let Some(ip) = &v.ip {
        o.insert("ip".into(), ip.clone().into());
    }
    if let Some(b) = &v.bridge {
        o.insert("bridge".into(), b.clone().into());
    }
    if let Some(n) = &v.vifname {
        o.insert("ifname".into(), n.clone().into());
    }
    if let Some(s) = &v.script {
        o.insert("script".into(), s.clone().into());
    }
    // libxl's `libxl__update_config_nic` stores the type it settled on (`vif_ioemu` for an
    // HVM guest's interfaces unless `type=vif`).
    let nictype = match (vif, v.ioemu) {
        (Some(x), _) => x.nictype(),
        (None, Some(true)) => "vif_ioemu",
        (None, _) => "vif",
    };
    o.insert("nictype".into(), nictype.into());
    if let Some(m) = &v.model {
        o.insert("model".into(), m.clone().into());
    }
    if let Some((bytes, usecs)) = v.rate {
        o.insert("rate_bytes_per_interval".into(), bytes.into());
        o.insert("rate_interval_usecs".into(), usecs.into());
    }
    if let Some(g) = &v.gatewaydev {
        o.insert("gatewaydev".into(), g.clone().into());
    }
    if v.untrusted {
        o.insert("trusted".into(), defbool(false));
    }
    Value::Object(o)
}

/// The whole `libxl_domain_config` of a domain made from `cfg` (as the config gave it: a
/// bootloader's kernel is not written, as libxl does not), with the disks and interfaces as
/// planned (`vbds`, `vifs`, in the config's order).
pub fn domain_config(cfg: &DomainConfig, uuid: Uuid, vbds: &[Vbd], vifs: &[Vif]) -> Value {
    let mut c_info = Map::new();
    // (A PVH guest's record is not yet compared with what xl stores for one.)
    let ty = match (&cfg.hvm, cfg.pvh) {
        (Some(_), _) => "hvm",
        (None, true) => "pvh",
        (None, false) => "pv",
    };
    c_info.insert("type".into(), ty.into());
    c_info.insert("name".into(), cfg.name.clone().into());
    // libxl stores the config as it was before the domain had an id: INVALID_DOMID.
    c_info.insert("domid".into(), 0xffff_ffff_u32.into());
    c_info.insert("uuid".into(), uuid.hyphenated().to_string().into());
    if let Some(p) = &cfg.placement.pool {
        c_info.insert("pool_name".into(), p.clone().into());
    }
    c_info.insert("run_hotplug_scripts".into(), defbool(true));

    let mut b_info = Map::new();
    b_info.insert("max_vcpus".into(), cfg.max_vcpus.into());
    b_info.insert(
        "avail_vcpus".into(),
        Value::Array((0..cfg.vcpus).map(Value::from).collect()),
    );
    b_info.insert("max_memkb".into(), (cfg.maxmem_mib << 10).into());
    b_info.insert("target_memkb".into(), (cfg.memory_mib << 10).into());
    b_info.insert("video_memkb".into(), 0.into());
    let mut sched = Map::new();
    if let Some(w) = cfg.placement.weight {
        sched.insert("weight".into(), w.into());
    }
    if let Some(c) = cfg.placement.cap {
        sched.insert("cap".into(), c.into());
    }
    b_info.insert("sched_params".into(), Value::Object(sched));
    if let Some(k) = &cfg.kernel {
        b_info.insert("kernel".into(), k.display().to_string().into());
    }
    if let Some(c) = &cfg.cmdline {
        b_info.insert("cmdline".into(), c.clone().into());
    }
    if let Some(r) = &cfg.ramdisk {
        b_info.insert("ramdisk".into(), r.display().to_string().into());
    }
    // Xen 4.17's xl sets b_info's bootloader fields (type.pv's are the deprecated copies
    // libxl fills in itself): what `xl create -n` showed on real Xen.
    if let Some(b) = &cfg.bootloader {
        b_info.insert("bootloader".into(), b.clone().into());
        if !cfg.bootloader_args.is_empty() {
            b_info.insert("bootloader_args".into(), cfg.bootloader_args.clone().into());
        }
    }
    if let Some(h) = &cfg.hvm {
        // (Not yet compared with what xl stores for an HVM guest.)
        b_info.insert("type.hvm".into(), json!({ "acpi": h.acpi, "apic": h.apic }));
        b_info.insert("video_memkb".into(), h.video_memkb.into());
        // The stub domain's keys, as xl parses them into b_info (not compared with xl's).
        if let Some(st) = &h.stubdom {
            b_info.insert("device_model_version".into(), "qemu_xen".into());
            b_info.insert("device_model_stubdomain".into(), defbool(true));
            b_info.insert("stubdomain_memkb".into(), (st.memory_mib << 10).into());
            b_info.insert(
                "stubdomain_kernel".into(),
                st.kernel.display().to_string().into(),
            );
            b_info.insert(
                "stubdomain_ramdisk".into(),
                st.ramdisk.display().to_string().into(),
            );
            if let Some(c) = &st.cmdline {
                b_info.insert("stubdomain_cmdline".into(), c.clone().into());
            }
        }
    } else if cfg.pvh {
        b_info.insert("type.pvh".into(), json!({}));
    } else {
        b_info.insert("type.pv".into(), json!({}));
    }
    b_info.insert("arch_arm".into(), json!({}));
    b_info.insert("arch_x86".into(), json!({ "msr_relaxed": "False" }));
    if let Some(r) = cfg.bootloader_restrict {
        b_info.insert("bootloader_restrict".into(), defbool(r));
    }
    if let Some(u) = &cfg.bootloader_user {
        b_info.insert("bootloader_user".into(), u.clone().into());
    }

    let mut top = Map::new();
    top.insert("c_info".into(), Value::Object(c_info));
    top.insert("b_info".into(), Value::Object(b_info));
    if !cfg.disks.is_empty() {
        top.insert(
            "disks".into(),
            cfg.disks
                .iter()
                .enumerate()
                .map(|(i, d)| disk_json(d, vbds.get(i), true))
                .collect(),
        );
    }
    if !cfg.vifs.is_empty() {
        top.insert(
            "nics".into(),
            cfg.vifs
                .iter()
                .enumerate()
                .map(|(i, v)| nic_json(v, vifs.get(i), i))
                .collect(),
        );
    }
    action(&mut top, "on_poweroff", cfg.on_poweroff);
    action(&mut top, "on_reboot", cfg.on_reboot);
    action(&mut top, "on_watchdog", cfg.on_watchdog);
    action(&mut top, "on_crash", cfg.on_crash);
    // xl sets it for every domain (its default for `on_soft_reset`).
    action(&mut top, "on_soft_reset", Action::SoftReset);
    Value::Object(top)
}

/// Which of the keys xl's parser reads only when present the config set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Given {
    /// `vcpus` (xl then sets `max_vcpus` and `avail_vcpus`).
    pub vcpus: bool,
    /// `maxvcpus` (xl then sets `max_vcpus`).
    pub maxvcpus: bool,
}

/// What `xl create -n` prints for `cfg` (xl_vmcontrol.c: `libxl_domain_config_to_json` of
/// the configuration as xl's parser left it, before libxl's defaults), in libxl's layout;
/// `uuid` is the config's or the one the create will use. As the stored configuration but
/// for what libxl adds to that: no `domid`, `video_memkb`, `msr_relaxed`, disks'
/// `colo_restore_enable` or interfaces' `nictype`, and the vcpu fields only when the config
/// set them (`given`). Left out where xl prints them: `claim_mode` (pvbuild claims no
/// memory), and the per-vcpu affinity bitmaps and `numa_placement` that `cpus` /
/// `cpus_soft` give (xl sizes the bitmaps to the host's cpus; `-n` does not ask Xen).
pub fn dry_run_text(cfg: &DomainConfig, uuid: Uuid, given: Given) -> String {
    let mut v = domain_config(cfg, uuid, &[], &[]);
    if let Some(c) = v.get_mut("c_info").and_then(Value::as_object_mut) {
        c.remove("domid");
    }
    if let Some(b) = v.get_mut("b_info").and_then(Value::as_object_mut) {
        b.remove("video_memkb");
        b.insert("arch_x86".into(), json!({}));
        if !given.vcpus {
            b.remove("avail_vcpus");
            if !given.maxvcpus {
                b.remove("max_vcpus");
            }
        }
    }
    for d in v
        .get_mut("disks")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(o) = d.as_object_mut() {
            o.remove("colo_restore_enable");
        }
    }
    for n in v
        .get_mut("nics")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(o) = n.as_object_mut() {
            o.remove("nictype");
        }
    }
    to_text(&v)
}

/// libxl's layout of the text: yajl's beautified output ([`yajl::render`]) with the members
/// in libxl_types.idl's order ([`yajl::ordered`]), as libxl writes its stored config.
pub fn to_text(v: &Value) -> String {
    yajl::render(&yajl::ordered(v, ""))
}

/// Why a stored device could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("stored configuration: {0}")]
pub struct StoredError(pub String);

fn str_field<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

fn int_field(o: &Map<String, Value>, k: &str) -> Option<i64> {
    o.get(k).and_then(Value::as_i64)
}

fn defbool_field(o: &Map<String, Value>, k: &str) -> Option<bool> {
    match str_field(o, k) {
        Some("True") => Some(true),
        Some("False") => Some(false),
        _ => None,
    }
}

/// A stored `disks` entry as a disk spec (what pvbuild's parser would have made of the xl
/// spec), whoever stored it (pvbuild, or libxl for `xl block-attach`).
pub fn disk_from_json(v: &Value) -> Result<DiskSpec, StoredError> {
    let o = v
        .as_object()
        .ok_or_else(|| StoredError("a disk is not an object".into()))?;
    let format = match str_field(o, "format") {
        None | Some("raw") => DiskFormat::Raw,
        Some("qcow") => DiskFormat::Qcow,
        Some("qcow2") => DiskFormat::Qcow2,
        Some("vhd") => DiskFormat::Vhd,
        Some("qed") => DiskFormat::Qed,
        Some("empty") => DiskFormat::Empty,
        Some(f) => return Err(StoredError(format!("disk format {f:?}"))),
    };
    let backendtype = match str_field(o, "backend") {
        None | Some("unknown") => None,
        Some(b @ ("phy" | "qdisk" | "tap" | "standalone")) => Some(b.to_owned()),
        Some(b) => return Err(StoredError(format!("disk backend {b:?}"))),
    };
    Ok(DiskSpec {
        target: str_field(o, "pdev_path").unwrap_or_default().to_owned(),
        format,
        vdev: str_field(o, "vdev").map(str::to_owned),
        readonly: int_field(o, "readwrite").unwrap_or(0) == 0,
        cdrom: int_field(o, "is_cdrom").unwrap_or(0) != 0,
        backendtype,
        backend: str_field(o, "backend_domname").map(str::to_owned),
        script: str_field(o, "script").map(str::to_owned),
        discard: defbool_field(o, "discard_enable"),
        untrusted: defbool_field(o, "trusted") == Some(false),
    })
}

/// A stored `nics` entry as a vif spec, whoever stored it.
pub fn nic_from_json(v: &Value) -> Result<VifSpec, StoredError> {
    let o = v
        .as_object()
        .ok_or_else(|| StoredError("an interface is not an object".into()))?;
    let ioemu = match str_field(o, "nictype") {
        None => None,
        Some("vif") => Some(false),
        Some("vif_ioemu") => Some(true),
        Some(t) => return Err(StoredError(format!("interface type {t:?}"))),
    };
    let mac = match str_field(o, "mac") {
        None => None,
        Some(m) => Some(
            crate::config::parse_vif_spec(&format!("mac={m}"))
                .map_err(|e| StoredError(format!("mac {m:?}: {e}")))?
                .mac
                .ok_or_else(|| StoredError(format!("mac {m:?}")))?,
        ),
    };
    let num = |k: &str| -> Result<Option<u32>, StoredError> {
        int_field(o, k)
            .map(|n| u32::try_from(n).map_err(|_| StoredError(format!("{k} {n}"))))
            .transpose()
    };
    let rate = match (
        o.get("rate_bytes_per_interval").and_then(Value::as_u64),
        num("rate_interval_usecs")?,
    ) {
        (Some(b), Some(u)) if b != 0 => Some((b, u)),
        _ => None,
    };
    Ok(VifSpec {
        mac,
        bridge: str_field(o, "bridge").map(str::to_owned),
        script: str_field(o, "script").map(str::to_owned),
        ip: str_field(o, "ip").map(str::to_owned),
        gatewaydev: str_field(o, "gatewaydev").map(str::to_owned),
        vifname: str_field(o, "ifname").map(str::to_owned),
        mtu: num("mtu")?.filter(|m| *m != 0),
        devid: num("devid")?,
        backend: str_field(o, "backend_domname").map(str::to_owned),
        rate,
        untrusted: defbool_field(o, "trusted") == Some(false),
        ioemu,
        model: str_field(o, "model").map(str::to_owned),
    })
}

/// The disks and interfaces of a stored configuration.
pub fn devices_from_json(text: &str) -> Result<(Vec<DiskSpec>, Vec<VifSpec>), StoredError> {
    let v: Value = serde_json::from_str(text).map_err(|e| StoredError(e.to_string()))?;
    let list = |k: &str| -> Vec<Value> {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let disks = list("disks")
        .iter()
        .map(disk_from_json)
        .collect::<Result<_, _>>()?;
    let nics = list("nics")
        .iter()
        .map(nic_from_json)
        .collect::<Result<_, _>>()?;
    Ok((disks, nics))
}

/// Adds a device to the stored configuration `text` (under `key`, `disks` or `nics`),
/// as libxl's `device_add_domain_config` does: an entry for the same device (`same`) is
/// replaced, otherwise it is appended.
pub fn add_device(
    text: &str,
    key: &str,
    dev: Value,
    same: impl Fn(&Value) -> bool,
) -> Result<String, StoredError> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| StoredError(e.to_string()))?;
    let top = v
        .as_object_mut()
        .ok_or_else(|| StoredError("not an object".into()))?;
    let list = top
        .entry(key)
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| StoredError(format!("{key} is not a list")))?;
    match list.iter_mut().find(|d| same(d)) {
        Some(slot) => *slot = dev,
        None => list.push(dev),
    }
    Ok(to_text(&v))
}

/// Removes the devices `gone` selects from the stored configuration's `key` list.
pub fn remove_device(
    text: &str,
    key: &str,
    gone: impl Fn(&Value) -> bool,
) -> Result<String, StoredError> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| StoredError(e.to_string()))?;
    if let Some(list) = v.get_mut(key).and_then(Value::as_array_mut) {
        list.retain(|d| !gone(d));
        if list.is_empty() {
            if let Some(o) = v.as_object_mut() {
                o.remove(key);
            }
        }
    }
    Ok(to_text(&v))
}

/// The stored configuration `text` with its domain's name (`c_info.name`) set to `name`: a
/// domain `pvbuild serve --pool` prepared under the pool's name, taken by a create of `name`.
pub fn set_name(text: &str, name: &str) -> Result<String, StoredError> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| StoredError(e.to_string()))?;
    let c_info = v
        .get_mut("c_info")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| StoredError("no c_info".into()))?;
    c_info.insert("name".into(), name.into());
    Ok(to_text(&v))
}

#[cfg(test)]
mod tests;

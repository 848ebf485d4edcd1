//! The commands that change or show a running domain's devices: `network-attach`/`-detach`/
//! `-list`, `block-attach`/`-detach`/`-list`, and `console`.

use super::*;

/// `pvbuild network-attach DOMAIN KEY=VALUE...`: the words are one vif spec (as xl joins
/// them). Returns what was attached, for the user.
pub fn network_attach_cmd(target: &str, spec: &[String]) -> Result<String, CommandError> {
    let spec_text = spec.join(",");
    let parsed = crate::config::parse_vif_spec(&spec_text)
        .map_err(|m| CommandError::Usage(format!("vif spec {spec_text:?}: {m}")))?;
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    let mut random = vif::random_bytes;
    let v = vif::attach(
        &xs,
        u32::from(domid),
        &parsed,
        vif::AttachHost {
            netback: Path::new(vif::NETBACK_SYSFS),
            sys_class_net: &vif::sys_class_net(),
            random: &mut random,
            run: &vif::run_hotplug,
        },
    )?;
    let entry = crate::config::libxl_json::nic_json(&parsed, Some(&v), 0);
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::add_device(old, "nics", entry, |n| n["devid"] == v.devid)
    });
    Ok(format!(
        "pvbuild: domain {domid}: network interface {} ({}) on {}\n",
        v.devid, v.mac, v.bridge
    ))
}

/// `pvbuild network-detach DOMAIN DEVID|MAC`.
pub fn network_detach_cmd(target: &str, which: &str) -> Result<(), CommandError> {
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    let devid = vif::find(&xs, u32::from(domid), which)?;
    let closed = vif::detach(
        &xs,
        u32::from(domid),
        devid,
        vif::DETACH_TIMEOUT,
        &vif::run_hotplug,
    )?;
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::remove_device(old, "nics", |n| n["devid"] == devid)
    });
    if !closed {
        crate::say_err!(
            "warning: domain {domid}: the guest did not close interface {devid} within {} s; removed anyway",
            vif::DETACH_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

/// `pvbuild block-attach [--device-model QEMU] DOMAIN SPEC...`: the words are one disk spec
/// (as xl joins them). A disk QEMU serves, for a domain that has no device model, starts one
/// first (`device_model`, or Debian's), as libxl does. Returns what was attached, for the
/// user.
pub fn block_attach_cmd(
    target: &str,
    spec: &[String],
    device_model: Option<&std::path::Path>,
) -> Result<String, CommandError> {
    let spec_text = spec.join(",");
    let parsed = crate::config::parse_disk_spec(&spec_text)
        .map_err(|m| CommandError::Usage(format!("disk spec {spec_text:?}: {m}")))?;
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xen = Xen::open()?;
    let no_domain = |e: crate::xen::XenError| match e {
        crate::xen::XenError::Call {
            errno: nix::errno::Errno::ESRCH,
            ..
        } => CommandError::Usage(format!("no domain {domid}")),
        e => e.into(),
    };
    // libxl writes the frontend's `protocol` for PV guests only (an HVM container, PVH
    // here, has no PV address size: XEN_DOMCTL_get_address_size refuses it).
    let protocol = if xen.domain_info(domid).map_err(no_domain)?.hvm() {
        None
    } else {
        match xen.address_size(domid).map_err(no_domain)? {
            32 => Some("x86_32-abi"),
            _ => Some("x86_64-abi"),
        }
    };
    let xs = XsConnection::open()?;
    let id = u32::from(domid);
    // QEMU's `-m` is the guest's maximum, as libxl passes it.
    let maxmem_mib = xs
        .read_opt(&format!(
            "{}/memory/static-max",
            crate::xenstore::dom_path(id)
        ))
        .map_err(|e| CommandError::Xs(e.to_string()))?
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024);
    let mut req = DmRequest::new(device_model, id, &domain_name(&xs, domid), maxmem_mib);
    // The restriction the domain was created with (`create` recorded it).
    req.privileges =
        devmodel::restrict::recorded(&xs, id).map_err(|e| CommandError::Xs(e.to_string()))?;
    let start = || {
        if crate::support::interrupt::requested() {
            return Err(crate::devices::disk::DiskError::Interrupted);
        }
        devmodel::restrict::check_servable(&req.privileges, |k| std::env::var(k).ok())
            .map_err(|e| crate::devices::disk::DiskError::DeviceModel(e.to_string()))?;
        devmodel::launch(&xs, &req)
            .map_err(|e| crate::devices::disk::DiskError::DeviceModel(e.to_string()))
    };
    let dm = if crate::devices::disk::device_model_running(&xs, id)? {
        crate::devices::disk::AttachDm::Running
    } else {
        crate::devices::disk::AttachDm::Start(&start)
    };
    let (v, started) = crate::devices::disk::attach(
        &xs,
        id,
        &parsed,
        crate::devices::disk::blkback_available(),
        dm,
        protocol,
        crate::devices::disk::BLKBACK_TIMEOUT,
    )?;
    let by = match (v.backend, started) {
        (VbdBackend::Phy { .. }, _) => "blkback".to_owned(),
        (VbdBackend::Qdisk, None) => "the device model".to_owned(),
        (VbdBackend::Qdisk, Some(pid)) => format!("a device model started for it (pid {pid})"),
    };
    let entry = crate::config::libxl_json::disk_json(&parsed, Some(&v), false);
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::add_device(old, "disks", entry, |d| {
            d["vdev"].as_str().and_then(crate::devices::disk::devid) == Some(v.devid)
        })
    });
    Ok(format!(
        "pvbuild: domain {domid}: disk {} (device {}) served by {by}\n",
        v.vdev, v.devid
    ))
}

/// `pvbuild block-detach DOMAIN VDEV|DEVID`.
pub fn block_detach_cmd(target: &str, which: &str) -> Result<(), CommandError> {
    catch_signals()?;
    let domid = lookup(target)?;
    // One device change at a time for this domain (see `domlock`).
    let _lock = crate::devices::domlock::DomainLock::acquire(u32::from(domid))?;
    let xs = XsConnection::open()?;
    let id = u32::from(domid);
    let (devid, bp) = crate::devices::disk::find(&xs, id, which)?;
    let closed =
        crate::devices::disk::detach(&xs, id, devid, &bp, crate::devices::disk::DETACH_TIMEOUT)?;
    store_change(&xs, domid, |old| {
        crate::config::libxl_json::remove_device(old, "disks", |d| {
            d["vdev"].as_str().and_then(crate::devices::disk::devid) == Some(devid)
        })
    });
    if !closed {
        crate::say_err!(
            "warning: domain {domid}: the guest did not close disk {which} within {} s; removed anyway",
            crate::devices::disk::DETACH_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

/// Changes `domid`'s stored configuration (see [`crate::config::userdata`]) after a device change,
/// as libxl does for xl's. The device is changed either way: a failure is a warning.
pub(crate) fn store_change(
    xs: &XsConnection,
    domid: u16,
    change: impl FnOnce(&str) -> Result<String, crate::config::libxl_json::StoredError>,
) {
    let id = u32::from(domid);
    let Some(uuid) = crate::config::userdata::domain_uuid(xs, id) else {
        crate::say_err!(
            "warning: domain {domid}: no UUID in xenstore; its stored configuration is not updated"
        );
        return;
    };
    let dir = Path::new(crate::config::userdata::XEN_LIB_DIR);
    match crate::config::userdata::update_config_in(dir, id, uuid, |old| {
        change(old).map_err(|e| e.to_string())
    }) {
        Ok(true) => {}
        Ok(false) => log::info(format_args!(
            "domain {domid} has no stored configuration to update"
        )),
        Err(e) => crate::say_err!("warning: domain {domid}: {e}"),
    }
}

/// `pvbuild block-list DOMAIN`, in xl's columns.
pub fn block_list_cmd(target: &str) -> Result<String, CommandError> {
    let domid = lookup_any(target)?;
    let xs = XsConnection::open()?;
    let id = u32::from(domid);
    let mut out = format!(
        "{:<6} {:<3} {:<7} {:<6} {:<7} {:<8} {}\n",
        "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path"
    );
    for devid in xenstore::vbd_devids(&xs, id)? {
        let fe = format!("{}/device/vbd/{devid}", xenstore::dom_path(id));
        // The frontend is the guest's to write: what it holds is shown, never obeyed by the
        // terminal (control characters become `?`, and long values are cut).
        let read = |p: String| -> Result<String, CommandError> {
            Ok(xs
                .read_opt(&p)?
                .map_or_else(|| "-".into(), |v| printable(&v, 80)))
        };
        out.push_str(&format!(
            "{devid:<6} {:<3} {:<7} {:<6} {:<7} {:<8} {}\n",
            read(format!("{fe}/backend-id"))?,
            devid,
            read(format!("{fe}/state"))?,
            read(format!("{fe}/event-channel"))?,
            read(format!("{fe}/ring-ref"))?,
            read(format!("{fe}/backend"))?
        ));
    }
    Ok(out)
}

/// `pvbuild network-list DOMAIN`.
pub fn network_list_cmd(target: &str) -> Result<String, CommandError> {
    let domid = lookup_any(target)?;
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    Ok(vif::list(&xs, u32::from(domid))?)
}

/// `pvbuild console DOMAIN`: through xenconsoled's pty when it serves (or will serve) the
/// console, straight to the ring when xenconsoled does not run ([`crate::devices::console::attach`]).
pub fn console_cmd(target: &str) -> Result<(), CommandError> {
    let domid = lookup_any(target)?;
    crate::devices::console::attach(
        u32::from(domid),
        crate::devices::console::DEFAULT_TTY_TIMEOUT,
    )?;
    Ok(())
}

//! The commands that act on a running domain as a whole: `destroy` (and the crash-safety
//! sweep of `cleanup`), `shutdown`/`reboot`, `pause`/`unpause`, `sysrq`, `rename`, `mem-set`,
//! `mem-max` and `vcpu-set`.

use super::*;

/// Destroys `domid` and removes its xenstore entries. As with libxl, xenstored is not asked
/// to release the domain: it drops a dead domain's connection itself (`@releaseDomain`), and
/// refuses (EINVAL) to release one it has already dropped.
pub(crate) fn destroy_domid(xen: &Xen, domid: u16) -> Result<(), CommandError> {
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    crate::build::steps::lap("open-xenstore");
    let r = destroy_with(xen, &xs, &vif::run_hotplug, domid, None);
    crate::build::steps::total();
    r
}

/// [`destroy_domid`] through `xs` and the hotplug runner `hotplug`; `uuid`'s `/vm` entry goes
/// too (for a domain whose own `vm` entry was never written). A domain already gone is not an
/// error: its entries still go.
pub(crate) fn destroy_with(
    xen: &Xen,
    xs: &XsConnection,
    hotplug: vif::Runner<'_>,
    domid: u16,
    uuid: Option<&Uuid>,
) -> Result<(), CommandError> {
    // As libxl: the device model goes first (it holds the guest's pages mapped); in a stub
    // domain, with the stub (`libxl__destroy_device_model`).
    let records = devmodel::DmRecords::read(xs, u32::from(domid)).unwrap_or_else(|e| {
        crate::say_err!("warning: domain {domid}: {e}");
        devmodel::DmRecords::default()
    });
    if let Some(stub) = devmodel::stubdom::stub_of(xs, u32::from(domid), records.stub) {
        if let Err(e) = destroy_with(xen, xs, hotplug, stub, None) {
            crate::say_err!("warning: domain {domid}: its stub domain {stub}: {e}");
        } else {
            log::info(format_args!("destroyed stub domain {stub}"));
        }
    }
    // A stub domain's QMP proxy.
    match devmodel::stubdom::proxy::stop(u32::from(domid), records.proxy_pid) {
        Ok(Some(pid)) => log::info(format_args!("stopped qmp proxy {pid}")),
        Ok(None) => {}
        Err(e) => crate::say_err!("warning: domain {domid}: {e}"),
    }
    match devmodel::stop_recorded(u32::from(domid), &records) {
        Ok(Some(pid)) => log::info(format_args!("stopped device model {pid}")),
        Ok(None) => {}
        Err(e) => crate::say_err!("warning: domain {domid}: {e}"),
    }
    crate::build::steps::lap("device-model");
    match xen.destroy_domain(domid) {
        Ok(()) => {}
        // Destroyed meanwhile by someone else (a monitor and `pvbuild destroy` racing): the
        // entries still go.
        Err(crate::xen::XenError::Call {
            errno: nix::errno::Errno::ESRCH,
            ..
        })
        | Err(crate::xen::XenError::NoSuchDomain { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    crate::build::steps::lap("destroydomain");
    // As libxl: each interface's hotplug script unplugs it, then its entries go (and with
    // them netback's interface).
    match vif::from_xenstore(xs, u32::from(domid)) {
        Ok(list) => {
            for h in &list {
                if let Err(e) = hotplug(xs, h, HotplugAction::Offline) {
                    crate::say_err!("warning: domain {domid}: {e}");
                }
            }
        }
        Err(e) => crate::say_err!("warning: domain {domid}: {e}"),
    }
    crate::build::steps::lap("hotplug");
    // As libxl__userdata_destroyall: the stored configuration goes with the domain, whoever
    // stored it (pvbuild, or xl for a domain xl made).
    for e in crate::config::userdata::remove_all(u32::from(domid)) {
        crate::say_err!("warning: domain {domid}: {e}");
    }
    crate::build::steps::lap("userdata");
    let r = xenstore::remove_domain(xs, u32::from(domid), uuid, u32::from(BACKEND_DOMID), false)
        .map_err(|e| CommandError::Xs(e.to_string()));
    crate::build::steps::lap("xenstore");
    r
}

/// The crash-safety sweep's view of a [`Host`].
impl crate::build::journal::DomainUndo for Host {
    fn handle_of(&self, domid: u16) -> Result<Option<[u8; 16]>, String> {
        match self.xen.domain_info(domid) {
            Ok(i) => Ok(Some(i.handle)),
            Err(crate::xen::XenError::NoSuchDomain { .. })
            | Err(crate::xen::XenError::Call {
                errno: nix::errno::Errno::ESRCH,
                ..
            }) => Ok(None),
            Err(e) => Err(format!("domain {domid}: {e}")),
        }
    }

    fn unnamed_with_handle(&self, handle: &[u8; 16]) -> Result<Vec<u16>, String> {
        let xs = (self.xenstore)().map_err(|e| e.to_string())?;
        let doms = self.xen.list_domains().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for d in doms.iter().filter(|d| d.domid != 0 && d.handle == *handle) {
            let known = xs
                .read_opt(&format!("{}/name", xenstore::dom_path(u32::from(d.domid))))
                .map_err(|e| e.to_string())?;
            if known.is_none() {
                out.push(d.domid);
            }
        }
        Ok(out)
    }

    fn destroy(&self, domid: u16, uuid: Option<&Uuid>) -> Result<(), String> {
        let xs = (self.xenstore)().map_err(|e| e.to_string())?;
        destroy_with(&self.xen, &xs, &*self.hotplug, domid, uuid).map_err(|e| e.to_string())
    }

    fn remove_vm(&self, uuid: &Uuid) -> Result<(), String> {
        let xs = (self.xenstore)().map_err(|e| e.to_string())?;
        match xs.rm(&xenstore::vm_path(uuid)) {
            Err(e) if !e.is_not_found() => Err(format!("{}: {e}", xenstore::vm_path(uuid))),
            _ => Ok(()),
        }
    }
}

/// Undoes what killed creates left (those `filter` selects: [`crate::build::journal::sweep_in`]),
/// saying what was done on stderr; returns how many records were undone.
pub(crate) fn sweep(host: &Host, filter: crate::build::journal::Filter<'_>) -> usize {
    let done = crate::build::journal::sweep_in(&crate::build::journal::default_dir(), filter, host);
    for s in &done {
        crate::say_err!("pvbuild: {s}");
    }
    done.len()
}

/// `pvbuild cleanup`: undoes what every killed create left. Returns a line per record.
pub fn cleanup_cmd() -> Result<String, CommandError> {
    let host = Host::open()?;
    let done = crate::build::journal::sweep_in(
        &crate::build::journal::default_dir(),
        crate::build::journal::Filter::All,
        &host,
    );
    let failed = done.iter().filter(|s| !s.errors.is_empty()).count();
    let text: String = done.iter().map(|s| format!("pvbuild: {s}\n")).collect();
    if failed > 0 {
        crate::say_err!("{}", text.trim_end());
        return Err(CommandError::Usage(format!(
            "{failed} killed create(s) could not be undone; their records stay for the next cleanup"
        )));
    }
    Ok(text)
}

/// `pvbuild destroy DOMAIN`. A create of that name (or domain id) that was killed is undone
/// first ([`crate::build::journal`]); when it had not got as far as naming its domain, that is all
/// there is to destroy.
pub fn destroy_cmd(target: &str) -> Result<(), CommandError> {
    let filter = match target.parse::<u16>() {
        Ok(0) => return lookup(target).map(|_| ()),
        Ok(id) => crate::build::journal::Filter::Domain(id),
        Err(_) => crate::build::journal::Filter::Name(target),
    };
    // At -vv, each step's time as for create (crate::build::steps).
    crate::build::steps::start();
    let host = Host::open()?;
    crate::build::steps::lap("open-xen");
    let swept = sweep(&host, filter);
    crate::build::steps::lap("journal-sweep");
    let domid = match lookup(target) {
        Ok(d) => d,
        Err(_) if swept > 0 => return Ok(()),
        Err(e) => return Err(e),
    };
    if swept > 0
        && matches!(
            crate::build::journal::DomainUndo::handle_of(&host, domid),
            Ok(None)
        )
    {
        // The sweep destroyed it (a domain id given).
        return Ok(());
    }
    crate::build::steps::lap("lookup");
    destroy_domid(&host.xen, domid)
}

/// `pvbuild shutdown` / `pvbuild reboot`: which domains, and what to do.
#[derive(Debug, Clone)]
pub struct ControlArgs {
    /// The domain (id or name); `None` with `all`.
    pub domain: Option<String>,
    /// Every domain but dom0 (and those already shut down or dying), as `xl shutdown -a`.
    pub all: bool,
    /// Wait until each has shut down or is gone, as `xl shutdown -w`.
    pub wait: bool,
    /// With `wait`: give up after this many seconds (0: wait as long as it takes, as xl).
    pub timeout_s: u64,
    /// Power off or reboot.
    pub request: crate::control::shutdown::Request,
}

/// `pvbuild shutdown` / `pvbuild reboot`: asks each guest through its PV control node (as
/// libxl: the guest must acknowledge within 60 s), then with `wait` waits until each has
/// shut down or is gone. What becomes of a shut-down domain is up to whoever watches it (its
/// monitor or `create --wait`, by the config's `on_poweroff` / `on_reboot`).
pub fn control_cmd(args: &ControlArgs) -> Result<(), CommandError> {
    catch_signals()?;
    match (&args.domain, args.all) {
        (Some(_), true) => {
            return Err(CommandError::Usage(
                "give a domain or -a (--all), not both".into(),
            ))
        }
        (None, false) => return Err(CommandError::Usage("give a domain or -a (--all)".into())),
        _ => {}
    }
    let xen = Xen::open()?;
    let domids: Vec<u16> = match (&args.domain, args.all) {
        (None, _) => xen
            .list_domains()?
            .iter()
            .filter(|d| d.domid != 0 && !d.shutdown() && !d.dying())
            .map(|d| d.domid)
            .collect(),
        (Some(t), _) => {
            let d = lookup_any(t)?;
            if d == 0 {
                return Err(CommandError::Usage(
                    "domain 0 is not shut down or rebooted by pvbuild".into(),
                ));
            }
            match xen.domain_info(d) {
                Ok(_) => {}
                Err(crate::xen::XenError::NoSuchDomain { .. }) => {
                    return Err(CommandError::Usage(format!("no domain {d}")))
                }
                Err(e) => return Err(e.into()),
            }
            vec![d]
        }
    };
    let xs = XsConnection::open().map_err(|e| CommandError::Xs(e.to_string()))?;
    let word = args.request.word();
    for &d in &domids {
        crate::say!(
            "pvbuild: asking domain {d} ({}) to {word}",
            domain_name(&xs, d)
        );
        crate::control::shutdown::request(
            &xs,
            u32::from(d),
            args.request,
            crate::control::shutdown::ACK_TIMEOUT,
        )?;
    }
    if !args.wait {
        return Ok(());
    }
    let timeout = (args.timeout_s != 0).then(|| Duration::from_secs(args.timeout_s));
    let deadline = timeout.map(|t| Instant::now() + t);
    for &d in &domids {
        let left = deadline.map(|dl| dl.saturating_duration_since(Instant::now()));
        let name = domain_name(&xs, d);
        // Xen tells xenstored of every shutdown and death, and xenstored fires
        // `@releaseDomain`; the wait looks at the domain again on each firing.
        let waited = xenstore::wait_watched(&xs, &["@releaseDomain"], left, || {
            match xen.domain_info(d) {
                Ok(i) if i.shutdown() => Ok(Some(format!(
                    "shut down: {}",
                    shutdown_reason_name(i.shutdown_reason())
                ))),
                Ok(i) if i.dying() => Ok(Some("was destroyed".to_owned())),
                Ok(_) => Ok(None),
                Err(crate::xen::XenError::NoSuchDomain { .. }) => Ok(Some("is gone".to_owned())),
                Err(e) => Err(CommandError::from(e)),
            }
        });
        match waited? {
            xenstore::Waited::Done(what) => crate::say!("pvbuild: domain {d} ({name}) {what}"),
            xenstore::Waited::Interrupted => return Err(CommandError::Interrupted),
            xenstore::Waited::TimedOut => {
                return Err(CommandError::Timeout(d, args.timeout_s));
            }
        }
    }
    Ok(())
}

/// `pvbuild pause DOMAIN` / `pvbuild unpause DOMAIN`, as xl's.
pub fn pause_cmd(target: &str, pause: bool) -> Result<(), CommandError> {
    let domid = lookup_any(target)?;
    if domid == 0 {
        return Err(CommandError::Usage(
            "domain 0 is not paused or unpaused by pvbuild".into(),
        ));
    }
    let xen = Xen::open()?;
    let r = if pause {
        xen.pause_domain(domid)
    } else {
        xen.unpause_domain(domid)
    };
    match r {
        Ok(()) => Ok(()),
        Err(crate::xen::XenError::Call {
            errno: nix::errno::Errno::ESRCH,
            ..
        }) => Err(CommandError::Usage(format!("no domain {domid}"))),
        Err(e) => Err(e.into()),
    }
}

/// `pvbuild sysrq DOMAIN KEY`, as `xl sysrq`: the guest's kernel handles the magic SysRq key.
pub fn sysrq_cmd(target: &str, key: &str) -> Result<(), CommandError> {
    let key = crate::control::shutdown::sysrq_key(key).ok_or_else(|| {
        CommandError::Usage(format!(
            "sysrq key {key:?}: one printable character (h lists the guest's keys)"
        ))
    })?;
    let domid = lookup(target)?;
    let xs = XsConnection::open()?;
    crate::control::shutdown::sysrq(&xs, u32::from(domid), key)
        .map_err(|e| CommandError::Usage(e.to_string()))
}

/// `pvbuild rename DOMAIN NEW_NAME`, as `xl rename`: the domain's name in xenstore (its own
/// and its `/vm` entry's), refused if another domain has it.
pub fn rename_cmd(target: &str, new_name: &str) -> Result<(), CommandError> {
    let domid = lookup(target)?;
    let xs = XsConnection::open()?;
    let old = domain_name(&xs, domid);
    xenstore::rename_domain(&xs, u32::from(domid), &old, new_name)
        .map_err(|e| CommandError::Usage(format!("domain {domid}: {e}")))
}

/// The size and the guest (not dom0) that `mem-set` and `mem-max` are given, and the
/// connections they need.
pub(crate) fn memory_args(
    target: &str,
    size: &str,
) -> Result<(u64, u16, Xen, XsConnection), CommandError> {
    let kib = crate::control::memory::parse_size_kib(size).ok_or_else(|| {
        CommandError::Usage(crate::control::memory::MemError::BadSize(size.into()).to_string())
    })?;
    let domid = lookup_any(target)?;
    if domid == 0 {
        return Err(CommandError::Usage(
            "dom0's memory is not managed by pvbuild".into(),
        ));
    }
    Ok((kib, domid, Xen::open()?, XsConnection::open()?))
}

/// `pvbuild mem-set DOMAIN SIZE`, as `xl mem-set`: the guest's balloon target. Returns what
/// was set, for the user.
pub fn mem_set_cmd(target: &str, size: &str) -> Result<String, CommandError> {
    let (kib, domid, xen, xs) = memory_args(target, size)?;
    let set = crate::control::memory::set_target(&xs, &xen, domid, kib)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    Ok(format!(
        "pvbuild: domain {domid} ({}): memory target {} KiB ({} MiB)\n",
        domain_name(&xs, domid),
        set,
        set / 1024
    ))
}

/// `pvbuild mem-max DOMAIN SIZE`, as `xl mem-max`: how much memory Xen lets the guest hold
/// (the size plus libxl's 1 MiB slack), not less than its current target.
pub fn mem_max_cmd(target: &str, size: &str) -> Result<String, CommandError> {
    let (kib, domid, xen, xs) = memory_args(target, size)?;
    let limit = crate::control::memory::set_max(&xs, &xen, domid, kib)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    Ok(format!(
        "pvbuild: domain {domid} ({}): maximum memory {kib} KiB (Xen's limit {limit} KiB)\n",
        domain_name(&xs, domid),
    ))
}

/// `pvbuild vcpu-set DOMAIN COUNT`, as `xl vcpu-set` for a PV guest
/// (`libxl__set_vcpuonline_xenstore`): vcpus `0..COUNT` are marked `online` and the rest
/// `offline` in `cpu/N/availability`, one transaction; the guest's kernel watches those and
/// takes the vcpus down (and marks them present again, for its userspace to bring up). More
/// than the domain's `maxvcpus` is refused, and more than the host has physical CPUs unless
/// `ignore_host` (xl's `--ignore-host`).
pub fn vcpu_set_cmd(target: &str, count: &str, ignore_host: bool) -> Result<String, CommandError> {
    let n: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| CommandError::Usage(format!("vcpu count {count:?}: a number from 1")))?;
    let domid = lookup_any(target)?;
    if domid == 0 {
        return Err(CommandError::Usage(
            "dom0's vcpus are not managed by pvbuild".into(),
        ));
    }
    let xen = Xen::open()?;
    let info = match xen.domain_info(domid) {
        Ok(i) => i,
        Err(crate::xen::XenError::NoSuchDomain { .. }) => {
            return Err(CommandError::Usage(format!("no domain {domid}")))
        }
        Err(e) => return Err(e.into()),
    };
    let max = info.max_vcpu_id.saturating_add(1);
    if n > max {
        return Err(CommandError::Usage(format!(
            "domain {domid}: {n} vcpus asked for, but its maximum (maxvcpus) is {max}"
        )));
    }
    let host_cpus = xen.physinfo()?.nr_cpus;
    if n > host_cpus && !ignore_host {
        return Err(CommandError::Usage(format!(
            "domain {domid}: {n} vcpus asked for on a host with {host_cpus} physical CPUs \
             (--ignore-host to overcommit)"
        )));
    }
    let xs = XsConnection::open()?;
    xenstore::set_vcpus_online(&xs, u32::from(domid), n, max)?;
    Ok(format!(
        "pvbuild: domain {domid} ({}): {n} of {max} vcpus online\n",
        domain_name(&xs, domid)
    ))
}

//! `pvbuild info [NAME]` as `xl info` prints it (tools/xl/xl_info.c: `output_nodeinfo`,
//! `output_physinfo`, `output_xeninfo`): the same keys, order and formats; with NAME, only the
//! value of the keys that start with it, as xl's `maybe_printf` filters. `xl info -n` (NUMA
//! and topology) is not offered.

use crate::commands::CommandError;
use crate::sys::domctl::XenSysctlPhysinfo;
use crate::xen::Xen;

use crate::sys::domctl::{
    XEN_SYSCTL_PHYSCAP_DIRECTIO as CAP_DIRECTIO, XEN_SYSCTL_PHYSCAP_GNTTAB_V1 as CAP_GNTTAB_V1,
    XEN_SYSCTL_PHYSCAP_GNTTAB_V2 as CAP_GNTTAB_V2, XEN_SYSCTL_PHYSCAP_HAP as CAP_HAP,
    XEN_SYSCTL_PHYSCAP_HVM as CAP_HVM,
    XEN_SYSCTL_PHYSCAP_IOMMU_HAP_PT_SHARE as CAP_IOMMU_HAP_PT_SHARE,
    XEN_SYSCTL_PHYSCAP_PV as CAP_PV, XEN_SYSCTL_PHYSCAP_SHADOW as CAP_SHADOW,
    XEN_SYSCTL_PHYSCAP_VMTRACE as CAP_VMTRACE, XEN_SYSCTL_PHYSCAP_VPMU as CAP_VPMU,
};

/// xl's `virt_caps` value (`XEN_SYSCTL_PHYSCAP_*` named in xl's order, `hvm_directio` and
/// `pv_directio` both from `directio`): a leading space before each name.
pub fn virt_caps(caps: u32) -> String {
    let on = |bit: u32| caps & bit != 0;
    [
        (on(CAP_PV), " pv"),
        (on(CAP_HVM), " hvm"),
        (on(CAP_HVM) && on(CAP_DIRECTIO), " hvm_directio"),
        (on(CAP_PV) && on(CAP_DIRECTIO), " pv_directio"),
        (on(CAP_HAP), " hap"),
        (on(CAP_SHADOW), " shadow"),
        (on(CAP_IOMMU_HAP_PT_SHARE), " iommu_hap_pt_share"),
        (on(CAP_VMTRACE), " vmtrace"),
        (on(CAP_VPMU), " vpmu"),
        (on(CAP_GNTTAB_V1), " gnttab-v1"),
        (on(CAP_GNTTAB_V2), " gnttab-v2"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect()
}

/// The physinfo part (`output_physinfo`), with `free_cpus` and the sharing counters (pages)
/// and the page size given.
pub fn physinfo_lines(
    p: &XenSysctlPhysinfo,
    pagesize: u32,
    sharing: (u64, u64),
    free_cpus: Option<u32>,
) -> Vec<(&'static str, String)> {
    let hw = p.hw_cap;
    let mut v = vec![
        ("nr_cpus", p.nr_cpus.to_string()),
        ("max_cpu_id", p.max_cpu_id.to_string()),
        ("nr_nodes", p.nr_nodes.to_string()),
        ("cores_per_socket", p.cores_per_socket.to_string()),
        ("threads_per_core", p.threads_per_core.to_string()),
        (
            "cpu_mhz",
            format!("{}.{:03}", p.cpu_khz / 1000, p.cpu_khz % 1000),
        ),
        (
            "hw_caps",
            hw.iter()
                .map(|w| format!("{w:08x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        ("virt_caps", virt_caps(p.capabilities)),
    ];
    // Pages per MiB (`(1 << 20) / pagesize`).
    let per_mib = u64::from((1u32 << 20) / pagesize.max(1)).max(1);
    v.push(("total_memory", (p.total_pages / per_mib).to_string()));
    v.push((
        "free_memory",
        (p.free_pages.saturating_sub(p.outstanding_pages) / per_mib).to_string(),
    ));
    v.push(("sharing_freed_memory", (sharing.0 / per_mib).to_string()));
    v.push(("sharing_used_memory", (sharing.1 / per_mib).to_string()));
    v.push((
        "outstanding_claims",
        (p.outstanding_pages / per_mib).to_string(),
    ));
    if let Some(n) = free_cpus {
        v.push(("free_cpus", n.to_string()));
    }
    v
}

/// `key : value` lines as xl prints them (the key padded to 23), or with `name` only the
/// values of the keys it starts (xl's `maybe_printf`).
pub fn render(lines: &[(&str, String)], name: Option<&str>) -> String {
    let mut out = String::new();
    for (k, v) in lines {
        // xl prints virt_caps as ":%s%s..." with each name's own leading space.
        let line = if *k == "virt_caps" {
            format!("{k:<23}:{v}\n")
        } else {
            format!("{k:<23}: {v}\n")
        };
        match name {
            None => out.push_str(&line),
            Some(n) if line.starts_with(n) => {
                if let Some(rest) = line.find(':').and_then(|i| line.get(i + 1..)) {
                    if let Some(value) = rest.strip_prefix(' ') {
                        out.push_str(value);
                    }
                }
            }
            Some(_) => {}
        }
    }
    out
}

/// `pvbuild info [NAME]`.
pub fn info_cmd(name: Option<&str>) -> Result<String, CommandError> {
    let xen = Xen::open()?;
    // uname(2)'s fields, as the kernel gives them in /proc (this process's UTS namespace).
    let proc = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .map(|t| t.trim_end_matches('\n').to_string())
            .map_err(|e| CommandError::Usage(format!("/proc/sys/kernel/{f}: {e}")))
    };
    let mut lines: Vec<(&'static str, String)> = vec![
        ("host", proc("hostname")?),
        ("release", proc("osrelease")?),
        ("version", proc("version")?),
        ("machine", std::env::consts::ARCH.to_string()),
    ];
    let p = xen.physinfo()?;
    let pagesize = xen.xen_pagesize()?;
    let width = p.max_cpu_id.saturating_add(1);
    lines.extend(physinfo_lines(
        &p,
        pagesize,
        xen.sharing_pages()?,
        xen.free_cpus(width).ok(),
    ));
    let (major, minor) = xen.xen_version()?;
    let extra = xen.xen_extraversion()?;
    let cc = xen.xen_compile_info()?;
    lines.extend([
        ("xen_major", major.to_string()),
        // libxl: `xen_version & 0xFF`.
        ("xen_minor", (minor & 0xff).to_string()),
        ("xen_extra", extra.clone()),
        ("xen_version", format!("{major}.{}{extra}", minor & 0xff)),
        ("xen_caps", xen.xen_caps_text()?),
        ("xen_scheduler", xen.sched_id()?.to_string()),
        ("xen_pagesize", pagesize.to_string()),
        (
            "platform_params",
            format!("virt_start={:#x}", xen.xen_virt_start()?),
        ),
        ("xen_changeset", xen.xen_changeset()?),
        ("xen_commandline", xen.xen_commandline()?),
        ("cc_compiler", cc.compiler),
        ("cc_compile_by", cc.compile_by),
        ("cc_compile_domain", cc.compile_domain),
        ("cc_compile_date", cc.compile_date),
        ("build_id", xen.xen_build_id()?.unwrap_or_default()),
        ("xend_config_format", "4".into()),
    ]);
    Ok(render(&lines, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_filter_as_xl_prints_them() {
        let lines = vec![("nr_cpus", "4".to_string()), ("nr_nodes", "1".into())];
        // printf("nr_cpus                : %d\n", ...)
        assert_eq!(
            render(&lines, None),
            "nr_cpus                : 4\nnr_nodes               : 1\n"
        );
        assert_eq!(render(&lines, Some("nr_c")), "4\n");
        assert_eq!(render(&lines, Some("nr_")), "4\n1\n");
        assert_eq!(render(&lines, Some("x")), "");
        // printf("virt_caps              :%s%s\n", " pv", " hvm")
        let caps = vec![("virt_caps", virt_caps(CAP_PV | CAP_HVM))];
        assert_eq!(render(&caps, None), "virt_caps              : pv hvm\n");
        assert_eq!(render(&caps, Some("virt")), "pv hvm\n");
        let none = vec![("virt_caps", virt_caps(0))];
        assert_eq!(render(&none, None), "virt_caps              :\n");
    }

    #[test]
    fn virt_caps_in_xls_order() {
        assert_eq!(
            virt_caps(CAP_PV | CAP_GNTTAB_V1 | CAP_GNTTAB_V2),
            " pv gnttab-v1 gnttab-v2"
        );
        assert_eq!(
            virt_caps(CAP_HVM | CAP_PV | CAP_DIRECTIO | CAP_HAP | CAP_SHADOW),
            " pv hvm hvm_directio pv_directio hap shadow"
        );
        assert_eq!(virt_caps(0), "");
    }

    #[test]
    fn memory_in_mib_and_mhz_as_xl() {
        let p = XenSysctlPhysinfo {
            nr_cpus: 4,
            cpu_khz: 2_400_050,
            total_pages: 0x40000,
            free_pages: 0x20100,
            outstanding_pages: 0x100,
            ..Default::default()
        };
        let l = physinfo_lines(&p, 4096, (0, 0), Some(2));
        let get = |k: &str| l.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("cpu_mhz").as_deref(), Some("2400.050"));
        assert_eq!(get("total_memory").as_deref(), Some("1024"));
        assert_eq!(get("free_memory").as_deref(), Some("512"));
        assert_eq!(get("outstanding_claims").as_deref(), Some("1"));
        assert_eq!(get("free_cpus").as_deref(), Some("2"));
        assert_eq!(
            get("hw_caps").as_deref(),
            Some("00000000:00000000:00000000:00000000:00000000:00000000:00000000:00000000")
        );
    }
}

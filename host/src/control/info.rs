//! `pvbuild info [NAME]` as `xl info` prints it (tools/xl/xl_info.c: `output_nodeinfo`,
//! `output_physinfo`, `output_xeninfo`): the same keys, order and formats; with NAME, only the
//! value of the keys that start with it, as xl's `maybe_printf` filters. With `-n`, between
//! the physinfo and the Xen lines, xl's `output_topologyinfo` (each cpu's core, socket and
//! node; each PCI device's node) and `output_numainfo` (each node's memory and distances),
//! printed whatever NAME says, as xl prints them with plain `printf`.

use crate::commands::CommandError;
use crate::sys::domctl::XenSysctlPhysinfo;
use crate::sys::topo::PhysdevPciDevice;
use crate::xen::{CpuTopo, NodeInfo, PciNode, Xen};

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

/// A `u32` printed with C's `%d` (libxl's all-ones "invalid" prints as -1).
fn c_int(v: u32) -> i32 {
    i32::from_ne_bytes(v.to_ne_bytes())
}

/// libxl's `LIBXL_*_INVALID_ENTRY`, `~(uint32_t)0`.
const INVALID: u32 = !0;

/// xl's `output_topologyinfo`: the cpu table (a cpu whose core is invalid, an offline one,
/// left out), then the PCI devices with a known node.
pub fn topology_text(cpus: &[CpuTopo], pci: &[PciNode]) -> String {
    let mut out = String::from("cpu_topology           :\ncpu:    core    socket     node\n");
    for (i, c) in cpus.iter().enumerate() {
        if let Some(core) = c.core {
            out.push_str(&format!(
                "{i:3}:    {:4}     {:4}     {:4}\n",
                c_int(core),
                c_int(c.socket.unwrap_or(INVALID)),
                c_int(c.node.unwrap_or(INVALID))
            ));
        }
    }
    out.push_str("device topology        :\ndevice           node\n");
    let mut valid = 0;
    for d in pci {
        if let Some(node) = d.node {
            out.push_str(&format!(
                "{:04x}:{:02x}:{:02x}.{:01x}      {}\n",
                d.seg,
                d.bus,
                (d.devfn >> 3) & 0x1f,
                d.devfn & 7,
                c_int(node)
            ));
            valid += 1;
        }
    }
    if valid == 0 {
        out.push_str("No device topology data available\n");
    }
    out
}

/// xl's `output_numainfo`: a node whose size is invalid left out; sizes in MiB.
pub fn numa_text(nodes: &[NodeInfo]) -> String {
    let mut out =
        String::from("numa_info              :\nnode:    memsize    memfree    distances\n");
    let mib = |v: Option<u64>| v.unwrap_or(u64::from(INVALID)) >> 20;
    for (i, n) in nodes.iter().enumerate() {
        if n.size.is_none() {
            continue;
        }
        let dists: Vec<String> = n
            .dists
            .iter()
            .map(|d| c_int(d.unwrap_or(INVALID)).to_string())
            .collect();
        out.push_str(&format!(
            "{i:4}:    {:6}     {:6}      {}\n",
            mib(n.size),
            mib(n.free),
            dists.join(",")
        ));
    }
    out
}

/// The host's PCI devices as libxl lists them (`libxl__pci_topology_init`, Linux): the
/// entries of /sys/bus/pci/devices in directory order, names as `%x:%x:%x.%d`.
pub fn sysfs_pci_devices(dir: &std::path::Path) -> Result<Vec<PhysdevPciDevice>, CommandError> {
    let err = |e: &dyn std::fmt::Display| CommandError::Usage(format!("{}: {e}", dir.display()));
    let mut devs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| err(&e))? {
        let entry = entry.map_err(|e| err(&e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        devs.push(
            parse_pci_name(&name).ok_or_else(|| err(&format!("{name:?} is not a PCI address")))?,
        );
    }
    Ok(devs)
}

/// `seg:bus:dev.fn` in hex (the function decimal, as libxl's sscanf), into Xen's layout.
fn parse_pci_name(name: &str) -> Option<PhysdevPciDevice> {
    let mut parts = name.splitn(3, ':');
    let seg = u32::from_str_radix(parts.next()?, 16).ok()?;
    let bus = u32::from_str_radix(parts.next()?, 16).ok()?;
    let (dev, func) = parts.next()?.split_once('.')?;
    let dev = u32::from_str_radix(dev, 16).ok()?;
    let func: u32 = func.parse().ok()?;
    Some(PhysdevPciDevice {
        seg: (seg & 0xffff) as u16,
        bus: (bus & 0xff) as u8,
        devfn: (((dev & 0x1f) << 3) | (func & 7)) as u8,
    })
}

/// `pvbuild info [-n] [NAME]`. As xl's `main_info`, NAME is ignored with `-n` (xl sets its
/// filter only when `-n` is not given).
pub fn info_cmd(name: Option<&str>, numa: bool) -> Result<String, CommandError> {
    let name = if numa { None } else { name };
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
    let mut out = render(&lines, name);
    if numa {
        let pci = xen.pci_topology(&sysfs_pci_devices(std::path::Path::new(
            "/sys/bus/pci/devices",
        ))?)?;
        out.push_str(&topology_text(&xen.cpu_topology()?, &pci));
        out.push_str(&numa_text(&xen.numa_info()?));
    }
    lines.clear();
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
    out.push_str(&render(&lines, name));
    Ok(out)
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
    fn topology_as_xl_prints_it() {
        let cpu = |core, socket, node| CpuTopo { core, socket, node };
        let pci = |devfn, node| PciNode {
            seg: 0,
            bus: 0,
            devfn,
            node,
        };
        // printf("%3d:    %4d     %4d     %4d\n", ...); the offline cpu 1 left out.
        let t = topology_text(
            &[
                cpu(Some(0), Some(0), Some(0)),
                cpu(None, None, None),
                cpu(Some(1), Some(0), None),
            ],
            &[pci(0x1f << 3 | 2, Some(0)), pci(8, None)],
        );
        assert_eq!(
            t,
            "cpu_topology           :\n\
             cpu:    core    socket     node\n  \
             0:       0        0        0\n  \
             2:       1        0       -1\n\
             device topology        :\n\
             device           node\n\
             0000:00:1f.2      0\n"
        );
        let none = topology_text(&[], &[pci(8, None)]);
        assert!(none.ends_with("device           node\nNo device topology data available\n"));
    }

    #[test]
    fn numa_as_xl_prints_it() {
        let n = NodeInfo {
            size: Some(3 << 30),
            free: Some(1 << 30),
            dists: vec![Some(10), None],
        };
        let gone = NodeInfo {
            size: None,
            free: None,
            dists: vec![],
        };
        // printf("%4d:    %6"PRIu64"     %6"PRIu64"      %d", ...) then ",%d" per distance.
        assert_eq!(
            numa_text(&[n, gone]),
            "numa_info              :\nnode:    memsize    memfree    distances\n   \
             0:      3072       1024      10,-1\n"
        );
    }

    #[test]
    fn pci_names_as_libxl_reads_them() {
        let d = parse_pci_name("0000:00:1f.3").unwrap_or_default();
        assert_eq!((d.seg, d.bus, d.devfn), (0, 0, 0x1f << 3 | 3));
        let d = parse_pci_name("0001:3a:02.0").unwrap_or_default();
        assert_eq!((d.seg, d.bus, d.devfn), (1, 0x3a, 0x10));
        assert!(parse_pci_name("garbage").is_none());
        assert!(parse_pci_name("0000:00:1f").is_none());
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

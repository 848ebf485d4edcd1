//! `pvbuild vcpu-list` as `xl vcpu-list` prints it (tools/xl/xl_vcpu.c): per vcpu its
//! domain, the cpu it is on, its state (`r` running, `b` blocked, `p` offline), its cpu
//! time and its hard and soft affinity in xl's notation (`all`, `0-3,5`, `none`); and
//! `pvbuild dmesg`, the hypervisor's console ring as `xl dmesg` prints it.

use crate::commands::CommandError;
use crate::xen::{CpuMap, VcpuInfo, Xen};
use crate::xenstore::{self, XsConnection};

/// xl's `print_bitmap` of cpus `0..width`: `all` when every one is set, else ranges.
pub fn bitmap(map: &CpuMap, width: u32) -> String {
    let set: Vec<u32> = (0..width).filter(|&c| map.contains(c)).collect();
    if set.is_empty() {
        return "none".into();
    }
    if set.len() as u64 == u64::from(width) {
        return "all".into();
    }
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some(&first) = set.get(i) {
        let mut last = first;
        while set.get(i + 1) == Some(&(last + 1)) {
            last += 1;
            i += 1;
        }
        out.push(if last > first {
            format!("{first}-{last}")
        } else {
            first.to_string()
        });
        i += 1;
    }
    out.join(",")
}

/// The header line.
pub fn header() -> String {
    format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}\n",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)"
    )
}

/// One vcpu's line.
pub fn line(name: &str, domid: u16, vcpu: u32, v: &VcpuInfo, aff: (&str, &str)) -> String {
    let mut s = format!("{name:<32} {domid:>5} {vcpu:>5}");
    if v.online {
        s.push_str(&format!(
            "{:>5} {:>3}{}- ",
            v.cpu,
            if v.running { 'r' } else { '-' },
            if v.blocked { 'b' } else { '-' }
        ));
    } else {
        s.push_str(&format!("{:>5} {:>3}{}p ", '-', '-', '-'));
    }
    // xl divides a float.
    s.push_str(&format!(
        "{:>9.1}  {} / {}\n",
        v.cpu_time as f32 / 1e9,
        aff.0,
        aff.1
    ));
    s
}

/// `pvbuild vcpu-list [DOMAIN...]`.
pub fn vcpu_list_cmd(domains: &[String]) -> Result<String, CommandError> {
    let xen = Xen::open()?;
    let width = xen.physinfo()?.max_cpu_id.saturating_add(1);
    let infos = if domains.is_empty() {
        xen.list_domains()?
    } else {
        domains
            .iter()
            .map(|d| {
                let id = crate::commands::lookup_any(d)?;
                xen.domain_info(id)
                    .map_err(|_| CommandError::Usage(format!("domain '{d}' does not exist")))
            })
            .collect::<Result<_, _>>()?
    };
    let names = match XsConnection::open() {
        Ok(xs) => xenstore::list_domains(&xs).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut out = header();
    for d in infos {
        let name = names
            .iter()
            .find(|e| e.domid == u32::from(d.domid))
            .and_then(|e| e.name.clone())
            .unwrap_or_else(|| "(null)".into());
        for vcpu in 0..=d.max_vcpu_id {
            let v = xen.vcpu_info(d.domid, vcpu)?;
            let (hard, soft) = xen.vcpu_affinity(d.domid, vcpu, width)?;
            out.push_str(&line(
                &name,
                d.domid,
                vcpu,
                &v,
                (&bitmap(&hard, width), &bitmap(&soft, width)),
            ));
        }
    }
    Ok(out)
}

/// `pvbuild dmesg [-c]`: the hypervisor's console ring as it is (lossy UTF-8).
pub fn dmesg_cmd(clear: bool) -> Result<String, CommandError> {
    let xen = Xen::open()?;
    let bytes = xen.read_console(clear)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_as_xl_prints_them() {
        assert_eq!(bitmap(&CpuMap::all(4), 4), "all");
        assert_eq!(bitmap(&CpuMap::empty(4), 4), "none");
        assert_eq!(bitmap(&CpuMap::from_cpus(8, [0, 1, 2, 3, 5]), 8), "0-3,5");
        assert_eq!(bitmap(&CpuMap::from_cpus(8, [1, 3, 4]), 8), "1,3-4");
        // A map wider than the host: only the host's cpus count.
        assert_eq!(bitmap(&CpuMap::all(64), 2), "all");
    }

    #[test]
    fn lines_as_xl_prints_them() {
        // printf("%-32s %5s %5s %5s %5s %9s %s\n", ...)
        assert_eq!(
            header(),
            "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)\n"
        );
        let on = VcpuInfo {
            online: true,
            blocked: true,
            running: false,
            cpu_time: 1_260_000_000,
            cpu: 1,
        };
        // "%-32s %5u %5u" "%5u %3c%c- " "%9.1f  " hard " / " soft
        assert_eq!(
            line("Domain-0", 0, 0, &on, ("all", "all")),
            "Domain-0                             0     0    1   -b-       1.3  all / all\n"
        );
        let off = VcpuInfo {
            online: false,
            ..on
        };
        assert_eq!(
            line("g", 3, 1, &off, ("0", "all")),
            "g                                    3     1    -   --p       1.3  0 / all\n"
        );
    }
}

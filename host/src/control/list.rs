//! `pvbuild list` as `xl list` prints it (tools/xl/xl_info.c, `list_domains`): the same
//! header, columns, tabs and state letters, one domain or all, `-v` (UUID, shutdown reason
//! code, security label), and `-l`: each domain's configuration as libxl stored it (its
//! `libxl-json` userdata), in xl's `[{"domid": N, "config": {...}}]` form.

use std::path::{Path, PathBuf};

use crate::commands::CommandError;
use crate::xen::{DomainInfo, Xen};
use crate::xenstore::{self, XsConnection};

/// xl's shutdown reason letters, by `SHUTDOWN_*` code (`shutdown_reason_letters`): the fifth
/// state column. Poweroff (0) shows as `-`: `---s--` is a guest that powered off.
const REASON_LETTERS: &[u8; 6] = b"-rscwS";

/// What `list` shows of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The name in xenstore (`None`: printed `(null)`, as glibc prints a NULL `%s`).
    pub name: Option<String>,
    /// The domain's info.
    pub info: DomainInfo,
}

/// The six state letters: running, blocked, paused, shut down, the shutdown reason, dying.
pub fn state(d: &DomainInfo) -> String {
    let reason = if d.shutdown() { d.shutdown_reason() } else { 0 };
    let letter = REASON_LETTERS
        .get(reason as usize)
        .map_or('?', |&b| char::from(b));
    [
        if d.running() { 'r' } else { '-' },
        if d.blocked() { 'b' } else { '-' },
        if d.paused() { 'p' } else { '-' },
        if d.shutdown() { 's' } else { '-' },
        letter,
        if d.dying() { 'd' } else { '-' },
    ]
    .iter()
    .collect()
}

/// The domain's UUID as libxl prints it.
pub fn uuid(d: &DomainInfo) -> String {
    uuid::Uuid::from_bytes(d.handle).hyphenated().to_string()
}

/// The table, as `xl list [-v]` prints it.
pub fn render(rows: &[Row], verbose: bool) -> String {
    let mut out =
        String::from("Name                                        ID   Mem VCPUs\tState\tTime(s)");
    if verbose {
        out.push_str("   UUID                            Reason-Code\tSecurity Label");
    }
    out.push('\n');
    for r in rows {
        let d = &r.info;
        // libxl: current_memkb = tot_pages * 4, outstanding likewise; xl prints MiB.
        let mem = (d.tot_pages.saturating_add(d.outstanding_pages)).saturating_mul(4) / 1024;
        // xl divides a float: the same rounding here.
        let time = d.cpu_time as f32 / 1e9;
        out.push_str(&format!(
            "{:<40} {:>5} {:>5} {:>5}     {}  {:>8.1}",
            r.name.as_deref().unwrap_or("(null)"),
            d.domid,
            mem,
            d.nr_online_vcpus,
            state(d),
            time
        ));
        if verbose {
            out.push(' ');
            out.push_str(&uuid(d));
            if d.shutdown() {
                out.push_str(&format!(" {:>8x}", d.shutdown_reason()));
            } else {
                out.push_str(&format!(" {:>8}", "-"));
            }
            // No XSM on this Xen: no label (libxl's ssid_label is NULL).
            out.push_str(&format!(" {:>16}", "-"));
        }
        out.push('\n');
    }
    out
}

/// Where libxl keeps a domain's configuration (`libxl__userdata_path`: XEN_LIB_DIR
/// `/userdata-d.<domid>.<uuid>.libxl-json`).
pub fn userdata_path(dir: &Path, d: &DomainInfo) -> PathBuf {
    dir.join(format!("userdata-d.{}.{}.libxl-json", d.domid, uuid(d)))
}

/// libxl's `XEN_LIB_DIR` on Debian.
pub const XEN_LIB_DIR: &str = "/var/lib/xen";

/// `xl list -l`: for each domain whose configuration libxl stored, `{"domid", "config"}`;
/// a domain without one is left out, as xl leaves it out. (xl also refreshes the stored
/// config from xenstore: memory, vcpus and devices; this prints it as stored.)
pub fn render_long(dir: &Path, infos: &[DomainInfo]) -> Result<String, CommandError> {
    let mut all = Vec::new();
    for d in infos {
        let path = userdata_path(dir, d);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CommandError::Usage(format!("{}: {e}", path.display()))),
        };
        // libxl stores the string with its terminating NUL (libxl_internal.c,
        // `strlen(d_config_json) + 1`).
        let end = text
            .iter()
            .rposition(|&b| b != 0 && !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let text = text.get(..end).unwrap_or(&[]);
        // Checked, then kept as libxl wrote it (its key order too).
        serde_json::from_slice::<serde_json::Value>(text)
            .map_err(|e| CommandError::Usage(format!("{}: not JSON: {e}", path.display())))?;
        let text = String::from_utf8_lossy(text);
        all.push(format!(
            "    {{\n        \"domid\": {},\n        \"config\": {}\n    }}",
            d.domid,
            text.trim().replace('\n', "\n        ")
        ));
    }
    if all.is_empty() {
        return Ok("[]\n".into());
    }
    Ok(format!("[\n{}\n]\n", all.join(",\n")))
}

/// `pvbuild list [-l] [-v] [DOMAIN]`.
pub fn list_cmd(domain: Option<&str>, long: bool, verbose: bool) -> Result<String, CommandError> {
    let xen = Xen::open()?;
    let infos = match domain {
        Some(target) => {
            let domid = crate::commands::lookup_any(target)?;
            vec![xen
                .domain_info(domid)
                .map_err(|_| CommandError::Usage(format!("domain '{target}' does not exist")))?]
        }
        None => xen.list_domains()?,
    };
    if long {
        return render_long(Path::new(XEN_LIB_DIR), &infos);
    }
    let names: Vec<xenstore::DomainEntry> = match XsConnection::open() {
        Ok(xs) => xenstore::list_domains(&xs).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let rows: Vec<Row> = infos
        .into_iter()
        .map(|info| Row {
            name: names
                .iter()
                .find(|e| e.domid == u32::from(info.domid))
                .and_then(|e| e.name.clone()),
            info,
        })
        .collect();
    Ok(render(&rows, verbose))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(domid: u16, flags: u32) -> DomainInfo {
        DomainInfo {
            domid,
            flags,
            tot_pages: 0x8000,
            max_pages: 0x8000,
            outstanding_pages: 0,
            shared_info_frame: 0,
            cpu_time: 12_345_678_901,
            nr_online_vcpus: 2,
            max_vcpu_id: 1,
            handle: [0x11; 16],
            cpupool: 0,
        }
    }

    // XEN_DOMINF_* (xen/include/public/domctl.h): dying 1<<0, hvm 1<<1, shutdown 1<<2,
    // paused 1<<3, blocked 1<<4, running 1<<5; the shutdown code at bit 16.
    const SHUTDOWN: u32 = 1 << 2;
    const PAUSED: u32 = 1 << 3;
    const BLOCKED: u32 = 1 << 4;
    const RUNNING: u32 = 1 << 5;
    const fn code(c: u32) -> u32 {
        c << 16
    }

    #[test]
    fn state_letters_are_xls() {
        assert_eq!(state(&info(1, RUNNING)), "r-----");
        assert_eq!(state(&info(1, BLOCKED)), "-b----");
        assert_eq!(state(&info(1, BLOCKED | PAUSED)), "-bp---");
        // Powered off, rebooting, suspended, crashed, watchdog, soft reset.
        assert_eq!(state(&info(1, SHUTDOWN | code(0))), "---s--");
        assert_eq!(state(&info(1, SHUTDOWN | code(1))), "---sr-");
        assert_eq!(state(&info(1, SHUTDOWN | code(2))), "---ss-");
        assert_eq!(state(&info(1, SHUTDOWN | code(3))), "---sc-");
        assert_eq!(state(&info(1, SHUTDOWN | code(4))), "---sw-");
        assert_eq!(state(&info(1, SHUTDOWN | code(5))), "---sS-");
        assert_eq!(state(&info(1, 1 | SHUTDOWN | code(3))), "---scd");
    }

    #[test]
    fn long_is_the_stored_config_in_xls_wrapper() {
        let dir = std::env::temp_dir().join(format!("pvbuild-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (info(3, RUNNING), info(4, RUNNING));
        std::fs::write(
            userdata_path(&dir, &a),
            // As libxl writes it: with the string's NUL.
            "{\n    \"c_info\": {\n        \"name\": \"a\"\n    }\n}\n\0",
        )
        .unwrap();
        let out = render_long(&dir, &[a, b]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{ "domid": 3, "config": { "c_info": { "name": "a" } } }])
        );
        assert_eq!(render_long(&dir, &[b]).unwrap(), "[]\n");
        std::fs::write(userdata_path(&dir, &b), "{ not json").unwrap();
        assert!(render_long(&dir, &[b]).is_err());
    }

    #[test]
    fn table_is_xls_with_its_tabs() {
        let rows = [
            Row {
                name: Some("Domain-0".into()),
                info: info(0, RUNNING),
            },
            Row {
                name: None,
                info: info(7, SHUTDOWN | code(3)),
            },
        ];
        // printf("%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f", ...)
        assert_eq!(
            render(&rows, false),
            "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
             Domain-0                                     0   128     2     r-----      12.3\n\
             (null)                                       7   128     2     ---sc-      12.3\n"
        );
        let v = render(&rows, true);
        let mut lines = v.lines();
        assert_eq!(
            lines.next(),
            Some("Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label")
        );
        assert_eq!(
            lines.next(),
            Some("Domain-0                                     0   128     2     r-----      12.3 11111111-1111-1111-1111-111111111111        -                -")
        );
        assert_eq!(
            lines.next(),
            Some("(null)                                       7   128     2     ---sc-      12.3 11111111-1111-1111-1111-111111111111        3                -")
        );
    }
}

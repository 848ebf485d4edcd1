//! JSON as libxl prints it: an ordered tree (libxl_types.idl's field order, which
//! `serde_json`'s map does not keep) and yajl's beautified layout (`yajl_gen_beautify`,
//! four-space indent): `"key": value`, each member on its own line, an empty object or list
//! as an open line, a blank line and the close, and a newline after the document.

/// A JSON value with its members in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum J {
    /// An object: members in the order given.
    Obj(Vec<(String, J)>),
    /// A list.
    Arr(Vec<J>),
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

impl J {
    /// A string value.
    pub fn s(v: impl Into<String>) -> Self {
        J::Str(v.into())
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("    ");
    }
}

/// `yajl_string_encode` without `yajl_gen_escape_solidus`.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn value(out: &mut String, v: &J, depth: usize) {
    match v {
        J::Str(s) => string(out, s),
        J::Int(n) => out.push_str(&n.to_string()),
        J::Obj(members) => {
            out.push_str("{\n");
            for (i, (k, m)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, depth + 1);
                string(out, k);
                out.push_str(": ");
                value(out, m, depth + 1);
            }
            out.push('\n');
            indent(out, depth);
            out.push('}');
        }
        J::Arr(items) => {
            out.push_str("[\n");
            for (i, m) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                indent(out, depth + 1);
                value(out, m, depth + 1);
            }
            out.push('\n');
            indent(out, depth);
            out.push(']');
        }
    }
}

/// The document as libxl's yajl generator writes it, with its final newline.
pub fn render(v: &J) -> String {
    let mut out = String::new();
    value(&mut out, v, 0);
    out.push('\n');
    out
}

/// libxl_types.idl's field order for the records pvbuild writes (Xen 4.17): the
/// domain config, `c_info`, `b_info` and its parts, a disk, a nic.
fn idl_order(context: &str) -> &'static [&'static str] {
    match context {
        "" => &[
            "c_info",
            "b_info",
            "disks",
            "nics",
            "pcidevs",
            "rdms",
            "dtdevs",
            "vfbs",
            "vkbs",
            "vtpms",
            "p9s",
            "pvcallsifs",
            "vdispls",
            "vsnds",
            "channels",
            "usbctrls",
            "usbdevs",
            "on_poweroff",
            "on_reboot",
            "on_watchdog",
            "on_crash",
            "on_soft_reset",
        ],
        "c_info" => &[
            "type",
            "hap",
            "oos",
            "ssidref",
            "ssid_label",
            "name",
            "domid",
            "uuid",
            "xsdata",
            "platformdata",
            "poolid",
            "pool_name",
            "run_hotplug_scripts",
            "driver_domain",
            "passthrough",
            "xend_suspend_evtchn_compat",
        ],
        "b_info" => &[
            "max_vcpus",
            "avail_vcpus",
            "cpumap",
            "nodemap",
            "vcpu_hard_affinity",
            "vcpu_soft_affinity",
            "numa_placement",
            "tsc_mode",
            "max_memkb",
            "target_memkb",
            "video_memkb",
            "shadow_memkb",
            "iommu_memkb",
            "rtc_timeoffset",
            "exec_ssidref",
            "exec_ssid_label",
            "localtime",
            "disable_migrate",
            "cpuid",
            "blkdev_start",
            "vnuma_nodes",
            "max_grant_frames",
            "max_maptrack_frames",
            "max_grant_version",
            "device_model_version",
            "device_model_stubdomain",
            "stubdomain_memkb",
            "stubdomain_kernel",
            "stubdomain_cmdline",
            "stubdomain_ramdisk",
            "device_model",
            "device_model_ssidref",
            "device_model_ssid_label",
            "device_model_user",
            "extra",
            "extra_pv",
            "extra_hvm",
            "sched_params",
            "ioports",
            "irqs",
            "iomem",
            "claim_mode",
            "event_channels",
            "kernel",
            "cmdline",
            "ramdisk",
            "device_tree",
            "acpi",
            "bootloader",
            "bootloader_args",
            "timer_mode",
            "nested_hvm",
            "apic",
            "dm_restrict",
            "tee",
            "type.hvm",
            "type.pv",
            "type.pvh",
            "arch_arm",
            "arch_x86",
            "altp2m",
            "vmtrace_buf_kb",
            "vpmu",
            "bootloader_restrict",
            "bootloader_user",
        ],
        "sched_params" => &[
            "sched",
            "weight",
            "cap",
            "period",
            "slice",
            "latency",
            "extratime",
            "budget",
        ],
        "type.pv" => &[
            "kernel",
            "slack_memkb",
            "bootloader",
            "bootloader_args",
            "cmdline",
            "ramdisk",
            "features",
            "e820_host",
        ],
        "disks" => &[
            "backend_domid",
            "backend_domname",
            "pdev_path",
            "vdev",
            "backend",
            "format",
            "script",
            "removable",
            "readwrite",
            "is_cdrom",
            "direct_io_safe",
            "discard_enable",
            "specification",
            "transport",
            "irq",
            "unit",
            "colo_enable",
            "colo_restore_enable",
            "colo_host",
            "colo_port",
            "colo_export",
            "active_disk",
            "hidden_disk",
            "trusted",
        ],
        "nics" => &[
            "backend_domid",
            "backend_domname",
            "devid",
            "mtu",
            "model",
            "mac",
            "ip",
            "bridge",
            "ifname",
            "script",
            "nictype",
            "rate_bytes_per_interval",
            "rate_interval_usecs",
            "gatewaydev",
            "coloft_forwarddev",
            "trusted",
        ],
        _ => &[],
    }
}

/// `v` as an ordered tree: each object's members in libxl's IDL order for where it sits
/// (`context`: the member's name, a list's items taking the list's), members the table
/// does not know after those it does, alphabetically. Booleans and nulls (which libxl does
/// not write) become strings and are dropped, respectively.
pub fn ordered(v: &serde_json::Value, context: &str) -> J {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let order = idl_order(context);
            let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
            let mut keys: Vec<&String> = m
                .iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, _)| k)
                .collect();
            keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
            J::Obj(
                keys.into_iter()
                    .filter_map(|k| m.get(k.as_str()).map(|x| (k.clone(), ordered(x, k))))
                    .collect(),
            )
        }
        Value::Array(a) => J::Arr(a.iter().map(|x| ordered(x, context)).collect()),
        Value::String(s) => J::Str(s.clone()),
        Value::Number(n) => J::Int(
            n.as_i64()
                .unwrap_or_else(|| n.as_u64().map_or(0, |u| u as i64)),
        ),
        Value::Bool(b) => J::Str(if *b { "True" } else { "False" }.into()),
        Value::Null => J::Str(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of what libxl stored on real Xen (host/tests/data/xl-userdata/created.json),
    /// rebuilt as a tree: the same bytes.
    #[test]
    fn yajls_layout() {
        let v = J::Obj(vec![
            (
                "c_info".into(),
                J::Obj(vec![
                    ("type".into(), J::s("pv")),
                    ("name".into(), J::s("xlud")),
                    ("domid".into(), J::Int(4294967295)),
                ]),
            ),
            (
                "b_info".into(),
                J::Obj(vec![
                    ("max_vcpus".into(), J::Int(1)),
                    ("avail_vcpus".into(), J::Arr(vec![J::Int(0)])),
                    ("sched_params".into(), J::Obj(vec![])),
                ]),
            ),
            ("on_soft_reset".into(), J::s("soft_reset")),
        ]);
        let want = "{\n    \"c_info\": {\n        \"type\": \"pv\",\n        \"name\": \"xlud\",\n        \"domid\": 4294967295\n    },\n    \"b_info\": {\n        \"max_vcpus\": 1,\n        \"avail_vcpus\": [\n            0\n        ],\n        \"sched_params\": {\n\n        }\n    },\n    \"on_soft_reset\": \"soft_reset\"\n}\n";
        assert_eq!(render(&v), want);
        let stored = include_str!("../../../tests/data/xl-userdata/created.json");
        assert!(stored.starts_with("{\n    \"c_info\": {\n        \"type\": \"pv\",\n        \"name\": \"xlud\",\n        \"domid\": 4294967295,"));
        assert!(stored.contains("\"sched_params\": {\n\n        },"));
        assert!(stored.contains("\"avail_vcpus\": [\n            0\n        ],"));
        assert_eq!(
            render(&J::s("a\"b\\c\n\u{1}")),
            "\"a\\\"b\\\\c\\n\\u0001\"\n"
        );
        // libxl's stored config, reordered from serde's alphabetical map: its own bytes.
        let v: serde_json::Value = serde_json::from_str(stored).unwrap_or_default();
        assert_eq!(render(&ordered(&v, "")), stored);
        let attached = include_str!("../../../tests/data/xl-userdata/attached.json");
        let v: serde_json::Value = serde_json::from_str(attached).unwrap_or_default();
        assert_eq!(render(&ordered(&v, "")), attached);
    }
}

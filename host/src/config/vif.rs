//! `vif` entries: a PV guest's network interfaces, as xl's `parse_nic_config` reads them
//! (xl-network-configuration(5)): comma-separated `key=value` parameters, every one optional.

use std::fmt;

/// Most `vif` entries accepted (bounds the input; each is one netback interface in dom0).
pub const VIFS_MAX: usize = 64;
/// Longest interface name Linux accepts (`IFNAMSIZ` - 1), for `bridge=` and `vifname=`.
pub const IFNAME_MAX: usize = 15;

/// An Ethernet address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Xen's OUI, 00:16:3e: what libxl gives an interface without `mac=`.
    pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

    /// A random address in Xen's OUI, as libxl makes one (the fourth byte's top bit clear).
    pub fn random_xen(r: [u8; 3]) -> Self {
        let [a, b, c] = Self::XEN_OUI;
        Mac([a, b, c, r[0] & 0x7f, r[1], r[2]])
    }

    /// Parses six hexadecimal bytes separated by `:` (xl also accepts `-`).
    pub fn parse(s: &str) -> Option<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    /// A group (multicast or broadcast) address: no interface may have one.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl fmt::Display for Mac {
    /// `LIBXL_MAC_FMT`: lower-case, colon-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// One `vif` entry, with what pvbuild does with each key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VifSpec {
    /// `mac=`; `None`: a random address in Xen's OUI.
    pub mac: Option<Mac>,
    /// `bridge=` (libxl's default: `xenbr0`).
    pub bridge: Option<String>,
    /// `script=` (libxl's default: `vif-bridge`), absolute or under `/etc/xen/scripts`.
    pub script: Option<String>,
    /// `ip=`: passed to the script (vif-bridge's anti-spoofing rules use it).
    pub ip: Option<String>,
    /// `gatewaydev=` (deprecated `netdev=`): passed to the script.
    pub gatewaydev: Option<String>,
    /// `vifname=`: the backend interface's name instead of `vif<domid>.<devid>`.
    pub vifname: Option<String>,
    /// `mtu=` (libxl's default 1500).
    pub mtu: Option<u32>,
    /// `devid=`: the device number (default: the entry's position).
    pub devid: Option<u32>,
    /// `backend=`: the backend domain, if given.
    pub backend: Option<String>,
    /// `rate=`: netback's credit, as libxl computes it from `<rate>[@<interval>]`: bytes per
    /// interval, and the interval in microseconds.
    pub rate: Option<(u64, u32)>,
    /// `trusted=0` / `untrusted`: the frontend's `trusted` flag (default trusted).
    pub untrusted: bool,
    /// `type=`: `Some(true)` for `ioemu` (an emulated NIC beside the PV vif, libxl's
    /// `LIBXL_NIC_TYPE_VIF_IOEMU`), `Some(false)` for `vif` (PV only); `None`: libxl's default
    /// for the guest type (ioemu for HVM, vif otherwise).
    pub ioemu: Option<bool>,
    /// `model=`: the emulated NIC's model (libxl's default `rtl8139`); used only for an
    /// HVM guest's emulated NIC.
    pub model: Option<String>,
}

/// Parses one `vif` entry. Unknown keys are refused, as xl refuses them. Keys of emulated
/// or COLO interfaces are refused too (a PV guest has neither).
pub fn parse_vif_spec(spec: &str) -> Result<VifSpec, String> {
    let mut v = VifSpec::default();
    for token in spec.split(',') {
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        let (key, value) = match token.split_once('=') {
            Some((k, val)) => (k.trim(), val.trim()),
            None => match token {
                // Flags some configs carry.
                "untrusted" => {
                    v.untrusted = true;
                    continue;
                }
                "trusted" => {
                    v.untrusted = false;
                    continue;
                }
                t => return Err(format!("unrecognized argument {t:?}")),
            },
        };
        let ifname = |what: &str| -> Result<Option<String>, String> {
            if value.is_empty()
                || value.len() > IFNAME_MAX
                || value == "."
                || value == ".."
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!("invalid {what} {value:?}"));
            }
            Ok(Some(value.to_owned()))
        };
        match key {
            // Whether the guest type may have an emulated NIC is the config's to check
            // (`DomainConfig::from_xl`), as libxl's `libxl__device_nic_setdefault` does.
            "type" => match value {
                "vif" => v.ioemu = Some(false),
                "ioemu" => v.ioemu = Some(true),
                t => return Err(format!("invalid type {t:?}")),
            },
            "mac" => {
                let m = Mac::parse(value).ok_or_else(|| format!("invalid mac {value:?}"))?;
                if m.is_multicast() {
                    return Err(format!("mac {m} is a multicast address"));
                }
                v.mac = Some(m);
            }
            "bridge" => v.bridge = ifname("bridge")?,
            "netdev" | "gatewaydev" => v.gatewaydev = ifname(key)?,
            "vifname" => v.vifname = ifname("vifname")?,
            "ip" => v.ip = Some(value.to_owned()),
            "script" => {
                if value.is_empty() {
                    return Err("empty script".into());
                }
                v.script = Some(value.to_owned())
            }
            "backend" => v.backend = Some(value.to_owned()),
            "rate" => v.rate = Some(parse_rate(value)?),
            "mtu" => {
                v.mtu = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|m| (68..=65535).contains(m))
                        .ok_or_else(|| format!("invalid mtu {value:?} (68..=65535)"))?,
                )
            }
            "devid" => {
                v.devid = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|d| *d < 1 << 16)
                        .ok_or_else(|| format!("invalid devid {value:?}"))?,
                )
            }
            "trusted" => match value {
                "1" => v.untrusted = false,
                "0" => v.untrusted = true,
                t => return Err(format!("invalid trusted {t:?}")),
            },
            // An emulated NIC's model: meaningless for PV, as libxl ignores it there (an HVM
            // guest's is checked with the device model's arguments).
            "model" => {
                if value.is_empty() {
                    return Err("empty model".into());
                }
                v.model = Some(value.to_owned())
            }
            "accel" => {}
            k if k == "forwarddev" || k.starts_with("colo_") => {
                return Err(format!("{k}: COLO is not supported"))
            }
            k => return Err(format!("unrecognized argument {k:?}")),
        }
    }
    Ok(v)
}

/// `strtoull(s, &end, 0)` over ASCII digits: octal after a leading `0`, else decimal; the
/// value (saturated) and the rest of the string.
fn strtoull0(s: &str) -> (u64, &str) {
    let radix = if s.len() > 1 && s.starts_with('0') {
        8
    } else {
        10
    };
    let end = s.find(|c: char| !c.is_digit(radix)).unwrap_or(s.len());
    let (digits, rest) = s.split_at(end);
    let v = digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(u64::from(radix))
            .saturating_add(u64::from(b - b'0'))
    });
    (v, rest)
}

/// libxlu's `xlu_vif_parse_rate`: `<n>[GMK]{B,b}/s` (bits are divided by 8) optionally
/// followed by `@<n>[m|u][s]` (the replenishment interval; default 50 ms), into bytes per
/// interval and the interval in microseconds, with its overflow checks.
pub fn parse_rate(rate: &str) -> Result<(u64, u32), String> {
    let (amount, interval) = match rate.split_once('@') {
        Some((a, i)) => (a, Some(i)),
        None => (rate, None),
    };
    if amount.is_empty() {
        return Err(format!("no rate specified in {rate:?}"));
    }
    // ^[0-9]+[GMK]?[Bb]/s$
    let digits_end = amount
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(amount.len());
    let unit = amount.get(digits_end..).unwrap_or_default();
    let unit_ok = matches!(
        unit.strip_suffix("/s").map(|u| u.as_bytes()),
        Some([b'B' | b'b'] | [b'G' | b'M' | b'K', b'B' | b'b'])
    );
    if digits_end == 0 || !unit_ok {
        return Err(format!("invalid rate {amount:?}"));
    }
    let (n, rest) = strtoull0(amount);
    if n == 0 || n > u64::from(u32::MAX) {
        return Err(format!("rate overflow in {amount:?}"));
    }
    let rest = rest.as_bytes();
    let mut bytes_per_sec = match rest.first() {
        Some(b'G') => n * 1_000_000_000,
        Some(b'M') => n * 1_000_000,
        Some(b'K') => n * 1_000,
        _ => n,
    };
    if rest.first() == Some(&b'b') || rest.get(1) == Some(&b'b') {
        bytes_per_sec /= 8;
    }
    let mut usecs: u32 = 50_000;
    if let Some(i) = interval {
        // ^[0-9]+[mu]?s?$
        let d_end = i.find(|c: char| !c.is_ascii_digit()).unwrap_or(i.len());
        let suffix = i.get(d_end..).unwrap_or_default();
        if d_end == 0 || !matches!(suffix, "" | "s" | "m" | "ms" | "u" | "us") {
            return Err(format!("invalid replenishment interval {i:?}"));
        }
        let (t, rest) = strtoull0(i);
        if t == 0 || t > u64::from(u32::MAX) {
            return Err(format!("replenishment interval overflow in {i:?}"));
        }
        let t = match rest.as_bytes().first() {
            None | Some(b's') => t * 1_000_000,
            Some(b'm') => t * 1_000,
            _ => t,
        };
        usecs =
            u32::try_from(t).map_err(|_| format!("replenishment interval overflow in {i:?}"))?;
    }
    let bytes_per_interval = bytes_per_sec
        .checked_mul(u64::from(usecs))
        .ok_or_else(|| format!("rate overflow in {rate:?}"))?
        / 1_000_000;
    Ok((bytes_per_interval, usecs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let v = parse_vif_spec(
            " mac=00:16:3E:74:3d:76 , bridge=xenbr1,script=vif-route,ip=10.0.0.2 10.0.0.3,\
             gatewaydev=eth0,vifname=web0,mtu=9000,devid=3,backend=0,rate=10Mb/s,model=e1000,untrusted",
        )
        .unwrap();
        assert_eq!(
            v,
            VifSpec {
                mac: Some(Mac([0x00, 0x16, 0x3e, 0x74, 0x3d, 0x76])),
                bridge: Some("xenbr1".into()),
                script: Some("vif-route".into()),
                ip: Some("10.0.0.2 10.0.0.3".into()),
                gatewaydev: Some("eth0".into()),
                vifname: Some("web0".into()),
                mtu: Some(9000),
                devid: Some(3),
                backend: Some("0".into()),
                rate: Some((62_500, 50_000)),
                untrusted: true,
                ioemu: None,
                model: Some("e1000".into()),
            }
        );
        assert_eq!(parse_vif_spec("").unwrap(), VifSpec::default());
        assert_eq!(
            parse_vif_spec("netdev=eth1,trusted=1").unwrap().gatewaydev,
            Some("eth1".into())
        );
    }

    #[test]
    fn refuses_what_xl_refuses_or_a_pv_guest_cannot_have() {
        for bad in [
            "mac=00:16:3e:74:3d",
            "mac=00:16:3e:74:3d:76:01",
            "mac=00:16:3e:74:3d:zz",
            "mac=00:16:3e:74:3d:100",
            "mac=01:00:5e:00:00:01",
            "type=tap",
            "bridge=",
            "bridge=a-name-longer-than-15",
            "bridge=br/0",
            "vifname=..",
            "mtu=0",
            "mtu=70000",
            "mtu=x",
            "devid=-1",
            "devid=70000",
            "trusted=2",
            "script=",
            "colo_sock_mirror_id=1",
            "forwarddev=eth0",
            "frobnicate=1",
            "bare",
        ] {
            assert!(parse_vif_spec(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rates_as_libxlu_computes_them() {
        // xl-network-configuration(5)'s examples, and the units.
        assert_eq!(parse_rate("10Mb/s"), Ok((62_500, 50_000)));
        assert_eq!(parse_rate("10MB/s@20ms"), Ok((200_000, 20_000)));
        assert_eq!(parse_rate("1GB/s@1s"), Ok((1_000_000_000, 1_000_000)));
        assert_eq!(parse_rate("800Kb/s@500us"), Ok((50, 500)));
        assert_eq!(parse_rate("100B/s@2"), Ok((200, 2_000_000)));
        assert_eq!(parse_rate("8b/s@1s"), Ok((1, 1_000_000)));
        // strtoull's base 0: a leading 0 is octal.
        assert_eq!(parse_rate("010B/s@1s"), Ok((8, 1_000_000)));
        for bad in [
            "",
            "@20ms",
            "10",
            "10M/s",
            "10Mb",
            "Mb/s",
            "0Mb/s",
            "4294967296B/s",
            "10Mb/s@",
            "10Mb/s@0ms",
            "10Mb/s@5000s",
            "10Mb/s@20ks",
            "10Mb/s@x",
            "-1Mb/s",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
        // The largest rate and interval: no overflow, an error.
        assert!(parse_rate("4294967295GB/s@4294967295us").is_err());
    }

    #[test]
    fn macs_print_as_libxl_writes_them() {
        let m = Mac::parse("0-16-3E-a-b-c").unwrap();
        assert_eq!(m.to_string(), "00:16:3e:0a:0b:0c");
        let r = Mac::random_xen([0xff, 0x12, 0x34]);
        assert_eq!(r.to_string(), "00:16:3e:7f:12:34");
        assert!(!r.is_multicast());
    }
}

//! Where a domain runs: xl's `pool`, `cpus`, `cpus_soft`, `cpu_weight` and `cap`.
//!
//! Three stages, as xl and libxl split them:
//!
//! 1. parsing ([`CpuSpec::parse`], used by [`crate::config`]): xl's cpu-list syntax
//!    (`xl_parse.c`'s `parse_cpurange`): items joined by `,`, each `all`, a cpu `N` or a range
//!    `N-M`, a leading `^` removing instead of adding. NUMA node items (`node:`/`nodes:`) are
//!    refused: pvbuild does not read the host's NUMA topology.
//! 2. resolving against the host ([`resolve`]), before any domain exists, so that a config
//!    the host cannot honour is refused with nothing to undo: the pool by name (libxl's
//!    `libxl_name_to_cpupoolid`: the pools `XEN_SYSCTL_cpupool_op` lists, named by xenstore's
//!    `/local/pool/<id>/name`, pool 0 being `Pool-0` when unnamed), every cpu named must exist,
//!    each vcpu's hard affinity must meet the pool's cpus and its soft affinity must meet both
//!    (Xen would otherwise run the vcpu with no soft preference: less than asked), and a weight
//!    or cap needs a pool whose scheduler has them (credit or credit2; libxl 4.17 silently
//!    ignores them under null, arinc653 and rtds: pvbuild refuses), with libxl's ranges
//!    (weight 1..=65535, cap 0..=100 × vcpus).
//! 3. applying ([`apply`], a step of [`crate::build::pv::create`] right after the vcpus are set):
//!    each vcpu's hard and soft affinity in one `XEN_DOMCTL_setvcpuaffinity` (libxl's
//!    `libxl_set_vcpuaffinity`, from `libxl__build_pre`), then the weight and cap by
//!    `XEN_DOMCTL_scheduler_op` getinfo, changed fields, putinfo (libxl's
//!    `sched_credit_domain_set` / `sched_credit2_domain_set`). The pool itself is chosen at
//!    `XEN_DOMCTL_createdomain` (`cpupool_id`), as libxl 4.17 does.

use std::fmt;

use crate::xen::{CpuMap, SchedCredit, Scheduler, Xen, XenError, CPUS_MAX};

/// Longest cpu list accepted, in items.
pub const CPU_ITEMS_MAX: usize = 256;

/// One item of a cpu list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuItem {
    /// `all`: every cpu of the host.
    All,
    /// `N-M` (or `N`): add, or remove after `^`.
    Range { first: u32, last: u32, remove: bool },
}

/// A cpu list in xl's syntax (`"all"`, `"3"`, `"0-3,5,^1"`), parsed but not yet resolved
/// against a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSpec {
    items: Vec<CpuItem>,
    text: String,
}

/// A cpu number: decimal digits only (xl's `strtoul(.., 10)` with nothing after it, without
/// the signs and spaces strtoul would also take), below [`CPUS_MAX`].
fn cpu_number(s: &str, whole: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid cpu range {whole:?}"));
    }
    match s.parse::<u32>() {
        Ok(n) if n < CPUS_MAX => Ok(n),
        _ => Err(format!(
            "cpu {s} is above the largest cpu id {}",
            CPUS_MAX - 1
        )),
    }
}

impl CpuSpec {
    /// Parses a cpu list.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        // strtok_r: empty items between commas are skipped.
        for raw in text.split(',').filter(|p| !p.is_empty()) {
            if items.len() >= CPU_ITEMS_MAX {
                return Err(format!("more than {CPU_ITEMS_MAX} items in a cpu list"));
            }
            let (remove, body) = match raw.strip_prefix('^') {
                Some(b) => (true, b),
                None => (false, raw),
            };
            if body.starts_with("node:") || body.starts_with("nodes:") {
                return Err(format!(
                    "{raw:?}: NUMA node items are not supported by pvbuild (name the cpus)"
                ));
            }
            if body == "all" {
                if remove {
                    return Err("can't combine \"^\" and \"all\"".into());
                }
                items.push(CpuItem::All);
                continue;
            }
            let (first, last) = match body.split_once('-') {
                Some((a, b)) => (cpu_number(a, raw)?, cpu_number(b, raw)?),
                None => {
                    let n = cpu_number(body, raw)?;
                    (n, n)
                }
            };
            if last < first {
                return Err(format!("invalid cpu range {raw:?}"));
            }
            items.push(CpuItem::Range {
                first,
                last,
                remove,
            });
        }
        if items.is_empty() {
            return Err(format!("empty cpu list {text:?}"));
        }
        Ok(Self {
            items,
            text: text.to_owned(),
        })
    }

    /// The list as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cpus it names on a host whose cpu maps are `width` wide (cpus `0..width`).
    /// A cpu the host does not have is an error (xl would drop it silently).
    pub fn resolve(&self, width: u32) -> Result<CpuMap, String> {
        let mut map = CpuMap::empty(width);
        for item in &self.items {
            match *item {
                CpuItem::All => map = CpuMap::all(width),
                CpuItem::Range {
                    first,
                    last,
                    remove,
                } => {
                    if last >= map.width() {
                        return Err(format!(
                            "cpu {last} does not exist (this host has cpus 0-{})",
                            map.width().saturating_sub(1)
                        ));
                    }
                    for c in first..=last {
                        if remove {
                            map.remove(c);
                        } else {
                            map.insert(c);
                        }
                    }
                }
            }
        }
        Ok(map)
    }
}

/// An affinity as `cpus`/`cpus_soft` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affinity {
    /// A string: the same cpus for every vcpu.
    All(CpuSpec),
    /// A list: entry N for vcpu N; vcpus past its end keep Xen's default (every cpu), and
    /// entries past the last vcpu are ignored, as xl does.
    PerVcpu(Vec<CpuSpec>),
}

impl Affinity {
    /// The spec for vcpu `vcpu`, if any.
    pub fn for_vcpu(&self, vcpu: u32) -> Option<&CpuSpec> {
        match self {
            Affinity::All(s) => Some(s),
            Affinity::PerVcpu(l) => l.get(vcpu as usize),
        }
    }
}

/// The placement keys of a config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// `pool`: the cpupool's name.
    pub pool: Option<String>,
    /// `cpus`: hard affinity.
    pub hard: Option<Affinity>,
    /// `cpus_soft`: soft affinity.
    pub soft: Option<Affinity>,
    /// `cpu_weight`.
    pub weight: Option<u16>,
    /// `cap`.
    pub cap: Option<u16>,
}

/// One vcpu's affinity to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuAffinity {
    /// The vcpu.
    pub vcpu: u32,
    /// Hard affinity (`None`: Xen's default, every cpu of the pool).
    pub hard: Option<CpuMap>,
    /// Soft affinity (`None`: Xen's default).
    pub soft: Option<CpuMap>,
}

/// A [`Placement`] resolved against the host: what [`apply`] sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The pool id, for `XEN_DOMCTL_createdomain`.
    pub pool_id: u32,
    /// The pool's scheduler (when known).
    pub scheduler: Option<Scheduler>,
    /// Vcpus with an affinity to set.
    pub affinity: Vec<VcpuAffinity>,
    /// `cpu_weight`, checked against the scheduler.
    pub weight: Option<u16>,
    /// `cap`, checked against the scheduler and the vcpus.
    pub cap: Option<u16>,
}

impl Resolved {
    /// Nothing asked: pool 0, Xen's defaults.
    pub const NONE: Resolved = Resolved {
        pool_id: 0,
        scheduler: None,
        affinity: Vec::new(),
        weight: None,
        cap: None,
    };
}

/// Why a placement cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The key's value cannot be honoured on this host.
    #[error("{key}: {msg}")]
    Key {
        /// The config key.
        key: &'static str,
        /// Why.
        msg: String,
    },
    /// Asking the hypervisor failed.
    #[error("{key}: {source}")]
    Xen {
        /// The config key being honoured.
        key: &'static str,
        /// The failure.
        source: XenError,
    },
}

fn key_err(key: &'static str, msg: impl Into<String>) -> PlacementError {
    PlacementError::Key {
        key,
        msg: msg.into(),
    }
}

fn xen_err(key: &'static str) -> impl Fn(XenError) -> PlacementError {
    move |source| PlacementError::Xen { key, source }
}

/// libxl's `libxl__cpupoolid_to_name`: the name xenstore gives the pool, `Pool-0` for an
/// unnamed pool 0.
pub fn pool_name(id: u32, from_xenstore: Option<String>) -> Option<String> {
    match from_xenstore {
        Some(n) => Some(n),
        None if id == 0 => Some("Pool-0".into()),
        None => None,
    }
}

/// The xenstore path of a pool's name.
pub fn pool_name_path(id: u32) -> String {
    format!("/local/pool/{id}/name")
}

struct Names<'a>(&'a [(u32, String)]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (_, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

/// Resolves `p` for a domain of `max_vcpus` vcpus against the host: `read_name(id)` reads
/// xenstore's `/local/pool/<id>/name`. Nothing is asked of Xen when `p` asks nothing.
pub fn resolve(
    xen: &Xen,
    read_name: impl Fn(u32) -> Result<Option<String>, String>,
    p: &Placement,
    max_vcpus: u32,
) -> Result<Resolved, PlacementError> {
    if *p == Placement::default() {
        return Ok(Resolved::NONE);
    }
    let pools = xen.cpupools().map_err(xen_err("pool"))?;
    let pool = match &p.pool {
        None => pools
            .iter()
            .find(|q| q.id == 0)
            .ok_or_else(|| key_err("pool", "this host has no Pool-0"))?,
        Some(name) => {
            let mut named = Vec::new();
            for q in &pools {
                let n = read_name(q.id).map_err(|e| {
                    key_err("pool", format!("reading {}: {e}", pool_name_path(q.id)))
                })?;
                if let Some(n) = pool_name(q.id, n) {
                    named.push((q.id, n));
                }
            }
            let id = named
                .iter()
                .find(|(_, n)| n == name)
                .map(|(id, _)| *id)
                .ok_or_else(|| {
                    key_err(
                        "pool",
                        format!(
                            "no cpupool named {name:?} (this host has: {})",
                            Names(&named)
                        ),
                    )
                })?;
            pools
                .iter()
                .find(|q| q.id == id)
                .ok_or_else(|| key_err("pool", format!("cpupool {id} vanished")))?
        }
    };
    let width = pool.cpus.width();
    let pool_desc = || match &p.pool {
        Some(n) => format!("pool {n:?}"),
        None => "Pool-0".to_owned(),
    };
    if pool.cpus.is_empty() && (p.hard.is_some() || p.soft.is_some()) {
        return Err(key_err(
            if p.hard.is_some() {
                "cpus"
            } else {
                "cpus_soft"
            },
            format!("{} has no cpus", pool_desc()),
        ));
    }

    let mut affinity = Vec::new();
    for vcpu in 0..max_vcpus {
        let resolve_one = |key: &'static str, a: &Option<Affinity>| {
            a.as_ref()
                .and_then(|a| a.for_vcpu(vcpu))
                .map(|s| {
                    s.resolve(width)
                        .map_err(|m| key_err(key, format!("{:?}: {m}", s.text())))
                })
                .transpose()
        };
        let hard = resolve_one("cpus", &p.hard)?;
        let soft = resolve_one("cpus_soft", &p.soft)?;
        let in_pool = |m: &CpuMap| m.cpus().any(|c| pool.cpus.contains(c));
        if let Some(h) = &hard {
            if !in_pool(h) {
                return Err(key_err(
                    "cpus",
                    format!(
                        "vcpu {vcpu}: cpus {h} are not in {} (cpus {})",
                        pool_desc(),
                        pool.cpus
                    ),
                ));
            }
        }
        if let Some(s) = &soft {
            let usable = s
                .cpus()
                .any(|c| pool.cpus.contains(c) && hard.as_ref().is_none_or(|h| h.contains(c)));
            if !usable {
                return Err(key_err(
                    "cpus_soft",
                    format!(
                        "vcpu {vcpu}: cpus {s} have none in {} (cpus {}){}: Xen would drop the soft affinity",
                        pool_desc(),
                        pool.cpus,
                        hard.as_ref().map_or(String::new(), |h| format!(" and the hard affinity ({h})"))
                    ),
                ));
            }
        }
        if hard.is_some() || soft.is_some() {
            affinity.push(VcpuAffinity { vcpu, hard, soft });
        }
    }

    if p.weight.is_some() || p.cap.is_some() {
        let key = if p.weight.is_some() {
            "cpu_weight"
        } else {
            "cap"
        };
        if !pool.scheduler.has_weight_and_cap() {
            return Err(key_err(
                key,
                format!(
                    "{} runs the {} scheduler, which has no weight or cap (only credit and credit2 do)",
                    pool_desc(),
                    pool.scheduler
                ),
            ));
        }
    }
    if p.weight == Some(0) {
        return Err(key_err(
            "cpu_weight",
            "0 is out of range, valid values are 1 to 65535",
        ));
    }
    if let Some(cap) = p.cap {
        let max = u64::from(max_vcpus) * 100;
        if u64::from(cap) > max {
            return Err(key_err(
                "cap",
                format!("{cap} is out of range, valid range is 0 to {max} for {max_vcpus} vcpus"),
            ));
        }
    }
    Ok(Resolved {
        pool_id: pool.id,
        scheduler: Some(pool.scheduler),
        affinity,
        weight: p.weight,
        cap: p.cap,
    })
}

/// Applies `r` to the new domain `domid` (paused, its vcpus set).
pub fn apply(xen: &Xen, domid: u16, r: &Resolved) -> Result<(), PlacementError> {
    for a in &r.affinity {
        let key = if a.hard.is_some() {
            "cpus"
        } else {
            "cpus_soft"
        };
        xen.set_vcpu_affinity(domid, a.vcpu, a.hard.as_ref(), a.soft.as_ref())
            .map_err(xen_err(key))?;
    }
    if r.weight.is_none() && r.cap.is_none() {
        return Ok(());
    }
    let key = if r.weight.is_some() {
        "cpu_weight"
    } else {
        "cap"
    };
    let sched = r
        .scheduler
        .ok_or_else(|| key_err(key, "the pool's scheduler is unknown"))?;
    let cur = xen.sched_credit(domid, sched).map_err(xen_err(key))?;
    let new = SchedCredit {
        weight: r.weight.unwrap_or(cur.weight),
        cap: r.cap.unwrap_or(cur.cap),
    };
    xen.set_sched_credit(domid, sched, new)
        .map_err(xen_err(key))
}

#[cfg(test)]
mod tests;

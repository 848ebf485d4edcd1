//! A running guest's memory target (`xl mem-set`): libxl's `libxl_set_memory_target` with
//! `enforce`, for a PV guest.
//!
//! The guest's balloon driver watches `/local/domain/N/memory/target` (KiB) and gives pages
//! back to Xen, or takes them again, until it holds that much. The toolstack checks the new
//! target against `memory/static-max` (the config's `maxmem`, what the guest was built to
//! address), sets Xen's limit for the domain to the target plus videoram plus
//! `LIBXL_MAXMEM_CONSTANT` (so the guest cannot take more than it was given), and writes the
//! target (and `/vm/<uuid>/memory` in MiB, as libxl does).
//!
//! `xl mem-max` (`libxl_domain_setmaxmem`) only moves Xen's limit: to the size asked plus
//! `LIBXL_MAXMEM_CONSTANT`, never below the current target; `memory/static-max` is left as it
//! is, as libxl leaves it.

use thiserror::Error;

use crate::build::runner::MAXMEM_SLACK_KIB;
use crate::xen::Xen;
use crate::xenstore::{dom_path, uuid_of_vm_path, vm_path, XsConnection, XsError};

/// A target that cannot be set.
#[derive(Debug, Error)]
pub enum MemError {
    /// Not a size xl accepts.
    #[error("memory size {0:?}: a number with an optional unit b, k, m (the default), g or t")]
    BadSize(String),
    /// A node the guest was built with is missing or unreadable.
    #[error("domain {domid}: {node}: {what}")]
    Node {
        /// The domain.
        domid: u32,
        /// The node.
        node: String,
        /// What is wrong with it.
        what: String,
    },
    /// Above what the guest was built for (libxl: "memory_dynamic_max must be less than or
    /// equal to memory_static_max").
    #[error("domain {domid}: target {target_kib} KiB is above the guest's maximum (maxmem) of {max_kib} KiB")]
    AboveMax {
        /// The domain.
        domid: u32,
        /// The asked target.
        target_kib: u64,
        /// `memory/static-max`.
        max_kib: u64,
    },
    /// A maximum below the current target (libxl: "memory_static_max must be greater than
    /// or equal to memory_dynamic_max").
    #[error(
        "domain {domid}: maximum {max_kib} KiB is below the memory target of {target_kib} KiB"
    )]
    BelowTarget {
        /// The domain.
        domid: u32,
        /// The asked maximum.
        max_kib: u64,
        /// `memory/target`.
        target_kib: u64,
    },
    /// Xen refused the new limit.
    #[error("domain {domid}: setting Xen's memory limit to {kib} KiB: {msg}")]
    MaxMem {
        /// The domain.
        domid: u32,
        /// The limit.
        kib: u64,
        /// Xen's answer.
        msg: String,
    },
    /// Xenstore failed.
    #[error("domain {0}: xenstore: {1}")]
    Xs(u32, XsError),
}

/// xl's `parse_mem_size_kb`: a decimal number and at most one unit letter (`b`, `k`, `m`, `g`,
/// `t`, either case; none means MiB), in KiB. `None` for anything else, or a size that does
/// not fit.
pub fn parse_size_kib(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let shift_up = |k: u32| n.checked_mul(1u64.checked_shl(k)?);
    match unit.to_ascii_lowercase().as_str() {
        "" | "m" => shift_up(10),
        "k" => Some(n),
        "g" => shift_up(20),
        "t" => shift_up(30),
        "b" => Some(n >> 10),
        _ => None,
    }
}

/// What the new target comes to (libxl's arithmetic): the asked size less videoram, which
/// must not be above `static_max`. Returns the target to write, in KiB.
pub fn new_target_kib(
    domid: u32,
    asked_kib: u64,
    videoram_kib: u64,
    static_max_kib: u64,
) -> Result<u64, MemError> {
    let target = asked_kib.saturating_sub(videoram_kib);
    if target > static_max_kib {
        return Err(MemError::AboveMax {
            domid,
            target_kib: target,
            max_kib: static_max_kib,
        });
    }
    Ok(target)
}

fn read_kib(
    t: &crate::xenstore::Transaction<'_>,
    domid: u32,
    node: &str,
) -> Result<Result<Option<u64>, MemError>, XsError> {
    let path = format!("{}/{node}", dom_path(domid));
    Ok(match t.read_opt(&path)? {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| MemError::Node {
                domid,
                node: path,
                what: format!("{v:?} is not a number of KiB"),
            }),
    })
}

/// A memory node every domain a toolstack built has, missing from `domid`'s.
fn missing_node(domid: u32, node: &str) -> MemError {
    MemError::Node {
        domid,
        node: format!("{}/{node}", dom_path(domid)),
        what: "missing (not a domain a toolstack built?)".into(),
    }
}

/// Sets `domid`'s memory target to `asked_kib` (as `xl mem-set`); returns the target written.
pub fn set_target(
    xs: &XsConnection,
    xen: &Xen,
    domid: u16,
    asked_kib: u64,
) -> Result<u64, MemError> {
    let id = u32::from(domid);
    let outcome = xs.with_transaction(|t| {
        // The current target is not needed (no relative sizes), but a domain without one
        // is not one a toolstack built, as for libxl.
        match read_kib(t, id, "memory/target")? {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(Err(missing_node(id, "memory/target"))),
            Err(e) => return Ok(Err(e)),
        }
        let max = match read_kib(t, id, "memory/static-max")? {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Err(missing_node(id, "memory/static-max"))),
            Err(e) => return Ok(Err(e)),
        };
        let videoram = match read_kib(t, id, "memory/videoram")? {
            Ok(v) => v.unwrap_or(0),
            Err(e) => return Ok(Err(e)),
        };
        let new = match new_target_kib(id, asked_kib, videoram, max) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        // enforce: the guest may not take more than its target.
        let limit = new
            .saturating_add(videoram)
            .saturating_add(MAXMEM_SLACK_KIB);
        if let Err(e) = xen.max_mem(domid, limit) {
            return Ok(Err(MemError::MaxMem {
                domid: id,
                kib: limit,
                msg: e.to_string(),
            }));
        }
        t.write(&format!("{}/memory/target", dom_path(id)), &new.to_string())?;
        if let Some(uuid) = t
            .read_opt(&format!("{}/vm", dom_path(id)))?
            .and_then(|v| uuid_of_vm_path(&v))
        {
            t.write(
                &format!("{}/memory", vm_path(&uuid)),
                &(new / 1024).to_string(),
            )?;
        }
        Ok(Ok(new))
    });
    match outcome {
        Ok(r) => r,
        Err(e) => Err(MemError::Xs(id, e)),
    }
}

/// Sets Xen's memory limit for `domid` to `max_kib` plus the slack libxl adds (as
/// `xl mem-max`), once `max_kib` is found to be no less than the guest's `memory/target`.
/// Returns the limit given to Xen, in KiB.
pub fn set_max(xs: &XsConnection, xen: &Xen, domid: u16, max_kib: u64) -> Result<u64, MemError> {
    let id = u32::from(domid);
    let target = xs
        .with_transaction(|t| read_kib(t, id, "memory/target"))
        .map_err(|e| MemError::Xs(id, e))??
        .ok_or_else(|| missing_node(id, "memory/target"))?;
    if max_kib < target {
        return Err(MemError::BelowTarget {
            domid: id,
            max_kib,
            target_kib: target,
        });
    }
    let limit = max_kib.saturating_add(MAXMEM_SLACK_KIB);
    xen.max_mem(domid, limit).map_err(|e| MemError::MaxMem {
        domid: id,
        kib: limit,
        msg: e.to_string(),
    })?;
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_xl_parses_them() {
        assert_eq!(parse_size_kib("256"), Some(256 * 1024));
        assert_eq!(parse_size_kib("256m"), Some(256 * 1024));
        assert_eq!(parse_size_kib("256M"), Some(256 * 1024));
        assert_eq!(parse_size_kib("131072k"), Some(131072));
        assert_eq!(parse_size_kib("2g"), Some(2 * 1024 * 1024));
        assert_eq!(parse_size_kib("1t"), Some(1024 * 1024 * 1024));
        assert_eq!(parse_size_kib("1048576b"), Some(1024));
        for bad in [
            "",
            "m",
            "12mb",
            "-5",
            "1.5g",
            "0x10",
            "5 x",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size_kib(bad), None, "{bad:?}");
        }
        // No overflow: refused, not wrapped.
        assert_eq!(parse_size_kib(&format!("{}t", u64::MAX >> 10)), None);
    }

    #[test]
    fn the_target_is_checked_against_static_max_after_videoram() {
        assert_eq!(new_target_kib(3, 131072, 0, 262144).unwrap(), 131072);
        assert_eq!(new_target_kib(3, 262144, 0, 262144).unwrap(), 262144);
        assert_eq!(new_target_kib(3, 270336, 8192, 262144).unwrap(), 262144);
        assert!(matches!(
            new_target_kib(3, 262145, 0, 262144),
            Err(MemError::AboveMax {
                domid: 3,
                target_kib: 262145,
                max_kib: 262144
            })
        ));
        assert_eq!(new_target_kib(3, 4, 8192, 262144).unwrap(), 0);
    }

    /// A domain on the fake Xen with the memory nodes libxl (and pvbuild) write for 256 MiB.
    fn guest() -> (
        std::sync::Arc<crate::xen::fake::FakeXen>,
        Xen,
        crate::xenstore::fake::FakeXenstore,
        u16,
    ) {
        use crate::xen::fake::{FakeConfig, FakeXen};
        let f = std::sync::Arc::new(FakeXen::new(FakeConfig::default()).unwrap());
        let xen = Xen::with_backend(f.clone());
        let d = xen
            .create_domain(&crate::xen::DomainConfig::pv(1, 2), None)
            .unwrap();
        xen.max_mem(d, 262144 + MAXMEM_SLACK_KIB).unwrap();
        let store = crate::xenstore::fake::FakeXenstore::new();
        let xs = store.connect();
        let home = dom_path(u32::from(d));
        xs.write(&format!("{home}/memory/static-max"), "262144")
            .unwrap();
        xs.write(&format!("{home}/memory/target"), "262144")
            .unwrap();
        xs.write(&format!("{home}/memory/videoram"), "0").unwrap();
        xs.write(
            &format!("{home}/vm"),
            "/vm/6f1d2a2e-5b7c-4e1a-9c3d-2b4f6a8e0c11",
        )
        .unwrap();
        (f, xen, store, d)
    }

    #[test]
    fn a_new_target_sets_xens_limit_the_target_and_the_vm_memory() {
        let (f, xen, store, d) = guest();
        let xs = store.connect();
        assert_eq!(set_target(&xs, &xen, d, 131072).unwrap(), 131072);
        let home = dom_path(u32::from(d));
        assert_eq!(xs.read(&format!("{home}/memory/target")).unwrap(), "131072");
        assert_eq!(
            xs.read("/vm/6f1d2a2e-5b7c-4e1a-9c3d-2b4f6a8e0c11/memory")
                .unwrap(),
            "128"
        );
        assert_eq!(f.domain(d).unwrap().max_kib, 131072 + MAXMEM_SLACK_KIB);
        // Back up to the maximum.
        assert_eq!(set_target(&xs, &xen, d, 262144).unwrap(), 262144);
        assert_eq!(f.domain(d).unwrap().max_kib, 262144 + MAXMEM_SLACK_KIB);
    }

    #[test]
    fn above_static_max_or_without_the_nodes_nothing_changes() {
        let (f, xen, store, d) = guest();
        let xs = store.connect();
        let home = dom_path(u32::from(d));
        assert!(matches!(
            set_target(&xs, &xen, d, 262144 + 4),
            Err(MemError::AboveMax { .. })
        ));
        assert_eq!(xs.read(&format!("{home}/memory/target")).unwrap(), "262144");
        assert_eq!(f.domain(d).unwrap().max_kib, 262144 + MAXMEM_SLACK_KIB);
        xs.write(&format!("{home}/memory/static-max"), "lots")
            .unwrap();
        let e = set_target(&xs, &xen, d, 1024).unwrap_err();
        assert!(e.to_string().contains("\"lots\" is not a number"), "{e}");
        xs.rm(&format!("{home}/memory")).unwrap();
        let e = set_target(&xs, &xen, d, 1024).unwrap_err();
        assert!(e.to_string().contains("memory/target: missing"), "{e}");
        assert_eq!(f.domain(d).unwrap().max_kib, 262144 + MAXMEM_SLACK_KIB);
    }

    #[test]
    fn mem_max_moves_only_xens_limit_and_not_below_the_target() {
        let (f, xen, store, d) = guest();
        let xs = store.connect();
        let home = dom_path(u32::from(d));
        assert_eq!(set_target(&xs, &xen, d, 131072).unwrap(), 131072);
        assert_eq!(
            set_max(&xs, &xen, d, 204800).unwrap(),
            204800 + MAXMEM_SLACK_KIB
        );
        assert_eq!(f.domain(d).unwrap().max_kib, 204800 + MAXMEM_SLACK_KIB);
        // Above the config's maxmem is Xen's business, as with libxl; static-max stays.
        set_max(&xs, &xen, d, 524288).unwrap();
        assert_eq!(f.domain(d).unwrap().max_kib, 524288 + MAXMEM_SLACK_KIB);
        assert_eq!(
            xs.read(&format!("{home}/memory/static-max")).unwrap(),
            "262144"
        );
        assert_eq!(xs.read(&format!("{home}/memory/target")).unwrap(), "131072");
        // Below the target: refused, the limit unchanged.
        assert!(matches!(
            set_max(&xs, &xen, d, 131068),
            Err(MemError::BelowTarget {
                max_kib: 131068,
                target_kib: 131072,
                ..
            })
        ));
        assert_eq!(f.domain(d).unwrap().max_kib, 524288 + MAXMEM_SLACK_KIB);
        set_max(&xs, &xen, d, 131072).unwrap();
        assert_eq!(f.domain(d).unwrap().max_kib, 131072 + MAXMEM_SLACK_KIB);
        xs.rm(&format!("{home}/memory")).unwrap();
        let e = set_max(&xs, &xen, d, 262144).unwrap_err();
        assert!(e.to_string().contains("memory/target: missing"), "{e}");
    }
}

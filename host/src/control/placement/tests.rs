//! The cpu-list syntax, and placement resolved and applied against the fake hypervisor.

use std::sync::Arc;

use super::*;
use crate::sys::sched::{XEN_SCHEDULER_CREDIT, XEN_SCHEDULER_CREDIT2, XEN_SCHEDULER_NULL};
use crate::xen::fake::{FakeConfig, FakePool, FakeXen};
use crate::xen::DomainConfig;

fn cpus(spec: &str, width: u32) -> Result<Vec<u32>, String> {
    Ok(CpuSpec::parse(spec)?.resolve(width)?.cpus().collect())
}

#[test]
fn cpu_lists_as_xl_reads_them() {
    assert_eq!(cpus("all", 4), Ok(vec![0, 1, 2, 3]));
    assert_eq!(cpus("3", 4), Ok(vec![3]));
    assert_eq!(cpus("0-3,5,^1", 8), Ok(vec![0, 2, 3, 5]));
    assert_eq!(cpus("all,^0", 3), Ok(vec![1, 2]));
    assert_eq!(cpus("^1,0-2", 4), Ok(vec![0, 1, 2]), "items apply in order");
    assert_eq!(
        cpus("1,,2,", 4),
        Ok(vec![1, 2]),
        "empty items are skipped (strtok)"
    );
    assert_eq!(cpus("2-2", 4), Ok(vec![2]));
    for bad in [
        "", ",", "^all", "3-1", "a", "1-", "-1", "+1", " 1", "1 ", "0x1", "1-2-3", "4096",
    ] {
        assert!(CpuSpec::parse(bad).is_err(), "{bad:?} parsed");
    }
    let e = CpuSpec::parse("nodes:0").unwrap_err();
    assert!(e.contains("NUMA node"), "{e}");
    assert!(CpuSpec::parse("^node:1").is_err());
    // A cpu the host does not have is an error, not silently dropped as xl does.
    let e = cpus("0-2", 2).unwrap_err();
    assert_eq!(e, "cpu 2 does not exist (this host has cpus 0-1)");
    let long = vec!["1"; CPU_ITEMS_MAX + 1].join(",");
    assert!(CpuSpec::parse(&long).is_err());
}

#[test]
fn cpu_maps_print_as_xl_does() {
    let m = CpuMap::from_cpus(16, [0, 1, 2, 3, 5, 9, 10]);
    assert_eq!(m.to_string(), "0-3,5,9-10");
    assert_eq!(CpuMap::empty(4).to_string(), "none");
    assert_eq!(m.as_bytes(), &[0b0010_1111, 0b0000_0110]);
    assert!(!CpuMap::from_cpus(2, [5]).contains(5));
}

fn host(pools: Vec<FakePool>) -> (Arc<FakeXen>, Xen) {
    let f = Arc::new(
        FakeXen::new(FakeConfig {
            nr_cpus: 4,
            pools,
            ..FakeConfig::default()
        })
        .unwrap(),
    );
    let x = Xen::with_backend(f.clone());
    (f, x)
}

fn two_pools() -> Vec<FakePool> {
    vec![
        FakePool {
            id: 0,
            sched_id: XEN_SCHEDULER_CREDIT2,
            cpus: 0b0001,
        },
        FakePool {
            id: 7,
            sched_id: XEN_SCHEDULER_CREDIT,
            cpus: 0b0110,
        },
        FakePool {
            id: 9,
            sched_id: XEN_SCHEDULER_NULL,
            cpus: 0b1000,
        },
    ]
}

fn names(id: u32) -> Result<Option<String>, String> {
    Ok(match id {
        7 => Some("credit-pool".into()),
        9 => Some("null-pool".into()),
        _ => None,
    })
}

fn spec(s: &str) -> CpuSpec {
    CpuSpec::parse(s).unwrap()
}

#[test]
fn pools_are_found_by_their_xenstore_name() {
    let (f, x) = host(two_pools());
    let pools = x.cpupools().unwrap();
    assert_eq!(pools.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 7, 9]);
    assert_eq!(pools[1].scheduler, Scheduler::Credit);
    assert_eq!(pools[1].cpus.to_string(), "1-2");
    let p = |name: &str| Placement {
        pool: Some(name.into()),
        ..Placement::default()
    };
    assert_eq!(resolve(&x, names, &p("credit-pool"), 1).unwrap().pool_id, 7);
    assert_eq!(resolve(&x, names, &p("Pool-0"), 1).unwrap().pool_id, 0);
    let e = resolve(&x, names, &p("nope"), 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pool: no cpupool named \"nope\" (this host has: Pool-0, credit-pool, null-pool)"
    );
    let e = resolve(&x, |_| Err("xenstore gone".to_string()), &p("x"), 1).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("pool: reading /local/pool/0/name"),
        "{e}"
    );
    // Nothing asked, nothing read.
    let before = f.calls().len();
    assert_eq!(
        resolve(&x, names, &Placement::default(), 4).unwrap(),
        Resolved::NONE
    );
    assert_eq!(f.calls().len(), before);
    assert_eq!(f.live_buffers(), 0);
}

#[test]
fn affinity_outside_the_pool_or_host_is_refused_before_any_domain() {
    let (f, x) = host(two_pools());
    let r = |p: Placement| resolve(&x, names, &p, 2).map_err(|e| e.to_string());
    let e = r(Placement {
        pool: Some("credit-pool".into()),
        hard: Some(Affinity::All(spec("0,3"))),
        ..Placement::default()
    })
    .unwrap_err();
    assert_eq!(
        e,
        "cpus: vcpu 0: cpus 0,3 are not in pool \"credit-pool\" (cpus 1-2)"
    );
    let e = r(Placement {
        hard: Some(Affinity::All(spec("7"))),
        ..Placement::default()
    })
    .unwrap_err();
    assert_eq!(
        e,
        "cpus: \"7\": cpu 7 does not exist (this host has cpus 0-3)"
    );
    let e = r(Placement {
        hard: Some(Affinity::All(spec("0"))),
        soft: Some(Affinity::PerVcpu(vec![spec("0"), spec("1")])),
        ..Placement::default()
    })
    .unwrap_err();
    assert!(
        e.starts_with("cpus_soft: vcpu 1: cpus 1 have none in Pool-0"),
        "{e}"
    );
    // A list longer than the vcpus: the extra entries are ignored, as xl does.
    let ok = r(Placement {
        hard: Some(Affinity::PerVcpu(vec![spec("0"), spec("0"), spec("3")])),
        ..Placement::default()
    })
    .unwrap();
    assert_eq!(ok.affinity.len(), 2);
    assert!(f.domids().is_empty());
}

#[test]
fn weight_and_cap_need_credit_or_credit2_and_libxl_ranges() {
    let (_f, x) = host(two_pools());
    let r = |pool: &str, weight, cap, vcpus| {
        resolve(
            &x,
            names,
            &Placement {
                pool: Some(pool.into()),
                weight,
                cap,
                ..Placement::default()
            },
            vcpus,
        )
        .map_err(|e| e.to_string())
    };
    let e = r("null-pool", Some(512), None, 1).unwrap_err();
    assert_eq!(
        e,
        "cpu_weight: pool \"null-pool\" runs the null scheduler, which has no weight or cap (only credit and credit2 do)"
    );
    assert!(r("null-pool", None, Some(10), 1)
        .unwrap_err()
        .starts_with("cap: "));
    assert_eq!(
        r("credit-pool", None, Some(201), 2).unwrap_err(),
        "cap: 201 is out of range, valid range is 0 to 200 for 2 vcpus"
    );
    assert!(r("credit-pool", Some(0), None, 1).is_err());
    let ok = r("Pool-0", Some(65535), Some(200), 2).unwrap();
    assert_eq!(ok.scheduler, Some(Scheduler::Credit2));
}

#[test]
fn apply_sets_both_affinities_and_the_credit_parameters() {
    let (f, x) = host(two_pools());
    let p = Placement {
        pool: Some("credit-pool".into()),
        hard: Some(Affinity::All(spec("1-2"))),
        soft: Some(Affinity::PerVcpu(vec![spec("1"), spec("2")])),
        weight: Some(512),
        cap: Some(150),
    };
    let r = resolve(&x, names, &p, 2).unwrap();
    let mut cfg = DomainConfig::pv(2, 2);
    cfg.cpupool_id = r.pool_id;
    let d = x.create_domain(&cfg, None).unwrap();
    x.max_vcpus(d, 2).unwrap();
    apply(&x, d, &r).unwrap();
    assert_eq!(x.domain_info(d).unwrap().cpupool, 7);
    let width = x.cpu_map_width().unwrap();
    let (h0, s0) = x.vcpu_affinity(d, 0, width).unwrap();
    let (h1, s1) = x.vcpu_affinity(d, 1, width).unwrap();
    assert_eq!(
        (
            h0.to_string(),
            s0.to_string(),
            h1.to_string(),
            s1.to_string()
        ),
        ("1-2".into(), "1".into(), "1-2".into(), "2".into())
    );
    assert_eq!(
        x.sched_credit(d, Scheduler::Credit).unwrap(),
        SchedCredit {
            weight: 512,
            cap: 150
        }
    );
    // Only the weight: the cap keeps what Xen had (get, change, put, as libxl).
    let r2 = Resolved {
        weight: Some(100),
        cap: None,
        affinity: Vec::new(),
        ..r.clone()
    };
    apply(&x, d, &r2).unwrap();
    assert_eq!(
        x.sched_credit(d, Scheduler::Credit).unwrap(),
        SchedCredit {
            weight: 100,
            cap: 150
        }
    );
    // Xen's answer to the wrong scheduler is an error naming the key.
    let wrong = Resolved {
        scheduler: Some(Scheduler::Credit2),
        ..r2
    };
    let e = apply(&x, d, &wrong).unwrap_err().to_string();
    assert!(
        e.starts_with("cpu_weight: reading scheduler parameters"),
        "{e}"
    );
    assert_eq!(f.live_buffers(), 0);
}

#[test]
fn xen_refuses_a_hard_affinity_outside_the_pool() {
    let (_f, x) = host(two_pools());
    let mut cfg = DomainConfig::pv(1, 2);
    cfg.cpupool_id = 7;
    let d = x.create_domain(&cfg, None).unwrap();
    let e = x
        .set_vcpu_affinity(d, 0, Some(&CpuMap::from_cpus(4, [0])), None)
        .unwrap_err();
    assert!(matches!(
        e,
        XenError::Call {
            errno: nix::errno::Errno::EINVAL,
            ..
        }
    ));
    // A pool that does not exist: createdomain fails.
    let mut cfg = DomainConfig::pv(1, 2);
    cfg.cpupool_id = 5;
    assert!(x.create_domain(&cfg, None).is_err());
}

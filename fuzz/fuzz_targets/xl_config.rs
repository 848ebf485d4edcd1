//! The xl config file parser, the mapping of its keys to a domain configuration, each disk's
//! vdev to its device number, and the network interfaces with libxl's defaults applied.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = pvbuild::config::parse(data) {
        if let Ok((d, _)) = pvbuild::config::DomainConfig::from_xl(&cfg) {
            for a in [&d.placement.hard, &d.placement.soft].into_iter().flatten() {
                for vcpu in 0..d.max_vcpus.min(8) {
                    if let Some(s) = a.for_vcpu(vcpu) {
                        for width in [2, pvbuild::xen::CPUS_MAX] {
                            if let Ok(m) = s.resolve(width) {
                                assert!(m.cpus().all(|c| c < width));
                            }
                        }
                    }
                }
            }
            for v in d.disks.iter().filter_map(|disk| disk.vdev.as_deref()) {
                let _ = pvbuild::devices::disk::devid(v);
            }
            if let Ok(vifs) = pvbuild::devices::vif::plan_vifs(&d.vifs, || [1, 2, 3]) {
                for v in &vifs {
                    // Every planned interface has a unicast MAC in libxl's format.
                    let mac = pvbuild::config::Mac::parse(&v.mac).expect("planned MAC parses");
                    assert!(!mac.is_multicast(), "multicast MAC {mac}");
                    assert_eq!(mac.to_string(), v.mac);
                }
            }
        }
    }
});

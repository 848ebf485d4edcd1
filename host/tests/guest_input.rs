//! What pvbuild does with xenstore nodes a guest can write (docs/guest-input.md). The fake
//! does not enforce permissions: a guest's own writes are made here over dom0's connection,
//! limited to what the guest may do on real oxenstored (tests/xen/scenarios/guest-reach.sh
//! shows which on real Xen: it owns its frontend directories and may remove them).

// Test code: panicking on unexpected results is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, UNIX_EPOCH};

use pvbuild::xenstore::fake::FakeXenstore;
use pvbuild::xenstore::{
    add_vbd, add_vif, vbd_devids, vif_devids, write_new_domain, DomainXsError, GuestKind,
    NewDomain, Ring, Uuid, Vbd, VbdBackend, Vif,
};

fn vif(devid: u32) -> Vif {
    Vif {
        devid,
        mac: format!("00:16:3e:12:34:{devid:02x}"),
        bridge: "xenbr0".into(),
        script: "/etc/xen/scripts/vif-bridge".into(),
        ip: None,
        gatewaydev: None,
        vifname: None,
        rate: None,
        mtu: 1500,
        trusted: true,
        model: None,
    }
}

fn vbd(devid: u32, vdev: &str) -> Vbd {
    Vbd {
        backend: VbdBackend::Qdisk,
        devid,
        vdev: vdev.into(),
        params: "aio:/tmp/disk.img".into(),
        readonly: false,
        discard: true,
        trusted: true,
    }
}

fn domain(domid: u32) -> NewDomain {
    NewDomain {
        stub_console_output: None,
        domid,
        name: "guest".into(),
        uuid: Uuid::parse_str("6b1c3bd2-0b1f-4c32-9d3c-1f6a4c2b9e01").unwrap(),
        max_memkb: 262_144,
        target_memkb: 262_144,
        max_vcpus: 1,
        avail_vcpus: 1,
        store: Ring { mfn: 1, port: 1 },
        console: Ring { mfn: 2, port: 2 },
        backend_domid: 0,
        kernel: "/boot/vmlinuz".into(),
        ramdisk: None,
        cmdline: None,
        start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        disks: vec![vbd(51712, "xvda")],
        guest: GuestKind::Pv {
            protocol: "x86_64-abi",
        },
        vifs: vec![vif(0)],
    }
}

#[test]
fn a_guest_that_removes_its_frontends_keeps_its_devices_and_their_numbers() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    write_new_domain(&xs, &domain(3)).unwrap();
    // What the guest may do: its frontend directories are its own.
    xs.rm("/local/domain/3/device/vif/0").unwrap();
    xs.rm("/local/domain/3/device/vbd/51712").unwrap();
    // Still listed (block-list, block-detach, network-detach find them) ...
    assert_eq!(vif_devids(&xs, 3).unwrap(), [0]);
    assert_eq!(vbd_devids(&xs, 3).unwrap(), [51712]);
    // ... and their numbers still taken: an attach does not replace the live backend.
    assert!(matches!(
        add_vif(&xs, 3, 0, &vif(0)),
        Err(DomainXsError::DevidTaken(0))
    ));
    assert!(matches!(
        add_vbd(&xs, 3, 0, Some("x86_64-abi"), &vbd(51712, "xvda")),
        Err(DomainXsError::DevidTaken(51712))
    ));
    assert_eq!(
        xs.read("/local/domain/0/backend/vif/3/0/mac").unwrap(),
        "00:16:3e:12:34:00"
    );
    // A new number is still free.
    add_vif(&xs, 3, 0, &vif(1)).unwrap();
    assert_eq!(vif_devids(&xs, 3).unwrap(), [0, 1]);
}

#[test]
fn a_frontend_directory_without_dom0s_copy_is_not_a_device() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    write_new_domain(&xs, &domain(4)).unwrap();
    // A frontend entry dom0 did not write (on real Xen the guest cannot create one: the
    // `device` directory is dom0's; listing from /libxl makes that not matter).
    xs.write(
        "/local/domain/4/device/vbd/51728/backend",
        "/local/domain/0/backend/qdisk/4/51728",
    )
    .unwrap();
    xs.write("/local/domain/4/device/vif/7/backend", "/x")
        .unwrap();
    assert_eq!(vbd_devids(&xs, 4).unwrap(), [51712]);
    assert_eq!(vif_devids(&xs, 4).unwrap(), [0]);
}

/// libxl writes a disk frontend's `protocol` for PV guests only (`libxl__device_disk_add`):
/// a PVH guest's disks, at create and at attach, have none.
#[test]
fn a_pvh_guests_disks_have_no_protocol_node() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    let mut d = domain(5);
    d.guest = GuestKind::Pvh;
    write_new_domain(&xs, &d).unwrap();
    assert!(xs
        .read("/local/domain/5/device/vbd/51712/protocol")
        .is_err());
    assert_eq!(
        xs.read("/local/domain/5/device/vbd/51712/virtual-device")
            .unwrap(),
        "51712"
    );
    // And, as libxl__build_hvm: its type is pvh, and no /vm/<uuid>/image entries.
    assert_eq!(xs.read("/libxl/5/type").unwrap(), "pvh");
    let vm = xs.read("/local/domain/5/vm").unwrap();
    assert!(xs.read(&format!("{vm}/image/kernel")).is_err());
    assert!(xs.read(&format!("{vm}/start_time")).is_ok());
    add_vbd(&xs, 5, 0, None, &vbd(51728, "xvdb")).unwrap();
    assert!(xs
        .read("/local/domain/5/device/vbd/51728/protocol")
        .is_err());
    // A PV guest's have it.
    let mut pv = domain(6);
    pv.name = "pv-guest".into();
    pv.uuid = Uuid::parse_str("6b1c3bd2-0b1f-4c32-9d3c-1f6a4c2b9e06").unwrap();
    write_new_domain(&xs, &pv).unwrap();
    assert_eq!(xs.read("/libxl/6/type").unwrap(), "pv");
    let vm = xs.read("/local/domain/6/vm").unwrap();
    assert_eq!(
        xs.read(&format!("{vm}/image/kernel")).unwrap(),
        "/boot/vmlinuz"
    );
    assert_eq!(
        xs.read("/local/domain/6/device/vbd/51712/protocol")
            .unwrap(),
        "x86_64-abi"
    );
}

/// An HVM guest's base entries are libxl__build_hvm's too: its type is hvm and it has none of
/// the PV guest's `/vm/<uuid>/image/*` (`hvm::xenstore` writes its `image/ostype`).
#[test]
fn an_hvm_guest_is_typed_hvm_without_pv_image_entries() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    let mut d = domain(7);
    d.guest = GuestKind::Hvm;
    d.disks.clear();
    write_new_domain(&xs, &d).unwrap();
    assert_eq!(xs.read("/libxl/7/type").unwrap(), "hvm");
    let vm = xs.read("/local/domain/7/vm").unwrap();
    for e in ["ostype", "kernel", "ramdisk", "cmdline"] {
        assert!(xs.read(&format!("{vm}/image/{e}")).is_err(), "{e}");
    }
    assert!(xs.read(&format!("{vm}/start_time")).is_ok());
}

/// A device added to a domain whose directory is gone (destroyed while `network-attach` or
/// `block-attach` ran) is refused, and writes nothing: xenstored would otherwise make
/// `/local/domain/N` again as the parent of the frontend's entries.
#[test]
fn an_attach_to_a_destroyed_domain_writes_nothing() {
    let fake = FakeXenstore::new();
    let xs = fake.connect();
    write_new_domain(&xs, &domain(8)).unwrap();
    xs.rm("/local/domain/8").unwrap();
    xs.rm("/libxl/8").unwrap();
    xs.rm("/local/domain/0/backend").unwrap();
    assert!(matches!(
        add_vif(&xs, 8, 0, &vif(1)),
        Err(DomainXsError::Gone(8))
    ));
    assert!(matches!(
        add_vbd(&xs, 8, 0, None, &vbd(51728, "xvdb")),
        Err(DomainXsError::Gone(8))
    ));
    for gone in ["/local/domain/8", "/libxl/8", "/local/domain/0/backend"] {
        assert!(
            xs.read(gone).unwrap_err().is_not_found(),
            "{gone} came back"
        );
    }
}

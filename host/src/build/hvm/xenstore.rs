//! The xenstore entries an HVM guest has beyond a PV guest's ([`crate::xenstore`] writes
//! those first), as `libxl__domain_build` writes them for `LIBXL_DOMAIN_TYPE_HVM`: its
//! `platform/*` (what hvmloader reads to build the ACPI tables), the guest type under
//! `/vm/<uuid>/image/ostype`, the emulated clock's offset, and `memory/videoram`; and the
//! two `hvmloader/*` entries `libxl__spawn_local_dm` writes before it starts QEMU.

use crate::config::HvmGuest;
use crate::xenstore::{Uuid, XsConnection, XsError};

/// libxl's name of the device model (`libxl_device_model_version_to_string`).
pub const DEVICE_MODEL: &str = "qemu_xen";

/// The entries, as (path, value), for domain `domid` with UUID `uuid`.
pub fn entries(domid: u32, uuid: &Uuid, h: &HvmGuest) -> Vec<(String, String)> {
    let dom = format!("/local/domain/{domid}");
    let vm = format!("/vm/{}", uuid.hyphenated());
    let b = |v: bool| if v { "1" } else { "0" }.to_owned();
    vec![
        (format!("{vm}/image/ostype"), "hvm".into()),
        (format!("{vm}/rtc/timeoffset"), String::new()),
        (format!("{dom}/platform/acpi"), b(h.acpi)),
        (format!("{dom}/platform/acpi_s3"), b(h.acpi_s3)),
        (format!("{dom}/platform/acpi_s4"), b(h.acpi_s4)),
        (
            format!("{dom}/platform/acpi_laptop_slate"),
            b(h.acpi_laptop_slate),
        ),
        (format!("{dom}/platform/device-model"), DEVICE_MODEL.into()),
        (format!("{dom}/memory/videoram"), h.video_memkb.to_string()),
        // libxl__spawn_local_dm, before QEMU starts: what hvmloader reads.
        (format!("{dom}/hvmloader/bios"), "seabios".into()),
        (format!("{dom}/hvmloader/allow-memory-relocate"), "0".into()),
    ]
}

/// Writes [`entries`]; they go with the domain's other entries when it is removed.
pub fn write(xs: &XsConnection, domid: u32, uuid: &Uuid, h: &HvmGuest) -> Result<(), XsError> {
    for (path, value) in entries(domid, uuid, h) {
        xs.write(&path, &value)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn as_xl_wrote_them() {
        // tests/xen/reference/xl-xenstore-hvm-*.txt: xl's HVM guest with acpi defaults.
        let h = HvmGuest {
            acpi: true,
            apic: true,
            acpi_s3: true,
            acpi_s4: true,
            acpi_laptop_slate: false,
            video_memkb: 16384,
            stubdom: None,
            dm: crate::devmodel::hvm::HvmDm::from_xl(
                &crate::config::parse(b"vga = \"stdvga\"\nvnc = 0\n").unwrap(),
            )
            .unwrap(),
        };
        let u = Uuid::parse_str("c4f85c3c-f6a6-4c80-acf6-57fc79bcfa83").unwrap();
        let e = entries(1, &u, &h);
        let get = |p: &str| e.iter().find(|(k, _)| k == p).map(|(_, v)| v.as_str());
        assert_eq!(
            get("/vm/c4f85c3c-f6a6-4c80-acf6-57fc79bcfa83/image/ostype"),
            Some("hvm")
        );
        assert_eq!(get("/local/domain/1/platform/acpi"), Some("1"));
        assert_eq!(get("/local/domain/1/platform/acpi_laptop_slate"), Some("0"));
        assert_eq!(
            get("/local/domain/1/platform/device-model"),
            Some("qemu_xen")
        );
        assert_eq!(get("/local/domain/1/memory/videoram"), Some("16384"));
        assert_eq!(get("/local/domain/1/hvmloader/bios"), Some("seabios"));
        assert_eq!(
            get("/local/domain/1/hvmloader/allow-memory-relocate"),
            Some("0")
        );
    }
}

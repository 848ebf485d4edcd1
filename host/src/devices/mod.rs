//! A guest's devices and their backends in dom0, as libxl sets them up: disks on blkback or
//! on a device model's qdisk ([`disk`]), network interfaces on netback with their hotplug
//! scripts ([`vif`]), the console ([`console`]), the bootloader that reads a kernel out of a
//! guest's disk ([`bootloader`]), and the lock that serialises one domain's device changes
//! ([`domlock`]). The device model itself is [`crate::devmodel`].

pub mod bootloader;
pub mod console;
pub mod disk;
pub mod domlock;
pub mod vif;

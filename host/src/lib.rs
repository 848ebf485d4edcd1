//! pvbuild's host side: the core's page-access trait backed by `/dev/xen/privcmd`, the
//! hypercalls of a domain build, xenstore, the devices and the device model, guest control,
//! and the `pvbuild` commands.
//!
//! The modules, bottom up (DEVELOPERS.md, "The host tree", lists their files):
//! - [`sys`]: the raw ABI (structs checked against Xen's headers, ioctl numbers, the one raw
//!   `ioctl`);
//! - [`xen`]: safe hypercalls over hypercall buffers, foreign mappings as the core's
//!   `GuestMemory` ([`xen::privcmd_mem`]), this process's event channels ([`xen::evtchn`]);
//! - [`xenstore`]: the one interface to xenstored, and a new domain's entries;
//! - [`config`]: xl config files, their source, and the configuration as libxl stores it;
//! - [`plan`]: the inputs read and the core run without Xen (`pvbuild plan`);
//! - [`build`]: the domain build per guest type ([`build::pv`], [`build::pvh`],
//!   [`build::hvm`]), the shared step runner and undo stack, a whole domain made
//!   ([`build::domain`]), and the journal that undoes a killed create;
//! - [`devices`]: disks, network interfaces, the console, the bootloader;
//! - [`devmodel`]: QEMU as a PV guest's qdisk backend and as an HVM guest's device model;
//! - [`control`]: a running guest: shutdown, memory, placement, list, info, vcpu-list,
//!   dump-core;
//! - [`commands`]: the `pvbuild` subcommands `main.rs` dispatches to, one file per group;
//! - [`serve`]: the resident toolstack (`pvbuild serve`, `pvbuild client`): commands run in
//!   one long-lived process, requested over a Unix socket;
//! - [`support`]: the process's plumbing (output, logging, signals, helper processes, test
//!   hooks).

pub mod build;
pub mod commands;
pub mod config;
pub mod control;
pub mod devices;
pub mod devmodel;
pub mod plan;
pub mod serve;
pub mod support;
pub mod sys;
pub mod xen;
pub mod xenstore;

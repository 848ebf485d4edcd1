//! pvbuild's host side: the core's page-access trait backed by `/dev/xen/privcmd`, the
//! hypercalls of a PV build, xenstore, the console, and the `pvbuild` commands.
//!
//! Layers, bottom up: [`sys`] (ABI structs, ioctl numbers, the one raw `ioctl`), [`xen`]
//! (safe hypercall wrappers over hypercall buffers), [`xen::privcmd_mem`] (the core's
//! `GuestMemory` over foreign mappings), [`xenstore`], [`console`], [`config`] (xl config
//! files), [`placement`] (cpupool, vcpu affinity, scheduler weight and cap), [`create`] (a
//! whole domain build, undone on failure), [`plan`] (the core without Xen).

pub mod build;
pub mod commands;
pub mod config;
pub mod control;
pub mod devices;
pub mod devmodel;
pub mod manual;
pub mod plan;
pub mod support;
pub mod sys;
pub mod xen;
pub mod xenstore;

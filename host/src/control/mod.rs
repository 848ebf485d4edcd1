//! Guest control: what the commands do to a domain that runs. Asking it to shut down or
//! reboot ([`shutdown`]), its memory target ([`memory`]), where it runs ([`placement`]: pool,
//! cpus, scheduler weight and cap), what xl's `list`, `info` and `vcpu-list` print ([`list`],
//! [`info`], [`vcpu_list`]), and its core dump ([`dump_core`]).

pub mod dump_core;
pub mod info;
pub mod list;
pub mod memory;
pub mod placement;
pub mod shutdown;
pub mod vcpu_list;

//! The process's plumbing, under every command: lines for the user that never panic
//! ([`out`]), progress lines ([`progress`]) and `-v` logging ([`log`]), signals noticed at
//! safe points ([`interrupt`]), the command line being run ([`invocation`]), helper
//! processes started and stopped ([`spawn`], [`procgroup`]), directories only their owner
//! may change ([`privdir`]), and the test-only hooks ([`testhook`], [`trace`]).

pub mod interrupt;
pub mod invocation;
pub mod log;
pub mod out;
pub mod privdir;
pub mod procgroup;
pub mod progress;
pub mod spawn;
pub mod testhook;
pub mod trace;

//! The pure parts of pv-test-kernel, as a library so they are unit-tested on the host:
//! `cargo test --lib --target x86_64-unknown-linux-gnu`. The kernel itself is src/main.rs.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod crc32;
pub mod expect;
pub mod geometry;
pub mod xs;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod xs_tests;

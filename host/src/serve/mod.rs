//! The resident toolstack (`pvbuild serve`, `pvbuild client`): commands run in one
//! long-lived process instead of a new `pvbuild` process each.
//!
//! In an emulated PV dom0 a process's start and exit cost more than every step of a small
//! guest's create (docs/timings.md, issue 17): each page fault and page-table update of a
//! new process is a trap through Xen. LightVM's answer is a toolstack that stays resident.
//! `pvbuild serve` listens on a Unix socket ([`DEFAULT_SOCKET`]); a request is a `pvbuild`
//! command line, and the server runs it with the client's standard input, output, error and
//! working directory ([`server`]), one request at a time. `pvbuild client` sends one command,
//! or a batch of them over one connection ([`client`]); the messages are in [`wire`].
//!
//! What a served command does not do as a `pvbuild` process would: it runs with the server's
//! environment, not the client's; a Ctrl-C stops the client, not the request (a SIGTERM to
//! the server stops the request at its next safe point, then the server); the commands that
//! stay attached to a guest (`console`, `create -c`, `--wait`, `-F`) are refused, as they
//! would hold the server for the guest's life.

pub mod client;
pub mod pool;
pub mod server;
pub mod wire;

/// Where `pvbuild serve` listens unless told otherwise (its directory is made mode 0700).
pub const DEFAULT_SOCKET: &str = "/run/pvbuild/serve.sock";

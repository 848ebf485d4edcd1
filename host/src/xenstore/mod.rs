//! xenstore: pvbuild's one interface to xenstored, and the entries of a new PV domain.
//!
//! - [`wire`]: the protocol of `xs_wire.h`, pure encode/parse ([`wire::parse_reply`] is the
//!   fuzzable reply parser; every length bounded by `XENSTORE_PAYLOAD_MAX`).
//! - [`XsConnection`]: a connection over xenstored's socket or `/dev/xen/xenbus` with every
//!   operation the toolstack uses, including those `xenstore-rs` lacks (transactions with
//!   EAGAIN retry, permissions, mkdir, watches, introduce, release, domain path). It
//!   implements `xenstore-rs`'s `Xs`/`XsTransaction`/`XsTransactionSpan` traits. See
//!   `docs/xenstore.md` for why the wire protocol is spoken here rather than through
//!   `xenstore_rs::unix::XsUnix`.
//! - [`write_new_domain`], [`remove_domain`], [`list_domains`]: what libxl writes for a new PV
//!   domain, its undo, and the reader behind `pvbuild list`.
//! - [`wait_watched`]: every wait for xenstore to change, woken by a watch.
//! - [`fake`]: an in-process fake xenstored for tests (fault injection included).

mod conn;
mod domain;
pub mod fake;
mod wait;
pub mod wire;

pub use conn::{
    Access, Perm, Transaction, Transport, WatchEvent, XsConnection, XsError, DEFAULT_SOCKET,
    MAX_DIRECTORY_ENTRIES, MAX_QUEUED_EVENTS, MAX_TRANSACTION_RETRIES, XENBUS_DEVICE,
};
pub use domain::{
    add_vbd, add_vif, check_domain_name, claim_name, close_backend, console_backend_dir,
    console_ops, device_model_dir, dom_path, domid_by_name, libxl_path, list_domains,
    qdisk_backend_dir, remove_device, remove_domain, rename_domain, set_vcpus_online,
    start_time_string, uuid_of_vm_path, vbd_backend_dir, vbd_devids, vbd_ops, vif_backend_dir,
    vif_devids, vif_ops, vm_path, write_domain_entries, write_new_domain, write_new_domain_claimed,
    write_ops, DomainEntry, DomainXsError, GuestKind, NameClaim, NewDomain, Op, Ring, Vbd,
    VbdBackend, Vif, DM_VERSION_PV, NAME_MAX, NIC_MTU_DEFAULT, VCPUS_MAX, XENCONSOLE_LIMIT,
    XENCONSOLE_PROTOCOL,
};
pub use uuid::Uuid;
pub use wait::{wait_watched, wait_watched_every, Waited, SLICE as WAIT_SLICE};

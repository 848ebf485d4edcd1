//! Directories only their owner may change: the kernel cache's ([`crate::plan::kcache`]) and
//! the resident toolstack's socket directory ([`crate::serve`]). Another user who could write
//! there could plant an entry (a kernel image, a socket) under a name root trusts.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// Why a directory with metadata `m` (from `symlink_metadata`: a link is not followed) is not
/// one only `owner` may change; `None` when it is.
pub fn why_not_private(m: &Metadata, owner: u32) -> Option<String> {
    if !m.file_type().is_dir() {
        Some("not a directory".to_owned())
    } else if m.uid() != owner {
        Some(format!("owned by uid {}, not {owner}", m.uid()))
    } else if m.mode() & 0o022 != 0 {
        Some(format!("mode {:o} lets others write", m.mode() & 0o7777))
    } else {
        None
    }
}

//! The cache of unpacked kernels: a warm `pvbuild create` skips the decompression.
//!
//! Unpacking Debian's xz kernel is almost all of a create's time (docs/timings.md). The
//! unpacked image of a compressed kernel is kept in [`DEFAULT_DIR`], one file per input:
//!
//! - **keyed by content**: the file's name is the SHA-256 of the compressed kernel file's
//!   bytes. A collision-resistant hash, because kernels come from guests' disks too
//!   (pygrub): with a weaker one, a guest could craft a kernel whose key is that of a public
//!   kernel, boot it first, and have the next guest of that public kernel run its code;
//! - **where only root writes**: the directory and its parent are made mode 0700, and used
//!   only when owned by the expected user (root) and writable by no one else, not symbolic
//!   links; an entry is opened without following links and used only when it is a regular
//!   file of that user, writable by no one else;
//! - **verified on use**: an entry starts with a 64-byte header (magic, body length, the
//!   XXH3-128 of the body, the SHA-256 of the input it came from); an entry whose header,
//!   length or body hash does not match is removed and the kernel is unpacked again. The
//!   body hash guards against corruption (a torn or damaged file), not against an attacker:
//!   one who can write the root-only directory can replace pvbuild too;
//! - **written atomically**: into a fresh `.tmp-*` file, renamed into place when whole;
//! - **bounded in size**: after each store, the least recently used entries (by
//!   modification time, refreshed on every use) go until the total is at most the bound
//!   ([`DEFAULT_MAX_BYTES`]); an image larger than the bound is not stored.
//!
//! - **keys remembered** ([`KernelCache::key_for`]): hashing Debian's 8 MB kernel file costs a
//!   warm create 180-260 ms in the emulated dom0, so the file `keys` in the directory (held
//!   to the entries' rules: root's, writable by no one else, no link) remembers each kernel
//!   file's key by the file's stamp (device, inode, size, modification and change times, from
//!   the `fstat` of the descriptor that was mapped). A key is remembered only for a file last
//!   changed at least [`SETTLED_S`] seconds before it was hashed: any later change of its
//!   bytes then moves its change time, which no user can set back, whatever the clock's
//!   granularity. A file with a remembered stamp is not hashed again. At most [`KEYS_MAX`]
//!   are kept, the newest first;
//!
//! `pvbuild create --no-cache` neither reads nor writes it; `pvbuild plan` never uses it.
//! A cache that cannot be used (not root, a directory with the wrong owner or mode, a full
//! disk) makes the create unpack the kernel as if there were none, and says why at `-v`.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::libc;
use sha2::{Digest as _, Sha256};

use crate::plan::filemap::{FileMap, FileStamp};

/// Where the system's cache lives (its parent, `/var/cache/pvbuild`, is made root-only too).
pub const DEFAULT_DIR: &str = "/var/cache/pvbuild/kernels";
/// The bound on the entries' total size.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;
/// Bytes before an entry's body.
pub const HEADER_LEN: usize = 64;
const MAGIC: [u8; 8] = *b"PVBKC\x00\x00\x01";
const SUFFIX: &str = ".kernel";
/// A `.tmp-*` file this old is what a killed store left behind.
const STALE_TMP: Duration = Duration::from_secs(600);

/// The file of remembered keys, in the cache's directory.
const KEYS_FILE: &str = "keys";
/// The most keys remembered.
pub const KEYS_MAX: usize = 256;
/// How long before its hashing a kernel file must have last changed for its key to be
/// remembered.
pub const SETTLED_S: i64 = 2;
/// The largest `keys` file read.
const KEYS_FILE_MAX: u64 = 64 << 10;

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Only root's cache is kept.
    #[error("not running as root")]
    NotRoot,
    /// The directory is not safe to read kernels from.
    #[error("{path}: {why}")]
    Unsafe {
        /// The directory or entry.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An entry did not verify (it was removed).
    #[error("{path}: {why} (entry removed)")]
    Corrupt {
        /// The entry.
        path: PathBuf,
        /// What did not match.
        why: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The SHA-256 of a compressed kernel file: an entry's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of the kernel file whose bytes are `input`.
    pub fn of(input: &[u8]) -> Self {
        Self(Sha256::digest(input).into())
    }

    /// Lower-case hex.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key written by [`Key::hex`].
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(k))
    }
}

/// The remembered keys in `text` (lines `STAMP KEY`; others are skipped).
fn parse_keys(text: &str) -> Vec<(FileStamp, Key)> {
    text.lines()
        .filter_map(|l| {
            let (stamp, key) = l.rsplit_once(' ')?;
            Some((FileStamp::parse(stamp)?, Key::from_hex(key)?))
        })
        .take(KEYS_MAX)
        .collect()
}

/// `keys` with `(stamp, key)` first and any other key of that stamp gone, at most
/// [`KEYS_MAX`], as text.
fn keys_text(keys: &[(FileStamp, Key)], stamp: FileStamp, key: Key) -> String {
    std::iter::once((stamp, key))
        .chain(keys.iter().copied().filter(|(s, _)| *s != stamp))
        .take(KEYS_MAX)
        .map(|(s, k)| format!("{} {}\n", s.to_text(), k.hex()))
        .collect()
}

fn body_hash(body: &[u8]) -> [u8; 16] {
    twox_hash::XxHash3_128::oneshot(body).to_le_bytes()
}

fn header(key: &Key, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let parts: [&[u8]; 4] = [
        &MAGIC,
        &(body.len() as u64).to_le_bytes(),
        &body_hash(body),
        &key.0,
    ];
    let mut at = 0;
    for p in parts {
        if let Some(dst) = h.get_mut(at..at + p.len()) {
            dst.copy_from_slice(p);
        }
        at += p.len();
    }
    h
}

/// A cached kernel: the entry's mapping, its body past the header.
#[derive(Debug)]
pub struct Cached(FileMap);

impl Cached {
    /// The unpacked kernel image.
    pub fn bytes(&self) -> &[u8] {
        self.0.bytes().get(HEADER_LEN..).unwrap_or_default()
    }
}

/// A directory of unpacked kernels (module docs).
#[derive(Debug, Clone)]
pub struct KernelCache {
    dir: PathBuf,
    owner: u32,
    max_bytes: u64,
}

/// Checks that `path` is a directory (not a link) of `owner`, writable by no one else.
fn check_dir(path: &Path, owner: u32) -> Result<(), CacheError> {
    let m = fs::symlink_metadata(path).map_err(io_err(path))?;
    match crate::support::privdir::why_not_private(&m, owner) {
        Some(why) => Err(CacheError::Unsafe {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

impl KernelCache {
    /// The system's cache, [`DEFAULT_DIR`], made if missing; only for root.
    pub fn system() -> Result<Self, CacheError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(CacheError::NotRoot);
        }
        let dir = Path::new(DEFAULT_DIR);
        let c = Self::at(dir, 0, DEFAULT_MAX_BYTES)?;
        if let Some(parent) = dir.parent() {
            check_dir(parent, 0)?;
        }
        Ok(c)
    }

    /// A cache in `dir` (made mode 0700 if missing) that must belong to `owner`, bounded to
    /// `max_bytes`.
    pub fn at(dir: &Path, owner: u32, max_bytes: u64) -> Result<Self, CacheError> {
        if fs::symlink_metadata(dir).is_err() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(dir))?;
        }
        check_dir(dir, owner)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            owner,
            max_bytes,
        })
    }

    /// The key of the kernel file whose bytes are `file` and whose stamp (when it was mapped)
    /// is `stamp`: remembered, or hashed (and remembered when the file has settled). A
    /// `keys` file that cannot be read or written only costs the hash.
    pub fn key_for(&self, file: &[u8], stamp: Option<FileStamp>) -> Key {
        let Some(stamp) = stamp else {
            return Key::of(file);
        };
        let path = self.dir.join(KEYS_FILE);
        let keys = self.read_keys(&path);
        if let Some((_, k)) = keys.iter().find(|(s, _)| *s == stamp) {
            return *k;
        }
        let key = Key::of(file);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if stamp.settled(now, SETTLED_S) {
            if let Err(e) = self.write_keys(&keys_text(&keys, stamp, key)) {
                crate::support::log::info(format_args!("kernel cache: remembering a key: {e}"));
            }
        }
        key
    }

    /// The remembered keys; none when the file is missing or not the cache owner's alone.
    fn read_keys(&self, path: &Path) -> Vec<(FileStamp, Key)> {
        use std::io::Read as _;
        let Ok(f) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        else {
            return Vec::new();
        };
        let safe = f.metadata().is_ok_and(|m| {
            m.file_type().is_file() && m.uid() == self.owner && m.mode() & 0o022 == 0
        });
        let mut text = String::new();
        if !safe || f.take(KEYS_FILE_MAX).read_to_string(&mut text).is_err() {
            return Vec::new();
        }
        parse_keys(&text)
    }

    /// Replaces the `keys` file with `text`, atomically.
    fn write_keys(&self, text: &str) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".tmp-keys-{}", std::process::id()));
        write_atomically(&tmp, &self.dir.join(KEYS_FILE), &[text.as_bytes()])
    }

    /// The entry of `key`.
    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", key.hex()))
    }

    /// The unpacked kernel stored under `key`, verified; `None` if there is none. An entry
    /// that does not verify is removed and reported as [`CacheError::Corrupt`].
    pub fn get(&self, key: &Key) -> Result<Option<Cached>, CacheError> {
        let path = self.entry_path(key);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let m = file.metadata().map_err(io_err(&path))?;
        if !m.file_type().is_file() || m.uid() != self.owner || m.mode() & 0o022 != 0 {
            return Err(CacheError::Unsafe {
                path,
                why: format!(
                    "not a regular file of uid {} writable only by it (uid {}, mode {:o})",
                    self.owner,
                    m.uid(),
                    m.mode() & 0o7777
                ),
            });
        }
        let limit = pvbuild_core::limits::MAX_DECOMPRESSED_KERNEL + HEADER_LEN as u64;
        let map = FileMap::from_file(file, &path, limit).map_err(|e| CacheError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        crate::build::steps::lap("cache-map");
        if let Err(why) = verify(map.bytes(), key) {
            drop(map);
            let _ = fs::remove_file(&path);
            return Err(CacheError::Corrupt { path, why });
        }
        // Recently used: the last to be evicted. Best effort.
        let _ = File::open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        Ok(Some(Cached(map)))
    }

    /// Stores `body`, the unpacked image of the kernel file of `key`, then evicts down to the
    /// bound. Returns whether it was stored (an image larger than the bound is not).
    pub fn put(&self, key: &Key, body: &[u8]) -> Result<bool, CacheError> {
        let total = body.len() as u64 + HEADER_LEN as u64;
        if total > self.max_bytes {
            return Ok(false);
        }
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            key.hex().get(..16).unwrap_or_default()
        ));
        write_atomically(&tmp, &self.entry_path(key), &[&header(key, body), body])
            .map_err(io_err(&tmp))?;
        self.evict()?;
        Ok(true)
    }

    /// Removes the least recently used entries until the total is within the bound, and
    /// stale temporary files.
    pub fn evict(&self) -> Result<(), CacheError> {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let now = SystemTime::now();
        for e in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let e = e.map_err(io_err(&self.dir))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(m) = e.metadata() else { continue };
            let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with(".tmp-") {
                if now.duration_since(mtime).is_ok_and(|age| age > STALE_TMP) {
                    let _ = fs::remove_file(e.path());
                }
            } else if name.ends_with(SUFFIX) && m.file_type().is_file() {
                entries.push((mtime, m.len(), e.path()));
            }
        }
        entries.sort();
        let mut total: u64 = entries.iter().map(|(_, len, _)| *len).sum();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            fs::remove_file(&path).map_err(io_err(&path))?;
            total = total.saturating_sub(len);
        }
        Ok(())
    }
}

/// Writes `parts` into the new file `tmp` (mode 0600, not through a link), syncs it and
/// renames it to `dest`; `tmp` is removed if any of it fails.
fn write_atomically(tmp: &Path, dest: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_data()
    })();
    let r = written.and_then(|()| fs::rename(tmp, dest));
    if r.is_err() {
        let _ = fs::remove_file(tmp);
    }
    r
}

/// Checks an entry's bytes against `key`: the magic, the input's hash, the body's length
/// and hash.
fn verify(bytes: &[u8], key: &Key) -> Result<(), String> {
    let (head, body) = bytes
        .split_at_checked(HEADER_LEN)
        .ok_or_else(|| format!("{} bytes, shorter than its header", bytes.len()))?;
    if head.get(..8) != Some(&MAGIC[..]) {
        return Err("not a pvbuild kernel cache entry".into());
    }
    if head.get(32..64) != Some(&key.0[..]) {
        return Err("made from another kernel file".into());
    }
    let len = head
        .get(8..16)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(u64::MAX);
    if len != body.len() as u64 {
        return Err(format!("body of {} bytes, header says {len}", body.len()));
    }
    if head.get(16..32) != Some(&body_hash(body)[..]) {
        return Err("body does not match its hash".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pvbuild-kcache-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    #[test]
    fn a_settled_files_key_is_remembered_by_its_stamp() {
        let d = scratch("keys");
        let c = KernelCache::at(&d, me(), 1 << 20).unwrap();
        // Last changed at the epoch: settled.
        let old = FileStamp::parse("1 2 3 4 5 0 0").unwrap();
        assert_eq!(c.key_for(b"kernel", Some(old)), Key::of(b"kernel"));
        let keys = fs::metadata(d.join(KEYS_FILE)).unwrap();
        assert_eq!(keys.mode() & 0o777, 0o600);
        // The stamp stands for the bytes: the remembered key comes back without a hash.
        assert_eq!(c.key_for(b"other bytes", Some(old)), Key::of(b"kernel"));
        // Another stamp, or none: hashed.
        let other = FileStamp::parse("1 2 3 4 5 0 1").unwrap();
        assert_eq!(
            c.key_for(b"other bytes", Some(other)),
            Key::of(b"other bytes")
        );
        assert_eq!(c.key_for(b"x", None), Key::of(b"x"));
        // A keys file others may write is not believed.
        fs::set_permissions(d.join(KEYS_FILE), fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(c.key_for(b"third", Some(old)), Key::of(b"third"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_changed_just_now_is_hashed_and_not_remembered() {
        let d = scratch("fresh");
        let c = KernelCache::at(&d, me(), 1 << 20).unwrap();
        let f = d.join("vmlinuz");
        fs::write(&f, b"new kernel").unwrap();
        let stamp = FileStamp::of(&f).unwrap();
        assert_eq!(
            c.key_for(b"new kernel", Some(stamp)),
            Key::of(b"new kernel")
        );
        assert!(!d.join(KEYS_FILE).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_keys_file_is_bounded_and_skips_what_it_cannot_read() {
        let k = |n: u64| FileStamp::parse(&format!("1 {n} 3 4 5 0 0")).unwrap();
        let mut keys = Vec::new();
        for n in 0..(KEYS_MAX as u64 + 10) {
            keys = parse_keys(&keys_text(&keys, k(n), Key::of(&n.to_le_bytes())));
        }
        assert_eq!(keys.len(), KEYS_MAX);
        assert_eq!(
            keys[0],
            (
                k(KEYS_MAX as u64 + 9),
                Key::of(&(KEYS_MAX as u64 + 9).to_le_bytes())
            )
        );
        let text = format!(
            "junk\n1 2 3\n{} {}\n1 2 3 4 5 6 7 nothex\n",
            k(7).to_text(),
            Key::of(b"a").hex()
        );
        assert_eq!(parse_keys(&text), vec![(k(7), Key::of(b"a"))]);
        assert_eq!(Key::from_hex(&Key::of(b"z").hex()), Some(Key::of(b"z")));
        assert_eq!(Key::from_hex("00"), None);
    }

    #[test]
    fn a_stored_image_comes_back_and_another_key_misses() {
        let d = scratch("roundtrip");
        let c = KernelCache::at(&d, me(), 1 << 20).unwrap();
        let mode = fs::metadata(&d).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let k = Key::of(b"compressed kernel");
        assert!(c.get(&k).unwrap().is_none());
        assert!(c.put(&k, b"unpacked kernel image").unwrap());
        let got = c.get(&k).unwrap().unwrap();
        assert_eq!(got.bytes(), b"unpacked kernel image");
        let entry = fs::metadata(c.entry_path(&k)).unwrap();
        assert_eq!(entry.mode() & 0o777, 0o600);
        assert!(c.get(&Key::of(b"another kernel")).unwrap().is_none());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_entry_is_refused_and_removed() {
        let d = scratch("damaged");
        let c = KernelCache::at(&d, me(), 1 << 20).unwrap();
        let k = Key::of(b"k");
        let body = vec![0x5au8; 10_000];
        // One flipped byte in the body; then a truncated file; then a header of another key.
        let flip = |b: &mut Vec<u8>| {
            if let Some(x) = b.get_mut(HEADER_LEN + 5000) {
                *x ^= 1;
            }
        };
        let truncate = |b: &mut Vec<u8>| b.truncate(b.len() - 1);
        let rekey = |b: &mut Vec<u8>| {
            if let Some(x) = b.get_mut(40) {
                *x ^= 0xff;
            }
        };
        for (what, damage) in [
            ("does not match its hash", &flip as &dyn Fn(&mut Vec<u8>)),
            ("header says", &truncate),
            ("another kernel file", &rekey),
        ] {
            c.put(&k, &body).unwrap();
            let p = c.entry_path(&k);
            let mut bytes = fs::read(&p).unwrap();
            damage(&mut bytes);
            fs::write(&p, &bytes).unwrap();
            let e = c.get(&k).unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("entry removed"), "{e}");
            assert!(!p.exists());
            assert!(c.get(&k).unwrap().is_none());
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_bound_holds() {
        let d = scratch("bound");
        let entry = 1000 + HEADER_LEN as u64;
        let c = KernelCache::at(&d, me(), 2 * entry).unwrap();
        let keys: Vec<Key> = (0u8..3).map(|i| Key::of(&[i])).collect();
        let old = SystemTime::now() - Duration::from_secs(100);
        for (i, k) in keys.iter().enumerate() {
            c.put(k, &[i as u8; 1000]).unwrap();
            // Older first, in order of storing.
            let age = old + Duration::from_secs(i as u64);
            File::open(c.entry_path(k))
                .unwrap()
                .set_modified(age)
                .unwrap();
        }
        // The third store evicted the first.
        assert!(!c.entry_path(&keys[0]).exists());
        assert!(c.entry_path(&keys[1]).exists() && c.entry_path(&keys[2]).exists());
        // Using the second makes the third the oldest: the next store evicts it.
        assert!(c.get(&keys[1]).unwrap().is_some());
        c.put(&keys[0], &[9; 1000]).unwrap();
        assert!(!c.entry_path(&keys[2]).exists());
        assert!(c.entry_path(&keys[1]).exists() && c.entry_path(&keys[0]).exists());
        // Too large for the bound: not stored.
        assert!(!c.put(&Key::of(b"big"), &[0; 5000]).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_others_may_write_or_a_link_is_not_used() {
        let d = scratch("unsafe");
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        let e = KernelCache::at(&d, me(), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("lets others write"), "{e}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        let e = KernelCache::at(&d, me().wrapping_add(1), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("owned by uid"), "{e}");
        let link = scratch("unsafe-link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = KernelCache::at(&link, me(), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        // An entry that is a link is not followed.
        let c = KernelCache::at(&d, me(), 1 << 20).unwrap();
        let k = Key::of(b"x");
        let target = d.join("elsewhere");
        fs::write(&target, b"x").unwrap();
        std::os::unix::fs::symlink(&target, c.entry_path(&k)).unwrap();
        assert!(c.get(&k).is_err());
        fs::remove_file(&link).unwrap();
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_real_kernel_is_unpacked_once_then_taken_from_the_cache() {
        use crate::plan::Inputs;
        let kernel = crate::devices::bootloader::tests::debian_kernel();
        let d = scratch("debian");
        let c = KernelCache::at(&d, me(), DEFAULT_MAX_BYTES).unwrap();
        let mut cold = Inputs::load_cached(&kernel, None, Some(&c)).unwrap();
        assert!(!cold.from_cache());
        // Stored beside the build: done once waited for.
        cold.finish_cache();
        let warm = Inputs::load_cached(&kernel, None, Some(&c)).unwrap();
        assert!(warm.from_cache());
        assert_eq!(cold.image(), warm.image());
        // The cached image parses and lays out as the unpacked one does.
        let (a, b) = (cold.kernel().unwrap(), warm.kernel().unwrap());
        assert_eq!(
            cold.solve(&a, 65536).unwrap(),
            warm.solve(&b, 65536).unwrap()
        );
        // Without a cache, or for an ELF file, nothing is taken from it.
        assert!(!Inputs::load(&kernel, None).unwrap().from_cache());
        // A damaged entry: unpacked again (and stored again).
        let entry = c.entry_path(&Key::of(&fs::read(&kernel).unwrap()));
        let mut bytes = fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        fs::write(&entry, &bytes).unwrap();
        let again = Inputs::load_cached(&kernel, None, Some(&c)).unwrap();
        assert!(!again.from_cache());
        assert_eq!(again.image(), cold.image());
        // Dropped without finish_cache: the store is still waited for.
        drop(again);
        assert!(Inputs::load_cached(&kernel, None, Some(&c))
            .unwrap()
            .from_cache());
        fs::remove_dir_all(&d).unwrap();
    }
}

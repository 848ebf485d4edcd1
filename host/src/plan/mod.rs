//! `pvbuild plan`: the whole core without Xen.
//!
//! Reads the kernel (and ramdisk), unpacks and parses them, solves the layout, builds the
//! guest into an in-memory image whose p2m is deliberately not the identity, checks the
//! result with the core's walker, and reports the arrangement the way libxenguest logs it
//! (`xc_dom_alloc_segment` / `xc_dom_alloc_page` / `xc_dom_build_image` lines, in
//! allocation order) or as JSON.
//!
//! The same reading serves `create` ([`Inputs`]: the files mapped ([`filemap`]), unpacked
//! kernels cached ([`kcache`])); [`mem`] is the in-memory guest a plan builds into, and
//! [`detail`] the builder's `-v` lines as libxenguest logs them.

pub mod detail;
pub mod filemap;
pub mod kcache;
pub mod mem;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use std::borrow::Cow;
use std::sync::Arc;

use pvbuild_core::addr::{Mfn, PAGE_SIZE};
use pvbuild_core::build::{self, BuildConfig};
use pvbuild_core::decompress;
use pvbuild_core::kernel;
use pvbuild_core::layout::{self, Layout, LayoutRequest, Segment};
use pvbuild_core::module::{self, Loaded};
use pvbuild_core::walker;
use serde_json::{json, Value};

use crate::plan::filemap::{FileMap, FileMapError};
use crate::plan::kcache::{Cached, KernelCache};
use crate::plan::mem::PlanMemory;

/// Largest `--memory` the in-memory build accepts, in MiB (the image is held in this
/// process; a real domain has no such limit).
pub const MAX_PLAN_MEMORY_MIB: u64 = 16 * 1024;
/// Largest `--vcpus` (`HVM_MAX_VCPUS`, which libxl also applies to PV guests' vcpu maps).
pub const MAX_VCPUS: u32 = 128;
/// Offset added to every pfn to make the in-memory guest's machine frames (the p2m is also
/// scrambled so that no frame equals its pfn, and a pfn/mfn mix-up shows in the walk).
const PLAN_MFN_BASE: u64 = 0x7_6000;

/// The inputs of a plan.
#[derive(Debug, Clone)]
pub struct PlanArgs {
    /// The kernel file.
    pub kernel: PathBuf,
    /// The ramdisk file, if any.
    pub ramdisk: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Number of vcpus.
    pub vcpus: u32,
}

/// Why a plan failed; each names the step and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bad argument.
    #[error("{0}")]
    Argument(String),
    /// The kernel file could not be unpacked.
    #[error("kernel {path}: {msg}")]
    Kernel {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The ramdisk could not be unpacked.
    #[error("ramdisk {path}: {msg}")]
    Ramdisk {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// No layout fits.
    #[error("layout: {0}")]
    Layout(layout::LayoutError),
    /// The build into memory failed.
    #[error("build: {0}")]
    Build(String),
    /// The walker found the built tables wrong (a bug in the core).
    #[error("check of the built guest failed: {0}")]
    Walk(String),
}

/// A solved, built and checked plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The layout.
    pub layout: Layout,
    /// How the ramdisk was loaded (unzipped or as it is), if there is one.
    pub ramdisk_loaded: Option<Loaded>,
    /// SHA-256 of the ramdisk's whole segment as built (its bytes, then zeros to the
    /// segment's last page), if there is one.
    pub ramdisk_sha256: Option<[u8; 32]>,
    /// What the walker covered.
    pub walk: walker::WalkReport,
    /// Number of vcpus asked for.
    pub vcpus: u32,
    /// The guest's memory, MiB.
    pub memory_mib: u64,
    /// The command line.
    pub cmdline: String,
}

/// A compressed kernel's unpacked image: in memory, or an entry of the kernel cache.
#[derive(Debug)]
enum Unpacked {
    Heap(Arc<Vec<u8>>),
    Cached(Cached),
}

/// A store into the kernel cache running beside the build ([`Inputs::finish_cache`]).
type PendingStore = std::thread::JoinHandle<String>;

/// Unpacks the kernel file `file` (read from `path`), or takes its image from `cache`; `None`
/// for a kernel used as it is (an ELF file). A cache that fails is passed over (said at `-v`;
/// a damaged entry, always), never an error of the create.
fn unpack(
    file: &[u8],
    stamp: Option<filemap::FileStamp>,
    path: &Path,
    cache: Option<&KernelCache>,
) -> Result<(Option<Unpacked>, Option<PendingStore>), PlanError> {
    use crate::support::log;
    // An ELF file is used in place: nothing to unpack, nothing to cache.
    let cache = cache
        .filter(|_| !file.starts_with(b"\x7fELF"))
        .map(|c| (c, c.key_for(file, stamp)));
    if cache.is_some() {
        crate::build::steps::lap("cache-key");
    }
    if let Some((c, key)) = &cache {
        match c.get(key) {
            Ok(Some(hit)) => {
                log::info(format_args!(
                    "kernel cache: {} bytes unpacked from {} taken from {}",
                    hit.bytes().len(),
                    path.display(),
                    c.entry_path(key).display()
                ));
                crate::build::steps::lap("cache-hit");
                return Ok((Some(Unpacked::Cached(hit)), None));
            }
            Ok(None) => {}
            Err(e @ kcache::CacheError::Corrupt { .. }) => {
                crate::say_err!("warning: kernel cache: {e}");
            }
            Err(e) => log::info(format_args!("kernel cache: {e}")),
        }
        crate::build::steps::lap("cache-lookup");
    }
    let unpacked = match decompress::unpack_kernel(file) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(v)) => Some(v),
        Err(e) => {
            return Err(PlanError::Kernel {
                path: path.to_path_buf(),
                msg: e.to_string(),
            })
        }
    };
    crate::build::steps::lap("decode");
    let unpacked = unpacked.map(Arc::new);
    // Stored by a thread of its own, beside the build (the create waits for it at the end:
    // [`Inputs::finish_cache`]); it shares the image, it does not copy it.
    let pending = match (cache, &unpacked) {
        (Some((c, key)), Some(v)) => {
            let (c, v, path) = (c.clone(), Arc::clone(v), path.display().to_string());
            Some(std::thread::spawn(move || match c.put(&key, &v) {
                Ok(true) => format!(
                    "stored {} bytes unpacked from {path} as {}",
                    v.len(),
                    c.entry_path(&key).display()
                ),
                Ok(false) => format!(
                    "{} bytes unpacked from {path} is larger than the cache's bound",
                    v.len()
                ),
                Err(e) => format!("not stored: {e}"),
            }))
        }
        _ => None,
    };
    Ok((unpacked.map(Unpacked::Heap), pending))
}

fn map(path: &Path, limit: u64) -> Result<FileMap, PlanError> {
    FileMap::open(path, limit).map_err(map_error)
}

/// [`map`] of a file already open (`path` names it in messages).
fn map_opened(file: std::fs::File, path: &Path, limit: u64) -> Result<FileMap, PlanError> {
    FileMap::from_file(file, path, limit).map_err(map_error)
}

fn map_error(e: FileMapError) -> PlanError {
    match e {
        FileMapError::Io { path, source } => PlanError::Read { path, source },
        other => PlanError::Argument(other.to_string()),
    }
}

/// A kernel and ramdisk mapped, unpacked and checked: what a build takes from files. Shared by
/// `pvbuild plan` and `pvbuild create`, so both refuse bad input the same way, and before any
/// hypervisor call.
///
/// Both files are mapped ([`FileMap`]), not read into the heap. An uncompressed kernel is
/// used in place; a compressed one is unpacked into memory (its parse needs the whole ELF,
/// as libxenguest's does). The ramdisk is kept as the file's bytes: the build unzips it (or
/// not) straight into the guest's pages ([`pvbuild_core::module`]).
#[derive(Debug)]
pub struct Inputs {
    /// The kernel file, for messages.
    pub kernel_path: PathBuf,
    kernel_file: FileMap,
    /// The kernel after unpacking, when it was compressed.
    unpacked: Option<Unpacked>,
    /// The kernel cache's store of `unpacked`, running.
    pending_store: Option<PendingStore>,
    ramdisk: Option<FileMap>,
    /// Length of the ramdisk's segment as libxenguest sizes it.
    pub ramdisk_len: Option<u64>,
}

impl Drop for Inputs {
    fn drop(&mut self) {
        // A store still running is let finish (a killed one leaves only a `.tmp-*` file,
        // which a later store removes).
        if let Some(h) = self.pending_store.take() {
            let _ = h.join();
        }
    }
}

impl Inputs {
    /// Map and unpack `kernel`, map and check `ramdisk`.
    pub fn load(kernel: &Path, ramdisk: Option<&Path>) -> Result<Self, PlanError> {
        Self::load_cached(kernel, ramdisk, None)
    }

    /// [`Inputs::load`], taking a compressed kernel's unpacked image from `cache` when it
    /// holds it, and storing it there when not.
    pub fn load_cached(
        kernel: &Path,
        ramdisk: Option<&Path>,
        cache: Option<&KernelCache>,
    ) -> Result<Self, PlanError> {
        let kernel_file = map(kernel, pvbuild_core::limits::MAX_KERNEL_FILE)?;
        let ramdisk = ramdisk
            .map(|path| map(path, pvbuild_core::limits::MAX_RAMDISK).map(|f| (f, path)))
            .transpose()?;
        Self::from_maps((kernel_file, kernel), ramdisk, cache)
    }

    /// The files mapped (so each can be read, within the size limits) but not unpacked or
    /// parsed: an HVM guest's kernel and ramdisk, which its device model loads.
    pub fn map_only(kernel: &Path, ramdisk: Option<&Path>) -> Result<Self, PlanError> {
        let kernel_file = map(kernel, pvbuild_core::limits::MAX_KERNEL_FILE)?;
        let ramdisk = ramdisk
            .map(|path| map(path, pvbuild_core::limits::MAX_RAMDISK))
            .transpose()?;
        crate::build::steps::lap("read");
        Ok(Self {
            kernel_path: kernel.to_path_buf(),
            kernel_file,
            unpacked: None,
            pending_store: None,
            ramdisk,
            ramdisk_len: None,
        })
    }

    /// [`Inputs::load`] of files already open (the bootloader's, opened without following
    /// links): each with the path that names it in messages.
    pub fn load_opened(
        (kfile, kernel): (std::fs::File, &Path),
        ramdisk: Option<(std::fs::File, &Path)>,
        cache: Option<&KernelCache>,
    ) -> Result<Self, PlanError> {
        let kernel_file = map_opened(kfile, kernel, pvbuild_core::limits::MAX_KERNEL_FILE)?;
        let ramdisk = ramdisk
            .map(|(f, path)| {
                map_opened(f, path, pvbuild_core::limits::MAX_RAMDISK).map(|f| (f, path))
            })
            .transpose()?;
        Self::from_maps((kernel_file, kernel), ramdisk, cache)
    }

    /// Unpack the mapped kernel (or take it from `cache`), check the mapped ramdisk.
    fn from_maps(
        (kernel_file, kernel): (FileMap, &Path),
        ramdisk: Option<(FileMap, &Path)>,
        cache: Option<&KernelCache>,
    ) -> Result<Self, PlanError> {
        crate::build::steps::lap("read");
        let (unpacked, pending_store) =
            unpack(kernel_file.bytes(), kernel_file.stamp(), kernel, cache)?;
        let (ramdisk, ramdisk_len) = match ramdisk {
            Some((file, path)) => {
                let plan = module::plan(file.bytes()).map_err(|e| PlanError::Ramdisk {
                    path: path.to_path_buf(),
                    msg: e.to_string(),
                })?;
                let len = plan.segment_len();
                (Some(file), Some(len))
            }
            None => (None, None),
        };
        crate::build::steps::lap("ramdisk-check");
        Ok(Self {
            kernel_path: kernel.to_path_buf(),
            kernel_file,
            unpacked,
            pending_store,
            ramdisk,
            ramdisk_len,
        })
    }

    /// The kernel image (an ELF or 'bin' image).
    pub fn image(&self) -> &[u8] {
        match &self.unpacked {
            Some(Unpacked::Heap(v)) => v.as_slice(),
            Some(Unpacked::Cached(c)) => c.bytes(),
            None => self.kernel_file.bytes(),
        }
    }

    /// Waits for the kernel cache's store of the unpacked image, if one is running, and says
    /// how it went (at `-v`). Dropping the inputs waits too.
    pub fn finish_cache(&mut self) {
        if let Some(h) = self.pending_store.take() {
            let msg = h
                .join()
                .unwrap_or_else(|_| "not stored: the storing thread panicked".into());
            crate::support::log::info(format_args!("kernel cache: {msg}"));
            crate::build::steps::lap("cache-store");
        }
    }

    /// Whether the kernel's unpacked image came from the cache.
    pub fn from_cache(&self) -> bool {
        matches!(self.unpacked, Some(Unpacked::Cached(_)))
    }

    /// The kernel file's bytes as read (before any unpacking).
    pub fn kernel_file(&self) -> &[u8] {
        self.kernel_file.bytes()
    }

    /// The ramdisk file's bytes, if there is one.
    pub fn ramdisk(&self) -> Option<&[u8]> {
        self.ramdisk.as_ref().map(FileMap::bytes)
    }

    /// Drop the ramdisk's mapped pages below byte `n` from this process (the build calls it
    /// as it reads on).
    pub fn ramdisk_read(&self, n: usize) {
        if let Some(r) = &self.ramdisk {
            r.release(n);
        }
    }

    /// After a build: an error if the kernel or ramdisk file changed size while mapped (its
    /// bytes past the new end were read as zeros, so the guest is not what the files say).
    pub fn check_files(&self) -> Result<(), PlanError> {
        let changed = |e: FileMapError| PlanError::Argument(e.to_string());
        self.kernel_file.check().map_err(changed)?;
        if let Some(r) = &self.ramdisk {
            r.check().map_err(changed)?;
        }
        Ok(())
    }

    /// The parsed kernel.
    pub fn kernel(&self) -> Result<kernel::Kernel<'_>, PlanError> {
        kernel::parse_kernel(self.image()).map_err(|e| PlanError::Kernel {
            path: self.kernel_path.clone(),
            msg: e.to_string(),
        })
    }

    /// The layout of a guest of `nr_pages` pages running `kern`.
    pub fn solve(&self, kern: &kernel::Kernel<'_>, nr_pages: u64) -> Result<Layout, PlanError> {
        let params = pvbuild_core::image::LoadKernel::params(kern);
        build::plan(
            params,
            &LayoutRequest {
                nr_pages,
                ramdisk_len: self.ramdisk_len,
            },
        )
        .map_err(PlanError::Layout)
    }
}

/// Run the whole core on `args`.
pub fn plan(args: &PlanArgs) -> Result<Plan, PlanError> {
    if args.memory_mib == 0 || args.memory_mib > MAX_PLAN_MEMORY_MIB {
        return Err(PlanError::Argument(format!(
            "--memory {} MiB out of range (1..={MAX_PLAN_MEMORY_MIB})",
            args.memory_mib
        )));
    }
    if args.vcpus == 0 || args.vcpus > MAX_VCPUS {
        return Err(PlanError::Argument(format!(
            "--vcpus {} out of range (1..={MAX_VCPUS})",
            args.vcpus
        )));
    }
    if args.cmdline.len() >= pvbuild_core::limits::MAX_GUEST_CMDLINE {
        return Err(PlanError::Argument(format!(
            "--cmdline of {} bytes is longer than {} bytes",
            args.cmdline.len(),
            pvbuild_core::limits::MAX_GUEST_CMDLINE - 1
        )));
    }
    let inputs = Inputs::load(&args.kernel, args.ramdisk.as_deref())?;
    let kern = inputs.kernel()?;
    let nr_pages = args.memory_mib << (20 - 12);
    let layout = inputs.solve(&kern, nr_pages)?;
    let ramdisk = inputs.ramdisk();
    let payload = layout
        .ramdisk
        .map_or(0..0, |s| s.pfn..s.pfn.saturating_add(s.pages));
    let mut mem = PlanMemory::new(nr_pages, PLAN_MFN_BASE, payload)
        .map_err(|e| PlanError::Argument(format!("--memory {} MiB: {e}", args.memory_mib)))?;
    // No PAE L3 exchange (pvbuild does none, see pvbuild_core::build): the plan's frames
    // for the top tables are below 4 GiB.
    let cfg = BuildConfig {
        ramdisk,
        cmdline: args.cmdline.as_bytes(),
        store_evtchn: 1,
        console_evtchn: 2,
        shared_info_mfn: Mfn::default(),
        relocated: &[],
    };
    let out = build::build_with(&kern, &layout, &cfg, &mut mem, &mut |n| {
        inputs.ramdisk_read(n)
    })
    .map_err(|e| PlanError::Build(e.to_string()))?;
    inputs.check_files()?;
    let ramdisk_sha256 = layout.ramdisk.map(|_| mem.finish_payload());
    let boot = walker::Boot::new(pvbuild_core::image::LoadKernel::params(&kern), &out.vcpu);
    let walk = walker::check(&boot, &mut mem).map_err(|e| PlanError::Walk(e.to_string()))?;
    crate::plan::detail::print(&crate::plan::detail::Source {
        cmdline: &args.cmdline,
        kernel: (&args.kernel, inputs.kernel_file()),
        parsed: &kern,
        ramdisk: args.ramdisk.as_deref().zip(inputs.ramdisk()),
        ramdisk_loaded: out.ramdisk.as_ref(),
        layout: &layout,
        memory_mib: args.memory_mib,
    });
    Ok(Plan {
        layout,
        ramdisk_loaded: out.ramdisk,
        ramdisk_sha256,
        walk,
        vcpus: args.vcpus,
        memory_mib: args.memory_mib,
        cmdline: args.cmdline.clone(),
    })
}

fn seg_line(out: &mut String, name: &str, s: &Segment) {
    let _ = writeln!(
        out,
        "{:<20}:   {:<12} : {:#x} -> {:#x}  (pfn {:#x} + {:#x} pages)",
        "xc_dom_alloc_segment", name, s.vstart, s.vend, s.pfn, s.pages
    );
}

fn page_line(out: &mut String, l: &Layout, name: &str, pfn: u64) {
    let _ = writeln!(
        out,
        "{:<20}:   {:<12} : {:#x} (pfn {:#x})",
        "xc_dom_alloc_page",
        name,
        l.pfn_vaddr(pfn).unwrap_or(0),
        pfn
    );
}

/// The plan as libxenguest logs the same build, in allocation order, then a summary.
pub fn render_text(p: &Plan) -> String {
    let l = &p.layout;
    let mut out = String::new();
    seg_line(&mut out, "kernel", &l.kernel);
    if let (Some(rd), false) = (&l.ramdisk, l.ramdisk_unmapped) {
        seg_line(&mut out, "module0", rd);
    }
    if l.p2m_base.is_none() {
        seg_line(&mut out, "phys2mach", &l.p2m);
    }
    page_line(&mut out, l, "start info", l.start_info_pfn);
    page_line(&mut out, l, "xenstore", l.xenstore_pfn);
    page_line(&mut out, l, "console", l.console_pfn);
    seg_line(&mut out, "page tables", &l.pgtables);
    page_line(&mut out, l, "boot stack", l.bootstack_pfn);
    let _ = writeln!(
        out,
        "{:<20}: virt_alloc_end : {:#x}",
        "xc_dom_build_image", l.virt_alloc_end
    );
    let _ = writeln!(
        out,
        "{:<20}: virt_pgtab_end : {:#x}",
        "xc_dom_build_image", l.virt_pgtab_end
    );
    if let (Some(rd), true) = (&l.ramdisk, l.ramdisk_unmapped) {
        seg_line(&mut out, "module0", rd);
    }
    if l.p2m_base.is_some() {
        seg_line(&mut out, "phys2mach", &l.p2m);
    }
    let _ = writeln!(out, "guest type       : {}", l.guest_type.xen_caps_name());
    let _ = writeln!(out, "virt_base        : {:#x}", l.virt_base);
    let _ = writeln!(out, "virt_entry       : {:#x}", l.virt_entry);
    match l.virt_hypercall {
        Some(h) => {
            let _ = writeln!(out, "hypercall page   : {h:#x}");
        }
        None => {
            let _ = writeln!(out, "hypercall page   : none");
        }
    }
    let _ = writeln!(out, "p2m list         : {:#x} (mfn_list)", l.p2m_vaddr);
    let _ = writeln!(out, "nr_pt_frames     : {:#x}", l.nr_pt_frames());
    let _ = writeln!(
        out,
        "total            : {:#x} -> {:#x}",
        l.virt_base, l.virt_pgtab_end
    );
    let _ = writeln!(
        out,
        "memory           : {:#x} pages, {} vcpu(s)",
        l.nr_pages, p.vcpus
    );
    let _ = writeln!(
        out,
        "checked          : {} tables from cr3 ({} bootstrap), {} slots, {} pages mapped ({} page-table frames read-only), {} p2m entries",
        p.walk.tables,
        p.walk.bootstrap_tables,
        p.walk.slots_scanned,
        p.walk.pages_mapped,
        p.walk.readonly_pages,
        p.walk.p2m_entries
    );
    if let (Some(loaded), Some(sha)) = (&p.ramdisk_loaded, &p.ramdisk_sha256) {
        let _ = writeln!(
            out,
            "ramdisk          : {}, segment sha256 {}",
            loaded_text(loaded),
            hex(sha)
        );
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How a module was loaded, in words.
pub fn loaded_text(l: &Loaded) -> String {
    match l {
        Loaded::Gunzipped { bytes } => format!("gunzipped to {bytes:#x} bytes"),
        Loaded::Raw {
            bytes,
            gunzip_failed: None,
        } => format!("{bytes:#x} bytes as they are"),
        Loaded::Raw {
            bytes,
            gunzip_failed: Some(e),
        } => format!("{bytes:#x} bytes as they are (gunzip failed: {e}; as libxenguest, the raw blob is handed over)"),
    }
}

/// An address or frame-sized value as JSON gives it safely: a hex string (JSON numbers above
/// 2^53 lose digits in jq and JavaScript).
pub(crate) fn addr(v: u64) -> Value {
    Value::String(format!("{v:#x}"))
}

fn seg(s: &Segment) -> Value {
    json!({
        "start": addr(s.vstart),
        "end": addr(s.vend),
        "pfn": addr(s.pfn),
        "pages": s.pages,
    })
}

fn page(l: &Layout, pfn: u64) -> Value {
    let start = l.pfn_vaddr(pfn).unwrap_or(0);
    json!({
        "start": addr(start),
        "end": addr(start.saturating_add(PAGE_SIZE)),
        "pfn": addr(pfn),
        "pages": 1,
    })
}

/// The plan as JSON: what the text holds. Addresses and frame numbers are hex strings;
/// counts are numbers.
pub fn render_json(p: &Plan) -> Value {
    let l = &p.layout;
    json!({
        "guest_type": l.guest_type.xen_caps_name(),
        "memory_mib": p.memory_mib,
        "nr_pages": p.memory_mib << (20 - 12),
        "vcpus": p.vcpus,
        "cmdline": p.cmdline,
        "virt_base": addr(l.virt_base),
        "virt_entry": addr(l.virt_entry),
        "hypercall_page": l.virt_hypercall.map(addr),
        "kernel": seg(&l.kernel),
        "ramdisk": l.ramdisk.as_ref().map(seg),
        "p2m": seg(&l.p2m),
        "page_tables": seg(&l.pgtables),
        "start_info": page(l, l.start_info_pfn),
        "xenstore": page(l, l.xenstore_pfn),
        "console": page(l, l.console_pfn),
        "boot_stack": page(l, l.bootstack_pfn),
        "virt_end": addr(l.virt_pgtab_end),
        "nr_pt_frames": l.nr_pt_frames(),
        "checked": {
            "tables": p.walk.tables,
            "bootstrap_tables": p.walk.bootstrap_tables,
            "slots_scanned": p.walk.slots_scanned,
            "pages_mapped": p.walk.pages_mapped,
            "readonly_pages": p.walk.readonly_pages,
            "p2m_entries": p.walk.p2m_entries,
        },
        "ramdisk_loaded": p.ramdisk_loaded.as_ref().map(|r| match r {
            Loaded::Gunzipped { bytes } => json!({ "gunzipped": bytes }),
            Loaded::Raw { bytes, gunzip_failed } => json!({
                "raw": bytes,
                "gunzip_failed": gunzip_failed.map(|e| e.to_string()),
            }),
        }),
        "ramdisk_sha256": p.ramdisk_sha256.as_ref().map(|h| hex(h)),
    })
}

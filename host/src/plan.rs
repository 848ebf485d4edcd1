//! `pvbuild plan`: the whole core without Xen.
//!
//! Reads the kernel (and ramdisk), unpacks and parses them, solves the layout, builds the
//! guest into an in-memory image whose p2m is deliberately not the identity, checks the
//! result with the core's walker, and reports the arrangement the way libxenguest logs it
//! (`xc_dom_alloc_segment` / `xc_dom_alloc_page` / `xc_dom_build_image` lines, in
//! allocation order) or as JSON.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pvbuild_core::addr::{Mfn, PAGE_SIZE};
use pvbuild_core::build::{self, BuildConfig};
use pvbuild_core::decompress;
use pvbuild_core::kernel;
use pvbuild_core::layout::{self, Layout, LayoutRequest, Segment};
use pvbuild_core::mem::InMemory;
use pvbuild_core::walker;
use serde_json::{json, Value};

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
    /// Ramdisk bytes after unpacking (what the guest gets), if any.
    pub ramdisk_unpacked: Option<u64>,
    /// What the walker covered.
    pub walk: walker::WalkReport,
    /// Number of vcpus asked for.
    pub vcpus: u32,
}

/// Reads an open file whole, up to `limit` bytes (`path` names it in messages); a longer file
/// (or an endless one, such as `/dev/zero`) is refused without reading more than one byte past
/// the limit.
fn read_opened(file: std::fs::File, path: &Path, limit: u64) -> Result<Vec<u8>, PlanError> {
    use std::io::Read as _;
    let err = |source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(err)?;
    if buf.len() as u64 > limit {
        return Err(PlanError::Argument(format!(
            "{} is larger than the limit of {limit} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

/// A kernel and ramdisk read, unpacked and checked: what a build takes from files. Shared by
/// `pvbuild plan` and `pvbuild create`, so both refuse bad input the same way, and before any
/// hypervisor call.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The kernel file, for messages.
    pub kernel_path: PathBuf,
    /// The kernel after unpacking (an ELF or 'bin' image).
    pub image: Vec<u8>,
    /// The ramdisk after unpacking (gzip undone as libxenguest does), if any.
    pub ramdisk: Option<Vec<u8>>,
    /// Length of the ramdisk's segment as libxenguest sizes it.
    pub ramdisk_len: Option<u64>,
}

impl Inputs {
    /// Read and unpack `kernel` and `ramdisk`.
    pub fn load(kernel: &Path, ramdisk: Option<&Path>) -> Result<Self, PlanError> {
        let open = |path: &Path| {
            std::fs::File::open(path).map_err(|source| PlanError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let kfile = open(kernel)?;
        let rfile = ramdisk.map(|r| open(r).map(|f| (f, r))).transpose()?;
        Self::load_opened((kfile, kernel), rfile)
    }

    /// [`Inputs::load`] of files already open (the bootloader's, opened without following
    /// links): each with the path that names it in messages.
    pub fn load_opened(
        (kfile, kernel): (std::fs::File, &Path),
        ramdisk: Option<(std::fs::File, &Path)>,
    ) -> Result<Self, PlanError> {
        let kfile = read_opened(kfile, kernel, pvbuild_core::limits::MAX_KERNEL_FILE)?;
        let image = decompress::unpack_kernel(&kfile)
            .map_err(|e| PlanError::Kernel {
                path: kernel.to_path_buf(),
                msg: e.to_string(),
            })?
            .into_owned();
        let (ramdisk, ramdisk_len) = match ramdisk {
            Some((rfile, path)) => {
                let file = read_opened(rfile, path, pvbuild_core::limits::MAX_RAMDISK)?;
                let unpacked = decompress::unpack_ramdisk(&file)
                    .map_err(|e| PlanError::Ramdisk {
                        path: path.to_path_buf(),
                        msg: e.to_string(),
                    })?
                    .into_owned();
                let len = layout::module_segment_len(&file).max(unpacked.len() as u64);
                (Some(unpacked), Some(len))
            }
            None => (None, None),
        };
        Ok(Self {
            kernel_path: kernel.to_path_buf(),
            image,
            ramdisk,
            ramdisk_len,
        })
    }

    /// The parsed kernel.
    pub fn kernel(&self) -> Result<kernel::Kernel<'_>, PlanError> {
        kernel::parse_kernel(&self.image).map_err(|e| PlanError::Kernel {
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
    let ramdisk = inputs.ramdisk.as_deref();

    let p2m: Vec<Mfn> = (0..nr_pages)
        .map(|p| Mfn::new((p ^ 0x2a5) + PLAN_MFN_BASE))
        .collect::<Result<_, _>>()
        .map_err(|e| PlanError::Build(format!("{e:?}")))?;
    let bytes_len = usize::try_from(nr_pages * PAGE_SIZE)
        .map_err(|_| PlanError::Argument("--memory too large for this host".into()))?;
    let mut bytes = vec![0u8; bytes_len];
    let mut mem =
        InMemory::new(&mut bytes, &p2m).map_err(|e| PlanError::Build(format!("{e:?}")))?;
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
    let out = build::build(&kern, &layout, &cfg, &mut mem)
        .map_err(|e| PlanError::Build(e.to_string()))?;
    let boot = walker::Boot::new(pvbuild_core::image::LoadKernel::params(&kern), &out.vcpu);
    let walk = walker::check(&boot, &mut mem).map_err(|e| PlanError::Walk(e.to_string()))?;
    Ok(Plan {
        layout,
        ramdisk_unpacked: ramdisk.map(|r| r.len() as u64),
        walk,
        vcpus: args.vcpus,
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
    out
}

fn range(start: u64, end: u64) -> Value {
    json!({ "start": start, "end": end })
}

fn seg(s: &Segment) -> Value {
    range(s.vstart, s.vend)
}

fn page(l: &Layout, pfn: u64) -> Value {
    let start = l.pfn_vaddr(pfn).unwrap_or(0);
    range(start, start.saturating_add(PAGE_SIZE))
}

/// The plan as the JSON object issue 5 specifies.
pub fn render_json(p: &Plan) -> Value {
    let l = &p.layout;
    json!({
        "guest_type": l.guest_type.xen_caps_name(),
        "virt_base": l.virt_base,
        "virt_entry": l.virt_entry,
        "hypercall_page": l.virt_hypercall,
        "kernel": seg(&l.kernel),
        "ramdisk": l.ramdisk.as_ref().map(seg),
        "p2m": seg(&l.p2m),
        "page_tables": seg(&l.pgtables),
        "start_info": page(l, l.start_info_pfn),
        "xenstore": page(l, l.xenstore_pfn),
        "console": page(l, l.console_pfn),
        "boot_stack": page(l, l.bootstack_pfn),
        "virt_end": l.virt_pgtab_end,
        "nr_pt_frames": l.nr_pt_frames(),
    })
}

//! A whole PV build into guest memory, in libxenguest's order.
//!
//! Planning and building are separate steps so that a host can solve the layout (and refuse
//! a kernel that cannot fit) before it creates a domain:
//!
//! 1. [`plan`]: the pure layout ([`crate::layout::solve`]).
//! 2. The host creates the domain and populates memory. libxenguest would exchange the L3
//!    frame of a PAE guest without extended-cr3 that landed above 4 GiB
//!    ([`crate::paging::l3_below_4g_pfn`]) for one below (`move_l3_below_4G`,
//!    `XENMEM_exchange`) and name it in [`BuildConfig::relocated`]. pvbuild's host does not
//!    do that exchange (the Xen it runs on has no 32-bit PV at all): it always passes no
//!    relocation, and [`build`] refuses such a guest ([`BuildError::L3AboveFourGiB`]).
//! 3. [`build`]: loads the kernel and ramdisk, writes the page tables, the p2m list and
//!    start_info (`xc_dom_build_image` + `xc_dom_boot_image`), and returns what the host
//!    still has to hand to Xen ([`BuildOutput`]): the table to pin, the hypercall page, the
//!    boot vcpu's context, the shared_info contents and the m2p updates for moved frames.

use crate::addr::{Mfn, Pfn, PAGE_SIZE};
use crate::image::{KernelParams, LoadKernel, PaeMode};
use crate::layout::{self, Layout, LayoutError, LayoutRequest, Segment};
use crate::mem::GuestMemory;
use crate::module::{self, LoadError, Loaded, ModuleError};
use crate::p2m::{self, M2pBatch, P2mError};
use crate::paging::{self, PagingError, PagingMode};
use crate::start_info::{self, SharedInfoPage, StartInfoError, StartInfoInput};
use crate::vcpu::{self, VcpuContext, VcpuError};

/// What the build needs besides the kernel and the layout.
#[derive(Debug, Clone, Copy)]
pub struct BuildConfig<'a> {
    /// The ramdisk file's contents, as read: the build unzips it or not as libxenguest does
    /// ([`crate::module`]); its segment must be the one the layout gave it.
    pub ramdisk: Option<&'a [u8]>,
    /// The kernel command line.
    pub cmdline: &'a [u8],
    /// Xenstore event channel.
    pub store_evtchn: u32,
    /// Console event channel.
    pub console_evtchn: u32,
    /// Machine frame of the domain's shared_info page.
    pub shared_info_mfn: Mfn,
    /// Pfns whose frames the host exchanged after populating memory (the PAE L3). pvbuild's
    /// host does no exchange and always passes none (see the module comment).
    pub relocated: &'a [Pfn],
}

/// What the host hands to Xen after the build.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The layout that was built.
    pub layout: Layout,
    /// start_info's pfn.
    pub start_info_pfn: Pfn,
    /// The top page table's pfn.
    pub top_table_pfn: Pfn,
    /// The top page table's machine frame (to pin, and cr3).
    pub top_table_mfn: Mfn,
    /// `MMUEXT_PIN_L{4,3,2}_TABLE` for the top table.
    pub pin_cmd: u32,
    /// The hypercall page's machine frame, for `XEN_DOMCTL_hypercall_init`.
    pub hypercall_mfn: Option<Mfn>,
    /// Machine frame of the xenstore ring.
    pub store_mfn: Mfn,
    /// Machine frame of the console ring.
    pub console_mfn: Mfn,
    /// The boot vcpu's context.
    pub vcpu: VcpuContext,
    /// The shared_info page's initial contents.
    pub shared_info: SharedInfoPage,
    /// m2p updates for relocated frames, one batch.
    pub m2p_updates: M2pBatch,
    /// How the ramdisk was loaded (unzipped or as it is), if there is one.
    pub ramdisk: Option<Loaded>,
}

/// Why a build failed; `K` is the kernel loader's error, `M` the memory backend's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError<K, M> {
    /// The layout could not be solved.
    Layout(LayoutError),
    /// The memory backend failed.
    Memory(M),
    /// The backend's page count differs from the layout's.
    MemorySize {
        /// Pages in the layout.
        layout: u64,
        /// Pages in the backend.
        memory: u64,
    },
    /// The kernel failed to load.
    Kernel(K),
    /// The ramdisk file is empty or too large.
    Module(ModuleError),
    /// The ramdisk is larger than its segment, or given without a segment (or vice versa).
    Ramdisk {
        /// Bytes given (0 if none).
        len: u64,
        /// The segment's length (0 if none).
        segment: u64,
    },
    /// The PAE L3 is above 4 GiB and the guest lacks extended-cr3 (pvbuild does not move it
    /// below: the guest is refused).
    L3AboveFourGiB {
        /// The L3's pfn.
        pfn: Pfn,
        /// Its machine frame.
        mfn: Mfn,
    },
    /// Writing the page tables failed.
    Paging(PagingError<M>),
    /// Writing the p2m list failed.
    P2m(P2mError<M>),
    /// Filling start_info failed.
    StartInfo(StartInfoError<M>),
    /// Making the vcpu context failed.
    Vcpu(VcpuError),
}

/// Solve the layout: step 1, without touching any memory.
pub fn plan(params: &KernelParams, req: &LayoutRequest) -> Result<Layout, LayoutError> {
    layout::solve(params, req)
}

fn seg_bytes<'m, K, M: GuestMemory>(
    mem: &'m mut M,
    seg: &Segment,
) -> Result<&'m mut [u8], BuildError<K, M::Error>> {
    let pfn = seg.first_pfn().map_err(BuildError::Layout)?;
    mem.pages_mut(pfn, seg.pages).map_err(BuildError::Memory)
}

fn zero_page<K, M: GuestMemory>(mem: &mut M, pfn: u64) -> Result<(), BuildError<K, M::Error>> {
    let p = Pfn::new(pfn).map_err(|_| BuildError::Layout(LayoutError::Overflow))?;
    mem.pages_mut(p, 1).map_err(BuildError::Memory)?.fill(0);
    Ok(())
}

fn pfn_of<K, M>(n: u64) -> Result<Pfn, BuildError<K, M>> {
    Pfn::new(n).map_err(|_| BuildError::Layout(LayoutError::Overflow))
}

/// Build the guest described by `layout` into `mem`: step 3.
pub fn build<L: LoadKernel, M: GuestMemory>(
    kernel: &L,
    layout: &Layout,
    cfg: &BuildConfig<'_>,
    mem: &mut M,
) -> Result<BuildOutput, BuildError<L::Error, M::Error>> {
    build_with(kernel, layout, cfg, mem, &mut |_| {})
}

/// [`build`], telling `ramdisk_read(n)` as the ramdisk's bytes below `n` have been read (a
/// host that maps the file can drop those pages of its mapping as the load goes on; they
/// may be read again after a failed unzip).
pub fn build_with<L: LoadKernel, M: GuestMemory>(
    kernel: &L,
    layout: &Layout,
    cfg: &BuildConfig<'_>,
    mem: &mut M,
    ramdisk_read: &mut dyn FnMut(usize),
) -> Result<BuildOutput, BuildError<L::Error, M::Error>> {
    if mem.nr_pages() != layout.nr_pages {
        return Err(BuildError::MemorySize {
            layout: layout.nr_pages,
            memory: mem.nr_pages(),
        });
    }
    let params = kernel.params();

    // Kernel: the segment is cleared, then the image copied to [virt_kstart, virt_kend).
    let kseg = layout.kernel;
    let klen = usize::try_from(kseg.vend - kseg.vstart)
        .map_err(|_| BuildError::Layout(LayoutError::Overflow))?;
    let dest = seg_bytes(mem, &kseg)?;
    dest.fill(0);
    let dest = dest
        .get_mut(..klen)
        .ok_or(BuildError::Layout(LayoutError::Overflow))?;
    kernel.load(dest).map_err(BuildError::Kernel)?;

    // Ramdisk: as `xc_dom_build_module`, straight into its pages.
    let ramdisk = match (layout.ramdisk, cfg.ramdisk) {
        (Some(seg), Some(blob)) => {
            let plan = module::plan(blob).map_err(BuildError::Module)?;
            let seg_len = seg.vend - seg.vstart;
            if plan.segment_len() > seg_len {
                return Err(BuildError::Ramdisk {
                    len: plan.segment_len(),
                    segment: seg_len,
                });
            }
            let first = seg.first_pfn().map_err(BuildError::Layout)?;
            let loaded = module::load(blob, &plan, first, seg.pages, mem, ramdisk_read).map_err(
                |e| match e {
                    LoadError::Memory(m) => BuildError::Memory(m),
                    LoadError::SegmentTooSmall { need, have } => BuildError::Ramdisk {
                        len: need,
                        segment: have,
                    },
                    LoadError::Overflow => BuildError::Layout(LayoutError::Overflow),
                },
            )?;
            Some(loaded)
        }
        (None, None) => None,
        (seg, data) => {
            return Err(BuildError::Ramdisk {
                len: data.map_or(0, |d| d.len() as u64),
                segment: seg.map_or(0, |s| s.vend - s.vstart),
            })
        }
    };

    // The special pages, the p2m segment and the table frames start out zero.
    seg_bytes(mem, &layout.p2m)?.fill(0);
    seg_bytes(mem, &layout.pgtables)?.fill(0);
    for pfn in [
        layout.start_info_pfn,
        layout.xenstore_pfn,
        layout.console_pfn,
        layout.bootstack_pfn,
    ] {
        zero_page(mem, pfn)?;
    }

    // A PAE L3 must sit below 4 GiB unless the guest handles an extended cr3.
    let top_pfn = layout.top_table_pfn().map_err(BuildError::Layout)?;
    if let Some(l3) = paging::l3_below_4g_pfn(layout, params.pae) {
        let mfn = mem.mfn(l3).map_err(BuildError::Memory)?;
        if mfn.get() >= 0x10_0000 {
            return Err(BuildError::L3AboveFourGiB { pfn: l3, mfn });
        }
    }

    // setup_pgtables: the p2m list, then the tables.
    p2m::write_list(layout, mem).map_err(BuildError::P2m)?;
    paging::write_tables(layout, mem).map_err(BuildError::Paging)?;
    let m2p_updates = p2m::m2p_updates(cfg.relocated, mem).map_err(BuildError::P2m)?;

    let input = StartInfoInput {
        shared_info_mfn: cfg.shared_info_mfn,
        store_evtchn: cfg.store_evtchn,
        console_evtchn: cfg.console_evtchn,
        cmdline: cfg.cmdline,
    };
    start_info::fill_start_info(layout, &input, mem).map_err(BuildError::StartInfo)?;

    let top_mfn = mem.mfn(top_pfn).map_err(BuildError::Memory)?;
    let vcpu = vcpu::boot_context(layout, params.pae, top_mfn).map_err(BuildError::Vcpu)?;
    let hypercall_mfn = match layout.hypercall_pfn() {
        Some(p) => Some(mem.mfn(pfn_of(p)?).map_err(BuildError::Memory)?),
        None => None,
    };
    Ok(BuildOutput {
        layout: layout.clone(),
        start_info_pfn: pfn_of(layout.start_info_pfn)?,
        top_table_pfn: top_pfn,
        top_table_mfn: top_mfn,
        pin_cmd: PagingMode::of(layout.guest_type).pin_cmd(),
        hypercall_mfn,
        store_mfn: mem
            .mfn(pfn_of(layout.xenstore_pfn)?)
            .map_err(BuildError::Memory)?,
        console_mfn: mem
            .mfn(pfn_of(layout.console_pfn)?)
            .map_err(BuildError::Memory)?,
        vcpu,
        shared_info: start_info::shared_info_page(),
        m2p_updates,
        ramdisk,
    })
}

/// Whether a PAE mode needs its L3 below 4 GiB (for a host deciding on relocation; pvbuild's
/// host does none, so such a guest whose L3 lands above 4 GiB is refused by [`build`]).
pub fn needs_l3_below_4g(params: &KernelParams) -> bool {
    PagingMode::of(params.guest_type) == PagingMode::Pae && params.pae == PaeMode::Yes
}

/// Bytes of guest memory a layout needs (for sizing an in-memory guest).
pub fn guest_bytes(layout: &Layout) -> Option<u64> {
    layout.nr_pages.checked_mul(PAGE_SIZE)
}

impl<K: core::fmt::Debug, M: core::fmt::Debug> core::fmt::Display for BuildError<K, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Layout(e) => write!(f, "layout: {e}"),
            BuildError::Memory(e) => write!(f, "guest memory: {e:?}"),
            BuildError::MemorySize { layout, memory } => write!(
                f,
                "guest memory has {memory:#x} pages, the layout {layout:#x}"
            ),
            BuildError::Kernel(e) => write!(f, "loading the kernel: {e:?}"),
            BuildError::Module(e) => write!(f, "ramdisk: {e}"),
            BuildError::Ramdisk { len, segment } => write!(
                f,
                "ramdisk of {len:#x} bytes does not match its segment of {segment:#x} bytes"
            ),
            BuildError::L3AboveFourGiB { pfn, mfn } => write!(
                f,
                "PAE L3 (pfn {pfn:#x}) at mfn {mfn:#x} is above 4 GiB and the guest lacks extended-cr3"
            ),
            BuildError::Paging(e) => write!(f, "page tables: {e:?}"),
            BuildError::P2m(e) => write!(f, "p2m list: {e:?}"),
            BuildError::StartInfo(e) => write!(f, "start_info: {e:?}"),
            BuildError::Vcpu(e) => write!(f, "vcpu context: {e:?}"),
        }
    }
}

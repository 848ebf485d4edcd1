//! The PVH build sequence of `pvbuild create`, undone on failure, in libxl's order
//! (`libxl__domain_make`, `libxl__build_pre`, `libxl__arch_domain_create`,
//! `libxl__build_hvm` with libxenguest's `meminit_hvm`, `xc_dom_build_image`,
//! `alloc_magic_pages_hvm`, `bootlate_hvm`, `vcpu_hvm`, `xc_dom_gnttab_init`):
//!
//! 1. the compat check: Xen must run `hvm-3.0-x86_32` guests;
//! 2. the domain, created as an HVM container with HAP and only the local APIC emulated
//!    (`XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap`, `XEN_X86_EMU_LAPIC`); its vcpus, placement,
//!    memory limit (the guest's memory plus libxl's 1 MiB) and event channels;
//! 3. its HVM parameters (timer mode, altp2m off) and paging pool (libxl's `shadow_memkb`);
//! 4. its RAM populated around the hole below 4 GiB (1 GiB, 2 MiB, then 4 KiB extents);
//! 5. its memory map (`XENMEM_set_memory_map`);
//! 6. the ACPI modules populated and written; the kernel and ramdisk written;
//! 7. the special pages populated and cleared, the identity page table, the ring and
//!    ioreq pfns as HVM parameters; the start info written;
//! 8. the ring event channels as HVM parameters; the MTRRs of every vcpu and the boot vcpu's
//!    registers (`XEN_DOMCTL_sethvmcontext`);
//! 9. the grant table seeded with the console and xenstore rings.
//!
//! Any failure undoes every step before it (the domain is destroyed, and with it all the
//! rest); success hands a [`Building`] to the caller, which writes xenstore and unpauses.

use std::fmt;

use pvbuild_core::addr::{Mfn, Pfn, PAGE_SHIFT};
use pvbuild_core::image::LoadKernel;
use pvbuild_core::mem::GuestMemory;
use pvbuild_core::pvh::layout::{self as pl, special_pfn, Special};
use pvbuild_core::pvh::vcpu;

use crate::build::runner::{run_undo, Building, Created, UndoFn, MAXMEM_SLACK_KIB};
use crate::sys::hvm::*;
use crate::xen::privcmd_mem::PrivcmdMemory;
use crate::xen::{DomainConfig, SeedGrant, Xen, XenError};

use super::plan::PvhPlanned;

/// The steps of [`create`], in order; the names are what errors and `--fail-at` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PvhStep {
    /// Checking Xen runs HVM-container guests.
    Compat,
    /// `XEN_DOMCTL_createdomain` (HVM, HAP, LAPIC).
    CreateDomain,
    /// `XEN_DOMCTL_max_vcpus`.
    MaxVcpus,
    /// vcpu affinity and scheduler parameters.
    Placement,
    /// `XEN_DOMCTL_max_mem`.
    MaxMem,
    /// The xenstore and console event channels.
    EventChannels,
    /// `HVM_PARAM_TIMER_MODE`, `HVM_PARAM_ALTP2M`.
    HvmParams,
    /// `XEN_DOMCTL_set_paging_mempool_size`.
    PagingPool,
    /// Populating RAM.
    Populate,
    /// `XENMEM_set_memory_map`.
    MemoryMap,
    /// Populating and writing the ACPI modules.
    Acpi,
    /// Writing the kernel and the ramdisk.
    Image,
    /// The special pages, their HVM parameters, and the start info.
    SpecialPages,
    /// `HVM_PARAM_CONSOLE_EVTCHN`, `HVM_PARAM_STORE_EVTCHN`.
    Evtchn,
    /// `XEN_DOMCTL_sethvmcontext`.
    VcpuContext,
    /// Seeding the grant table.
    GrantTable,
}

impl PvhStep {
    /// Every step, in order.
    pub const ALL: [PvhStep; 16] = [
        PvhStep::Compat,
        PvhStep::CreateDomain,
        PvhStep::MaxVcpus,
        PvhStep::Placement,
        PvhStep::MaxMem,
        PvhStep::EventChannels,
        PvhStep::HvmParams,
        PvhStep::PagingPool,
        PvhStep::Populate,
        PvhStep::MemoryMap,
        PvhStep::Acpi,
        PvhStep::Image,
        PvhStep::SpecialPages,
        PvhStep::Evtchn,
        PvhStep::VcpuContext,
        PvhStep::GrantTable,
    ];

    /// The step's short name (`pvh-` and the step).
    pub const fn name(self) -> &'static str {
        match self {
            PvhStep::Compat => "pvh-compat",
            PvhStep::CreateDomain => "pvh-create-domain",
            PvhStep::MaxVcpus => "pvh-max-vcpus",
            PvhStep::Placement => "pvh-placement",
            PvhStep::MaxMem => "pvh-max-mem",
            PvhStep::EventChannels => "pvh-event-channels",
            PvhStep::HvmParams => "pvh-hvm-params",
            PvhStep::PagingPool => "pvh-paging-pool",
            PvhStep::Populate => "pvh-populate",
            PvhStep::MemoryMap => "pvh-memory-map",
            PvhStep::Acpi => "pvh-acpi",
            PvhStep::Image => "pvh-image",
            PvhStep::SpecialPages => "pvh-special-pages",
            PvhStep::Evtchn => "pvh-evtchn",
            PvhStep::VcpuContext => "pvh-vcpu-context",
            PvhStep::GrantTable => "pvh-grant-table",
        }
    }

    /// The step called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for PvhStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A step of an HVM-container build sequence (PVH's [`PvhStep`], HVM's
/// [`crate::build::hvm::HvmStep`]): what [`Run`] needs of it.
pub trait BuildStep: Copy + PartialEq + fmt::Display {
    /// The step's short name (errors, `--fail-at`, the test hook, the step timer).
    fn step_name(self) -> &'static str;
}

impl BuildStep for PvhStep {
    fn step_name(self) -> &'static str {
        self.name()
    }
}

/// A failed build: the step, why, and what undoing it could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {msg}{}", crate::build::runner::undo_note(.undo_errors))]
pub struct StepError<S: fmt::Display> {
    /// The step that failed.
    pub step: S,
    /// Why.
    pub msg: String,
    /// Undo steps that failed.
    pub undo_errors: Vec<String>,
}

/// A failed PVH build.
pub type PvhCreateError = StepError<PvhStep>;

/// What [`create`] builds.
#[derive(Debug, Clone, Copy)]
pub struct PvhRequest<'a, K> {
    /// The kernel.
    pub kernel: &'a K,
    /// The plan.
    pub planned: &'a PvhPlanned,
    /// The ramdisk's bytes.
    pub ramdisk: Option<&'a [u8]>,
    /// vcpus of the domain.
    pub max_vcpus: u32,
    /// The domain's UUID.
    pub handle: [u8; 16],
    /// The console backend's domain.
    pub console_backend: u16,
    /// The xenstore backend's domain.
    pub store_backend: u16,
    /// Where the domain runs.
    pub placement: &'a crate::control::placement::Resolved,
    /// Test-only: fail this step.
    pub fail_at: Option<PvhStep>,
}

/// A build in progress: each step run in turn (unless a failure is injected or Ctrl-C came),
/// timed, and on failure everything before it undone.
pub(crate) struct Run<'x, S> {
    pub(crate) xen: &'x Xen,
    pub(crate) undo: Vec<(&'static str, UndoFn)>,
    pub(crate) fail_at: Option<S>,
}

impl<S: BuildStep> Run<'_, S> {
    pub(crate) fn step<T>(
        &mut self,
        step: S,
        f: impl FnOnce(&Xen) -> Result<T, String>,
    ) -> Result<T, StepError<S>> {
        let r = crate::build::runner::gate(step.step_name(), self.fail_at == Some(step))
            .map_err(|stop| stop.to_string())
            .and_then(|()| f(self.xen));
        if r.is_ok() {
            crate::build::steps::lap(step.step_name());
        }
        r.map_err(|msg| StepError {
            step,
            msg,
            undo_errors: run_undo(self.xen, &mut self.undo),
        })
    }
}

/// The compat step of an HVM-container guest (PVH and HVM alike): this Xen runs
/// `hvm-3.0-x86_32` guests (`xc_dom_compat_check`). `kind` names the guest type in the error.
pub(crate) fn container_supported(x: &Xen, kind: &str) -> Result<(), String> {
    let caps = x.capabilities().map_err(s)?;
    if caps.iter().any(|c| c == "hvm-3.0-x86_32") {
        Ok(())
    } else {
        Err(format!(
            "guest type hvm-3.0-x86_32 ({kind}) is not supported by this Xen (it runs: {})",
            caps.join(" ")
        ))
    }
}

/// `XEN_DOMCTL_createdomain` of an HVM-container guest (HVM | HAP) with `emulation_flags`
/// (libxl: LAPIC only for PVH, everything but vPCI for HVM). Recorded for a later pvbuild
/// should this one be killed ([`crate::build::journal`]): the UUID before the domain exists, its id
/// as soon as Xen returns it.
pub(crate) fn create_container(
    x: &Xen,
    max_vcpus: u32,
    handle: [u8; 16],
    placement: &crate::control::placement::Resolved,
    emulation_flags: u32,
) -> Result<u16, String> {
    let mut cfg = DomainConfig::pv(max_vcpus, x.max_grant_version().map_err(s)?);
    cfg.handle = handle;
    cfg.cpupool_id = placement.pool_id;
    cfg.flags = XEN_DOMCTL_CDF_HVM | XEN_DOMCTL_CDF_HAP;
    cfg.emulation_flags = emulation_flags;
    let uuid = crate::xenstore::Uuid::from_bytes(handle);
    crate::build::journal::note(&crate::build::journal::Entry::Uuid(uuid))
        .map_err(|e| format!("recording the domain's UUID: {e}"))?;
    let domid = x.create_domain(&cfg, None).map_err(s)?;
    if let Err(e) = crate::build::journal::note(&crate::build::journal::Entry::Domain(domid)) {
        let _ = x.destroy_domain(domid);
        return Err(format!("recording domain {domid}: {e}"));
    }
    Ok(domid)
}

/// Populates an HVM-container guest's RAM around its holes (`meminit_hvm`), one
/// `XENMEM_populate_physmap` per extent, the largest order first; a 4 KiB extent that Xen
/// cannot fill is an error.
pub(crate) fn populate_container(x: &Xen, domid: u16, memory: &pl::Memory) -> Result<(), String> {
    pl::populate(memory, &mut |order, first, n| {
        let done = x.populate_at(domid, order, first, n).map_err(s)?;
        if order == 0 && done != n {
            return Err(format!(
                "populating memory: {done} of {n} pages at pfn {first:#x}"
            ));
        }
        Ok(done)
    })
    .map(drop)
}

/// `XENMEM_set_memory_map` of an HVM-container guest: its memory map as the e820 Xen keeps.
pub(crate) fn set_container_memory_map(
    x: &Xen,
    domid: u16,
    memmap: &[pvbuild_core::pvh::start_info::HvmMemmapEntry],
) -> Result<(), String> {
    let map: Vec<crate::sys::memory::E820Entry> = memmap
        .iter()
        .map(|e| crate::sys::memory::E820Entry {
            addr: e.addr.into(),
            size: e.size.into(),
            r#type: e.r#type.into(),
        })
        .collect();
    x.set_memory_map(domid, &map).map_err(s)
}

pub(crate) fn s(e: XenError) -> String {
    e.to_string()
}

/// libxl's default `timer_mode` (`LIBXL_TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS`).
pub(crate) const TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS: u64 = 1;

/// libxl's paging pool for an HVM-container guest with HAP
/// (`libxl__get_required_paging_memory`): 1 MiB per vcpu and one page per MiB of RAM, KiB.
pub fn paging_pool_kib(max_vcpus: u32, memory_mib: u64) -> u64 {
    4 * (256 * u64::from(max_vcpus) + memory_mib)
}

/// Writes `bytes` at guest-physical `addr` of `domid` (pages already populated), mapping
/// exactly the frames written: in the hole below 4 GiB, neighbouring frames are not RAM.
pub(crate) fn write_phys(x: &Xen, domid: u16, addr: u64, bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let first = addr >> PAGE_SHIFT;
    let off = (addr & 0xfff) as usize;
    let pages = (off + bytes.len()).div_ceil(4096) as u64;
    let frames = (first..first + pages)
        .map(|f| Mfn::new(f).map_err(|e| format!("frame {f:#x}: {e:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut map = x.map_foreign(domid, &frames).map_err(s)?;
    map.as_mut_slice()
        .get_mut(off..off + bytes.len())
        .ok_or_else(|| format!("write at {addr:#x} out of its mapping"))?
        .copy_from_slice(bytes);
    Ok(())
}

/// `alloc_magic_pages_hvm`'s common part: the eight special pages populated and cleared,
/// their HVM parameters, and the identity page table for running with paging off under EPT.
pub(crate) fn special_pages(x: &Xen, domid: u16) -> Result<(), String> {
    let first = pl::SPECIAL_FIRST_PFN;
    for i in 0..pl::NR_SPECIAL_PAGES {
        // populate_physmap_exact of all eight; one extent each, as its list holds.
        let done = x.populate_at(domid, 0, first + i, 1).map_err(s)?;
        if done != 1 {
            return Err(format!("populating special page {:#x}", first + i));
        }
    }
    let zero = vec![0u8; (pl::NR_SPECIAL_PAGES * 4096) as usize];
    write_phys(x, domid, first << PAGE_SHIFT, &zero)?;
    for (param, page) in [
        (HVM_PARAM_STORE_PFN, Special::Xenstore),
        (HVM_PARAM_BUFIOREQ_PFN, Special::BufIoreq),
        (HVM_PARAM_IOREQ_PFN, Special::Ioreq),
        (HVM_PARAM_CONSOLE_PFN, Special::Console),
        (HVM_PARAM_PAGING_RING_PFN, Special::Paging),
        (HVM_PARAM_MONITOR_RING_PFN, Special::Access),
        (HVM_PARAM_SHARING_RING_PFN, Special::Sharing),
    ] {
        x.hvm_param_set(domid, param, special_pfn(page))
            .map_err(s)?;
    }
    // 4 MiB superpages: present, writable, user, accessed, dirty, PSE.
    let ident: Vec<u8> = (0u32..1024)
        .flat_map(|i| ((i << 22) | 0xe7).to_le_bytes())
        .collect();
    let ident_pfn = special_pfn(Special::IdentPt);
    write_phys(x, domid, ident_pfn << PAGE_SHIFT, &ident)?;
    x.hvm_param_set(domid, HVM_PARAM_IDENT_PT, ident_pfn << PAGE_SHIFT)
        .map_err(s)
}

/// Builds the PVH guest `req` describes, paused. See the module docs for the order.
pub fn create<'x, K: LoadKernel>(
    xen: &'x Xen,
    req: &PvhRequest<'_, K>,
) -> Result<Building<'x>, PvhCreateError> {
    let p = &req.planned.plan;
    let l = &p.layout;
    let mut run = Run {
        xen,
        undo: Vec::new(),
        fail_at: req.fail_at,
    };
    run.step(PvhStep::Compat, |x| container_supported(x, "PVH"))?;
    let domid = run.step(PvhStep::CreateDomain, |x| {
        create_container(
            x,
            req.max_vcpus,
            req.handle,
            req.placement,
            XEN_X86_EMU_LAPIC,
        )
    })?;
    run.undo.push((
        "destroy domain",
        Box::new(move |x: &Xen| x.destroy_domain(domid).map_err(|e| e.to_string())),
    ));
    run.step(PvhStep::MaxVcpus, |x| {
        x.max_vcpus(domid, req.max_vcpus).map_err(s)
    })?;
    run.step(PvhStep::Placement, |x| {
        crate::control::placement::apply(x, domid, req.placement).map_err(|e| e.to_string())
    })?;
    let total_pages = l.memory.total_pages();
    run.step(PvhStep::MaxMem, |x| {
        let kib = total_pages
            .checked_mul(4)
            .and_then(|k| k.checked_add(MAXMEM_SLACK_KIB))
            .ok_or_else(|| format!("{total_pages:#x} pages is too much memory"))?;
        x.max_mem(domid, kib).map_err(s)
    })?;
    let (store_port, console_port) = run.step(PvhStep::EventChannels, |x| {
        Ok((
            x.evtchn_alloc_unbound(domid, req.store_backend)
                .map_err(s)?,
            x.evtchn_alloc_unbound(domid, req.console_backend)
                .map_err(s)?,
        ))
    })?;
    run.step(PvhStep::HvmParams, |x| {
        x.hvm_param_set(
            domid,
            HVM_PARAM_TIMER_MODE,
            TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS,
        )
        .map_err(s)?;
        x.hvm_param_set(domid, HVM_PARAM_ALTP2M, 0).map_err(s)
    })?;
    run.step(PvhStep::PagingPool, |x| {
        let kib = paging_pool_kib(req.max_vcpus, req.planned.memory_mib);
        x.set_paging_mempool_size(domid, kib * 1024).map_err(s)
    })?;
    run.step(PvhStep::Populate, |x| {
        populate_container(x, domid, &l.memory)
    })?;
    run.step(PvhStep::MemoryMap, |x| {
        set_container_memory_map(x, domid, &p.memmap)
    })?;
    // The guest's frames are its pfns (a translated guest): an identity "p2m" over the RAM
    // below the hole, for the image (its mappings are rounded out to 2 MiB within it).
    let identity = || -> Result<Vec<Mfn>, String> {
        (0..l.memory.lowmem_end() >> PAGE_SHIFT)
            .map(|f| Mfn::new(f).map_err(|e| format!("frame {f:#x}: {e:?}")))
            .collect()
    };
    run.step(PvhStep::Acpi, |x| {
        let pd = req.planned;
        for ((addr, len), bytes) in p.acpi.modules().into_iter().zip([
            pd.rsdp.as_slice(),
            pd.info.as_slice(),
            pd.tables.as_slice(),
        ]) {
            // xc_dom_load_acpi: each page populated one by one.
            let first = addr >> PAGE_SHIFT;
            let pages = ((addr & 0xfff) + len).div_ceil(4096);
            for f in first..first + pages {
                let done = x.populate_at(domid, 0, f, 1).map_err(s)?;
                if done != 1 {
                    return Err(format!("populating ACPI page {f:#x}: Xen gave none"));
                }
            }
            write_phys(x, domid, addr, bytes.get(..len as usize).unwrap_or(bytes))?;
        }
        Ok(())
    })?;
    run.step(PvhStep::Image, |x| {
        let mut mem = PrivcmdMemory::new(x, domid, identity()?);
        let k = &l.kernel;
        let kpfn = Pfn::new(k.pfn).map_err(|e| format!("kernel pfn: {e:?}"))?;
        let view = mem
            .pages_mut(kpfn, k.pages)
            .map_err(|e| format!("mapping the kernel's pages: {e}"))?;
        let klen = (k.vend - k.vstart) as usize;
        // libxenguest clears a segment when it allocates it.
        view.fill(0);
        let dest = view
            .get_mut(..klen)
            .ok_or_else(|| "kernel segment shorter than the kernel".to_owned())?;
        req.kernel
            .load(dest)
            .map_err(|e| format!("loading the kernel: {e:?}"))?;
        if let (Some(m), Some(blob)) = (&l.module, req.ramdisk) {
            let plan = pvbuild_core::module::plan(blob).map_err(|e| format!("ramdisk: {e}"))?;
            let mpfn = Pfn::new(m.pfn).map_err(|e| format!("module pfn: {e:?}"))?;
            pvbuild_core::module::load(blob, &plan, mpfn, m.pages, &mut mem, &mut |_| {})
                .map_err(|e| format!("loading the ramdisk: {e:?}"))?;
        }
        Ok(())
    })?;
    run.step(PvhStep::SpecialPages, |x| {
        special_pages(x, domid)?;
        write_phys(
            x,
            domid,
            l.start_info.pfn << PAGE_SHIFT,
            &req.planned.start_info,
        )
    })?;
    run.step(PvhStep::Evtchn, |x| {
        x.hvm_param_set(domid, HVM_PARAM_CONSOLE_EVTCHN, u64::from(console_port))
            .map_err(s)?;
        x.hvm_param_set(domid, HVM_PARAM_STORE_EVTCHN, u64::from(store_port))
            .map_err(s)
    })?;
    run.step(PvhStep::VcpuContext, |x| {
        let full = x.hvm_context(domid).map_err(s)?;
        for i in 0..req.max_vcpus {
            let inst = u16::try_from(i).map_err(|_| format!("vcpu {i}"))?;
            let rec = vcpu::mtrr_record(&full, inst).map_err(|e| e.to_string())?;
            x.set_hvm_context(domid, &rec).map_err(s)?;
        }
        // Last: each sethvmcontext puts every vcpu down; the BSP's comes up with its record.
        let bsp = vcpu::bsp_record(&full, l.entry, l.start_info.pfn << PAGE_SHIFT)
            .map_err(|e| e.to_string())?;
        x.set_hvm_context(domid, &bsp).map_err(s)
    })?;
    let console_pfn = special_pfn(Special::Console);
    let store_pfn = special_pfn(Special::Xenstore);
    let frame = |f: u64| Mfn::new(f).map_err(|e| format!("frame {f:#x}: {e:?}"));
    let (console_mfn, store_mfn) = run.step(PvhStep::GrantTable, |x| {
        let (c, st) = (frame(console_pfn)?, frame(store_pfn)?);
        x.seed_grant_table(
            domid,
            Some(SeedGrant {
                backend: req.console_backend,
                frame: c,
            }),
            Some(SeedGrant {
                backend: req.store_backend,
                frame: st,
            }),
        )
        .map_err(s)?;
        Ok((c, st))
    })?;
    let created = Created {
        domid,
        nr_pages: total_pages,
        store_mfn,
        store_port,
        console_mfn,
        console_port,
        top_table_mfn: Mfn::default(),
    };
    Ok(Building::from_parts(
        xen,
        std::mem::take(&mut run.undo),
        created,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_pool_is_libxls() {
        // 2 vcpus, 256 MiB: 4 * (512 + 256) KiB.
        assert_eq!(paging_pool_kib(2, 256), 3072);
    }

    #[test]
    fn step_names_round_trip() {
        for st in PvhStep::ALL {
            assert_eq!(PvhStep::from_name(st.name()), Some(st));
        }
    }
}

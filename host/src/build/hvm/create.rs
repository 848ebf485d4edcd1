//! The HVM build sequence of `pvbuild create`, undone on failure, in libxl's order
//! (`libxl__domain_make`, `libxl__build_pre`, `libxl__arch_domain_create`,
//! `libxl__build_hvm` with libxenguest's HVM loader, `meminit_hvm`,
//! `alloc_magic_pages_hvm`, `bootlate_hvm`, `vcpu_hvm`, `xc_dom_gnttab_init`, then libxl's
//! `hvm_build_set_params`). The PVH sequence ([`crate::build::pvh::create`]) with what a device
//! model changes:
//!
//! 1. the compat check (`hvm-3.0-x86_32`);
//! 2. the domain with every emulated device but vPCI (`XEN_X86_EMU_ALL & ~XEN_X86_EMU_VPCI`)
//!    and HAP; vcpus, placement, memory limit (the config's memory, video memory included,
//!    plus libxl's 1 MiB), event channels;
//! 3. HVM parameters (HPET and vpt_align on, timer mode, altp2m off) and the paging pool;
//! 4. RAM populated with the VGA hole left out (pfns 0xa0..0xc0), the hole below 4 GiB at
//!    0xf0000000; the memory map (from 1 MiB);
//! 5. hvmloader at its physical addresses, SeaBIOS as the system firmware module;
//! 6. the special pages and their parameters, the eight ioreq server pages, the start info,
//!    the `hvm_info` table (pfn 0x9f);
//! 7. the ring event channels as parameters; the boot vcpu at hvmloader's entry (no MTRR
//!    records: hvmloader sets them up);
//! 8. the grant table seeded with the console and xenstore rings.

use std::fmt;

use pvbuild_core::addr::{Mfn, PAGE_SHIFT};
use pvbuild_core::hvm::{info, IOREQ_SERVER_FIRST_PFN, NR_IOREQ_SERVER_PAGES};
use pvbuild_core::pvh::layout::{special_pfn, Special};
use pvbuild_core::pvh::vcpu;
use zerocopy::IntoBytes;

use crate::build::pvh::create::{
    container_supported, create_container, paging_pool_kib, populate_container, s,
    set_container_memory_map, special_pages, write_phys, BuildStep, Run, StepError,
    TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS,
};
use crate::build::runner::{Building, Created, MAXMEM_SLACK_KIB};
use crate::sys::hvm::*;
use crate::xen::{SeedGrant, Xen};

use super::plan::HvmPlanned;

/// The steps of [`create`], in order; the names are what errors and `--fail-at` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HvmStep {
    /// Checking Xen runs HVM guests.
    Compat,
    /// `XEN_DOMCTL_createdomain` (HVM, HAP, every emulated device but vPCI).
    CreateDomain,
    /// `XEN_DOMCTL_max_vcpus`.
    MaxVcpus,
    /// vcpu affinity and scheduler parameters.
    Placement,
    /// `XEN_DOMCTL_max_mem`.
    MaxMem,
    /// The xenstore and console event channels.
    EventChannels,
    /// HPET, vpt_align, timer mode, altp2m.
    HvmParams,
    /// `XEN_DOMCTL_set_paging_mempool_size`.
    PagingPool,
    /// Populating RAM around the VGA hole.
    Populate,
    /// `XENMEM_set_memory_map`.
    MemoryMap,
    /// Writing hvmloader and SeaBIOS.
    Firmware,
    /// The special and ioreq server pages, their parameters, the start info and hvm_info.
    SpecialPages,
    /// `HVM_PARAM_CONSOLE_EVTCHN`, `HVM_PARAM_STORE_EVTCHN`.
    Evtchn,
    /// `XEN_DOMCTL_sethvmcontext`.
    VcpuContext,
    /// Seeding the grant table.
    GrantTable,
}

impl HvmStep {
    /// Every step, in order.
    pub const ALL: [HvmStep; 15] = [
        HvmStep::Compat,
        HvmStep::CreateDomain,
        HvmStep::MaxVcpus,
        HvmStep::Placement,
        HvmStep::MaxMem,
        HvmStep::EventChannels,
        HvmStep::HvmParams,
        HvmStep::PagingPool,
        HvmStep::Populate,
        HvmStep::MemoryMap,
        HvmStep::Firmware,
        HvmStep::SpecialPages,
        HvmStep::Evtchn,
        HvmStep::VcpuContext,
        HvmStep::GrantTable,
    ];

    /// The step's short name (`hvm-` and the step).
    pub const fn name(self) -> &'static str {
        match self {
            HvmStep::Compat => "hvm-compat",
            HvmStep::CreateDomain => "hvm-create-domain",
            HvmStep::MaxVcpus => "hvm-max-vcpus",
            HvmStep::Placement => "hvm-placement",
            HvmStep::MaxMem => "hvm-max-mem",
            HvmStep::EventChannels => "hvm-event-channels",
            HvmStep::HvmParams => "hvm-hvm-params",
            HvmStep::PagingPool => "hvm-paging-pool",
            HvmStep::Populate => "hvm-populate",
            HvmStep::MemoryMap => "hvm-memory-map",
            HvmStep::Firmware => "hvm-firmware",
            HvmStep::SpecialPages => "hvm-special-pages",
            HvmStep::Evtchn => "hvm-evtchn",
            HvmStep::VcpuContext => "hvm-vcpu-context",
            HvmStep::GrantTable => "hvm-grant-table",
        }
    }

    /// The step called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for HvmStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl BuildStep for HvmStep {
    fn step_name(self) -> &'static str {
        self.name()
    }
}

/// A failed HVM build.
pub type HvmCreateError = StepError<HvmStep>;

/// What [`create`] builds.
#[derive(Debug, Clone, Copy)]
pub struct HvmRequest<'a> {
    /// The plan.
    pub planned: &'a HvmPlanned,
    /// The config's memory in MiB, video memory included (libxl's `target_memkb` /
    /// `max_memkb`).
    pub memory_mib: u64,
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
    pub fail_at: Option<HvmStep>,
}

/// libxl's emulation flags for an HVM guest (`libxl__arch_domain_prepare_config`).
pub const HVM_EMULATION_FLAGS: u32 = XEN_X86_EMU_ALL & !XEN_X86_EMU_VPCI;

/// Builds the HVM guest `req` describes, paused. See the module docs for the order.
pub fn create<'x>(xen: &'x Xen, req: &HvmRequest<'_>) -> Result<Building<'x>, HvmCreateError> {
    let p = &req.planned.plan;
    let mut run = Run {
        xen,
        undo: Vec::new(),
        fail_at: req.fail_at,
    };
    run.step(HvmStep::Compat, |x| container_supported(x, "HVM"))?;
    let domid = run.step(HvmStep::CreateDomain, |x| {
        create_container(
            x,
            req.max_vcpus,
            req.handle,
            req.placement,
            HVM_EMULATION_FLAGS,
        )
    })?;
    run.undo.push((
        "destroy domain",
        Box::new(move |x: &Xen| x.destroy_domain(domid).map_err(|e| e.to_string())),
    ));
    run.step(HvmStep::MaxVcpus, |x| {
        x.max_vcpus(domid, req.max_vcpus).map_err(s)
    })?;
    run.step(HvmStep::Placement, |x| {
        crate::control::placement::apply(x, domid, req.placement).map_err(|e| e.to_string())
    })?;
    run.step(HvmStep::MaxMem, |x| {
        // libxl: target_memkb (video memory included) + LIBXL_MAXMEM_CONSTANT.
        let kib = req
            .memory_mib
            .checked_mul(1024)
            .and_then(|k| k.checked_add(MAXMEM_SLACK_KIB))
            .ok_or_else(|| format!("{} MiB is too much memory", req.memory_mib))?;
        x.max_mem(domid, kib).map_err(s)
    })?;
    let (store_port, console_port) = run.step(HvmStep::EventChannels, |x| {
        Ok((
            x.evtchn_alloc_unbound(domid, req.store_backend)
                .map_err(s)?,
            x.evtchn_alloc_unbound(domid, req.console_backend)
                .map_err(s)?,
        ))
    })?;
    run.step(HvmStep::HvmParams, |x| {
        // hvm_set_conf_params: hpet and vpt_align default to on.
        x.hvm_param_set(domid, HVM_PARAM_HPET_ENABLED, 1)
            .map_err(s)?;
        x.hvm_param_set(domid, HVM_PARAM_VPT_ALIGN, 1).map_err(s)?;
        x.hvm_param_set(
            domid,
            HVM_PARAM_TIMER_MODE,
            TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS,
        )
        .map_err(s)?;
        x.hvm_param_set(domid, HVM_PARAM_ALTP2M, 0).map_err(s)
    })?;
    run.step(HvmStep::PagingPool, |x| {
        let kib = paging_pool_kib(req.max_vcpus, req.memory_mib);
        x.set_paging_mempool_size(domid, kib * 1024).map_err(s)
    })?;
    run.step(HvmStep::Populate, |x| {
        populate_container(x, domid, &p.memory)
    })?;
    run.step(HvmStep::MemoryMap, |x| {
        set_container_memory_map(x, domid, &p.memmap)
    })?;
    run.step(HvmStep::Firmware, |x| {
        let fw = req.planned.firmware()?;
        let seg = &p.firmware;
        // elf_load_binary over the segment's pages, cleared first as libxenguest clears a
        // segment it allocates.
        let mut img = vec![0u8; (seg.pages << PAGE_SHIFT) as usize];
        let len = (seg.vend - seg.vstart) as usize;
        fw.load(
            img.get_mut(..len)
                .ok_or_else(|| "firmware segment shorter than hvmloader".to_owned())?,
        )
        .map_err(|e| format!("loading hvmloader: {e}"))?;
        write_phys(x, domid, seg.vstart, &img)?;
        let mut bios = vec![0u8; (p.bios.pages << PAGE_SHIFT) as usize];
        bios.get_mut(..req.planned.bios.len())
            .ok_or_else(|| "firmware module segment shorter than SeaBIOS".to_owned())?
            .copy_from_slice(&req.planned.bios);
        write_phys(x, domid, p.bios.vstart, &bios)
    })?;
    run.step(HvmStep::SpecialPages, |x| {
        special_pages(x, domid)?;
        // The ioreq server pages, below the special pages.
        for i in 0..NR_IOREQ_SERVER_PAGES {
            let done = x
                .populate_at(domid, 0, IOREQ_SERVER_FIRST_PFN + i, 1)
                .map_err(s)?;
            if done != 1 {
                return Err(format!(
                    "populating ioreq server page {:#x}",
                    IOREQ_SERVER_FIRST_PFN + i
                ));
            }
        }
        let zero = vec![0u8; (NR_IOREQ_SERVER_PAGES << PAGE_SHIFT) as usize];
        write_phys(x, domid, IOREQ_SERVER_FIRST_PFN << PAGE_SHIFT, &zero)?;
        x.hvm_param_set(domid, HVM_PARAM_IOREQ_SERVER_PFN, IOREQ_SERVER_FIRST_PFN)
            .map_err(s)?;
        x.hvm_param_set(
            domid,
            HVM_PARAM_NR_IOREQ_SERVER_PAGES,
            NR_IOREQ_SERVER_PAGES,
        )
        .map_err(s)?;
        let mut si = vec![0u8; (p.start_info.pages << PAGE_SHIFT) as usize];
        si.get_mut(..req.planned.start_info.len())
            .ok_or_else(|| "start info longer than its segment".to_owned())?
            .copy_from_slice(&req.planned.start_info);
        write_phys(x, domid, p.start_info.vstart, &si)?;
        // build_hvm_info clears the page, then the table at HVM_INFO_OFFSET (with libxl's
        // vcpus and apic already in it).
        let mut page = vec![0u8; 4096];
        page.get_mut(info::HVM_INFO_OFFSET..info::HVM_INFO_OFFSET + 48)
            .ok_or_else(|| "hvm_info outside its page".to_owned())?
            .copy_from_slice(p.info.as_bytes());
        write_phys(x, domid, info::HVM_INFO_PFN << PAGE_SHIFT, &page)
    })?;
    run.step(HvmStep::Evtchn, |x| {
        x.hvm_param_set(domid, HVM_PARAM_CONSOLE_EVTCHN, u64::from(console_port))
            .map_err(s)?;
        x.hvm_param_set(domid, HVM_PARAM_STORE_EVTCHN, u64::from(store_port))
            .map_err(s)
    })?;
    run.step(HvmStep::VcpuContext, |x| {
        let full = x.hvm_context(domid).map_err(s)?;
        // With a device model, no MTRR records: only the BSP's.
        let bsp = vcpu::bsp_record(&full, p.entry, p.start_info.pfn << PAGE_SHIFT)
            .map_err(|e| e.to_string())?;
        x.set_hvm_context(domid, &bsp).map_err(s)
    })?;
    let console_pfn = special_pfn(Special::Console);
    let store_pfn = special_pfn(Special::Xenstore);
    let frame = |f: u64| Mfn::new(f).map_err(|e| format!("frame {f:#x}: {e:?}"));
    let (console_mfn, store_mfn) = run.step(HvmStep::GrantTable, |x| {
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
        nr_pages: p.memory.total_pages(),
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
    fn emulation_flags_are_libxls() {
        // Every device but vPCI: LAPIC .. USE_PIRQ.
        assert_eq!(HVM_EMULATION_FLAGS, 0x3ff);
    }

    #[test]
    fn step_names_round_trip() {
        for st in HvmStep::ALL {
            assert_eq!(HvmStep::from_name(st.name()), Some(st));
        }
    }
}

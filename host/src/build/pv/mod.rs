//! The PV build sequence of `pvbuild create`, undone on failure.
//!
//! The order is libxl's and libxenguest's (`libxl__build_pre`, `meminit_pv`,
//! `xc_dom_build_image`, `xc_dom_boot_image`, `xc_dom_gnttab_init`):
//!
//! 1. check the kernel's guest type against the hypervisor's capability list (before any
//!    domain exists, as `xc_dom_compat_check` does);
//! 2. create the domain (in its cpupool), set its vcpus, their placement (affinity, the
//!    scheduler's weight and cap: [`crate::control::placement::apply`]), its memory limit (the guest's
//!    memory plus libxl's 1 MiB slack) and its address size;
//! 3. allocate the xenstore and console event channels, and set the guest's memory map to
//!    one RAM entry of `maxmem` (`libxl__arch_domain_create`'s `xc_domain_set_memmap_limit`:
//!    what lets the guest balloon up past `memory`);
//! 4. populate its memory (2 MiB extents, then 4 KiB);
//! 5. build the image into it through privcmd mappings ([`pvbuild_core::build::build`]);
//! 6. apply the machine-to-phys updates the build asks for, drop every mapping of the new
//!    page tables, pin the top table, initialise shared_info, set up the hypercall page and
//!    the boot vcpu's context;
//! 7. seed the grant table with the console and xenstore rings.
//!
//! The caller (which still writes xenstore and may unpause) gets a [`Building`] guard: until
//! [`Building::finish`] is called, dropping it or any failure runs its undo stack in reverse,
//! destroying the domain (and with it its memory, event channels and grant table). Other
//! layers push their own undo steps with [`Building::push_undo`].

use std::fmt;

use pvbuild_core::addr::Mfn;
use pvbuild_core::build::{self, BuildConfig, BuildOutput};
use pvbuild_core::image::{GuestType, LoadKernel};
use pvbuild_core::layout::Layout;
use zerocopy::IntoBytes;

use crate::build::runner::{run_undo, undo_note, Building, Created, UndoFn, MAXMEM_SLACK_KIB};
use crate::sys::memory::MmuUpdate;
use crate::xen::privcmd_mem::PrivcmdMemory;
use crate::xen::{DomainConfig, PinLevel, SeedGrant, Xen, XenError};

/// The steps of [`create`], in order; the names are what errors and `--fail-at` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateStep {
    /// Checking the guest type against Xen's capabilities.
    Compat,
    /// `XEN_DOMCTL_createdomain`.
    CreateDomain,
    /// `XEN_DOMCTL_max_vcpus`.
    MaxVcpus,
    /// vcpu affinity and scheduler parameters ([`crate::control::placement::apply`]).
    Placement,
    /// `XEN_DOMCTL_max_mem`.
    MaxMem,
    /// `XEN_DOMCTL_set_address_size`.
    AddressSize,
    /// The xenstore and console event channels.
    EventChannels,
    /// `XENMEM_set_memory_map`: the guest's E820, up to its maxmem.
    MemoryMap,
    /// Populating memory.
    Populate,
    /// Getting the shared_info frame.
    DomainInfo,
    /// Writing the image into the domain.
    Build,
    /// Machine-to-phys updates for moved frames.
    MachPhys,
    /// Pinning the top page table.
    Pin,
    /// Initialising shared_info.
    SharedInfo,
    /// `XEN_DOMCTL_hypercall_init`.
    HypercallPage,
    /// `XEN_DOMCTL_setvcpucontext`.
    VcpuContext,
    /// Seeding the grant table.
    GrantTable,
}

impl CreateStep {
    /// Every step, in order.
    pub const ALL: [CreateStep; 17] = [
        CreateStep::Compat,
        CreateStep::CreateDomain,
        CreateStep::MaxVcpus,
        CreateStep::Placement,
        CreateStep::MaxMem,
        CreateStep::AddressSize,
        CreateStep::EventChannels,
        CreateStep::MemoryMap,
        CreateStep::Populate,
        CreateStep::DomainInfo,
        CreateStep::Build,
        CreateStep::MachPhys,
        CreateStep::Pin,
        CreateStep::SharedInfo,
        CreateStep::HypercallPage,
        CreateStep::VcpuContext,
        CreateStep::GrantTable,
    ];

    /// The step's short name.
    pub const fn name(self) -> &'static str {
        match self {
            CreateStep::Compat => "compat",
            CreateStep::CreateDomain => "create-domain",
            CreateStep::MaxVcpus => "max-vcpus",
            CreateStep::Placement => "placement",
            CreateStep::MaxMem => "max-mem",
            CreateStep::AddressSize => "address-size",
            CreateStep::EventChannels => "event-channels",
            CreateStep::MemoryMap => "memory-map",
            CreateStep::Populate => "populate",
            CreateStep::DomainInfo => "domain-info",
            CreateStep::Build => "build",
            CreateStep::MachPhys => "machphys",
            CreateStep::Pin => "pin",
            CreateStep::SharedInfo => "shared-info",
            CreateStep::HypercallPage => "hypercall-page",
            CreateStep::VcpuContext => "vcpu-context",
            CreateStep::GrantTable => "grant-table",
        }
    }

    /// The step named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for CreateStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong in a step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateFailure {
    /// A hypercall or mapping failed.
    #[error(transparent)]
    Xen(#[from] XenError),
    /// The hypervisor does not run this type of guest.
    #[error("guest type {guest} is not supported by this Xen (it runs: {caps})")]
    Unsupported {
        /// The kernel's guest type.
        guest: &'static str,
        /// Xen's capability list.
        caps: String,
    },
    /// The core's build failed.
    #[error("{0}")]
    Build(String),
    /// A value out of range for the request.
    #[error("{0}")]
    Invalid(String),
    /// The placement could not be applied.
    #[error(transparent)]
    Placement(#[from] crate::control::placement::PlacementError),
    /// The test-only failure switch fired.
    #[error("failure injected for testing")]
    Injected,
    /// A signal (Ctrl-C, SIGTERM, SIGHUP) asked pvbuild to stop ([`crate::support::interrupt`]).
    #[error("interrupted")]
    Interrupted,
}

impl From<crate::build::runner::GateStop> for CreateFailure {
    fn from(stop: crate::build::runner::GateStop) -> Self {
        match stop {
            crate::build::runner::GateStop::Injected => Self::Injected,
            crate::build::runner::GateStop::Interrupted => Self::Interrupted,
        }
    }
}

/// A failed [`create`], after its undo stack has run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {failure}{}", undo_note(.undo_errors))]
pub struct CreateError {
    /// The step that failed.
    pub step: CreateStep,
    /// Why.
    pub failure: CreateFailure,
    /// Undo steps that themselves failed (the domain may be left behind if non-empty).
    pub undo_errors: Vec<String>,
}

/// What [`create`] needs: a kernel already parsed and a layout already planned (so bad input
/// is refused before the hypervisor is touched), and the guest's settings.
#[derive(Debug, Clone, Copy)]
pub struct CreateRequest<'a, K> {
    /// The parsed kernel.
    pub kernel: &'a K,
    /// Its planned layout (`nr_pages` is the guest's memory).
    pub layout: &'a Layout,
    /// The ramdisk file's bytes (unzipped, or not, into the guest as libxenguest does).
    pub ramdisk: Option<&'a [u8]>,
    /// The files `kernel` and `ramdisk` were mapped from, if they were: the ramdisk's pages
    /// are dropped from dom0 as they are loaded, and a file that changed size while mapped
    /// fails the build.
    pub inputs: Option<&'a crate::plan::Inputs>,
    /// The command line.
    pub cmdline: &'a [u8],
    /// The guest's maximum memory in KiB (the config's `maxmem`, libxl's `max_memkb`): its
    /// memory map covers this much, so it may balloon up to it.
    pub max_memkb: u64,
    /// Number of vcpus the domain has (the config's `maxvcpus`; xenstore's
    /// `cpu/N/availability` says which the guest brings up).
    pub vcpus: u32,
    /// The domain's UUID.
    pub handle: [u8; 16],
    /// Domain serving the console ring (dom0).
    pub console_backend: u16,
    /// Domain serving xenstore (dom0).
    pub store_backend: u16,
    /// The cpupool, vcpu affinity and scheduler parameters, resolved against the host
    /// ([`crate::control::placement::Resolved::NONE`]: Xen's defaults).
    pub placement: &'a crate::control::placement::Resolved,
    /// Test-only: make this step fail, to prove everything before it is undone.
    pub fail_at: Option<CreateStep>,
}

struct Run<'x> {
    xen: &'x Xen,
    undo: Vec<(&'static str, UndoFn)>,
    fail_at: Option<CreateStep>,
}

impl Run<'_> {
    fn step<T>(
        &mut self,
        step: CreateStep,
        f: impl FnOnce(&Xen) -> Result<T, CreateFailure>,
    ) -> Result<T, CreateError> {
        let r = crate::build::runner::gate(step.name(), self.fail_at == Some(step))
            .map_err(CreateFailure::from)
            .and_then(|()| f(self.xen));
        if r.is_ok() {
            crate::build::steps::lap(step.name());
        }
        r.map_err(|failure| CreateError {
            step,
            failure,
            undo_errors: run_undo(self.xen, &mut self.undo),
        })
    }
}

fn pin_level(guest: GuestType) -> PinLevel {
    match guest {
        GuestType::X86_64 => PinLevel::L4,
        GuestType::X86_32Pae => PinLevel::L3,
        GuestType::X86_32 => PinLevel::L2,
    }
}

fn address_size(guest: GuestType) -> u32 {
    match guest {
        GuestType::X86_64 => 64,
        GuestType::X86_32Pae | GuestType::X86_32 => 32,
    }
}

/// Creates and builds the domain `req` describes, leaving it paused. On failure everything
/// made so far is undone before the error is returned.
pub fn create<'x, K: LoadKernel>(
    xen: &'x Xen,
    req: &CreateRequest<'_, K>,
) -> Result<Building<'x>, CreateError> {
    let layout = req.layout;
    let guest = layout.guest_type;
    let mut run = Run {
        xen,
        undo: Vec::new(),
        fail_at: req.fail_at,
    };

    run.step(CreateStep::Compat, |x| {
        let caps = x.capabilities()?;
        if caps.iter().any(|c| c == guest.xen_caps_name()) {
            Ok(())
        } else {
            Err(CreateFailure::Unsupported {
                guest: guest.xen_caps_name(),
                caps: caps.join(" "),
            })
        }
    })?;

    let domid = run.step(CreateStep::CreateDomain, |x| {
        let mut cfg = DomainConfig::pv(req.vcpus, x.max_grant_version()?);
        cfg.handle = req.handle;
        cfg.cpupool_id = req.placement.pool_id;
        // The crash-safety record ([`crate::build::journal`]) learns the UUID before the domain
        // exists and its id as soon as Xen returns it: a kill in between still leaves it
        // findable (by its handle).
        let uuid = crate::xenstore::Uuid::from_bytes(req.handle);
        crate::build::journal::note(&crate::build::journal::Entry::Uuid(uuid))
            .map_err(|e| CreateFailure::Invalid(format!("recording the domain's UUID: {e}")))?;
        let domid = x.create_domain(&cfg, None)?;
        if let Err(e) = crate::build::journal::note(&crate::build::journal::Entry::Domain(domid)) {
            let _ = x.destroy_domain(domid);
            return Err(CreateFailure::Invalid(format!(
                "recording domain {domid}: {e}"
            )));
        }
        Ok(domid)
    })?;
    run.undo.push((
        "destroy domain",
        Box::new(move |x: &Xen| x.destroy_domain(domid).map_err(|e| e.to_string())),
    ));

    run.step(CreateStep::MaxVcpus, |x| Ok(x.max_vcpus(domid, req.vcpus)?))?;
    run.step(CreateStep::Placement, |x| {
        Ok(crate::control::placement::apply(x, domid, req.placement)?)
    })?;
    run.step(CreateStep::MaxMem, |x| {
        let kib = layout
            .nr_pages
            .checked_mul(4)
            .and_then(|k| k.checked_add(MAXMEM_SLACK_KIB))
            .ok_or_else(|| {
                CreateFailure::Invalid(format!("{:#x} pages is too much memory", layout.nr_pages))
            })?;
        Ok(x.max_mem(domid, kib)?)
    })?;
    run.step(CreateStep::AddressSize, |x| {
        Ok(x.set_address_size(domid, address_size(guest))?)
    })?;
    let (store_port, console_port) = run.step(CreateStep::EventChannels, |x| {
        Ok((
            x.evtchn_alloc_unbound(domid, req.store_backend)?,
            x.evtchn_alloc_unbound(domid, req.console_backend)?,
        ))
    })?;
    // libxl: `xc_domain_set_memmap_limit(max_memkb + slack_memkb)`, slack_memkb being 0 for
    // a PV guest (libxl__domain_build_info_setdefault).
    run.step(CreateStep::MemoryMap, |x| {
        if req.max_memkb < layout.nr_pages.saturating_mul(4) {
            return Err(CreateFailure::Invalid(format!(
                "maxmem of {} KiB is below the guest's memory of {:#x} pages",
                req.max_memkb, layout.nr_pages
            )));
        }
        Ok(x.set_memmap_limit(domid, req.max_memkb)?)
    })?;
    let p2m = run.step(CreateStep::Populate, |x| {
        Ok(x.populate_physmap(domid, layout.nr_pages)?)
    })?;
    let shared_info_mfn = run.step(CreateStep::DomainInfo, |x| {
        let f = x.domain_info(domid)?.shared_info_frame;
        Mfn::new(f).map_err(|_| CreateFailure::Invalid(format!("shared_info frame {f:#x}")))
    })?;

    let out: BuildOutput = run.step(CreateStep::Build, |x| {
        let mut mem = PrivcmdMemory::new(x, domid, p2m);
        let cfg = BuildConfig {
            ramdisk: req.ramdisk,
            cmdline: req.cmdline,
            store_evtchn: store_port,
            console_evtchn: console_port,
            shared_info_mfn,
            // No PAE L3 exchange (XENMEM_exchange): a PAE guest without extended-cr3 whose L3
            // lands above 4 GiB is refused by the build, and undone.
            relocated: &[],
        };
        // `mem` drops at the end of this step: no mapping of the new page tables survives
        // to the pin (Xen refuses to make a writably mapped frame a page table).
        let out = build::build_with(req.kernel, layout, &cfg, &mut mem, &mut |n| {
            if let Some(i) = req.inputs {
                i.ramdisk_read(n);
            }
        })
        .map_err(|e| CreateFailure::Build(e.to_string()))?;
        if let Some(i) = req.inputs {
            i.check_files()
                .map_err(|e| CreateFailure::Build(e.to_string()))?;
        }
        Ok(out)
    })?;

    run.step(CreateStep::MachPhys, |x| {
        let ups: Vec<MmuUpdate> = out
            .m2p_updates
            .iter()
            .map(|u| MmuUpdate {
                ptr: u.ptr,
                val: u.val,
            })
            .collect();
        if !ups.is_empty() {
            x.mmu_update(domid, &ups)?;
        }
        Ok(())
    })?;
    run.step(CreateStep::Pin, |x| {
        Ok(x.pin_table(domid, pin_level(guest), out.top_table_mfn)?)
    })?;
    run.step(CreateStep::SharedInfo, |x| {
        let mut m = x.map_foreign(domid, &[shared_info_mfn])?;
        let src = out.shared_info.as_bytes();
        m.as_mut_slice()
            .get_mut(..src.len())
            .ok_or_else(|| CreateFailure::Invalid("shared_info larger than a page".into()))?
            .copy_from_slice(src);
        Ok(())
    })?;
    run.step(CreateStep::HypercallPage, |x| match out.hypercall_mfn {
        Some(m) => Ok(x.hypercall_init(domid, m)?),
        None => Ok(()),
    })?;
    run.step(CreateStep::VcpuContext, |x| {
        Ok(x.set_vcpu_context_bytes(domid, 0, out.vcpu.as_bytes())?)
    })?;
    run.step(CreateStep::GrantTable, |x| {
        let console = SeedGrant {
            backend: req.console_backend,
            frame: out.console_mfn,
        };
        let store = SeedGrant {
            backend: req.store_backend,
            frame: out.store_mfn,
        };
        Ok(x.seed_grant_table(domid, Some(console), Some(store))?)
    })?;

    Ok(Building::from_parts(
        xen,
        std::mem::take(&mut run.undo),
        Created {
            domid,
            nr_pages: layout.nr_pages,
            store_mfn: out.store_mfn,
            store_port,
            console_mfn: out.console_mfn,
            console_port,
            top_table_mfn: out.top_table_mfn,
        },
    ))
}

#[cfg(test)]
mod tests;

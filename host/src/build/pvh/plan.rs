//! Planning a PVH guest without Xen: the kernel parsed, the ramdisk sized, the memory split,
//! the ACPI tables built, the memory map and the segments laid out, the start info written;
//! and the arrangement printed in libxenguest's log lines (`pvbuild plan --type pvh`).

use std::fmt::Write as _;

use pvbuild_core::image::LoadKernel;
use pvbuild_core::kernel::Kernel;
use pvbuild_core::pvh::layout::{special_pfn, Seg, Special};
use pvbuild_core::pvh::{self, acpi, PvhPlan, PvhRequest};

use crate::plan::{Inputs, PlanError};

/// libxenguest's prefix of its log lines (`xl -vvv`), which `plan --type pvh` prints too.
pub const PLAN_LOG_PREFIX: &str = "domainbuilder: detail: ";

/// A planned PVH guest: the layout and the bytes that go into guest memory besides the
/// kernel and ramdisk.
#[derive(Debug, Clone)]
pub struct PvhPlanned {
    /// Memory in MiB.
    pub memory_mib: u64,
    /// The plan.
    pub plan: PvhPlan,
    /// ACPI module 0: the RSDP.
    pub rsdp: Vec<u8>,
    /// ACPI module 1: the `acpi_info` page.
    pub info: Vec<u8>,
    /// ACPI module 2: the tables (`plan.acpi.tables_len` bytes).
    pub tables: Vec<u8>,
    /// The start info segment's bytes.
    pub start_info: Vec<u8>,
    /// The command line given to the guest (None: none).
    pub cmdline: Option<String>,
}

/// Plans a PVH guest of `memory_mib` MiB and `max_vcpus` vcpus (`vcpus` online) running
/// `kern` with the ramdisk of `inputs` and `cmdline`.
pub fn plan_pvh(
    inputs: &Inputs,
    kern: &Kernel<'_>,
    memory_mib: u64,
    max_vcpus: u32,
    vcpus: u32,
    cmdline: Option<&str>,
) -> Result<PvhPlanned, PlanError> {
    let module_len = inputs.ramdisk().map(pvbuild_core::module::segment_len);
    plan_pvh_params(
        kern.params(),
        memory_mib,
        max_vcpus,
        vcpus,
        module_len,
        cmdline,
    )
}

/// [`plan_pvh`] from the kernel's parameters and the ramdisk's segment length.
pub fn plan_pvh_params(
    params: &pvbuild_core::image::KernelParams,
    memory_mib: u64,
    max_vcpus: u32,
    vcpus: u32,
    module_len: Option<u64>,
    cmdline: Option<&str>,
) -> Result<PvhPlanned, PlanError> {
    let req = PvhRequest {
        memory_mib,
        max_vcpus,
        vcpus,
        module_len,
        cmdline: cmdline.map(str::as_bytes),
    };
    let mut tables = vec![0u8; acpi::TABLES_BUF_LEN];
    let mut info = vec![0u8; acpi::INFO_MODULE_LEN];
    let mut rsdp = vec![0u8; acpi::RSDP_MODULE_LEN];
    let plan = pvh::plan(params, &req, &mut tables, &mut info, &mut rsdp)
        .map_err(|e| PlanError::Argument(format!("pvh: {e}")))?;
    tables.truncate(usize::try_from(plan.acpi.tables_len).unwrap_or(0));
    let seg_bytes = usize::try_from(plan.layout.start_info.pages * 4096)
        .map_err(|_| PlanError::Argument("pvh: start info too large".into()))?;
    let mut start_info = vec![0u8; seg_bytes];
    pvh::start_info::fill(
        &mut start_info,
        &plan.layout,
        req.cmdline,
        plan.acpi.rsdp_addr,
        &plan.memmap,
    )
    .map_err(|e| PlanError::Argument(format!("pvh: {e}")))?;
    Ok(PvhPlanned {
        memory_mib,
        plan,
        rsdp,
        info,
        tables,
        start_info,
        cmdline: cmdline.map(str::to_owned),
    })
}

fn seg_line(out: &mut String, s: &Seg) {
    let _ = writeln!(
        out,
        "{PLAN_LOG_PREFIX}{:<20}:   {:<12} : {:#x} -> {:#x}  (pfn {:#x} + {:#x} pages)",
        "xc_dom_alloc_segment", s.name, s.vstart, s.vend, s.pfn, s.pages
    );
}

/// The plan as libxenguest logs the same build (`xc_dom_mem_init`, `meminit_hvm`,
/// `xc_dom_alloc_segment`, `xc_dom_load_acpi`, `xc_dom_build_image`, `bootlate_hvm`), in
/// its order, then what pvbuild adds (the entry, the memory map, the ACPI tables).
pub fn render_text(p: &PvhPlanned) -> String {
    let l = &p.plan.layout;
    let mut out = String::new();
    let pages = l.memory.total_pages();
    let _ = writeln!(
        out,
        "{PLAN_LOG_PREFIX}xc_dom_mem_init: mem {} MB, pages {pages:#x} pages, 4k each",
        p.memory_mib
    );
    let _ = writeln!(out, "{PLAN_LOG_PREFIX}xc_dom_mem_init: {pages:#x} pages");
    for (s, e) in l.memory.ranges() {
        let _ = writeln!(out, "{PLAN_LOG_PREFIX}range: start={s:#x} end={e:#x}");
    }
    seg_line(&mut out, &l.kernel);
    let mapped_module = l.module.filter(|m| m.vstart < l.start_info.vstart);
    if let Some(m) = &mapped_module {
        seg_line(&mut out, m);
    }
    for (addr, len) in p.plan.acpi.modules() {
        let _ = writeln!(
            out,
            "{PLAN_LOG_PREFIX}xc_dom_load_acpi: {len} bytes at address {addr:x}"
        );
    }
    seg_line(&mut out, &l.start_info);
    let _ = writeln!(
        out,
        "{PLAN_LOG_PREFIX}{:<20}: virt_alloc_end : {:#x}",
        "xc_dom_build_image", l.virt_alloc_end
    );
    let _ = writeln!(
        out,
        "{PLAN_LOG_PREFIX}{:<20}: virt_pgtab_end : 0x0",
        "xc_dom_build_image"
    );
    if let (Some(m), None) = (&l.module, &mapped_module) {
        seg_line(&mut out, m);
    }
    if let Some(m) = &l.module {
        let _ = writeln!(
            out,
            "{PLAN_LOG_PREFIX}Adding module 0 guest_addr {:x} len {}",
            m.vstart,
            m.vend - m.vstart
        );
    }
    let _ = writeln!(out, "guest type       : hvm-3.0-x86_32 (PVH)");
    let _ = writeln!(out, "phys32 entry     : {:#x}", l.entry);
    let _ = writeln!(
        out,
        "start info       : {:#x} (%ebx)",
        l.start_info.pfn << 12
    );
    let a = &p.plan.acpi;
    let _ = writeln!(
        out,
        "acpi             : rsdp {:#x}, xsdt {:#x}, fadt {:#x}, madt {:#x}, dsdt {:#x}",
        a.rsdp_addr, a.xsdt, a.fadt, a.madt, a.dsdt
    );
    for e in &p.plan.memmap {
        let _ = writeln!(
            out,
            "memory map       : {:#012x} + {:#x} type {}",
            e.addr, e.size, e.r#type
        );
    }
    out
}

fn seg_json(s: &Seg) -> serde_json::Value {
    use crate::plan::addr;
    serde_json::json!({
        "start": addr(s.vstart),
        "end": addr(s.vend),
        "pfn": addr(s.pfn),
        "pages": s.pages,
    })
}

/// One special page (`alloc_magic_pages_hvm`) as the PV JSON gives a page: guest-physical
/// addresses (virt_base is 0).
fn special_json(page: Special) -> serde_json::Value {
    use crate::plan::addr;
    let pfn = special_pfn(page);
    serde_json::json!({
        "start": addr(pfn << 12),
        "end": addr((pfn + 1) << 12),
        "pfn": addr(pfn),
        "pages": 1,
    })
}

/// The plan as JSON: the PV JSON's fields where they apply to a PVH guest (addresses and
/// frame numbers as hex strings, counts as numbers), then the PVH layout: RAM around the
/// hole, the ACPI tables and modules, the memory map.
pub fn render_json(p: &PvhPlanned, vcpus: u32) -> serde_json::Value {
    use crate::plan::addr;
    let l = &p.plan.layout;
    let a = &p.plan.acpi;
    serde_json::json!({
        "guest_type": "hvm-3.0-x86_32",
        "type": "pvh",
        "memory_mib": p.memory_mib,
        "nr_pages": l.memory.total_pages(),
        "vcpus": vcpus,
        "cmdline": p.cmdline.as_deref().unwrap_or(""),
        "virt_base": addr(0),
        "phys32_entry": addr(u64::from(l.entry)),
        "kernel": seg_json(&l.kernel),
        "ramdisk": l.module.as_ref().map(seg_json),
        "start_info": seg_json(&l.start_info),
        "xenstore": special_json(Special::Xenstore),
        "console": special_json(Special::Console),
        "virt_end": addr(l.virt_alloc_end),
        "memory": {
            "ranges": l.memory.ranges().iter().map(|(s, e)| serde_json::json!({
                "start": addr(*s),
                "end": addr(*e),
            })).collect::<Vec<_>>(),
            "lowmem_end": addr(l.memory.lowmem_end()),
            "highmem_end": addr(l.memory.highmem_end()),
            "mmio_size": addr(l.memory.mmio_size()),
        },
        "acpi": {
            "modules": a.modules().iter().map(|(at, len)| serde_json::json!({
                "address": addr(*at),
                "bytes": len,
            })).collect::<Vec<_>>(),
            "rsdp": addr(a.rsdp_addr),
            "xsdt": addr(a.xsdt),
            "rsdt": addr(a.rsdt),
            "fadt": addr(a.fadt),
            "facs": addr(a.facs),
            "madt": addr(a.madt),
            "dsdt": addr(a.dsdt),
        },
        "memory_map": p.plan.memmap.iter().map(|e| serde_json::json!({
            "addr": addr(e.addr),
            "size": addr(e.size),
            "type": e.r#type,
        })).collect::<Vec<_>>(),
    })
}

/// `pvbuild plan --type pvh`: the plan of Debian-style arguments, as text or JSON.
pub fn plan_cmd(
    kernel: &std::path::Path,
    ramdisk: Option<&std::path::Path>,
    cmdline: &str,
    memory_mib: u64,
    vcpus: u32,
    json: bool,
) -> Result<String, PlanError> {
    if memory_mib == 0 || memory_mib > crate::plan::MAX_PLAN_MEMORY_MIB {
        return Err(PlanError::Argument(format!(
            "--memory {memory_mib} MiB out of range (1..={})",
            crate::plan::MAX_PLAN_MEMORY_MIB
        )));
    }
    if vcpus == 0 || vcpus > acpi::HVM_MAX_VCPUS {
        return Err(PlanError::Argument(format!(
            "--vcpus {vcpus} out of range (1..={})",
            acpi::HVM_MAX_VCPUS
        )));
    }
    if cmdline.len() >= pvbuild_core::limits::MAX_GUEST_CMDLINE {
        return Err(PlanError::Argument(format!(
            "--cmdline of {} bytes is too long",
            cmdline.len()
        )));
    }
    let inputs = Inputs::load(kernel, ramdisk)?;
    let kern = inputs.kernel()?;
    let cmd = (!cmdline.is_empty()).then_some(cmdline);
    let p = plan_pvh(&inputs, &kern, memory_mib, vcpus, vcpus, cmd)?;
    Ok(if json {
        format!("{}\n", render_json(&p, vcpus))
    } else {
        render_text(&p)
    })
}

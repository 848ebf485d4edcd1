//! Planning an HVM guest without Xen: hvmloader and SeaBIOS read and checked, the memory
//! split around the device model's hole, the segments laid out, the start info and the
//! hvm_info table written; and the arrangement printed in libxenguest's log lines
//! (`pvbuild plan --type hvm`).

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use pvbuild_core::hvm::{self, firmware::Firmware, HvmPlan, HvmRequest};
use pvbuild_core::pvh::layout::{populate, Seg};

use crate::build::pvh::PLAN_LOG_PREFIX;
use crate::plan::PlanError;

/// libxl's firmware for an HVM guest with QEMU (`libxl__domain_firmware`: `hvmloader` in
/// Debian's `libxl__xenfirmwaredir_path()`).
pub const HVMLOADER: &str = "/usr/lib/xen-4.17/boot/hvmloader";
/// The system firmware module libxl in Debian loads (`libxl__seabios_path()`).
pub const SEABIOS: &str = "/usr/share/seabios/bios-256k.bin";
/// Largest firmware file read (hvmloader is 170 KiB, SeaBIOS 256 KiB).
pub const FIRMWARE_MAX_BYTES: u64 = 16 << 20;

/// A planned HVM guest: the layout and the bytes that go into guest memory.
#[derive(Debug, Clone)]
pub struct HvmPlanned {
    /// The guest's RAM in MiB (the config's memory less the video memory).
    pub memory_mib: u64,
    /// The plan.
    pub plan: HvmPlan,
    /// hvmloader's file.
    pub firmware_path: PathBuf,
    /// hvmloader's bytes.
    pub firmware: Vec<u8>,
    /// SeaBIOS's bytes.
    pub bios: Vec<u8>,
    /// The start info segment's bytes.
    pub start_info: Vec<u8>,
}

impl HvmPlanned {
    /// hvmloader, parsed again (cheap: headers only) to load it.
    pub fn firmware(&self) -> Result<Firmware<'_>, String> {
        Firmware::parse(&self.firmware).map_err(|e| format!("hvmloader: {e}"))
    }
}

/// Reads a firmware file, at most [`FIRMWARE_MAX_BYTES`].
fn read_firmware(path: &Path) -> Result<Vec<u8>, PlanError> {
    let err = |source| PlanError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    let mut buf = Vec::new();
    f.take(FIRMWARE_MAX_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(err)?;
    if buf.len() as u64 > FIRMWARE_MAX_BYTES {
        return Err(PlanError::Argument(format!(
            "{}: firmware larger than {} MiB",
            path.display(),
            FIRMWARE_MAX_BYTES >> 20
        )));
    }
    Ok(buf)
}

/// Plans an HVM guest with `memory_mib` MiB of RAM (the config's memory less its video
/// memory) and `max_vcpus` vcpus (`vcpus` online), started in `hvmloader` with `bios`.
pub fn plan_hvm(
    hvmloader: &Path,
    bios: &Path,
    memory_mib: u64,
    max_vcpus: u32,
    vcpus: u32,
    apic: bool,
) -> Result<HvmPlanned, PlanError> {
    let firmware = read_firmware(hvmloader)?;
    let bios_bytes = read_firmware(bios)?;
    let fw = Firmware::parse(&firmware)
        .map_err(|e| PlanError::Argument(format!("firmware {}: {e}", hvmloader.display())))?;
    let req = HvmRequest {
        memory_mib,
        max_vcpus,
        vcpus,
        apic,
        bios_len: bios_bytes.len() as u64,
    };
    let plan = hvm::plan(&fw, &req).map_err(|e| PlanError::Argument(format!("hvm: {e}")))?;
    let seg_bytes = usize::try_from(plan.start_info.pages * 4096)
        .map_err(|_| PlanError::Argument("hvm: start info too large".into()))?;
    let mut start_info = vec![0u8; seg_bytes];
    hvm::start_info(&mut start_info, &plan)
        .map_err(|e| PlanError::Argument(format!("hvm: {e}")))?;
    Ok(HvmPlanned {
        memory_mib,
        plan,
        firmware_path: hvmloader.to_path_buf(),
        firmware,
        bios: bios_bytes,
        start_info,
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
/// `xc_dom_alloc_segment`, `xc_dom_build_image`), in its order, then what pvbuild adds.
pub fn render_text(p: &HvmPlanned) -> String {
    let l = &p.plan;
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
    // What meminit_hvm allocates when every superpage is granted.
    if let Ok(st) = populate::<()>(&l.memory, &mut |_, _, n| Ok(n)) {
        let _ = writeln!(out, "xc: detail: PHYSICAL MEMORY ALLOCATION:");
        let _ = writeln!(out, "xc: detail:   4KB PAGES: {:#018x}", st.normal);
        let _ = writeln!(out, "xc: detail:   2MB PAGES: {:#018x}", st.mb2);
        let _ = writeln!(out, "xc: detail:   1GB PAGES: {:#018x}", st.gb1);
    }
    seg_line(&mut out, &l.firmware);
    seg_line(&mut out, &l.bios);
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
    let _ = writeln!(out, "guest type       : hvm-3.0-x86_32 (HVM, hvmloader)");
    let _ = writeln!(out, "firmware         : {}", p.firmware_path.display());
    let _ = writeln!(out, "entry            : {:#x}", l.entry);
    let _ = writeln!(
        out,
        "start info       : {:#x} (%ebx)",
        l.start_info.pfn << 12
    );
    let _ = writeln!(
        out,
        "hvm_info         : vcpus {}, apic {}, low_mem_pgend {:#x}, high_mem_pgend {:#x}, reserved_mem_pgstart {:#x}",
        l.info.nr_vcpus,
        l.info.apic_mode,
        l.info.low_mem_pgend,
        l.info.high_mem_pgend,
        l.info.reserved_mem_pgstart
    );
    for e in &l.memmap {
        let _ = writeln!(
            out,
            "memory map       : {:#012x} + {:#x} type {}",
            e.addr, e.size, e.r#type
        );
    }
    out
}

/// `pvbuild plan --type hvm FIRMWARE`: the plan as text. `memory_mib` is the guest's RAM
/// (xl's `memory` less `videoram`).
pub fn plan_cmd(firmware: &Path, memory_mib: u64, vcpus: u32) -> Result<String, PlanError> {
    if memory_mib == 0 || memory_mib > crate::plan::MAX_PLAN_MEMORY_MIB {
        return Err(PlanError::Argument(format!(
            "--memory {memory_mib} MiB out of range (1..={})",
            crate::plan::MAX_PLAN_MEMORY_MIB
        )));
    }
    if vcpus == 0 || vcpus > hvm::info::HVM_MAX_VCPUS {
        return Err(PlanError::Argument(format!(
            "--vcpus {vcpus} out of range (1..={})",
            hvm::info::HVM_MAX_VCPUS
        )));
    }
    let p = plan_hvm(firmware, Path::new(SEABIOS), memory_mib, vcpus, vcpus, true)?;
    Ok(render_text(&p))
}

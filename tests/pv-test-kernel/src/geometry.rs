//! Pure arithmetic of the start-of-day layout (xen.h "Start-of-day memory layout") that the
//! kernel compares what it finds against.

pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
pub const PAGE_SIZE: u64 = 4096;

pub fn page_up(x: u64) -> u64 {
    x.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// The fewest tables that map `[VIRT_BASE, v_end)` with 4 KiB pages: one L4, and one
/// table per 512 GiB (L3), per 1 GiB (L2) and per 2 MiB (L1) spanned.
pub fn minimal_tables(v_end: u64) -> u64 {
    let last = v_end.saturating_sub(1).max(VIRT_BASE);
    let span = |shift: u32| (last >> shift) - (VIRT_BASE >> shift) + 1;
    1 + span(39) + span(30) + span(21)
}

/// Where the builder put each element of the initial mapping (virtual addresses).
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout {
    /// End of the kernel image (ELF: highest p_vaddr + p_memsz).
    pub image_end: u64,
    pub mod_start: u64,
    pub mod_len: u64,
    pub mfn_list: u64,
    pub nr_pages: u64,
    pub start_info: u64,
    pub pt_base: u64,
    pub nr_pt_frames: u64,
    /// rsp at entry.
    pub stack_top: u64,
}

impl Layout {
    /// xen.h rules 3 and 4: kernel, module (if any), p2m list, start_info, xenstore page,
    /// console page, page tables, boot stack; each starts on the page after the previous
    /// one ends. Returns the first element not where it should be: (name, expected, actual).
    pub fn first_mismatch(&self) -> Option<(&'static str, u64, u64)> {
        let mut next = page_up(self.image_end);
        let mut mismatch = None;
        let mut step = |name: &'static str, actual: u64, size: u64| {
            if actual != next && mismatch.is_none() {
                mismatch = Some((name, next, actual));
            }
            next = page_up(actual.saturating_add(size));
        };
        if self.mod_len != 0 {
            step("module", self.mod_start, self.mod_len);
        }
        step("p2m", self.mfn_list, self.nr_pages.saturating_mul(8));
        step("start_info", self.start_info, PAGE_SIZE);
        // The xenstore and console pages; their frames are checked by pfn elsewhere.
        step(
            "xenstore+console",
            self.start_info.saturating_add(PAGE_SIZE),
            2 * PAGE_SIZE,
        );
        step(
            "page_tables",
            self.pt_base,
            self.nr_pt_frames.saturating_mul(PAGE_SIZE),
        );
        step(
            "boot_stack",
            self.stack_top.saturating_sub(PAGE_SIZE),
            PAGE_SIZE,
        );
        mismatch
    }
}

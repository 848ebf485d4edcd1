//! What a parsed kernel tells the builder: the contract between the image parsers
//! ([`crate::elf`], [`crate::notes`], the 'bin' loader) and the layout solver.
//!
//! [`KernelParams`] mirrors libelf's `struct elf_dom_parms` (xen/include/xen/libelf.h): the
//! raw note values after defaults are applied, plus the calculated `virt_offset`,
//! `virt_kstart` and `virt_kend`. [`LoadKernel`] is how the builder copies the image into the
//! guest once the layout has given it a place.

/// The guest ABI a kernel asks for, named as Xen's capability strings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestType {
    /// `xen-3.0-x86_64`: 4-level paging.
    X86_64,
    /// `xen-3.0-x86_32p`: 32-bit with PAE, 3-level paging.
    X86_32Pae,
    /// `xen-3.0-x86_32`: 32-bit, legacy 2-level paging (no longer run by Xen).
    X86_32,
}

impl GuestType {
    /// The capability string Xen and libxenguest use for this guest type.
    pub const fn xen_caps_name(self) -> &'static str {
        match self {
            GuestType::X86_64 => "xen-3.0-x86_64",
            GuestType::X86_32Pae => "xen-3.0-x86_32p",
            GuestType::X86_32 => "xen-3.0-x86_32",
        }
    }
    /// Size in bytes of one page-table entry and of one p2m entry for this guest.
    pub const fn word_size(self) -> u64 {
        match self {
            GuestType::X86_64 | GuestType::X86_32Pae => 8,
            GuestType::X86_32 => 4,
        }
    }
    /// Size in bytes of one p2m (pfn → mfn) entry: the guest's `unsigned long`.
    pub const fn p2m_entry_size(self) -> u64 {
        match self {
            GuestType::X86_64 => 8,
            GuestType::X86_32Pae | GuestType::X86_32 => 4,
        }
    }
}

/// The `PAE_MODE` note, as libelf's `PAEKERN_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaeMode {
    /// No PAE (or no note).
    #[default]
    No,
    /// `yes`
    Yes,
    /// `yes[extended-cr3]`: the L3 may live above 4 GiB.
    ExtendedCr3,
    /// `bimodal`
    Bimodal,
}

/// Short text note values (GUEST_OS, XEN_VERSION, ...), truncated at 15 bytes like libelf's
/// `char[16]` fields.
pub type NoteText = heapless::String<16>;

/// Number of 32-bit feature submaps libelf keeps (`XENFEAT_NR_SUBMAPS`).
pub const XENFEAT_NR_SUBMAPS: usize = 1;

/// Xen feature flags (`XENFEAT_*` bit numbers, xen/include/public/features.h).
pub mod xenfeat {
    /// `writable_page_tables`
    pub const WRITABLE_PAGE_TABLES: u32 = 0;
    /// `writable_descriptor_tables`
    pub const WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
    /// `auto_translated_physmap`
    pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    /// `supervisor_mode_kernel`
    pub const SUPERVISOR_MODE_KERNEL: u32 = 3;
    /// `pae_pgdir_above_4gb`
    pub const PAE_PGDIR_ABOVE_4GB: u32 = 4;
    /// `mmu_pt_update_preserve_ad`
    pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
    /// `highmem_assist`
    pub const HIGHMEM_ASSIST: u32 = 6;
    /// `gnttab_map_avail_bits`
    pub const GNTTAB_MAP_AVAIL_BITS: u32 = 7;
    /// `hvm_callback_vector`
    pub const HVM_CALLBACK_VECTOR: u32 = 8;
    /// `hvm_safe_pvclock`
    pub const HVM_SAFE_PVCLOCK: u32 = 9;
    /// `hvm_pirqs`
    pub const HVM_PIRQS: u32 = 10;
    /// `dom0`
    pub const DOM0: u32 = 11;
}

/// Everything the builder needs to know about a kernel, after parsing and defaulting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelParams {
    /// The ABI the kernel was built for.
    pub guest_type: GuestType,
    /// `GUEST_OS` (e.g. "linux").
    pub guest_os: NoteText,
    /// `GUEST_VERSION`.
    pub guest_ver: NoteText,
    /// `XEN_VERSION` (e.g. "xen-3.0").
    pub xen_ver: NoteText,
    /// `LOADER` (e.g. "generic").
    pub loader: NoteText,
    /// `PAE_MODE`.
    pub pae: PaeMode,
    /// `BSD_SYMTAB`: the kernel wants its symbol table loaded after it.
    pub bsd_symtab: bool,
    /// `MOD_START_PFN`: the kernel takes its modules by pfn, unmapped (`unmapped_initrd`).
    pub unmapped_initrd: bool,
    /// `VIRT_BASE`.
    pub virt_base: u64,
    /// `ENTRY` (defaulted to the ELF entry point).
    pub virt_entry: u64,
    /// `HYPERCALL_PAGE` as a virtual address, if the kernel has one.
    pub virt_hypercall: Option<u64>,
    /// `HV_START_LOW`, if given.
    pub virt_hv_start_low: Option<u64>,
    /// `INIT_P2M`: where the kernel wants the p2m list mapped, if anywhere.
    pub p2m_base: Option<u64>,
    /// `PADDR_OFFSET` (after defaulting).
    pub elf_paddr_offset: u64,
    /// Features the kernel supports (`FEATURES` and `SUPPORTED_FEATURES`).
    pub f_supported: [u32; XENFEAT_NR_SUBMAPS],
    /// Features the kernel requires (the `!` form of `FEATURES`).
    pub f_required: [u32; XENFEAT_NR_SUBMAPS],
    /// `PHYS32_ENTRY`, if given.
    pub phys_entry: Option<u32>,
    /// Calculated: `virt_base - elf_paddr_offset`.
    pub virt_offset: u64,
    /// Calculated: lowest virtual address the image occupies.
    pub virt_kstart: u64,
    /// Calculated: end (exclusive) of the image in virtual memory.
    pub virt_kend: u64,
}

impl KernelParams {
    /// Whether the kernel supports feature bit `bit` (a `xenfeat` constant).
    pub fn supports(&self, bit: u32) -> bool {
        feature_bit(&self.f_supported, bit)
    }
    /// Whether the kernel requires feature bit `bit`.
    pub fn requires(&self, bit: u32) -> bool {
        feature_bit(&self.f_required, bit)
    }
}

/// A kernel whose features rule it out as an unprivileged PV guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureError {
    /// `FEATURES` requires `dom0`: libxenguest's `xc_dom_parse_elf_kernel`, "Kernel does not
    /// support unprivileged (DomU) operation".
    RequiresDom0,
    /// `FEATURES` requires `auto_translated_physmap`: libxenguest's `bootearly` for a PV
    /// container, "PV Autotranslate guests no longer supported".
    RequiresAutoTranslate,
    /// A required (active) feature outside the kernel's supported set: `xc_dom_parse_image`,
    /// "unsupported feature requested".
    Unsupported {
        /// The `XENFEAT_*` bit.
        bit: u32,
    },
}

impl core::fmt::Display for FeatureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FeatureError::RequiresDom0 => f.write_str(
                "the kernel requires feature dom0: it does not support unprivileged (domU) operation",
            ),
            FeatureError::RequiresAutoTranslate => f.write_str(
                "the kernel requires feature auto_translated_physmap: PV autotranslate guests are no longer supported",
            ),
            FeatureError::Unsupported { bit } => match crate::notes::feature_name(*bit) {
                Some(n) => write!(f, "the kernel requires feature {n} but does not support it"),
                None => write!(f, "the kernel requires feature bit {bit} but does not support it"),
            },
        }
    }
}

impl KernelParams {
    /// libxenguest's feature checks for a PV domU, in its order: a kernel requiring `dom0`
    /// is refused (`xc_dom_parse_elf_kernel`); the active features (what the kernel
    /// requires; the toolstack requests none, as xl requests none) must be in the supported
    /// set (`xc_dom_parse_image`); a PV kernel requiring `auto_translated_physmap` is
    /// refused (`bootearly`). A `!name` in `FEATURES` marks the feature supported as well as
    /// required, so the second check only fires for parameters not from libelf's parser.
    pub fn check_pv_domu_features(&self) -> Result<(), FeatureError> {
        if self.requires(xenfeat::DOM0) {
            return Err(FeatureError::RequiresDom0);
        }
        for (i, (req, sup)) in self.f_required.iter().zip(&self.f_supported).enumerate() {
            let missing = req & !sup;
            if missing != 0 {
                let bit = (i as u32) * 32 + missing.trailing_zeros();
                return Err(FeatureError::Unsupported { bit });
            }
        }
        if self.requires(xenfeat::AUTO_TRANSLATED_PHYSMAP) {
            return Err(FeatureError::RequiresAutoTranslate);
        }
        Ok(())
    }
}

fn feature_bit(map: &[u32; XENFEAT_NR_SUBMAPS], bit: u32) -> bool {
    let idx = (bit / 32) as usize;
    map.get(idx).is_some_and(|w| w & (1 << (bit % 32)) != 0)
}

/// A parsed kernel that can copy itself into guest memory.
pub trait LoadKernel {
    /// Error type of loading (a truncated segment, say).
    type Error: core::fmt::Debug;
    /// The parsed and defaulted parameters.
    fn params(&self) -> &KernelParams;
    /// Copy the image into `dest`, which covers exactly the virtual range
    /// `[virt_kstart, virt_kend)` and arrives zero-filled. Bytes beyond a segment's file size
    /// (its bss) are left zero.
    fn load(&self, dest: &mut [u8]) -> Result<(), Self::Error>;
}

//! Frame numbers and addresses: the three address spaces of a PV guest.
//!
//! A PV guest sees *pseudo-physical* frames ([`Pfn`]), which the hypervisor backs with
//! *machine* frames ([`Mfn`]); the guest's page tables hold machine frames, and its kernel runs
//! at *virtual* addresses ([`VirtAddr`]). Keeping them apart in the type system is what stops
//! the classic builder bug of writing a pfn where an mfn belongs.

/// log2 of the x86 page size.
pub const PAGE_SHIFT: u32 = 12;
/// The x86 page size in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Largest frame number the x86 page-table formats can hold (52-bit physical addresses).
pub const MAX_FRAME: u64 = (1 << (52 - PAGE_SHIFT)) - 1;

/// Error building an address newtype from an out-of-range value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrError {
    /// A frame number above [`MAX_FRAME`].
    FrameTooLarge(u64),
    /// An address that is not page aligned where one must be.
    Unaligned(u64),
    /// Address arithmetic that wrapped.
    Overflow,
}

macro_rules! frame_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// A frame number, checked against [`MAX_FRAME`].
            pub const fn new(n: u64) -> Result<Self, AddrError> {
                if n > MAX_FRAME {
                    Err(AddrError::FrameTooLarge(n))
                } else {
                    Ok(Self(n))
                }
            }
            /// The raw frame number.
            pub const fn get(self) -> u64 {
                self.0
            }
            /// The byte address of the frame's first byte.
            pub const fn addr(self) -> u64 {
                self.0 << PAGE_SHIFT
            }
            /// The frame `n` frames further on, checked.
            pub const fn checked_add(self, n: u64) -> Result<Self, AddrError> {
                match self.0.checked_add(n) {
                    Some(v) => Self::new(v),
                    None => Err(AddrError::Overflow),
                }
            }
        }

        impl core::fmt::LowerHex for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

frame_newtype!(
    /// A guest pseudo-physical frame number.
    Pfn
);
frame_newtype!(
    /// A machine frame number.
    Mfn
);

/// A guest virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(u64);

impl VirtAddr {
    /// Any 64-bit value; canonical form is the page-table code's concern.
    pub const fn new(v: u64) -> Self {
        Self(v)
    }
    /// A page-aligned address, or an error naming the value.
    pub const fn new_page_aligned(v: u64) -> Result<Self, AddrError> {
        if v % PAGE_SIZE != 0 {
            Err(AddrError::Unaligned(v))
        } else {
            Ok(Self(v))
        }
    }
    /// The raw address.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// `self + n`, checked.
    pub const fn checked_add(self, n: u64) -> Result<Self, AddrError> {
        match self.0.checked_add(n) {
            Some(v) => Ok(Self(v)),
            None => Err(AddrError::Overflow),
        }
    }
    /// Whether the address is page aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0 % PAGE_SIZE == 0
    }
}

impl core::fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Number of pages needed to hold `bytes` bytes, checked.
pub const fn pages_for(bytes: u64) -> Result<u64, AddrError> {
    match bytes.checked_add(PAGE_SIZE - 1) {
        Some(v) => Ok(v >> PAGE_SHIFT),
        None => Err(AddrError::Overflow),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked() {
        assert_eq!(Pfn::new(MAX_FRAME).map(Pfn::get), Ok(MAX_FRAME));
        assert_eq!(
            Pfn::new(MAX_FRAME + 1),
            Err(AddrError::FrameTooLarge(MAX_FRAME + 1))
        );
        assert_eq!(Mfn::new(5).map(Mfn::addr), Ok(0x5000));
        assert!(Pfn::new(MAX_FRAME).and_then(|p| p.checked_add(1)).is_err());
    }

    #[test]
    fn virt_alignment_and_pages() {
        assert!(VirtAddr::new_page_aligned(0x1001).is_err());
        assert_eq!(
            VirtAddr::new(u64::MAX).checked_add(1),
            Err(AddrError::Overflow)
        );
        assert_eq!(pages_for(0), Ok(0));
        assert_eq!(pages_for(1), Ok(1));
        assert_eq!(pages_for(4096), Ok(1));
        assert_eq!(pages_for(4097), Ok(2));
        assert!(pages_for(u64::MAX).is_err());
    }
}

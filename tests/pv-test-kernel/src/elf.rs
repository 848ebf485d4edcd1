//! Did the builder load the ELF image as its program headers say: file contents copied
//! (a non-zero pattern in .data) and the rest of each segment zeroed (.bss)?

// Built at compile time: an out-of-bounds index here is a compile error, not a panic.
#[allow(clippy::indexing_slicing)]
static mut DATA_PATTERN: [u32; 64] = {
    let mut a = [0u32; 64];
    let mut i = 0;
    while i < 64 {
        a[i] = 0x9e37_79b9u32.wrapping_mul(i as u32 + 1);
        i += 1;
    }
    a
};

static mut BSS_CANARY: [u64; 512] = [0; 512];

/// Count of .data words that differ from the pattern in the file.
pub fn data_mismatches() -> u32 {
    let mut bad = 0;
    for i in 0..64usize {
        // SAFETY: read-only volatile access to our own static, in bounds.
        let v = unsafe {
            core::ptr::addr_of!(DATA_PATTERN)
                .cast::<u32>()
                .add(i)
                .read_volatile()
        };
        if v != 0x9e37_79b9u32.wrapping_mul(i as u32 + 1) {
            bad += 1;
        }
    }
    bad
}

/// Count of non-zero words in a 4 KiB .bss array nothing ever writes.
pub fn bss_nonzero() -> u32 {
    let mut bad = 0;
    for i in 0..512usize {
        // SAFETY: read-only volatile access to our own static, in bounds.
        let v = unsafe {
            core::ptr::addr_of!(BSS_CANARY)
                .cast::<u64>()
                .add(i)
                .read_volatile()
        };
        if v != 0 {
            bad += 1;
        }
    }
    bad
}

//! ELF / 'bin' kernels, their Xen notes and `__xen_guest` string, and loading them: a kernel
//! that parses must load into a buffer of exactly [virt_kstart, virt_kend).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pvbuild_core::image::LoadKernel;

/// Loading allocates the kernel's virtual extent; keep the fuzzer's memory small.
const MAX_EXTENT: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = pvbuild_core::kernel::parse_kernel(data) {
        let p = k.params();
        assert!(p.virt_kstart <= p.virt_kend);
        let extent = p.virt_kend - p.virt_kstart;
        if extent <= MAX_EXTENT {
            let mut dest = vec![0u8; extent as usize];
            let _ = k.load(&mut dest);
        }
    }
});

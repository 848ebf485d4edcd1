//! The PVH DSDT against libxl's own: `dsdt_pvh`, the AML array Debian's libxenlight 4.17
//! exports (package libxenmisc4.17, which xen-utils-4.17 pulls in), read from the shared
//! library's dynamic symbols. pvbuild's table must be that array, byte for byte. Without the
//! library the test fails: it is the oracle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use pvbuild_core::pvh::dsdt;

/// Debian's libxenlight 4.17 (the real file behind the soname).
fn libxenlight() -> PathBuf {
    let dir = "/usr/lib/x86_64-linux-gnu";
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libxenlight.so.4.17"))
        })
        .max()
        .unwrap_or_else(|| {
            panic!("no {dir}/libxenlight.so.4.17*: install libxenmisc4.17 (xen-utils-4.17)")
        })
}

fn u16_at(b: &[u8], o: usize) -> usize {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap()).into()
}
fn u32_at(b: &[u8], o: usize) -> usize {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize
}
fn u64_at(b: &[u8], o: usize) -> usize {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize
}

/// The bytes of the dynamic symbol `name` (its `st_size` bytes) in the ELF64 shared object
/// `so`, found through `.dynsym`/`.dynstr` and mapped to the file through the segments.
fn symbol_bytes<'a>(so: &'a [u8], name: &str) -> &'a [u8] {
    assert_eq!(&so[..4], b"\x7fELF");
    let (shoff, shentsize, shnum) = (u64_at(so, 0x28), u16_at(so, 0x3a), u16_at(so, 0x3c));
    let (phoff, phentsize, phnum) = (u64_at(so, 0x20), u16_at(so, 0x36), u16_at(so, 0x38));
    let sh = |i: usize| &so[shoff + i * shentsize..shoff + (i + 1) * shentsize];
    let dynsym = (0..shnum)
        .map(sh)
        .find(|s| u32_at(s, 4) == 11) // SHT_DYNSYM
        .expect("no .dynsym");
    let dynstr = sh(u32_at(dynsym, 40)); // sh_link
    let (str_off, sym_off, sym_size) = (u64_at(dynstr, 24), u64_at(dynsym, 24), u64_at(dynsym, 32));
    let sym = (0..sym_size / 24)
        .map(|i| &so[sym_off + i * 24..sym_off + (i + 1) * 24])
        .find(|s| {
            let n = str_off + u32_at(s, 0);
            let end = n + so[n..].iter().position(|&c| c == 0).unwrap();
            &so[n..end] == name.as_bytes()
        })
        .unwrap_or_else(|| panic!("no dynamic symbol {name}"));
    let (value, size) = (u64_at(sym, 8), u64_at(sym, 16));
    let off = (0..phnum)
        .map(|i| &so[phoff + i * phentsize..phoff + (i + 1) * phentsize])
        .filter(|p| u32_at(p, 0) == 1) // PT_LOAD
        .find_map(|p| {
            let (offset, vaddr, filesz) = (u64_at(p, 8), u64_at(p, 16), u64_at(p, 32));
            (vaddr..vaddr + filesz)
                .contains(&value)
                .then(|| offset + value - vaddr)
        })
        .unwrap_or_else(|| panic!("{name} is in no loaded segment"));
    &so[off..off + size]
}

#[test]
fn the_pvh_dsdt_is_libxls_dsdt_pvh_byte_for_byte() {
    let path = libxenlight();
    let so = std::fs::read(&path).unwrap();
    let len = i32::from_le_bytes(symbol_bytes(&so, "dsdt_pvh_len").try_into().unwrap());
    let theirs = &symbol_bytes(&so, "dsdt_pvh")[..usize::try_from(len).unwrap()];

    let mut buf = vec![0u8; 64 * 1024];
    let n = dsdt::write(&mut buf).unwrap();
    let ours = &buf[..n];
    if let Some(at) = ours.iter().zip(theirs).position(|(a, b)| a != b) {
        let s = at.saturating_sub(16);
        panic!(
            "the DSDT differs from {}'s dsdt_pvh at byte {at:#x} (lengths {n} and {len}):\n ours   {:02x?}\n theirs {:02x?}",
            path.display(),
            &ours[s..(at + 16).min(n)],
            &theirs[s..(at + 16).min(theirs.len())]
        );
    }
    assert_eq!(
        n,
        theirs.len(),
        "same bytes as far as both go, lengths differ"
    );
    // libxl copies the array into zeroed pages: nothing may follow it in the buffer.
    assert!(
        buf[n..].iter().all(|&b| b == 0),
        "bytes written past the DSDT's end: {:02x?}",
        &buf[n..n + 16]
    );
}

#[test]
fn the_dsdt_is_refused_a_short_buffer_and_says_how_much_it_needs() {
    let mut full = vec![0u8; 64 * 1024];
    let n = dsdt::write(&mut full).unwrap();
    let mut short = vec![0u8; n - 1];
    assert_eq!(dsdt::write(&mut short).unwrap_err().needed, n);
}

//! The console ring as a guest may leave it: any page contents, any indexes. The input's
//! first 8 bytes are the guest's `out_cons` and `out_prod`, the rest the page from its start
//! (zero-padded to a page), so every input reaches the ring logic. Oracle: one read takes
//! exactly the bytes the indexes publish (never more than the ring), in order from the
//! ring's wrapped positions, and leaves the consumer at `out_prod`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pvbuild::devices::console::{read_console_page, OFF_OUT, OFF_OUT_CONS, OFF_OUT_PROD, OUT_SIZE};

fuzz_target!(|data: &[u8]| {
    let (idx, body) = data.split_at(data.len().min(8));
    let mut page = [0u8; 4096];
    let n = body.len().min(page.len());
    page[..n].copy_from_slice(&body[..n]);
    let mut w = [0u8; 8];
    w[..idx.len()].copy_from_slice(idx);
    let cons = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
    let prod = u32::from_ne_bytes([w[4], w[5], w[6], w[7]]);
    page[OFF_OUT_CONS..OFF_OUT_CONS + 4].copy_from_slice(&cons.to_ne_bytes());
    page[OFF_OUT_PROD..OFF_OUT_PROD + 4].copy_from_slice(&prod.to_ne_bytes());
    let mut out = Vec::new();
    let new_cons = read_console_page(&page, &mut out).expect("a whole page is an interface");
    assert_eq!(new_cons, prod);
    let want = (prod.wrapping_sub(cons) as usize).min(OUT_SIZE);
    assert_eq!(out.len(), want);
    let first = prod.wrapping_sub(want as u32);
    for (i, b) in out.iter().enumerate() {
        let pos = first.wrapping_add(i as u32) as usize % OUT_SIZE;
        assert_eq!(*b, page[OFF_OUT + pos]);
    }
});

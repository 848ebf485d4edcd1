//! CRC-32 of the module bytes, computed the way gzip records it in its trailer, so the
//! harness gets the expected value from `gzip -c FILE | tail -c 8`.

/// CRC-32 (IEEE 802.3, reflected, as zlib and gzip compute it).
pub fn crc32(bytes: impl Iterator<Item = u8>) -> u32 {
    // Built at compile time: an out-of-bounds index here is a compile error, not a panic.
    #[allow(clippy::indexing_slicing)]
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for b in bytes {
        let idx = ((crc ^ u32::from(b)) & 0xff) as usize;
        crc = TABLE.get(idx).copied().unwrap_or(0) ^ (crc >> 8);
    }
    !crc
}

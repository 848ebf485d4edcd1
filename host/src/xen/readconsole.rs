//! `XEN_SYSCTL_readconsole`: the hypervisor's console ring, for `dmesg`.

use zerocopy::FromBytes;

use super::{range, HcBuf, Step, Xen, XenError};
use crate::sys::domctl::{XenSysctlReadconsole, XEN_SYSCTL_READCONSOLE};
use crate::sys::hypercall::DOMID_SELF;

/// Bytes read per call (libxl's `libxl_xen_console_read_start`).
const CHUNK: usize = 16384;
/// At most this many chunks: the ring is far smaller (Xen's default is 16 KiB to 1 MiB);
/// a ring that keeps growing while read cannot keep `dmesg` reading forever.
const MAX_CHUNKS: usize = 1024;

impl Xen {
    /// The whole console ring, oldest first, as `xl dmesg` reads it (incrementally, in
    /// 16 KiB chunks); with `clear`, emptied after.
    pub fn read_console(&self, clear: bool) -> Result<Vec<u8>, XenError> {
        let mut all = Vec::new();
        let mut index = 0u32;
        for _ in 0..MAX_CHUNKS {
            let buf: HcBuf<'_, u8> =
                HcBuf::zeroed(&*self.backend, CHUNK, Step::ReadConsole, DOMID_SELF)?;
            let req = XenSysctlReadconsole {
                clear: u8::from(clear),
                incremental: 1,
                index,
                buffer: buf.addr(),
                count: CHUNK as u32,
                ..Default::default()
            };
            let out = self.sysctl(Step::ReadConsole, XEN_SYSCTL_READCONSOLE, &req)?;
            let reply =
                XenSysctlReadconsole::read_from_prefix(zerocopy::IntoBytes::as_bytes(&out.u))
                    .map(|(r, _)| r)
                    .map_err(|_| range(Step::ReadConsole, "reply size", 0))?;
            let n = reply.count as usize;
            if n == 0 {
                return Ok(all);
            }
            let got = buf
                .as_slice()
                .get(..n)
                .ok_or_else(|| range(Step::ReadConsole, "count", u64::from(reply.count)))?;
            all.extend_from_slice(got);
            index = reply.index;
        }
        Ok(all)
    }
}

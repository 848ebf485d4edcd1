//! `pvbuild dump-core DOMAIN FILE`, as `xl dump-core` (libxl_domain_core_dump, that is
//! libxenguest's `xc_domain_dumpcore`): the domain's memory and vcpu state in Xen's ELF core
//! format ([`elf`]), for the guests pvbuild makes. A 64-bit PV guest's pages are found
//! through its own p2m, as libxenguest finds them (`xc_core_arch_map_p2m`): the linear p2m
//! list that the guest announced in its shared info (`p2m_cr3`, `p2m_vaddr`), walked
//! through its page tables, or else the frame list tree (`pfn_to_mfn_frame_list_list`).
//!
//! As xl, the domain is not paused: pause it first for a consistent image. The file is
//! written beside FILE under a temporary name and renamed onto FILE once complete, so a
//! failure leaves no partial core (xl leaves one).
//!
//! An auto-translated guest (PVH, HVM) is dumped as libxenguest dumps it: no guest p2m is
//! read; every gfn from 0 to `XENMEM_maximum_gpfn` outside the VGA and below-4G MMIO holes
//! is mapped by gfn, those that map are written, and the section `.xen_pfn` lists their
//! gfns (the HVM magic in the header note). Such a guest need not have run.

pub mod elf;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use pvbuild_core::addr::Mfn;

use crate::commands::{lookup_any, CommandError};
use crate::sys::domctl::XEN_DOMINF_HVM_GUEST;
use crate::sys::memory::{SHINFO_ARCH_FRAME_LIST_LIST, SHINFO_ARCH_P2M_CR3, SHINFO_ARCH_P2M_VADDR};
use crate::xen::{Xen, XenError};
use elf::{layout, Shape, VersionNote, CTX_SIZE, PAGE};

/// Why a core could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// A hypercall or mapping failed.
    #[error("{0}")]
    Xen(#[from] XenError),
    /// The guest's p2m could not be followed.
    #[error("domain {domid}: {what}")]
    P2m {
        /// The domain.
        domid: u16,
        /// What was wrong.
        what: String,
    },
    /// The domain is of a kind not dumped.
    #[error("domain {domid}: {what}")]
    Refused {
        /// The domain.
        domid: u16,
        /// Why.
        what: String,
    },
    /// Writing the file.
    #[error("{path}: {err}")]
    Write {
        /// The file.
        path: String,
        /// The error.
        err: std::io::Error,
    },
}

/// `INVALID_P2M_ENTRY` / `INVALID_PFN`.
const INVALID: u64 = !0;
/// Guest pages per p2m frame (8-byte entries).
const FPP: u64 = PAGE / 8;
/// Pages mapped per batch.
const BATCH: usize = 1024;

fn u64_at(page: &[u8], at: usize) -> u64 {
    page.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// Maps `mfns` of `domid` and copies them out.
fn read_frames(xen: &Xen, domid: u16, mfns: &[u64]) -> Result<Vec<u8>, DumpError> {
    let mut frames = Vec::with_capacity(mfns.len());
    for &m in mfns {
        frames.push(Mfn::new(m).map_err(|_| DumpError::P2m {
            domid,
            what: format!("frame {m:#x} out of range"),
        })?);
    }
    Ok(xen
        .map_foreign_readonly(domid, &frames)?
        .as_slice()
        .to_vec())
}

/// The p2m frames and the number of p2m entries, by `xc_core_arch_map_p2m_list_rw`'s walk
/// of the guest's page tables from `p2m_cr3` over `p2m_vaddr` (its check at level 2, which
/// shortens the list where its tail is Linux's one "missing" page repeated, kept as is).
fn p2m_list_frames(
    xen: &Xen,
    domid: u16,
    p2m_cr3: u64,
    p2m_vaddr: u64,
    mut p2m_size: u64,
) -> Result<(Vec<u64>, u64), DumpError> {
    let bad = |what: String| DumpError::P2m { domid, what };
    let canonical = |v: u64| ((v as i64) >> 47) == ((v as i64) >> 63);
    let mask: u64 = 0x0000_ffff_ffff_ffff;
    let mut frames = (p2m_size - 1) / FPP + 1;
    let mut p2m_end = p2m_vaddr.wrapping_add(frames * PAGE).wrapping_sub(1);
    if !canonical(p2m_vaddr)
        || !canonical(p2m_end)
        || p2m_end < p2m_vaddr
        || (p2m_vaddr <= 0xFFFF_87FF_FFFF_FFFF && p2m_end > 0xFFFF_8000_0000_0000)
    {
        return Err(bad(format!(
            "bad virtual p2m address range {p2m_vaddr:#x}-{p2m_end:#x}"
        )));
    }
    let mut mfns = vec![p2m_cr3 >> 12];
    let mut off: u64 = 0;
    let (mut saved_mfn, mut saved_idx) = (0u64, 0u64);
    let mut n_pages = 1usize;
    for level in (1..=4u32).rev() {
        let ptes = read_frames(xen, domid, mfns.get(..n_pages).unwrap_or(&mfns))?;
        let shift = level * 9 + 3;
        let idx_start = ((p2m_vaddr.wrapping_sub(off)) & mask) >> shift;
        let mut idx_end = ((p2m_end.wrapping_sub(off)) & mask) >> shift;
        let mut next = Vec::new();
        for idx in idx_start..=idx_end {
            let pte = u64_at(&ptes, (idx as usize).saturating_mul(8));
            let mfn = (pte & 0x000f_ffff_ffff_f000) >> 12;
            if mfn == 0 {
                return Err(bad(format!(
                    "bad mfn during the page table walk for vaddr {:#x} at level {level} of the p2m list",
                    off.wrapping_add(idx << shift)
                )));
            }
            next.push(mfn);
            if level == 2 && mfn != saved_mfn {
                saved_mfn = mfn;
                saved_idx = idx - idx_start;
            }
        }
        if level == 2 {
            // As libxenguest (which compares the relative index with the absolute end).
            if saved_idx == idx_end {
                saved_idx += 1;
            }
            let max_pfn = (saved_idx << 9) * FPP;
            if max_pfn < p2m_size {
                p2m_size = max_pfn;
                frames = p2m_size.div_ceil(FPP);
                p2m_end = p2m_vaddr.wrapping_add(frames * PAGE).wrapping_sub(1);
                idx_end = idx_start + saved_idx;
            }
        }
        n_pages = usize::try_from(idx_end - idx_start + 1)
            .unwrap_or(usize::MAX)
            .min(next.len());
        mfns = next;
        off = p2m_vaddr & ((mask >> shift) << shift);
    }
    mfns.truncate(usize::try_from(frames).unwrap_or(usize::MAX));
    Ok((mfns, p2m_size))
}

/// The p2m frames by the frame list tree (`xc_core_arch_map_p2m_tree_rw`).
fn p2m_tree_frames(xen: &Xen, domid: u16, fll: u64, p2m_size: u64) -> Result<Vec<u64>, DumpError> {
    let fl_entries = p2m_size.div_ceil(FPP);
    let fll_entries = p2m_size.div_ceil(FPP * FPP);
    let list_list = read_frames(xen, domid, &[fll])?;
    let fl_mfns: Vec<u64> = (0..fll_entries as usize)
        .map(|i| u64_at(&list_list, i * 8))
        .collect();
    let list = read_frames(xen, domid, &fl_mfns)?;
    Ok((0..fl_entries as usize)
        .map(|i| u64_at(&list, i * 8))
        .collect())
}

/// The guest's p2m: entry `pfn` is its machine frame.
fn read_p2m(xen: &Xen, domid: u16, shinfo: &[u8], nr_gpfns: u64) -> Result<Vec<u64>, DumpError> {
    let p2m_cr3 = u64_at(shinfo, SHINFO_ARCH_P2M_CR3);
    let (frames, size) = if p2m_cr3 != 0 {
        p2m_list_frames(
            xen,
            domid,
            p2m_cr3,
            u64_at(shinfo, SHINFO_ARCH_P2M_VADDR),
            nr_gpfns,
        )?
    } else {
        let fll = u64_at(shinfo, SHINFO_ARCH_FRAME_LIST_LIST);
        if fll == 0 || fll == INVALID {
            return Err(DumpError::P2m {
                domid,
                what: "the guest has published no p2m (it has not run yet?)".into(),
            });
        }
        (p2m_tree_frames(xen, domid, fll, nr_gpfns)?, nr_gpfns)
    };
    let bytes = read_frames(xen, domid, &frames)?;
    Ok((0..size as usize).map(|i| u64_at(&bytes, i * 8)).collect())
}

/// A file beside `path` that becomes `path` when complete, and goes away otherwise.
struct Partial {
    tmp: PathBuf,
    file: Option<File>,
}

impl Partial {
    fn create(path: &Path) -> Result<Self, DumpError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.pvbuild-{}", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(&tmp).map_err(|err| DumpError::Write {
            path: path.display().to_string(),
            err,
        })?;
        Ok(Self {
            tmp,
            file: Some(file),
        })
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `HVM_BELOW_4G_MMIO_START` (public/hvm/e820.h) in frames.
const MMIO_START_PFN: u64 = 0xF000_0000 >> 12;

/// `xc_core_arch_gpfn_may_present` (x86): an auto-translated guest's gfns outside the VGA
/// hole and the MMIO hole below 4 GiB.
fn gpfn_may_present(pfn: u64) -> bool {
    !((0xa0..0xc0).contains(&pfn) || (MMIO_START_PFN..(1 << 20)).contains(&pfn))
}

/// The pages section and its table as they are written: at most `nr_pages` pages, then
/// the entries (`{pfn, gmfn}` for a PV guest, the pfn for an auto-translated one).
struct Pages<'a, W: Write> {
    w: &'a mut W,
    table: Vec<u8>,
    written: u64,
    nr_pages: u64,
    translated: bool,
}

impl<W: Write> Pages<'_, W> {
    fn full(&self) -> bool {
        self.written >= self.nr_pages
    }

    fn entry(&mut self, pfn: u64, gmfn: u64) {
        self.table.extend_from_slice(&pfn.to_le_bytes());
        if !self.translated {
            self.table.extend_from_slice(&gmfn.to_le_bytes());
        }
    }

    /// Maps the frames of `batch` (`(pfn, frame)` pairs: the frame is the mfn of a PV
    /// guest, the gfn of a translated one) and writes those that map: a page that cannot
    /// be mapped is left out, as libxenguest leaves it.
    fn batch(&mut self, xen: &Xen, domid: u16, batch: &[(u64, u64)]) -> Result<(), DumpError> {
        if batch.is_empty() || self.full() {
            return Ok(());
        }
        let mut pairs = Vec::with_capacity(batch.len());
        let mut frames = Vec::with_capacity(batch.len());
        for &(pfn, f) in batch {
            if let Ok(m) = Mfn::new(f) {
                pairs.push((pfn, f));
                frames.push(m);
            }
        }
        if frames.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(frames.len() * PAGE as usize);
        let present = xen.read_foreign_present(domid, &frames, &mut bytes)?;
        let mut pages = bytes.chunks_exact(PAGE as usize);
        for (&(pfn, f), ok) in pairs.iter().zip(present) {
            if !ok {
                continue;
            }
            let page = pages.next().unwrap_or_default();
            if self.full() {
                break;
            }
            self.w.write_all(page).map_err(Self::werr)?;
            self.entry(pfn, f);
            self.written += 1;
        }
        Ok(())
    }

    fn werr(err: std::io::Error) -> DumpError {
        DumpError::Write {
            path: String::new(),
            err,
        }
    }

    /// Fewer pages than `nr_pages`: zero pages with invalid entries, as libxenguest pads.
    fn pad(&mut self) -> Result<(), DumpError> {
        let zero = vec![0u8; PAGE as usize];
        while !self.full() {
            self.w.write_all(&zero).map_err(Self::werr)?;
            self.entry(INVALID, INVALID);
            self.written += 1;
        }
        Ok(())
    }
}

/// Writes the core of `domid` to `path`; returns the pages written.
pub fn dump_core(xen: &Xen, domid: u16, path: &Path) -> Result<u64, DumpError> {
    let info = xen.domain_info(domid)?;
    // `xc_core_arch_auto_translated_physmap`: an HVM or PVH guest, whose pages are mapped
    // by gfn, listed in `.xen_pfn`.
    let translated = info.flags & XEN_DOMINF_HVM_GUEST != 0;
    // As libxenguest: the shared info frame mapped (by gfn for a translated guest, where it
    // may fail and the section is then left out).
    let shinfo = match read_frames(xen, domid, &[info.shared_info_frame]) {
        Ok(page) => Some(page),
        Err(_) if translated => None,
        Err(e) => return Err(e),
    };
    if !translated {
        let width = xen.address_size(domid)?;
        if width != 64 {
            return Err(DumpError::Refused {
                domid,
                what: format!("a {width}-bit guest: pvbuild dumps 64-bit PV guests only"),
            });
        }
    }
    let mut ctxs = Vec::new();
    let mut nr_vcpus = 0u64;
    for vcpu in 0..=info.max_vcpu_id {
        if let Ok(c) = xen.vcpu_context_bytes(domid, vcpu) {
            ctxs.extend_from_slice(c.get(..CTX_SIZE as usize).unwrap_or(&c));
            nr_vcpus += 1;
        }
    }
    if nr_vcpus == 0 {
        return Err(DumpError::P2m {
            domid,
            what: "no vcpu context could be read".into(),
        });
    }
    let nr_gpfns = xen.maximum_gpfn(domid)? + 1;
    let nr_pages = info.tot_pages;
    let (p2m, max_mfn) = if translated {
        (Vec::new(), 0)
    } else {
        if nr_gpfns < nr_pages {
            return Err(DumpError::P2m {
                domid,
                what: format!("p2m size {nr_gpfns:#x} below its page count {nr_pages:#x}"),
            });
        }
        let shinfo = shinfo.as_deref().unwrap_or_default();
        (
            read_p2m(xen, domid, shinfo, nr_gpfns)?,
            xen.maximum_ram_page()?,
        )
    };
    let (major, minor) = xen.xen_version()?;
    let vb = xen.version_buffers()?;
    let version = VersionNote {
        major: u64::from(major),
        minor: u64::from(minor),
        extra: vb.extra,
        compile_info: vb.compile_info,
        capabilities: vb.capabilities,
        changeset: vb.changeset,
        platform_parameters: vb.platform_parameters,
        pagesize: u64::from(xen.xen_pagesize()?),
    };
    let shape = Shape {
        nr_vcpus,
        nr_pages,
        shared_info: shinfo.is_some(),
        translated,
    };
    let lay = layout(&shape);
    let mut out = Partial::create(path)?;
    let werr = |err| DumpError::Write {
        path: path.display().to_string(),
        err,
    };
    let named = |e: DumpError| match e {
        DumpError::Write { err, .. } => werr(err),
        e => e,
    };
    let mut w = std::io::BufWriter::with_capacity(
        1 << 20,
        out.file
            .as_ref()
            .ok_or_else(|| werr(std::io::ErrorKind::Other.into()))?,
    );
    w.write_all(&lay.head(
        &shape,
        &version,
        &ctxs,
        shinfo.as_deref().unwrap_or_default(),
    ))
    .map_err(werr)?;
    let entry = if translated { 8 } else { 16 };
    let mut pages = Pages {
        w: &mut w,
        table: Vec::with_capacity((nr_pages * entry) as usize),
        written: 0,
        nr_pages,
        translated,
    };
    let mut batch = Vec::with_capacity(BATCH);
    if translated {
        // `xc_core_arch_memory_map_get`: gfns 0 to the highest, those that may be present.
        for pfn in (0..nr_gpfns).filter(|&p| gpfn_may_present(p)) {
            if pages.full() {
                break;
            }
            batch.push((pfn, pfn));
            if batch.len() == BATCH {
                pages.batch(xen, domid, &batch).map_err(named)?;
                batch.clear();
            }
        }
    } else {
        // The pages of the p2m's valid entries, in pfn order.
        for (pfn, &m) in p2m.iter().enumerate() {
            if pages.full() {
                break;
            }
            if m == INVALID || m > max_mfn {
                continue;
            }
            batch.push((pfn as u64, m));
            if batch.len() == BATCH {
                pages.batch(xen, domid, &batch).map_err(named)?;
                batch.clear();
            }
        }
    }
    pages.batch(xen, domid, &batch).map_err(named)?;
    pages.pad().map_err(named)?;
    let written = pages.written;
    let table = std::mem::take(&mut pages.table);
    w.write_all(&table).map_err(werr)?;
    w.write_all(lay.strtab()).map_err(werr)?;
    w.flush().map_err(werr)?;
    drop(w);
    let file = out
        .file
        .take()
        .ok_or_else(|| werr(std::io::ErrorKind::Other.into()))?;
    let done = file
        .sync_all()
        .and_then(|()| std::fs::rename(&out.tmp, path));
    if let Err(err) = done {
        let _ = std::fs::remove_file(&out.tmp);
        return Err(werr(err));
    }
    Ok(written)
}

/// `pvbuild dump-core DOMAIN FILE`.
pub fn dump_core_cmd(target: &str, file: &Path) -> Result<String, CommandError> {
    let domid = lookup_any(target)?;
    if domid == 0 {
        return Err(CommandError::Usage(format!(
            "{target:?} is domain 0: pvbuild does not dump dom0"
        )));
    }
    let xen = Xen::open()?;
    dump_core(&xen, domid, file).map_err(|e| CommandError::Usage(e.to_string()))?;
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MMIO hole's start against libxen-dev's public/hvm/e820.h, and the holes' edges.
    #[test]
    fn gpfn_holes_match_xens_header() {
        let header = std::fs::read_to_string("/usr/include/xen/hvm/e820.h");
        let Ok(header) = header else {
            assert!(
                std::env::var_os("CI").is_none(),
                "libxen-dev's e820.h is missing"
            );
            return;
        };
        let end = header
            .lines()
            .find_map(|l| l.strip_prefix("#define HVM_BELOW_4G_RAM_END"))
            .map(str::trim)
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
        assert_eq!(end, Some(MMIO_START_PFN << 12), "{header}");
        assert!(gpfn_may_present(0x9f) && !gpfn_may_present(0xa0));
        assert!(!gpfn_may_present(0xbf) && gpfn_may_present(0xc0));
        assert!(gpfn_may_present(MMIO_START_PFN - 1) && !gpfn_may_present(MMIO_START_PFN));
        assert!(!gpfn_may_present(0xf_ffff) && gpfn_may_present(0x10_0000));
    }
}

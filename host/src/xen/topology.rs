//! The host's topology, as libxl reads it for `xl info -n` (`libxl_get_cpu_topology`,
//! `libxl_get_numainfo`, `libxl_get_pci_topology` over libxc's `xc_cputopoinfo`,
//! `xc_numainfo`, `xc_pcitopoinfo`): a first call with null handles for the count, then one
//! with arrays in hypercall buffers.

use zerocopy::{FromBytes, IntoBytes};

use super::{range, HcBuf, Step, Xen, XenError};
use crate::sys::hypercall::DOMID_SELF;
use crate::sys::topo::*;

/// One cpu's place (`None`: Xen's `XEN_INVALID_*`, an offline cpu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTopo {
    /// Core id.
    pub core: Option<u32>,
    /// Socket id.
    pub socket: Option<u32>,
    /// NUMA node.
    pub node: Option<u32>,
}

/// One NUMA node: memory in bytes (`None` when Xen reports it invalid) and its distance to
/// every node (`None`: invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `memsize`.
    pub size: Option<u64>,
    /// `memfree`.
    pub free: Option<u64>,
    /// The row `i` of the distance matrix.
    pub dists: Vec<Option<u32>>,
}

/// A PCI device and its node (`None`: no node known, or a device Xen does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciNode {
    /// Segment.
    pub seg: u16,
    /// Bus.
    pub bus: u8,
    /// Device and function.
    pub devfn: u8,
    /// Node.
    pub node: Option<u32>,
}

/// Most cpus, nodes or PCI devices accepted from Xen's first answer (a bound on the buffers).
const MAX_ENTRIES: u32 = 1 << 16;

fn valid(v: u32, invalid: u32) -> Option<u32> {
    (v != invalid).then_some(v)
}

impl Xen {
    /// Each cpu's core, socket and node (`XEN_SYSCTL_cputopoinfo`), indexed by cpu.
    pub fn cpu_topology(&self) -> Result<Vec<CpuTopo>, XenError> {
        let step = Step::Topology;
        let out = self.sysctl(
            step,
            XEN_SYSCTL_CPUTOPOINFO,
            &XenSysctlCputopoinfo::default(),
        )?;
        let first = XenSysctlCputopoinfo::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(step, "reply size", 0))?;
        if first.num_cpus > MAX_ENTRIES {
            return Err(range(step, "cpus", u64::from(first.num_cpus)));
        }
        let buf: HcBuf<'_, XenSysctlCputopo> =
            HcBuf::zeroed(&*self.backend, first.num_cpus as usize, step, DOMID_SELF)?;
        let req = XenSysctlCputopoinfo {
            num_cpus: first.num_cpus,
            cputopo: buf.addr(),
            ..Default::default()
        };
        let out = self.sysctl(step, XEN_SYSCTL_CPUTOPOINFO, &req)?;
        let got = XenSysctlCputopoinfo::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(step, "reply size", 0))?;
        let n = (got.num_cpus as usize).min(buf.as_slice().len());
        Ok(buf
            .as_slice()
            .iter()
            .take(n)
            .map(|t| CpuTopo {
                core: valid(t.core, XEN_INVALID_CORE_ID),
                socket: valid(t.socket, XEN_INVALID_CORE_ID),
                node: valid(t.node, XEN_INVALID_NODE_ID),
            })
            .collect())
    }

    /// Each NUMA node's memory and distances (`XEN_SYSCTL_numainfo`).
    pub fn numa_info(&self) -> Result<Vec<NodeInfo>, XenError> {
        let step = Step::Topology;
        let out = self.sysctl(step, XEN_SYSCTL_NUMAINFO, &XenSysctlNumainfo::default())?;
        let first = XenSysctlNumainfo::read_from_prefix(out.u.as_bytes())
            .map(|(r, _)| r)
            .map_err(|_| range(step, "reply size", 0))?;
        let n = first.num_nodes;
        if n > 1024 {
            return Err(range(step, "nodes", u64::from(n)));
        }
        let n = n as usize;
        let mem: HcBuf<'_, XenSysctlMeminfo> = HcBuf::zeroed(&*self.backend, n, step, DOMID_SELF)?;
        let dist: HcBuf<'_, u32> = HcBuf::zeroed(&*self.backend, n * n, step, DOMID_SELF)?;
        let req = XenSysctlNumainfo {
            num_nodes: first.num_nodes,
            meminfo: mem.addr(),
            distance: dist.addr(),
            ..Default::default()
        };
        self.sysctl(step, XEN_SYSCTL_NUMAINFO, &req)?;
        let big = |v: u64| (v != u64::from(XEN_INVALID_MEM_SZ)).then_some(v);
        Ok(mem
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, m)| NodeInfo {
                size: big(m.memsize),
                free: big(m.memfree),
                dists: dist
                    .as_slice()
                    .iter()
                    .skip(i * n)
                    .take(n)
                    .map(|&d| valid(d, XEN_INVALID_NODE_DIST))
                    .collect(),
            })
            .collect())
    }

    /// The node of each PCI device of `devs` (`XEN_SYSCTL_pcitopoinfo`, repeated until Xen
    /// has processed them all, as `xc_pcitopoinfo`).
    pub fn pci_topology(&self, devs: &[PhysdevPciDevice]) -> Result<Vec<PciNode>, XenError> {
        let step = Step::Topology;
        if devs.is_empty() {
            return Ok(Vec::new());
        }
        let dbuf = HcBuf::from_slice(&*self.backend, devs, step, DOMID_SELF)?;
        let nbuf: HcBuf<'_, u32> = HcBuf::zeroed(&*self.backend, devs.len(), step, DOMID_SELF)?;
        let total =
            u32::try_from(devs.len()).map_err(|_| range(step, "devices", devs.len() as u64))?;
        let mut done: u32 = 0;
        while done < total {
            let req = XenSysctlPcitopoinfo {
                num_devs: total - done,
                devs: dbuf.addr() + u64::from(done) * 4,
                nodes: nbuf.addr() + u64::from(done) * 4,
                ..Default::default()
            };
            let out = self.sysctl(step, XEN_SYSCTL_PCITOPOINFO, &req)?;
            let got = XenSysctlPcitopoinfo::read_from_prefix(out.u.as_bytes())
                .map(|(r, _)| r)
                .map_err(|_| range(step, "reply size", 0))?;
            if got.num_devs == 0 {
                return Err(range(step, "devices processed", 0));
            }
            done = done.saturating_add(got.num_devs);
        }
        Ok(devs
            .iter()
            .zip(nbuf.as_slice())
            .map(|(d, &node)| PciNode {
                seg: d.seg,
                bus: d.bus,
                devfn: d.devfn,
                node: (node != XEN_INVALID_NODE_ID && node != XEN_INVALID_DEV).then_some(node),
            })
            .collect())
    }
}

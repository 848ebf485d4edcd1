//! The installed manuals and shell completions, generated from the code they describe:
//! pvbuild(1) and one page per subcommand from the clap definitions (clap_mangen), the
//! completions for bash, zsh and fish from the same (clap_complete), and pvbuild.cfg(5)
//! from the config reader's own key tables ([`crate::config::SUPPORTED_KEYS`],
//! [`crate::config::REFUSED_KEYS`], [`crate::config::XL_KEYS_IGNORED`]) with a line each
//! from [`KEY_DOCS`], which a test keeps in step with `SUPPORTED_KEYS`.
//!
//! `pvbuild gen-manuals DIR` (hidden) writes them; `scripts/install.sh` runs it and installs
//! the results.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{
    DEFAULT_MEMORY_MIB, DISKS_MAX, MEMORY_MAX_MIB, REFUSED_KEYS, VCPUS_MAX, VIFS_MAX,
    XL_KEYS_IGNORED,
};

/// What pvbuild does with each key it reads (one entry per [`SUPPORTED_KEYS`] key).
pub fn key_docs() -> Vec<(&'static str, String)> {
    let cmdline_max = pvbuild_core::limits::MAX_GUEST_CMDLINE - 1;
    vec![
        ("name", "The domain's name (required). Refused when another domain has it, or when it is not a name xl accepts.".into()),
        ("type", "\"pv\" (default), \"pvh\" (Linux's PVH entry point, libxl's memory layout and ACPI tables; disks, interfaces and the bootloader as for PV) or \"hvm\" (hvmloader, SeaBIOS and QEMU as libxl starts them; direct kernel boot only, no disks or interfaces yet).".into()),
        ("builder", "\"generic\" or \"linux\" (the old spelling of a PV guest) are accepted; \"hvm\" is the old spelling of type = \"hvm\".".into()),
        ("kernel", "The guest kernel: ELF, gzip-wrapped ELF, a Linux bzImage with a gzip, xz, zstd, lz4, bzip2 or lzma payload, or a 'bin' image. Required unless bootloader is set. Parsed and laid out before Xen is touched.".into()),
        ("ramdisk", "The initrd, handed to the guest as libxenguest does (a gzip ramdisk is unpacked when it fits, as libxenguest's unzip does).".into()),
        ("extra", format!("Appended to the command line: \"root=<root> <extra>\", as xl assembles it. The whole line is at most {cmdline_max} bytes.")),
        ("cmdline", "The whole command line; when set, root and extra are ignored (with a warning), as xl ignores them.".into()),
        ("root", "Put first on the command line as root=<root>.".into()),
        ("memory", format!("The guest's memory (its balloon target), MiB, 1 to {MEMORY_MAX_MIB}; default {DEFAULT_MEMORY_MIB}, or maxmem when only that is given.")),
        ("maxmem", "The most the guest may balloon up to (Xen's limit and the guest's memory map end there), MiB; default memory; below memory is refused.".into()),
        ("vcpus", format!("The vcpus online at boot, 1 to {VCPUS_MAX}; default 1.")),
        ("maxvcpus", "The vcpus the domain has (vcpu-set can bring the others up); default vcpus; below vcpus is refused.".into()),
        ("on_poweroff", "What the monitor (or create --wait) does when the guest powers off: destroy (default), restart or preserve. rename-restart, soft-reset and the coredump actions are refused.".into()),
        ("on_reboot", "The same when the guest reboots; default restart (a new domain, same UUID and MACs, the devices of the stored configuration, so hot-plugged disks and interfaces come back).".into()),
        ("on_crash", "The same when the guest crashes; default destroy.".into()),
        ("on_watchdog", "The same when the guest's watchdog fires; default destroy.".into()),
        ("bootloader", "A bootloader such as pygrub, run on the first disk before the domain exists, as an unprivileged user by default; its kernel, ramdisk and command line replace the config's.".into()),
        ("bootloader_args", "Arguments for the bootloader (a list; a string is split on spaces, with a warning).".into()),
        ("bootloader_restrict", "0 runs the bootloader as root (libxl's bootloader_restrict); 1, the default in pvbuild, runs it as bootloader_user or xen-qemuuser-shared.".into()),
        ("bootloader_user", "The user the restricted bootloader runs as.".into()),
        ("uuid", "The domain's UUID; default a new one, kept across restarts.".into()),
        ("disk", format!("The guest's disks (xl-disk-configuration(5) specs, at most {DISKS_MAX}): image files are served by QEMU's qdisk backend (the device model pvbuild starts), block devices by dom0's blkback when it is loaded; a block device dom0 has mounted or another guest holds is refused.")),
        ("device_model_override", "The QEMU that serves the disks, instead of /usr/libexec/xen-qemu-system-i386.".into()),
        ("device_model_stubdomain_override", "1 runs an HVM guest's device model in a stub domain of its own, <name>-dm, built by pvbuild as a PV domain (docs/stubdom.md); needs device_model_version = \"qemu-xen\" and a guest booting from an image-file disk, without vif, kernel, vnc or dm_restrict. 0 (default) asks for nothing; for a PV or PVH guest 1 is an error.".into()),
        ("device_model_version", "Only \"qemu-xen\" (upstream QEMU, libxl's default without a stub domain); anything else is refused for an HVM guest. It must be given with device_model_stubdomain_override = 1 (libxl's default there is qemu-xen-traditional).".into()),
        ("stubdomain_kernel", "The stub domain's kernel (default /usr/lib/xen-4.17/boot/qemu-stubdom-linux-kernel, which Debian does not ship: stubdom/build.sh makes one).".into()),
        ("stubdomain_ramdisk", "The stub domain's ramdisk (default /usr/lib/xen-4.17/boot/qemu-stubdom-linux-rootfs; stubdom/build.sh makes one).".into()),
        ("stubdomain_cmdline", "The stub domain's kernel command line.".into()),
        ("stubdomain_memory", "The stub domain's memory, MiB (default 128), plus the guest's video memory.".into()),
        ("vif", format!("The guest's network interfaces (xl-network-configuration(5) specs, at most {VIFS_MAX}): netback backends put on a bridge by libxl's hotplug script (vif-bridge by default). Keys of emulated or COLO interfaces are refused.")),
        ("pool", "The cpupool the domain is created in; one that does not exist is refused.".into()),
        ("cpus", "Hard vcpu affinity, in xl's cpu-list syntax (a string for every vcpu, or a list per vcpu).".into()),
        ("cpus_soft", "Soft vcpu affinity, in the same syntax.".into()),
        ("cpu_weight", "The credit/credit2 scheduler's weight, 1 to 65535.".into()),
        ("cap", "The credit scheduler's cap, 0 to 65535 (percent of one cpu).".into()),
        ("dm_restrict", "1 runs the device model as device_model_user (or xen-qemuuser-range-base + domid, or xen-qemuuser-shared), chrooted, with -xen-domid-restrict, in its own mount and IPC namespaces with libxl's rlimits. A config whose disks QEMU would serve is refused: a restricted QEMU loses xenstore and cannot take a PV disk (docs/disks.md).".into()),
        ("device_model_user", "The user the device model runs as. Checked before any domain exists: it must exist, must not be root, and must be able to open each image and dom0's Xen devices.".into()),
        ("hap", "PVH and HVM: 1 (the default); 0 (shadow paging) is refused.".into()),
        ("acpi", "PVH: 1 (the default, libxl's tables); 0 is refused. HVM: 1 (default) or 0, hvmloader's tables (platform/acpi).".into()),
        ("apic", "PVH: 1 (the default); 0 is refused. HVM: 1 (default) or 0 (hvm_info's apic_mode).".into()),
        ("acpi_s3", "HVM only: 1 (default) or 0 (platform/acpi_s3).".into()),
        ("acpi_s4", "HVM only: 1 (default) or 0 (platform/acpi_s4).".into()),
        ("acpi_laptop_slate", "HVM only: 0 (default) or 1 (platform/acpi_laptop_slate).".into()),
        ("pvshim", "PVH only: 0 (the default); the PV shim is not implemented.".into()),
        ("pvshim_path", "PVH only: refused (the PV shim is not implemented).".into()),
        ("pvshim_cmdline", "PVH only: refused (the PV shim is not implemented).".into()),
        ("pvshim_extra", "PVH only: refused (the PV shim is not implemented).".into()),
        ("mmio_hole", "PVH and HVM: refused; libxl's default hole below 4 GiB is used.".into()),
        ("nestedhvm", "PVH and HVM: 0 (the default); nested virtualisation is refused.".into()),
        ("timer_mode", "PVH and HVM: refused; libxl's default timer mode is used.".into()),
    ]
}

/// Escapes text for a roff line (a leading dot or quote, backslashes, and hyphens).
fn roff(s: &str) -> String {
    let mut out = s.replace('\\', "\\e").replace('-', "\\-");
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// pvbuild.cfg(5): the config keys pvbuild reads, refuses and ignores.
pub fn config_page(version: &str) -> String {
    let mut p = String::new();
    p.push_str(&format!(
        ".TH PVBUILD.CFG 5 \"\" \"pvbuild {}\" \"File Formats\"\n",
        roff(version)
    ));
    p.push_str(".SH NAME\npvbuild.cfg \\- the xl domain configuration keys pvbuild reads\n");
    p.push_str(".SH DESCRIPTION\n");
    p.push_str(
        "pvbuild create reads xl's domain configuration files (xl.cfg(5)): the same syntax, \
         the same keys and defaults, for PV guests. This page lists every key pvbuild acts \
         on, the keys it refuses (a config with one of them is an error naming the key, \
         because ignoring it would weaken isolation), and the keys it accepts but ignores \
         (a warning each). Any other key is unknown and ignored with a warning.\n",
    );
    p.push_str(".SH SUPPORTED KEYS\n");
    for (k, doc) in key_docs() {
        p.push_str(&format!(".TP\n.B {}\n{}\n", roff(k), roff(&doc)));
    }
    p.push_str(".SH REFUSED KEYS\n");
    p.push_str(
        "The list keys are accepted when empty, and dm_restrict when 0: those ask for \
         nothing. device_model_stubdomain_override = 1 runs an HVM guest's device model in \
         a stub domain (docs/stubdom.md).\n",
    );
    for (k, why) in REFUSED_KEYS {
        p.push_str(&format!(".TP\n.B {}\n{}.\n", roff(k), roff(why)));
    }
    p.push_str(".SH IGNORED KEYS\n");
    p.push_str("Accepted with a warning, and not acted on:\n.PP\n");
    p.push_str(&roff(&XL_KEYS_IGNORED.join(", ")));
    p.push_str(".\n.SH SEE ALSO\npvbuild(1), pvbuild\\-create(1), xl.cfg(5), xl\\-disk\\-configuration(5), xl\\-network\\-configuration(5)\n");
    p
}

/// What [`write_all`] wrote, by kind.
#[derive(Debug, Default)]
pub struct Written {
    /// Section-1 pages.
    pub man1: Vec<PathBuf>,
    /// Section-5 pages.
    pub man5: Vec<PathBuf>,
    /// Completion scripts (bash, zsh, fish).
    pub completions: Vec<PathBuf>,
}

/// Writes the manuals and completions of `cmd` (pvbuild's clap definition) under `dir`:
/// `man1/`, `man5/`, `completions/{bash,zsh,fish}/`.
pub fn write_all(cmd: clap::Command, dir: &Path) -> std::io::Result<Written> {
    use clap_complete::Shell;
    let mut w = Written::default();
    let man1 = dir.join("man1");
    let man5 = dir.join("man5");
    std::fs::create_dir_all(&man1)?;
    std::fs::create_dir_all(&man5)?;
    clap_mangen::generate_to(cmd.clone(), &man1)?;
    for e in std::fs::read_dir(&man1)? {
        w.man1.push(e?.path());
    }
    w.man1.sort();
    let version = cmd.get_version().unwrap_or("").to_owned();
    let cfg = man5.join("pvbuild.cfg.5");
    std::fs::File::create(&cfg)?.write_all(config_page(&version).as_bytes())?;
    w.man5.push(cfg);
    for (shell, sub) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let d = dir.join("completions").join(sub);
        std::fs::create_dir_all(&d)?;
        let mut c = cmd.clone();
        w.completions
            .push(clap_complete::generate_to(shell, &mut c, "pvbuild", &d)?);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SUPPORTED_KEYS;

    #[test]
    fn every_key_read_is_documented_once_and_only_those() {
        let docs = key_docs();
        let mut documented: Vec<&str> = docs.iter().map(|(k, _)| *k).collect();
        let mut read: Vec<&str> = SUPPORTED_KEYS.to_vec();
        documented.sort_unstable();
        read.sort_unstable();
        assert_eq!(documented, read);
        for (k, d) in &docs {
            assert!(!d.is_empty(), "{k}");
        }
    }

    #[test]
    fn the_user_guide_names_every_key_read_or_refused() {
        let guide = include_str!("../../../docs/user-guide.md");
        for k in SUPPORTED_KEYS
            .iter()
            .chain(REFUSED_KEYS.iter().map(|(k, _)| k))
        {
            assert!(
                guide.contains(&format!("`{k}`")),
                "docs/user-guide.md lacks `{k}`"
            );
        }
    }

    #[test]
    fn the_config_page_lists_every_key_by_kind() {
        let p = config_page("9.9");
        let section = |name: &str| -> String {
            let start = p.find(&format!(".SH {name}\n")).unwrap();
            let rest = &p[start + 4..];
            let end = rest.find("\n.SH ").map_or(rest.len(), |e| e);
            rest[..end].to_owned()
        };
        let (sup, refused, ignored) = (
            section("SUPPORTED KEYS"),
            section("REFUSED KEYS"),
            section("IGNORED KEYS"),
        );
        for k in SUPPORTED_KEYS {
            assert!(sup.contains(&format!(".B {}\n", roff(k))), "{k}");
        }
        for (k, _) in REFUSED_KEYS {
            assert!(refused.contains(&format!(".B {}\n", roff(k))), "{k}");
        }
        for k in XL_KEYS_IGNORED {
            assert!(ignored.contains(&roff(k)), "{k}");
        }
        // Nothing a line could be taken for a request: no text line starts with a dot that
        // is not a macro we wrote.
        for l in p.lines() {
            if let Some(m) = l.strip_prefix('.') {
                assert!(
                    ["TH ", "SH ", "TP", "B ", "PP"]
                        .iter()
                        .any(|x| m.starts_with(x)),
                    "{l}"
                );
            }
        }
    }
}

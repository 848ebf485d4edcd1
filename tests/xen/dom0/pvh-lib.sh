# tests/xen/dom0/pvh-lib.sh: the PVH guest of pvbuild-pvh and xl-pvh-boot (Debian's kernel
# as a PVH guest with 2 vcpus), sourced after lib.sh.
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.cpus"
# pvh_cfg NAME: the PVH xl config of this scenario.
pvh_cfg() {
    cat <<CFG
name = "$1"
type = "pvh"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "$cmdline"
memory = $HARNESS_GUEST_MEMORY
vcpus = 2
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
# check_cpus NAME: the guest's PVBUILD-GUEST-CPUS line says 2 vcpus online.
check_cpus() {
    _cpus=$(console_text "$1" | sed -n 's/^PVBUILD-GUEST-CPUS //p' | head -n 1)
    [ "$_cpus" = "0-1 2" ] || fail "$1: vcpus online '$_cpus', expected '0-1 2' (PVBUILD-GUEST-CPUS)"
}
# check_marker NAME: the marker shows the harness's kernel release and this command line.
check_marker() {
    _want=$(expected_marker "$HARNESS_GUEST_KVER" "$cmdline")
    _got=$(marker_line "$1")
    [ "$_got" = "$_want" ] || fail "$1: marker is '$_got', expected '$_want'"
}

# tests/xen/dom0/pvh-lib.sh: the PVH guest of pvbuild-pvh and xl-pvh-boot (Debian's kernel
# as a PVH guest with 2 vcpus), sourced after lib.sh.
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.cpus"
# pvh_cfg NAME [ON_REBOOT]: the PVH xl config of this scenario; on_reboot "destroy" unless
# given. Under QEMU's TCG a PVH guest sometimes triple-faults in Linux's PIT calibration loop
# before its console starts (Xen: "Triple fault - invoking HVM shutdown action 1", a reboot;
# docs/next-round.md): with "restart" the toolstack starts it again, as it would any guest
# that reboots, and the scenario notes each such restart with Xen's lines.
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
on_reboot = "${2:-destroy}"
on_crash = "destroy"
CFG
}
# note_pvh_restarts LOG: notes each reboot a toolstack's LOG reports before the marker, with
# Xen's triple-fault lines (none expected: a guest reboots only when it faults).
note_pvh_restarts() {
    _n=$(grep -c 'shut down: reboot' "$1" 2>/dev/null)
    [ "${_n:-0}" -gt 0 ] || return 0
    note "the guest rebooted $_n time(s) before its marker and was started again$(triple_faults $(sed -n 's/^pvbuild: created domain \([0-9]*\) .*/\1/p' "$1"))"
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

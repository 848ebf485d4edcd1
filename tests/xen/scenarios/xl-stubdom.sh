# harness-timeout: 900
# harness-opt-in
# xl-stubdom (issue 16, the oracle side): the stub-domain images stubdom/build.sh makes from
# Debian's packages, given to xl. An HVM guest (hvmloader + SeaBIOS, vga = "none", one raw
# disk holding a token, its serial port to a file) is created by `xl create` with
# `device_model_stubdomain_override = 1` and the images as `stubdomain_kernel` /
# `stubdomain_ramdisk`. Checked:
#  - the images build inside dom0 (from the same packages as on the host);
#  - xl's create succeeds: the stub domain `<guest>-dm` runs, its /init started QEMU (the
#    stub's console 0 log, the qemu-dm-<guest> file, has "pvbuild-stubdom: QEMU pid"), QEMU in
#    it wrote `running` to /local/domain/<stub>/device-model/<guest>/state, the guest's
#    image/device-model-domid names the stub, and the stub's `target` names the guest;
#  - no QEMU in dom0 serves the guest (`-xen-domid <guest>`): the only dom0 QEMU is the one
#    serving the stub's consoles (`-xen-domid <stub>`);
#  - the guest runs its firmware: hvmloader's lines for it in Xen's log;
#  - `xl destroy` of the guest removes the stub domain too, and leaves no QEMU.
# All of that twice: first with the stub's xen-privcmd restricted to its target, the kernel's
# default since XSA-482 (/init then gives QEMU stubdom/privcmd-probe.c, and its "ok" line is
# required), then unrestricted (`pvbuild.privcmd=unrestricted` on the stub's command line)
# (docs/stubdom.md, "The privcmd restriction").
# Metrics: stubdom_build_s, stubdom_initrd_kib, xl_create_stubdom_{restricted,unrestricted}_s,
# xl_destroy_stubdom_{restricted,unrestricted}_s.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
. "$HARNESS_REPO/tests/xen/dom0/stubdom-lib.sh"
W=/tmp/xl-stubdom
rm -rf "$W" && mkdir -p "$W" || fail "cannot make $W"

trap 'cp "$W"/*.log "$W"/*.cfg "$W"/*.txt "$HARNESS_OUT"/ 2>/dev/null; cp /var/log/xen/qemu-dm-xlstub*.log "$HARNESS_OUT"/ 2>/dev/null
    stub_xl_disk_teardown' EXIT

t0=$(now)
PVBUILD_STUBDOM_STRACE=1 PVBUILD_STUBDOM_GZIP=1 sh "$HARNESS_REPO/stubdom/build.sh" "$W/img" > "$W/build.log" 2>&1 ||
    fail "stubdom/build.sh failed: $(tail -n 2 "$W/build.log" | paste -sd ' ')"
metric stubdom_build_s "$(elapsed "$t0")"
metric stubdom_initrd_kib "$(du -k "$W/img/stubdom-linux-initrd" | cut -f1)"
evidence "$(tail -n 1 "$W/build.log")"

dd if=/dev/zero of="$W/disk.img" bs=1M count=8 2> /dev/null || fail "cannot make $W/disk.img"
echo "PVBUILD-STUBDOM-TOKEN-$$" | dd of="$W/disk.img" conv=notrunc 2> /dev/null
# The stub's disk is blkback's (phy): libxl gives a stub domain no qdisk; a loop device and a
# fast `script=` (stubdom-lib.sh: why).
stub_xl_disk_setup "$W" "$W/disk.img"
loop=$stub_loop

# stub_cfg CMDLINE VGA: the guest's config, the stub's command line and the guest's vga given.
stub_cfg() {
    cat <<CFG
name = "xlstub"
type = "hvm"
memory = 128
vcpus = 1
vga = "$2"
vnc = 0
serial = "file:$W/xlstub-serial.log"
boot = "c"
disk = [ 'format=raw,vdev=hda,access=rw,script=$W/fast-block,target=$loop' ]
device_model_stubdomain_override = 1
# Without it libxl 4.17 picks qemu-xen-traditional (a MiniOS stub domain) for a stub domain.
device_model_version = "qemu-xen"
stubdomain_kernel = "$W/img/stubdom-linux-kernel"
stubdomain_ramdisk = "$W/img/stubdom-linux-initrd"
stubdomain_cmdline = "$1"
stubdomain_memory = 256
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
log=/var/log/xen/qemu-dm-xlstub.log
guest=
stub=
cleanup() {
    [ -n "$guest" ] && timeout 60 xl destroy "$guest" > /dev/null 2>&1
    [ -n "$stub" ] && timeout 60 xl destroy "$stub" > /dev/null 2>&1
}

# stub_create LABEL CMDLINE VGA: `xl create` of the guest with that stub command line and vga;
# sets rc, guest and stub, records metric xl_create_stubdom_LABEL_s, keeps xl's log
# (xl-create-LABEL.log), the config (xlstub-LABEL.cfg) and, afterwards, the stub's log
# (stub-LABEL.log, by save_log).
stub_create() {
    stub_cfg "$2" "$3" > "$W/xlstub-$1.cfg"
    rm -f "$log"
    t0=$(now)
    timeout 300 xl -vvv create "$W/xlstub-$1.cfg" > "$W/xl-create-$1.log" 2>&1
    rc=$?
    metric "xl_create_stubdom_$1_s" "$(elapsed "$t0")"
    guest=$(xl domid xlstub 2> /dev/null)
    stub=$(xl domid xlstub-dm 2> /dev/null)
}
save_log() { tr -d '\r' < "$log" > "$W/stub-$1.log" 2> /dev/null; }

# require_running LABEL: what a working stub shows (fails the scenario otherwise): xl's create
# succeeded, /init started QEMU, QEMU wrote `running`, the guest and the stub name each other,
# no dom0 QEMU serves the guest, and the guest's firmware runs.
require_running() {
    if [ "$rc" -ne 0 ]; then
        save_log "$1"
        cleanup
        fail "$1: xl create with the stub domain exited $rc: $(grep -iE 'error|fail' "$W/xl-create-$1.log" | tail -n 3 | paste -sd ' '); the stub: $(grep -E 'pvbuild-stubdom|privcmd-probe|xen-qemu-system-i386:' "$W/stub-$1.log" 2> /dev/null | tail -n 3 | paste -sd ' ')"
    fi
    [ -n "$guest" ] || { cleanup; fail "$1: no guest domain after xl create"; }
    [ -n "$stub" ] || { cleanup; fail "$1: no stub domain xlstub-dm after xl create"; }
    evidence "$1: guest domain $guest, stub domain $stub"
    grep -q "pvbuild-stubdom: QEMU pid" "$log" 2> /dev/null ||
        { cleanup; fail "$1: the stub's /init did not report QEMU running (its log: $(grep pvbuild-stubdom "$log" 2> /dev/null | tail -n 2 | paste -sd ' '))"; }
    state=$(xenstore-read "/local/domain/$stub/device-model/$guest/state" 2> /dev/null)
    [ "$state" = running ] || { cleanup; fail "$1: device-model state in the stub is '$state', not running"; }
    [ "$(xenstore-read "/local/domain/$guest/image/device-model-domid" 2> /dev/null)" = "$stub" ] ||
        { cleanup; fail "$1: the guest's image/device-model-domid does not name the stub"; }
    [ "$(xenstore-read "/local/domain/$stub/target" 2> /dev/null)" = "$guest" ] ||
        { cleanup; fail "$1: the stub's target does not name the guest"; }
    ps -eo pid,args > "$W/ps-$1.txt" 2>&1
    if grep -q -- "-xen-domid $guest " "$W/ps-$1.txt"; then
        cleanup
        fail "$1: a dom0 QEMU serves the guest: $(grep -- "-xen-domid $guest " "$W/ps-$1.txt" | head -n 1)"
    fi
    grep -q -- "-xen-domid $stub " "$W/ps-$1.txt" || note "$1: no dom0 QEMU for the stub's consoles"
    # The guest's firmware runs (Xen logs hvmloader's port 0xe9 lines as "(dN) ..."); its PCI
    # configuration goes through the stub's QEMU.
    wait_for 120 sh -c "xl dmesg | grep -q '(d$guest) HVM Loader'" ||
        { xl dmesg > "$W/xl-dmesg-$1.txt" 2>&1; cleanup; fail "$1: no hvmloader output for the guest in Xen's log"; }
    evidence "$1: stub state running; dom0 QEMUs: $(grep -c 'qemu-system-i386' "$W/ps-$1.txt")"
}

no_qemu() { ! pgrep -f 'qemu-system-i386 -xen-domid' > /dev/null; }
# stub_destroy LABEL: `xl destroy` of the guest takes the stub with it and leaves no QEMU.
stub_destroy() {
    t0=$(now)
    timeout 120 xl destroy "$guest" > "$W/xl-destroy-$1.log" 2>&1 || { cleanup; fail "$1: xl destroy $guest failed"; }
    wait_for 60 domain_gone xlstub-dm || { cleanup; fail "$1: the stub domain outlived its guest"; }
    metric "xl_destroy_stubdom_$1_s" "$(elapsed "$t0")"
    wait_for 30 no_qemu ||
        fail "$1: a QEMU is left after xl destroy: $(pgrep -af 'qemu-system-i386 -xen-domid' | head -n 1)"
    guest=
    stub=
}

# 1. The stub's xen-privcmd restricted to its target (the kernel's default since XSA-482):
#    required to work, QEMU given stubdom/privcmd-probe.c by /init, whose line for
#    libxendevicemodel's probe must say "ok".
stub_create restricted "console=hvc0" none
require_running restricted
sleep 5
save_log restricted
xl dmesg | grep "(d$guest)" > "$W/guest-firmware.txt" 2>&1
evidence "restricted: guest firmware: $(tail -n 1 "$W/guest-firmware.txt")"
grep -q "pvbuild-stubdom: privcmd restricted to domain $guest" "$W/stub-restricted.log" ||
    { cleanup; fail "restricted: /init did not report privcmd restricted to the guest"; }
probes=$(grep -c "privcmd-probe: DM_OP probe for domain $guest: ok" "$W/stub-restricted.log")
[ "$probes" -ge 1 ] || { cleanup; fail "restricted: no 'privcmd-probe: ... ok' line in the stub's log"; }
evidence "restricted: $probes libxendevicemodel probes answered ok for domain $guest"
stub_destroy restricted

# 2. Unrestricted (pvbuild.privcmd=unrestricted on the stub's command line: xen-privcmd loaded
#    with unrestricted=1, no privcmd-probe.so): must work too.
stub_create unrestricted "console=hvc0 pvbuild.privcmd=unrestricted" none
xl list > "$W/xl-list.txt" 2>&1
xenstore-ls -f > "$W/xenstore.txt" 2>&1
require_running unrestricted
save_log unrestricted
grep -q "privcmd-probe:" "$W/stub-unrestricted.log" &&
    { cleanup; fail "unrestricted: privcmd-probe.so was loaded although privcmd is unrestricted"; }
stub_destroy unrestricted
xl dmesg > "$W/xl-dmesg.txt" 2>&1
pass

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
# This is done with the stub's xen-privcmd loaded unrestricted (`pvbuild.privcmd=unrestricted`
# on its command line), after one create with it restricted, the kernel's default, whose
# outcome is recorded as a NOTE (docs/stubdom.md, "The privcmd restriction").
# Metrics: stubdom_build_s, xl_create_stubdom_s, stubdom_initrd_kib.
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

# stub_cfg CMDLINE: the guest's config, the stub's command line given.
stub_cfg() {
    cat <<CFG
name = "xlstub"
type = "hvm"
memory = 128
vcpus = 1
vga = "none"
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

# 1. The stub's privcmd restricted to its target (the kernel's default since XSA-482): what
#    the stub's QEMU does then is recorded (stub-restricted.log, QEMU under strace: its ioctls
#    and their errors), not required.
stub_cfg "console=hvc0 pvbuild.strace" > "$W/xlstub-restricted.cfg"
t0=$(now)
timeout 300 xl -vvv create "$W/xlstub-restricted.cfg" > "$W/xl-create-restricted.log" 2>&1
rc=$?
metric xl_create_stubdom_restricted_s "$(elapsed "$t0")"
cp "$log" "$W/stub-restricted.log" 2> /dev/null
guest=$(xl domid xlstub 2> /dev/null)
stub=$(xl domid xlstub-dm 2> /dev/null)
cleanup
wait_for 60 domain_gone xlstub-dm || fail "the restricted run's stub domain is left"
wait_for 60 domain_gone xlstub || fail "the restricted run's guest is left"
note "restricted privcmd: xl create exited $rc; the stub: $(grep -E 'pvbuild-stubdom: (kernel|QEMU)|xen-qemu-system-i386:' "$W/stub-restricted.log" | tail -n 4 | paste -sd ' ')"
note "restricted privcmd: QEMU's failed ioctls: $(grep -E 'ioctl\(.*= -1' "$W/stub-restricted.log" | sed 's/^\[pid *[0-9]*\] //' | sort | uniq -c | sort -rn | head -n 6 | paste -sd ';')"
rm -f "$log"
guest=
stub=

# 2. Unrestricted (pvbuild.privcmd=unrestricted): the whole path must work.
stub_cfg "console=hvc0 pvbuild.privcmd=unrestricted" > "$W/xlstub.cfg"
t0=$(now)
timeout 300 xl -vvv create "$W/xlstub.cfg" > "$W/xl-create.log" 2>&1
rc=$?
metric xl_create_stubdom_s "$(elapsed "$t0")"
guest=$(xl domid xlstub 2> /dev/null)
stub=$(xl domid xlstub-dm 2> /dev/null)
xl list > "$W/xl-list.txt" 2>&1
xenstore-ls -f > "$W/xenstore.txt" 2>&1
xl dmesg > "$W/xl-dmesg.txt" 2>&1
ps -eo pid,args > "$W/ps.txt" 2>&1
if [ "$rc" -ne 0 ]; then
    cleanup
    fail "xl create with the stub domain exited $rc: $(grep -iE 'error|fail' "$W/xl-create.log" | tail -n 3 | paste -sd ' '); the stub: $(grep -E 'pvbuild-stubdom|xen-qemu-system-i386:' "$log" 2> /dev/null | tail -n 3 | paste -sd ' ')"
fi
[ -n "$guest" ] || { cleanup; fail "no guest domain after xl create"; }
[ -n "$stub" ] || { cleanup; fail "no stub domain xlstub-dm after xl create"; }
evidence "guest domain $guest, stub domain $stub"

grep -q "pvbuild-stubdom: QEMU pid" "$log" 2> /dev/null ||
    { cleanup; fail "the stub's /init did not report QEMU running (its log: $(grep pvbuild-stubdom "$log" 2> /dev/null | tail -n 2 | paste -sd ' '))"; }
state=$(xenstore-read "/local/domain/$stub/device-model/$guest/state" 2> /dev/null)
[ "$state" = running ] || { cleanup; fail "device-model state in the stub is '$state', not running"; }
[ "$(xenstore-read "/local/domain/$guest/image/device-model-domid" 2> /dev/null)" = "$stub" ] ||
    { cleanup; fail "the guest's image/device-model-domid does not name the stub"; }
[ "$(xenstore-read "/local/domain/$stub/target" 2> /dev/null)" = "$guest" ] ||
    { cleanup; fail "the stub's target does not name the guest"; }
if grep -q -- "-xen-domid $guest " "$W/ps.txt"; then
    cleanup
    fail "a dom0 QEMU serves the guest: $(grep -- "-xen-domid $guest " "$W/ps.txt" | head -n 1)"
fi
grep -q -- "-xen-domid $stub " "$W/ps.txt" || note "no dom0 QEMU for the stub's consoles"
evidence "stub state running; dom0 QEMUs: $(grep -c 'qemu-system-i386' "$W/ps.txt")"

# The guest's firmware runs (Xen logs hvmloader's port 0xe9 lines as "(dN) ...").
wait_for 120 sh -c "xl dmesg | grep -q '(d$guest) HVM Loader'" ||
    { xl dmesg > "$W/xl-dmesg.txt" 2>&1; cleanup; fail "no hvmloader output for the guest in Xen's log"; }
sleep 5
xl dmesg | grep "(d$guest)" > "$W/guest-firmware.txt" 2>&1
evidence "guest firmware: $(tail -n 1 "$W/guest-firmware.txt")"

t0=$(now)
timeout 120 xl destroy "$guest" > "$W/xl-destroy.log" 2>&1 || { cleanup; fail "xl destroy $guest failed"; }
wait_for 60 domain_gone xlstub-dm || { cleanup; fail "the stub domain outlived its guest"; }
metric xl_destroy_stubdom_s "$(elapsed "$t0")"
sleep 2
if pgrep -f 'qemu-system-i386 -xen-domid' > /dev/null; then
    fail "a QEMU is left after xl destroy: $(pgrep -af 'qemu-system-i386 -xen-domid' | head -n 1)"
fi
pass

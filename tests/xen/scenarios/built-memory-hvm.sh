# harness-timeout: 600
# built-memory-hvm (issues 12 and 14): built-memory for an HVM guest (`type = "hvm"`:
# hvmloader with SeaBIOS as its module, Debian's kernel and the harness ramdisk for QEMU's
# direct kernel boot, $HARNESS_GUEST_MEMORY MiB, 2 vcpus, vga = "none", vnc = 0, the serial
# port a file). The config is built paused by xl twice (the soundness case, with
# HARNESS_XL_SIDE=1: the two dumps
# must be identical, or the normalisation is wrong) and by pvbuild, each paused domain read
# from dom0 by `memdump hvm` (tests/xen/memdump/memdump.c: Xen's own libraries and headers,
# nothing of pvbuild's) once its device model is running, as each toolstack leaves it (both
# `create -p` start QEMU and return once it is `running`): domain info, event channels, every
# HVM parameter, every record of the HVM context (the CPU record's tsc, the RTC's clock and
# the PM timer's count masked: time), the start info hvmloader gets at the boot vcpu's %rbx
# (SeaBIOS as its module, the memory map), every page by guest-physical frame from 0 to the
# domain's maximum gpfn ("absent", "zero" or a hash: hvmloader, SeaBIOS, hvm_info, the
# special and ioreq pages, and whatever QEMU populated) and the grant-table entries.
# xl's and pvbuild's dumps must be identical, and so must the xenstore trees
# (/local/domain/D, /vm/UUID, /libxl/D, /local/domain/0/device-model/D and the domain's
# backends; values and permissions; the domid, uuid, name, pty, start time and QEMU's pid
# normalised). The shared part: tests/xen/dom0/memdump-compare.sh. No guest is unpaused.
# Metrics: *_create_s, *_dump_s per build.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
. "$HARNESS_REPO/tests/xen/dom0/memdump-compare.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
bm_setup built-memory-hvm

# One serial file for every guest (they never run, and never two at once): a path with the
# guest's name in it would be in QEMU's argv only, but one path keeps the three builds alike.
bm_cfg() {
    cat <<CFG
name = "$1"
type = "hvm"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
cmdline = "console=ttyS0"
memory = $HARNESS_GUEST_MEMORY
vcpus = 2
serial = "file:$W/serial.log"
vga = "none"
vnc = 0
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
# Ready: the device model says it runs (both toolstacks return only then; checked again).
bm_ready() { [ "$(xenstore-read "/local/domain/0/device-model/$1/state" 2>/dev/null)" = running ]; }

bm_build_dump xl bmhvm-xl
sound=
if bm_soundness; then
    bm_build_dump xl bmhvm-xl2
    sound=bmhvm-xl2
fi
bm_build_dump pvbuild bmhvm-pvb
[ "$(grep -c '^page ' "$W/bmhvm-xl.dump")" -ge 3 ] || fail "xl's dump has too few page lines"
grep -q '^hvm_start_info.magic 0x336ec578 ' "$W/bmhvm-xl.dump" || fail "xl's dump has no start info at the boot vcpu's %rbx"
note "xl's dump: $(wc -l < "$W/bmhvm-xl.dump") lines, $(grep '^pages present' "$W/bmhvm-xl.dump")"
bm_compare bmhvm-xl "$sound" bmhvm-pvb hvm
pass

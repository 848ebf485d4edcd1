# harness-timeout: 1500
# pvbuild-hvm-diskboot (issue 14): an HVM guest booted from a disk image through its firmware
# (hvmloader, SeaBIOS, the disk's GRUB), no kernel key: the image is built here, in dom0, by
# tests/xen/build-hvm-disk.sh from Debian's packages (the harness's guest kernel and ramdisk on
# an ext2 partition, GRUB for BIOS from grub-pc-bin; no root, no loop device), given to the
# guest as `disk = [ 'format=raw,vdev=hda,access=rw,backendtype=qdisk,target=IMG' ]` (qdisk:
# the guest's QEMU serves it; libxl's default for a file, blkback, needs a loop device) on an
# AHCI controller (`hdtype = "ahci"`: SeaBIOS reads it by DMA; on the IDE disk, by PIO, a
# first run's GRUB read its grub.cfg 290 s after the create and then not the 8 MiB kernel
# within 15 min: each port access is a round trip to QEMU in dom0 under TCG) with
# `boot = "c"`; the guest's init must print its marker on the emulated serial port (a file;
# each line stamped with the second it was seen, in NAME-serial.stamped), with the command line
# of the disk's grub.cfg (GRUB puts BOOT_IMAGE= in front), after GRUB's own lines. The guest
# then powers off (on_poweroff = "destroy"): nothing may be left, no QEMU either.
# This script boots pvbuild's guest (`pvbuild create --wait`, which must end when the guest
# powers off); xl's guest of the same config is the opt-in xl-hvm-diskboot (this script with
# HARNESS_HVM_XL_DISKBOOT=1): each boot costs minutes under TCG.
# Metrics: image_build_s, image_mib; pvbuild_create_s, and from the start of the create
# pvbuild_grub_s (GRUB read its grub.cfg), pvbuild_kernel_read_s, pvbuild_initrd_read_s (GRUB
# read them through SeaBIOS's disk calls), pvbuild_marker_s; xl's side the same with xl_.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
cmdline="console=ttyS0 quiet pci=noearly"
img=/var/tmp/hvm-diskboot.img
# The disk's command line as the guest's kernel sees it.
want=$(expected_marker "$HARNESS_GUEST_KVER" "BOOT_IMAGE=/boot/vmlinuz $cmdline")

t=$(now)
sh "$HARNESS_REPO/tests/xen/build-hvm-disk.sh" "$img" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$cmdline" \
    > "$HARNESS_OUT/build-disk.log" 2>&1 || fail "build-hvm-disk.sh exited $?: $(tail -n 2 "$HARNESS_OUT/build-disk.log" | paste -sd ' ')"
metric image_build_s "$(elapsed "$t")"
metric image_mib $(($(wc -c < "$img") >> 20))
note "disk image: $(tail -n 1 "$HARNESS_OUT/build-disk.log")"

# diskboot_cfg NAME: the xl config (1 vcpu and 128 MiB, as pvbuild-hvm's booted guests).
diskboot_cfg() {
    cat <<CFG
name = "$1"
type = "hvm"
memory = 128
vcpus = 1
disk = [ 'format=raw,vdev=hda,access=rw,backendtype=qdisk,target=$img' ]
boot = "c"
hdtype = "ahci"
serial = "file:$HARNESS_OUT/$1-serial.log"
vga = "none"
vnc = 0
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
only_dom0() { [ "$(xl list 2>/dev/null | awk 'NR > 1 { n++ } END { print n }')" = "1" ]; }
no_qemu() { ! pgrep -f 'qemu-system-i386 -xen-domid' > /dev/null; }
serial_marker() { serial_text "$1" | grep -a -m 1 "PVBUILD-GUEST-OK"; }
# serial_text, serial_tail, wait_serial: tests/xen/dom0/lib.sh.
# save_argv WHO NAME: the argv of NAME's QEMU, one argument a line, in WHO-qemu-argv.txt.
save_argv() {
    _d=$(xl domid "$2" 2>/dev/null) || return 0
    _p=$(pgrep -f "qemu-system-i386 -xen-domid $_d " | head -n 1)
    [ -n "$_p" ] && tr '\0' '\n' < "/proc/$_p/cmdline" > "$HARNESS_OUT/$1-qemu-argv.txt"
}
# check_boot WHO NAME T0: GRUB's lines (its grub.cfg read, then the kernel and the ramdisk
# read through the BIOS), then the marker, each timed from T0 as WHO_grub_s, WHO_kernel_read_s,
# WHO_initrd_read_s, WHO_marker_s.
check_boot() {
    evidence "$HARNESS_OUT/$2-serial.stamped"
    wait_serial "$2" "$3" 400 PVBUILD-GRUB-CFG || fail "no line from the disk's GRUB on $1's guest within 400 s: $(serial_tail "$2")"
    metric "$1_grub_s" "$(elapsed "$3")"
    wait_serial "$2" "$3" 400 PVBUILD-GRUB-KERNEL-READ || fail "GRUB did not read the kernel on $1's guest within 400 s: $(serial_tail "$2")"
    metric "$1_kernel_read_s" "$(elapsed "$3")"
    wait_serial "$2" "$3" 200 PVBUILD-GRUB-INITRD-READ || fail "GRUB did not read the ramdisk on $1's guest within 200 s: $(serial_tail "$2")"
    metric "$1_initrd_read_s" "$(elapsed "$3")"
    wait_serial "$2" "$3" 600 PVBUILD-GUEST-OK || fail "no marker from $1's guest within 600 s of GRUB's boot: $(serial_tail "$2")"
    metric "$1_marker_s" "$(elapsed "$3")"
    [ "$(serial_marker "$2")" = "$want" ] || fail "$1's marker is '$(serial_marker "$2")', expected '$want'"
}

if [ "${HARNESS_HVM_XL_DISKBOOT:-0}" = 1 ]; then
    diskboot_cfg xldisk > "$HARNESS_OUT/xldisk.cfg"
    trap 'xl destroy xldisk > /dev/null 2>&1; rm -f "$img"' EXIT
    t0=$(now)
    xl create "$HARNESS_OUT/xldisk.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
        fail "xl create exited $?: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
    metric xl_create_s "$(elapsed "$t0")"
    save_argv xl xldisk
    check_boot xl xldisk "$t0"
    # init powers off after its marker; on_poweroff = "destroy".
    wait_for 120 only_dom0 || fail "xl's guest still there 120 s after its marker: $(xl list 2>&1 | awk 'NR > 2 { print $1, $5 }' | paste -sd ' ')"
    wait_for 30 no_qemu || fail "a QEMU is left: $(pgrep -af 'qemu-system-i386 -xen-domid' | cut -c1-120)"
    pass
fi

[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
diskboot_cfg pvbdisk > "$HARNESS_OUT/pvbdisk.cfg"
log=$HARNESS_OUT/pvbuild-create.log
trap '"$HARNESS_PVBUILD" destroy pvbdisk > /dev/null 2>&1; rm -f "$img"' EXIT
t0=$(now)
"$HARNESS_PVBUILD" -v create --wait --timeout 900 "$HARNESS_OUT/pvbdisk.cfg" > "$log" 2>&1 &
pid=$!
evidence "$log"
created() { grep -q 'created domain' "$log" || ! proc_alive "$pid"; }
wait_for 120 created || fail "pvbuild create did not create the domain within 120 s: $(tail -n 2 "$log" | paste -sd ' ')"
grep -q 'created domain' "$log" || fail "pvbuild create exited before creating: $(grep -m 1 '^error' "$log")"
metric pvbuild_create_s "$(sed -n 's/.*created domain [0-9]* (pvbdisk) in \([0-9.]*\) s.*/\1/p' "$log" | head -n 1)"
save_argv pvbuild pvbdisk
grep -qx 'ahci,id=ahci0' "$HARNESS_OUT/pvbuild-qemu-argv.txt" 2>/dev/null ||
    fail "pvbuild's QEMU has no AHCI controller: $(paste -sd ' ' "$HARNESS_OUT/pvbuild-qemu-argv.txt" 2>/dev/null | cut -c1-300)"
check_boot pvbuild pvbdisk "$t0"
# init powers off after its marker: the waiting create reports it and ends.
done_p() { ! proc_alive "$pid"; }
wait_for 120 done_p || fail "pvbuild create --wait still running 120 s after the marker: $(tail -n 2 "$log" | paste -sd ' ')"
wait "$pid" || fail "pvbuild create --wait exited $?: $(grep -m 1 '^error' "$log")"
grep -q 'poweroff' "$log" || fail "pvbuild did not report the guest's poweroff: $(tail -n 2 "$log" | paste -sd ' ')"
wait_for 60 only_dom0 || fail "left behind: $(xl list 2>&1 | awk 'NR > 2 { print $1 }' | paste -sd ' ')"
wait_for 30 no_qemu || fail "a QEMU is left: $(pgrep -af 'qemu-system-i386 -xen-domid' | cut -c1-120)"
pass

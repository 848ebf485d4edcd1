# pvbuild-phy: a raw block device goes to the dom0 kernel's blkback (backend/vbd), as
# libxl picks `phy` first. dom0 loads xen-blkback and attaches an image to a loop device;
# `disk = [ 'phy:/dev/loopN,xvda,w' ]` as an xl user writes it must then be served by
# blkback, with no device model: the guest (xen-blkfront) reads the image's first line
# and writes its own at byte 4096, which must be in the image after it powered off.
# After the teardown blkback must have let go of the device (no vbd backend in sysfs or
# xenstore, `losetup -d` succeeds). A paused domain with the device read-only
# (`access=r`) gets a backend that reaches InitWait with mode r; `pvbuild destroy` removes
# it. A running guest without disks gets the device by `pvbuild block-attach` (listed by
# `block-list`), reads and writes it, and loses it by `block-detach`; attaching an image
# file with a device model that cannot start (nothing of it or the disk is left), or xvdb
# twice, is refused.
# `backendtype=phy` on an image file is refused before any domain exists.
# The `block` script's sharing check (issue 13), which pvbuild runs itself: the device is
# refused read-write while the paused domain has it read-only, and a second loop device
# with a file system mounted (read-only) in dom0 is refused read-write; neither leaves a
# domain.
# xen-blkback is unloaded again at the end, so later scenarios see dom0 as before.
# Metrics: phy_create_s (till the guest's marker), attach_s / detach_s (block-attach and
# block-detach of the running guest, till each returned).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbphy
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
loaded_here=
if [ ! -d /sys/bus/xen-backend/drivers/vbd ]; then
    modprobe xen-blkback || fail "modprobe xen-blkback failed"
    loaded_here=1
fi
modprobe loop 2>/dev/null
blkback_there() { [ -d /sys/bus/xen-backend/drivers/vbd ]; }
wait_for 10 blkback_there || fail "xen-blkback loaded but /sys/bus/xen-backend/drivers/vbd is missing"
loop=
loop2=
mnt=
cleanup() {
    [ -n "$mnt" ] && umount "$mnt" 2>/dev/null
    [ -n "$loop2" ] && losetup -d "$loop2" 2>/dev/null
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
    [ -n "$loaded_here" ] && modprobe -r xen-blkback 2>/dev/null
}
trap cleanup EXIT

token="pvbuild-phy-$$-$(date +%s)"
img="$HARNESS_OUT/phy.img"
printf 'PVBUILD-DISK-DATA %s\n' "$token" > "$img"
truncate -s 16M "$img"
loop=$(losetup -f --show "$img") || fail "losetup failed"
[ -b "$loop" ] || fail "no block device $loop"
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.disk"

# no_vbds WHEN: no vbd backend left in sysfs or xenstore, no device model, one domain.
no_vbds() {
    _gone() { ! ls /sys/bus/xen-backend/devices 2>/dev/null | grep -q '^vbd-'; }
    wait_for 30 _gone || fail "$1: blkback still has $(ls /sys/bus/xen-backend/devices | grep '^vbd-' | paste -sd ' ')"
    _l=$(xenstore-ls -f /local/domain/0 2>/dev/null | grep -E '/backend/(vbd|qdisk)|/device-model/' | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: xenstore entries left: $_l"
    pgrep -f -- '-xen-domid' > /dev/null && fail "$1: a device model runs: $(pgrep -af -- '-xen-domid' | head -n 1)"
    [ "$(xs_domains)" = 0 ] || fail "$1: /local/domain lists $(xs_domains)"
    [ "$(xl list | awk 'NR > 1' | wc -l)" = 1 ] || fail "$1: a domain was left: $(xl list | tail -n 1)"
}

cfg="$HARNESS_OUT/$name.cfg"
pv_cfg "$name" "$cmdline" "disk = [ 'phy:$loop,xvda,w' ]" > "$cfg"
log="$HARNESS_OUT/pvbuild-create.log"
t0=$(now)
create_wait_up "$name" "$cfg" "$log" has_marker "the marker show"
metric phy_create_s "$(elapsed "$t0")"
check_marker_and_poweroff "$name" "$cmdline" "$pid" "$log"
grep -q "device model" "$log" && fail "a device model was started for a blkback disk: $(grep -m 1 'device model' "$log")"
clog() { tr -d '\r' < "$(console_log "$name")"; }
clog | grep -q "PVBUILD-DISK-READ PVBUILD-DISK-DATA $token" ||
    fail "the guest did not read the disk: $(clog | grep -m 1 PVBUILD-DISK)"
clog | grep -q "PVBUILD-DISK-WROTE" || fail "the guest did not write the disk: $(clog | grep -m 1 -E 'PVBUILD-DISK-WRITE|Segmentation')"
no_vbds "after the guest powered off"
written=$(dd if="$loop" bs=512 skip=8 count=1 iflag=direct 2>/dev/null | tr -d '\0' | head -n 1)
[ "$written" = "PVBUILD-DISK-WRITTEN $HARNESS_GUEST_KVER" ] || fail "the guest's write is not on the device: '$written'"

# Paused, read-only: blkback takes the device (InitWait) with mode r; destroy removes it.
"$pvb" create -p --name "${name}p" --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --cmdline x --disk "vdev=xvda,access=r,target=$loop" > "$log.p" 2>&1 ||
    fail "create -p with a read-only phy disk exited $?: $(grep -m 1 '^error' "$log.p")"
evidence "$log.p"
d=$(xl domid "${name}p")
be="/local/domain/0/backend/vbd/$d/51712"
state=$(xenstore-read "$be/state" 2>/dev/null)
[ "${state:-0}" -ge 2 ] || fail "blkback's state is '$state', not past Initialising"
[ "$(xenstore-read "$be/mode")" = r ] || fail "mode is $(xenstore-read "$be/mode")"
[ -e "/sys/bus/xen-backend/devices/vbd-$d-51712" ] || fail "no vbd-$d-51712 in blkback's sysfs"
# Sharing: read-write beside that read-only guest is refused, before any domain.
"$pvb" create -p --name "${name}s" --kernel "$HARNESS_GUEST_KERNEL" --memory "$HARNESS_GUEST_MEMORY" \
    --cmdline x --disk "phy:$loop,xvda,w" > "$log.s" 2>&1 && fail "a device another guest has was given read-write"
evidence "$log.s"
grep -q "^error: disk 0: $loop: domain $d has it read-only" "$log.s" || fail "sharing: unexpected message: $(head -n 1 "$log.s")"
domain_gone "${name}s" || fail "the refused create left domain ${name}s"
"$pvb" destroy "${name}p" >> "$log.p" 2>&1 || fail "pvbuild destroy exited $?"
wait_for 30 domain_gone "${name}p" || fail "${name}p still exists after pvbuild destroy"
no_vbds "after pvbuild destroy"

# Hot-plug: a running guest without disks gets the device by `block-attach` (blkback), reads
# and writes it, and loses it by `block-detach`; an image file whose device model cannot
# start is refused, leaving nothing.
h=${name}h
disk_hotplug_guest "$h" "$loop" "$token-hot" "$log.h"
dh=$(xl domid "$h")
t2=$(now)
"$pvb" block-attach "$h" "phy:$loop,xvdb,w" > "$HARNESS_OUT/attach.log" 2>&1 ||
    fail "block-attach exited $?: $(paste -sd ' ' < "$HARNESS_OUT/attach.log")"
metric attach_s "$(elapsed "$t2")"
evidence "$HARNESS_OUT/attach.log"
grep -q "disk xvdb (device 51728) served by blkback" "$HARNESS_OUT/attach.log" || fail "attach said: $(cat "$HARNESS_OUT/attach.log")"
"$pvb" block-list "$h" > "$HARNESS_OUT/block-list.txt" 2>&1 || fail "block-list exited $?"
evidence "$HARNESS_OUT/block-list.txt"
grep -q "^51728 .*/backend/vbd/$dh/51728" "$HARNESS_OUT/block-list.txt" || fail "block-list: $(paste -sd ' ' < "$HARNESS_OUT/block-list.txt")"
wait_for 120 console_has "$h" PVBUILD-DISK-WROTE || fail "$h did not write the attached disk: $(console_text "$h" | grep PVBUILD-DISK | paste -sd ' ')"
console_has "$h" "PVBUILD-DISK-READ PVBUILD-DISK-DATA $token-hot" || fail "$h read: $(console_text "$h" | grep -m 1 PVBUILD-DISK-READ)"
"$pvb" block-attach --device-model /bin/false "$h" "$img,raw,xvdc,w" > "$HARNESS_OUT/attach-file.log" 2>&1 &&
    fail "an image file was attached with a device model that cannot start"
grep -q "^error: device-model: device model exited" "$HARNESS_OUT/attach-file.log" ||
    fail "unexpected message: $(head -n 1 "$HARNESS_OUT/attach-file.log")"
_l=$(xenstore-ls -f "/local/domain/0" 2>/dev/null | grep -E "/backend/qdisk/$dh|/device-model/$dh" | head -n 3 | paste -sd ' ')
[ -z "$_l" ] || fail "the failed attach left: $_l"
xenstore-read "/local/domain/$dh/image/device-model-pid" > /dev/null 2>&1 && fail "the failed attach left a device-model-pid"
xenstore-read "/local/domain/$dh/device/vbd/51744/backend" > /dev/null 2>&1 && fail "the failed attach left a frontend"
"$pvb" block-attach "$h" "phy:$loop,xvdb,w" > "$HARNESS_OUT/attach-again.log" 2>&1 && fail "xvdb was attached twice"
grep -q "^error: domain $dh already has disk xvdb" "$HARNESS_OUT/attach-again.log" || fail "unexpected message: $(head -n 1 "$HARNESS_OUT/attach-again.log")"
t3=$(now)
"$pvb" block-detach "$h" xvdb > "$HARNESS_OUT/detach.log" 2>&1 || fail "block-detach exited $?: $(cat "$HARNESS_OUT/detach.log")"
metric detach_s "$(elapsed "$t3")"
grep -q warning "$HARNESS_OUT/detach.log" && fail "the guest did not close the disk: $(cat "$HARNESS_OUT/detach.log")"
wait_for 120 console_has "$h" PVBUILD-DISK-DETACHED || fail "$h still sees xvdb: $(console_text "$h" | grep PVBUILD-DISK | tail -n 1)"
[ -z "$(xenstore-ls "/local/domain/0/backend/vbd/$dh" 2>/dev/null)" ] || fail "backend/vbd/$dh is left after the detach"
# (By id: the guest powers off right after it saw the disk go, and its monitor destroys it.)
[ "$("$pvb" block-list "$dh" | wc -l)" = 1 ] || fail "block-list after the detach: $("$pvb" block-list "$dh" 2>&1 | paste -sd ' ')"
written=$(dd if="$loop" bs=512 skip=8 count=1 iflag=direct 2>/dev/null | tr -d '\0' | head -n 1)
[ "$written" = "PVBUILD-DISK-WRITTEN $HARNESS_GUEST_KVER" ] || fail "the hot-plugged guest's write is not on the device: '$written'"
wait_for 120 domain_gone "$h" || fail "$h did not power off and go after the detach"
no_vbds "after the hot-plug guest"

# Sharing: a device mounted in dom0 (even read-only) is refused read-write.
img2="$HARNESS_OUT/mounted.img"
truncate -s 8M "$img2"
mkfs=$(command -v mkfs.ext2 || echo /sbin/mkfs.ext2)
"$mkfs" -q -F "$img2" || fail "mkfs.ext2 failed"
loop2=$(losetup -f --show "$img2") || fail "losetup of a second device failed"
mnt="$HARNESS_OUT/mnt"
mkdir -p "$mnt"
mount -o ro "$loop2" "$mnt" || { mnt=; fail "mount -o ro $loop2 failed"; }
"$pvb" create -p --name "${name}m" --kernel "$HARNESS_GUEST_KERNEL" --memory "$HARNESS_GUEST_MEMORY" \
    --cmdline x --disk "phy:$loop2,xvda,w" > "$log.m" 2>&1 && fail "a device mounted in dom0 was given read-write"
evidence "$log.m"
grep -q "^error: disk 0: $loop2: it is mounted in dom0 (at $mnt)" "$log.m" || fail "mounted: unexpected message: $(head -n 1 "$log.m")"
no_vbds "the mounted device refused"
umount "$mnt" && mnt=
losetup -d "$loop2" && loop2=

# Refused before any domain: backendtype=phy on an image file.
"$pvb" create --name "${name}x" --kernel "$HARNESS_GUEST_KERNEL" --memory "$HARNESS_GUEST_MEMORY" \
    --disk "vdev=xvda,backendtype=phy,target=$img" > "$log.x" 2>&1 && fail "backendtype=phy on a file was accepted"
grep -q '^error: disk 0: backendtype=phy on an image file' "$log.x" || fail "unexpected message: $(head -n 1 "$log.x")"
no_vbds "phy on a file"

# blkback let go of the device: it can be detached.
losetup -d "$loop" || fail "losetup -d $loop failed: the device is still held"
loop=
pass

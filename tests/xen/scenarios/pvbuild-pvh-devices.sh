# harness-timeout: 1500
# pvbuild-pvh-devices (issue 14): a PVH guest's disks, network interfaces and bootloader, as
# xl gives them to PVH guests (the PV path's device code: the same xenstore entries, the same
# QEMU for qdisks, blkback for phy, libxl's vif-bridge script).
#  A. Debian's kernel as a PVH guest (`type = "pvh"`) with an image file as xvda (qdisk:
#     pvbuild starts the dom0 QEMU), a loop device as xvdb (phy: blkback) and an interface on
#     dom0's bridge, `on_reboot = "restart"`, made by `pvbuild create --wait`. The guest
#     (xen-blkfront, xen-netfront) must read the image's first line and write its own at byte
#     4096 (found in the image afterwards), ping dom0 and answer dom0's pings; blkback's
#     backend for xvdb must reach Connected (the guest's frontend took it). Then
#     `pvbuild reboot`: the monitor starts it again under a new domain id with its disks and
#     interface (the restarted guest reads the disk, pings dom0 and answers dom0's pings
#     again); `pvbuild shutdown`:
#     it powers off, and no QEMU, blkback device, vif or backend entry is left.
#  B. `bootloader = "pygrub"` for a PVH guest, as libxl 4.17 runs it for PV and PVH
#     (libxl_bootloader.c skips only HVM): the kernel, ramdisk and command line come from the
#     grub.cfg of an ext4 image (the PV case is pvbuild-pygrub). The guest boots without a
#     second disk or an interface: `pvbuild block-attach` gives it xvdb (served by the
#     QEMU already serving xvda), it reads and writes it, `block-detach` takes it away;
#     `pvbuild network-attach` gives it an interface, it pings dom0 and dom0 pings it,
#     `network-detach` takes it away; its marker shows grub.cfg's command line and it powers
#     off, leaving nothing. A guest of B that reboots unasked before its marker (TCG's triple
#     fault of PVH guests: the CI-style run of 2026-12-07 04:30 lost B so, after its
#     network-detach) is noted with Xen's lines, destroyed, and B runs once more (part_b).
#  A guest of A that reboots unasked (the same fault; the CI-style run of 2026-12-07 08:13
#  lost A so) is handled the same way (part_a). Before such a destroy the create's own
#  `--wait` is ended first (stop_create), so that no restart of its own races the destroy.
#  A and B run at once (since 2026-12-07, for CI's budget: one after the other they took
#  243-284 s), two PVH guests on the bridge (B's at 10.99.0.3: `pvbuild.ip=3`); each checks
#  that nothing of its own domains is left, and once both are done nothing at all may be.
# Metrics: a_marker_s (create till the first marker), a_restart_s (reboot till the restarted
# guest read its disk), a_attempts, b_marker_s (create, pygrub included, till the marker),
# b_attempts, ab_s (both parts, at once).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
setup_bridge
loaded_here=
if [ ! -d /sys/bus/xen-backend/drivers/vbd ]; then
    modprobe xen-blkback || fail "modprobe xen-blkback failed"
    loaded_here=1
fi
modprobe loop 2>/dev/null
blkback_there() { [ -d /sys/bus/xen-backend/drivers/vbd ]; }
wait_for 10 blkback_there || fail "xen-blkback loaded but /sys/bus/xen-backend/drivers/vbd is missing"
loop=
cleanup() {
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
    [ -n "$loaded_here" ] && modprobe -r xen-blkback 2>/dev/null
}
trap cleanup EXIT

# nothing_left WHEN: no device model, blkback device, vif, backend entry or domain is left.
nothing_left() {
    _noqemu() { ! pgrep -f -- '-xen-domid' > /dev/null 2>&1; }
    wait_for 30 _noqemu || fail "$1: a device model is still running: $(pgrep -af -- '-xen-domid' | head -n 1)"
    _novbd() { ! ls /sys/bus/xen-backend/devices 2>/dev/null | grep -q '^vbd-'; }
    wait_for 30 _novbd || fail "$1: blkback still has $(ls /sys/bus/xen-backend/devices | grep '^vbd-' | paste -sd ' ')"
    _l=$(vif_links | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: backend interfaces left: $_l"
    _l=$(xenstore-ls -f /local/domain/0 2>/dev/null | grep -E '/backend/(vbd|qdisk|vif)|/device-model/[0-9]' | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: xenstore entries left: $_l"
    [ "$(xl list | awk 'NR > 1' | wc -l)" = 1 ] || fail "$1: a domain was left: $(xl list | tail -n 1)"
    [ "$(xs_domains)" = 0 ] || fail "$1: /local/domain lists $(xs_domains)"
}
# nothing_left_of LOG WHEN: nothing of the domains whose creates LOG reports ("created domain
# N") is left: no device model, blkback device, vif, backend or device-model entry, domain or
# /local/domain/N. (A and B run at once: each checks its own; nothing_left, above, checks
# everything once both are done.)
nothing_left_of() {
    for _d in $(sed -n 's/^pvbuild: created domain \([0-9][0-9]*\) .*/\1/p' "$1" 2>/dev/null | sort -u); do
        _noqemu_d() { ! pgrep -f -- "-xen-domid $_d " > /dev/null 2>&1; }
        wait_for 30 _noqemu_d || fail "$2: a device model of domain $_d is still running: $(pgrep -af -- "-xen-domid $_d " | head -n 1)"
        _novbd_d() { ! ls /sys/bus/xen-backend/devices 2>/dev/null | grep -q "^vbd-$_d-"; }
        wait_for 30 _novbd_d || fail "$2: blkback still has $(ls /sys/bus/xen-backend/devices | grep "^vbd-$_d-" | paste -sd ' ')"
        _l=$(vif_links | grep "^vif$_d\." | head -n 3 | paste -sd ' ')
        [ -z "$_l" ] || fail "$2: backend interfaces of domain $_d left: $_l"
        _l=$(xenstore-ls -f /local/domain/0 2>/dev/null | grep -E "/backend/(vbd|qdisk|vif)/$_d/|/device-model/$_d/" | head -n 3 | paste -sd ' ')
        [ -z "$_l" ] || fail "$2: xenstore entries of domain $_d left: $_l"
        ! timeout 20 xl list "$_d" > /dev/null 2>&1 || fail "$2: domain $_d was left: $(timeout 20 xl list "$_d" 2>&1 | tail -n 1)"
        [ -z "$(xenstore-ls "/local/domain/$_d" 2>/dev/null | head -n 1)" ] || fail "$2: /local/domain/$_d is still there"
    done
}
count() { console_text "$1" | grep -c "$2"; }
# start_wait NAME CFG LOG READY WHAT [CREATE-FLAGS...]: lib.sh's create_wait_up with room for
# a restart and hot-plugs (--timeout 1200, the whole --wait): `pvbuild -v create --wait` in the
# background (its pid in $pid) until READY NAME holds or pvbuild exited before the marker.
start_wait() {
    _sw_name=$1 _sw_cfg=$2 _sw_log=$3 _sw_ready=$4 _sw_what=$5
    shift 5
    "$pvb" -v create --wait --timeout 1200 "$@" "$_sw_cfg" > "$_sw_log" 2>&1 &
    pid=$!
    evidence "$_sw_log"
    _sw_done() { ! kill -0 "$pid" 2>/dev/null; }
    _sw_progress() { _sw_done || "$_sw_ready" "$_sw_name"; }
    wait_for 300 _sw_progress || fail "neither did pvbuild create return nor $_sw_what within 300 s"
    if _sw_done && ! has_marker "$_sw_name"; then
        wait "$pid"
        fail "pvbuild create exited $? before the guest ran: $(grep -m 1 '^error' "$_sw_log" | tr -d '\r')"
    fi
    evidence "$(console_log "$_sw_name")"
}

# A. Disks and an interface from the config; a restart by the monitor.
name=pvbpvhdev
token="pvh-$$-$(date +%s)"
img="$HARNESS_OUT/disk.img"
printf 'PVBUILD-DISK-DATA %s\n' "$token" > "$img"
truncate -s 16M "$img"
phyimg="$HARNESS_OUT/phy.img"
truncate -s 8M "$phyimg"
loop=$(losetup -f --show "$phyimg") || fail "losetup failed"
[ -b "$loop" ] || fail "no block device $loop"
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.disk pvbuild.net pvbuild.idle=600"
cfg="$HARNESS_OUT/$name.cfg"
cat > "$cfg" <<CFG
name = "$name"
type = "pvh"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "$cmdline"
memory = $HARNESS_GUEST_MEMORY
disk = [ 'file:$img,xvda,w', 'phy:$loop,xvdb,w' ]
vif = [ 'mac=00:16:3e:aa:bb:14,bridge=xenbr0' ]
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "destroy"
CFG
# part_a: A, from its create to nothing left after its poweroff, in a subshell (its output
# kept in part-a.N.out). A guest that reboots unasked on the way (TCG's triple fault of a PVH
# guest: the CI-style run of 2026-12-07 08:13 lost A so, d113v0 after its network came up,
# pvbuild restarting it as it should while the scenario still looked at d113) makes the
# first attempt a note: its domain destroyed, nothing left, A once more. Any other failure,
# or a second one, fails the scenario.
part_a() {
    log="$HARNESS_OUT/pvbuild-create.log"
    t0=$(now)
    start_wait "$name" "$cfg" "$log" has_net_up "the guest's network come up"
    echo "$pid" > "$HARNESS_OUT/a-create.pid"
    d1=$(timeout 20 xl domid "$name") || fail "no domain $name"
    xenstore-ls -fp > "$HARNESS_OUT/xenstore-a.txt" 2>&1
    [ "$(xenstore-read "/local/domain/0/backend/vif/$d1/0/hotplug-status")" = connected ] || fail "vif hotplug-status is not 'connected'"
    check_guest_net "$name"
    [ "$(net_line "$name" MAC)" = "00:16:3e:aa:bb:14" ] || fail "the guest's eth0 has MAC '$(net_line "$name" MAC)'"
    # XenbusStateConnected (4): blkfront in the PVH guest connected to blkback's xvdb.
    vbd_state() { xenstore-read "/local/domain/0/backend/vbd/$d1/51728/state" 2>/dev/null; }
    vbd_connected() { [ "$(vbd_state)" = 4 ]; }
    wait_for 60 vbd_connected || fail "blkback's xvdb of domain $d1 is in state '$(vbd_state)', not Connected"
    [ -n "$(xenstore-read "/local/domain/0/backend/qdisk/$d1/51712/sectors" 2>/dev/null)" ] || fail "QEMU did not take xvda"
    wait_for 180 has_marker "$name" || fail "no marker within 180 s: $(console_text "$name" | tail -n 2 | paste -sd ' ')"
    metric a_marker_s "$(elapsed "$t0")"
    console_has "$name" "PVBUILD-DISK-READ PVBUILD-DISK-DATA $token" ||
        fail "the guest did not read the disk: $(console_text "$name" | grep -m 1 PVBUILD-DISK)"
    console_has "$name" PVBUILD-DISK-WROTE || fail "the guest did not write the disk: $(console_text "$name" | grep -m 1 -E 'PVBUILD-DISK-WRITE|Segmentation')"
    written=$(dd if="$img" bs=512 skip=8 count=1 2>/dev/null | tr -d '\0' | head -n 1)
    [ "$written" = "PVBUILD-DISK-WRITTEN $HARNESS_GUEST_KVER" ] || fail "the guest's write is not in the image: '$written'"
    wait_for 60 console_has "$name" PVBUILD-GUEST-IDLE || fail "the guest did not reach its idle wait"
    # The monitor's restart: the same disks and interface under a new domain id.
    t1=$(now)
    : > "$HARNESS_OUT/a-asked-reboot"
    "$pvb" reboot "$name" > "$HARNESS_OUT/reboot.log" 2>&1 || fail "pvbuild reboot exited $?: $(tail -n 2 "$HARNESS_OUT/reboot.log" | paste -sd ' ')"
    new_domain() { d2=$(timeout 20 xl domid "$name" 2>/dev/null) && [ -n "$d2" ] && [ "$d2" != "$d1" ]; }
    wait_for 180 new_domain || fail "the monitor did not start $name again: $(tail -n 3 "$log" | tr -d '\r' | paste -sd ' '); xl list: $(timeout 20 xl list 2>&1 | awk 'NR > 1 { print $1 "(" $5 ")" }' | paste -sd ' ')"
    read_twice() { [ "$(count "$name" "PVBUILD-DISK-READ PVBUILD-DISK-DATA $token")" -ge 2 ]; }
    wait_for 300 read_twice || fail "the restarted guest did not read its disk: $(console_text "$name" | grep PVBUILD-DISK | tail -n 2 | paste -sd ' ')"
    metric a_restart_s "$(elapsed "$t1")"
    d2=$(timeout 20 xl domid "$name")
    up_twice() { [ "$(count "$name" '^PVBUILD-NET-UP')" -ge 2 ]; }
    wait_for 180 up_twice || fail "the restarted guest's network never came up: $(console_text "$name" | grep PVBUILD-NET | tail -n 2 | paste -sd ' ')"
    [ "$(console_text "$name" | grep '^PVBUILD-NET-PING-OK' | wc -l)" -ge 2 ] || fail "the restarted guest cannot ping dom0: $(console_text "$name" | grep PVBUILD-NET-PING | tail -n 1)"
    # dom0 pings the restarted guest too (which otherwise waits 60 s for that before its marker).
    check_guest_net "$name"
    pinged_twice() { [ "$(count "$name" '^PVBUILD-NET-PINGED [1-9]')" -ge 2 ]; }
    wait_for 60 pinged_twice || fail "the restarted guest saw no echo request from dom0: $(console_text "$name" | grep PVBUILD-NET-PINGED | tail -n 1)"
    d2=$(timeout 20 xl domid "$name")
    [ "$(xenstore-read "/local/domain/0/backend/vif/$d2/0/mac" 2>/dev/null)" = "00:16:3e:aa:bb:14" ] || fail "the restarted domain $d2 has no interface with the configured MAC"
    d2=$(timeout 20 xl domid "$name")
    wait_for 60 eval '[ "$(xenstore-read "/local/domain/0/backend/vbd/$d2/51728/state" 2>/dev/null)" = 4 ]' ||
        fail "the restarted domain's xvdb is not Connected"
    idle_twice() { [ "$(count "$name" PVBUILD-GUEST-IDLE)" -ge 2 ]; }
    wait_for 120 idle_twice || fail "the restarted guest did not reach its idle wait"
    note "restarted as domain $d2 (was $d1)"
    "$pvb" shutdown "$name" > "$HARNESS_OUT/shutdown.log" 2>&1 || fail "pvbuild shutdown exited $?: $(tail -n 2 "$HARNESS_OUT/shutdown.log" | paste -sd ' ')"
    check_marker_and_poweroff "$name" "$cmdline" "$pid" "$log"
    nothing_left_of "$log" "after guest A powered off"
}
# stop_create PID: ends a `pvbuild create --wait` (SIGTERM: a build under way is undone, a
# running guest is left) before its guest is destroyed, so that no restart of its own races
# the destroy (a destroy between its reboot's teardown and its next build found nothing, and
# the restart came after: 2026-12-07 09:05, with a forced reboot).
stop_create() {
    kill -TERM "$1" 2> /dev/null
    _sc_gone() { ! proc_alive "$1"; }
    wait_for 120 _sc_gone "$1" || fail "pvbuild create --wait (pid $1) still runs 120 s after SIGTERM"
    wait "$1" 2> /dev/null
    "$pvb" destroy "$name" > /dev/null 2>&1
    wait_for 30 domain_gone "$name" || fail "$name still exists after pvbuild destroy"
}
a_unasked() {
    _n=$(grep -c "shut down: reboot" "$log" 2> /dev/null)
    [ "${_n:-0}" -gt "$([ -e "$HARNESS_OUT/a-asked-reboot" ] && echo 1 || echo 0)" ]
}
# run_a: A, with its retry.
run_a() {
log="$HARNESS_OUT/pvbuild-create.log"
a_attempt=1
while :; do
    rm -f "$HARNESS_OUT/a-asked-reboot"
    ( part_a ) > "$HARNESS_OUT/part-a.$a_attempt.out" 2>&1
    a_rc=$?
    if [ "$a_rc" = 0 ]; then
        cat "$HARNESS_OUT/part-a.$a_attempt.out"
        break
    fi
    if [ "$a_attempt" = 1 ] && a_unasked; then
        _ad=$(sed -n 's/.*domain \([0-9][0-9]*\) (.*) shut down: reboot.*/\1/p' "$log" | head -n 1)
        sed -e 's/^FAIL: /NOTE A, first attempt: /' -e '/^PASS$/d' "$HARNESS_OUT/part-a.1.out"
        note "A: the guest rebooted unasked ($(grep -m 1 'shut down: reboot' "$log")$(triple_faults $_ad)); A once more"
        stop_create "$(cat "$HARNESS_OUT/a-create.pid")"
        nothing_left_of "$log" "after A's unasked reboot"
        mv "$(console_log "$name")" "$(console_log "$name").attempt1" 2> /dev/null
        mv "$log" "$log.attempt1" 2> /dev/null
        printf 'PVBUILD-DISK-DATA %s\n' "$token" > "$img"
        truncate -s 16M "$img"
        a_attempt=2
        continue
    fi
    cat "$HARNESS_OUT/part-a.$a_attempt.out"
    grep -q '^FAIL: ' "$HARNESS_OUT/part-a.$a_attempt.out" || fail "part A exited $a_rc without a verdict"
    exit 1
done
metric a_attempts "$a_attempt"
losetup -d "$loop" || fail "losetup -d $loop failed: blkback still holds it?"
}

# B. pygrub; disk and interface hot-plugged into the running PVH guest. Its guest is
# 10.99.0.3 on the bridge (`pvbuild.ip=3`), A's 10.99.0.2: they run at once.
run_b() {
name=pvbpvhgrub
mkfs=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
[ -x "$mkfs" ] || fail "no mkfs.ext4 in dom0"
bcmd="$HARNESS_GUEST_CMDLINE pvbuild.via=pygrub pvbuild.diskhotplug pvbuild.nethotplug pvbuild.ip=3"
mkdir -p "$HARNESS_OUT/g/root/boot/grub"
cp "$HARNESS_GUEST_KERNEL" "$HARNESS_OUT/g/root/boot/vmlinuz"
cp "$HARNESS_GUEST_RAMDISK" "$HARNESS_OUT/g/root/boot/initrd.gz"
cat > "$HARNESS_OUT/g/root/boot/grub/grub.cfg" <<CFG
set default=1
set timeout=0
menuentry 'wrong entry' {
	linux /boot/vmlinuz pvbuild.via=wrong-entry
	initrd /boot/initrd.gz
}
menuentry 'pvbuild' {
	linux /boot/vmlinuz $bcmd
	initrd /boot/initrd.gz
}
CFG
"$mkfs" -q -F -d "$HARNESS_OUT/g/root" "$HARNESS_OUT/g/disk.img" 48M || fail "mkfs.ext4 failed"
# pygrub runs restricted by default, as xen-qemuuser-shared (see pvbuild-pygrub).
id -u xen-qemuuser-shared > /dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin xen-qemuuser-shared ||
    fail "useradd xen-qemuuser-shared failed"
# part_b: B up to its marker. A guest that reboots unasked on the way (the emulation's triple
# fault of a PVH guest under TCG: docs/next-round.md; B's `on_reboot` is the default,
# restart) makes the first attempt end with a note, its domain destroyed and nothing left,
# and B runs once more; any other failure, or a second one, fails the scenario.
b_attempt=1
b_fail() {
    if [ "$b_attempt" = 1 ] && grep -q "shut down: reboot" "$log" 2> /dev/null; then
        # Xen's lines of that domain only (A's guests may have faulted too).
        _bd=$(sed -n 's/.*domain \([0-9][0-9]*\) (.*) shut down: reboot.*/\1/p' "$log" | head -n 1)
        note "B: the guest rebooted unasked ($(grep -m 1 'shut down: reboot' "$log")$(triple_faults $_bd)) before: $1; B once more"
        stop_create "$pid"
        nothing_left_of "$log" "after B's unasked reboot"
        # The next guest of the name must not find this one's lines in the console log.
        mv "$(console_log "$name")" "$(console_log "$name").attempt1" 2> /dev/null
        mv "$log" "$log.attempt1" 2> /dev/null
        b_attempt=2
        return 0
    fi
    fail "$1$(triple_faults)"
}
part_b() {
    hot="$HARNESS_OUT/hot.img"
    printf 'PVBUILD-DISK-DATA %s-hot\n' "$token" > "$hot"
    truncate -s 4M "$hot"
    cfg="$HARNESS_OUT/$name.cfg"
    cat > "$cfg" <<CFG
name = "$name"
type = "pvh"
bootloader = "pygrub"
disk = [ 'file:$HARNESS_OUT/g/disk.img,xvda,w' ]
memory = $HARNESS_GUEST_MEMORY
on_poweroff = "destroy"
CFG
    log="$HARNESS_OUT/pvbuild-create-b.log"
    t0=$(now)
    disk_waiting() { grep -q PVBUILD-DISK-WAITING "$(console_log "$1")" 2>/dev/null; }
    start_wait "$name" "$cfg" "$log" disk_waiting "the guest wait for its disk" --bootloader-timeout 200
    grep -q "bootloader chose" "$log" || { b_fail "pvbuild did not say what pygrub chose: $(grep -m 1 -i bootloader "$log")"; return 1; }
    "$pvb" block-attach "$name" "$hot,raw,xvdb,w" > "$HARNESS_OUT/attach-b.log" 2>&1 || { b_fail "block-attach exited $?: $(paste -sd ' ' < "$HARNESS_OUT/attach-b.log")"; return 1; }
    evidence "$HARNESS_OUT/attach-b.log"
    grep -q "disk xvdb (device 51728) served by the device model" "$HARNESS_OUT/attach-b.log" || { b_fail "attach said: $(cat "$HARNESS_OUT/attach-b.log")"; return 1; }
    wait_for 120 console_has "$name" PVBUILD-DISK-WROTE || { b_fail "the guest did not write the attached disk: $(console_text "$name" | grep PVBUILD-DISK | paste -sd ' ')"; return 1; }
    console_has "$name" "PVBUILD-DISK-READ PVBUILD-DISK-DATA $token-hot" || { b_fail "the guest read: $(console_text "$name" | grep -m 1 PVBUILD-DISK-READ)"; return 1; }
    "$pvb" block-detach "$name" xvdb >> "$HARNESS_OUT/attach-b.log" 2>&1 || { b_fail "block-detach exited $?: $(tail -n 1 "$HARNESS_OUT/attach-b.log")"; return 1; }
    wait_for 120 console_has "$name" PVBUILD-DISK-DETACHED || { b_fail "the guest still sees xvdb: $(console_text "$name" | grep PVBUILD-DISK | tail -n 1)"; return 1; }
    written=$(dd if="$hot" bs=512 skip=8 count=1 2>/dev/null | tr -d '\0' | head -n 1)
    [ "$written" = "PVBUILD-DISK-WRITTEN $HARNESS_GUEST_KVER" ] || { b_fail "the guest's write is not in the attached image: '$written'"; return 1; }
    wait_for 120 console_has "$name" PVBUILD-NET-WAITING || { b_fail "the guest did not wait for an interface"; return 1; }
    "$pvb" network-attach "$name" mac=00:16:3e:aa:bb:15 bridge=xenbr0 > "$HARNESS_OUT/net-b.log" 2>&1 || { b_fail "network-attach exited $?: $(paste -sd ' ' < "$HARNESS_OUT/net-b.log")"; return 1; }
    evidence "$HARNESS_OUT/net-b.log"
    check_guest_net "$name" 10.99.0.3
    [ "$(net_line "$name" MAC)" = "00:16:3e:aa:bb:15" ] || { b_fail "the attached interface has MAC '$(net_line "$name" MAC)'"; return 1; }
    wait_for 120 console_has "$name" PVBUILD-NET-PINGED || { b_fail "the guest did not count dom0's pings"; return 1; }
    "$pvb" network-detach "$name" 00:16:3e:aa:bb:15 >> "$HARNESS_OUT/net-b.log" 2>&1 || { b_fail "network-detach exited $?: $(tail -n 1 "$HARNESS_OUT/net-b.log")"; return 1; }
    wait_for 120 console_has "$name" PVBUILD-NET-DETACHED || { b_fail "the guest still has its interface: $(console_text "$name" | grep PVBUILD-NET | tail -n 1)"; return 1; }
    wait_for 120 has_marker "$name" || { b_fail "no marker within 120 s of the detach"; return 1; }
}
part_b || part_b
metric b_attempts "$b_attempt"
metric b_marker_s "$(elapsed "$t0")"
check_marker_and_poweroff "$name" "$bcmd" "$pid" "$log"
nothing_left_of "$log" "after guest B powered off"
}

# A and B at once (was one after the other: 243-284 s in CI-style runs); each part's lines
# are printed after both end, A's first.
t_ab=$(now)
( run_a ) > "$HARNESS_OUT/a.out" 2>&1 &
apid=$!
( run_b ) > "$HARNESS_OUT/b.out" 2>&1
b_rc=$?
wait "$apid"
a_rc=$?
metric ab_s "$(elapsed "$t_ab")"
if [ "$a_rc" != 0 ] && [ "$b_rc" = 0 ]; then
    cat "$HARNESS_OUT/b.out" "$HARNESS_OUT/a.out"
else
    cat "$HARNESS_OUT/a.out" "$HARNESS_OUT/b.out"
fi
[ "$a_rc" = 0 ] || { grep -q '^FAIL: ' "$HARNESS_OUT/a.out" || fail "part A exited $a_rc without a verdict"; exit 1; }
[ "$b_rc" = 0 ] || { grep -q '^FAIL: ' "$HARNESS_OUT/b.out" || fail "part B exited $b_rc without a verdict"; exit 1; }
nothing_left "after A and B"
pass

# harness-timeout: 1200
# In CI: 233.5 s on a quiet machine (2026-12-07 08:08; first marker 79.6 s, restart 17.4 s,
# second marker 73.6 s after the reboot's report).
# pvbuild-stubdom-restart (issue 16): a guest whose device model is in a stub domain reboots,
# and `on_reboot = "restart"` (xl's default) starts it again as libxl does: the old guest and
# its stub destroyed (with the stub's dom0 QEMU and QMP proxy), a new guest with a new stub,
# which boots from the disk again. The guest is pvbuild-stubdom's disk image
# (tests/xen/build-hvm-disk.sh), its command line with `pvbuild.reboot`: the guest's init
# prints its marker and reboots (`reboot -f`; the stub's QEMU turns the guest's reset into
# SHUTDOWN_reboot). Checked:
#  - the first boot's marker on the serial port (the stub's console 3, written by the stub's
#    dom0 QEMU to a file);
#  - `pvbuild create --wait` reports the reboot and the restart; the new guest and stub have
#    new domain ids, the old ones are gone; the new guest's image/device-model-domid names the
#    new stub and the new stub's `target` the new guest; QEMU in the new stub writes
#    `running`; exactly one dom0 QEMU (the new stub's) and one QMP proxy run;
#  - the second boot's marker (the serial file is truncated by the new stub's dom0 QEMU,
#    which opens it anew);
#  - after a third create (the guest reboots each time), `pvbuild destroy` of the guest ends
#    the create's wait and leaves nothing: no domain,
#    QEMU, proxy, vif, xenstore node (snapshot taken before the create).
# Metrics: first_marker_s, restart_s (the reboot's report till the new guest's unpause),
# second_marker_s (from the reboot's report).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
. "$HARNESS_REPO/tests/xen/dom0/stubdom-lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
name=pvbstubrs
W=/var/tmp/pvbuild-stubdom-restart
rm -rf "$W" && mkdir -p "$W" || fail "cannot make $W"
img=$W/disk.img
ignore='^(/vm|/libxl|/local/domain/0/device-model) = ""$'
cmdline="console=ttyS0 quiet pci=noearly pvbuild.reboot"
want=$(expected_marker "$HARNESS_GUEST_KVER" "BOOT_IMAGE=/boot/vmlinuz $cmdline")
trap '"$pvb" destroy $name > /dev/null 2>&1; cp /var/log/xen/qemu-dm-$name*.log /var/log/xen/qmp-proxy-$name*.log "$HARNESS_OUT"/ 2>/dev/null; rm -rf "$W"' EXIT

stub_images "$W/img"
sh "$HARNESS_REPO/tests/xen/build-hvm-disk.sh" "$img" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$cmdline" \
    > "$HARNESS_OUT/build-disk.log" 2>&1 || fail "build-hvm-disk.sh exited $?: $(tail -n 2 "$HARNESS_OUT/build-disk.log" | paste -sd ' ')"
cat > "$HARNESS_OUT/$name.cfg" <<CFG
name = "$name"
type = "hvm"
memory = 128
vcpus = 1
disk = [ 'format=raw,vdev=hda,access=rw,target=$img' ]
boot = "c"
hdtype = "ahci"
serial = "file:$HARNESS_OUT/$name-serial.log"
vga = "none"
vnc = 0
device_model_stubdomain_override = 1
device_model_version = "qemu-xen"
stubdomain_kernel = "$W/img/stubdom-linux-kernel"
stubdomain_ramdisk = "$W/img/stubdom-linux-initrd"
stubdomain_cmdline = "console=hvc0 quiet"
stubdomain_memory = 256
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "destroy"
CFG

only_dom0 || fail "before the scenario, xl list shows more than Domain-0"
xs_snapshot > "$HARNESS_OUT/xenstore.before"

log=$HARNESS_OUT/pvbuild-create.log
export LIBXL_DEVICE_MODEL_START_TIMEOUT=300
t0=$(now)
"$pvb" -v create --wait --timeout 1000 "$HARNESS_OUT/$name.cfg" > "$log" 2>&1 &
pid=$!
evidence "$log"
evidence "$HARNESS_OUT/$name-serial.stamped"
created() { grep -q 'created domain' "$log" || ! proc_alive "$pid"; }
wait_for 300 created || fail "pvbuild create did not create the domain within 300 s: $(tail -n 2 "$log" | paste -sd ' ')"
grep -q 'created domain' "$log" || fail "pvbuild create exited before creating: $(grep -m 1 '^error' "$log")"
g1=$(xl domid "$name" 2>/dev/null) || fail "no domain $name"
s1=$(xl domid "$name-dm" 2>/dev/null) || fail "no stub domain $name-dm"

# The first boot, to its marker; the guest then reboots.
wait_serial "$name" "$t0" 400 PVBUILD-GUEST-OK "$name" || fail "first boot: no marker within 400 s: $(serial_tail "$name")$(triple_faults)"
metric first_marker_s "$(elapsed "$t0")"
got=$(serial_text "$name" | grep -a -m 1 PVBUILD-GUEST-OK)
[ "$got" = "$want" ] || fail "first boot: the marker is '$got', expected '$want'"
first_lines=$(wc -l < "$HARNESS_OUT/$name-serial.log")

# The restart: reported, the old pair gone, a new pair running.
rebooted() { grep -q "domain $g1 ($name) shut down: reboot" "$log"; }
wait_for 120 rebooted || fail "pvbuild did not report the guest's reboot: $(tail -n 3 "$log" | paste -sd ' ')"
t1=$(now)
restarted() { [ "$(grep -c 'created domain' "$log")" -ge 2 ] || ! proc_alive "$pid"; }
wait_for 300 restarted || fail "pvbuild did not create the guest again within 300 s: $(tail -n 3 "$log" | paste -sd ' ')"
[ "$(grep -c 'created domain' "$log")" -ge 2 ] || fail "pvbuild create ended instead of restarting: $(tail -n 3 "$log" | paste -sd ' ')"
metric restart_s "$(elapsed "$t1")"
grep -q "^pvbuild: restarting $name (domain $g1 is gone)" "$log" || fail "pvbuild did not say it restarts $name"
grep -q "destroyed stub domain $s1" "$log" || fail "pvbuild did not say it destroyed the old stub $s1: $(grep -i stub "$log" | tail -n 3 | paste -sd ' ')"
g2=$(xl domid "$name" 2>/dev/null) || fail "no domain $name after the restart"
s2=$(xl domid "$name-dm" 2>/dev/null) || fail "no stub domain $name-dm after the restart"
[ "$g2" != "$g1" ] && [ "$s2" != "$s1" ] || fail "the restart kept domain ids: guest $g1 -> $g2, stub $s1 -> $s2"
evidence "guest domain $g1 -> $g2, stub domain $s1 -> $s2"
for d in $g1 $s1; do
    xl list "$d" > /dev/null 2>&1 && fail "the old domain $d is still there: $(xl list 2>&1 | awk 'NR > 1 { print $1 "(" $2 ")" }' | paste -sd ' ')"
    [ -z "$(xenstore-ls "/local/domain/$d" 2>/dev/null | head -n 1)" ] || fail "/local/domain/$d is still there"
done
[ "$(xenstore-read "/local/domain/$g2/image/device-model-domid" 2>/dev/null)" = "$s2" ] ||
    fail "the new guest's image/device-model-domid does not name the new stub"
[ "$(xenstore-read "/local/domain/$s2/target" 2>/dev/null)" = "$g2" ] || fail "the new stub's target does not name the new guest"
[ "$(xenstore-read "/local/domain/$s2/device-model/$g2/state" 2>/dev/null)" = running ] ||
    fail "the new stub's device-model state is not running"
ps -eo pid,args > "$HARNESS_OUT/ps.txt" 2>&1
[ "$(grep -c -e '-xen-domid' "$HARNESS_OUT/ps.txt")" = 1 ] && grep -q -e "-xen-domid $s2 " "$HARNESS_OUT/ps.txt" ||
    fail "not exactly one dom0 QEMU, the new stub's: $(grep -e '-xen-domid' "$HARNESS_OUT/ps.txt" | cut -c1-100 | paste -sd ' ')"
[ "$(grep -c 'vchan-socket-proxy' "$HARNESS_OUT/ps.txt")" = 1 ] ||
    fail "not exactly one QMP proxy: $(grep 'vchan-socket-proxy' "$HARNESS_OUT/ps.txt" | cut -c1-100 | paste -sd ' ')"

# The second boot. The new stub's dom0 QEMU opened the serial file anew (truncated): its
# lines are the second boot's once the file is shorter than the first boot left it.
truncated() { [ "$(wc -l < "$HARNESS_OUT/$name-serial.log")" -lt "$first_lines" ]; }
wait_for 120 truncated || fail "the serial file was not opened anew by the new stub's QEMU ($first_lines lines, now $(wc -l < "$HARNESS_OUT/$name-serial.log"))"
mv "$HARNESS_OUT/$name-serial.stamped" "$HARNESS_OUT/$name-serial.boot1.stamped"
evidence "$HARNESS_OUT/$name-serial.boot1.stamped"
_seen=0
wait_serial "$name" "$t1" 400 PVBUILD-GUEST-OK "$name" || fail "second boot: no marker within 400 s: $(serial_tail "$name")$(triple_faults)"
metric second_marker_s "$(elapsed "$t1")"
got=$(serial_text "$name" | grep -a -m 1 PVBUILD-GUEST-OK)
[ "$got" = "$want" ] || fail "second boot: the marker is '$got', expected '$want'"

# The end. The guest reboots after each marker: the destroy waits for the third create
# (not in the middle of a restart, which would race with pvbuild's own), then the wait ends
# and nothing is left.
third() { [ "$(grep -c 'created domain' "$log")" -ge 3 ] || ! proc_alive "$pid"; }
wait_for 300 third || fail "pvbuild did not create the guest a third time within 300 s: $(tail -n 3 "$log" | paste -sd ' ')"
proc_alive "$pid" || fail "pvbuild create ended: $(tail -n 3 "$log" | paste -sd ' ')"
"$pvb" destroy "$name" > "$HARNESS_OUT/destroy.log" 2>&1 || fail "pvbuild destroy exited $?: $(tail -n 2 "$HARNESS_OUT/destroy.log" | paste -sd ' ')"
done_p() { ! proc_alive "$pid"; }
wait_for 120 done_p || fail "pvbuild create --wait still running 120 s after the destroy: $(tail -n 2 "$log" | paste -sd ' ')"
stub_leftovers "the restarted guest, destroyed" end
note "restarted: guest $g1 -> $g2, stub $s1 -> $s2; both boots reached the marker"
pass

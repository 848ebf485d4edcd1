# pvbuild-monitor: `pvbuild create` without --wait returns at once and, as `xl create` does,
# leaves a monitor behind that acts on the guest's shutdown. A guest with a disk powers off:
# the monitor must destroy it (on_poweroff = "destroy"), stop its device model and remove its
# entries, and say so in /var/log/xen/pvbuild-NAME.log. With -e (xl's -e) there is no
# monitor: the shut-down guest stays until `pvbuild destroy`. A monitored guest destroyed by
# someone else: the monitor notices and ends.
# Metrics: returned_s (create's return), gone_s (till the monitor had destroyed the guest).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbmon
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
img="$HARNESS_OUT/disk.img"
printf 'PVBUILD-DISK-DATA monitor\n' > "$img"
truncate -s 8M "$img"
monitors() { pgrep -f -- "--adopt" > /dev/null 2>&1; }
no_monitor() { ! monitors; }
no_qemu() { ! pgrep -f -- '-xen-domid' > /dev/null 2>&1; }

cfg="$HARNESS_OUT/$name.cfg"
cat > "$cfg" <<CFG
name = "$name"
type = "pv"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "$HARNESS_GUEST_CMDLINE pvbuild.disk"
memory = $HARNESS_GUEST_MEMORY
disk = [ '$img,raw,xvda,w' ]
CFG
log="$HARNESS_OUT/create.log"
mlog="/var/log/xen/pvbuild-$name.log"
rm -f "$mlog"
t0=$(now)
"$pvb" -v create "$cfg" > "$log" 2>&1 || fail "pvbuild create exited $?: $(grep -m 1 '^error' "$log")"
metric returned_s "$(elapsed "$t0")"
evidence "$log"
grep -q "monitor (pid [0-9]*) acts on the guest's shutdown" "$log" || fail "create did not report its monitor"
monitors || fail "no monitor process after create returned"
evidence "$(console_log "$name")"
wait_for 180 has_marker "$name" || fail "no marker within 180 s"
wait_for 120 domain_gone "$name" || fail "the monitor did not destroy the shut-down guest within 120 s: $(xl list "$name" 2>&1 | tail -n 1)"
metric gone_s "$(elapsed "$t0")"
cp "$mlog" "$HARNESS_OUT/monitor.log" 2>/dev/null
evidence "$HARNESS_OUT/monitor.log"
grep -q "shut down: poweroff" "$HARNESS_OUT/monitor.log" || fail "the monitor's log does not report the poweroff"
wait_for 30 no_monitor || fail "the monitor still runs after destroying the guest"
wait_for 30 no_qemu || fail "the device model survived the monitor's destroy"
left=$(xenstore-ls -f /local/domain/0 2>/dev/null | grep -E '/backend/qdisk/|/device-model/[0-9]' | head -n 2 | paste -sd ' ')
[ -z "$left" ] || fail "entries left: $left"
tr -d '\r' < "$(console_log "$name")" | grep -q "PVBUILD-DISK-READ PVBUILD-DISK-DATA monitor" || fail "the guest did not read its disk"

# -e: no monitor; the shut-down guest stays.
"$pvb" create -e --name "${name}e" --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --cmdline "$HARNESS_GUEST_CMDLINE" > "$log.e" 2>&1 || fail "create -e exited $?"
monitors && fail "create -e left a monitor: $(pgrep -af -- --adopt | head -n 1)"
wait_for 120 domain_shut_down "${name}e" || fail "the -e guest did not shut down"
sleep 3
domain_gone "${name}e" && fail "the -e guest was destroyed, with no monitor to do it"
"$pvb" destroy "${name}e" > /dev/null 2>&1 || fail "pvbuild destroy ${name}e failed"

# A monitored guest destroyed by someone else.
"$pvb" create -p --name "${name}d" --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --cmdline x > "$log.d" 2>&1 || fail "create -p exited $?"
monitors || fail "no monitor for the paused guest"
xl destroy "${name}d" || fail "xl destroy failed"
wait_for 30 no_monitor || fail "the monitor did not end after the guest was destroyed"
grep -qE "domain [0-9]+ \(${name}d\) (is gone|was destroyed)" "/var/log/xen/pvbuild-${name}d.log" ||
    fail "the monitor did not report the destroy: $(tail -n 2 "/var/log/xen/pvbuild-${name}d.log" | paste -sd ' ')"
pass

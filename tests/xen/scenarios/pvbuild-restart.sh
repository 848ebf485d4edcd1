# harness-timeout: 900
# pvbuild-restart: `on_reboot` defaults to "restart", as in xl. A guest whose ramdisk
# reboots (pvbuild.reboot on its command line) is started by `pvbuild create --wait`;
# each reboot must be reported, the old domain destroyed and the guest started again
# (same config, same UUID) under a new domain id, until --timeout (70 s: three boots took
# about 30-35 s in quiet runs of 2026-12-07, each restart 10.2-10.4 s; about 200 s under the
# load of a second emulation, which CI does not run; it was 100 s, most of it waited out
# after the third boot) ends the wait: pvbuild then exits
# with its timeout error between two boots' waits, never in the middle of a build,
# and `pvbuild destroy` removes the domain it left running.
# Metrics: restart_s (from the first marker to the second: reboot, destroy, pause,
# new domain, boot).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbrestart
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.reboot"
log="$HARNESS_OUT/pvbuild-create.log"
t0=$(now)
"$HARNESS_PVBUILD" create --wait --timeout 70 --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --cmdline "$cmdline" --name "$name" > "$log" 2>&1 &
pid=$!
evidence "$log"
evidence "$(console_log "$name")"
markers() { tr -d '\r' < "$(console_log "$name")" 2>/dev/null | grep -c "PVBUILD-GUEST-OK"; }
three_boots() { [ "$(markers)" -ge 3 ]; }
wait_for 200 has_marker "$name" || fail "no marker within 200 s"
t1=$(now)
second_boot() { [ "$(markers)" -ge 2 ]; }
wait_for 200 second_boot || fail "the guest did not come back after its first reboot: $(tail -n 3 "$log" | paste -sd ' ')"
metric restart_s "$(elapsed "$t1")"
wait_for 200 three_boots || fail "the guest did not come back after its second reboot: $(tail -n 3 "$log" | paste -sd ' ')"
# Each reboot was reported, and each start had a new domain id.
reboots=$(grep -c 'shut down: reboot' "$log")
restarts=$(grep -c '^pvbuild: restarting' "$log")
ids=$(sed -n 's/^pvbuild: created domain \([0-9]*\) .*/\1/p' "$log" | sort -u | wc -l)
[ "$reboots" -ge 2 ] && [ "$restarts" -ge 2 ] && [ "$ids" -ge 3 ] ||
    fail "expected 2 reported reboots, 2 restarts and 3 domain ids; got $reboots, $restarts, $ids"
# --timeout ends the wait with its error; the guest is left running, as without --wait.
# The deadline counts from pvbuild's start, not from the third boot (which may come
# early), and a build under way when it passes is finished first: wait till 70 s
# after the start plus two minutes for that build.
create_done() { ! kill -0 "$pid" 2>/dev/null; }
left=$(awk -v e="$(elapsed "$t0")" 'BEGIN { l = 190 - e; printf "%d", (l < 30 ? 30 : l) }')
wait_for "$left" create_done ||
    fail "pvbuild create --wait --timeout 70 still running $(elapsed "$t0") s after its start"
wait "$pid"
rc=$?
[ $rc -ne 0 ] && grep -q "^error: domain [0-9]* did not shut down within 70 s" "$log" ||
    fail "pvbuild exited $rc without its timeout error: $(tail -n 2 "$log" | paste -sd ' ')"
"$HARNESS_PVBUILD" destroy "$name" > "$HARNESS_OUT/destroy.log" 2>&1
wait_for 30 domain_gone "$name" || fail "domain $name still exists after pvbuild destroy: $(xl list | tail -n 2 | paste -sd ' ')"
pass

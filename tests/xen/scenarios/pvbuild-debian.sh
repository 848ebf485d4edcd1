# pvbuild-debian (issue 3, scenario 1): `pvbuild create` boots Debian's kernel
# (xz bzImage) with the harness ramdisk; the guest prints its marker and powers
# off, and pvbuild reports the shutdown reason.
#
# Expected interface (host/ implements it): `pvbuild create --kernel K --ramdisk R
# --memory MiB --cmdline C --name N` builds and unpauses the domain. pvbuild's
# output (create's, while it stays attached until the guest goes, as `xl create
# -F` does) must carry a line naming the shutdown reason, matched
# case-insensitively by /shut ?down.*poweroff/. Adapt the checks below if the
# interface settles differently.
# Metrics: pvbuild_create_s (till create returned, when it returns before the
# guest powers off), marker_s (till the marker showed in the console log).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbdeb
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
log="$HARNESS_OUT/pvbuild-create.log"
t0=$(now)
"$HARNESS_PVBUILD" create --wait --timeout 300 --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --cmdline "$HARNESS_GUEST_CMDLINE" --name "$name" > "$log" 2>&1 &
pid=$!
evidence "$log"
# Wait for create to return or for the marker, whichever comes first.
create_done() { ! kill -0 "$pid" 2>/dev/null; }
progress() { create_done || has_marker "$name"; }
wait_for 180 progress || fail "neither did pvbuild create return nor the marker show within 180 s"
if create_done; then
    wait "$pid"
    rc=$?
    metric pvbuild_create_s "$(elapsed "$t0")"
    [ $rc -eq 0 ] || fail "pvbuild create exited $rc: $(head -n 3 "$log" | tr -d '\r' | paste -sd ' ')"
fi
evidence "$(console_log "$name")"
wait_for 180 has_marker "$name" || fail "no PVBUILD-GUEST-OK marker in $(console_log "$name") within 180 s"
metric marker_s "$(elapsed "$t0")"
check_marker_and_poweroff "$name" "$HARNESS_GUEST_CMDLINE" "$pid" "$log"
pass

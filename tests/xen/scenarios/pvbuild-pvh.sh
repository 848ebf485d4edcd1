# harness-timeout: 1500
# pvbuild-pvh (issue 14): Debian's kernel as a PVH guest (`type = "pvh"`, 2 vcpus), the
# same xl config built by xl (paused, the oracle) and booted by pvbuild in this run.
# xl's own boot of it, timed, is the opt-in scenario xl-pvh-boot (run both for the
# comparison: --scenario xl-pvh-boot --scenario pvbuild-pvh).
#  1. xl -vvv create -p: libxenguest's log of the PVH build (libxenguest.log, the oracle of
#     the plan comparison), the paused domain's HVM context (xen-hvmctx) and xenstore tree;
#     then destroyed.
#  2. pvbuild plan --type pvh of the same inputs: its libxenguest lines must equal xl's for
#     the memory, the segments, the module and the ACPI modules.
#  3. pvbuild create --wait: timed; the guest's marker must show (right release and command
#     line) with both vcpus online (PVBUILD-GUEST-CPUS, printed by the guest ramdisk's
#     init), poweroff reported. on_reboot = "restart": a guest that triple-faults under TCG
#     before its console (pvh-lib.sh) is started again, and noted.
# Metrics: pvbuild_marker_s (seconds from the start of the create).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
. "$HARNESS_REPO/tests/xen/dom0/pvh-lib.sh"

# 1. xl -vvv create -p: the oracle.
pvh_cfg xlpvhp > "$HARNESS_OUT/xlpvhp.cfg"
xl -vvv create -p "$HARNESS_OUT/xlpvhp.cfg" > "$HARNESS_OUT/xl-vvv-create.log" 2>&1 ||
    fail "xl -vvv create -p exited $?: $(tail -n 3 "$HARNESS_OUT/xl-vvv-create.log" | paste -sd ' ')"
grep -E '^(domainbuilder|xc): ' "$HARNESS_OUT/xl-vvv-create.log" > "$HARNESS_OUT/libxenguest.log"
evidence "$HARNESS_OUT/libxenguest.log"
d=$(xl domid xlpvhp)
/usr/lib/xen-4.17/bin/xen-hvmctx "$d" > "$HARNESS_OUT/xl-hvmctx.txt" 2>&1 || note "xen-hvmctx exited $?"
xenstore-ls -f > "$HARNESS_OUT/xl-xenstore.txt" 2>&1
xl destroy xlpvhp || fail "xl destroy xlpvhp exited $?"

# 2. pvbuild plan --type pvh: the same libxenguest lines for the memory, the segments, the
# module and the ACPI modules (libacpi's tables, its DSDT included, take xl's pages).
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
"$HARNESS_PVBUILD" plan --type pvh --ramdisk "$HARNESS_GUEST_RAMDISK" --cmdline "$cmdline" \
    --memory "$HARNESS_GUEST_MEMORY" --vcpus 2 "$HARNESS_GUEST_KERNEL" > "$HARNESS_OUT/pvbuild-plan.log" 2>&1 ||
    fail "pvbuild plan exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/pvbuild-plan.log")"
layout='xc_dom_mem_init|range: start|xc_dom_alloc_segment|xc_dom_build_image  :|Adding module|xc_dom_load_acpi'
grep -E "$layout" "$HARNESS_OUT/libxenguest.log" > "$HARNESS_OUT/layout.xl"
grep -E "$layout" "$HARNESS_OUT/pvbuild-plan.log" > "$HARNESS_OUT/layout.pvbuild"
[ "$(wc -l < "$HARNESS_OUT/layout.xl")" -ge 11 ] || fail "xl's log has only $(wc -l < "$HARNESS_OUT/layout.xl") layout lines"
diff "$HARNESS_OUT/layout.xl" "$HARNESS_OUT/layout.pvbuild" > "$HARNESS_OUT/layout.diff" ||
    fail "pvbuild plan's PVH layout lines differ from xl's: $(head -n 4 "$HARNESS_OUT/layout.diff" | paste -sd ' ')"
metric layout_lines_identical "$(wc -l < "$HARNESS_OUT/layout.xl")"
note "ACPI modules, as xl's: $(grep -o 'xc_dom_load_acpi: .*' "$HARNESS_OUT/pvbuild-plan.log" | cut -d' ' -f2- | paste -sd ';')"

# 3. pvbuild create --wait, timed.
pvh_cfg pvbpvh restart > "$HARNESS_OUT/pvbpvh.cfg"
log="$HARNESS_OUT/pvbuild-create.log"
t0=$(now)
"$HARNESS_PVBUILD" -v create --wait --timeout 300 "$HARNESS_OUT/pvbpvh.cfg" > "$log" 2>&1 &
pid=$!
evidence "$log"
evidence "$(console_log pvbpvh)"
create_done() { ! kill -0 "$pid" 2>/dev/null; }
progress() { create_done || has_marker pvbpvh; }
wait_for 240 progress || fail "neither did pvbuild create return nor the marker show within 240 s$(triple_faults)"
if create_done && ! has_marker pvbpvh; then
    wait "$pid"
    fail "pvbuild create exited $? before the guest's marker: $(grep -m 1 '^error' "$log" | tr -d '\r')"
fi
metric pvbuild_marker_s "$(elapsed "$t0")"
note_pvh_restarts "$log"
check_marker pvbpvh
check_cpus pvbpvh
check_marker_and_poweroff pvbpvh "$cmdline" "$pid" "$log"
pass

# harness-timeout: 900
# harness-opt-in
# xl-pvh-boot: xl's side of pvbuild-pvh's boot, opt-in (CI's harness budget keeps pvbuild's
# own proofs; run `--scenario xl-pvh-boot --scenario pvbuild-pvh` for the comparison in one
# emulated machine). `xl create` of the same PVH config (Debian's kernel, 2 vcpus), timed:
# the guest's marker must show (right release and command line) with both vcpus online.
# Metrics: xl_create_s, xl_marker_s (seconds from the start of the create).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
. "$HARNESS_REPO/tests/xen/dom0/pvh-lib.sh"

pvh_cfg xlpvh > "$HARNESS_OUT/xlpvh.cfg"
t0=$(now)
xl create "$HARNESS_OUT/xlpvh.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
    fail "xl create exited $?: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
metric xl_create_s "$(elapsed "$t0")"
evidence "$(console_log xlpvh)"
wait_for 240 has_marker xlpvh || fail "xl's PVH guest: no marker within 240 s: $(console_text xlpvh | tail -n 3 | paste -sd ' ')$(triple_faults)"
metric xl_marker_s "$(elapsed "$t0")"
check_marker xlpvh
check_cpus xlpvh
wait_for 120 domain_gone xlpvh || fail "xl's PVH guest still exists 120 s after its marker"
pass

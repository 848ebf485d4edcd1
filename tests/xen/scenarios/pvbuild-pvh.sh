# harness-timeout: 1500
# pvbuild-pvh (issue 14): Debian's kernel as a PVH guest (`type = "pvh"`, 2 vcpus), the
# same xl config booted by xl and by pvbuild in this run.
#  1. xl -vvv create -p: libxenguest's log of the PVH build (libxenguest.log, the oracle of
#     the plan comparison), the paused domain's HVM context (xen-hvmctx) and xenstore tree;
#     then destroyed.
#  2. xl create: timed; the guest's marker must show (right release and command line) with
#     both vcpus online (PVBUILD-GUEST-CPUS, printed by the guest ramdisk's init).
#  3. pvbuild plan --type pvh of the same inputs: its libxenguest lines must equal xl's for
#     the memory, the segments, the module and the ACPI modules.
#  4. pvbuild create --wait: timed; the same marker with both vcpus online, poweroff reported.
# Metrics: xl_create_s, xl_marker_s, pvbuild_create_s, pvbuild_marker_s (seconds from the
# start of each create).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.cpus"
# pvh_cfg NAME: the PVH xl config of this scenario.
pvh_cfg() {
    cat <<CFG
name = "$1"
type = "pvh"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "$cmdline"
memory = $HARNESS_GUEST_MEMORY
vcpus = 2
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
# check_cpus NAME: the guest's PVBUILD-GUEST-CPUS line says 2 vcpus online.
check_cpus() {
    _cpus=$(console_text "$1" | sed -n 's/^PVBUILD-GUEST-CPUS //p' | head -n 1)
    [ "$_cpus" = "0-1 2" ] || fail "$1: vcpus online '$_cpus', expected '0-1 2' (PVBUILD-GUEST-CPUS)"
}
# check_marker NAME: the marker shows the harness's kernel release and this command line.
check_marker() {
    _want=$(expected_marker "$HARNESS_GUEST_KVER" "$cmdline")
    _got=$(marker_line "$1")
    [ "$_got" = "$_want" ] || fail "$1: marker is '$_got', expected '$_want'"
}

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

# 2. xl create, timed.
pvh_cfg xlpvh > "$HARNESS_OUT/xlpvh.cfg"
t0=$(now)
xl create "$HARNESS_OUT/xlpvh.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
    fail "xl create exited $?: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
metric xl_create_s "$(elapsed "$t0")"
evidence "$(console_log xlpvh)"
wait_for 240 has_marker xlpvh || fail "xl's PVH guest: no marker within 240 s: $(console_text xlpvh | tail -n 3 | paste -sd ' ')"
metric xl_marker_s "$(elapsed "$t0")"
check_marker xlpvh
check_cpus xlpvh
wait_for 120 domain_gone xlpvh || fail "xl's PVH guest still exists 120 s after its marker"

# 3. pvbuild plan --type pvh: the same libxenguest lines for the memory, the segments, the
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

# 4. pvbuild create --wait, timed.
pvh_cfg pvbpvh > "$HARNESS_OUT/pvbpvh.cfg"
log="$HARNESS_OUT/pvbuild-create.log"
t0=$(now)
"$HARNESS_PVBUILD" -v create --wait --timeout 300 "$HARNESS_OUT/pvbpvh.cfg" > "$log" 2>&1 &
pid=$!
evidence "$log"
evidence "$(console_log pvbpvh)"
create_done() { ! kill -0 "$pid" 2>/dev/null; }
progress() { create_done || has_marker pvbpvh; }
wait_for 240 progress || fail "neither did pvbuild create return nor the marker show within 240 s"
if create_done && ! has_marker pvbpvh; then
    wait "$pid"
    fail "pvbuild create exited $? before the guest's marker: $(grep -m 1 '^error' "$log" | tr -d '\r')"
fi
metric pvbuild_marker_s "$(elapsed "$t0")"
check_marker pvbpvh
check_cpus pvbpvh
check_marker_and_poweroff pvbpvh "$cmdline" "$pid" "$log"
pass

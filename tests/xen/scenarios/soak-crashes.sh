# harness-timeout: 900
# harness-opt-in
# soak-crashes: tells an emulation defect from a builder defect. Processes crashed at
# random under this emulated Xen (busybox in pvbuild's guests; once pvbuild itself, in
# dom0's glibc, on a path without unsafe code). The same busybox workload
# (tests/xen/guest/stress: checksums, a gzip round trip, sort, awk; every result checked
# against its first run) runs for HARNESS_SOAK_SECONDS (default 120) per phase:
#   dom0  in dom0 alone, one copy per dom0 vcpu;
#   xl    in a 2-vcpu guest xl built, with dom0's copies running alongside;
#   pvb   in the same guest pvbuild built, likewise.
# Metrics per phase and domain: runs, crashes (a signal ended a step, or a copy never
# reported), wrong (a step's output differed). NOTEs: the emulated CPU (HARNESS_QEMU_CPU,
# run.sh's -cpu) and every kernel line about a crashed process. FAIL when anything crashed
# or computed a wrong result. Opt-in (not in the default run): tests/xen/run.sh -s soak-crashes,
# e.g. once with HARNESS_QEMU_CPU=max and once with HARNESS_QEMU_CPU=max,avx=off,avx2=off.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
secs=${HARNESS_SOAK_SECONDS:-120}
stress=$HARNESS_REPO/tests/xen/guest/stress
bad=0

note "emulated cpu: ${HARNESS_QEMU_CPU:-max}, accel ${HARNESS_QEMU_ACCEL:-tcg}, xen: '${HARNESS_XEN_ARGS:-}', xl guest cpus: '${HARNESS_SOAK_XL_CPUS:-}'; dom0 sees avx: $(grep -cw avx /proc/cpuinfo) of $(grep -c ^processor /proc/cpuinfo) cpus, avx2: $(grep -cw avx2 /proc/cpuinfo)"
kmsg() { dmesg 2>/dev/null | grep -iE "segfault|general protection|traps:"; }
kmsg > "$HARNESS_OUT/dom0-kmsg.before"

# tally PHASE WHERE COPIES FILE...: the metrics of one phase's PVBUILD-STRESS lines.
tally() {
    _phase=$1 _where=$2 _copies=$3
    shift 3
    _sum=$(cat "$@" 2>/dev/null | tr -d '\r' | awk '
        /^PVBUILD-STRESS / { n++; for (i = 3; i <= NF; i++) { split($i, kv, "="); t[kv[1]] += kv[2] } }
        END { printf "%d %d %d %d", n, t["runs"], t["crashes"], t["wrong"] }')
    set -- $_sum
    _crashes=$(($3 + _copies - $1))
    metric "${_phase}_${_where}_runs" "$2"
    metric "${_phase}_${_where}_crashes" "$_crashes"
    metric "${_phase}_${_where}_wrong" "$4"
    [ "$_crashes" -eq 0 ] && [ "$4" -eq 0 ] || bad=$((bad + 1))
    [ "$_crashes" -eq 0 ] || note "$_phase: $_where: $_crashes crashed ($(($_copies - $1)) of $_copies copies never reported)"
    [ "$4" -eq 0 ] || note "$_phase: $_where: $4 wrong results"
}

# dom0_stress PHASE: one copy per dom0 vcpu, in the background; dom0_wait collects them.
dom0_stress() {
    _n=$(nproc)
    _pids=
    for _i in $(seq 1 "$_n"); do
        STRESS_BB=/bin/busybox timeout $((secs + 120)) /bin/busybox sh "$stress" "$secs" "dom0-$_i" > "$HARNESS_OUT/$1-dom0-$_i.txt" 2>&1 &
        _pids="$_pids $!"
    done
    dom0_copies=$_n
}
dom0_wait() {
    for _p in $_pids; do wait "$_p"; done
    tally "$1" dom0 "$dom0_copies" "$HARNESS_OUT/$1"-dom0-*.txt
}

# guest_phase PHASE NAME: waits for guest NAME's stress and marker, then tallies it.
guest_phase() {
    _log=$(console_log "$2")
    evidence "$_log"
    wait_for $((secs + 240)) has_marker "$2" || { note "$1: no marker from $2 within $((secs + 240)) s"; bad=$((bad + 1)); }
    wait_for 120 domain_gone "$2" || { note "$1: $2 still exists"; timeout 30 xl destroy "$2" 2>/dev/null; }
    tally "$1" guest 2 "$_log"
    tr -d '\r' < "$_log" | sed -n 's/^PVBUILD-GUEST-KMSG /guest kernel: /p' | head -n 5 | while read -r _l; do note "$1: $_l"; done
}

# 1. dom0 alone.
dom0_stress dom0
dom0_wait dom0

# 2. A guest xl built, dom0 busy alongside (first: a dom0 that broke would stop the
# comparison, and xl's guest is the reference).
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.stress=$secs"
write_xl_cfg soakxl "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" |
    sed -e 's/^vcpus = .*/vcpus = 2/' -e "s|^extra = .*|extra = \"$cmdline\"|" > "$HARNESS_OUT/soakxl.cfg"
# HARNESS_SOAK_XL_CPUS: the xl guest's hard affinity (xl's cpus=), e.g. "1" with
# HARNESS_XEN_ARGS="dom0_max_vcpus=1 dom0_vcpus_pin" keeps the two domains on separate cpus.
[ -n "${HARNESS_SOAK_XL_CPUS:-}" ] && echo "cpus = \"$HARNESS_SOAK_XL_CPUS\"" >> "$HARNESS_OUT/soakxl.cfg"
xl create "$HARNESS_OUT/soakxl.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
    fail "xl create exited $?: $(tail -n 2 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
dom0_stress xl
guest_phase xl soakxl
dom0_wait xl

# 3. The same guest built by pvbuild.
"$pvb" create --name soakpvb --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --vcpus 2 --cmdline "$cmdline" > "$HARNESS_OUT/pvbuild-create.log" 2>&1 ||
    fail "pvbuild create exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/pvbuild-create.log")"
dom0_stress pvb
guest_phase pvb soakpvb
dom0_wait pvb

kmsg > "$HARNESS_OUT/dom0-kmsg.after"
diff "$HARNESS_OUT/dom0-kmsg.before" "$HARNESS_OUT/dom0-kmsg.after" | sed -n 's/^> //p' | head -n 5 |
    while read -r l; do note "dom0 kernel: $l"; done
[ "$bad" -eq 0 ] || fail "$bad phase tallies with crashed or wrong processes (see the notes and metrics)"
pass

# plan-compare (issue 3, scenario 3): for the same inputs, libxenguest's logged
# arrangement (`xl -vvv create -p`) and `pvbuild plan`'s text output must be
# the same, line for line. Two cases:
#   debian: Debian's kernel (xz bzImage) + the harness ramdisk, $HARNESS_GUEST_MEMORY MiB,
#           $HARNESS_GUEST_CMDLINE;
#   pvtk:   the project's PV test kernel + a 300 KiB module, 32 MiB.
# Compared lines: xc_dom_alloc_segment, xc_dom_alloc_page, virt_alloc_end,
# virt_pgtab_end, with xl's "domainbuilder: detail: " prefix stripped and runs of
# blanks squeezed on both sides. Any difference (a value, a missing or an extra
# line, the order) is a FAIL naming the first differing lines of each case
# (after both cases and the timings ran, so one run shows everything).
# Then, with HARNESS_XL_SIDE=1 (opt-in), the timings the issue asks for, in the same run
# and for the same Debian guest: `xl create -p` + `xl destroy` and `pvbuild create -p` + `pvbuild
# destroy`, three times each (interleaved), medians and their ratio as METRIC
# lines (xl_create_p_s, pvbuild_create_p_s: create only; ratio_pvbuild_over_xl).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
layout_re='xc_dom_alloc_segment|xc_dom_alloc_page|virt_alloc_end|virt_pgtab_end'
# The layout differences found, "case: first differing lines; ...": the verdict
# is a FAIL when not empty, given after every case and the timings ran.
diffs=

# xl_cfg NAME KERNEL RAMDISK MEMORY CMDLINE: an xl config for a PV guest.
xl_cfg() {
    cat <<CFG
name = "$1"
type = "pv"
kernel = "$2"
ramdisk = "$3"
memory = $4
vcpus = 1
extra = "$5"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}

# gone_or_fail NAME WHAT: the domain NAME must disappear within 60 s.
gone_or_fail() {
    wait_for 60 domain_gone "$1" || fail "$2: domain $1 still exists 60 s after its destroy: $(xl list "$1" 2>&1 | tail -n 1)"
}

# compare CASE KERNEL RAMDISK MEMORY CMDLINE: xl -vvv create -p, keep the log,
# destroy, then pvbuild plan, and diff the layout lines.
compare() {
    _case=$1 _k=$2 _r=$3 _m=$4 _c=$5
    _name=plan-$_case
    xl_cfg "$_name" "$_k" "$_r" "$_m" "$_c" > "$HARNESS_OUT/$_case.cfg"
    xl -vvv create -p "$HARNESS_OUT/$_case.cfg" > "$HARNESS_OUT/$_case.xl-vvv.log" 2>&1
    _rc=$?
    xl destroy "$_name" >> "$HARNESS_OUT/$_case.xl-vvv.log" 2>&1
    [ $_rc -eq 0 ] || fail "$_case: xl -vvv create -p exited $_rc: $(grep -v '^domainbuilder\|^xc:\|^libxl: debug' "$HARNESS_OUT/$_case.xl-vvv.log" | tail -n 2 | paste -sd ' ')"
    gone_or_fail "$_name" "$_case (xl)"
    grep -E "^domainbuilder: detail: .*($layout_re)" "$HARNESS_OUT/$_case.xl-vvv.log" |
        sed 's/^domainbuilder: detail: //' | tr -s ' \t' ' ' | sed 's/ *$//' > "$HARNESS_OUT/$_case.layout.xl"
    _t0=$(now)
    "$HARNESS_PVBUILD" plan --ramdisk "$_r" --cmdline "$_c" --memory "$_m" "$_k" > "$HARNESS_OUT/$_case.plan.txt" 2>&1 ||
        fail "$_case: pvbuild plan exited $?: $(head -n 2 "$HARNESS_OUT/$_case.plan.txt" | paste -sd ' ')"
    metric "plan_${_case}_s" "$(elapsed "$_t0")"
    grep -E "$layout_re" "$HARNESS_OUT/$_case.plan.txt" |
        tr -s ' \t' ' ' | sed 's/ *$//' > "$HARNESS_OUT/$_case.layout.pvbuild"
    _n=$(wc -l < "$HARNESS_OUT/$_case.layout.xl")
    # A whole PV build logs the kernel, the module, the p2m, start info, xenstore,
    # console, the page tables, the boot stack, virt_alloc_end and virt_pgtab_end.
    [ "$_n" -ge 10 ] || fail "$_case: only $_n layout lines in xl's log ($HARNESS_OUT/$_case.xl-vvv.log)"
    if ! cmp -s "$HARNESS_OUT/$_case.layout.xl" "$HARNESS_OUT/$_case.layout.pvbuild"; then
        diff "$HARNESS_OUT/$_case.layout.xl" "$HARNESS_OUT/$_case.layout.pvbuild" > "$HARNESS_OUT/$_case.layout.diff"
        evidence "$HARNESS_OUT/$_case.layout.diff"
        # Both differing lines, xl's first: "< xl-line | > pvbuild-line".
        _first=$(grep '^[<>]' "$HARNESS_OUT/$_case.layout.diff" | head -n 2 | paste -sd '|' | sed 's/|/ | /')
        note "$_case: layout differs (< xl -vvv, > pvbuild plan): $_first"
        diffs="${diffs:+$diffs; }$_case: $_first"
    else
        note "$_case: $_n layout lines identical (xl -vvv create vs pvbuild plan)"
    fi
}

compare debian "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_MEMORY" "$HARNESS_GUEST_CMDLINE"
evidence "$HARNESS_OUT/debian.layout.pvbuild"

if [ -n "$HARNESS_PV_TEST_KERNEL" ]; then
    # A module of a few hundred KiB, an odd size, not gzip (so neither side unpacks it).
    mod=$HARNESS_OUT/pvtk-module.bin
    { printf 'PVTESTMOD\n'; head -c 300001 /dev/urandom; } > "$mod" || fail "cannot write $mod"
    compare pvtk "$HARNESS_PV_TEST_KERNEL" "$mod" 32 "plan-compare token"
    evidence "$HARNESS_OUT/pvtk.layout.pvbuild"
else
    fail "no PV test kernel (HARNESS_PV_TEST_KERNEL is empty): case pvtk not run"
fi

# ---- timings: xl create -p vs pvbuild create -p, same Debian guest ----------
# xl's side of a timing: opt-in (HARNESS_XL_SIDE=1; create-speed measures more).
if [ "${HARNESS_XL_SIDE:-0}" = 1 ]; then
    tcfg=$HARNESS_OUT/timing.cfg
    xl_cfg plan-tx "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_MEMORY" "$HARNESS_GUEST_CMDLINE" > "$tcfg"
    : > "$HARNESS_OUT/times.xl"
    : > "$HARNESS_OUT/times.pvbuild"
    for i in 1 2 3; do
        t0=$(now)
        xl create -p "$tcfg" > "$HARNESS_OUT/timing-xl-$i.log" 2>&1 || fail "timing run $i: xl create -p exited $?: $(tail -n 2 "$HARNESS_OUT/timing-xl-$i.log" | paste -sd ' ')"
        elapsed "$t0" >> "$HARNESS_OUT/times.xl"
        echo >> "$HARNESS_OUT/times.xl"
        xl destroy plan-tx >> "$HARNESS_OUT/timing-xl-$i.log" 2>&1 || fail "timing run $i: xl destroy plan-tx exited $?"
        gone_or_fail plan-tx "timing run $i (xl)"
        t0=$(now)
        "$HARNESS_PVBUILD" create -p --name plan-tp --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
            --memory "$HARNESS_GUEST_MEMORY" --cmdline "$HARNESS_GUEST_CMDLINE" > "$HARNESS_OUT/timing-pvbuild-$i.log" 2>&1 ||
            fail "timing run $i: pvbuild create -p exited $?: $(tail -n 2 "$HARNESS_OUT/timing-pvbuild-$i.log" | paste -sd ' ')"
        elapsed "$t0" >> "$HARNESS_OUT/times.pvbuild"
        echo >> "$HARNESS_OUT/times.pvbuild"
        "$HARNESS_PVBUILD" destroy plan-tp >> "$HARNESS_OUT/timing-pvbuild-$i.log" 2>&1 || fail "timing run $i: pvbuild destroy plan-tp exited $?"
        gone_or_fail plan-tp "timing run $i (pvbuild)"
    done
    median() { sort -n "$1" | sed -n 2p; }
    xl_med=$(median "$HARNESS_OUT/times.xl")
    pvb_med=$(median "$HARNESS_OUT/times.pvbuild")
    metric xl_create_p_s "$xl_med"
    metric pvbuild_create_p_s "$pvb_med"
    metric ratio_pvbuild_over_xl "$(awk -v a="$pvb_med" -v b="$xl_med" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }')"
    note "create -p times (s), xl: $(paste -sd ' ' "$HARNESS_OUT/times.xl"); pvbuild: $(paste -sd ' ' "$HARNESS_OUT/times.pvbuild")"
else
    note "create -p timings against xl: not run (opt-in: HARNESS_XL_SIDE=1)"
fi
[ -z "$diffs" ] || fail "pvbuild plan's layout differs from libxenguest's (< xl, > pvbuild): $diffs"
pass

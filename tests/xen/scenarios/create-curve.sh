# harness-timeout: 14400
# harness-opt-in
# create-curve (issue 17): LightVM's curve, how a create's time grows with the domains already
# running. N small PV guests (the project's test kernel, 4 MiB, paused, no monitor: `-e`) are
# created one after another and kept, first by xl (`xl create -p -e`, one process each), then,
# after they are all destroyed, by pvbuild through its resident server (`pvbuild client
# --batch`: one request per guest over one connection, each timed from its sending to its
# reply). Every create of N must succeed for each tool.
#   N: HARNESS_CURVE_N (default 1000). 1000 guests of 4 MiB need about 4.5 GiB besides dom0's
#   1 GiB: run with HARNESS_QEMU_MEMORY=7168 (and HARNESS_XEN_ARGS=bootscrub=0, or Xen scrubs
#   the whole memory under emulation at boot).
# Results: curve.xl and curve.served (one line per guest: its index and its create's seconds);
# metrics curve_<tool>_at<K>_ms, the mean of the 10 creates ending at guest K, for K every
# tenth of N; curve_<tool>_growth, the last 10 over the first 10.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
N=${HARNESS_CURVE_N:-1000}
case $N in '' | *[!0-9]*) fail "HARNESS_CURVE_N=$N is not a number" ;; esac
[ "$N" -ge 20 ] || fail "HARNESS_CURVE_N=$N: at least 20"
pvb=/tmp/create-curve-pvbuild
cp "$HARNESS_PVBUILD" "$pvb" || fail "cannot copy $HARNESS_PVBUILD"
kern=/tmp/create-curve-kernel
cp "$HARNESS_PV_TEST_KERNEL" "$kern" || fail "cannot copy the test kernel"
work=/tmp/create-curve
rm -rf "$work" && mkdir -p "$work"
sock=$work/serve.sock
"$pvb" serve --socket "$sock" > "$work/serve.log" 2>&1 &
spid=$!
cleanup() {
    kill -TERM "$spid" 2> /dev/null
    cp "$work/serve.log" "$HARNESS_OUT/" 2> /dev/null
}
trap cleanup EXIT
serving() { [ -S "$sock" ]; }
wait_for 30 serving || fail "pvbuild serve did not listen"
free_mib() { xl info | awk '$1 == "free_memory" { print $3 }'; }
note "before: $(free_mib) MiB free in Xen, N=$N"

# destroy_all PREFIX: every guest whose name starts with PREFIX, through the server (a
# cleanup here, not measured).
destroy_all() {
    xl list | awk -v p="$1" 'NR > 1 && index($1, p) == 1 { print "destroy " $1 }' > "$work/destroy.batch"
    [ -s "$work/destroy.batch" ] || return 0
    "$pvb" client --socket "$sock" --batch "$work/destroy.batch" > "$work/destroy.log" 2>&1 ||
        fail "destroying the $1 guests: $(grep -m 1 '^error' "$work/destroy.log")"
}

# ---- xl ----------------------------------------------------------------------------------
: > "$HARNESS_OUT/curve.xl"
i=1
while [ "$i" -le "$N" ]; do
    printf 'name = "cx%s"\ntype = "pv"\nkernel = "%s"\nmemory = 4\nvcpus = 1\nextra = "curve"\non_poweroff = "destroy"\n' \
        "$i" "$kern" > "$work/xl.cfg"
    t=$(now)
    xl create -p -e "$work/xl.cfg" > "$work/xl.log" 2>&1 ||
        fail "xl create -p -e of guest $i of $N exited $?: $(tail -n 2 "$work/xl.log" | paste -sd ' ') ($(free_mib) MiB free)"
    echo "$i $(elapsed "$t")" >> "$HARNESS_OUT/curve.xl"
    i=$((i + 1))
done
note "after xl's $N: $(free_mib) MiB free"
destroy_all cx
wait_for 120 domain_gone "cx$N" || fail "xl's guests are not all gone"

# ---- pvbuild, served -----------------------------------------------------------------------
: > "$work/served.batch"
i=1
while [ "$i" -le "$N" ]; do
    echo "create -p -e --name cs$i --kernel $kern --memory 4 --cmdline curve" >> "$work/served.batch"
    i=$((i + 1))
done
"$pvb" client --socket "$sock" --times --batch "$work/served.batch" > "$work/served.log" 2>&1 ||
    fail "the served batch exited $?: $(grep -m 1 '^error' "$work/served.log") ($(free_mib) MiB free)"
sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: create .*/\1/p' "$work/served.log" |
    awk '{ printf "%d %.3f\n", NR, $1 / 1000 }' > "$HARNESS_OUT/curve.served"
[ "$(wc -l < "$HARNESS_OUT/curve.served")" -eq "$N" ] || fail "not $N timed creates from the served batch"
note "after pvbuild's $N: $(free_mib) MiB free"
destroy_all cs
wait_for 120 domain_gone "cs$N" || fail "pvbuild's guests are not all gone"

# ---- the curves ----------------------------------------------------------------------------
# at FILE K: the mean of the 10 creates ending at guest K, in ms.
at() { awk -v k="$2" '$1 > k - 10 && $1 <= k { s += $2; n++ } END { printf "%.1f", 1000 * s / n }' "$1"; }
# The checkpoints: guest 10, then every tenth of N, N last.
ks=10
j=1
while [ "$j" -le 10 ]; do
    k=$((N * j / 10))
    [ "$k" -le 10 ] || ks="$ks $k"
    j=$((j + 1))
done
for tool in xl served; do
    f=$HARNESS_OUT/curve.$tool
    line=
    for k in $ks; do
        v=$(at "$f" "$k")
        metric "curve_${tool}_at${k}_ms" "$v"
        line="$line $k:$v"
    done
    first=$(at "$f" 10)
    last=$(at "$f" "$N")
    metric "curve_${tool}_growth" "$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.2f", b / a }')"
    note "$tool (guest:ms, mean of 10):$line"
done
evidence "$HARNESS_OUT/curve.xl"
evidence "$HARNESS_OUT/curve.served"
pass

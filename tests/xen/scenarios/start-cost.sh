# harness-timeout: 900
# harness-opt-in
# start-cost (issue 17): what one process start costs in dom0, pvbuild against /bin/true,
# busybox and xl. Each command runs ROUNDS times, interleaved (one of each per round), timed
# by bash's $EPOCHREALTIME (no `date` process inside the timing); medians and minima.
#   true:        /bin/true (dynamic, glibc)
#   bbtrue:      busybox true (static)
#   xlinfo:      xl info (xl's start, libxl's context, a few hypercalls)
#   xllist:      xl list (Debian's xl: a shell wrapper that execs the versioned binary)
#   pvver:       pvbuild --version, the harness's binary where the harness puts it (the share)
#   pvlist:      pvbuild list (a real command: privcmd, xenstore)
#   pvver_tmp, pvlist_tmp: the same binary copied into dom0's tmpfs
# The share ($HARNESS_PVBUILD's place) is a 9p mount without a page cache (cache=none), unlike
# the host's root where xl lives (cache=loose): pvver and pvlist pay for that, the _tmp pair
# does not. Extra binaries to compare (other builds): one `NAME PATH` a line in
# HARNESS_WORK/start-cost-variants.list on the host, if it exists; each is copied into /tmp
# and timed as pvver_NAME and pvlist_NAME.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
ROUNDS=20
STARTCOST_VARIANTS=$(dirname "$HARNESS_SHARE")/start-cost-variants.list
T=/tmp/start-cost
rm -rf "$T" && mkdir -p "$T/bin" "$T/times"
cp "$HARNESS_PVBUILD" "$T/bin/pvbuild"

names="true bbtrue xlinfo xllist pvver pvlist pvver_tmp pvlist_tmp"
declare -A cmd
cmd[true]="/bin/true"
cmd[bbtrue]="busybox true"
cmd[xlinfo]="xl info"
cmd[xllist]="xl list"
cmd[pvver]="$HARNESS_PVBUILD --version"
cmd[pvlist]="$HARNESS_PVBUILD list"
cmd[pvver_tmp]="$T/bin/pvbuild --version"
cmd[pvlist_tmp]="$T/bin/pvbuild list"
if [ -r "$STARTCOST_VARIANTS" ]; then
    while read -r v p; do
        [ -n "$v" ] && [ -x "$p" ] || continue
        cp "$p" "$T/bin/pvbuild-$v" || fail "cannot copy $p"
        cmd[pvver_$v]="$T/bin/pvbuild-$v --version"
        cmd[pvlist_$v]="$T/bin/pvbuild-$v list"
        names="$names pvver_$v pvlist_$v"
        note "variant $v: $p ($(stat -c %s "$p") bytes)"
    done < "$STARTCOST_VARIANTS"
fi

# Every command must work before it is timed (a failing start is not a fast one).
for n in $names; do
    ${cmd[$n]} > "$T/out-$n" 2>&1 || fail "$n (${cmd[$n]}) exited $?: $(tail -n 2 "$T/out-$n" | paste -sd ' ')"
done

for r in $(seq "$ROUNDS"); do
    for n in $names; do
        t0=$EPOCHREALTIME
        ${cmd[$n]} > /dev/null 2>&1
        t1=$EPOCHREALTIME
        awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }' >> "$T/times/$n"
    done
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
base=$(median "$T/times/true")
xl=$(median "$T/times/xlinfo")
for n in $names; do
    m=$(median "$T/times/$n")
    metric "${n}_s" "$m"
    metric "${n}_min_s" "$(sort -n "$T/times/$n" | head -n 1)"
    metric "${n}_per_true" "$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
    metric "${n}_per_xlinfo" "$(awk -v a="$m" -v b="$xl" 'BEGIN { printf "%.2f", a / b }')"
    note "$n (s): $(paste -sd ' ' "$T/times/$n")"
    cp "$T/times/$n" "$HARNESS_OUT/times-$n"
done
pass

# harness-timeout: 1800
# harness-opt-in
# create-speed (issue 17): pvbuild against xl, interleaved in one emulated run. Ratios, not
# absolute limits: a slow machine does not fail it; any create or destroy that fails does, and
# so do a missing per-step breakdown (`pvbuild -vv`) or a count that does not parse.
#   small:  the project's PV test kernel at 16 MiB, `create -p` + destroy (pvbuild's both at
#           -vv, so its logs hold each step of both), 5 rounds each,
#           interleaved; medians, speedup = xl / pvbuild;
#   debian: Debian's xz kernel + the harness ramdisk at 256 MiB, `create -p` + destroy: the
#           first create (pvbuild's kernel cache emptied first) and 2 repeated creates each;
#   counts: one `create -p` of the small guest per tool under `strace -f` (xl with -e and
#           pvbuild with --no-monitor, so no daemon is followed): syscalls, ioctls by device,
#           xenstore requests by type (tests/xen/dom0/strace-count.py);
#   many:   60 small guests created paused, one after another, and kept (xl's 60, destroyed,
#           then pvbuild's 60): each tool's last-10 / first-10 create time.
#   served: the small case's creates and destroys sent to `pvbuild serve` (the resident
#           toolstack) in one `pvbuild client --batch`, timed by the client from each request's
#           sending to its reply; speedup against xl's small medians of the same run; and the
#           60 kept guests again through the server (tool `served`).
#   pooled: `pvbuild serve --pool` of the small config, five domains made ahead; five creates
#           of it under other names in one batch, timed at the socket (each takes a prepared
#           domain), speedup against xl's small median; the preparation's own time beside.
# Metrics: <case>_<tool>_s (medians), <case>_speedup (xl / pvbuild), many_growth_<tool>,
# counts_<tool>_<key>, small_outside_steps_pvbuild_s (create's wall time less its steps),
# small_version_pvbuild_s (`pvbuild --version`), pool_prepare_s (one pooled domain's preparation),
# and pvbuild's step lines in the evidence.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
command -v strace > /dev/null || fail "no strace in dom0"
command -v python3 > /dev/null || fail "no python3 in dom0"
# pvbuild runs from dom0's tmpfs, as xl runs from dom0's cached root: from the 9p share
# (no page cache) a start costs about twice as much (docs/timings.md, third round).
pvb=/tmp/create-speed-pvbuild
cp "$HARNESS_PVBUILD" "$pvb" || fail "cannot copy $HARNESS_PVBUILD to $pvb"
count_py=$HARNESS_REPO/tests/xen/dom0/strace-count.py
# The cache of unpacked kernels starts empty: the first Debian create is a cold one.
rm -rf /var/cache/pvbuild
# Both tools read the inputs from the page cache, not the first one from 9p.
cat "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_PV_TEST_KERNEL" > /dev/null

# cfg NAME KERNEL RAMDISK MEMORY CMDLINE: an xl config (RAMDISK may be empty).
cfg() {
    printf 'name = "%s"\ntype = "pv"\nkernel = "%s"\nmemory = %s\nvcpus = 1\nextra = "%s"\n' "$1" "$2" "$4" "$5"
    [ -z "$3" ] || printf 'ramdisk = "%s"\n' "$3"
    printf 'on_poweroff = "destroy"\non_reboot = "destroy"\non_crash = "destroy"\n'
}
gone_or_fail() {
    wait_for 60 domain_gone "$1" || fail "$2: domain $1 still exists 60 s after its destroy"
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
s_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'; }

# The tools' output goes to dom0's own memory while they are timed (/tmp, the overlay's tmpfs),
# then to the results: written to the 9p share, each write is a round trip through the
# emulated machine, which would time the logging (pvbuild -vv writes ~90 lines) more than
# the tool.
TMPLOG=/tmp/create-speed-logs
rm -rf "$TMPLOG" && mkdir -p "$TMPLOG"
keep_log() { cat "$TMPLOG/$1" >> "$HARNESS_OUT/$1" && rm -f "$TMPLOG/$1"; }

# xl_round CASE I CFG NAME: xl create -p, destroy; times appended to CASE.{create,destroy}.xl.
xl_round() {
    _log=$TMPLOG/$1-xl-$2.log
    _t=$(now)
    xl create -p "$3" > "$_log" 2>&1 || fail "$1 round $2: xl create -p exited $?: $(tail -n 2 "$_log" | paste -sd ' ')"
    s_since "$_t" >> "$HARNESS_OUT/$1.create.xl"
    _t=$(now)
    xl destroy "$4" >> "$_log" 2>&1 || fail "$1 round $2: xl destroy exited $?"
    s_since "$_t" >> "$HARNESS_OUT/$1.destroy.xl"
    keep_log "$1-xl-$2.log"
    gone_or_fail "$4" "$1 round $2 (xl)"
}
# pvb_round CASE I NAME ARGS...: pvbuild -vv create -p, destroy; the same files, .pvbuild.
pvb_round() {
    _case=$1 _i=$2 _n=$3
    shift 3
    _log=$TMPLOG/$_case-pvbuild-$_i.log
    _t=$(now)
    "$pvb" -vv create -p --name "$_n" "$@" > "$_log" 2>&1 ||
        fail "$_case round $_i: pvbuild create -p exited $?: $(grep -m 1 '^error' "$_log")"
    s_since "$_t" >> "$HARNESS_OUT/$_case.create.pvbuild"
    grep -q '^pvbuild: steps total ' "$_log" || fail "$_case round $_i: no step breakdown in pvbuild -vv's output ($_log)"
    _t=$(now)
    "$pvb" -vv destroy "$_n" >> "$_log" 2>&1 || fail "$_case round $_i: pvbuild destroy exited $?"
    s_since "$_t" >> "$HARNESS_OUT/$_case.destroy.pvbuild"
    keep_log "$_case-pvbuild-$_i.log"
    gone_or_fail "$_n" "$_case round $_i (pvbuild)"
}
report() { # CASE WHAT: medians of CASE.WHAT.{xl,pvbuild} and the speedup
    _x=$(median "$HARNESS_OUT/$1.$2.xl")
    _p=$(median "$HARNESS_OUT/$1.$2.pvbuild")
    metric "${1}_${2}_xl_s" "$_x"
    metric "${1}_${2}_pvbuild_s" "$_p"
    metric "${1}_${2}_speedup" "$(ratio "$_x" "$_p")"
    note "$1 $2 (s): xl $(paste -sd ' ' "$HARNESS_OUT/$1.$2.xl"); pvbuild $(paste -sd ' ' "$HARNESS_OUT/$1.$2.pvbuild")"
}

# ---- small ------------------------------------------------------------------------------
cfg spd-sx "$HARNESS_PV_TEST_KERNEL" "" 16 "create-speed" > "$HARNESS_OUT/small.cfg"
for i in 1 2 3 4 5; do
    xl_round small "$i" "$HARNESS_OUT/small.cfg" spd-sx
    pvb_round small "$i" spd-sp --kernel "$HARNESS_PV_TEST_KERNEL" --memory 16 --cmdline create-speed
done
report small create
report small destroy
evidence "$HARNESS_OUT/small-pvbuild-3.log"
# What pvbuild's steps do not cover: wall time less the create's `steps total` (the process's
# start, argument and config handling, exit), and a bare process start + exit (`--version`).
for i in 1 2 3 4 5; do
    _ms=$(sed -n 's/^pvbuild: steps total \([0-9.]*\) ms.*/\1/p' "$HARNESS_OUT/small-pvbuild-$i.log" | head -n 1)
    [ -n "$_ms" ] || fail "small round $i: no steps total in its log"
    _wall=$(sed -n "${i}p" "$HARNESS_OUT/small.create.pvbuild")
    awk -v w="$_wall" -v m="$_ms" 'BEGIN { printf "%.3f\n", w - m / 1000 }' >> "$HARNESS_OUT/small.outside.pvbuild"
    _t=$(now)
    "$pvb" --version > /dev/null 2>&1 || fail "pvbuild --version exited $?"
    s_since "$_t" >> "$HARNESS_OUT/small.version.pvbuild"
done
metric small_outside_steps_pvbuild_s "$(median "$HARNESS_OUT/small.outside.pvbuild")"
metric small_version_pvbuild_s "$(median "$HARNESS_OUT/small.version.pvbuild")"
note "small: pvbuild's wall time outside its steps (s): $(paste -sd ' ' "$HARNESS_OUT/small.outside.pvbuild"); pvbuild --version (s): $(paste -sd ' ' "$HARNESS_OUT/small.version.pvbuild")"

# ---- served ------------------------------------------------------------------------------
# The resident toolstack: the server runs from the same tmpfs copy; its requests' output goes
# to dom0's tmpfs as the other cases' does.
sock=/tmp/create-speed-serve/serve.sock
"$pvb" serve --socket "$sock" > "$TMPLOG/serve.log" 2>&1 &
spid=$!
serving() { [ -S "$sock" ]; }
wait_for 30 serving || fail "served: pvbuild serve did not listen: $(tail -n 2 "$TMPLOG/serve.log" | paste -sd ' ')"
: > "$TMPLOG/served.batch"
for i in 1 2 3 4 5; do
    echo "-vv create -p --name spd-sv --kernel $HARNESS_PV_TEST_KERNEL --memory 16 --cmdline create-speed" >> "$TMPLOG/served.batch"
    echo "-vv destroy spd-sv" >> "$TMPLOG/served.batch"
done
"$pvb" client --socket "$sock" --times --batch "$TMPLOG/served.batch" > "$TMPLOG/served.log" 2>&1 ||
    fail "served: client --batch exited $?: $(grep -m 1 '^error' "$TMPLOG/served.log")"
keep_log served.log
gone_or_fail spd-sv "served"
sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: -vv create .*/\1/p' "$HARNESS_OUT/served.log" |
    awk '{ printf "%.4f\n", $1 / 1000 }' > "$HARNESS_OUT/small_served.create.pvbuild"
sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: -vv destroy .*/\1/p' "$HARNESS_OUT/served.log" |
    awk '{ printf "%.4f\n", $1 / 1000 }' > "$HARNESS_OUT/small_served.destroy.pvbuild"
[ "$(wc -l < "$HARNESS_OUT/small_served.create.pvbuild")" -eq 5 ] || fail "served: not 5 timed creates in the client's output"
[ "$(grep -c '^pvbuild: steps total ' "$HARNESS_OUT/served.log")" -eq 10 ] || fail "served: no step breakdown for every request"
for w in create destroy; do cp "$HARNESS_OUT/small.$w.xl" "$HARNESS_OUT/small_served.$w.xl"; done
report small_served create
report small_served destroy
evidence "$HARNESS_OUT/served.log"

# ---- pooled ------------------------------------------------------------------------------
# `pvbuild serve --pool` (docs/serve.md, "The pool"): five domains of the small config made
# ahead by a server of their own; then five creates of that config under other names, in one
# batch timed at the socket (each takes a prepared domain: names it, as it is paused), and
# their destroys. The pool's own cost beside: one domain's preparation (pool_prepare_s).
psock=/tmp/create-speed-pool/serve.sock
"$pvb" serve --socket "$psock" --pool "$HARNESS_OUT/small.cfg" --pool-size 5 > "$TMPLOG/pool-serve.log" 2>&1 &
pspid=$!
pool_ready() { grep -q '(5 of 5 ready)' "$TMPLOG/pool-serve.log"; }
wait_for 120 pool_ready || fail "pooled: the pool was not ready within 120 s: $(tail -n 2 "$TMPLOG/pool-serve.log" | paste -sd ' ')"
: > "$TMPLOG/pooled.batch"
for i in 1 2 3 4 5; do
    echo "-vv create -p $HARNESS_OUT/small.cfg --name spd-pl$i" >> "$TMPLOG/pooled.batch"
done
for i in 1 2 3 4 5; do
    echo "destroy spd-pl$i" >> "$TMPLOG/pooled.batch"
done
"$pvb" client --socket "$psock" --times --batch "$TMPLOG/pooled.batch" > "$TMPLOG/pooled.log" 2>&1 ||
    fail "pooled: client --batch exited $?: $(grep -m 1 '^error' "$TMPLOG/pooled.log")"
kill -TERM "$pspid"
wait "$pspid" || fail "pooled: pvbuild serve --pool exited $? after SIGTERM"
keep_log pooled.log
keep_log pool-serve.log
for i in 1 2 3 4 5; do gone_or_fail "spd-pl$i" "pooled"; done
[ "$(grep -c 'taken from the pool' "$HARNESS_OUT/pooled.log")" -eq 5 ] || fail "pooled: not every create took a prepared domain"
left=$(xl list 2> /dev/null | awk 'NR > 1 && $1 ~ /^pvbuild-pool-/ { print $1 }' | paste -sd ' ')
[ -z "$left" ] || fail "pooled: prepared domains left after the server stopped: $left"
sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: -vv create .*/\1/p' "$HARNESS_OUT/pooled.log" |
    awk '{ printf "%.4f\n", $1 / 1000 }' > "$HARNESS_OUT/small_pooled.create.pvbuild"
[ "$(wc -l < "$HARNESS_OUT/small_pooled.create.pvbuild")" -eq 5 ] || fail "pooled: not 5 timed creates in the client's output"
cp "$HARNESS_OUT/small.create.xl" "$HARNESS_OUT/small_pooled.create.xl"
report small_pooled create
sed -n 's/.*pool: prepared domain [0-9]* in \([0-9.]*\) ms.*/\1/p' "$HARNESS_OUT/pool-serve.log" |
    awk '{ printf "%.4f\n", $1 / 1000 }' > "$HARNESS_OUT/pool.prepare"
metric pool_prepare_s "$(median "$HARNESS_OUT/pool.prepare")"
note "pooled: one domain's preparation (s): $(paste -sd ' ' "$HARNESS_OUT/pool.prepare")"
evidence "$HARNESS_OUT/pooled.log"

# ---- debian -----------------------------------------------------------------------------
cfg spd-dx "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_MEMORY" "$HARNESS_GUEST_CMDLINE" > "$HARNESS_OUT/debian.cfg"
dargs="--kernel $HARNESS_GUEST_KERNEL --ramdisk $HARNESS_GUEST_RAMDISK --memory $HARNESS_GUEST_MEMORY"
for i in 1 2 3; do
    xl_round debian "$i" "$HARNESS_OUT/debian.cfg" spd-dx
    # shellcheck disable=SC2086
    pvb_round debian "$i" spd-dp $dargs --cmdline "$HARNESS_GUEST_CMDLINE"
done
for tool in xl pvbuild; do
    head -n 1 "$HARNESS_OUT/debian.create.$tool" > "$HARNESS_OUT/debian1.create.$tool"
    tail -n +2 "$HARNESS_OUT/debian.create.$tool" > "$HARNESS_OUT/debianN.create.$tool"
done
report debian1 create
report debianN create
report debian destroy
evidence "$HARNESS_OUT/debian-pvbuild-1.log"
evidence "$HARNESS_OUT/debian-pvbuild-3.log"

# ---- counts -----------------------------------------------------------------------------
trace() { # TOOL NAME CMD...: strace CMD into TOOL.strace, counts into TOOL.counts
    _tool=$1 _n=$2
    shift 2
    strace -f -qq -yy -xx -s 1048576 -o "$HARNESS_OUT/$_tool.strace" \
        -e trace=openat,connect,close,ioctl,write,writev,sendmsg,sendto "$@" > "$HARNESS_OUT/$_tool.trace.log" 2>&1 ||
        fail "counts: $_tool create under strace exited $?: $(tail -n 2 "$HARNESS_OUT/$_tool.trace.log" | paste -sd ' ')"
    python3 "$count_py" "$HARNESS_OUT/$_tool.strace" > "$HARNESS_OUT/$_tool.counts" 2> "$HARNESS_OUT/$_tool.counts.err" ||
        fail "counts: $_tool's trace does not parse: $(head -n 1 "$HARNESS_OUT/$_tool.counts.err")"
    while read -r k v; do metric "counts_${_tool}_$k" "$v"; done < "$HARNESS_OUT/$_tool.counts"
    grep -q '^xs_requests [1-9]' "$HARNESS_OUT/$_tool.counts" || fail "counts: no xenstore request seen in $_tool's trace"
    grep -q '^ioctl_privcmd [1-9]' "$HARNESS_OUT/$_tool.counts" || fail "counts: no privcmd ioctl seen in $_tool's trace"
    evidence "$HARNESS_OUT/$_tool.counts"
}
trace xl spd-sx xl create -p -e "$HARNESS_OUT/small.cfg"
xl destroy spd-sx > /dev/null 2>&1 || fail "counts: xl destroy spd-sx exited $?"
gone_or_fail spd-sx "counts (xl)"
trace pvbuild spd-sp "$pvb" -vv create -p --no-monitor --name spd-sp --kernel "$HARNESS_PV_TEST_KERNEL" --memory 16 --cmdline create-speed
# pvbuild's own counters against strace's: the same xenstore requests.
own=$(sed -n 's/^pvbuild: steps total .* \([0-9]*\) xenstore requests$/\1/p' "$HARNESS_OUT/pvbuild.trace.log")
seen=$(sed -n 's/^xs_requests //p' "$HARNESS_OUT/pvbuild.counts")
[ -n "$own" ] && [ "$own" = "$seen" ] || fail "counts: pvbuild -vv counted ${own:-no} xenstore requests, strace saw $seen"
note "pvbuild's xenstore requests: $own by its own count and in strace"
"$pvb" destroy spd-sp > /dev/null 2>&1 || fail "counts: pvbuild destroy spd-sp exited $?"
gone_or_fail spd-sp "counts (pvbuild)"
evidence "$HARNESS_OUT/pvbuild.trace.log"

# ---- many -------------------------------------------------------------------------------
N=60
many() { # TOOL: N paused guests, kept, one after another; then all destroyed
    _tool=$1
    : > "$HARNESS_OUT/many.$_tool"
    _i=1
    while [ "$_i" -le "$N" ]; do
        _n=spd-m$_tool$_i
        _log=$TMPLOG/many-$_tool.log
        _t=$(now)
        if [ "$_tool" = xl ]; then
            cfg "$_n" "$HARNESS_PV_TEST_KERNEL" "" 16 "create-speed" > "$HARNESS_OUT/many.cfg"
            xl create -p "$HARNESS_OUT/many.cfg" >> "$_log" 2>&1 || fail "many: xl create -p of guest $_i exited $?: $(tail -n 2 "$_log" | paste -sd ' ')"
        elif [ "$_tool" = served ]; then
            # One request per guest, as xl's and pvbuild's are one command each; all on one
            # connection. Its time is the client's, from the request's sending to its reply.
            echo "-vv create -p --name $_n --kernel $HARNESS_PV_TEST_KERNEL --memory 16 --cmdline create-speed" >> "$TMPLOG/many.batch"
            _i=$((_i + 1))
            continue
        else
            "$pvb" create -p --name "$_n" --kernel "$HARNESS_PV_TEST_KERNEL" --memory 16 --cmdline create-speed >> "$_log" 2>&1 ||
                fail "many: pvbuild create -p of guest $_i exited $?: $(grep '^error' "$_log" | tail -n 1)"
        fi
        s_since "$_t" >> "$HARNESS_OUT/many.$_tool"
        _i=$((_i + 1))
    done
    if [ "$_tool" = served ]; then
        "$pvb" client --socket "$sock" --times --batch "$TMPLOG/many.batch" >> "$_log" 2>&1 ||
            fail "many: the served batch exited $?: $(grep '^error' "$_log" | tail -n 1)"
        sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: -vv create .*/\1/p' "$_log" |
            awk '{ printf "%.4f\n", $1 / 1000 }' > "$HARNESS_OUT/many.$_tool"
        [ "$(wc -l < "$HARNESS_OUT/many.$_tool")" -eq "$N" ] || fail "many: not $N timed creates from the served batch"
        # Where the growth is: the served creates' steps (-vv), first 10 against last 10.
        for _step in name-check xenstore; do
            _ms=$(sed -n "s/^pvbuild: step $_step \([0-9.]*\) ms.*/\1/p" "$_log")
            [ "$(echo "$_ms" | wc -l)" -eq "$N" ] || fail "many: not $N '$_step' steps in the served batch's output"
            _f=$(echo "$_ms" | head -n 10 | awk '{ s += $1 } END { printf "%.1f", s / 10 }')
            _l=$(echo "$_ms" | tail -n 10 | awk '{ s += $1 } END { printf "%.1f", s / 10 }')
            _k=$(echo "$_step" | tr - _)
            metric "many_served_${_k}_first10_ms" "$_f"
            metric "many_served_${_k}_last10_ms" "$_l"
        done
    fi
    keep_log "many-$_tool.log"
    _first=$(head -n 10 "$HARNESS_OUT/many.$_tool" | awk '{ s += $1 } END { print s }')
    _last=$(tail -n 10 "$HARNESS_OUT/many.$_tool" | awk '{ s += $1 } END { print s }')
    metric "many_first10_${_tool}_s" "$_first"
    metric "many_last10_${_tool}_s" "$_last"
    metric "many_growth_${_tool}" "$(ratio "$_last" "$_first")"
    note "many $_tool create times (s): $(paste -sd ' ' "$HARNESS_OUT/many.$_tool")"
    # Not measured: all at once, in groups of 10.
    # (`wait` with the group's pids: a bare `wait` would wait for the server too.)
    _i=1
    _pids=
    : > "$HARNESS_OUT/many-destroy-$_tool.failed"
    while [ "$_i" -le "$N" ]; do
        _n=spd-m$_tool$_i
        { if [ "$_tool" = xl ]; then xl destroy "$_n"; else "$pvb" destroy "$_n"; fi > /dev/null 2>&1 ||
            echo "$_n" >> "$HARNESS_OUT/many-destroy-$_tool.failed"; } &
        _pids="$_pids $!"
        if [ $((_i % 10)) -eq 0 ]; then
            # shellcheck disable=SC2086
            wait $_pids
            _pids=
        fi
        _i=$((_i + 1))
    done
    # shellcheck disable=SC2086
    [ -z "$_pids" ] || wait $_pids
    [ ! -s "$HARNESS_OUT/many-destroy-$_tool.failed" ] ||
        fail "many: destroying $_tool's guests failed: $(paste -sd ' ' "$HARNESS_OUT/many-destroy-$_tool.failed")"
    _none_left() { ! xl list 2>/dev/null | grep -q "^spd-m$_tool[0-9]"; }
    wait_for 60 _none_left || fail "many: $_tool's guests still listed 60 s after their destroy: $(xl list | grep -c "^spd-m$_tool")"
}
# Open descriptors of the server and of xenstored (its connections) before and after each
# phase: what a resident process or 60 monitors leave open shows here.
fds() { ls "/proc/$1/fd" 2> /dev/null | wc -l; }
xsd=$(pidof oxenstored xenstored 2> /dev/null | awk '{ print $1 }')
fd_note() { note "open descriptors $1: server $(fds "$spid"), xenstored $(fds "$xsd"), monitors $(pgrep -fc -- --adopt)"; }
fd_note "before the 60-guest phases"
many xl
fd_note "after xl's 60"
many pvbuild
fd_note "after pvbuild's 60"
: > "$TMPLOG/many.batch"
many served
fd_note "after the served 60"
kill -TERM "$spid"
wait "$spid" || fail "pvbuild serve exited $? after SIGTERM"
cp "$TMPLOG/serve.log" "$HARNESS_OUT/serve.log" && evidence "$HARNESS_OUT/serve.log"
pass

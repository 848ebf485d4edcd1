# harness-timeout: 300
# pvbuild-serve (issue 17): the resident toolstack. `pvbuild serve` runs pvbuild commands sent
# by `pvbuild client`, in its own process, with the client's output and working directory:
#   - the project's PV test kernel, created through the server, passes all its checks; the
#     monitor the server started for it sees the poweroff and destroys it; a relative config
#     path is read in the client's directory, by the create and by its monitor (which a
#     thread of the server starts after the reply);
#   - a bad kernel: exit 1 and one `error:` line at the client, nothing left, and the server
#     still serves; `console`, `create --wait` and `create -c` are refused (exit 2);
#   - a batch of creates and destroys over one connection, each request's time reported;
#   - another user cannot connect; SIGTERM stops the server and removes its socket;
#   - nothing of the scenario's domains is left.
# Metrics: served_create_ms / served_destroy_ms (medians of the batch's requests, at the
# server's socket), direct_create_s (the same create as a `pvbuild` process, for scale).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
pvb=/tmp/pvbuild-serve-bin
cp "$HARNESS_PVBUILD" "$pvb" || fail "cannot copy $HARNESS_PVBUILD"
sock=/run/pvbuild/serve.sock
slog=$HARNESS_OUT/serve.log
"$pvb" serve > "$slog" 2>&1 &
spid=$!
listening() { grep -q "listening at $sock" "$slog" && [ -S "$sock" ]; }
wait_for 30 listening || fail "pvbuild serve did not listen within 30 s: $(tail -n 2 "$slog" | paste -sd ' ')"
evidence "$slog"
mode=$(stat -c %a /run/pvbuild)
[ "$mode" = 700 ] || fail "/run/pvbuild has mode $mode, not 700"

# The test kernel, all its checks, through the server.
out=$HARNESS_OUT/pvtk
mkdir -p "$out"
mlog=/var/log/xen/pvbuild-pvtksrv.log
rm -f "$mlog"
sh "$HARNESS_REPO/tests/pv-test-kernel/run-under-xl.sh" -k "$HARNESS_PV_TEST_KERNEL" -n pvtksrv -o "$out" \
    -c "$pvb client create" > "$out/result.txt" 2>&1
grep -E '^(METRIC|NOTE)' "$out/result.txt"
evidence "$out/pvtksrv-checks.txt"
grep -q '^PASS' "$out/result.txt" || fail "test kernel through the server: $(grep '^FAIL' "$out/result.txt")"
grep -q "Parsing config from" "$out/create.log" ||
    fail "the served create's progress did not reach the client: $(head -c 300 "$out/create.log")"
monitored() { grep -q "shut down: poweroff" "$mlog" 2>/dev/null; }
wait_for 30 monitored || fail "the monitor the server started did not report the poweroff: $(tail -n 2 "$mlog" 2>/dev/null | paste -sd ' ')"
cp "$mlog" "$out/monitor.log" && evidence "$out/monitor.log"

# A relative config path is read in the client's directory.
dir=$HARNESS_OUT/rel
mkdir -p "$dir"
pv_cfg_text() {
    printf 'name = "%s"\ntype = "pv"\nkernel = "%s"\nmemory = 16\nextra = "serve"\n' "$1" "$2"
}
pv_cfg_text srv-rel "$HARNESS_PV_TEST_KERNEL" > "$dir/guest.cfg"
rm -f /var/log/xen/pvbuild-srv-rel.log
(cd "$dir" && "$pvb" client create -p guest.cfg > "$dir/create.log" 2>&1) ||
    fail "client create -p guest.cfg in $dir exited $?: $(grep -m 1 '^error' "$dir/create.log")"
# Its monitor, started by a thread of the server after the reply, reads the same relative
# path in the client's directory.
rel_monitored() { grep -q "monitoring domain [0-9]* (srv-rel)" /var/log/xen/pvbuild-srv-rel.log 2> /dev/null; }
wait_for 30 rel_monitored || fail "the monitor of srv-rel did not start in the client's directory: $(tail -n 2 /var/log/xen/pvbuild-srv-rel.log 2> /dev/null | paste -sd ' ')"
"$pvb" client list srv-rel > "$dir/list.txt" 2>&1 || fail "client list srv-rel exited $?"
grep -q '^srv-rel ' "$dir/list.txt" || fail "client list does not show srv-rel: $(paste -sd ' ' "$dir/list.txt")"
xl list srv-rel > /dev/null 2>&1 || fail "xl does not see srv-rel"

# Refusals and a bad input: exit status, one error line, the server still serves.
refused() { # WANT_RC WANT_TEXT ARGS...
    _want=$1 _text=$2
    shift 2
    "$pvb" client "$@" > "$HARNESS_OUT/refused.log" 2>&1
    _rc=$?
    [ "$_rc" -eq "$_want" ] || fail "client $*: exit $_rc, not $_want: $(head -n 2 "$HARNESS_OUT/refused.log" | paste -sd ' ')"
    _err=$(grep -c '^error: ' "$HARNESS_OUT/refused.log")
    [ "$_err" -eq 1 ] || fail "client $*: $_err error lines: $(paste -sd ' ' "$HARNESS_OUT/refused.log")"
    grep -q "$_text" "$HARNESS_OUT/refused.log" || fail "client $*: $(paste -sd ' ' "$HARNESS_OUT/refused.log")"
}
refused 2 "not served: console" console srv-rel
refused 2 "not served: create -c, --wait" create --wait "$dir/guest.cfg" 'name="srv-w"'
refused 2 "not served: create -c, --wait" create -c "$dir/guest.cfg" 'name="srv-c"'
head -c 4096 /dev/urandom > "$HARNESS_OUT/bad-kernel"
refused 1 "^error: " create -p --name srv-bad --kernel "$HARNESS_OUT/bad-kernel" --memory 16
domain_gone srv-bad || fail "the refused create left srv-bad"
domain_gone srv-w || fail "the refused create --wait left srv-w"
"$pvb" client destroy srv-rel > /dev/null 2>&1 || fail "client destroy srv-rel exited $?"
domain_gone srv-rel || fail "srv-rel is still there after its destroy"

# A batch over one connection, each request timed at the socket; the same create as a process.
batch=$HARNESS_OUT/batch.txt
: > "$batch"
for i in 1 2 3 4 5; do
    echo "create -p --name srv-b$i --kernel $HARNESS_PV_TEST_KERNEL --memory 16 --cmdline serve" >> "$batch"
    echo "destroy srv-b$i" >> "$batch"
done
"$pvb" client --times --batch "$batch" > "$HARNESS_OUT/batch.log" 2>&1 ||
    fail "client --batch exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/batch.log")"
evidence "$HARNESS_OUT/batch.log"
n=$(grep -c '^pvbuild client: [0-9.]* ms, exit 0: ' "$HARNESS_OUT/batch.log")
[ "$n" -eq 10 ] || fail "client --batch --times reported $n requests, not 10"
for i in 1 2 3 4 5; do domain_gone "srv-b$i" || fail "srv-b$i is still there after the batch's destroy"; done
med() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
metric served_create_ms "$(sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: create .*/\1/p' "$HARNESS_OUT/batch.log" | med)"
metric served_destroy_ms "$(sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: destroy .*/\1/p' "$HARNESS_OUT/batch.log" | med)"
t0=$(now)
"$pvb" create -p --name srv-direct --kernel "$HARNESS_PV_TEST_KERNEL" --memory 16 --cmdline serve > "$HARNESS_OUT/direct.log" 2>&1 ||
    fail "pvbuild create -p srv-direct exited $?"
metric direct_create_s "$(elapsed "$t0")"
"$pvb" destroy srv-direct > /dev/null 2>&1 || fail "pvbuild destroy srv-direct exited $?"

# Another user cannot connect (the socket's directory is root's, mode 0700).
if command -v setpriv > /dev/null; then
    setpriv --reuid=65534 --regid=65534 --clear-groups "$pvb" client list > "$HARNESS_OUT/nobody.log" 2>&1 &&
        fail "uid 65534 was served: $(head -n 1 "$HARNESS_OUT/nobody.log")"
    grep -q "^error: no pvbuild serve at $sock: EACCES" "$HARNESS_OUT/nobody.log" ||
        fail "uid 65534: $(head -n 1 "$HARNESS_OUT/nobody.log")"
else
    fail "no setpriv in dom0"
fi

# SIGTERM: the server stops and removes its socket.
kill -TERM "$spid"
stopped() { ! kill -0 "$spid" 2> /dev/null; }
wait_for 30 stopped || fail "pvbuild serve still runs 30 s after SIGTERM"
wait "$spid"
rc=$?
[ "$rc" -eq 0 ] || fail "pvbuild serve exited $rc after SIGTERM"
[ ! -e "$sock" ] || fail "$sock is left after the server stopped"
grep -q "pvbuild serve: stopped" "$slog" || fail "the server's log does not say it stopped"
left=$(xl list 2>/dev/null | awk 'NR > 1 && ($1 ~ /^srv-/ || $1 == "pvtksrv") { print $1 }' | paste -sd ' ')
[ -z "$left" ] || fail "left: $left"
pass

# harness-timeout: 300
# pvbuild-serve-pool (issue 17): `pvbuild serve --pool CONFIG --pool-size 2`, domains of one
# config made ahead and handed to the served creates of that config (docs/serve.md, "The pool"):
#   - the server prepares two domains (pvbuild-pool-PID-N, paused), each with its create's
#     crash-safety record kept;
#   - `create -p CONFIG name=...` takes the first: same domain id, the new name in xenstore
#     (/local/domain/N/name, /vm/UUID/name) and in the stored configuration, still paused, its
#     record ended; the pool refills once the client has gone;
#   - `create CONFIG name=...` (not paused) takes one and starts it: the project's PV test
#     kernel (its module and expected values in the config) passes all its checks in it, and
#     the monitor the server started sees its poweroff;
#   - a create of the config with another memory size, and one after the kernel file changed,
#     are made as without a pool; the changed file makes the pool replace its domains;
#   - a name already taken is refused (one error line) and the prepared domain stays;
#   - two creates in one batch (`--name`), timed at the socket (metric pool_create_ms), beside the
#     pool's own cost (pool_prepare_ms: one domain's preparation, median);
#   - SIGTERM destroys the prepared domains; a server killed with SIGKILL leaves them to
#     `pvbuild cleanup`, which destroys them; nothing is left.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
pvb=/tmp/pvbuild-pool-bin
cp "$HARNESS_PVBUILD" "$pvb" || fail "cannot copy $HARNESS_PVBUILD"
sock=/run/pvbuild/pool.sock
slog=$HARNESS_OUT/serve.log
cl() { "$pvb" client --socket "$sock" "$@"; }
# The kernel is a copy, so that the scenario can change it.
kern=$HARNESS_OUT/pv-test-kernel
cp "$HARNESS_PV_TEST_KERNEL" "$kern" || fail "cannot copy the test kernel"

# The test kernel's config, as run-under-xl.sh makes it: a module and the values the kernel
# must find on its command line.
mem=32
module=$HARNESS_OUT/module.bin
{ printf 'PVTESTMOD\n'; head -c 300001 /dev/urandom; } > "$module"
mod_len=$(wc -c < "$module" | tr -d ' ')
mod_sum=$(gzip -c "$module" | tail -c 8 | od -An -tx4 -N4 | tr -d ' ')
token=pool-token-$$
cmdline="expect_nr_pages=$((mem * 256)) expect_mod_len=$mod_len expect_mod_sum=$mod_sum expect_cmdline_token=$token $token"
cfg=$HARNESS_OUT/pool.cfg
sed -e "s|@NAME@|pooled|" -e "s|@KERNEL@|$kern|" -e "s|@RAMDISK@|$module|" \
    -e "s|@MEMORY@|$mem|" -e "s|@CMDLINE@|$cmdline|" "$HARNESS_REPO/tests/pv-test-kernel/xl-test.cfg.in" > "$cfg"

"$pvb" serve --socket "$sock" --pool "$cfg" --pool-size 2 > "$slog" 2>&1 &
spid=$!
cleanup() {
    kill -TERM "$spid" 2> /dev/null
    for d in $(xl list 2> /dev/null | awk 'NR > 1 && $1 ~ /^(pvbuild-pool-|pool-)/ { print $1 }'); do
        "$pvb" destroy "$d" > /dev/null 2>&1
    done
}
trap cleanup EXIT
evidence "$slog"
# ready N: the server's log says N of 2 are ready (the Nth such line).
ready_count() { grep -c '(2 of 2 ready)' "$slog"; }
ready() { [ "$(ready_count)" -ge "$1" ]; }
wait_for 60 ready 1 || fail "the pool did not have 2 domains within 60 s: $(tail -n 3 "$slog" | paste -sd '|')"
shells() { xl list 2> /dev/null | awk -v p="pvbuild-pool-$spid-" 'NR > 1 && index($1, p) == 1 { print $1 }' | sort | paste -sd ' '; }
[ "$(shells)" = "pvbuild-pool-$spid-0 pvbuild-pool-$spid-1" ] || fail "the prepared domains are [$(shells)]"
# Paused: xl list's state column has the p.
xl list "pvbuild-pool-$spid-0" | awk 'NR == 2 { exit !($5 ~ /p/) }' || fail "pvbuild-pool-$spid-0 is not paused: $(xl list "pvbuild-pool-$spid-0" | tail -n 1)"
records() { grep -l "^owner $spid\$" /run/pvbuild/create/create-*.journal 2> /dev/null | wc -l; }
[ "$(records)" -eq 2 ] || fail "$(records) crash-safety records of the server, not 2"
first=$(xl domid "pvbuild-pool-$spid-0")
record_of() { grep -l "^domain $1\$" /run/pvbuild/create/create-*.journal 2> /dev/null | wc -l; }
[ "$(record_of "$first")" -eq 1 ] || fail "no crash-safety record names prepared domain $first"

# A paused create takes the first prepared domain.
cl create -p "$cfg" 'name="pool-a"' > "$HARNESS_OUT/a.log" 2>&1 || fail "client create -p pool-a exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/a.log")"
evidence "$HARNESS_OUT/a.log"
grep -q "^pvbuild: created domain $first (pool-a) in [0-9.]* s, paused\$" "$HARNESS_OUT/a.log" ||
    fail "pool-a was not made from domain $first: $(paste -sd '|' "$HARNESS_OUT/a.log")"
grep -q "^Parsing config from $cfg\$" "$HARNESS_OUT/a.log" || fail "no 'Parsing config from' line at the client"
[ "$(xenstore-read "/local/domain/$first/name")" = pool-a ] || fail "/local/domain/$first/name is not pool-a"
vm=$(xenstore-read "/local/domain/$first/vm") || fail "no vm node for domain $first"
[ "$(xenstore-read "$vm/name")" = pool-a ] || fail "$vm/name is $(xenstore-read "$vm/name"), not pool-a"
ud=$(ls /var/lib/xen/userdata-d.$first.*.libxl-json 2> /dev/null | head -n 1)
[ -n "$ud" ] || fail "no stored configuration for domain $first"
grep -q '"name": "pool-a"' "$ud" || fail "the stored configuration does not name pool-a: $(grep '"name"' "$ud" | head -n 2 | paste -sd ' ')"
xl list pool-a | awk 'NR == 2 { exit !($5 ~ /p/) }' || fail "pool-a is not paused"
# The taken domain's record ended (the refill may already have begun the next one's).
[ "$(record_of "$first")" -eq 0 ] || fail "the record of taken domain $first is still there"
note "taken: $(grep '^pvbuild: created' "$HARNESS_OUT/a.log")"
wait_for 60 ready 2 || fail "the pool did not refill after the take: $(tail -n 3 "$slog" | paste -sd '|')"

# A running create takes one and the guest runs: the test kernel's checks, then its poweroff
# seen by the monitor the server started.
mlog=/var/log/xen/pvbuild-pool-b.log
rm -f "$mlog"
taken=$(shells | cut -d' ' -f1)
cl create "$cfg" 'name="pool-b"' > "$HARNESS_OUT/b.log" 2>&1 || fail "client create pool-b exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/b.log")"
evidence "$HARNESS_OUT/b.log"
grep -q "^pvbuild: created domain [0-9]* (pool-b) in [0-9.]* s\$" "$HARNESS_OUT/b.log" || fail "pool-b: $(paste -sd '|' "$HARNESS_OUT/b.log")"
# xenconsoled named the console log when it first saw the domain: under its pool name.
clog=$(console_log "$taken")
verdict() { tr -d '\r' < "$clog" 2> /dev/null | grep -q '^VERDICT '; }
wait_for 90 verdict || fail "no VERDICT from the test kernel in $clog"
evidence "$clog"
v=$(tr -d '\r' < "$clog" | grep -m 1 '^VERDICT ')
[ "$v" = "VERDICT PASS" ] || fail "the test kernel in the taken domain says $v: $(tr -d '\r' < "$clog" | grep ' FAIL ' | head -n 3 | paste -sd '|')"
note "the test kernel in a taken domain: $v ($(tr -d '\r' < "$clog" | grep -c '^CHECK .* PASS') checks)"
monitored() { grep -q "shut down: poweroff" "$mlog" 2> /dev/null; }
wait_for 30 monitored || fail "the monitor of pool-b did not report the poweroff: $(tail -n 2 "$mlog" 2> /dev/null | paste -sd ' ')"
wait_for 30 domain_gone pool-b || fail "pool-b still exists after its poweroff"
wait_for 60 ready 3 || fail "the pool did not refill after the second take"

# Not the pool's: another memory size (a create as without a pool; the pool keeps its two).
before=$(shells)
cl create -p "$cfg" 'name="pool-c"' 'memory=48' > "$HARNESS_OUT/c.log" 2>&1 || fail "client create pool-c exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/c.log")"
[ "$(shells)" = "$before" ] || fail "a create with memory=48 took a prepared domain: [$before] -> [$(shells)]"
xl list pool-c > /dev/null 2>&1 || fail "pool-c was not made"
cl destroy pool-c > /dev/null 2>&1 || fail "destroy pool-c exited $?"

# A taken name is refused, and the prepared domain stays.
cl create -p "$cfg" 'name="pool-a"' > "$HARNESS_OUT/taken.log" 2>&1 && fail "a second pool-a was made"
[ "$(grep -c '^error: ' "$HARNESS_OUT/taken.log")" -eq 1 ] || fail "taken name: $(paste -sd '|' "$HARNESS_OUT/taken.log")"
[ "$(shells)" = "$before" ] || fail "the refused create changed the pool: [$before] -> [$(shells)]"
note "taken name: $(grep '^error: ' "$HARNESS_OUT/taken.log")"

# Two creates in one batch, timed at the socket.
ids() { for _s in $(shells); do xl domid "$_s"; done | sort -n | paste -sd ' '; }
prepared=$(ids)
batch=$HARNESS_OUT/batch.txt
printf 'create -p %s --name pool-t1\ncreate -p %s --name pool-t2\n' "$cfg" "$cfg" > "$batch"
cl --times --batch "$batch" > "$HARNESS_OUT/batch.log" 2>&1 || fail "the batch exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/batch.log")"
evidence "$HARNESS_OUT/batch.log"
[ "$(grep -c '^pvbuild: created domain [0-9]* (pool-t[12]) in [0-9.]* s, paused$' "$HARNESS_OUT/batch.log")" -eq 2 ] ||
    fail "the batch: $(paste -sd '|' "$HARNESS_OUT/batch.log")"
made=$(sed -n 's/^pvbuild: created domain \([0-9]*\) (pool-t[12]).*/\1/p' "$HARNESS_OUT/batch.log" | sort -n | paste -sd ' ')
[ "$made" = "$prepared" ] || fail "the batch made domains [$made], not the prepared [$prepared]"
med() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
metric pool_create_ms "$(sed -n 's/^pvbuild client: \([0-9.]*\) ms, exit 0: create .*/\1/p' "$HARNESS_OUT/batch.log" | med)"
metric pool_prepare_ms "$(sed -n 's/.*pool: prepared domain [0-9]* in \([0-9.]*\) ms.*/\1/p' "$slog" | med)"
for d in pool-a pool-t1 pool-t2; do cl destroy "$d" > /dev/null 2>&1 || fail "destroy $d exited $?"; done
wait_for 60 ready 4 || fail "the pool did not refill after the batch"

# The kernel file changes: the next create is made from it as without a pool, and the pool
# replaces its domains.
old=$(shells)
touch "$kern"
cl create -p "$cfg" 'name="pool-d"' > "$HARNESS_OUT/d.log" 2>&1 || fail "client create pool-d exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/d.log")"
d=$(xl domid pool-d) || fail "pool-d was not made"
for s in $old; do [ "$(xl domid "$s" 2> /dev/null)" != "$d" ] || fail "pool-d took $s after the kernel changed"; done
replaced() { grep -q 'changed: its 2 prepared domain(s) go' "$slog" && ready 5; }
wait_for 60 replaced || fail "the pool did not replace its domains after the kernel changed: $(tail -n 3 "$slog" | paste -sd '|')"
for s in $old; do domain_gone "$s" || fail "$s is still there after the pool replaced it"; done
cl destroy pool-d > /dev/null 2>&1 || fail "destroy pool-d exited $?"

# SIGTERM: the prepared domains go with the server.
kill -TERM "$spid"
stopped() { ! kill -0 "$spid" 2> /dev/null; }
wait_for 60 stopped || fail "pvbuild serve still runs 60 s after SIGTERM"
wait "$spid"
rc=$?
[ "$rc" -eq 0 ] || fail "pvbuild serve exited $rc after SIGTERM"
grep -q "pool: 2 prepared domain(s) destroyed" "$slog" || fail "the server did not say it destroyed its 2 domains: $(tail -n 3 "$slog" | paste -sd '|')"
[ -z "$(shells)" ] || fail "left after SIGTERM: $(shells)"
[ "$(records)" -eq 0 ] || fail "$(records) records left after SIGTERM"

# SIGKILL: the records stay, and `pvbuild cleanup` destroys the domains.
slog2=$HARNESS_OUT/serve-killed.log
"$pvb" serve --socket "$sock" --pool "$cfg" --pool-size 1 > "$slog2" 2>&1 &
spid=$!
ready1() { grep -q '(1 of 1 ready)' "$slog2"; }
wait_for 60 ready1 || fail "the second server's pool was not ready: $(tail -n 3 "$slog2" | paste -sd '|')"
killed=$(shells)
[ -n "$killed" ] || fail "no prepared domain of the second server"
kill -KILL "$spid"
wait "$spid" 2> /dev/null
xl list "$killed" > /dev/null 2>&1 || fail "$killed went with the killed server (it should wait for the sweep)"
"$pvb" cleanup > "$HARNESS_OUT/cleanup.log" 2>&1 || fail "pvbuild cleanup exited $?: $(paste -sd '|' "$HARNESS_OUT/cleanup.log")"
evidence "$HARNESS_OUT/cleanup.log"
wait_for 30 domain_gone "$killed" || fail "$killed is still there after pvbuild cleanup"
[ "$(records)" -eq 0 ] || fail "$(records) records left after the cleanup"
rm -f "$sock"
left=$(xl list 2> /dev/null | awk 'NR > 1 && $1 ~ /^(pvbuild-pool-|pool-)/ { print $1 }' | paste -sd ' ')
[ -z "$left" ] || fail "left: $left"
note "killed server: $(paste -sd ' ' "$HARNESS_OUT/cleanup.log")"
pass

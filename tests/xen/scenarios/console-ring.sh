# console-ring (issue 3, "A console"): `pvbuild console` without xenconsoled reads the
# guest's console ring itself (mapped through privcmd, kicked through /dev/xen/evtchn).
# xenconsoled is stopped, the project's PV test kernel is created paused with pvbuild,
# `pvbuild console cr` is attached with stdin from /dev/null (no tty: no raw mode) and its
# stdout to a file, and the guest is unpaused. The test kernel waits for out_cons to catch up
# before it shuts down, so its CHECK lines and VERDICT PASS can only reach the file if the
# console consumed the ring; the console must then end by itself when the guest powers off.
# xenconsoled is restarted as stage2.sh starts it, so later scenarios keep their consoles.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
name=cr
out=$HARNESS_OUT
pidfile=/run/xenconsoled.pid
cpid=

xenconsoled_pid() {
    p=$(cat "$pidfile" 2>/dev/null)
    [ -n "$p" ] && [ -d "/proc/$p" ] && grep -q '^xenconsoled' "/proc/$p/comm" 2>/dev/null && echo "$p"
}
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# The same command line as tests/xen/dom0/stage2.sh (its output appended, not clobbered).
start_xenconsoled() {
    "$HARNESS_XENBIN/xenconsoled" --log=guest --log-dir="$HARNESS_SHARE/console" --pid-file="$pidfile" \
        >> "$HARNESS_SHARE/daemons/xenconsoled.out" 2>&1
}
cleanup() {
    [ -n "$cpid" ] && alive "$cpid" && kill "$cpid" 2>/dev/null
    xl domid "$name" > /dev/null 2>&1 && "$HARNESS_PVBUILD" destroy "$name" > "$out/destroy.log" 2>&1
    xl domid "$name" > /dev/null 2>&1 && xl destroy "$name" >> "$out/destroy.log" 2>&1
    [ -n "$(xenconsoled_pid)" ] || start_xenconsoled
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# 1. Stop xenconsoled (the ring then has no other consumer).
xc=$(xenconsoled_pid)
[ -n "$xc" ] || fail "xenconsoled is not running (no live pid in $pidfile)"
kill "$xc"
wait_for 10 eval '! alive "$xc"' || fail "xenconsoled ($xc) did not stop"

# 2. The test kernel's module and command line, as tests/pv-test-kernel/run-under-xl.sh
#    makes them.
memory=32
module=$out/$name-module.bin
{ printf 'PVTESTMOD\n'; head -c 300001 /dev/urandom; } > "$module" || fail "cannot write $module"
mod_len=$(wc -c < "$module" | tr -d ' ')
mod_sum=$(gzip -c "$module" | tail -c 8 | od -An -tx4 -N4 | tr -d ' ')
token=pvtk-token-$$
cmdline="expect_nr_pages=$((memory * 256)) expect_mod_len=$mod_len expect_mod_sum=$mod_sum expect_cmdline_token=$token $token"
note "command line: $cmdline"
"$HARNESS_PVBUILD" create -p -e --name "$name" --kernel "$HARNESS_PV_TEST_KERNEL" --ramdisk "$module" \
    --memory "$memory" --cmdline "$cmdline" > "$out/create.log" 2>&1 ||
    fail "pvbuild create -p: $(tail -n 2 "$out/create.log" | paste -sd ' ')"
domid=$(xl domid "$name") || fail "no domain $name after create"
tty=$(xenstore-read "/local/domain/$domid/console/tty" 2>/dev/null)
[ -z "$tty" ] || fail "console/tty is '$tty' although xenconsoled is stopped"

# 3. Attach before the guest runs (its output would otherwise stall on a full ring).
t0=$(now)
"$HARNESS_PVBUILD" console "$name" < /dev/null > "$out/console.out" 2> "$out/console.err" &
cpid=$!
# Attached = the event-channel device is open (the page is mapped just before).
has_evtchn() { ls -l "/proc/$cpid/fd" 2>/dev/null | grep -q 'xen/evtchn'; }
wait_for 20 has_evtchn || fail "pvbuild console did not open /dev/xen/evtchn: $(cat "$out/console.err")"
metric attach_s "$(elapsed "$t0")"
xl unpause "$name" || fail "xl unpause $name"
t1=$(now)
evidence "$out/console.out"

# 4. The verdict arrives through the ring.
got_verdict() { tr -d '\r' < "$out/console.out" | grep -q '^VERDICT '; }
# (A console that ended early cannot bring it any more.)
verdict_or_exit() { got_verdict || ! alive "$cpid"; }
wait_for 120 verdict_or_exit
got_verdict || fail "no VERDICT line from pvbuild console (it ended, or 120 s passed): $(tail -c 300 "$out/console.out" | tr -d '\r' | paste -sd ' ') $(cat "$out/console.err")"
metric verdict_s "$(elapsed "$t1")"
tr -d '\r' < "$out/console.out" | grep -E '^(CHECK|TRAP|PANIC|VERDICT)' > "$out/checks.txt"
verdict=$(grep '^VERDICT ' "$out/checks.txt")
[ "$verdict" = "VERDICT PASS" ] || fail "test kernel says $verdict: $(grep ' FAIL ' "$out/checks.txt" | paste -sd ' ')"
checks=$(grep -c '^CHECK .* PASS' "$out/checks.txt")
[ "$checks" -ge 10 ] || fail "only $checks CHECK lines reached the console"
metric checks_passed "$checks"
metric console_bytes "$(wc -c < "$out/console.out" | tr -d ' ')"

# 5. The guest powers off once the ring is drained; the console must notice and exit 0.
wait_for 60 eval '! alive "$cpid"' || fail "pvbuild console still runs 60 s after the verdict"
wait "$cpid"
rc=$?
cpid=
[ $rc -eq 0 ] || fail "pvbuild console exited $rc: $(cat "$out/console.err")"
metric console_exit_s "$(elapsed "$t1")"
# xenconsoled did not serve this guest: its log for the guest is absent or empty.
[ ! -s "$(console_log "$name")" ] || fail "xenconsoled logged guest $name although it was stopped"

# 6. Leave things as found: domain gone, xenconsoled back.
cleanup
trap - EXIT
domain_gone "$name" || fail "domain $name survived pvbuild destroy"
wait_for 10 eval '[ -n "$(xenconsoled_pid)" ]' || fail "xenconsoled did not restart"
note "xenconsoled restarted as pid $(xenconsoled_pid)"
pass

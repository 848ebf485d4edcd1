# harness-timeout: 600
# pvbuild-hvm-fail (issue 14): failure injection at every step of an HVM guest's build.
# `pvbuild create --fail-at list-hvm` lists the HVM build's steps (then xenstore); each is
# failed in turn for a 2-vcpu HVM guest (`create -p`: the device model is not started
# yet): pvbuild must exit non-zero with one `error:` line naming the step and no failed
# undo, and afterwards xl list must show only Domain-0 and `xenstore-ls -f` equal its
# snapshot. A SIGKILLed create (the test hook stops it at hvm-firmware) must leave its
# domain recorded, and `pvbuild cleanup` must remove it.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
ignore='^(/vm|/libxl|/local/domain/0/device-model) = ""$'
only_dom0() { [ "$(xl list 2>/dev/null | awk 'NR > 1 { n++; name = $1 } END { print n "," name }')" = "1,Domain-0" ]; }
leftovers() {
    wait_for 30 only_dom0 || fail "$1 leaks a domain: $(xl list 2>&1 | awk 'NR > 2 { print $1 "(" $5 ")" }' | paste -sd ' ')"
    xs_snapshot > "$HARNESS_OUT/xenstore.after"
    if ! cmp -s "$HARNESS_OUT/xenstore.before" "$HARNESS_OUT/xenstore.after"; then
        diff "$HARNESS_OUT/xenstore.before" "$HARNESS_OUT/xenstore.after" > "$HARNESS_OUT/xenstore.diff.$2"
        fail "$1 leaks xenstore nodes: $(grep -m 3 '^[<>]' "$HARNESS_OUT/xenstore.diff.$2" | paste -sd ' ')"
    fi
}
cfg() {
    printf 'name = "%s"\ntype = "hvm"\nkernel = "%s"\nramdisk = "%s"\ncmdline = "console=ttyS0"\nmemory = %s\nvcpus = 2\nvga = "none"\nvnc = 0\n' \
        "$1" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_MEMORY"
}
"$pvb" create --fail-at list-hvm > "$HARNESS_OUT/steps" 2>&1 || fail "pvbuild create --fail-at list-hvm exited $?"
nsteps=$(wc -l < "$HARNESS_OUT/steps")
[ "$nsteps" -ge 10 ] || fail "--fail-at list-hvm printed $nsteps steps"
note "steps ($nsteps): $(paste -sd ' ' "$HARNESS_OUT/steps")"
only_dom0 || fail "before the loop, xl list shows more than Domain-0"
xs_snapshot > "$HARNESS_OUT/xenstore.before"
: > "$HARNESS_OUT/steps.results"
t0=$(now)
for step in $(cat "$HARNESS_OUT/steps"); do
    case $step in *[!a-z0-9-]*) fail "step name '$step' is not a plain word" ;; esac
    cfg "fi-$step" > "$HARNESS_OUT/fi-$step.cfg"
    log=$HARNESS_OUT/create.fail-at-$step.log
    "$pvb" create -p -e --fail-at "$step" "$HARNESS_OUT/fi-$step.cfg" > "$log" 2>&1
    rc=$?
    [ $rc -ne 0 ] || fail "--fail-at $step: pvbuild create exited 0"
    nerr=$(grep -c '^error:' "$log")
    [ "$nerr" -eq 1 ] || fail "--fail-at $step: $nerr lines start with 'error:' (want 1): $(head -n 3 "$log" | paste -sd ' ')"
    line=$(grep '^error:' "$log")
    echo "$line" | grep -qE "(^|[^a-z0-9-])$step([^a-z0-9-]|\$)" || fail "--fail-at $step: the error does not name the step: $line"
    case $line in *"undoing failed"*) fail "--fail-at $step: undoing failed: $line" ;; esac
    leftovers "--fail-at $step" "$step"
    echo "$step: rc=$rc $line" >> "$HARNESS_OUT/steps.results"
done
metric steps_s "$(elapsed "$t0")"
evidence "$HARNESS_OUT/steps.results"
# Killed mid-build: the journal keeps the domain; cleanup removes it.
cfg fi-killed > "$HARNESS_OUT/fi-killed.cfg"
log=$HARNESS_OUT/create.killed.log
PVBUILD_TEST_STOP_AT=hvm-firmware "$pvb" create -p -e "$HARNESS_OUT/fi-killed.cfg" > "$log" 2>&1 &
pid=$!
stopped() { grep -q 'test hook: stopped at hvm-firmware' "$log"; }
wait_for 60 stopped || fail "the create never stopped at hvm-firmware: $(head -n 3 "$log" | paste -sd ' ')"
xl domid fi-killed > /dev/null 2>&1 || fail "the stopped create has no domain fi-killed"
kill -KILL "$pid"; wait "$pid" 2>/dev/null
"$pvb" cleanup > "$HARNESS_OUT/cleanup.log" 2>&1 || fail "pvbuild cleanup exited $?: $(head -n 2 "$HARNESS_OUT/cleanup.log" | paste -sd ' ')"
evidence "$HARNESS_OUT/cleanup.log"
leftovers "killed at hvm-firmware, then cleanup" killed
pass

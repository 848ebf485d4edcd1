# harness-timeout: 1200
# fail-inject (issue 3, scenario 4): make each step of `pvbuild create` fail in
# turn (the test-only switch `--fail-at STEP`; `--fail-at list` prints the steps,
# one a line, in order). After each:
#   - pvbuild exited non-zero with exactly one line starting "error:", which
#     names the step (as a word) and does not say that undoing failed;
#   - `xl list` shows Domain-0 alone: no leftover domain, dying ones included
#     (a domain Xen still tears down gets 30 s to go, see leftovers below; one
#     that stays is a leak, e.g. of a mapping that keeps it a zombie);
#   - xenstore is as before the loop: `xenstore-ls -f` equals the snapshot taken
#     before it (so no /local/domain/N, no /vm/<uuid>, no /libxl/N, no
#     /local/domain/0/backend/console/N ...), and `xenstore-list /local/domain`
#     is "0" alone. Ignored: the empty parents /vm and /libxl themselves (see
#     $ignore below), not what is under them.
# Then a control run without --fail-at (and -p) must succeed, leave the domain
# paused with its device model running, and `pvbuild destroy` it; the same
# no-leftover checks hold after. Every run gives the guest a disk (a qdisk, so
# the device-model step starts a real QEMU, and the unpause step's failure must
# stop it again): no QEMU may outlive its run either. And a network interface on
# dom0's bridge (netback, libxl's vif-bridge script): no vif<domid>.0 may outlive
# its run.
# FAIL names the first step that leaks (or misreports). The guest: the PV test
# kernel with a 4 KiB module and 32 MiB (Debian's kernel and the harness ramdisk
# at $HARNESS_GUEST_MEMORY MiB when the test kernel was not built).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
# Not counted as leftovers: the empty directories /vm, /libxl and
# /local/domain/0/device-model, which the first domain's entries (or device
# model) create and which stay when the last domain's entries go (xl leaves them
# too). Everything under them is compared. No other
# node changed on its own in the runs this was written against.
ignore='^(/vm|/libxl|/local/domain/0/device-model) = ""$'

fault_inputs fi

# leftovers WHAT: FAIL naming WHAT when a domain or a xenstore node is left.
# A domain Xen still tears down (dying, "d" in xl list) gets $grace s to go: the
# teardown of a domain that was introduced to xenstored waits for oxenstored and
# xenconsoled to drop their mappings of its pages, which can take seconds under
# emulation on a loaded machine. The slowest teardown is a METRIC; a domain
# still there after $grace s is a leak (evidence: xl list and Xen's 'q' dump of
# the domain, with its refcount).
grace=30
slowest=0
# gone_within SECONDS: poll until only Domain-0 is left; 1 when SECONDS passed.
gone_within() {
    _deadline=$(($(date +%s) + $1))
    while ! only_dom0; do
        [ "$(date +%s)" -lt "$_deadline" ] || return 1
        sleep 0.3
    done
}
leftovers() {
    _tag=$(printf '%s' "$1" | tr -c 'a-z0-9-' '_')
    _t=$(now)
    if ! gone_within "$grace"; then
        _f=$HARNESS_OUT/leak.$_tag
        xl list > "$_f" 2>&1
        _ids=$(awk 'NR > 2 { print $2 }' "$_f")
        xl debug-keys q > /dev/null 2>&1
        for _id in $_ids; do
            xl dmesg 2>&1 | grep -A 6 "General information for domain $_id:" | tail -n 7 >> "$_f"
        done
        evidence "$_f"
        fail "$1 leaks a domain (still there $grace s after pvbuild returned): xl list shows $(awk 'NR > 2 { printf "%s(id %s, state %s) ", $1, $2, $5 }' "$_f")"
    fi
    _s=$(elapsed "$_t")
    slowest=$(awk -v a="$slowest" -v b="$_s" 'BEGIN { print (b > a) ? b : a }')
    case $_s in [0-4].*) ;; *) note "$1: the domain took $_s s to go" ;; esac
    if pgrep -f -- '-xen-domid' > /dev/null 2>&1; then
        fail "$1 leaks a device model: $(pgrep -af -- '-xen-domid' | head -n 1)"
    fi
    _vifs=$(vif_links | paste -sd ' ')
    [ -z "$_vifs" ] || fail "$1 leaks backend interfaces: $_vifs"
    _doms=$(xs_domains)
    [ "$_doms" = 0 ] || fail "$1 leaks xenstore nodes: /local/domain lists '$_doms'"
    xs_unchanged "$1" "$_tag"
}

"$pvb" create --fail-at list > "$HARNESS_OUT/steps" 2>&1 || fail "pvbuild create --fail-at list exited $?: $(head -n 1 "$HARNESS_OUT/steps")"
steps=$(cat "$HARNESS_OUT/steps")
nsteps=$(wc -l < "$HARNESS_OUT/steps")
[ "$nsteps" -ge 2 ] || fail "pvbuild create --fail-at list printed $nsteps steps: $steps"
note "steps ($nsteps): $(paste -sd ' ' "$HARNESS_OUT/steps")"

only_dom0 || fail "before the loop, xl list shows more than Domain-0: $(xl list 2>&1 | awk 'NR > 2 { print $1 }' | paste -sd ' ')"
xs_snapshot > "$HARNESS_OUT/xenstore.before"
metric xenstore_nodes_before "$(wc -l < "$HARNESS_OUT/xenstore.before")"

: > "$HARNESS_OUT/steps.results"
t0=$(now)
for step in $steps; do
    case $step in *[!a-z0-9-]*) fail "step name '$step' is not a plain word" ;; esac
    log=$HARNESS_OUT/create.fail-at-$step.log
    "$pvb" create --fail-at "$step" --name "fi-$step" --kernel "$kernel" --ramdisk "$ramdisk" \
        --memory "$memory" --cmdline x --disk "$disk,raw,xvda,w" --vif bridge=xenbr0 > "$log" 2>&1
    rc=$?
    [ $rc -ne 0 ] || fail "--fail-at $step: pvbuild create exited 0"
    nerr=$(grep -c '^error:' "$log")
    [ "$nerr" -eq 1 ] || fail "--fail-at $step: $nerr lines start with 'error:' (want 1): $(head -n 3 "$log" | paste -sd ' ')"
    line=$(grep '^error:' "$log")
    echo "$line" | grep -qE "(^|[^a-z0-9-])$step([^a-z0-9-]|\$)" || fail "--fail-at $step: the error does not name the step: $line"
    case $line in *"undoing failed"*) fail "--fail-at $step: undoing failed: $line" ;; esac
    leftovers "--fail-at $step"
    echo "$step: rc=$rc $line" >> "$HARNESS_OUT/steps.results"
done
metric steps_s "$(elapsed "$t0")"
evidence "$HARNESS_OUT/steps.results"

# The control run: no --fail-at, paused; then pvbuild destroy.
log=$HARNESS_OUT/create.control.log
"$pvb" create -p --name fi-control --kernel "$kernel" --ramdisk "$ramdisk" --memory "$memory" --cmdline x \
    --disk "$disk,raw,xvda,w" --vif bridge=xenbr0 > "$log" 2>&1 ||
    fail "control: pvbuild create -p exited $?: $(head -n 2 "$log" | paste -sd ' ')"
state=$(xl list fi-control 2>&1 | awk 'NR == 2 { print $5 }')
case $state in *p*) ;; *) fail "control: fi-control is not paused after create -p: state '$state' ($(xl list fi-control 2>&1 | tail -n 1))" ;; esac
ctl=$(xl domid fi-control)
[ "$(xenstore-read "/local/domain/$ctl/name" 2>&1)" = fi-control ] || fail "control: no xenstore name for fi-control"
[ "$(xenstore-read "/local/domain/0/device-model/$ctl/state" 2>&1)" = running ] || fail "control: the device model of fi-control is not running"
dmpid=$(xenstore-read "/local/domain/$ctl/image/device-model-pid" 2>&1)
kill -0 "$dmpid" 2>/dev/null || fail "control: no device model process ($dmpid)"
[ "$(xenstore-read "/local/domain/0/backend/vif/$ctl/0/hotplug-status" 2>&1)" = connected ] || fail "control: the interface's hotplug-status is not connected"
ip -o link show master xenbr0 2>/dev/null | grep -q "vif$ctl.0" || fail "control: vif$ctl.0 is not on xenbr0"
"$pvb" destroy fi-control >> "$log" 2>&1 || fail "control: pvbuild destroy fi-control exited $?: $(tail -n 1 "$log")"
leftovers "control (create -p, destroy)"
metric slowest_teardown_s "$slowest"
note "control: $(grep -m 1 'created domain' "$log")"
pass

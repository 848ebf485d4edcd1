# harness-timeout: 900
# pvbuild-hvm-fail (issue 14): failure injection at every step of an HVM guest's build.
# `pvbuild create --fail-at list-hvm` lists the HVM build's steps (then xenstore,
# device-model, unpause); each is failed in turn for a 2-vcpu HVM guest (direct kernel boot,
# vga none, serial none, a qdisk disk and a vif with its emulated NIC): pvbuild must exit
# non-zero with one `error:` line naming the step and no failed undo, and afterwards xl list
# must show only Domain-0, no QEMU, vif or tap may be left, and `xenstore-ls -f` must equal
# its snapshot. A SIGKILLed create (the test hook stops it
# once QEMU is spawned, `device-model-spawned`) must leave its domain and QEMU recorded, and
# `pvbuild cleanup` must remove both.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
ignore='^(/vm|/libxl|/local/domain/0/device-model) = ""$'
setup_bridge
[ -e /dev/net/tun ] || modprobe tun 2>/dev/null
img=$HARNESS_OUT/fail-disk.img
truncate -s 4M "$img" || fail "cannot make $img"
leftovers() {
    _l=$(vif_links | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1 leaks interfaces: $_l"
    wait_for 30 only_dom0 || fail "$1 leaks a domain: $(xl list 2>&1 | awk 'NR > 2 { print $1 "(" $5 ")" }' | paste -sd ' ')"
    no_qemu() { ! pgrep -f 'qemu-system-i386 -xen-domid' > /dev/null; }
    wait_for 30 no_qemu || fail "$1 leaks a QEMU: $(pgrep -af 'qemu-system-i386 -xen-domid' | cut -c1-120)"
    xs_unchanged "$1" "$2"
}
cfg() {
    printf 'name = "%s"\ntype = "hvm"\nkernel = "%s"\nramdisk = "%s"\ncmdline = "console=ttyS0"\nmemory = %s\nvcpus = 2\nvga = "none"\nvnc = 0\nserial = "none"\n' \
        "$1" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_MEMORY"
    printf "disk = [ 'format=raw,vdev=xvda,access=rw,backendtype=qdisk,target=%s' ]\nvif = [ 'bridge=xenbr0' ]\n" "$img"
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
    "$pvb" create -e --fail-at "$step" "$HARNESS_OUT/fi-$step.cfg" > "$log" 2>&1
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
PVBUILD_TEST_STOP_AT=device-model-spawned "$pvb" create -e "$HARNESS_OUT/fi-killed.cfg" > "$log" 2>&1 &
pid=$!
stopped() { grep -q 'test hook: stopped at device-model-spawned' "$log"; }
wait_for 90 stopped || fail "the create never stopped at device-model-spawned: $(head -n 3 "$log" | paste -sd ' ')"
d=$(xl domid fi-killed 2>/dev/null) || fail "the stopped create has no domain fi-killed"
pgrep -f "qemu-system-i386 -xen-domid $d " > /dev/null || fail "the stopped create has no QEMU for domain $d"
kill -KILL "$pid"; wait "$pid" 2>/dev/null
"$pvb" cleanup > "$HARNESS_OUT/cleanup.log" 2>&1 || fail "pvbuild cleanup exited $?: $(head -n 2 "$HARNESS_OUT/cleanup.log" | paste -sd ' ')"
evidence "$HARNESS_OUT/cleanup.log"
leftovers "killed once QEMU was spawned, then cleanup" killed
pass

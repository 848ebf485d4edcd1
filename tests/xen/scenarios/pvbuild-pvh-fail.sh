# harness-timeout: 1200
# pvbuild-pvh-fail (issue 14): failure injection at every step of a PVH guest's build.
# `pvbuild create --fail-at list-pvh` lists the PVH build's steps (then xenstore,
# device-model, vif and unpause); each is failed in turn for a 2-vcpu PVH guest of Debian's
# kernel with a disk (an image file: a qdisk, so the device-model step starts a real QEMU)
# and an interface on dom0's bridge (libxl's vif-bridge script): pvbuild must exit non-zero
# with one `error:` line naming the step and no failed undo, and afterwards xl list must
# show only Domain-0, `xenstore-ls -f` equal its snapshot, and no QEMU or vif<domid>.0 be
# left. Then a control run (`create -p`) must leave a paused PVH domain with its 2 vcpus,
# its QEMU and its interface, which `pvbuild destroy` removes without a trace.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
# Empty directories xl/libxl leave behind and that pvbuild leaves too (see fail-inject).
ignore='^(/vm|/libxl|/local/domain/0/device-model) = ""$'
no_qemu() { ! pgrep -f -- '-xen-domid' > /dev/null 2>&1; }
leftovers() {
    wait_for 30 only_dom0 || fail "$1 leaks a domain: $(xl list 2>&1 | awk 'NR > 2 { print $1 "(" $5 ")" }' | paste -sd ' ')"
    wait_for 30 no_qemu || fail "$1 leaks a device model: $(pgrep -af -- '-xen-domid' | head -n 1)"
    _l=$(vif_links | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1 leaks backend interfaces: $_l"
    xs_unchanged "$1" "$2"
}
setup_bridge
disk=$HARNESS_OUT/fi-disk.img
truncate -s 4M "$disk" || fail "cannot make $disk"
cfg() {
    printf 'name = "%s"\ntype = "pvh"\nkernel = "%s"\nramdisk = "%s"\nextra = "%s"\nmemory = %s\nvcpus = 2\n' \
        "$1" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_CMDLINE" "$HARNESS_GUEST_MEMORY"
    printf "disk = [ 'file:%s,xvda,w' ]\nvif = [ 'bridge=xenbr0' ]\n" "$disk"
}
"$pvb" create --fail-at list-pvh > "$HARNESS_OUT/steps" 2>&1 || fail "pvbuild create --fail-at list-pvh exited $?"
nsteps=$(wc -l < "$HARNESS_OUT/steps")
[ "$nsteps" -ge 10 ] || fail "--fail-at list-pvh printed $nsteps steps"
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
cfg fi-control > "$HARNESS_OUT/fi-control.cfg"
log=$HARNESS_OUT/create.control.log
t0=$(now)
"$pvb" create -p -e "$HARNESS_OUT/fi-control.cfg" > "$log" 2>&1 || fail "control: pvbuild create -p exited $?: $(head -n 2 "$log" | paste -sd ' ')"
metric control_create_p_s "$(elapsed "$t0")"
state=$(xl list fi-control 2>&1 | awk 'NR == 2 { print $5 }')
case $state in *p*) ;; *) fail "control: fi-control is not paused: '$state'" ;; esac
# Its two vcpus: vcpu 0 set up by the build, vcpu 1 down until the guest brings it up (so
# `xl list` counts 1 online, as for xl's paused PVH guest); `xl vcpu-list` lists both.
nv=$(xl vcpu-list fi-control 2>&1 | awk 'NR > 1 && $1 == "fi-control"' | wc -l)
[ "$nv" = 2 ] || fail "control: xl vcpu-list shows $nv vcpus of fi-control, want 2: $(xl vcpu-list fi-control 2>&1 | paste -sd ' ')"
dc=$(xl domid fi-control)
[ "$(xenstore-read "/local/domain/0/device-model/$dc/state" 2>/dev/null)" = running ] || fail "control: fi-control's device model is not running"
ip link show "vif$dc.0" > /dev/null 2>&1 || fail "control: no vif$dc.0 in dom0"
"$pvb" destroy fi-control >> "$log" 2>&1 || fail "control: pvbuild destroy exited $?"
leftovers "control (create -p, destroy)" control
pass

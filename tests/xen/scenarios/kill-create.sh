# harness-timeout: 1500
# kill-create (issue 13, "kill -9 at any moment"): `pvbuild create` is killed with SIGKILL at
# every step: each step of `--fail-at list` (the test hook PVBUILD_TEST_STOP_AT=STEP makes
# pvbuild stop where --fail-at would fail, print "stopped at STEP" and block), and three
# points where a child runs: device-model-spawned (QEMU started, its pid not yet in
# xenstore), vif-hotplug-spawned (the vif-bridge script's `online` running) and
# bootloader-spawned (Xen's real pygrub, restricted, reading the guest's disk). No undo of
# pvbuild's own runs: the kill leaves what it leaves (checked: the crash-safety record is
# there after every kill, a domain after every kill past create-domain, a QEMU after
# device-model-spawned). Then a later pvbuild cleans up, in turn `pvbuild destroy NAME`,
# `pvbuild cleanup`, and (for two steps) the next `pvbuild create` of the same name (which
# must succeed; it is then destroyed). After each cleanup nothing is left: only Domain-0 in
# `xl list` (a dying domain gets 30 s), xenstore equal to the snapshot taken before the loop,
# no QEMU, pygrub or hotplug script process, no vif interface (so no bridge port), no
# bootloader directory in /tmp, no record in /run/pvbuild/create.
# Guest: the PV test kernel with a 4 KiB module, 32 MiB, a qdisk disk and an interface on
# xenbr0 (Debian's kernel and the harness ramdisk when the test kernel was not built).
# Order: pygrub, then the two other child points, then the steps (so a run cut short has
# tested the points the issue names first). Each kill, cleanup and check costs about 35 s on
# a loaded machine (two emulated Xens on two cores), hence the timeout.
# Metrics: steps_s (the whole loop), cleanup_max_s (the slowest cleanup command).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
journal_dir=/run/pvbuild/create
ignore='^(/vm|/libxl|/local/domain/0/device-model) = ""$'

fault_inputs kc
ndomains() { xl list 2>/dev/null | awk 'NR > 2 { n++ } END { print n + 0 }'; }
nrecords() { ls -A "$journal_dir" 2>/dev/null | wc -l; }
# One look at the processes per check (each /proc walk costs under emulation): ps_snap
# fills $HARNESS_OUT/ps; qemus and helpers read it.
ps_snap() { ps -eo pid=,args= > "$HARNESS_OUT/ps" 2>/dev/null; }
qemus() { grep -e '-xen-domid' "$HARNESS_OUT/ps" | awk '{ print $1 }' | paste -sd ' '; }
helpers() { grep -E 'bin/pygrub|vif-bridge|/etc/xen/scripts/' "$HARNESS_OUT/ps" | awk '{ print $1 }' | paste -sd ' '; }
bl_dirs() { ls -d "${TMPDIR:-/tmp}"/pvbuild-bootloader.* 2>/dev/null | paste -sd ' '; }

# gone_within SECONDS: until only Domain-0 is left; 1 when SECONDS passed.
gone_within() {
    _deadline=$(($(date +%s) + $1))
    while [ "$(ndomains)" != 0 ]; do
        [ "$(date +%s)" -lt "$_deadline" ] || return 1
        sleep 0.3
    done
}

# leftovers WHAT: FAIL naming WHAT when anything the create made is still there.
leftovers() {
    gone_within 30 || fail "$1: a domain is left: $(xl list 2>&1 | awk 'NR > 2 { printf "%s(id %s, %s) ", $1, $2, $5 }')"
    ps_snap
    [ -z "$(qemus)" ] || fail "$1: a device model is left: $(grep -m 1 -e '-xen-domid' "$HARNESS_OUT/ps")"
    [ -z "$(helpers)" ] || fail "$1: a helper process is left: $(grep -E 'bin/pygrub|vif-bridge|/etc/xen/scripts/' "$HARNESS_OUT/ps" | head -n 2 | paste -sd ' ')"
    _vifs=$(vif_links | paste -sd ' ')
    [ -z "$_vifs" ] || fail "$1: backend interfaces are left: $_vifs"
    [ -z "$(ip -o link show master xenbr0 2>/dev/null)" ] || fail "$1: xenbr0 still has ports: $(ip -o link show master xenbr0 | awk -F': ' '{ print $2 }' | paste -sd ' ')"
    [ -z "$(bl_dirs)" ] || fail "$1: bootloader directories are left: $(bl_dirs)"
    [ "$(nrecords)" = 0 ] || fail "$1: crash-safety records are left: $(ls -A "$journal_dir" | paste -sd ' ')"
    _tag=$(printf '%s' "$1" | tr -c 'a-z0-9-' '_')
    xs_snapshot > "$HARNESS_OUT/xenstore.after.$_tag"
    if ! cmp -s "$HARNESS_OUT/xenstore.before" "$HARNESS_OUT/xenstore.after.$_tag"; then
        diff "$HARNESS_OUT/xenstore.before" "$HARNESS_OUT/xenstore.after.$_tag" > "$HARNESS_OUT/xenstore.diff.$_tag"
        evidence "$HARNESS_OUT/xenstore.diff.$_tag"
        fail "$1: xenstore nodes are left: $(grep -m 3 '^[<>]' "$HARNESS_OUT/xenstore.diff.$_tag" | paste -sd ' ')"
    fi
}

# kill_at STEP NAME ARGS...: starts `pvbuild create ARGS` with the hook at STEP, waits until
# it stopped there (90 s), SIGKILLs it.
kill_at() {
    _step=$1
    _log=$HARNESS_OUT/create.kill-at-$_step.log
    shift
    PVBUILD_TEST_STOP_AT=$_step "$pvb" create "$@" > "$_log" 2>&1 &
    _pid=$!
    _deadline=$(($(date +%s) + 90))
    until grep -q "test hook: stopped at $_step " "$_log" 2>/dev/null; do
        if ! kill -0 "$_pid" 2>/dev/null; then
            wait "$_pid"
            fail "kill at $_step: pvbuild create ended (status $?) before reaching the step: $(tail -n 2 "$_log" | paste -sd ' ')"
        fi
        if [ "$(date +%s)" -ge "$_deadline" ]; then
            kill -9 "$_pid" 2>/dev/null
            fail "kill at $_step: pvbuild never stopped there in 90 s: $(tail -n 2 "$_log" | paste -sd ' ')"
        fi
        sleep 0.1
    done
    # The pid the hook printed is pvbuild's own (the same as $! in this shell).
    _hpid=$(sed -n "s/.*test hook: stopped at $_step (pid \([0-9]*\)).*/\1/p" "$_log" | head -n 1)
    [ "$_hpid" = "$_pid" ] || note "kill at $_step: the hook says pid $_hpid, the shell started $_pid"
    kill -9 "${_hpid:-$_pid}" || fail "kill at $_step: kill -9 ${_hpid:-$_pid} failed"
    wait "$_pid" 2>/dev/null
}

# cleanup_by HOW NAME ARGS...: `destroy`, `cleanup` or the next `create` (-p, then destroy).
cleanup_max=0
cleanup_by() {
    _how=$1
    _name=$2
    shift 2
    _clog=$HARNESS_OUT/cleanup.$_name.log
    _t=$(now)
    case $_how in
        destroy) "$pvb" destroy "$_name" > "$_clog" 2>&1 || fail "$_name: pvbuild destroy exited $?: $(tail -n 2 "$_clog" | paste -sd ' ')" ;;
        cleanup) "$pvb" cleanup > "$_clog" 2>&1 || fail "$_name: pvbuild cleanup exited $?: $(tail -n 2 "$_clog" | paste -sd ' ')" ;;
        create)
            "$pvb" create -p "$@" > "$_clog" 2>&1 || fail "$_name: the next pvbuild create exited $?: $(tail -n 2 "$_clog" | paste -sd ' ')"
            grep -q "created domain" "$_clog" || fail "$_name: the next create did not say it created the domain"
            "$pvb" destroy "$_name" >> "$_clog" 2>&1 || fail "$_name: pvbuild destroy (after the next create) exited $?"
            ;;
    esac
    _s=$(elapsed "$_t")
    cleanup_max=$(awk -v a="$cleanup_max" -v b="$_s" 'BEGIN { print (b > a) ? b : a }')
    grep -q "cleaned up after a killed create of $_name " "$_clog" ||
        fail "$_name: the $_how did not report cleaning up the killed create: $(head -n 2 "$_clog" | paste -sd ' ')"
}

"$pvb" create --fail-at list > "$HARNESS_OUT/steps" 2>&1 || fail "pvbuild create --fail-at list exited $?"
# The points where a child runs first, then every step in order.
steps="device-model-spawned vif-hotplug-spawned $(cat "$HARNESS_OUT/steps")"
[ "$(ndomains)" = 0 ] || fail "before the loop, xl list shows more than Domain-0"
mkdir -p "$journal_dir" 2>/dev/null
[ "$(nrecords)" = 0 ] || fail "before the loop, $journal_dir holds records: $(ls -A "$journal_dir" | paste -sd ' ')"
xs_snapshot > "$HARNESS_OUT/xenstore.before"

: > "$HARNESS_OUT/steps.results"
t0=$(now)
# During pygrub (restricted, as by default: the user it drops to is made as an administrator
# would). The disk: an ext4 image with Debian's kernel, the ramdisk and a grub.cfg.
mkfs=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
[ -x "$mkfs" ] || fail "no mkfs.ext4 in dom0"
id -u xen-qemuuser-shared > /dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin xen-qemuuser-shared ||
    fail "useradd xen-qemuuser-shared failed"
root=$HARNESS_OUT/kc-root
mkdir -p "$root/boot/grub"
cp "$HARNESS_GUEST_KERNEL" "$root/boot/vmlinuz"
cp "$HARNESS_GUEST_RAMDISK" "$root/boot/initrd.gz"
printf "set default=0\nset timeout=0\nmenuentry 'pvbuild' {\n\tlinux /boot/vmlinuz %s\n\tinitrd /boot/initrd.gz\n}\n" \
    "$HARNESS_GUEST_CMDLINE" > "$root/boot/grub/grub.cfg"
"$mkfs" -q -F -d "$root" "$HARNESS_OUT/kc-pygrub.img" 48M || fail "mkfs.ext4 failed"
step=bootloader-spawned
name=kc-$step
kill_at "$step" --name "$name" --bootloader pygrub --memory "$HARNESS_GUEST_MEMORY" \
    --disk "$HARNESS_OUT/kc-pygrub.img,raw,xvda,w"
ps_snap
left="records=$(nrecords) pygrub=[$(helpers)] dirs=[$(bl_dirs)]"
[ "$(nrecords)" -ge 1 ] || fail "kill at $step: no crash-safety record ($left)"
[ -n "$(bl_dirs)" ] || fail "kill at $step: no bootloader directory left by the kill, so nothing was tested ($left)"
cleanup_by destroy "$name"
leftovers "kill at $step, then destroy"
echo "$step: killed, left $left; destroy: $(grep -m 1 'cleaned up' "$HARNESS_OUT/cleanup.$name.log")" >> "$HARNESS_OUT/steps.results"
i=0
for step in $steps; do
    case $step in *[!a-z0-9-]*) fail "step name '$step' is not a plain word" ;; esac
    name=kc-$step
    set -- --name "$name" --kernel "$kernel" --ramdisk "$ramdisk" --memory "$memory" --cmdline x \
        --disk "$disk,raw,xvda,w" --vif bridge=xenbr0
    kill_at "$step" "$@"
    # What the kill left: the record always; a domain once Xen made one; a QEMU when killed
    # while it started.
    ps_snap
    nd=$(ndomains)
    left="records=$(nrecords) domains=$nd qemu=[$(qemus)] vifs=[$(vif_links | paste -sd ' ')]"
    [ "$(nrecords)" -ge 1 ] || fail "kill at $step: no crash-safety record in $journal_dir ($left)"
    case $step in
        compat | create-domain) ;;
        *) [ "$nd" -ge 1 ] || fail "kill at $step: no domain left by the kill, so nothing was tested ($left)" ;;
    esac
    if [ "$step" = device-model-spawned ] && [ -z "$(qemus)" ]; then
        fail "kill at $step: no QEMU left by the kill ($left)"
    fi
    case $step in
        build | device-model-spawned) how=create ;;
        *) case $((i % 3)) in 1) how=cleanup ;; *) how=destroy ;; esac ;;
    esac
    cleanup_by "$how" "$name" "$@"
    leftovers "kill at $step, then $how"
    echo "$step: killed, left $left; $how: $(grep -m 1 'cleaned up' "$HARNESS_OUT/cleanup.$name.log")" >> "$HARNESS_OUT/steps.results"
    i=$((i + 1))
done
metric steps_s "$(elapsed "$t0")"


metric cleanup_max_s "$cleanup_max"
evidence "$HARNESS_OUT/steps.results"
note "$(wc -l < "$HARNESS_OUT/steps.results") kills, each cleaned up with nothing left"
pass

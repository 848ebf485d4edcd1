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
# tested the points the issue names first). The steps after pygrub run in batches of four
# creates at once (run_batch, below); a record, a domain and a QEMU are looked for by the
# killed pid and the guest's name, and "nothing left" is checked after each batch.
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
    xs_unchanged "$1" "$_tag"
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
# The steps in batches of four (the guide's "several guests in one dom0": a kill and its
# cleanup are mostly process starts, and dom0 has two vcpus): the four creates run at once,
# each until its own step, and are killed; what each left is checked by its pid and name;
# the destroys and next creates of the batch run at once, then one `pvbuild cleanup`
# (which sweeps every dead record) for the batch's cleanup steps, which must report each of
# them; then nothing may be left. A batch of one kill per step took 7-9 s a kill
# (2026-12-07); the batch's leftover check names the batch.
batch=4
i=0
# run_batch STEP...: the batch's kills, checks and cleanups.
run_batch() {
    _steps="$*"
    for _s in $_steps; do
        case $_s in *[!a-z0-9-]*) fail "step name '$_s' is not a plain word" ;; esac
        truncate -s 4M "$HARNESS_OUT/kc-$_s-disk.img" || fail "cannot make kc-$_s-disk.img"
        PVBUILD_TEST_STOP_AT=$_s "$pvb" create $(kc_args "$_s") > "$HARNESS_OUT/create.kill-at-$_s.log" 2>&1 &
        eval "kpid_$(tag "$_s")=$!"
    done
    _deadline=$(($(date +%s) + 90))
    for _s in $_steps; do
        _log=$HARNESS_OUT/create.kill-at-$_s.log
        _pid=$(get kpid_$(tag "$_s"))
        until grep -q "test hook: stopped at $_s " "$_log" 2>/dev/null; do
            if ! kill -0 "$_pid" 2>/dev/null; then
                wait "$_pid"
                fail "kill at $_s: pvbuild create ended (status $?) before reaching the step: $(tail -n 2 "$_log" | paste -sd ' ')"
            fi
            [ "$(date +%s)" -lt "$_deadline" ] || fail "kill at $_s: pvbuild never stopped there in 90 s: $(tail -n 2 "$_log" | paste -sd ' ')"
            sleep 0.1
        done
        _hpid=$(sed -n "s/.*test hook: stopped at $_s (pid \([0-9]*\)).*/\1/p" "$_log" | head -n 1)
        [ "$_hpid" = "$_pid" ] || note "kill at $_s: the hook says pid $_hpid, the shell started $_pid"
    done
    for _s in $_steps; do
        _pid=$(get kpid_$(tag "$_s"))
        kill -9 "$_pid" || fail "kill at $_s: kill -9 $_pid failed"
        wait "$_pid" 2>/dev/null
    done
    # What each kill left: its record always; a domain once Xen made one (named in
    # xenstore from the step `xenstore` on: before it, counted); a QEMU when killed while it
    # started.
    ps_snap
    _nd=$(ndomains)
    _want=0
    for _s in $_steps; do
        _pid=$(get kpid_$(tag "$_s"))
        _left="record=[$(cd "$journal_dir" && ls -d create-"$_pid"-* 2>/dev/null | paste -sd ' ')] domains=$_nd qemu=[$(grep -e "-name kc-$_s " "$HARNESS_OUT/ps" | grep -e '-xen-domid' | awk '{ print $1 }' | paste -sd ' ')]"
        ls "$journal_dir"/create-"$_pid"-* > /dev/null 2>&1 || fail "kill at $_s: no crash-safety record of pid $_pid in $journal_dir ($_left)"
        case $_s in compat | create-domain) ;; *) _want=$((_want + 1)) ;; esac
        if [ "$_s" = device-model-spawned ] && ! grep -e "-name kc-$_s " "$HARNESS_OUT/ps" | grep -q -e '-xen-domid'; then
            fail "kill at $_s: no QEMU left by the kill ($_left)"
        fi
        eval "left_$(tag "$_s")=\$_left"
    done
    [ "$_nd" -ge "$_want" ] || fail "kills at $_steps: $_nd domains left, want at least $_want (one per kill past create-domain), so not everything was tested"
    # The cleanups: destroys and next creates at once, then one sweep.
    _sweep=
    for _s in $_steps; do
        case $_s in
            build | device-model-spawned) _how=create ;;
            *) case $((i % 3)) in 1) _how=cleanup ;; *) _how=destroy ;; esac ;;
        esac
        i=$((i + 1))
        eval "how_$(tag "$_s")=$_how"
        _clog=$HARNESS_OUT/cleanup.kc-$_s.log
        case $_how in
            destroy) "$pvb" destroy "kc-$_s" > "$_clog" 2>&1 & ;;
            create) { "$pvb" create -p $(kc_args "$_s") && "$pvb" destroy "kc-$_s"; } > "$_clog" 2>&1 & ;;
            cleanup) _sweep="$_sweep $_s"; continue ;;
        esac
        eval "cpid_$(tag "$_s")=$!"
    done
    _t=$(now)
    for _s in $_steps; do
        _cpid=$(get cpid_$(tag "$_s"))
        [ -n "$_cpid" ] || continue
        wait "$_cpid" || fail "kc-$_s: pvbuild $(get how_$(tag "$_s")) exited non-zero: $(tail -n 2 "$HARNESS_OUT/cleanup.kc-$_s.log" | paste -sd ' ')"
    done
    if [ -n "$_sweep" ]; then
        "$pvb" cleanup > "$HARNESS_OUT/cleanup.batch.log" 2>&1 || fail "pvbuild cleanup (for$_sweep) exited $?: $(tail -n 2 "$HARNESS_OUT/cleanup.batch.log" | paste -sd ' ')"
        for _s in $_sweep; do
            cp "$HARNESS_OUT/cleanup.batch.log" "$HARNESS_OUT/cleanup.kc-$_s.log"
        done
    fi
    _cs=$(elapsed "$_t")
    cleanup_max=$(awk -v a="$cleanup_max" -v b="$_cs" 'BEGIN { print (b > a) ? b : a }')
    for _s in $_steps; do
        _clog=$HARNESS_OUT/cleanup.kc-$_s.log
        _how=$(get how_$(tag "$_s"))
        if [ "$_how" = create ]; then
            grep -q "created domain" "$_clog" || fail "kc-$_s: the next create did not say it created the domain: $(head -n 2 "$_clog" | paste -sd ' ')"
        fi
        grep -q "cleaned up after a killed create of kc-$_s " "$_clog" ||
            fail "kc-$_s: the $_how did not report cleaning up the killed create: $(head -n 2 "$_clog" | paste -sd ' ')"
    done
    leftovers "kills at $_steps, then their cleanups"
    for _s in $_steps; do
        echo "$_s: killed, left $(get left_$(tag "$_s")); $(get how_$(tag "$_s")): $(grep -m 1 "cleaned up after a killed create of kc-$_s " "$HARNESS_OUT/cleanup.kc-$_s.log")" >> "$HARNESS_OUT/steps.results"
    done
}
# tag STEP: STEP as a shell variable's name part; get VAR: VAR's value (empty when unset).
tag() { printf '%s' "$1" | tr '-' '_'; }
get() { eval "printf '%s' \"\${$1:-}\""; }
# kc_args STEP: the create's arguments for STEP's guest (its own disk image).
kc_args() {
    printf '%s\n' --name "kc-$1" --kernel "$kernel" --ramdisk "$ramdisk" --memory "$memory" --cmdline x \
        --disk "$HARNESS_OUT/kc-$1-disk.img,raw,xvda,w" --vif bridge=xenbr0
}
set -- $steps
while [ $# -gt 0 ]; do
    b=
    n=0
    while [ $# -gt 0 ] && [ $n -lt $batch ]; do
        b="$b $1"
        shift
        n=$((n + 1))
    done
    run_batch $b
done
metric steps_s "$(elapsed "$t0")"


metric cleanup_max_s "$cleanup_max"
evidence "$HARNESS_OUT/steps.results"
note "$(wc -l < "$HARNESS_OUT/steps.results") kills, each cleaned up with nothing left"
pass

# harness-timeout: 900
# pvbuild-dm-restrict: `dm_restrict` and `device_model_user` (issue 13). dom0 gets the
# user xen-qemuuser-shared (as an administrator would make it).
# - `dm_restrict = 1` for a guest with a qdisk is refused before any domain exists (one
#   line naming the key): a QEMU restricted with -xen-domid-restrict loses its xenstore
#   connections, and its PV disk backends need them.
# - Started anyway (PVBUILD_DM_RESTRICT_TRY=1), pvbuild's QEMU must run under that user's
#   uid and gid (/proc/PID/status), have its root in the empty chroot
#   /var/run/xen/qemu-root-D (/proc/PID/root), carry -xen-domid-restrict, libxl's rlimits
#   and its own mount and IPC namespaces; it must not take the disk (else the refusal is
#   wrong), and the failed create must leave no QEMU, chroot, QMP socket, entry or domain.
# - `device_model_user = "xen-qemuuser-shared"` alone: with the image root's (0644), refused
#   before QEMU starts (pvbuild checks access as that user); given the image, refused still
#   while xenstore, /dev/xen/gntdev and /dev/xen/evtchn are root's alone (dom0's default);
#   once the administrator gives the user's group those devices, QEMU runs under that uid
#   and gid with -runas, neither chrooted nor restricted, takes the disk, its uid is
#   recorded as libxl's device-model-kill-uid, and the guest reads the token and writes its
#   line. The devices' modes are restored.
# - `dm_restrict = 1` without disks: the guest is made (no device model), and a disk
#   block-attached later is refused (the recorded dm_restrict), leaving nothing.
# - `device_model_user` naming nobody is refused before any domain exists, naming the key.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbdmr
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
id -u xen-qemuuser-shared > /dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin xen-qemuuser-shared ||
    fail "useradd xen-qemuuser-shared failed"
quid=$(id -u xen-qemuuser-shared)
qgid=$(id -g xen-qemuuser-shared)
note "xen-qemuuser-shared is uid $quid gid $qgid"
token="pvbuild-dmr-$$-$(date +%s)"
img="$HARNESS_OUT/disk.img"
printf 'PVBUILD-DISK-DATA %s\n' "$token" > "$img"
truncate -s 16M "$img"
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.disk"

no_qemu() { ! pgrep -f -- '-xen-domid' > /dev/null 2>&1; }
qemu_log() {
    cp "/var/log/xen/qemu-dm-$1.log" "$HARNESS_OUT/" 2>/dev/null
    evidence "$HARNESS_OUT/qemu-dm-$1.log"
}
no_leftovers() {
    wait_for 30 no_qemu || fail "$1: a device model is still running: $(pgrep -af -- '-xen-domid' | head -n 1)"
    _l=$(xenstore-ls -f /local/domain/0 2>/dev/null | grep -E '/backend/qdisk|/device-model/' | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: xenstore entries left: $_l"
    [ "$(xl list | awk 'NR > 1' | wc -l)" = 1 ] || fail "$1: a domain was left: $(xl list | tail -n 1)"
    _f=$(run_files)
    [ "$_f" = "$files_before" ] || fail "$1: files left in /var/run/xen: $_f (before: $files_before)"
}
# What earlier scenarios left there is not ours to judge.
run_files() { ls -d /var/run/xen/qemu-root-* /var/run/xen/qmp-libxl-* /var/run/xen/qmp-libxenstat-* 2>/dev/null | paste -sd ' '; }
files_before=$(run_files)
ls -l /dev/xen /var/run/xenstored 2>&1 | paste -sd ' ' | sed 's/^/NOTE dom0 devices: /'
no_leftovers "before the first guest"

log="$HARNESS_OUT/pvbuild-create.log"
export LIBXL_DEVICE_MODEL_START_TIMEOUT=40

# observe TAG NAME CFG: `pvbuild -v create -p CFG` in the background; once its QEMU runs,
# records the process (cmdline, ids, root, namespaces, limits, fds) as TAG-*.txt; sets $rc
# to create's exit status and $d to the domain id it had.
observe() {
    _tag=$1
    "$pvb" -v create -p "$3" > "$log.$_tag" 2>&1 &
    _cp=$!
    evidence "$log.$_tag"
    d=
    dmpid=
    _qemu_up() {
        d=$(xl domid "$2" 2>/dev/null)
        [ -n "$d" ] && dmpid=$(xenstore-read "/local/domain/$d/image/device-model-pid" 2>/dev/null) &&
            [ -n "$dmpid" ] && kill -0 "$dmpid" 2> /dev/null
    }
    _done() { ! kill -0 "$_cp" 2>/dev/null; }
    _up_or_done() { _qemu_up "$@" || _done; }
    wait_for 120 _up_or_done "$1" "$2" || fail "$_tag: no device model within 120 s"
    if [ -n "$dmpid" ] && kill -0 "$dmpid" 2>/dev/null; then
        # QEMU changes root and user once it has set itself up, just before it runs.
        _dropped() { awk '/^Uid:/ { exit !($2 != 0) }' "/proc/$dmpid/status" 2>/dev/null; }
        wait_for 30 _dropped || note "$_tag: QEMU $dmpid still has uid 0 after 30 s"
        tr '\0' ' ' < "/proc/$dmpid/cmdline" > "$HARNESS_OUT/$_tag-cmdline.txt"
        grep -E '^(Uid|Gid|Groups)' "/proc/$dmpid/status" > "$HARNESS_OUT/$_tag-status.txt"
        readlink "/proc/$dmpid/root" > "$HARNESS_OUT/$_tag-root.txt"
        cat "/proc/$dmpid/limits" > "$HARNESS_OUT/$_tag-limits.txt"
        for ns in mnt ipc; do
            echo "$ns $(readlink "/proc/$dmpid/ns/$ns") dom0 $(readlink "/proc/self/ns/$ns")"
        done > "$HARNESS_OUT/$_tag-ns.txt"
        ls -l "/proc/$dmpid/fd" > "$HARNESS_OUT/$_tag-fds.txt" 2>&1
        ls -la "/var/run/xen/" > "$HARNESS_OUT/$_tag-run-xen.txt" 2>&1
        for f in cmdline status root ns; do evidence "$HARNESS_OUT/$_tag-$f.txt"; done
        cat "$HARNESS_OUT/$_tag-cmdline.txt" "$HARNESS_OUT/$_tag-status.txt" "$HARNESS_OUT/$_tag-root.txt" "$HARNESS_OUT/$_tag-ns.txt"
    fi
    wait "$_cp"
    rc=$?
    cp "/var/log/xen/qemu-dm-$2.log" "$HARNESS_OUT/$_tag-qemu.log" 2>/dev/null
    evidence "$HARNESS_OUT/$_tag-qemu.log"
    note "$_tag: create -p exited $rc: $(grep -m 1 '^error' "$log.$_tag")"
    note "$_tag: QEMU log: $(tail -n 3 "$HARNESS_OUT/$_tag-qemu.log" 2>/dev/null | paste -sd ' ')"
}
# ids_are TAG UID GID: QEMU's real, effective, saved and file-system ids.
ids_are() {
    [ "$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "$HARNESS_OUT/$1-status.txt")" = "$2 $2 $2 $2" ] ||
        fail "$1: QEMU's uids are $(grep Uid "$HARNESS_OUT/$1-status.txt"), not $2"
    [ "$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "$HARNESS_OUT/$1-status.txt")" = "$3 $3 $3 $3" ] ||
        fail "$1: QEMU's gids are $(grep Gid "$HARNESS_OUT/$1-status.txt"), not $3"
}

# The image QEMU serves, in dom0's tmpfs (the share's 9p export would add its own
# permission rules); root's for now.
uimg=/tmp/pvbdmr-user.img
cp "$img" "$uimg" && chmod 0644 "$uimg" || fail "copying the image failed"

# dm_restrict = 1 with a disk QEMU would serve: refused before any domain exists.
cfg="$HARNESS_OUT/$name.cfg"
pv_cfg "$name" "$cmdline" "disk = [ 'file:$uimg,xvda,w' ]" 'dm_restrict = 1' > "$cfg"
"$pvb" create -q -p "$cfg" > "$log.refused" 2>&1 && fail "create with dm_restrict and a qdisk succeeded"
evidence "$log.refused"
[ "$(wc -l < "$log.refused")" = 1 ] && grep -q '^error: dm_restrict: a device model restricted' "$log.refused" ||
    fail "the refusal said: $(paste -sd ' ' < "$log.refused")"
no_leftovers "after the refused dm_restrict"

# Started anyway (PVBUILD_DM_RESTRICT_TRY=1): QEMU as xen-qemuuser-shared, in the empty
# chroot, restricted to its domain, with libxl's namespaces and rlimits; and, as the
# refusal says, it never serves the disk: the create fails after the start timeout, and
# leaves nothing.
# (The user gets the image: pvbuild checks that it can open it before it starts QEMU.)
chown xen-qemuuser-shared "$uimg" && chmod 0600 "$uimg" || fail "chown failed"
# (A 20 s start limit here, not 40: a QEMU that serves the disk takes it within 2-10 s in
# these runs, pvbuild-disk's dm_ready_s.)
export PVBUILD_DM_RESTRICT_TRY=1 LIBXL_DEVICE_MODEL_START_TIMEOUT=20
observe restrict "$name" "$cfg"
unset PVBUILD_DM_RESTRICT_TRY
export LIBXL_DEVICE_MODEL_START_TIMEOUT=40
[ -s "$HARNESS_OUT/restrict-cmdline.txt" ] || fail "restrict: QEMU was never seen running"
[ "$rc" = 0 ] && fail "a QEMU restricted with -xen-domid-restrict served the disk: the refusal is wrong"
grep -qE '^error: .*device.model' "$log.restrict" || fail "restrict: create failed otherwise: $(grep -m 1 '^error' "$log.restrict")"
grep -q -- ' -xen-domid-restrict ' "$HARNESS_OUT/restrict-cmdline.txt" || fail "QEMU was started without -xen-domid-restrict"
grep -q -- " -chroot /var/run/xen/qemu-root-$d " "$HARNESS_OUT/restrict-cmdline.txt" || fail "QEMU was started without -chroot"
grep -q -- " -runas xen-qemuuser-shared" "$HARNESS_OUT/restrict-cmdline.txt" || fail "QEMU was started without -runas"
ids_are restrict "$quid" "$qgid"
# /var/run is a symlink to /run: the kernel shows the resolved path.
case "$(cat "$HARNESS_OUT/restrict-root.txt")" in
/run/xen/qemu-root-$d | /var/run/xen/qemu-root-$d) ;;
*) fail "QEMU's root is $(cat "$HARNESS_OUT/restrict-root.txt")" ;;
esac
grep -qE '^Max file size +262144 +262144' "$HARNESS_OUT/restrict-limits.txt" || fail "no 256 KiB file size limit: $(grep 'file size' "$HARNESS_OUT/restrict-limits.txt")"
grep -qE '^Max core file size +0 +0' "$HARNESS_OUT/restrict-limits.txt" || fail "core dumps allowed"
awk '{ exit !($2 != $4) }' "$HARNESS_OUT/restrict-ns.txt" || fail "QEMU shares a namespace with dom0: $(paste -sd ' ' "$HARNESS_OUT/restrict-ns.txt")"
[ "$rc" = 0 ] && "$pvb" destroy "$name" >> "$log.restrict" 2>&1
no_leftovers "after the dm_restrict create"

# device_model_user alone: QEMU as that user, neither chrooted nor restricted.
chown root "$uimg" && chmod 0644 "$uimg" || fail "chown failed"
pv_cfg "${name}u" "$cmdline" "disk = [ 'file:$uimg,xvda,w' ]" 'device_model_user = "xen-qemuuser-shared"' > "$cfg.user"
# The image is root's (0644): QEMU, no longer root when its xen-bus opens the disk, could not
# open it read-write; pvbuild checks as that user and refuses before it starts QEMU.
"$pvb" create -p "$cfg.user" > "$log.noaccess" 2>&1 && fail "create with a device_model_user that cannot write the image succeeded"
evidence "$log.noaccess"
grep -q "^error: device-model: device_model_user: the device model's user xen-qemuuser-shared (uid $quid) cannot open $uimg read-write" "$log.noaccess" ||
    fail "the access refusal said: $(paste -sd ' ' < "$log.noaccess")"
no_leftovers "after the refused access"

# Given the image (as libxl's documentation asks of the administrator), QEMU's xen-bus
# would still open xenstore, /dev/xen/gntdev and /dev/xen/evtchn as that user, which are
# root's alone on this dom0: refused before QEMU starts too.
chown xen-qemuuser-shared "$uimg" && chmod 0600 "$uimg" || fail "chown failed"
"$pvb" create -p "$cfg.user" > "$log.nodev" 2>&1 && fail "create with a device_model_user that cannot open /dev/xen succeeded"
evidence "$log.nodev"
grep -q "^error: device-model: device_model_user: the device model's user xen-qemuuser-shared (uid $quid) cannot open /dev/xen/" "$log.nodev" ||
    fail "the device refusal said: $(paste -sd ' ' < "$log.nodev")"
no_leftovers "after the refused devices"
# The administrator gives the user's group the devices (undone below): QEMU as that user
# serves the disk: paused, its ids; then the guest boots, reads the token and writes its line.
xdevs="/dev/xen/xenbus /dev/xen/gntdev /dev/xen/evtchn"
trap 'chgrp root $xdevs 2>/dev/null; chmod 0600 $xdevs 2>/dev/null' EXIT
# shellcheck disable=SC2086
chgrp xen-qemuuser-shared $xdevs && chmod 0660 $xdevs || fail "granting the devices failed"
# shellcheck disable=SC2086
ungrant() { chgrp root $xdevs; chmod 0600 $xdevs; }
observe user "${name}u" "$cfg.user"
[ -s "$HARNESS_OUT/user-cmdline.txt" ] || fail "user: QEMU was never seen running"
[ "$rc" = 0 ] || fail "user: create -p exited $rc: $(grep -m 1 '^error' "$log.user")"
grep -q -- " -runas xen-qemuuser-shared" "$HARNESS_OUT/user-cmdline.txt" || fail "QEMU was started without -runas"
grep -q -- '-xen-domid-restrict' "$HARNESS_OUT/user-cmdline.txt" && fail "device_model_user alone restricted QEMU"
ids_are user "$quid" "$qgid"
[ "$(cat "$HARNESS_OUT/user-root.txt")" = / ] || fail "device_model_user alone chrooted QEMU"
kuid=$(xenstore-read "/local/domain/$d/image/device-model-kill-uid" 2>/dev/null)
[ "$kuid" = "$quid" ] || fail "device-model-kill-uid is '$kuid', not $quid"
[ "$(xenstore-read "/local/domain/0/backend/qdisk/$d/51712/sectors" 2>/dev/null)" = 32768 ] ||
    fail "QEMU as $quid did not take the disk: $(tail -n 2 "$HARNESS_OUT/user-qemu.log" | paste -sd ' ')"
"$pvb" destroy "${name}u" >> "$log.user" 2>&1 || fail "pvbuild destroy exited $?"
no_leftovers "after destroying the device_model_user guest"
t0=$(now)
create_wait_up "${name}u" "$cfg.user" "$log" has_marker "the marker show"
metric user_marker_s "$(elapsed "$t0")"
check_marker_and_poweroff "${name}u" "$cmdline" "$pid" "$log"
qemu_log "${name}u"
clog() { tr -d '\r' < "$(console_log "${name}u")"; }
clog | grep -q "PVBUILD-DISK-READ PVBUILD-DISK-DATA $token" ||
    fail "the guest did not read the disk: $(clog | grep -m 1 PVBUILD-DISK)"
clog | grep -q "PVBUILD-DISK-WROTE" || fail "the guest did not write the disk: $(clog | grep -m 1 -E 'PVBUILD-DISK-WRITE|Segmentation')"
written=$(dd if="$uimg" bs=512 skip=8 count=1 2>/dev/null | tr -d '\0' | head -n 1)
[ "$written" = "PVBUILD-DISK-WRITTEN $HARNESS_GUEST_KVER" ] || fail "the guest's write is not in the image: '$written'"
no_leftovers "after the device_model_user guest powered off"
ungrant
rm -f "$uimg"

# dm_restrict = 1 without disks: nothing for QEMU to serve, the guest is made; a disk
# block-attached later would need a device model, which the recorded dm_restrict refuses.
pv_cfg "${name}n" x 'dm_restrict = 1' > "$cfg.nodisk"
"$pvb" create -p "$cfg.nodisk" > "$log.nodisk" 2>&1 || fail "create with dm_restrict and no disk exited $?: $(grep -m 1 '^error' "$log.nodisk")"
evidence "$log.nodisk"
dn=$(xl domid "${name}n")
[ "$(xenstore-read "/libxl/$dn/dm-restrict" 2>/dev/null)" = 1 ] || fail "dm_restrict is not recorded for domain $dn"
"$pvb" block-attach "${name}n" "$img,raw,xvda,w" > "$log.attach" 2>&1 && fail "block-attach to a dm_restrict domain started a device model"
evidence "$log.attach"
grep -q '^error: .*dm_restrict: a device model restricted' "$log.attach" || fail "the attach said: $(paste -sd ' ' < "$log.attach")"
no_qemu || fail "the refused attach left a device model: $(pgrep -af -- '-xen-domid' | head -n 1)"
xenstore-read "/local/domain/$dn/device/vbd/51712/backend" > /dev/null 2>&1 && fail "the refused attach left a frontend"
"$pvb" destroy "${name}n" >> "$log.nodisk" 2>&1 || fail "pvbuild destroy exited $?"
no_leftovers "after the dm_restrict guest without disks"

# A device_model_user that does not exist: refused before any domain, naming the key.
pv_cfg "${name}x" x "disk = [ 'file:$img,xvda,w' ]" 'device_model_user = "pvbuild-no-such-user"' > "$cfg.u"
"$pvb" create -p "$cfg.u" > "$log.u" 2>&1 && fail "create with a missing device_model_user succeeded"
evidence "$log.u"
grep -q '^error: .*device_model_user: no user "pvbuild-no-such-user"' "$log.u" || fail "refusal said: $(head -n 2 "$log.u" | paste -sd ' ')"
no_leftovers "after the refused device_model_user"

pass

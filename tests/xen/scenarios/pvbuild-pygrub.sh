# pvbuild-pygrub: `bootloader = "pygrub"` as an xl user writes it. The guest's disk is a
# raw ext4 image (made here by mkfs.ext4 -d, no mount) holding Debian's kernel, the
# harness ramdisk and a grub.cfg whose default entry (the second of two) carries the
# command line. pvbuild runs Xen's real pygrub on the image before the domain exists,
# boots what it extracted, and the guest's marker must show the grub.cfg's command
# line: proof that kernel, ramdisk and arguments all came through the bootloader.
# Then a grub.cfg whose menu waits 10 minutes for a choice: without -c nobody can
# answer, so pvbuild must kill pygrub at --bootloader-timeout and leave no domain,
# process or directory behind; and so must Ctrl-C (SIGINT) while that menu waits.
# (Not `timeout=-1`: pygrub 0.7 ends a -1 timeout after
# one second, as `mytime >= timeout` holds at once.)
# pygrub runs restricted by default (issue 13, XSA-443): the first boot runs it as the
# unprivileged user xen-qemuuser-shared (made here, as an administrator would), and a watcher
# samples the uid of every pygrub process: the one that reads the disk must be that user's,
# not root's. A kernel larger than --bootloader-max-size is refused cleanly (no domain, no
# process, no directory). The menu tests run pygrub unrestricted (--bootloader-as-root):
# restricted, it is --quiet and shows no menu.
# Metrics: pygrub_create_s (till the guest's marker), bootloader_s (pvbuild's own
# "bootloader chose" line: from its start to pygrub's result).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbpygrub
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
mkfs=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
[ -x "$mkfs" ] || fail "no mkfs.ext4 in dom0"
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.via=pygrub"

# make_disk DIR TIMEOUT: DIR/disk.img with the kernel, the ramdisk and a grub.cfg.
make_disk() {
    mkdir -p "$1/root/boot/grub"
    cp "$HARNESS_GUEST_KERNEL" "$1/root/boot/vmlinuz"
    cp "$HARNESS_GUEST_RAMDISK" "$1/root/boot/initrd.gz"
    cat > "$1/root/boot/grub/grub.cfg" <<CFG
set default=1
set timeout=$2
menuentry 'wrong entry' {
	linux /boot/vmlinuz pvbuild.via=wrong-entry
	initrd /boot/initrd.gz
}
menuentry 'pvbuild' {
	linux /boot/vmlinuz $cmdline
	initrd /boot/initrd.gz
}
CFG
    "$mkfs" -q -F -d "$1/root" "$1/disk.img" 48M || fail "mkfs.ext4 failed"
}

make_disk "$HARNESS_OUT/d1" 0
# The unprivileged user pygrub drops to (dom0's root is an overlay: this stays in this run).
id -u xen-qemuuser-shared > /dev/null 2>&1 ||
    useradd --system --no-create-home --shell /usr/sbin/nologin xen-qemuuser-shared ||
    fail "useradd xen-qemuuser-shared failed"
bl_uid=$(id -u xen-qemuuser-shared)
# watch_pygrub FILE: until killed, appends the real uid of each pygrub process seen to FILE.
watch_pygrub() {
    while :; do
        ps -eo uid=,args= | awk '/bin\/pygrub/ && !/awk/ { print $1 }' >> "$1"
        sleep 0.2
    done
}
cfg="$HARNESS_OUT/$name.cfg"
cat > "$cfg" <<CFG
name = "$name"
type = "pv"
bootloader = "pygrub"
disk = [ 'file:$HARNESS_OUT/d1/disk.img,xvda,w' ]
memory = $HARNESS_GUEST_MEMORY
on_poweroff = "destroy"
CFG
log="$HARNESS_OUT/pvbuild-create.log"
uids="$HARNESS_OUT/pygrub-uids.txt"
: > "$uids"
watch_pygrub "$uids" &
watcher=$!
t0=$(now)
# Restricted, pygrub forks, unshares and runs mount(8) three times: slower under TCG than the
# default 60 s allows on a loaded host.
CREATE_EXTRA="--bootloader-timeout 200" create_wait_up "$name" "$cfg" "$log" has_marker "the marker show"
metric pygrub_create_s "$(elapsed "$t0")"
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
seen=$(sort -un "$uids" | paste -sd ' ')
note "pygrub processes ran as uids: $seen (xen-qemuuser-shared is $bl_uid)"
grep -qx "$bl_uid" "$uids" || fail "pygrub never ran as xen-qemuuser-shared ($bl_uid): uids seen: ${seen:-none}"
bl=$(sed -n 's/.*bootloader chose .* in \([0-9.]*\) s.*/\1/p' "$log" | head -n 1)
[ -n "$bl" ] && metric bootloader_s "$bl"
# The marker must carry the grub.cfg's default entry's command line.
check_marker_and_poweroff "$name" "$cmdline" "$pid" "$log"
# The extracted files were removed.
left=$(ls -d "${TMPDIR:-/tmp}"/pvbuild-bootloader.* 2>/dev/null)
[ -z "$left" ] || fail "bootloader directories left behind: $left"

# A kernel larger than the bound: refused after pygrub, before any domain.
before=$(xl list | wc -l)
"$HARNESS_PVBUILD" create --bootloader-timeout 200 --bootloader-max-size 4m "$cfg" > "$log.big" 2>&1
rc=$?
evidence "$log.big"
[ $rc -ne 0 ] || fail "pvbuild create took a kernel larger than --bootloader-max-size 4m"
grep -q '^error: bootloader .*its kernel .* more than the bound of 4194304 bytes' "$log.big" ||
    fail "oversized kernel: unexpected message: $(head -n 2 "$log.big" | tr -d '\r' | paste -sd ' ')"
[ "$(xl list | wc -l)" = "$before" ] || fail "a domain was left behind by the oversized kernel: $(xl list | tail -n 1)"
pgrep -f bin/pygrub > /dev/null && fail "pygrub is still running: $(pgrep -af bin/pygrub)"
left=$(ls -d "${TMPDIR:-/tmp}"/pvbuild-bootloader.* 2>/dev/null)
[ -z "$left" ] || fail "bootloader directories left behind by the oversized kernel: $left"

# A menu that waits 600 s and nobody attached: killed at the deadline. Unrestricted: a
# restricted pygrub is --quiet and boots the default entry at once.
make_disk "$HARNESS_OUT/d2" 600
sed "s|d1/disk.img|d2/disk.img|; s|name = \"$name\"|name = \"${name}2\"|" "$cfg" > "$cfg.2"
echo 'bootloader_restrict = 0' >> "$cfg.2"
t1=$(now)
"$HARNESS_PVBUILD" create --bootloader-timeout 20 "$cfg.2" > "$log.2" 2>&1
rc=$?
evidence "$log.2"
metric timeout_refusal_s "$(elapsed "$t1")"
[ $rc -ne 0 ] || fail "pvbuild create succeeded with a bootloader that never finishes"
grep -q '^error: bootloader .* did not finish within 20 s' "$log.2" ||
    fail "unexpected message: $(head -n 2 "$log.2" | tr -d '\r' | paste -sd ' ')"
[ "$(xl list | wc -l)" = "$before" ] || fail "a domain was left behind: $(xl list | tail -n 1)"
pgrep -f bin/pygrub > /dev/null && fail "pygrub is still running: $(pgrep -af bin/pygrub)"
left=$(ls -d "${TMPDIR:-/tmp}"/pvbuild-bootloader.* 2>/dev/null)
[ -z "$left" ] || fail "bootloader directories left behind: $left"

# Ctrl-C while pygrub's menu waits: pvbuild kills pygrub, removes its directory, exits.
"$HARNESS_PVBUILD" create "$cfg.2" > "$log.3" 2>&1 &
pid=$!
evidence "$log.3"
pygrub_runs() { pgrep -f bin/pygrub > /dev/null; }
wait_for 60 pygrub_runs || fail "pygrub did not start within 60 s: $(head -n 2 "$log.3" | paste -sd ' ')"
sleep 2
kill -INT "$pid"
create_done() { ! kill -0 "$pid" 2>/dev/null; }
wait_for 20 create_done || fail "pvbuild create still running 20 s after SIGINT"
wait "$pid"
rc=$?
[ $rc -ne 0 ] && grep -q '^error: bootloader .*: interrupted' "$log.3" ||
    fail "after SIGINT: exit $rc, $(head -n 2 "$log.3" | tr -d '\r' | paste -sd ' ')"
[ "$(xl list | wc -l)" = "$before" ] || fail "a domain was left behind after SIGINT: $(xl list | tail -n 1)"
pgrep -f bin/pygrub > /dev/null && fail "pygrub is still running after SIGINT: $(pgrep -af bin/pygrub)"
left=$(ls -d "${TMPDIR:-/tmp}"/pvbuild-bootloader.* 2>/dev/null)
[ -z "$left" ] || fail "bootloader directories left behind after SIGINT: $left"
pass

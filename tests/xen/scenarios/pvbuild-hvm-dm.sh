# harness-timeout: 1200
# harness-opt-in
# pvbuild-hvm-dm (issue 14): pvbuild's HVM device model (host/src/devmodel/hvm.rs) started
# against a real paused HVM domain, before pvbuild's own HVM create uses it. xl makes the
# domain (`xl create -p`) and starts its QEMU; that QEMU's argv is kept and the QEMU killed;
# then host/examples/hvm_dm.rs starts pvbuild's QEMU for the same config and domain.
#  1. hvmdmboot (direct boot, 2 vcpus, serial pty, vga none, vnc 0): pvbuild's argv must equal
#     xl's byte for byte; `running` and libxl's QMP post-config (serial/0/tty) must be there;
#     unpaused, the guest's marker must show on that pty; then `hvm_dm stop` must leave no
#     QEMU, no device-model/<domid> and no QMP socket.
#  2. hvmdmargs (vnc on by default, boot order, an IDE disk and a CD-ROM, maxvcpus; pvbuild's
#     QEMU with the cirrus card, its ROM from package seabios, where xl's had none):
#     first a start that fails (QEMU exits: its serial file cannot be made) must say so and
#     leave no QEMU and no QMP socket; then argv equal to xl's plus the card, `running`,
#     stopped (not booted).
# Needs `cargo build -p pvbuild --example hvm_dm` (the harness builds only pvbuild).
# dom0's lo is brought up (libxl's default VNC server listens on 127.0.0.1; down, QEMU fails
# to bind, xl's and pvbuild's alike); disks are qdisk (`backendtype=qdisk`): blkback's file
# path needs the block script's loop devices.
# Metrics: dm_running_s (pvbuild's start till running and post-config), marker_s (unpause
# till the marker on the serial pty).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
ex=$HARNESS_REPO/target/debug/examples/hvm_dm
[ -x "$ex" ] || fail "no $ex: cargo build -p pvbuild --example hvm_dm"
ip link set lo up || fail "cannot bring lo up"
img=/tmp/hvmdm-proof.img
iso=/tmp/hvmdm-proof.iso
truncate -s 8M "$img" "$iso" || fail "cannot make disk images"
# The marker on the emulated serial port: ttyS0 the only console.
cmdline="console=ttyS0 quiet"
cfg_common() {
    cat <<CFG
name = "$1"
type = "hvm"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "$cmdline"
memory = $HARNESS_GUEST_MEMORY
on_poweroff = "preserve"
on_reboot = "destroy"
on_crash = "preserve"
CFG
}
{ cfg_common hvmdmboot; printf 'vcpus = 2\nserial = "pty"\nvga = "none"\nvnc = 0\n'; } > "$HARNESS_OUT/hvmdmboot.cfg"
# xl's domain for the second config has no card but keeps libxl's 8 MiB of video memory out
# of the guest's RAM (vga none, videoram 8); pvbuild's QEMU gets the cirrus card and fills it.
# (A card's video RAM that xl's QEMU already populated cannot be populated again by a second
# QEMU: "xen: failed to populate ram", Xen's "Over-allocation".)
{ cfg_common hvmdmargs; cat <<CFG; } > "$HARNESS_OUT/hvmdmargs.cfg"
vcpus = 1
maxvcpus = 2
vga = "none"
videoram = 8
boot = "dc"
disk = [ 'format=raw,vdev=hda,access=rw,backendtype=qdisk,target=$img', 'format=raw,vdev=hdc,access=ro,devtype=cdrom,backendtype=qdisk,target=$iso' ]
CFG
sed -e 's|^vga = .*|vga = "cirrus"|' -e '/^videoram/d' "$HARNESS_OUT/hvmdmargs.cfg" > "$HARNESS_OUT/hvmdmargs-pvbuild.cfg"

# take_over NAME [failfirst]: xl create -p NAME, keep xl's QEMU argv, kill that QEMU, start
# pvbuild's for NAME-pvbuild.cfg if there is one, else NAME.cfg; sets domid and pid (pvbuild's
# QEMU). With failfirst, a start that must fail comes first.
take_over() {
    pvcfg=$HARNESS_OUT/$1.cfg
    [ -e "$HARNESS_OUT/$1-pvbuild.cfg" ] && pvcfg=$HARNESS_OUT/$1-pvbuild.cfg
    xl -vvv create -p "$HARNESS_OUT/$1.cfg" > "$HARNESS_OUT/$1.xl.log" 2>&1 ||
        fail "$1: xl create -p exited $?: $(tail -n 3 "$HARNESS_OUT/$1.xl.log" | paste -sd ' ')"
    domid=$(xl domid "$1") || fail "$1: no domid"
    xlpid=$(xenstore-read "/local/domain/$domid/image/device-model-pid") || fail "$1: no device-model-pid"
    tr '\0' '\n' < "/proc/$xlpid/cmdline" > "$HARNESS_OUT/$1.xl-argv"
    kill "$xlpid"
    wait_for 30 sh -c "! kill -0 $xlpid 2>/dev/null" || fail "$1: xl's QEMU $xlpid survives SIGTERM"
    # What that QEMU and libxl's post-config left, so that pvbuild's must make it again.
    xenstore-rm "/local/domain/0/device-model/$domid" 2>/dev/null
    xenstore-rm "/local/domain/$domid/serial" 2>/dev/null
    xenstore-rm "/local/domain/$domid/image/device-model-pid" 2>/dev/null
    if [ "$2" = failfirst ]; then
        # A QEMU that cannot start (its serial file's directory is missing): one error line,
        # non-zero, no QEMU of this domain left and no QMP socket.
        sed 's|^vga = .*|serial = "file:/nonexistent-dir/s.log"\n&|' "$pvcfg" > "$HARNESS_OUT/$1-fail.cfg"
        if "$ex" start "$HARNESS_OUT/$1-fail.cfg" "$domid" > "$HARNESS_OUT/$1-fail.log" 2>&1; then
            fail "$1: a QEMU that cannot open its serial file was reported started"
        fi
        grep -q '^error: device model exited' "$HARNESS_OUT/$1-fail.log" ||
            fail "$1: unexpected failure: $(tail -n 2 "$HARNESS_OUT/$1-fail.log" | paste -sd ' ')"
        note "$1: failed start reported as: $(grep '^error' "$HARNESS_OUT/$1-fail.log" | cut -c1-200)"
        for p in $(pgrep -f xen-qemu-system-i386); do
            tr '\0' ' ' < "/proc/$p/cmdline" | grep -q -- "-xen-domid $domid " && fail "$1: QEMU $p of the failed start still runs"
        done
        [ ! -e "/var/run/xen/qmp-libxl-$domid" ] || fail "$1: QMP socket left by the failed start"
    fi
    t0=$(now)
    "$ex" start "$pvcfg" "$domid" > "$HARNESS_OUT/$1.pvbuild.log" 2>&1 ||
        fail "$1: hvm_dm start exited $?: $(tail -n 3 "$HARNESS_OUT/$1.pvbuild.log" | paste -sd ' ')"
    metric "${1}_dm_running_s" "$(elapsed "$t0")"
    pid=$(sed -n 's/^pid //p' "$HARNESS_OUT/$1.pvbuild.log")
    [ -n "$pid" ] && proc_alive "$pid" || fail "$1: pvbuild's QEMU ($pid) is not running"
    tr '\0' '\n' < "/proc/$pid/cmdline" > "$HARNESS_OUT/$1.pvbuild-argv"
    # The argv xl's QEMU had, with the cirrus card where libxl puts it when pvbuild's has one.
    if grep -q '^vga = "cirrus"' "$pvcfg" && ! grep -q '^vga = "cirrus"' "$HARNESS_OUT/$1.cfg"; then
        awk '$0 == "-boot" { print "-device"; print "cirrus-vga,vgamem_mb=8" } { print }' "$HARNESS_OUT/$1.xl-argv"
    else
        cat "$HARNESS_OUT/$1.xl-argv"
    fi > "$HARNESS_OUT/$1.expected-argv"
    diff "$HARNESS_OUT/$1.expected-argv" "$HARNESS_OUT/$1.pvbuild-argv" > "$HARNESS_OUT/$1.argv.diff" ||
        fail "$1: pvbuild's QEMU argv differs from xl's: $(head -n 6 "$HARNESS_OUT/$1.argv.diff" | paste -sd ' ')"
    metric "${1}_argv_identical" "$(wc -l < "$HARNESS_OUT/$1.expected-argv")"
    [ "$(xenstore-read "/local/domain/0/device-model/$domid/state")" = running ] || fail "$1: state is not running"
    [ "$(xenstore-read "/local/domain/$domid/image/device-model-pid")" = "$pid" ] || fail "$1: device-model-pid is not $pid"
    tr '\0' '\n' < "/proc/$pid/environ" | grep -E '^XEN_' > "$HARNESS_OUT/$1.env"
    grep -qx "XEN_DOMAIN_ID=$domid" "$HARNESS_OUT/$1.env" || fail "$1: no XEN_DOMAIN_ID=$domid in QEMU's environment"
}
# keep_log NAME: QEMU's log, beside the scenario's.
keep_log() { cp "/var/log/xen/qemu-dm-$1.log" "$HARNESS_OUT/$1.qemu.log" 2>/dev/null; }
# stop_dm NAME: hvm_dm stop, then nothing of the QEMU is left; xl destroy.
stop_dm() {
    keep_log "$1"
    "$ex" stop "$domid" > "$HARNESS_OUT/$1.stop.log" 2>&1 || fail "$1: hvm_dm stop exited $?: $(tail -n 2 "$HARNESS_OUT/$1.stop.log" | paste -sd ' ')"
    ! proc_alive "$pid" || fail "$1: QEMU $pid still runs after stop"
    ! xenstore-exists "/local/domain/0/device-model/$domid" 2>/dev/null || fail "$1: device-model/$domid left after stop"
    [ ! -e "/var/run/xen/qmp-libxl-$domid" ] || fail "$1: /var/run/xen/qmp-libxl-$domid left after stop"
    xl destroy "$1" || fail "$1: xl destroy exited $?"
}

take_over hvmdmboot
tty=$(xenstore-read "/local/domain/$domid/serial/0/tty") || fail "no serial/0/tty: the QMP post-config did not write it"
[ -c "$tty" ] || fail "serial/0/tty $tty is not a character device"
serial_log=$HARNESS_OUT/hvmdmboot-serial.log
cat "$tty" > "$serial_log" 2>&1 &
catpid=$!
t0=$(now)
xl unpause hvmdmboot || fail "xl unpause exited $?"
got() { grep -q PVBUILD-GUEST-OK "$serial_log" 2>/dev/null; }
wait_for 600 got || { keep_log hvmdmboot; fail "no marker on the serial pty within 600 s: $(tail -n 3 "$serial_log" | tr -d '\r' | paste -sd ' ')"; }
metric marker_s "$(elapsed "$t0")"
evidence "$serial_log"
want="PVBUILD-GUEST-OK $HARNESS_GUEST_KVER $cmdline"
gotline=$(tr -d '\r' < "$serial_log" | grep -m 1 PVBUILD-GUEST-OK)
[ "$gotline" = "$want" ] || fail "marker is '$gotline', expected '$want'"
kill "$catpid" 2>/dev/null
stop_dm hvmdmboot

take_over hvmdmargs failfirst
stop_dm hvmdmargs
pass

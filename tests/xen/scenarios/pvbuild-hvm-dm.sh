# harness-timeout: 900
# harness-opt-in
# pvbuild-hvm-dm (issue 14): pvbuild's HVM device model (host/src/devmodel/hvm.rs) started
# against a real paused HVM domain, before pvbuild's own HVM create uses it. xl makes the
# domain (`xl create -p`) and starts its QEMU; that QEMU's argv is kept and the QEMU killed;
# then host/examples/hvm_dm.rs starts pvbuild's QEMU for the same config and domain.
#  1. hvmdmboot (direct boot, 2 vcpus, serial pty, vga none, vnc 0): pvbuild's argv must equal
#     xl's byte for byte; `running` and libxl's QMP post-config (serial/0/tty) must be there;
#     unpaused, the guest's marker must show on that pty; then `hvm_dm stop` must leave no
#     QEMU, no device-model/<domid> and no QMP socket.
#  2. hvmdmargs (stdvga, vnc on by default, boot order, an IDE disk and a CD-ROM, maxvcpus):
#     argv equal to xl's, `running`, stopped again (not booted).
# Needs `cargo build -p pvbuild --example hvm_dm` (the harness builds only pvbuild).
# Metrics: dm_running_s (pvbuild's start till running and post-config), marker_s (unpause
# till the marker on the serial pty).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
ex=$HARNESS_REPO/target/debug/examples/hvm_dm
[ -x "$ex" ] || fail "no $ex: cargo build -p pvbuild --example hvm_dm"
img=/tmp/hvmdm-proof.img
iso=/tmp/hvmdm-proof.iso
truncate -s 8M "$img" "$iso" || fail "cannot make disk images"
cfg_common() {
    cat <<CFG
name = "$1"
type = "hvm"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "console=ttyS0 $HARNESS_GUEST_CMDLINE"
memory = $HARNESS_GUEST_MEMORY
on_poweroff = "preserve"
on_reboot = "destroy"
on_crash = "preserve"
CFG
}
{ cfg_common hvmdmboot; printf 'vcpus = 2\nserial = "pty"\nvga = "none"\nvnc = 0\n'; } > "$HARNESS_OUT/hvmdmboot.cfg"
{ cfg_common hvmdmargs; cat <<CFG; } > "$HARNESS_OUT/hvmdmargs.cfg"
vcpus = 1
maxvcpus = 2
vga = "stdvga"
boot = "dc"
disk = [ 'format=raw,vdev=hda,access=rw,target=$img', 'format=raw,vdev=hdc,access=ro,devtype=cdrom,target=$iso' ]
CFG

# take_over NAME: xl create -p NAME, keep xl's QEMU argv, kill that QEMU, start pvbuild's;
# sets domid and pid (pvbuild's QEMU).
take_over() {
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
    t0=$(now)
    "$ex" start "$HARNESS_OUT/$1.cfg" "$domid" > "$HARNESS_OUT/$1.pvbuild.log" 2>&1 ||
        fail "$1: hvm_dm start exited $?: $(tail -n 3 "$HARNESS_OUT/$1.pvbuild.log" | paste -sd ' ')"
    metric "${1}_dm_running_s" "$(elapsed "$t0")"
    pid=$(sed -n 's/^pid //p' "$HARNESS_OUT/$1.pvbuild.log")
    [ -n "$pid" ] && proc_alive "$pid" || fail "$1: pvbuild's QEMU ($pid) is not running"
    tr '\0' '\n' < "/proc/$pid/cmdline" > "$HARNESS_OUT/$1.pvbuild-argv"
    diff "$HARNESS_OUT/$1.xl-argv" "$HARNESS_OUT/$1.pvbuild-argv" > "$HARNESS_OUT/$1.argv.diff" ||
        fail "$1: pvbuild's QEMU argv differs from xl's: $(head -n 6 "$HARNESS_OUT/$1.argv.diff" | paste -sd ' ')"
    metric "${1}_argv_identical" "$(wc -l < "$HARNESS_OUT/$1.xl-argv")"
    [ "$(xenstore-read "/local/domain/0/device-model/$domid/state")" = running ] || fail "$1: state is not running"
    [ "$(xenstore-read "/local/domain/$domid/image/device-model-pid")" = "$pid" ] || fail "$1: device-model-pid is not $pid"
    tr '\0' '\n' < "/proc/$pid/environ" | grep -E '^XEN_' > "$HARNESS_OUT/$1.env"
    grep -qx "XEN_DOMAIN_ID=$domid" "$HARNESS_OUT/$1.env" || fail "$1: no XEN_DOMAIN_ID=$domid in QEMU's environment"
}
# stop_dm NAME: hvm_dm stop, then nothing of the QEMU is left; xl destroy.
stop_dm() {
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
wait_for 480 got || fail "no marker on the serial pty within 480 s: $(tail -n 3 "$serial_log" | tr -d '\r' | paste -sd ' ')"
metric marker_s "$(elapsed "$t0")"
evidence "$serial_log"
want="PVBUILD-GUEST-OK $HARNESS_GUEST_KVER console=ttyS0 $HARNESS_GUEST_CMDLINE"
gotline=$(tr -d '\r' < "$serial_log" | grep -m 1 PVBUILD-GUEST-OK)
[ "$gotline" = "$want" ] || fail "marker is '$gotline', expected '$want'"
kill "$catpid" 2>/dev/null
stop_dm hvmdmboot

take_over hvmdmargs
stop_dm hvmdmargs
pass

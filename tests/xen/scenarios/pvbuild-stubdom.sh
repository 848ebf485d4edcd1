# harness-timeout: 1500
# In CI since 2026-12-07 (234.6-258.4 s on a quiet machine): room was made by running
# kill-create's kills four at a time and by pvbuild-restart's shorter --timeout.
# pvbuild-stubdom (issue 16): an HVM guest whose device model pvbuild runs in a stub domain.
# The stub's images are built by stubdom/build.sh from Debian's packages (on the host by
# run.sh; here, in dom0, when that failed); the
# guest's disk is pvbuild-hvm-diskboot's (tests/xen/build-hvm-disk.sh: GRUB for BIOS and the
# harness's kernel and ramdisk on an ext2 partition), on AHCI. Checked:
#  - `pvbuild create --wait` with `device_model_stubdomain_override = 1`: the stub domain
#    `<guest>-dm` runs; QEMU in it wrote `running` to /local/domain/<stub>/device-model/<guest>/state;
#    the guest's image/device-model-domid names the stub and the stub's `target` the guest;
#    the guest's `dm-argv` are libxl's for a stub (/dev/xvda, host_device, /dev/hvc3);
#  - the stub's console nodes that dom0's QEMU acts on (`output`, `limit`, `type`, `tty`) are
#    dom0's, read-only for the stub, as libxl writes them;
#  - no dom0 QEMU serves the guest (`-xen-domid <guest>`): the one dom0 QEMU serves the stub
#    (`-xen-domid <stub>`: its consoles and its disk); the QMP proxy runs;
#  - the guest's network interface (`model=e1000`) is the stub's: dom0 has the guest's vif
#    (vif_ioemu) and the stub's (the guest's MAC, libxl__dm_vifs_from_hvm_guest_config) on
#    xenbr0, no tap; dm-argv has libxl's NIC arguments; the stub's init bridged the tap its
#    QEMU made to its vif; the guest (xen_emul_unplug=never, e1000) pings dom0 and dom0 pings
#    it through the stub;
#  - with HARNESS_STUBDOM_XL=1, the stub's disk is the loop device xl's had (`phy`: blkback
#    serves it to the stub), otherwise the image file (qdisk: the stub's dom0 QEMU);
#  - the guest boots from its disk through the stub's QEMU: GRUB's lines (it read grub.cfg,
#    the kernel and the ramdisk through SeaBIOS's disk calls, served by the stub's QEMU from
#    the stub's /dev/xvda), then the marker with the disk's command line, on the serial port
#    (the stub's console 3, written to a file by the dom0 QEMU);
#  - `pvbuild reboot` (control/shutdown, which the guest's xenbus driver answers): the guest
#    reboots and `on_reboot = "restart"` (xl's default) starts it again as libxl does: pvbuild
#    reports the reboot; the old guest and stub, the stub's dom0 QEMU and the QMP proxy are
#    destroyed; the new guest and stub have new domain ids, the old ones are gone from Xen
#    and xenstore; the new guest's image/device-model-domid names the new stub and the new
#    stub's `target` the new guest; QEMU in the new stub says `running`; exactly one dom0
#    QEMU (the new stub's) and one proxy run; the second boot is checked as the first (GRUB,
#    network both ways, marker; the serial file is truncated by the new stub's dom0 QEMU);
#  - `pvbuild shutdown`: the guest powers off; pvbuild's destroy takes the stub with it and
#    the create's wait ends: no domain, QEMU, proxy or xenstore node is left;
#  - a stub whose QEMU never says `running` (its ramdisk the harness's guest ramdisk, whose
#    init powers off) fails the create with one error, and leaves nothing;
#  - QMP reaches the stub's QEMU through the proxy (query-status); when the stub dies (QEMU
#    told to quit over QMP, the stub's init powers it off) the guest stays, as with libxl, and
#    its destroy removes the dead stub and everything of it;
#  - a create killed once the stub exists (test hook `stubdom-built`, SIGKILL) is undone by
#    `pvbuild cleanup`: guest, stub, the stub's dom0 QEMU;
#  - failure injection at each step of the stub path leaves nothing.
# The stub's privcmd is restricted to its target (the kernel's default since XSA-482; the
# image's privcmd-probe.so answers libxendevicemodel's probe: docs/stubdom.md): the stub's log
# must say so.
# pvbuild's guest and stub nodes, taken (`xenstore-ls -f -p`) while they run, are saved as
# pvbuild-xenstore-p.txt and normalised (stubdom-lib.sh) as pvbuild-xenstore.norm.
# With HARNESS_STUBDOM_XL=1 (the opt-in xl-stubdom-diskboot), xl first boots the same disk
# image with the same stub images and config, in the same run, then pvbuild's boot as above
# (the restart, never-running and failure-injection parts are left out; both guests are
# asked to power off after their marker): the disk on a loop device with a fast `script=`
# (libxl gives a stub domain blkback, never qdisk), to the same marker; its nodes are saved
# and normalised the same way (xl-xenstore-p.txt, xl-xenstore.norm) and the difference is
# xenstore-stub.diff (explained in docs/stubdom.md).
# Metrics: stubdom_build_s, image_build_s, pvbuild_create_s (to the guest's unpause, the stub
# booted and its QEMU running), pvbuild_grub_s, pvbuild_net_up_s, pvbuild_marker_s (from the
# create's start), restart_s (the reboot's report till the new guest's unpause),
# restarted_grub_s, restarted_net_up_s, restarted_marker_s (from the reboot's report),
# never_running_s, steps_s; with xl: xl_create_s (xl create's run), xl_grub_s, xl_marker_s
# (from its start), xenstore_diff_lines.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
. "$HARNESS_REPO/tests/xen/dom0/stubdom-lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
W=/var/tmp/pvbuild-stubdom
rm -rf "$W" && mkdir -p "$W" || fail "cannot make $W"
img=$W/disk.img
ignore='^(/vm|/libxl|/local/domain/0/device-model) = ""$'
# The guest keeps its emulated NIC (`xen_emul_unplug=never`: xen-netfront then refuses to
# load, so the guest's network is the e1000 that the stub's QEMU emulates) and checks it.
# After its marker it idles (pvbuild.idle) until the toolstack asks it to reboot or power
# off (control/shutdown, its kernel's xenbus driver).
cmdline="console=ttyS0 quiet pci=noearly xen_emul_unplug=never pvbuild.net pvbuild.nic=e1000 pvbuild.idle=600"
mac=00:16:3e:5e:0b:01
setup_bridge
want=$(expected_marker "$HARNESS_GUEST_KVER" "BOOT_IMAGE=/boot/vmlinuz $cmdline")
trap '"$pvb" destroy pvbstub > /dev/null 2>&1; cp /var/log/xen/qemu-dm-pvbstub*.log /var/log/xen/qmp-proxy-*.log "$HARNESS_OUT"/ 2>/dev/null; rm -rf "$W"' EXIT

# The stub's images: run.sh built them on the host (share/stubdom); copied off the share, or
# built here when that failed.
t=$(now)
stub_images "$W/img"
metric stubdom_build_s "$(elapsed "$t")"
t=$(now)
sh "$HARNESS_REPO/tests/xen/build-hvm-disk.sh" "$img" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$cmdline" \
    > "$HARNESS_OUT/build-disk.log" 2>&1 || fail "build-hvm-disk.sh exited $?: $(tail -n 2 "$HARNESS_OUT/build-disk.log" | paste -sd ' ')"
metric image_build_s "$(elapsed "$t")"

# The stubs boot `quiet`: fewer kernel lines through the stub's console under TCG, towards
# libxl's (and pvbuild's) 30 s start limit, which both toolstacks' stubs missed with the
# machine loaded (2026-12-06 21:00-21:20); the same for xl's and pvbuild's stubs.
stub_quiet=" quiet"
# stub_cfg NAME [RAMDISK [DISK]]: the guest's config; the stub's ramdisk the built one and the
# disk pvbuild's (a file, served to the stub by its dom0 QEMU) unless given.
stub_cfg() {
    cat <<CFG
name = "$1"
type = "hvm"
memory = 128
vcpus = 1
disk = [ '${3:-format=raw,vdev=hda,access=rw,target=$img}' ]
vif = [ 'mac=$mac,bridge=xenbr0,model=e1000' ]
boot = "c"
hdtype = "ahci"
serial = "file:$HARNESS_OUT/$1-serial.log"
vga = "none"
vnc = 0
device_model_stubdomain_override = 1
device_model_version = "qemu-xen"
stubdomain_kernel = "$W/img/stubdom-linux-kernel"
stubdomain_ramdisk = "${2:-$W/img/stubdom-linux-initrd}"
stubdomain_cmdline = "console=hvc0$stub_quiet"
stubdomain_memory = 256
on_poweroff = "destroy"
on_reboot = "${stub_on_reboot:-destroy}"
on_crash = "destroy"
CFG
}
# stub_guest_boots WHO NAME T0: guest NAME (WHO's: xl or pvbuild) boots from its disk through
# the stub's QEMU: GRUB's lines (it read grub.cfg, then the kernel and the ramdisk), then the
# marker with the disk's command line, on its serial log. Metrics WHO_grub_s and
# WHO_marker_s, from T0.
stub_guest_boots() {
    _seen=
    evidence "$HARNESS_OUT/$2-serial.stamped"
    # (A guest that died, e.g. of the emulation's triple fault, which its `on_reboot =
    # "destroy"` ends, stops the wait within 20 s; Xen's lines are quoted.)
    wait_serial "$2" "$3" 400 PVBUILD-GRUB-CFG "$2" || fail "$1: no line from the disk's GRUB within 400 s: $(serial_tail "$2")$(triple_faults)"
    metric "$1_grub_s" "$(elapsed "$3")"
    wait_serial "$2" "$3" 400 PVBUILD-GRUB-INITRD-READ "$2" || fail "$1: GRUB did not read the kernel and ramdisk within 400 s: $(serial_tail "$2")$(triple_faults)"
    # The guest's network: its e1000 (the stub's QEMU), the tap in the stub, the stub's vif,
    # dom0's bridge. The guest pings dom0, then dom0 pings the guest.
    wait_serial "$2" "$3" 600 PVBUILD-NET-UP "$2" || fail "$1: the guest's network never came up: $(serial_tail "$2")$(triple_faults)"
    metric "$1_net_up_s" "$(elapsed "$3")"
    busybox ping -c 3 -W 10 10.99.0.2 > "$HARNESS_OUT/$1-ping.txt" 2>&1 ||
        fail "$1: dom0 cannot ping the guest through the stub: $(tail -n 2 "$HARNESS_OUT/$1-ping.txt" | paste -sd ' ')"
    wait_serial "$2" "$3" 300 PVBUILD-GUEST-OK || fail "$1: no marker within 300 s of its network: $(serial_tail "$2")"
    metric "$1_marker_s" "$(elapsed "$3")"
    _got=$(serial_text "$2" | grep -a -m 1 PVBUILD-GUEST-OK)
    [ "$_got" = "$want" ] || fail "$1: the marker is '$_got', expected '$want'"
    _who=$2
    _net() { serial_text "$_who" | sed -n "s/^PVBUILD-NET-$1 *//p" | head -n 1; }
    [ "$(_net DRIVER)" = e1000 ] || fail "$1: the guest did not load e1000: $(serial_text "$2" | grep -a PVBUILD-NET | paste -sd ' ')"
    [ "$(_net MAC)" = "$mac" ] || fail "$1: the guest's eth0 has MAC '$(_net MAC)', not the config's $mac"
    [ -n "$(_net PING-OK)" ] || fail "$1: the guest cannot ping dom0 through the stub: $(_net PING-FAILED)"
    [ "$(_net PINGED)" -ge 1 ] 2>/dev/null || fail "$1: the guest saw no echo request from dom0: '$(_net PINGED)'"
    note "$1: the guest's e1000 ($mac) reached dom0 through the stub: $(_net PING-OK) replies, $(_net PINGED) echo requests from dom0"
}
only_dom0 || fail "before the scenario, xl list shows more than Domain-0"
# 0. (HARNESS_STUBDOM_XL=1) xl first: the same disk image, stub images and config (its
#    guest and stub gone, the store snapshot for pvbuild's leftovers is taken after it).
if [ "${HARNESS_STUBDOM_XL:-0}" = 1 ]; then
    trap '"$pvb" destroy pvbstub > /dev/null 2>&1; timeout 60 xl destroy xlstub > /dev/null 2>&1
        cp /var/log/xen/qemu-dm-pvbstub*.log /var/log/xen/qemu-dm-xlstub*.log /var/log/xen/qmp-proxy-*.log "$HARNESS_OUT"/ 2>/dev/null
        stub_xl_disk_teardown; rm -rf "$W"' EXIT
    stub_xl_disk_setup "$W" "$img"
    stub_cfg xlstub "" "format=raw,vdev=hda,access=rw,script=$W/fast-block,target=$stub_loop" > "$HARNESS_OUT/xlstub.cfg"
    t0=$(now)
    timeout 300 xl create "$HARNESS_OUT/xlstub.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
        fail "xl create exited $?: $(grep -iE 'error|fail' "$HARNESS_OUT/xl-create.log" | tail -n 2 | paste -sd ' ')"
    metric xl_create_s "$(elapsed "$t0")"
    guest=$(xl domid xlstub 2>/dev/null) || fail "no domain xlstub"
    stub=$(xl domid xlstub-dm 2>/dev/null) || fail "no stub domain xlstub-dm"
    evidence "xl: guest domain $guest, stub domain $stub"
    xenstore-ls -f -p > "$HARNESS_OUT/xl-xenstore-p.txt" 2>&1
    xs_stub_normalise "$guest" "$stub" xlstub < "$HARNESS_OUT/xl-xenstore-p.txt" > "$HARNESS_OUT/xl-xenstore.norm"
    [ "$(xenstore-read "/local/domain/$stub/device-model/$guest/state" 2>/dev/null)" = running ] ||
        fail "xl: the device-model state in the stub is not running"
    stub_guest_boots xl xlstub "$t0"
    # Asked to power off, the guest's init does; on_poweroff = "destroy" (xl's daemon takes
    # the stub).
    xl shutdown xlstub > "$HARNESS_OUT/xl-shutdown.log" 2>&1 || fail "xl shutdown xlstub exited $?: $(tail -n 2 "$HARNESS_OUT/xl-shutdown.log" | paste -sd ' ')"
    wait_for 120 only_dom0 || fail "xl's guest or stub still there 120 s after its marker: $(xl list 2>&1 | awk 'NR > 2 { print $1 }' | paste -sd ' ')"
    wait_for 30 no_qemu || fail "xl: a QEMU is left: $(pgrep -af 'qemu-system-i386 -xen-domid' | cut -c1-120)"
fi

xs_snapshot > "$HARNESS_OUT/xenstore.before"

# 1. The guest, its device model in the stub.
# (With xl first, pvbuild's guest gets the same loop device: the stub's disk through blkback,
# as xl's; otherwise the image file, through the stub's dom0 QEMU.)
if [ "${HARNESS_STUBDOM_XL:-0}" = 1 ]; then
    stub_cfg pvbstub "" "format=raw,vdev=hda,access=rw,target=$stub_loop" > "$HARNESS_OUT/pvbstub.cfg"
else
    stub_on_reboot=restart stub_cfg pvbstub > "$HARNESS_OUT/pvbstub.cfg"
fi
log=$HARNESS_OUT/pvbuild-create.log
t0=$(now)
# The stub boots a kernel before its QEMU runs: under a loaded TCG host more than pvbuild's
# 60 s (a run of 20:55: its kernel reached its disk 40 s in). What libxl reads for a dom0
# QEMU's limit, pvbuild also applies to the stub's.
export LIBXL_DEVICE_MODEL_START_TIMEOUT=300
"$pvb" -v create --wait --timeout 900 "$HARNESS_OUT/pvbstub.cfg" > "$log" 2>&1 &
pid=$!
evidence "$log"
created() { grep -q 'created domain' "$log" || ! proc_alive "$pid"; }
wait_for 300 created || fail "pvbuild create did not create the domain within 300 s: $(tail -n 2 "$log" | paste -sd ' ')"
grep -q 'created domain' "$log" || fail "pvbuild create exited before creating: $(grep -m 1 '^error' "$log")"
metric pvbuild_create_s "$(sed -n 's/.*created domain [0-9]* (pvbstub) in \([0-9.]*\) s.*/\1/p' "$log" | head -n 1)"
guest=$(xl domid pvbstub 2>/dev/null) || fail "no domain pvbstub"
stub=$(xl domid pvbstub-dm 2>/dev/null) || fail "no stub domain pvbstub-dm"
evidence "guest domain $guest, stub domain $stub"
xenstore-ls -f > "$HARNESS_OUT/xenstore.txt" 2>&1
xenstore-ls -f -p > "$HARNESS_OUT/pvbuild-xenstore-p.txt" 2>&1
ps -eo pid,args > "$HARNESS_OUT/ps.txt" 2>&1
xs_stub_normalise "$guest" "$stub" pvbstub < "$HARNESS_OUT/pvbuild-xenstore-p.txt" > "$HARNESS_OUT/pvbuild-xenstore.norm"
# What dom0's QEMU acts on for the stub's consoles (`output`: the file it writes) is dom0's,
# only readable by the stub (libxl's ro_front): a stub that could rewrite it could make that
# QEMU write any file.
for c in 1 3; do
    grep -q "^/local/domain/$stub/device/console/$c/output = .*(n0,r$stub)\$" "$HARNESS_OUT/pvbuild-xenstore-p.txt" ||
        fail "the stub's console $c output is not dom0's, read-only for the stub: $(grep "^/local/domain/$stub/device/console/$c/output" "$HARNESS_OUT/pvbuild-xenstore-p.txt")"
done
if [ "${HARNESS_STUBDOM_XL:-0}" = 1 ]; then
    [ "$(xenstore-read "/local/domain/0/backend/vbd/$stub/768/type" 2>/dev/null)" = phy ] ||
        fail "the stub's disk (the loop device) is not blkback's: $(xenstore-ls -f 2>/dev/null | grep -m 2 "backend/.*/$stub/768/type")"
fi
state=$(xenstore-read "/local/domain/$stub/device-model/$guest/state" 2>/dev/null)
[ "$state" = running ] || fail "device-model state in the stub is '$state', not running"
[ "$(xenstore-read "/local/domain/$guest/image/device-model-domid" 2>/dev/null)" = "$stub" ] ||
    fail "the guest's image/device-model-domid does not name the stub"
[ "$(xenstore-read "/local/domain/$stub/target" 2>/dev/null)" = "$guest" ] ||
    fail "the stub's target does not name the guest"
vm=$(xenstore-read "/local/domain/$guest/vm")
argv=$(xenstore-list "$vm/image/dm-argv" 2>/dev/null | while read -r k; do xenstore-read "$vm/image/dm-argv/$k"; done | paste -sd ' ')
evidence "dm-argv: $argv"
case $argv in *"-serial /dev/hvc3"*"file=/dev/xvda,if=none,id=ahcidisk-0,format=host_device"*) ;;
    *) fail "dm-argv is not a stub's: $argv" ;; esac
if grep -q -- "-xen-domid $guest " "$HARNESS_OUT/ps.txt"; then
    fail "a dom0 QEMU serves the guest: $(grep -- "-xen-domid $guest " "$HARNESS_OUT/ps.txt" | head -n 1 | cut -c1-200)"
fi
grep -q -- "-xen-domid $stub " "$HARNESS_OUT/ps.txt" || fail "no dom0 QEMU serves the stub's consoles"
grep -q "vchan-socket-proxy.* $stub " "$HARNESS_OUT/ps.txt" || fail "no QMP proxy for the stub"
# The guest's interface is the stub's too: both vifs on xenbr0, the emulated NIC's tap in the
# stub (none in dom0), and its NIC on the stub's own bridge there.
ip -o link show master xenbr0 > "$HARNESS_OUT/bridge-ports.txt" 2>&1
for v in "vif$guest.0" "vif$stub.0"; do
    grep -q "$v:" "$HARNESS_OUT/bridge-ports.txt" || fail "$v is not on xenbr0: $(awk -F': ' '{ print $2 }' "$HARNESS_OUT/bridge-ports.txt" | paste -sd ' ')"
done
! ip link show "vif$guest.0-emu" > /dev/null 2>&1 || fail "dom0 has the tap vif$guest.0-emu: the emulated NIC is the stub's"
[ "$(xenstore-read "/local/domain/0/backend/vif/$stub/0/mac" 2>/dev/null)" = "$mac" ] ||
    fail "the stub's vif 0 does not have the guest's MAC"
[ "$(xenstore-read "/local/domain/0/backend/vif/$guest/0/type" 2>/dev/null)" = vif_ioemu ] ||
    fail "the guest's vif 0 is not vif_ioemu"
case $argv in *"-device e1000,id=nic0,netdev=net0,mac=$mac -netdev type=tap,id=net0,ifname=vif$guest.0-emu,br=xenbr0,script=no,downscript=no"*) ;;
    *) fail "dm-argv lacks libxl's NIC arguments: $argv" ;; esac
nic_bridged() { grep -q "pvbuild-stubdom: guest NIC 0 ($mac): tap vif$guest.0-emu bridged" /var/log/xen/qemu-dm-pvbstub.log 2>/dev/null; }
wait_for 60 nic_bridged || fail "the stub did not bridge the guest's NIC: $(grep -a pvbuild-stubdom /var/log/xen/qemu-dm-pvbstub.log 2>/dev/null | tail -n 2 | paste -sd ' ')"
evidence "stub: $(grep -a 'guest NIC 0' /var/log/xen/qemu-dm-pvbstub.log)"
grep -q "pvbuild-stubdom: QEMU pid" /var/log/xen/qemu-dm-pvbstub.log 2>/dev/null ||
    fail "the stub's log has no 'QEMU pid' line: $(tail -n 2 /var/log/xen/qemu-dm-pvbstub.log 2>/dev/null | paste -sd ' ')"
grep -q "privcmd-probe: DM_OP probe for domain $guest: ok" /var/log/xen/qemu-dm-pvbstub.log 2>/dev/null ||
    fail "the stub's QEMU did not run with privcmd restricted to the guest: $(grep -m 2 privcmd /var/log/xen/qemu-dm-pvbstub.log 2>/dev/null | paste -sd ' ')"
stub_guest_boots pvbuild pvbstub "$t0"
done_p() { ! proc_alive "$pid"; }
# stub_poweroff G: `pvbuild shutdown` asks the guest (domain G) to power off; its init does,
# and pvbuild's `create --wait` destroys it and its stub, reports the poweroff and ends.
stub_poweroff() {
    "$pvb" shutdown pvbstub > "$HARNESS_OUT/shutdown.log" 2>&1 || fail "pvbuild shutdown exited $?: $(tail -n 2 "$HARNESS_OUT/shutdown.log" | paste -sd ' ')"
    wait_for 180 done_p || fail "pvbuild create --wait still running 180 s after the shutdown: $(tail -n 2 "$log" | paste -sd ' ')"
    wait "$pid" || fail "pvbuild create --wait exited $?: $(grep -m 1 '^error' "$log")"
    grep -q "domain $1 (pvbstub) shut down: poweroff" "$log" || fail "pvbuild did not report the guest's poweroff: $(tail -n 2 "$log" | paste -sd ' ')"
    stub_leftovers "the booted guest's poweroff" booted
}
if [ "${HARNESS_STUBDOM_XL:-0}" = 1 ]; then
    stub_poweroff "$guest"
    # Both trees, normalised: every difference is explained in docs/stubdom.md.
    grep -q '^/local/domain/STUB/device-model/GUEST/state = "running"' "$HARNESS_OUT/pvbuild-xenstore.norm" ||
        fail "pvbuild's normalised tree has no running stub: $(head -n 3 "$HARNESS_OUT/pvbuild-xenstore.norm" | paste -sd ' ')"
    grep -q '^/local/domain/STUB/device-model/GUEST/state = "running"' "$HARNESS_OUT/xl-xenstore.norm" ||
        fail "xl's normalised tree has no running stub: $(head -n 3 "$HARNESS_OUT/xl-xenstore.norm" | paste -sd ' ')"
    diff -u "$HARNESS_OUT/pvbuild-xenstore.norm" "$HARNESS_OUT/xl-xenstore.norm" > "$HARNESS_OUT/xenstore-stub.diff"
    metric xenstore_diff_lines "$(grep -c '^[-+]/' "$HARNESS_OUT/xenstore-stub.diff")"
    evidence "$HARNESS_OUT/xenstore-stub.diff"
    pass
fi

# 1b. The restart (on_reboot = "restart", xl's default): `pvbuild reboot` asks the guest; its
#     init reboots; pvbuild reports it, destroys the guest, its stub, the stub's dom0 QEMU and
#     the QMP proxy, and builds a new guest with a new stub, which boots from the disk again.
g1=$guest
s1=$stub
first_lines=$(wc -l < "$HARNESS_OUT/pvbstub-serial.log")
"$pvb" reboot pvbstub > "$HARNESS_OUT/reboot.log" 2>&1 || fail "pvbuild reboot exited $?: $(tail -n 2 "$HARNESS_OUT/reboot.log" | paste -sd ' ')"
rebooted() { grep -q "domain $g1 (pvbstub) shut down: reboot" "$log"; }
wait_for 120 rebooted || fail "pvbuild did not report the guest's reboot: $(tail -n 3 "$log" | paste -sd ' ')"
# (The guest idles for 600 s unless asked: its reboot is the request's proof. Its init's own
# line may be lost with the stub, which goes as soon as the guest has shut down.)
serial_text pvbstub | grep -a -q 'PVBUILD-GUEST-ASKED reboot' && evidence "the guest's init: PVBUILD-GUEST-ASKED reboot"
t1=$(now)
restarted() { [ "$(grep -c 'created domain' "$log")" -ge 2 ] || ! proc_alive "$pid"; }
wait_for 300 restarted || fail "pvbuild did not create the guest again within 300 s: $(tail -n 3 "$log" | paste -sd ' ')"
[ "$(grep -c 'created domain' "$log")" -ge 2 ] || fail "pvbuild create ended instead of restarting: $(tail -n 3 "$log" | paste -sd ' ')"
metric restart_s "$(elapsed "$t1")"
grep -q "^pvbuild: restarting pvbstub (domain $g1 is gone)" "$log" || fail "pvbuild did not say it restarts pvbstub"
grep -q "destroyed stub domain $s1" "$log" || fail "pvbuild did not say it destroyed the old stub $s1: $(grep -i stub "$log" | tail -n 3 | paste -sd ' ')"
g2=$(xl domid pvbstub 2>/dev/null) || fail "no domain pvbstub after the restart"
s2=$(xl domid pvbstub-dm 2>/dev/null) || fail "no stub domain pvbstub-dm after the restart"
[ "$g2" != "$g1" ] && [ "$s2" != "$s1" ] || fail "the restart kept domain ids: guest $g1 -> $g2, stub $s1 -> $s2"
evidence "restarted: guest domain $g1 -> $g2, stub domain $s1 -> $s2"
for d in $g1 $s1; do
    xl list "$d" > /dev/null 2>&1 && fail "the old domain $d is still there: $(xl list 2>&1 | awk 'NR > 1 { print $1 "(" $2 ")" }' | paste -sd ' ')"
    [ -z "$(xenstore-ls "/local/domain/$d" 2>/dev/null | head -n 1)" ] || fail "/local/domain/$d is still there"
done
[ "$(xenstore-read "/local/domain/$g2/image/device-model-domid" 2>/dev/null)" = "$s2" ] ||
    fail "the new guest's image/device-model-domid does not name the new stub"
[ "$(xenstore-read "/local/domain/$s2/target" 2>/dev/null)" = "$g2" ] || fail "the new stub's target does not name the new guest"
[ "$(xenstore-read "/local/domain/$s2/device-model/$g2/state" 2>/dev/null)" = running ] ||
    fail "the new stub's device-model state is not running"
ps -eo pid,args > "$HARNESS_OUT/ps-restarted.txt" 2>&1
[ "$(grep -c -e '-xen-domid' "$HARNESS_OUT/ps-restarted.txt")" = 1 ] && grep -q -e "-xen-domid $s2 " "$HARNESS_OUT/ps-restarted.txt" ||
    fail "not exactly one dom0 QEMU, the new stub's: $(grep -e '-xen-domid' "$HARNESS_OUT/ps-restarted.txt" | cut -c1-100 | paste -sd ' ')"
[ "$(grep -c 'vchan-socket-proxy' "$HARNESS_OUT/ps-restarted.txt")" = 1 ] ||
    fail "not exactly one QMP proxy: $(grep 'vchan-socket-proxy' "$HARNESS_OUT/ps-restarted.txt" | cut -c1-100 | paste -sd ' ')"
# The second boot, checked as the first (its network through the new stub too). The new
# stub's dom0 QEMU opened the serial file anew (truncated): its lines are the second boot's
# once the file is shorter than the first boot left it.
truncated() { [ "$(wc -l < "$HARNESS_OUT/pvbstub-serial.log")" -lt "$first_lines" ]; }
wait_for 120 truncated || fail "the serial file was not opened anew by the new stub's QEMU ($first_lines lines, now $(wc -l < "$HARNESS_OUT/pvbstub-serial.log"))"
mv "$HARNESS_OUT/pvbstub-serial.stamped" "$HARNESS_OUT/pvbstub-serial.boot1.stamped"
evidence "$HARNESS_OUT/pvbstub-serial.boot1.stamped"
stub_guest_boots restarted pvbstub "$t1"

# 1c. Asked to power off, the guest does: pvbuild destroys it and its stub and ends.
stub_poweroff "$g2"

# 2. A stub whose QEMU never says running: its init is the guest ramdisk's, which powers off.
stub_cfg pvbnever "$HARNESS_GUEST_RAMDISK" > "$HARNESS_OUT/pvbnever.cfg"
t=$(now)
"$pvb" create "$HARNESS_OUT/pvbnever.cfg" > "$HARNESS_OUT/never.log" 2>&1 && fail "a stub that never ran QEMU: pvbuild create exited 0"
metric never_running_s "$(elapsed "$t")"
[ "$(grep -c '^error:' "$HARNESS_OUT/never.log")" = 1 ] || fail "never running: want one error line: $(head -n 3 "$HARNESS_OUT/never.log" | paste -sd ' ')"
grep '^error:' "$HARNESS_OUT/never.log" | grep -q 'stubdom-running' || fail "never running: the error does not name the step: $(grep '^error:' "$HARNESS_OUT/never.log")"
evidence "never running: $(grep '^error:' "$HARNESS_OUT/never.log" | cut -c1-240)"
stub_leftovers "a stub that never ran QEMU" never

# 3. QMP reaches the stub's QEMU through the proxy; then the stub dies (its QEMU quits, its
#    init powers it off): pvbuild, as libxl, leaves the guest as it is, and the guest's
#    destroy then removes the dead stub, its dom0 QEMU and the proxy too.
cat > "$W/qmp.py" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
f = s.makefile("rwb")
def rd():
    while True:
        line = f.readline()
        if not line:
            sys.exit("QMP: end of stream")
        m = json.loads(line)
        if "event" not in m:
            return m
greeting = rd()
if "QMP" not in greeting:
    sys.exit("QMP: no greeting: %r" % greeting)
def cmd(c):
    f.write((json.dumps({"execute": c}) + "\n").encode())
    f.flush()
    return rd()
cmd("qmp_capabilities")
print(json.dumps(cmd("query-status")))
if len(sys.argv) > 2:
    f.write(b'{"execute": "quit"}\n')
    f.flush()
PY
stub_cfg pvbdeath > "$HARNESS_OUT/pvbdeath.cfg"
"$pvb" create -p "$HARNESS_OUT/pvbdeath.cfg" > "$HARNESS_OUT/death.log" 2>&1 || fail "create of pvbdeath exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/death.log")"
guest=$(xl domid pvbdeath 2>/dev/null) || fail "no domain pvbdeath"
stub=$(xl domid pvbdeath-dm 2>/dev/null) || fail "no stub domain pvbdeath-dm"
status=$(timeout 90 python3 "$W/qmp.py" "/var/run/xen/qmp-libxl-$guest" quit 2>&1) ||
    fail "QMP through the proxy to the stub's QEMU failed: $status"
case $status in *'"status"'*) ;; *) fail "QMP query-status answered: $status" ;; esac
evidence "QMP through the proxy: $status"
stub_stopped() { domain_shut_down pvbdeath-dm; }
wait_for 90 stub_stopped || fail "the stub did not stop after its QEMU quit: $(xl list 2>&1 | awk 'NR > 1 { print $1 "(" $5 ")" }' | paste -sd ' ')"
xl domid pvbdeath > /dev/null 2>&1 || fail "the guest went with its stub"
evidence "stub died: $(xl list 2>&1 | awk 'NR > 1 { print $1 "(" $5 ")" }' | paste -sd ' ')"
"$pvb" destroy pvbdeath > "$HARNESS_OUT/death-destroy.log" 2>&1 || fail "pvbuild destroy pvbdeath exited $?: $(head -n 2 "$HARNESS_OUT/death-destroy.log" | paste -sd ' ')"
stub_leftovers "the guest of a dead stub, destroyed" death

# 4. A create killed once the stub exists: `pvbuild cleanup` removes the guest and the stub.
stub_cfg pvbkill > "$HARNESS_OUT/pvbkill.cfg"
klog=$HARNESS_OUT/create.killed.log
PVBUILD_TEST_STOP_AT=stubdom-built "$pvb" create "$HARNESS_OUT/pvbkill.cfg" > "$klog" 2>&1 &
kpid=$!
stopped() { grep -q 'test hook: stopped at stubdom-built' "$klog"; }
wait_for 180 stopped || fail "the create never stopped at stubdom-built: $(head -n 3 "$klog" | paste -sd ' ')"
xl domid pvbkill-dm > /dev/null 2>&1 || fail "the stopped create has no stub domain"
kill -KILL "$kpid"; wait "$kpid" 2>/dev/null
"$pvb" cleanup > "$HARNESS_OUT/cleanup.log" 2>&1 || fail "pvbuild cleanup exited $?: $(head -n 2 "$HARNESS_OUT/cleanup.log" | paste -sd ' ')"
evidence "killed at stubdom-built, cleanup: $(paste -sd ' ' "$HARNESS_OUT/cleanup.log" | cut -c1-200)"
stub_leftovers "a create killed once its stub existed, then cleanup" killed

# 5. Failure injection at each step of the stub path.
: > "$HARNESS_OUT/steps.results"
t=$(now)
for step in stubdom-build stubdom-target stubdom-qmp-proxy stubdom-unpause stubdom-running; do
    stub_cfg "fi-$step" > "$HARNESS_OUT/fi-$step.cfg"
    flog=$HARNESS_OUT/create.fail-at-$step.log
    "$pvb" create --fail-at "$step" "$HARNESS_OUT/fi-$step.cfg" > "$flog" 2>&1 && fail "--fail-at $step: pvbuild create exited 0"
    [ "$(grep -c '^error:' "$flog")" = 1 ] || fail "--fail-at $step: want one error line: $(head -n 3 "$flog" | paste -sd ' ')"
    line=$(grep '^error:' "$flog")
    echo "$line" | grep -q -- "$step" || fail "--fail-at $step: the error does not name the step: $line"
    case $line in *"undoing failed"*) fail "--fail-at $step: undoing failed: $line" ;; esac
    stub_leftovers "--fail-at $step" "$step"
    echo "$step: $line" >> "$HARNESS_OUT/steps.results"
done
metric steps_s "$(elapsed "$t")"
evidence "$HARNESS_OUT/steps.results"
pass

# harness-timeout: 1200
# pvbuild-hvm-devices (issue 14): an HVM guest's disk and network interface, as libxl 4.17
# gives them: the disk as a PV vbd (qdisk backend) and on QEMU's IDE, the interface as a PV
# vif (netback, vif-bridge `online type_if=vif`) and an emulated NIC (`model=e1000`, the tap
# vif<domid>.0-emu QEMU makes, put on the bridge by vif-bridge `add type_if=tap`), one QEMU
# (the xenfv device model) serving both the emulated devices and the qdisk backend.
#  1. xl create -p of the config: its disk's and vif's xenstore entries (backend, frontend,
#     libxl's copy), then xl destroy.
#  2. pvbuild create -p of the same config: the same entries (the differences are listed in
#     entries.diff and printed; the backend `type`s must be xl's: qdisk, vif_ioemu), one QEMU
#     for the domain, and it took the qdisk backend; vif and tap on xenbr0; the stored
#     libxl-json holds the disk and the vif_ioemu interface. pvbuild destroy: nothing left.
#  3. pvbuild create --wait of the guest (1 vcpu, 128 MiB, direct kernel boot, serial to a
#     file, `quiet pci=noearly`): the guest's PV drivers take over after the unplug, its init
#     reads the token from xvda (served by the HVM QEMU's qdisk backend) and pings dom0's
#     bridge, dom0 pings it; vif and tap on xenbr0 once it is created, and the vif alone once
#     its network is up (the guest's unplug of the emulated NIC makes QEMU delete the tap);
#     pvbuild destroy leaves no QEMU, tap, vif, domain or xenstore node.
# Metrics: xl_create_p_s, pvbuild_create_p_s, pvbuild_create_s, net_up_s, marker_s (seconds
# from the start of the create).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
setup_bridge
# QEMU's emulated NIC needs /dev/net/tun (pvbuild refuses the config without it).
[ -e /dev/net/tun ] || modprobe tun 2>/dev/null
[ -e /dev/net/tun ] || fail "no /dev/net/tun in dom0 (modprobe tun failed)"
# QEMU's VNC server is off: dom0's lo may be down.
token="pvbuild-hvm-$$-$(date +%s)"
img=$HARNESS_OUT/hvm-disk.img
printf 'PVBUILD-DISK-DATA %s\n' "$token" > "$img"
truncate -s 16M "$img"
boot_cmdline="console=ttyS0 quiet pci=noearly pvbuild.disk pvbuild.net pvbuild.idle=60"
mac=00:16:3e:aa:bb:0e
# hvm_cfg NAME CMDLINE: the scenario's config.
hvm_cfg() {
    cat <<CFG
name = "$1"
type = "hvm"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
cmdline = "$2"
memory = 128
vcpus = 1
serial = "file:$HARNESS_OUT/$1-serial.log"
vga = "none"
vnc = 0
disk = [ 'format=raw,vdev=xvda,access=rw,backendtype=qdisk,target=$img' ]
vif = [ 'mac=$mac,bridge=xenbr0,model=e1000' ]
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
only_dom0() { [ "$(xl list 2>/dev/null | awk 'NR > 1 { n++ } END { print n }')" = "1" ]; }
no_qemu() { ! pgrep -f -- '-xen-domid' > /dev/null; }
# entries DOMID: the disk's and the vif's entries (backend, frontend, libxl's copy), the
# domain id written D.
entries() {
    for p in "/local/domain/0/backend/qdisk/$1" "/local/domain/0/backend/vif/$1" \
        "/local/domain/$1/device/vbd" "/local/domain/$1/device/vif" \
        "/libxl/$1/device/vbd" "/libxl/$1/device/vif"; do
        xenstore-ls -f "$p" 2>&1
    done | sed -e "s|/$1/|/D/|g" -e "s|/$1\"|/D\"|g" -e "s|/$1 =|/D =|g" \
        -e "s|frontend-id = \"$1\"|frontend-id = \"D\"|" | LC_ALL=C sort
}
# nothing_left WHAT: no domain but dom0, no QEMU, no vif or tap, no device or device-model
# entries.
nothing_left() {
    wait_for 60 only_dom0 || fail "$1: left behind: $(xl list 2>&1 | awk 'NR > 2 { print $1 }' | paste -sd ' ')"
    wait_for 30 no_qemu || fail "$1: a QEMU is left: $(pgrep -af -- '-xen-domid' | cut -c1-120)"
    _l=$(vif_links | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: interfaces left: $_l"
    _l=$(xenstore-ls -f 2>/dev/null | grep -E '/backend/(vif|qdisk|vbd)/|/device-model/[0-9]|^/libxl/[1-9]' | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: xenstore entries left: $_l"
    [ "$(xs_domains)" = 0 ] || fail "$1: xenstore /local/domain lists '$(xs_domains)'"
}
# on_bridge DOMID: vif<domid>.0 and its emulated NIC's tap are ports of xenbr0.
on_bridge() {
    ip -o link show master xenbr0 > "$HARNESS_OUT/bridge-ports-$1.txt" 2>&1
    grep -q "vif$1\.0:" "$HARNESS_OUT/bridge-ports-$1.txt" || fail "vif$1.0 is not on xenbr0: $(awk -F': ' '{ print $2 }' "$HARNESS_OUT/bridge-ports-$1.txt" | paste -sd ' ')"
    grep -q "vif$1\.0-emu:" "$HARNESS_OUT/bridge-ports-$1.txt" || fail "the tap vif$1.0-emu is not on xenbr0: $(awk -F': ' '{ print $2 }' "$HARNESS_OUT/bridge-ports-$1.txt" | paste -sd ' ')"
}
# one_qemu DOMID: exactly one device model for the domain, the xenfv one.
one_qemu() {
    _n=$(pgrep -f -- "-xen-domid $1 " | wc -l)
    [ "$_n" = 1 ] || fail "domain $1 has $_n QEMUs: $(pgrep -af -- "-xen-domid $1 " | cut -c1-100 | paste -sd ' ')"
    pgrep -af -- "-xen-domid $1 " | grep -q 'xenfv' || fail "domain $1's QEMU is not the xenfv one"
}
trap '"$pvb" destroy pvbhvmdev > /dev/null 2>&1; "$pvb" destroy pvbhvmdevp > /dev/null 2>&1; xl destroy xlhvmdev > /dev/null 2>&1' EXIT

# 1. xl, paused.
hvm_cfg xlhvmdev console=ttyS0 > "$HARNESS_OUT/xlhvmdev.cfg"
t0=$(now)
xl create -p "$HARNESS_OUT/xlhvmdev.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
    fail "xl create -p exited $?: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
metric xl_create_p_s "$(elapsed "$t0")"
d=$(xl domid xlhvmdev) || fail "xl's domain is not listed"
entries "$d" > "$HARNESS_OUT/xl-entries.txt"
xenstore-ls -fp > "$HARNESS_OUT/xl-xenstore.txt" 2>&1
on_bridge "$d"
xl destroy xlhvmdev || fail "xl destroy exited $?"
nothing_left "after xl destroy"

# 2. pvbuild, paused.
hvm_cfg pvbhvmdevp console=ttyS0 > "$HARNESS_OUT/pvbhvmdevp.cfg"
log=$HARNESS_OUT/pvbuild-create-p.log
t0=$(now)
"$pvb" -v create -p -e "$HARNESS_OUT/pvbhvmdevp.cfg" > "$log" 2>&1 ||
    fail "pvbuild create -p exited $?: $(grep -m 1 '^error' "$log")"
metric pvbuild_create_p_s "$(elapsed "$t0")"
evidence "$log"
d=$(xl domid pvbhvmdevp) || fail "pvbuild's domain is not listed by xl"
entries "$d" > "$HARNESS_OUT/pvbuild-entries.txt"
xenstore-ls -fp > "$HARNESS_OUT/pvbuild-xenstore.txt" 2>&1
one_qemu "$d"
on_bridge "$d"
[ "$(xenstore-read "/local/domain/0/backend/vif/$d/0/type")" = vif_ioemu ] || fail "the vif's backend type is '$(xenstore-read "/local/domain/0/backend/vif/$d/0/type")'"
[ "$(xenstore-read "/local/domain/0/backend/qdisk/$d/51712/state")" = 2 ] ||
    fail "the HVM QEMU did not take the qdisk backend: state '$(xenstore-read "/local/domain/0/backend/qdisk/$d/51712/state" 2>&1)'"
for k in "backend/qdisk/D/51712/type" "backend/vif/D/0/type"; do
    a=$(grep "^/local/domain/0/$k = " "$HARNESS_OUT/xl-entries.txt")
    b=$(grep "^/local/domain/0/$k = " "$HARNESS_OUT/pvbuild-entries.txt")
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "$k: xl '$a', pvbuild '$b'"
done
diff "$HARNESS_OUT/xl-entries.txt" "$HARNESS_OUT/pvbuild-entries.txt" > "$HARNESS_OUT/entries.diff"
evidence "$HARNESS_OUT/entries.diff"
note "disk and vif entries: $(wc -l < "$HARNESS_OUT/xl-entries.txt") of xl's, $(grep -c '^<' "$HARNESS_OUT/entries.diff") only xl's or differing, $(grep -c '^>' "$HARNESS_OUT/entries.diff") only pvbuild's or differing: $(grep '^[<>]' "$HARNESS_OUT/entries.diff" | head -n 12 | paste -sd ' ')"
json=$(ls /var/lib/xen/userdata-d.$d.*.libxl-json 2>/dev/null | head -n 1)
[ -n "$json" ] || fail "no stored libxl-json for domain $d"
cp "$json" "$HARNESS_OUT/pvbuild.libxl-json"
grep -q '"nictype": "vif_ioemu"' "$json" || fail "the stored config has no vif_ioemu interface"
grep -q '"model": "e1000"' "$json" || fail "the stored config lacks the NIC's model"
grep -q "hvm-disk.img" "$json" || fail "the stored config lacks the disk"
"$pvb" destroy pvbhvmdevp >> "$log" 2>&1 || fail "pvbuild destroy exited $?"
nothing_left "after pvbuild destroy of the paused guest"

# 3. pvbuild, booted.
hvm_cfg pvbhvmdev "$boot_cmdline" > "$HARNESS_OUT/pvbhvmdev.cfg"
serial=$HARNESS_OUT/pvbhvmdev-serial.log
log=$HARNESS_OUT/pvbuild-create.log
tp=$(now)
"$pvb" -v create --wait --timeout 900 "$HARNESS_OUT/pvbhvmdev.cfg" > "$log" 2>&1 &
pid=$!
evidence "$log"
evidence "$serial"
created() { grep -q 'created domain' "$log" || ! proc_alive "$pid"; }
wait_for 120 created || fail "pvbuild create did not create the domain within 120 s: $(tail -n 2 "$log" | paste -sd ' ')"
grep -q 'created domain' "$log" || fail "pvbuild create exited before creating: $(grep -m 1 '^error' "$log")"
metric pvbuild_create_s "$(sed -n 's/.*created domain [0-9]* (pvbhvmdev) in \([0-9.]*\) s.*/\1/p' "$log" | head -n 1)"
d=$(xl domid pvbhvmdev) || fail "pvbuild's booted guest is not listed by xl"
one_qemu "$d"
on_bridge "$d"
# The serial log, polled every 2 s (few forks: under TCG each takes time from the guest).
serial_has() { tr -d '\r' < "$serial" 2>/dev/null | grep -q "$1"; }
# (The waiting create ends when the guest does: a guest that died, e.g. of a triple fault
# Xen turns into a reboot, fails the wait at once.)
wait_serial() {
    _n=$(($1 / 2))
    until serial_has "$2"; do
        [ "$_n" -gt 0 ] && proc_alive "$pid" || return 1
        _n=$((_n - 1))
        sleep 2
    done
}
wait_serial 900 PVBUILD-NET-UP || fail "the guest's network never came up ($(grep -m 1 'shut down' "$log")): $(tr -d '\r' < "$serial" 2>/dev/null | grep -E 'PVBUILD|blkfront|netfront' | tail -n 4 | paste -sd ' ')"
metric net_up_s "$(elapsed "$tp")"
# The guest's kernel unplugged the emulated NIC (its PV driver took over), and QEMU deleted
# the NIC's tap with it (hw/i386/xen/xen_platform.c, pci_unplug_nics: del_nic_peer), as for
# xl's guests: the vif alone is on the bridge now.
ip -o link show master xenbr0 > "$HARNESS_OUT/bridge-ports-booted.txt" 2>&1
grep -q "vif$d\.0:" "$HARNESS_OUT/bridge-ports-booted.txt" || fail "vif$d.0 is not on xenbr0 once the guest's network is up"
! ip link show "vif$d.0-emu" > /dev/null 2>&1 || fail "the tap vif$d.0-emu is still there after the guest unplugged its emulated NIC"
busybox ping -c 3 -W 10 10.99.0.2 > "$HARNESS_OUT/ping.txt" 2>&1 || fail "dom0 cannot ping the guest: $(tail -n 2 "$HARNESS_OUT/ping.txt" | paste -sd ' ')"
wait_serial 120 PVBUILD-GUEST-OK || fail "no marker: $(tr -d '\r' < "$serial" | tail -n 3 | paste -sd ' ')"
metric marker_s "$(elapsed "$tp")"
s() { tr -d '\r' < "$serial" | sed -n "s/^$1 *//p" | head -n 1; }
[ "$(s PVBUILD-DISK-READ)" = "PVBUILD-DISK-DATA $token" ] || fail "the guest read '$(s PVBUILD-DISK-READ)' from xvda$(serial_has PVBUILD-DISK-MISSING && echo ' (no xvda)')"
[ -n "$(s PVBUILD-NET-PING-OK)" ] || fail "the guest cannot ping dom0: $(s PVBUILD-NET-PING-FAILED)"
[ "$(s PVBUILD-NET-MAC)" = "$mac" ] || fail "the guest's eth0 has MAC '$(s PVBUILD-NET-MAC)' (xen-netfront's should be $mac)"
[ "$(s PVBUILD-NET-PINGED)" -ge 1 ] 2>/dev/null || fail "the guest saw no echo request from dom0: '$(s PVBUILD-NET-PINGED)'"
written=$(dd if="$img" bs=512 skip=8 count=1 2>/dev/null | tr -d '\0' | head -n 1)
note "guest: read '$(s PVBUILD-DISK-READ)' from xvda, $(s PVBUILD-NET-PING-OK) replies from dom0, $(s PVBUILD-NET-PINGED) echo requests from dom0; wrote '$written'"
"$pvb" destroy pvbhvmdev > "$HARNESS_OUT/destroy.log" 2>&1 || fail "pvbuild destroy exited $?: $(head -n 1 "$HARNESS_OUT/destroy.log")"
done_p() { ! proc_alive "$pid"; }
wait_for 60 done_p || fail "pvbuild create --wait still running 60 s after its guest was destroyed"
wait "$pid" 2>/dev/null
nothing_left "after pvbuild destroy of the booted guest"
trap - EXIT
pass

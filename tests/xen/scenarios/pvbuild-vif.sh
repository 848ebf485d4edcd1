# pvbuild-vif: `vif = [...]` as an xl user writes it, the guest is on dom0's bridge.
# pvbuild writes the vif frontend and backend entries libxl writes, waits for netback to
# take the backend, runs libxl's hotplug script (/etc/xen/scripts/vif-bridge online
# type_if=vif, libxl's environment) and only then unpauses. The guest (xen-netfront) must
# have the configured MAC, ping dom0's bridge and answer dom0's pings (through a
# rate=10Mb/s limit, written as libxl writes it); once pvbuild
# destroyed it, vif<domid>.0 and every entry must be gone.
# Then: a paused guest with two interfaces (a random MAC in Xen's OUI, and one named by
# vifname=) both on the bridge, gone after `pvbuild destroy`; and refusals that must leave
# nothing: a bridge dom0 does not have (before any domain), and a hotplug script that fails
# (after the build: undone).
# Metrics: vif_create_s (till the guest's marker), vif_ready_s (pvbuild's own "network
# interface(s) plugged in" line: from create's start to the script's success).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbvif
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
setup_bridge
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.net"

no_leftovers() {
    _l=$(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^(vif[0-9]|pvbtest)/ { print $2 }' | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: backend interfaces left: $_l"
    _l=$(xenstore-ls -f /local/domain/0 2>/dev/null | grep -E '/backend/vif' | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1: xenstore entries left: $_l"
    [ "$(xl list | awk 'NR > 1' | wc -l)" = 1 ] || fail "$1: a domain was left: $(xl list | tail -n 1)"
    [ "$(xs_domains)" = 0 ] || fail "$1: xenstore /local/domain lists '$(xs_domains)'"
}

cfg="$HARNESS_OUT/$name.cfg"
pv_cfg "$name" "$cmdline" "vif = [ 'mac=00:16:3e:aa:bb:01,bridge=xenbr0,rate=10Mb/s' ]" > "$cfg"
log="$HARNESS_OUT/pvbuild-create.log"
t0=$(now)
create_wait_up "$name" "$cfg" "$log" has_net_up "the guest's network come up"
domid=$(xl domid "$name")
ip -d link show "vif$domid.0" > "$HARNESS_OUT/vif-link.txt" 2>&1
grep -q "master xenbr0" "$HARNESS_OUT/vif-link.txt" || fail "vif$domid.0 is not on xenbr0: $(head -n 2 "$HARNESS_OUT/vif-link.txt" | paste -sd ' ')"
[ "$(xenstore-read "/local/domain/0/backend/vif/$domid/0/hotplug-status")" = connected ] || fail "hotplug-status is not 'connected'"
# rate=10Mb/s as libxl writes it: 62500 bytes per 50 ms (netback's credit).
[ "$(xenstore-read "/local/domain/0/backend/vif/$domid/0/rate")" = "62500,50000" ] || fail "rate is '$(xenstore-read "/local/domain/0/backend/vif/$domid/0/rate")'"
check_guest_net "$name"
wait_for 180 has_marker "$name" || fail "no marker within 180 s"
metric vif_create_s "$(elapsed "$t0")"
ready=$(sed -n 's/.*network interface(s) plugged in after \([0-9.]*\) s.*/\1/p' "$log" | head -n 1)
[ -n "$ready" ] && metric vif_ready_s "$ready"
check_marker_and_poweroff "$name" "$cmdline" "$pid" "$log"
[ "$(net_line "$name" MAC)" = "00:16:3e:aa:bb:01" ] || fail "the guest's eth0 has MAC '$(net_line "$name" MAC)'"
pinged=$(net_line "$name" PINGED)
[ "${pinged:-0}" -ge 1 ] || fail "the guest saw no echo request from dom0"
note "guest: $(net_line "$name" PING-OK) replies from dom0, $pinged echo requests from dom0"
no_leftovers "after the guest powered off"

# Paused, two interfaces: a random MAC in Xen's OUI, and a backend named by vifname=.
"$pvb" create -p --name "${name}p" --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --cmdline x --vif "bridge=xenbr0" \
    --vif "bridge=xenbr0,vifname=pvbtest1,mtu=1400" > "$log.p" 2>&1 ||
    fail "create -p with two interfaces exited $?: $(grep -m 1 '^error' "$log.p")"
evidence "$log.p"
d=$(xl domid "${name}p")
xenstore-ls -fp > "$HARNESS_OUT/xenstore-paused.txt" 2>&1
# vif-common.sh's set_mtu writes a renamed interface's MTU under /local/domain/<vifname>
# (it takes the domid from the interface's name); pvbuild removes it once the script is done.
[ "$(xs_domains)" = "0 $d" ] || fail "xenstore /local/domain lists '$(xs_domains)' with guest $d up"
mac0=$(xenstore-read "/local/domain/$d/device/vif/0/mac")
case $mac0 in 00:16:3e:[0-7]?:??:??) ;; *) fail "random MAC '$mac0' is not in Xen's OUI" ;; esac
ip -o link show master xenbr0 > "$HARNESS_OUT/bridge-ports.txt"
grep -q "vif$d.0" "$HARNESS_OUT/bridge-ports.txt" || fail "vif$d.0 is not on xenbr0"
grep -q "pvbtest1" "$HARNESS_OUT/bridge-ports.txt" || fail "pvbtest1 (vifname=) is not on xenbr0: $(cat "$HARNESS_OUT/bridge-ports.txt" | paste -sd ' ')"
grep "pvbtest1" "$HARNESS_OUT/bridge-ports.txt" | grep -q "mtu 1400" || fail "pvbtest1's MTU is not 1400"
"$pvb" destroy "${name}p" >> "$log.p" 2>&1 || fail "pvbuild destroy exited $?"
no_leftovers "after pvbuild destroy"

# Refused before any domain: a bridge dom0 does not have.
"$pvb" create --name "${name}x" --kernel "$HARNESS_GUEST_KERNEL" --memory "$HARNESS_GUEST_MEMORY" \
    --vif "bridge=nosuchbr0" > "$log.x" 2>&1 && fail "a missing bridge was accepted"
grep -q '^error: vif 0: no bridge "nosuchbr0" in dom0' "$log.x" || fail "unexpected message: $(head -n 1 "$log.x")"
no_leftovers "missing bridge"

# A hotplug script that fails: the domain is undone, nothing left.
bad="$HARNESS_OUT/bad-vif-script"
printf '#!/bin/sh\n[ "$1" = offline ] && exit 0\necho "refusing $vif for testing" >&2\nexit 1\n' > "$bad"
chmod 755 "$bad"
"$pvb" create --name "${name}f" --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
    --memory "$HARNESS_GUEST_MEMORY" --vif "script=$bad" > "$log.f" 2>&1 && fail "a failing hotplug script was accepted"
evidence "$log.f"
grep -q '^error: vif: vif[0-9]*\.0: hotplug script online: exit status: 1: refusing vif[0-9]*\.0 for testing' "$log.f" ||
    fail "unexpected message: $(head -n 1 "$log.f")"
no_leftovers "failing hotplug script"

pass

# harness-opt-in
# Opt-in (xl's side only: pvbuild's own scenarios keep CI's harness budget); its reference
# data is kept in the tree (tests/xen/README.md).
# xl-vif: `xl create` with `vif = [ 'bridge=xenbr0,mac=...' ]`: netback in dom0, libxl
# runs the vif-bridge hotplug script. Records libxl's xenstore entries for reference
# (xenstore-paused.txt: the paused domain's tree) and what the script did to the
# interface; the guest (xen-netfront) must ping dom0's bridge and answer dom0's pings.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=xlvif
setup_bridge
cfg="$HARNESS_OUT/$name.cfg"
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" | sed "s|^extra = \"\\(.*\\)\"|extra = \"\\1 pvbuild.net\"|" > "$cfg"
echo "vif = [ 'mac=00:16:3e:12:34:56,bridge=xenbr0' ]" >> "$cfg"
cat "$cfg"
t0=$(now)
xl -vvv create -p "$cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 || fail "xl create -p failed: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
metric xl_create_paused_s "$(elapsed "$t0")"
evidence "$HARNESS_OUT/xl-create.log"
domid=$(xl domid "$name")
xenstore-ls -fp > "$HARNESS_OUT/xenstore-paused.txt" 2>&1
ip -d link show "vif$domid.0" > "$HARNESS_OUT/vif-link.txt" 2>&1 || fail "no vif$domid.0 in dom0"
grep -q "master xenbr0" "$HARNESS_OUT/vif-link.txt" || fail "vif$domid.0 is not on xenbr0: $(head -n 1 "$HARNESS_OUT/vif-link.txt")"
xl unpause "$name" || fail "xl unpause failed"
evidence "$(console_log "$name")"
check_guest_net "$name"
wait_for 180 has_marker "$name" || fail "no marker within 180 s"
metric marker_s "$(elapsed "$t0")"
[ "$(net_line "$name" MAC)" = "00:16:3e:12:34:56" ] || fail "the guest's eth0 has MAC $(net_line "$name" MAC)"
pinged=$(net_line "$name" PINGED)
[ "${pinged:-0}" -ge 1 ] || fail "the guest saw no echo request from dom0"
wait_for 120 domain_gone "$name" || fail "domain still exists 120 s after its marker"
wait_for 30 sh -c "! ip link show vif$domid.0 >/dev/null 2>&1" || fail "vif$domid.0 still exists after the domain"
pass

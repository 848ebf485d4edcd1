# pvbuild-vif-hotplug: `pvbuild network-attach` / `network-detach` / `network-list`, as xl's.
# A guest booted without an interface (its init, seeing `pvbuild.nethotplug`, loads
# xen-netfront and waits) gets one attached while it runs: netback takes it, vif-bridge puts
# it on xenbr0, the guest's netfront finds eth0 with the given MAC, pings dom0 and answers
# dom0's pings. Detaching it closes it in the guest (eth0 goes) and in dom0 (vif<domid>.0
# and its entries go). Refusals: a domain that does not exist, an interface it does not
# have, a MAC it already has.
# Metrics: attach_s and detach_s (pvbuild's commands, wall clock).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbhot
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
setup_bridge
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.nethotplug"
log="$HARNESS_OUT/pvbuild-create.log"
"$pvb" create --wait --timeout 500 --name "$name" --kernel "$HARNESS_GUEST_KERNEL" \
    --ramdisk "$HARNESS_GUEST_RAMDISK" --memory "$HARNESS_GUEST_MEMORY" --cmdline "$cmdline" > "$log" 2>&1 &
pid=$!
evidence "$log"
evidence "$(console_log "$name")"
clog() { tr -d '\r' 2>/dev/null < "$(console_log "$name")"; }
waiting() { clog | grep -q "^PVBUILD-NET-WAITING"; }
wait_for 240 waiting || fail "the guest never waited for its interface: $(tail -n 2 "$log" | paste -sd ' ')"
domid=$(xl domid "$name")

# Refusals first, while the guest waits: nothing may change.
"$pvb" network-attach nosuchdomain bridge=xenbr0 > "$HARNESS_OUT/attach.x" 2>&1 && fail "attach to a missing domain succeeded"
grep -q '^error: no domain named "nosuchdomain"' "$HARNESS_OUT/attach.x" || fail "unexpected message: $(head -n 1 "$HARNESS_OUT/attach.x")"
"$pvb" network-detach "$name" 3 > "$HARNESS_OUT/detach.x" 2>&1 && fail "detaching a missing interface succeeded"
grep -q "^error: domain $domid has no network interface 3" "$HARNESS_OUT/detach.x" || fail "unexpected message: $(head -n 1 "$HARNESS_OUT/detach.x")"
"$pvb" network-attach "$name" bridge=nosuchbr0 > "$HARNESS_OUT/attach.b" 2>&1 && fail "attach to a missing bridge succeeded"
grep -q '^error: vif 0: no bridge "nosuchbr0" in dom0' "$HARNESS_OUT/attach.b" || fail "unexpected message: $(head -n 1 "$HARNESS_OUT/attach.b")"
[ -z "$(xenstore-ls -f "/local/domain/0/backend/vif/$domid" 2>/dev/null)" ] || fail "a refused attach left entries"

t=$(now)
"$pvb" network-attach "$name" bridge=xenbr0 mac=00:16:3e:aa:bb:10 > "$HARNESS_OUT/attach.log" 2>&1 ||
    fail "network-attach exited $?: $(head -n 1 "$HARNESS_OUT/attach.log")"
metric attach_s "$(elapsed "$t")"
evidence "$HARNESS_OUT/attach.log"
grep -q "^pvbuild: domain $domid: network interface 0 (00:16:3e:aa:bb:10) on xenbr0" "$HARNESS_OUT/attach.log" ||
    fail "unexpected output: $(head -n 1 "$HARNESS_OUT/attach.log")"
"$pvb" network-list "$name" > "$HARNESS_OUT/list.txt" 2>&1 || fail "network-list exited $?"
grep -q "^0 .*00:16:3e:aa:bb:10" "$HARNESS_OUT/list.txt" || fail "network-list: $(paste -sd ' ' "$HARNESS_OUT/list.txt")"
ip -o link show master xenbr0 | grep -q "vif$domid.0" || fail "vif$domid.0 is not on xenbr0"
"$pvb" network-attach "$name" bridge=xenbr0 mac=00:16:3e:aa:bb:10 > "$HARNESS_OUT/attach.m" 2>&1 && fail "a second interface with the same MAC was attached"
grep -q '^error: vif 0: mac 00:16:3e:aa:bb:10 already used' "$HARNESS_OUT/attach.m" || fail "unexpected message: $(head -n 1 "$HARNESS_OUT/attach.m")"
check_guest_net "$name"
[ "$(net_line "$name" MAC)" = "00:16:3e:aa:bb:10" ] || fail "the guest's eth0 has MAC '$(net_line "$name" MAC)'"
pinged() { [ -n "$(net_line "$name" PINGED)" ]; }
wait_for 60 pinged || fail "the guest did not report dom0's pings"

t=$(now)
"$pvb" network-detach "$name" 00:16:3e:aa:bb:10 > "$HARNESS_OUT/detach.log" 2>&1 ||
    fail "network-detach exited $?: $(head -n 1 "$HARNESS_OUT/detach.log")"
metric detach_s "$(elapsed "$t")"
evidence "$HARNESS_OUT/detach.log"
grep -q warning "$HARNESS_OUT/detach.log" && fail "the guest did not close the interface: $(head -n 1 "$HARNESS_OUT/detach.log")"
wait_for 120 has_marker "$name" || fail "no marker within 120 s of the detach"
clog | grep -q "^PVBUILD-NET-DETACHED" || fail "eth0 did not go away in the guest: $(clog | grep -m 1 PVBUILD-NET-STILL)"
no_vif() { ! ip link show "vif$domid.0" > /dev/null 2>&1; }
wait_for 30 no_vif || fail "vif$domid.0 still exists after the detach"
[ -z "$(xenstore-ls -f "/local/domain/0/backend/vif/$domid" 2>/dev/null)" ] || fail "backend entries left after the detach"
[ -z "$(xenstore-ls -f "/local/domain/$domid/device/vif" 2>/dev/null)" ] || fail "frontend entries left after the detach"
check_marker_and_poweroff "$name" "$cmdline" "$pid" "$log"
pass

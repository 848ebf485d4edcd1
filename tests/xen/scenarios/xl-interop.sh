# harness-timeout: 1500
# xl-interop: pvbuild and xl side by side (issue 15).
# 1. The oracle: `xl create -p` of a config with a disk and an interface; libxl's stored
#    configuration (/var/lib/xen/userdata-d.<domid>.<uuid>.libxl-json) is kept; xl destroys
#    it. Then `pvbuild create -p` of the same config (same name): its stored configuration
#    must equal xl's structurally (tests/xen/dom0/json-compare.py), but for the UUID and the
#    differences kept deliberately (docs/user-guide.md: claim_mode). `xl list -l` must show
#    the pvbuild domain's configuration, and `xl destroy` must remove it all: the domain,
#    its QEMU, its vif, its stored configuration.
# 2. A running guest made by pvbuild (with its monitor): `xl console` shows its console
#    (the guest's SysRq help, asked for by `xl sysrq`), `xl shutdown -w` powers it off (the
#    guest's /sbin/poweroff says PVBUILD-GUEST-ASKED) and pvbuild's monitor destroys it and
#    removes its stored configuration.
# 3. A running guest made by xl: `pvbuild list` shows it, `pvbuild console` shows its
#    console, `pvbuild shutdown -w` powers it off (xl's monitor destroys it); another made by
#    xl is destroyed by `pvbuild destroy`, which removes libxl's stored configuration too.
# Metrics: xl_create_paused_s, pvbuild_create_paused_s.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
setup_bridge
stored() { ls /var/lib/xen/userdata-d."$1".*.libxl-json 2>/dev/null; }
no_stored() { [ -z "$(ls /var/lib/xen/userdata-?."$1".* 2>/dev/null | grep -v domain-userdata-lock)" ]; }
qemu_of() { ps -eo pid,args | grep -v grep | grep -- "-xen-domid $1 " ; }

# 1. The same config through xl, then through pvbuild.
name=interop
img="$HARNESS_OUT/disk.img"
truncate -s 16M "$img"
cfg="$HARNESS_OUT/$name.cfg"
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" > "$cfg"
echo "disk = [ 'format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=$img' ]" >> "$cfg"
cp "$cfg" "$HARNESS_OUT/$name-novif.cfg"
echo "vif = [ 'mac=00:16:3e:12:34:56,bridge=xenbr0' ]" >> "$cfg"
t0=$(now)
# libxl gives vif-bridge 10 s; on a loaded host under TCG it can take longer and xl create
# fails. Then the comparison is made without the interface (host/tests/data/xl-userdata
# holds xl's stored interface, checked by a unit test) and the scenario says so.
vif=1
if ! xl create -p "$cfg" > "$HARNESS_OUT/xl-create.log" 2>&1; then
    grep -q "vif-bridge online because of timeout" "$HARNESS_OUT/xl-create.log" ||
        fail "xl create -p failed: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
    note "xl's vif-bridge timed out (libxl's 10 s): comparing without the interface"
    wait_for 30 domain_gone "$name" || fail "xl left $name after its failed create"
    vif=0
    cfg="$HARNESS_OUT/$name-novif.cfg"
    t0=$(now)
    xl create -p "$cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 || fail "xl create -p failed: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
fi
metric xl_create_paused_s "$(elapsed "$t0")"
d=$(xl domid "$name")
f=$(stored "$d")
[ -n "$f" ] || fail "xl stored no configuration for domain $d: $(ls /var/lib/xen | paste -sd ' ')"
cp "$f" "$HARNESS_OUT/xl.json"
xl destroy "$name" || fail "xl destroy of xl's domain failed"
wait_for 30 domain_gone "$name" || fail "xl's domain is still there"
t0=$(now)
"$pvb" create -p "$cfg" > "$HARNESS_OUT/pvbuild-create.log" 2>&1 || fail "pvbuild create -p failed: $(grep -m 1 '^error' "$HARNESS_OUT/pvbuild-create.log")"
metric pvbuild_create_paused_s "$(elapsed "$t0")"
evidence "$HARNESS_OUT/pvbuild-create.log"
d=$(xl domid "$name") || fail "no domain $name after pvbuild create -p"
f=$(stored "$d")
[ -n "$f" ] || fail "pvbuild stored no configuration for domain $d: $(ls /var/lib/xen | paste -sd ' ')"
cp "$f" "$HARNESS_OUT/pvbuild.json"
uuid=$(xenstore-read "/local/domain/$d/vm" | sed 's|^/vm/||')
[ "$f" = "/var/lib/xen/userdata-d.$d.$uuid.libxl-json" ] || fail "stored as $f, domain $d has uuid $uuid"
python3 "$HARNESS_REPO/tests/xen/dom0/json-compare.py" "$HARNESS_OUT/xl.json" "$HARNESS_OUT/pvbuild.json" \
    c_info.uuid b_info.claim_mode > "$HARNESS_OUT/json-diff.txt" ||
    fail "pvbuild's stored configuration differs from xl's: $(head -n 3 "$HARNESS_OUT/json-diff.txt" | paste -sd ';')"
python3 "$HARNESS_REPO/tests/xen/dom0/json-compare.py" "$HARNESS_OUT/xl.json" "$HARNESS_OUT/pvbuild.json" \
    > "$HARNESS_OUT/json-diff-all.txt"
note "stored configuration vs xl's: $(wc -l < "$HARNESS_OUT/json-diff-all.txt") differences, all in the allowed list: $(cut -d: -f2 "$HARNESS_OUT/json-diff-all.txt" | paste -sd ',')"
xl list -l "$name" > "$HARNESS_OUT/xl-list-l.json" 2> "$HARNESS_OUT/xl-list-l.err" || fail "xl list -l failed: $(head -n 2 "$HARNESS_OUT/xl-list-l.err" | paste -sd ' ')"
python3 - "$HARNESS_OUT/xl-list-l.json" "$d" "$name" "$vif" <<'PY' || fail "xl list -l does not show the pvbuild domain's configuration: $(head -c 300 "$HARNESS_OUT/xl-list-l.json")"
import json, sys
v = json.load(open(sys.argv[1]))
e = v[0]
assert e["domid"] == int(sys.argv[2]), e["domid"]
c = e["config"]
assert c["c_info"]["name"] == sys.argv[3]
assert c["disks"][0]["vdev"] == "xvda"
assert sys.argv[4] == "0" or c["nics"][0]["mac"] == "00:16:3e:12:34:56"
assert c["b_info"]["max_memkb"] > 0
PY
[ -n "$(qemu_of "$d")" ] || fail "no QEMU for the pvbuild domain's disk"
[ "$vif" = 0 ] || ip link show "vif$d.0" > /dev/null 2>&1 || fail "no vif$d.0 for the pvbuild domain"
xl destroy "$name" > "$HARNESS_OUT/xl-destroy.log" 2>&1 || fail "xl destroy of pvbuild's domain failed: $(tail -n 2 "$HARNESS_OUT/xl-destroy.log" | paste -sd ' ')"
wait_for 30 domain_gone "$name" || fail "pvbuild's domain is still there after xl destroy"
wait_for 30 eval '[ -z "$(qemu_of "$d")" ]' || fail "xl destroy left the QEMU of pvbuild's domain: $(qemu_of "$d")"
wait_for 30 sh -c "! ip link show vif$d.0 >/dev/null 2>&1" || fail "xl destroy left vif$d.0"
no_stored "$d" || fail "xl destroy left the stored configuration: $(ls /var/lib/xen/userdata-?."$d".*)"
[ -z "$(xenstore-list "/local/domain/0/backend/qdisk/$d" 2>/dev/null)" ] || fail "xl destroy left backend/qdisk/$d"
note "xl list -l and xl destroy took pvbuild's domain $d (its QEMU, vif and stored configuration went)"

# 2. A running pvbuild guest, driven by xl.
name=pvbidle
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" |
    sed "s|^extra = \"\\(.*\\)\"|extra = \"\\1 pvbuild.idle=900\"|" > "$HARNESS_OUT/$name.cfg"
"$pvb" create "$HARNESS_OUT/$name.cfg" > "$HARNESS_OUT/pvbidle-create.log" 2>&1 || fail "pvbuild create $name failed: $(grep -m 1 '^error' "$HARNESS_OUT/pvbidle-create.log")"
evidence "$(console_log "$name")"
d=$(xl domid "$name") || fail "no domain $name"
[ -n "$(stored "$d")" ] || fail "no stored configuration for the running pvbuild guest"
idle() { console_has "$1" PVBUILD-GUEST-IDLE; }
wait_for 300 idle "$name" || fail "$name did not reach its idle wait: $(console_text "$name" | tail -n 2 | paste -sd ' ')"
# attach CMD... OUT: CMD in the background (pid in $cpid) with its input a fifo held open
# (an empty stdin would end a console at once), output in OUT.
attach() {
    _out=$1
    shift
    # In dom0's /tmp (tmpfs): the share (9p) has no fifos.
    _fifo=/tmp/xl-interop-stdin.$$
    rm -f "$_fifo"
    mkfifo "$_fifo" || fail "mkfifo $_fifo failed"
    "$@" < "$_fifo" > "$_out" 2>&1 &
    cpid=$!
    exec 3> "$_fifo"
    sleep 3
}
detach() { kill "$cpid" 2>/dev/null; exec 3>&-; wait "$cpid" 2>/dev/null; rm -f "$_fifo"; }
attach "$HARNESS_OUT/xl-console.out" xl console "$name"
xl sysrq "$name" h || fail "xl sysrq failed"
wait_for 60 grep -q "sysrq: HELP" "$HARNESS_OUT/xl-console.out" || fail "xl console did not show the guest's SysRq help: $(tail -c 300 "$HARNESS_OUT/xl-console.out" | tr -d '\r' | paste -sd ' ')"
detach
xl shutdown -w "$name" > "$HARNESS_OUT/xl-shutdown.log" 2>&1 || fail "xl shutdown -w failed: $(tail -n 2 "$HARNESS_OUT/xl-shutdown.log" | paste -sd ' ')"
console_has "$name" "PVBUILD-GUEST-ASKED poweroff" || fail "the guest was not asked to power off"
wait_for 60 domain_gone "$name" || fail "pvbuild's monitor did not destroy $name after xl shutdown"
wait_for 30 no_stored "$d" || fail "the stored configuration of $name was left"
grep -q "shut down: poweroff" "/var/log/xen/pvbuild-$name.log" || fail "the monitor did not report the poweroff: $(tail -n 2 "/var/log/xen/pvbuild-$name.log" | paste -sd ' ')"
note "xl console, xl sysrq and xl shutdown -w drove pvbuild's guest; its monitor destroyed it"

# 3. Guests made by xl, driven by pvbuild.
name=xlidle
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" |
    sed "s|^extra = \"\\(.*\\)\"|extra = \"\\1 pvbuild.idle=900\"|" > "$HARNESS_OUT/$name.cfg"
xl create "$HARNESS_OUT/$name.cfg" > "$HARNESS_OUT/xlidle-create.log" 2>&1 || fail "xl create $name failed"
evidence "$(console_log "$name")"
d=$(xl domid "$name") || fail "no domain $name"
"$pvb" list > "$HARNESS_OUT/pvbuild-list.txt" 2>&1 || fail "pvbuild list failed"
grep -q "^$name  *$d " "$HARNESS_OUT/pvbuild-list.txt" || fail "pvbuild list does not show $name ($d): $(paste -sd ';' < "$HARNESS_OUT/pvbuild-list.txt")"
wait_for 300 idle "$name" || fail "$name did not reach its idle wait"
attach "$HARNESS_OUT/pvbuild-console.out" "$pvb" console "$name"
"$pvb" sysrq "$name" h || fail "pvbuild sysrq failed"
wait_for 60 grep -q "sysrq: HELP" "$HARNESS_OUT/pvbuild-console.out" || fail "pvbuild console did not show the guest's SysRq help: $(tail -c 300 "$HARNESS_OUT/pvbuild-console.out" | tr -d '\r' | paste -sd ' ')"
detach
"$pvb" shutdown -w "$name" > "$HARNESS_OUT/pvbuild-shutdown.log" 2>&1 || fail "pvbuild shutdown -w failed: $(tail -n 2 "$HARNESS_OUT/pvbuild-shutdown.log" | paste -sd ' ')"
console_has "$name" "PVBUILD-GUEST-ASKED poweroff" || fail "xl's guest was not asked to power off"
wait_for 60 domain_gone "$name" || fail "xl's monitor did not destroy $name after pvbuild shutdown"
wait_for 30 no_stored "$d" || fail "the stored configuration of xl's $name was left"
name=xldestroy
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" > "$HARNESS_OUT/$name.cfg"
xl create -p "$HARNESS_OUT/$name.cfg" > "$HARNESS_OUT/xldestroy-create.log" 2>&1 || fail "xl create -p $name failed"
d=$(xl domid "$name") || fail "no domain $name"
[ -n "$(stored "$d")" ] || fail "xl stored nothing for $name"
"$pvb" destroy "$name" > "$HARNESS_OUT/pvbuild-destroy.log" 2>&1 || fail "pvbuild destroy of xl's domain failed: $(cat "$HARNESS_OUT/pvbuild-destroy.log")"
wait_for 30 domain_gone "$name" || fail "xl's $name is still there after pvbuild destroy"
no_stored "$d" || fail "pvbuild destroy left libxl's stored configuration: $(ls /var/lib/xen/userdata-?."$d".*)"
[ -z "$(xenstore-list "/libxl/$d" 2>/dev/null)" ] || fail "pvbuild destroy left /libxl/$d"
note "pvbuild list, console, sysrq, shutdown -w and destroy drove xl's guests"
pass

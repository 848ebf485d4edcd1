# harness-timeout: 1200
# pvbuild-restart-devices: devices attached while a guest runs survive its reboot by
# pvbuild's monitor, as xl's monitor reloads the stored configuration that block-attach and
# network-attach update. A guest made by `pvbuild create` (with its monitor) without disks
# or interfaces boots with `pvbuild.disk pvbuild.diskwait=15 pvbuild.idle=900`: its init
# looks for xvda for 15 s (60 s by default: it was the most of this scenario's first boot),
# finds none (PVBUILD-DISK-MISSING), then idles. `pvbuild block-attach` gives it a disk as xvda
# and `pvbuild network-attach` an interface; both must be in the stored configuration
# (/var/lib/xen/userdata-d.<domid>.<uuid>.libxl-json). `pvbuild reboot` then: the monitor
# starts the guest again under a new domain id, and the restarted guest reads the disk
# (PVBUILD-DISK-READ with the image's first line) and has the interface (its backend, with
# the same MAC, in xenstore). A disk detached before the reboot is not there after it. The
# guest is renamed (`pvbuild rename`) before the reboot: it restarts under its new name, as
# xl restarts a renamed guest.
# Metrics: restart_s (from `pvbuild reboot` till the new domain's disk was read).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
name=pvbrdev
setup_bridge
img="$HARNESS_OUT/disk.img"
printf 'PVBUILD-DISK-DATA restart-%s\n' "$$" > "$img"
truncate -s 16M "$img"
img2="$HARNESS_OUT/disk2.img"
truncate -s 16M "$img2"
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" |
    sed -e "s|^extra = \"\\(.*\\)\"|extra = \"\\1 pvbuild.disk pvbuild.diskwait=15 pvbuild.idle=900\"|" \
        -e 's|^on_reboot = .*|on_reboot = "restart"|' > "$HARNESS_OUT/$name.cfg"
"$pvb" create "$HARNESS_OUT/$name.cfg" > "$HARNESS_OUT/create.log" 2>&1 || fail "pvbuild create failed: $(grep -m 1 '^error' "$HARNESS_OUT/create.log")"
evidence "$(console_log "$name")"
evidence "/var/log/xen/pvbuild-$name.log"
d1=$(xl domid "$name") || fail "no domain $name"
idles() { [ "$(console_text "$name" | grep -c PVBUILD-GUEST-IDLE)" -ge "$1" ]; }
wait_for 300 idles 1 || fail "the guest did not reach its idle wait: $(console_text "$name" | tail -n 2 | paste -sd ' ')"
console_has "$name" PVBUILD-DISK-MISSING || fail "the guest found a disk it was not given"
"$pvb" block-attach "$name" "format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=$img" > "$HARNESS_OUT/attach.log" 2>&1 ||
    fail "block-attach failed: $(tail -n 2 "$HARNESS_OUT/attach.log" | paste -sd ' ')"
"$pvb" block-attach "$name" "format=raw, vdev=xvdc, access=rw, backendtype=qdisk, target=$img2" >> "$HARNESS_OUT/attach.log" 2>&1 ||
    fail "block-attach xvdc failed: $(tail -n 2 "$HARNESS_OUT/attach.log" | paste -sd ' ')"
"$pvb" block-detach "$name" xvdc >> "$HARNESS_OUT/attach.log" 2>&1 || fail "block-detach xvdc failed: $(tail -n 2 "$HARNESS_OUT/attach.log" | paste -sd ' ')"
"$pvb" network-attach "$name" mac=00:16:3e:44:55:66 bridge=xenbr0 >> "$HARNESS_OUT/attach.log" 2>&1 ||
    fail "network-attach failed: $(tail -n 2 "$HARNESS_OUT/attach.log" | paste -sd ' ')"
f=$(ls /var/lib/xen/userdata-d.$d1.*.libxl-json 2>/dev/null)
[ -n "$f" ] || fail "no stored configuration for domain $d1"
cp "$f" "$HARNESS_OUT/stored-before-reboot.json"
python3 - "$f" "$img" <<'PY' || fail "the stored configuration does not hold the attached devices: $(tr -d '\0' < "$f" | paste -sd ' ' | head -c 400)"
import json, sys
c = json.loads(open(sys.argv[1], "rb").read().rstrip(b"\0"))
disks = c.get("disks", [])
assert [d["vdev"] for d in disks] == ["xvda"], disks
assert disks[0]["pdev_path"] == sys.argv[2] and disks[0]["backend"] == "qdisk", disks
nics = c.get("nics", [])
assert [n["mac"] for n in nics] == ["00:16:3e:44:55:66"], nics
PY
"$pvb" rename "$name" "$name-r" || fail "pvbuild rename failed"
old=$name
name=$name-r
t0=$(now)
"$pvb" reboot "$name" > "$HARNESS_OUT/reboot.log" 2>&1 || fail "pvbuild reboot failed: $(tail -n 2 "$HARNESS_OUT/reboot.log" | paste -sd ' ')"
evidence "$(console_log "$name")"
new_domain() { d2=$(xl domid "$name" 2>/dev/null) && [ -n "$d2" ] && [ "$d2" != "$d1" ]; }
wait_for 120 new_domain || fail "the monitor did not start $name again: $(tail -n 3 "/var/log/xen/pvbuild-$old.log" | paste -sd ' ')"
domain_gone "$old" || fail "a domain named $old is back: $(xl list | tail -n 2 | paste -sd ' ')"
read_it() { console_has "$name" "PVBUILD-DISK-READ PVBUILD-DISK-DATA restart-$$"; }
wait_for 300 read_it || fail "the restarted guest did not read the attached disk: $(console_text "$name" | grep PVBUILD-DISK | tail -n 3 | paste -sd ' ')"
metric restart_s "$(elapsed "$t0")"
d2=$(xl domid "$name")
[ "$(xenstore-read "/local/domain/0/backend/vif/$d2/0/mac" 2>/dev/null)" = "00:16:3e:44:55:66" ] ||
    fail "the restarted domain $d2 has no interface 0 with the attached MAC: $(xenstore-ls "/local/domain/0/backend/vif/$d2" 2>&1 | head -n 3 | paste -sd ' ')"
[ -z "$(xenstore-read "/local/domain/0/backend/qdisk/$d2/51744/params" 2>/dev/null)" ] || fail "the detached xvdc came back after the restart"
"$pvb" block-list "$name" > "$HARNESS_OUT/block-list.txt" 2>&1
note "restarted as domain $d2: $(grep -c '^517' "$HARNESS_OUT/block-list.txt") disk(s), interface MAC $(xenstore-read "/local/domain/0/backend/vif/$d2/0/mac")"
"$pvb" destroy "$name" > "$HARNESS_OUT/destroy.log" 2>&1 || fail "pvbuild destroy failed"
wait_for 30 domain_gone "$name" || fail "$name still exists after destroy"
[ -z "$(ls /var/lib/xen/userdata-?."$d2".* 2>/dev/null | grep -v domain-userdata-lock)" ] || fail "destroy left the stored configuration"
pass

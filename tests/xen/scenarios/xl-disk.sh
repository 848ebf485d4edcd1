# harness-opt-in
# Opt-in (xl's side only: pvbuild's own scenarios keep CI's harness budget); its reference
# data is kept in the tree (tests/xen/README.md).
# xl-disk: `xl create` with a file-backed disk (qdisk: libxl spawns a device model,
# qemu's xenpv machine). Records libxl's xenstore entries and qemu argv for reference
# (the paused domain's xenstore tree goes into xenstore-paused.txt); the guest must
# read the disk's first line and write its own.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=xldisk
img="$HARNESS_OUT/disk.img"
printf 'PVBUILD-DISK-DATA xl-%s\n' "$$" > "$img"
truncate -s 16M "$img"
cfg="$HARNESS_OUT/$name.cfg"
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" | sed "s|^extra = \"\\(.*\\)\"|extra = \"\\1 pvbuild.disk\"|" > "$cfg"
echo "disk = [ 'format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=$img' ]" >> "$cfg"
cat "$cfg"
t0=$(now)
xl -vvv create -p "$cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 || fail "xl create -p failed: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
metric xl_create_paused_s "$(elapsed "$t0")"
evidence "$HARNESS_OUT/xl-create.log"
xenstore-ls -fp > "$HARNESS_OUT/xenstore-paused.txt" 2>&1
ps -eo pid,args | grep -i qemu | grep -v grep > "$HARNESS_OUT/qemu-ps.txt"
xl unpause "$name" || fail "xl unpause failed"
evidence "$(console_log "$name")"
wait_for 180 has_marker "$name" || fail "no marker within 180 s"
metric marker_s "$(elapsed "$t0")"
wait_for 120 domain_gone "$name" || fail "domain still exists 120 s after its marker"
cp /var/log/xen/qemu-dm-$name.log "$HARNESS_OUT/" 2>/dev/null
tr -d '\r' < "$(console_log "$name")" | grep PVBUILD-DISK
tr -d '\r' < "$(console_log "$name")" | grep -q "PVBUILD-DISK-READ PVBUILD-DISK-DATA xl-$$" || fail "the guest did not read the disk"
dd if="$img" bs=512 skip=8 count=1 2>/dev/null | head -n 1 | grep -q "PVBUILD-DISK-WRITTEN $HARNESS_GUEST_KVER" || fail "the guest's write is not in the image"

pass

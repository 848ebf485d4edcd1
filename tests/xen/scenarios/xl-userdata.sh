# harness-timeout: 600
# harness-opt-in
# xl-userdata: what xl stores for a domain (libxl's userdata, the domain's configuration as
# JSON) with a disk and an interface, paused, then after block-attach and network-attach:
# the oracle for pvbuild's own (host/tests/data/xl-userdata/).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=xlud
setup_bridge
img="$HARNESS_OUT/disk.img"; truncate -s 16M "$img"
img2="$HARNESS_OUT/disk2.img"; truncate -s 16M "$img2"
cfg="$HARNESS_OUT/$name.cfg"
write_xl_cfg "$name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" > "$cfg"
echo "disk = [ 'format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=$img' ]" >> "$cfg"
echo "vif = [ 'mac=00:16:3e:12:34:56,bridge=xenbr0' ]" >> "$cfg"
cat "$cfg"
xl create -p "$cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 || fail "xl create -p failed: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
domid=$(xl domid "$name")
ls -l /var/lib/xen/ > "$HARNESS_OUT/var-lib-xen.txt" 2>&1
cp /var/lib/xen/userdata-d.$domid.* "$HARNESS_OUT/" 2>/dev/null
for f in /var/lib/xen/userdata-d.$domid.*; do cp "$f" "$HARNESS_OUT/created.json"; done
xl list -l "$name" > "$HARNESS_OUT/xl-list-l.json" 2>&1
xl block-attach "$name" "format=raw, vdev=xvdb, access=rw, backendtype=qdisk, target=$img2" > "$HARNESS_OUT/ba.log" 2>&1
xl network-attach "$name" bridge=xenbr0 > "$HARNESS_OUT/na.log" 2>&1
for f in /var/lib/xen/userdata-d.$domid.*; do cp "$f" "$HARNESS_OUT/attached.json"; done
xl list -l "$name" > "$HARNESS_OUT/xl-list-l-attached.json" 2>&1
xenstore-ls -fp > "$HARNESS_OUT/xenstore.txt" 2>&1
xl destroy "$name"
ls -l /var/lib/xen/ > "$HARNESS_OUT/var-lib-xen-after.txt" 2>&1
pass

# pvbuild-concat-initrd (issue 12): `pvbuild create` boots Debian's kernel with a
# concatenated initramfs, the harness ramdisk followed by a second gzip'd cpio
# (`a.cpio.gz` + `b.cpio.gz`, as update-initramfs makes with early microcode). Its
# last four bytes are b's ISIZE, so libxenguest's unzip into b's size + 16 bytes runs
# out of room and it hands the raw blob over (xc_dom_build_module); Linux then
# unpacks both members. The second member replaces /init with a wrapper that prints
#   PVBUILD-CONCAT-SECOND <token>
# (the token is a file of the second member) and runs the harness init (kept as
# /init.orig), which prints the usual marker and powers off. Before issue 12, pvbuild
# refused this ramdisk ("gzip stream decoded to ... bytes instead of ...").
# Metrics: marker_s (till the marker showed in the console log).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
name=pvbcat
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
work=$(mktemp -d)
mkdir -p "$work/b"
cp "$HARNESS_REPO/tests/xen/guest/init" "$work/b/init.orig"
token="second-member-$$"
echo "$token" > "$work/b/concat-token"
cat > "$work/b/init" <<'EOF'
#!/bin/busybox sh
echo "PVBUILD-CONCAT-SECOND $(/bin/busybox cat /concat-token)"
exec /bin/busybox sh /init.orig "$@"
EOF
chmod 755 "$work/b/init" "$work/b/init.orig"
(cd "$work/b" && find . -mindepth 1 | busybox cpio -o -H newc -R 0:0 2>/dev/null) | busybox gzip -9 > "$work/b.cpio.gz" ||
    fail "cannot make the second cpio member"
rd="$work/concat.cpio.gz"
cat "$HARNESS_GUEST_RAMDISK" "$work/b.cpio.gz" > "$rd"
evidence "$rd"
# The first member must decode to more than the second's ISIZE + 16, or libxenguest (and
# pvbuild) would load the first member alone, unzipped.
a_size=$(busybox gzip -dc < "$HARNESS_GUEST_RAMDISK" | wc -c)
b_size=$(busybox gzip -dc < "$work/b.cpio.gz" | wc -c)
[ "$a_size" -gt $((b_size + 16)) ] || fail "first member ($a_size bytes) not larger than the second's ISIZE + 16 ($b_size + 16)"
log="$HARNESS_OUT/pvbuild-create.log"
t0=$(now)
"$HARNESS_PVBUILD" create --wait --timeout 300 --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$rd" \
    --memory "$HARNESS_GUEST_MEMORY" --cmdline "$HARNESS_GUEST_CMDLINE" --name "$name" > "$log" 2>&1 &
pid=$!
evidence "$log"
create_done() { ! kill -0 "$pid" 2>/dev/null; }
progress() { create_done || has_marker "$name"; }
wait_for 180 progress || fail "neither did pvbuild create return nor the marker show within 180 s"
if create_done && ! has_marker "$name"; then
    wait "$pid"
    fail "pvbuild create exited $? before the guest ran: $(head -n 3 "$log" | tr -d '\r' | paste -sd ' ')"
fi
evidence "$(console_log "$name")"
wait_for 180 has_marker "$name" || fail "no PVBUILD-GUEST-OK marker in $(console_log "$name") within 180 s"
metric marker_s "$(elapsed "$t0")"
console_has "$name" "PVBUILD-CONCAT-SECOND $token" ||
    fail "the second cpio member's /init did not run (no 'PVBUILD-CONCAT-SECOND $token' in the console log)"
check_marker_and_poweroff "$name" "$HARNESS_GUEST_CMDLINE" "$pid" "$log"
rm -rf "$work"
pass

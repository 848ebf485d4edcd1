# harness-opt-in
# pvbuild-create-rss (issue 12): the peak resident memory of `pvbuild create -p` in dom0
# (`/usr/bin/time -v`, maximum resident set size, which counts mapped file pages too), with
# the harness ramdisk and with a 128 MiB raw ramdisk, for a 1024 MiB guest, then a 1 GiB
# ramdisk for a 4 GiB guest (run it with HARNESS_QEMU_MEMORY=7168): the ramdisk is mapped and
# loaded straight into the guest's pages, so the peak must not grow with it or the guest.
# If tests/xen/work/pvbuild-compare exists (another pvbuild binary, say the one before
# issue 12), it is measured the same way, for the record.
# Metrics: rss_kb_<binary>_<ramdisk>.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -x /usr/bin/time ] || fail "no /usr/bin/time in dom0 (package time)"
big=/tmp/raw128.img
head -c $((128 << 20)) /dev/zero > "$big" || fail "cannot make $big"
bins="new=$HARNESS_PVBUILD"
compare="$HARNESS_REPO/tests/xen/work/pvbuild-compare"
if [ -x "$compare" ]; then
    cp "$compare" /run/pvbuild-compare && bins="$bins old=/run/pvbuild-compare"
fi
n=0
for b in $bins; do
    tag=${b%%=*}
    bin=${b#*=}
    for r in "small=$HARNESS_GUEST_RAMDISK" "raw128=$big"; do
        rtag=${r%%=*}
        rd=${r#*=}
        n=$((n + 1))
        name=rss$n
        out="$HARNESS_OUT/time-$tag-$rtag.txt"
        /usr/bin/time -v "$bin" create -p --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$rd" \
            --memory 1024 --cmdline "$HARNESS_GUEST_CMDLINE" --name "$name" > "$out" 2>&1 ||
            fail "$tag create with $rtag failed: $(grep -m 1 '^error' "$out")"
        evidence "$out"
        kb=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$out")
        [ -n "$kb" ] || fail "no maximum resident set size in $out"
        metric "rss_kb_${tag}_$rtag" "$kb"
        xl destroy "$name" || fail "cannot destroy $name"
    done
done
rm -f "$big"

# The figure issue 12 names: a 1 GiB ramdisk and a 4 GiB guest. It needs an emulated machine
# with room for the guest (HARNESS_QEMU_MEMORY=7168); the ramdisk is a sparse file on the
# share (dom0's own tmpfs could not hold it), read through the 9p mount.
free_mib=$(xl info | awk '/^free_memory/ { print $3 }')
if [ "${free_mib:-0}" -ge 4200 ]; then
    huge="$HARNESS_SHARE/raw1g.img"
    truncate -s 1G "$huge" || fail "cannot make $huge"
    out="$HARNESS_OUT/time-new-raw1g-4g.txt"
    /usr/bin/time -v "$HARNESS_PVBUILD" create -p --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$huge" \
        --memory 4096 --cmdline "$HARNESS_GUEST_CMDLINE" --name rss1g > "$out" 2>&1 ||
        fail "create of a 4 GiB guest with a 1 GiB ramdisk failed: $(grep -m 1 '^error' "$out")"
    evidence "$out"
    kb=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$out")
    [ -n "$kb" ] || fail "no maximum resident set size in $out"
    metric rss_kb_new_raw1g_4g "$kb"
    xl destroy rss1g || fail "cannot destroy rss1g"
    rm -f "$huge"
else
    fail "only ${free_mib:-?} MiB free in Xen: run with HARNESS_QEMU_MEMORY=7168 for the 4 GiB guest"
fi
pass

# harness-timeout: 1800
# harness-opt-in
# pvbuild-dump-core-pvh (issue 15): `pvbuild dump-core` of a PVH guest pvbuild made (Debian's
# kernel, `type = "pvh"`, 2 vcpus, 128 MiB), paused from its creation and never run (an
# auto-translated guest needs no guest p2m), against `xl dump-core` of the same guest: the
# two files must be identical byte for byte (`.xen_pfn`, the HVM magic; core-compare.py
# names the sections that differ otherwise). pvbuild's dump is taken first (seconds), xl's
# second: libxenguest maps each gfn from 0 to the guest's highest (its special pages end
# below pfn 0xff000) on its own, about a million mappings, most of them failing: 564 s
# under TCG in the first run.
# Metrics: pvbuild_dump_pvh_s, xl_dump_pvh_s (wall clock of each command).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
hname=pvbcorepvh
xc=/var/tmp/xl-pvh.core
pc=/var/tmp/pvb-pvh.core
cleanup() {
    "$pvb" destroy "$hname" > /dev/null 2>&1
    rm -f "$xc" "$pc"
}
trap cleanup EXIT
# A PVH guest, paused from its creation.
hcfg="$HARNESS_OUT/$hname.cfg"
cat > "$hcfg" <<CFG
name = "$hname"
type = "pvh"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "$HARNESS_GUEST_CMDLINE"
memory = 128
vcpus = 2
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
"$pvb" create -p -q -e "$hcfg" > "$HARNESS_OUT/create-pvh.log" 2>&1 || fail "pvbuild create -p (PVH) exited $?: $(head -n 1 "$HARNESS_OUT/create-pvh.log")"
xl list "$hname" > "$HARNESS_OUT/pvh.list" 2>&1 || fail "xl list $hname: $(paste -sd ' ' < "$HARNESS_OUT/pvh.list")"
evidence "$HARNESS_OUT/pvh.list"
t=$(now)
"$pvb" dump-core "$hname" "$pc" > "$HARNESS_OUT/pvb-dump-pvh.log" 2>&1 || fail "pvbuild dump-core (PVH) exited $?: $(head -n 1 "$HARNESS_OUT/pvb-dump-pvh.log")"
metric pvbuild_dump_pvh_s "$(elapsed "$t")"
readelf -S -n -W "$pc" > "$HARNESS_OUT/pvb-pvh.core.readelf" 2>&1
evidence "$HARNESS_OUT/pvb-pvh.core.readelf"
t=$(now)
xl dump-core "$hname" "$xc" > "$HARNESS_OUT/xl-dump-pvh.log" 2>&1 || fail "xl dump-core (PVH) exited $?: $(tail -n 2 "$HARNESS_OUT/xl-dump-pvh.log" | paste -sd ' ')"
metric xl_dump_pvh_s "$(elapsed "$t")"
readelf -S -n -W "$xc" > "$HARNESS_OUT/xl-pvh.core.readelf" 2>&1
grep -q '\.xen_pfn' "$HARNESS_OUT/xl-pvh.core.readelf" || fail "xl's PVH core has no .xen_pfn: $(grep -o '\.xen_[a-z_]*' "$HARNESS_OUT/xl-pvh.core.readelf" | paste -sd ' ')"
# pvbuild's dump is the older one here: if the wallclock moved after it, pvbuild dumps again.
pvb_again() { "$pvb" dump-core "$hname" "$pc" > "$HARNESS_OUT/pvb-dump-pvh2.log" 2>&1; }
cores_match "$xc" "$pc" "$HARNESS_OUT/compare-pvh.txt" pvb_again ||
    fail "pvbuild's PVH core differs from xl's: $(grep -v ' 0 bytes differ' "$HARNESS_OUT/compare-pvh.txt" | paste -sd '|')"
pages=$(sed -n 's/.*\.xen_pages *PROGBITS *[0-9a-f]* *[0-9a-f]* *\([0-9a-f]*\).*/\1/p' "$HARNESS_OUT/pvb-pvh.core.readelf")
note "dump-core PVH: identical to xl's ($(wc -c < "$pc") bytes, .xen_pages 0x$pages bytes, sections $(grep -o '\.xen_[a-z_]*' "$HARNESS_OUT/pvb-pvh.core.readelf" | sort -u | paste -sd ' '))"
rm -f "$xc" "$pc"
pass

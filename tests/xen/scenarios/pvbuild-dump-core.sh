# harness-timeout: 240
# pvbuild-dump-core (issue 15): `pvbuild dump-core` of a PV guest pvbuild made, running
# (2 vcpus, 128 MiB, idle in its init) then paused, against `xl dump-core` of the same paused
# guest: the two files must be identical byte for byte (tests/xen/dom0/core-compare.py
# names the sections that differ otherwise). xl's dump is taken twice first, to show that
# libxenguest's output is deterministic for a paused guest.
# A PVH guest's dump: pvbuild-dump-core-pvh.
# Refusals, one line each, no file left: a domain that does not exist, a file that cannot
# be written (a missing directory).
# Metrics: xl_dump_s, pvbuild_dump_s (wall clock of each command).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
name=pvbcore
xc=/var/tmp/xl.core
pc=/var/tmp/pvb.core
cleanup() {
    "$pvb" destroy "$name" > /dev/null 2>&1
    rm -f "$xc" /var/tmp/xl2.core "$pc"
}
trap cleanup EXIT
cfg="$HARNESS_OUT/$name.cfg"
pv_cfg "$name" "$HARNESS_GUEST_CMDLINE pvbuild.idle=600" 'vcpus = 2' | sed 's/^memory = .*/memory = 128/' > "$cfg"
"$pvb" create -q -e "$cfg" > "$HARNESS_OUT/create.log" 2>&1 || fail "pvbuild create exited $?: $(head -n 1 "$HARNESS_OUT/create.log")"
clog() { tr -d '\r' < "$(console_log "$name")" 2>/dev/null; }
idle() { clog | grep -q PVBUILD-GUEST-IDLE; }
wait_for 240 idle || fail "the guest did not reach its idle wait: $(clog | tail -n 2 | paste -sd ' ')"
evidence "$(console_log "$name")"
xl pause "$name" || fail "xl pause failed"

t=$(now)
xl dump-core "$name" "$xc" > "$HARNESS_OUT/xl-dump.log" 2>&1 || fail "xl dump-core exited $?: $(tail -n 2 "$HARNESS_OUT/xl-dump.log" | paste -sd ' ')"
metric xl_dump_s "$(elapsed "$t")"
xl dump-core "$name" /var/tmp/xl2.core > /dev/null 2>&1 || fail "the second xl dump-core failed"
cmp -s "$xc" /var/tmp/xl2.core || fail "two xl dump-core of the paused guest differ: $(python3 "$HARNESS_REPO/tests/xen/dom0/core-compare.py" "$xc" /var/tmp/xl2.core | grep -v ' 0 bytes differ' | paste -sd '|')"
rm -f /var/tmp/xl2.core
readelf -S -n -W "$xc" > "$HARNESS_OUT/xl.core.readelf" 2>&1

t=$(now)
"$pvb" dump-core "$name" "$pc" > "$HARNESS_OUT/pvb-dump.log" 2>&1 || fail "pvbuild dump-core exited $?: $(head -n 1 "$HARNESS_OUT/pvb-dump.log")"
metric pvbuild_dump_s "$(elapsed "$t")"
readelf -S -n -W "$pc" > "$HARNESS_OUT/pvb.core.readelf" 2>&1
evidence "$HARNESS_OUT/pvb.core.readelf"
python3 "$HARNESS_REPO/tests/xen/dom0/core-compare.py" "$xc" "$pc" > "$HARNESS_OUT/compare.txt" 2>&1 ||
    fail "pvbuild's core differs from xl's: $(grep -v ' 0 bytes differ' "$HARNESS_OUT/compare.txt" | paste -sd '|')"
pages=$(sed -n 's/.*\.xen_pages *PROGBITS *[0-9a-f]* *[0-9a-f]* *\([0-9a-f]*\).*/\1/p' "$HARNESS_OUT/pvb.core.readelf")
note "dump-core: identical to xl's ($(wc -c < "$pc") bytes, .xen_pages 0x$pages bytes)"
rm -f "$xc" "$pc"

# Refusals.
"$pvb" dump-core 32000 "$pc" > "$HARNESS_OUT/missing.x" 2>&1 && fail "dump-core of a missing domain succeeded"
[ "$(wc -l < "$HARNESS_OUT/missing.x")" = 1 ] && grep -q '^error: ' "$HARNESS_OUT/missing.x" || fail "missing domain: $(paste -sd ' ' < "$HARNESS_OUT/missing.x")"
[ ! -e "$pc" ] || fail "a refused dump left $pc"
"$pvb" dump-core "$name" /var/tmp/nosuchdir/core > "$HARNESS_OUT/unwritable.x" 2>&1 && fail "dump-core into a missing directory succeeded"
[ "$(wc -l < "$HARNESS_OUT/unwritable.x")" = 1 ] && grep -q '^error: .*nosuchdir' "$HARNESS_OUT/unwritable.x" || fail "unwritable file: $(paste -sd ' ' < "$HARNESS_OUT/unwritable.x")"
note "refused in one line: $(cat "$HARNESS_OUT/missing.x") / $(cat "$HARNESS_OUT/unwritable.x")"
pass

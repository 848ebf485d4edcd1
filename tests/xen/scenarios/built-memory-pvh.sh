# harness-timeout: 600
# built-memory-pvh (issues 12 and 14): built-memory for a PVH guest. The same PVH config
# (Debian's kernel, the harness ramdisk, $HARNESS_GUEST_MEMORY MiB, 2 vcpus) is built paused
# by xl twice (the soundness case, with HARNESS_XL_SIDE=1: the two dumps must be identical, or the normalisation is
# wrong) and by xl and pvbuild (the comparison), each domain read from dom0 by
# `memdump hvm` (tests/xen/memdump/memdump.c: Xen's own libraries and headers, nothing of
# pvbuild's). An HVM-container guest has no p2m: its pages are compared by guest-physical
# frame, from 0 to its maximum gpfn ("absent", "zero" or a hash), beside its domain info,
# event channels, every HVM parameter, every record of its HVM context (the CPU record's tsc
# masked: time), the start info its boot vcpu's %rbx points at (field by field, modules and
# memory map entry by entry) and its grant-table entries.
# xl's and pvbuild's dumps must be identical (any changed line is a FAIL), and so must the
# domains' xenstore trees (/local/domain/D, /vm/UUID, /libxl/D, device-model/D and the
# backends, values and permissions; the domid, uuid, name, pty and start time normalised).
# The shared part: tests/xen/dom0/memdump-compare.sh.
# Metrics: *_create_s, *_dump_s per build.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
. "$HARNESS_REPO/tests/xen/dom0/memdump-compare.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
bm_setup built-memory-pvh

# The config: pvbuild-pvh's (pvh-lib.sh; its command line has pvbuild.cpus, which neither
# build reads).
. "$HARNESS_REPO/tests/xen/dom0/pvh-lib.sh"
bm_cfg() { pvh_cfg "$1"; }
# Ready: xenconsoled has taken the console (it writes console/tty).
bm_ready() { xenstore-read "/local/domain/$1/console/tty" > /dev/null 2>&1; }

bm_build_dump xl bmpvh-xl
sound=
if bm_soundness; then
    bm_build_dump xl bmpvh-xl2
    sound=bmpvh-xl2
fi
bm_build_dump pvbuild bmpvh-pvb
[ "$(grep -c '^page ' "$W/bmpvh-xl.dump")" -ge 3 ] || fail "xl's dump has too few page lines"
grep -q '^hvm_start_info.magic 0x336ec578 ' "$W/bmpvh-xl.dump" || fail "xl's dump has no start info at the boot vcpu's %rbx"
note "xl's dump: $(wc -l < "$W/bmpvh-xl.dump") lines, $(grep '^pages present' "$W/bmpvh-xl.dump")"
# Soundness (two xl builds identical), then xl against pvbuild: identical, page for page and
# field for field (the DSDT too: libacpi's dsdt_pvh, builder-core/src/pvh/dsdt.rs), and the
# xenstore trees.
bm_compare bmpvh-xl "$sound" bmpvh-pvb pvh
pass

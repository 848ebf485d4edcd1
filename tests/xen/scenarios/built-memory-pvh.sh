# harness-timeout: 600
# built-memory-pvh (issues 12 and 14): built-memory for a PVH guest. The same PVH config
# (Debian's kernel, the harness ramdisk, $HARNESS_GUEST_MEMORY MiB, 2 vcpus) is built paused
# by xl twice (the soundness case: the two dumps must be identical, or the normalisation is
# wrong) and by xl and pvbuild (the comparison), each domain read from dom0 by
# `memdump hvm` (tests/xen/memdump/memdump.c: Xen's own libraries and headers, nothing of
# pvbuild's). An HVM-container guest has no p2m: its pages are compared by guest-physical
# frame, from 0 to its maximum gpfn ("absent", "zero" or a hash), beside its domain info,
# event channels, every HVM parameter, every record of its HVM context (the CPU record's tsc
# masked: time), the start info its boot vcpu's %rbx points at (field by field, modules and
# memory map entry by entry) and its grant-table entries.
# xl's and pvbuild's dumps must be identical (any changed line is a FAIL), and so must the
# domains' xenstore trees (/local/domain/D, /vm/UUID, /libxl/D; the domid, uuid, name, pty
# and start time normalised).
# Metrics: *_create_s, *_dump_s per build.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
md=/tmp/built-memory-pvh-memdump
if [ -x "$HARNESS_SHARE/bin/memdump" ]; then
    cp "$HARNESS_SHARE/bin/memdump" "$md" || fail "cannot copy $HARNESS_SHARE/bin/memdump to $md"
else
    gcc -O2 -Wall -o "$md" "$HARNESS_REPO/tests/xen/memdump/memdump.c" -lxenctrl -lxenforeignmemory -lxenguest \
        > "$HARNESS_OUT/gcc.log" 2>&1 || fail "memdump.c did not compile: $(head -n 3 "$HARNESS_OUT/gcc.log" | paste -sd ' ')"
fi
W=/tmp/built-memory-pvh
rm -rf "$W" && mkdir -p "$W" || fail "cannot make $W"
trap 'cp "$W"/* "$HARNESS_OUT"/ 2>/dev/null' EXIT

cfg() {
    cat <<CFG
name = "$1"
type = "pvh"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "$HARNESS_GUEST_CMDLINE"
memory = $HARNESS_GUEST_MEMORY
vcpus = 2
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}

# build_dump TOOL NAME: create NAME paused with TOOL, wait for xenconsoled, dump it into
# $W/NAME.dump and its normalised xenstore trees into $W/NAME.xs, destroy it.
build_dump() {
    cfg "$2" > "$W/$2.cfg"
    _t=$(now)
    case $1 in
    xl) xl create -p "$W/$2.cfg" > "$W/$2.create.log" 2>&1 ;;
    pvbuild) "$HARNESS_PVBUILD" create -p "$W/$2.cfg" > "$W/$2.create.log" 2>&1 ;;
    esac || fail "$1 create -p exited $?: $(grep -v '^libxl: debug' "$W/$2.create.log" | tail -n 2 | paste -sd ' ')"
    metric "$2_create_s" "$(elapsed "$_t")"
    _d=$(xl domid "$2") || fail "$1 create -p left no domain $2"
    _tty() { xenstore-read "/local/domain/$_d/console/tty" > /dev/null 2>&1; }
    wait_for 60 _tty || fail "xenconsoled did not take $2's console within 60 s"
    _t=$(now)
    "$md" hvm "$_d" > "$W/$2.dump" 2> "$W/$2.dump.err" ||
        fail "memdump hvm $2 (d$_d) exited $?: $(grep -v ' s$' "$W/$2.dump.err" | head -n 2 | paste -sd ' ')"
    metric "$2_dump_s" "$(elapsed "$_t")"
    _vm=$(xenstore-read "/local/domain/$_d/vm" 2>/dev/null)
    _uuid=${_vm##*/}
    {
        xenstore-ls -f "/local/domain/$_d" 2>&1
        [ -z "$_vm" ] || xenstore-ls -f "$_vm" 2>&1
        xenstore-ls -f "/libxl/$_d" 2>/dev/null
    } | sed -e "s|/local/domain/$_d/|/local/domain/DOMID/|g" -e "s|^/local/domain/$_d |/local/domain/DOMID |" \
        -e "s|^/libxl/$_d/|/libxl/DOMID/|" -e "s|^/libxl/$_d |/libxl/DOMID |" \
        -e "s|/backend/\([a-z0-9_-]*\)/$_d/|/backend/\1/DOMID/|g" -e "s|= \"$2\"\$|= \"NAME\"|" \
        -e "s|^\(/local/domain/DOMID/domid\) = \"$_d\"|\1 = \"DOMID\"|" -e "s|^\(.*/frontend-id\) = \"$_d\"|\1 = \"DOMID\"|" \
        -e "s|\(/console/tty\) = \"/dev/pts/[0-9]*\"|\1 = \"PTS\"|" -e "s|\(/start_time\) = \".*\"|\1 = \"TIME\"|" |
        { if [ -n "$_uuid" ]; then sed "s|$_uuid|UUID|g"; else cat; fi; } | LC_ALL=C sort > "$W/$2.xs"
    xl destroy "$2" > /dev/null 2>&1 || fail "xl destroy $2 exited $?"
    wait_for 60 domain_gone "$2" || fail "$2 still exists 60 s after xl destroy"
}

build_dump xl bmpvh-xl
build_dump xl bmpvh-xl2
build_dump pvbuild bmpvh-pvb
[ "$(grep -c '^page ' "$W/bmpvh-xl.dump")" -ge 3 ] || fail "xl's dump has too few page lines"
grep -q '^hvm_start_info.magic 0x336ec578 ' "$W/bmpvh-xl.dump" || fail "xl's dump has no start info at the boot vcpu's %rbx"
note "xl's dump: $(wc -l < "$W/bmpvh-xl.dump") lines, $(grep '^pages present' "$W/bmpvh-xl.dump")"

# Soundness: two xl builds of one config are identical.
diff "$W/bmpvh-xl.dump" "$W/bmpvh-xl2.dump" > "$W/sound.dump.diff" || {
    evidence "$HARNESS_OUT/sound.dump.diff"
    fail "two PVH guests built by xl differ, the normalisation is wrong: $(grep -m 2 '^[<>]' "$W/sound.dump.diff" | paste -sd '|')"
}
# xl against pvbuild: identical, page for page and field for field (the DSDT too: libacpi's
# dsdt_pvh, builder-core/src/pvh/dsdt.rs).
diff "$W/bmpvh-xl.dump" "$W/bmpvh-pvb.dump" > "$W/pvh.dump.diff" || {
    evidence "$HARNESS_OUT/pvh.dump.diff"
    fail "pvbuild's PVH guest differs from xl's (< xl, > pvbuild): $(grep -c '^[<>] ' "$W/pvh.dump.diff") lines, first: $(grep -m 3 '^[<>] ' "$W/pvh.dump.diff" | paste -sd '|')"
}
note "identical to xl's: $(wc -l < "$W/bmpvh-xl.dump") lines, $(grep -c '^page ' "$W/bmpvh-xl.dump") page lines"
diff "$W/bmpvh-xl.xs" "$W/bmpvh-pvb.xs" > "$W/pvh.xs.diff" || {
    evidence "$HARNESS_OUT/pvh.xs.diff"
    fail "the xenstore trees differ (< xl, > pvbuild): $(grep -m 4 '^[<>]' "$W/pvh.xs.diff" | paste -sd '|')"
}
note "xenstore trees equal ($(wc -l < "$W/bmpvh-xl.xs") lines)"
pass

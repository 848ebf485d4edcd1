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
# Every line changed between xl's and pvbuild's dumps must match the allow-list below, each
# entry a deliberate difference written down in docs/pvh.md ("Deliberate difference: the
# DSDT"); any other difference is a FAIL. The domains' xenstore trees (/local/domain/D,
# /vm/UUID, /libxl/D; the domid, uuid, name, pty and start time normalised) must be equal.
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

# One entry a line: ERE|WHAT. A changed line is explained when it matches ERE from its
# first character. libxl's DSDT is libacpi's 28 KiB of AML, pvbuild's an empty definition
# block: xl's ACPI modules take 9 pages (the RSDP at 0xfc008000), pvbuild's 3 (the RSDP at
# 0xfc002000), so the ACPI pages, the start info's rsdp_paddr and its memory map's three ACPI
# entries, and the domain's page count differ (docs/pvh.md).
allow_list='page 0xfc00[0-9a-f][ -]|the ACPI pages (DSDT)
hvm_start_info\.rsdp_paddr |the RSDP address (DSDT)
hvm_start_info\.memmap\[[234]\] addr 0xfc00[0-9a-f]{4} size 0x[0-9a-f]+ type 3 |the ACPI entries of the memory map (DSDT)
dominfo\.tot_pages |the ACPI pages counted (DSDT)
pages present |the ACPI pages counted (DSDT)'

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
# xl against pvbuild: every changed line explained. The start info's page differs as its
# decoded fields do (rsdp_paddr, the ACPI entries of the memory map): its own hash line too.
si_pfn=$(sed -n 's/^hvm_start_info.address 0x\([0-9a-f]*\)000$/\1/p' "$W/bmpvh-xl.dump")
[ -n "$si_pfn" ] || fail "xl's dump gives no page-aligned start info address"
allow_list="$allow_list
page 0x$si_pfn hash |the start info's page (its rsdp_paddr and memory map, above)"
diff "$W/bmpvh-xl.dump" "$W/bmpvh-pvb.dump" > "$W/pvh.dump.diff"
grep '^[<>] ' "$W/pvh.dump.diff" > "$W/pvh.changed"
cp "$W/pvh.changed" "$W/pvh.unexplained"
while IFS='|' read -r _re _what; do
    # An entry that is not a valid ERE (grep exits 2) must fail, not empty the list.
    grep -Eq "^[<>] ($_re)" /dev/null
    [ $? -le 1 ] || fail "allow-list entry '$_re' is not a valid ERE"
    if grep -Eq "^[<>] ($_re)" "$W/pvh.changed"; then
        note "allowed difference ($_what): $(grep -E "^[<>] ($_re)" "$W/pvh.changed" | head -n 2 | paste -sd '|')"
    else
        note "allow-list entry unused (difference gone?): $_what"
    fi
    grep -Ev "^[<>] ($_re)" "$W/pvh.unexplained" > "$W/pvh.unexplained.tmp"
    mv "$W/pvh.unexplained.tmp" "$W/pvh.unexplained"
done <<LIST
$allow_list
LIST
n=$(wc -l < "$W/pvh.unexplained")
if [ "$n" -gt 0 ]; then
    evidence "$HARNESS_OUT/pvh.unexplained"
    fail "pvbuild's PVH guest differs from xl's beyond the allow-list (< xl, > pvbuild): $n lines, first: $(head -n 3 "$W/pvh.unexplained" | paste -sd '|')"
fi
note "equal but for the allow-list: $(wc -l < "$W/pvh.changed") changed lines allowed of $(wc -l < "$W/bmpvh-xl.dump")"
diff "$W/bmpvh-xl.xs" "$W/bmpvh-pvb.xs" > "$W/pvh.xs.diff" || {
    evidence "$HARNESS_OUT/pvh.xs.diff"
    fail "the xenstore trees differ (< xl, > pvbuild): $(grep -m 4 '^[<>]' "$W/pvh.xs.diff" | paste -sd '|')"
}
note "xenstore trees equal ($(wc -l < "$W/bmpvh-xl.xs") lines)"
pass

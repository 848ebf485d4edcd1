# harness-timeout: 900
# built-memory (issue 12, "The proof: built memory, compared with xl's"): the same
# guest is built twice, paused, and the two domains are compared as Xen holds
# them, read from dom0 by tests/xen/memdump/memdump.c (built by run.sh with the
# host's gcc against libxen-dev: Xen's own libraries and headers, nothing of pvbuild's;
# gcc in dom0 when run.sh did not build it).
#
# Cases, in this order (the issue's order of proof):
#   sound:  (with HARNESS_XL_SIDE=1, opt-in) xl create -p twice (same config, two names), Debian's kernel + the
#           harness ramdisk: the two must compare EQUAL with no allow-list at
#           all, or the normalisation is wrong;
#   pvtk:   xl vs pvbuild, the project's PV test kernel + a 300001-byte module, 32 MiB;
#   debian: xl vs pvbuild, $HARNESS_GUEST_KERNEL + $HARNESS_GUEST_RAMDISK,
#           $HARNESS_GUEST_MEMORY MiB, $HARNESS_GUEST_CMDLINE;
#   grub:   xl vs pvbuild, Debian's PV GRUB (/usr/lib/grub-xen/grub-x86_64-xen.bin), 128 MiB.
# Both builders get the same xl config file (`xl create -p CFG`, `pvbuild create -p CFG`)
# but for the name.
#
# What is compared (memdump.c's header says how each is read):
#   - domain info (tot_pages, max_pages, vcpus, flags, ...), every field of vcpu 0's
#     vcpu_guest_context (XEN_DOMCTL_getvcpucontext), the state of event channels 0..7;
#   - every guest page in pfn order: its Xen type (L1..L4, pinned), page tables
#     entry by entry (flags exactly, frame as pfn), the p2m list, start_info field by
#     field, every other page as "zero" or a 64-bit hash of its 4096 bytes; Xen's M2P
#     checked against the guest's p2m;
#   - shared_info (time fields aside) and grant-table frame 0 (xc_dom_gnttab_seed's
#     console and xenstore entries);
#   - the domain's xenstore trees (`xenstore-ls -f` of /local/domain/D, /vm/UUID and
#     /libxl/D), sorted.
#
# Why each normalisation is sound (it removes only what must differ between two
# domains built from one config):
#   - machine frame numbers (cr3, page-table entries, p2m entries, start_info's
#     store and console frames, grant frames, gdt_frames) are written as the pfn the
#     domain's own p2m maps to that mfn: the mfns Xen hands out differ per domain,
#     the pfn is what the builder chose. A frame outside the p2m prints as
#     "mfn-not-in-p2m" (only Xen's own L4 slots, filled by Xen when the table is
#     pinned, point there; the soundness case shows they are equal);
#   - start_info.shared_info is checked to be this domain's shared_info frame
#     (XEN_DOMCTL_getdomaininfo), not printed: Xen allocates that page;
#   - dominfo: cpu_time (time), handle (the uuid) and shared_info_frame (above) are
#     left out;
#   - shared_info: the vcpu_time_info records and wc_* (wallclock) are left out: time;
#   - xenstore: the domid (in paths and the `domid` value), the uuid, the name, the
#     store and console frame numbers (replaced by STORE_MFN/CONSOLE_MFN only when
#     they equal start_info's, so a wrong ring-ref still shows), console/tty (the pty
#     xenconsoled opened) and /vm/UUID/start_time (time) are replaced by placeholders;
#     lines are sorted (xenstore nodes are unordered).
#
# The verdict: the sound case must have no difference at all. In the xl-vs-pvbuild
# cases every changed line must match an entry of the allow-list below, each entry
# naming a deliberate or pending difference documented in docs/conformance.md; any
# other difference is a FAIL (after all cases ran, so one run shows everything).
# For a differing ordinary page, `cmp -l` of the two pages (first 24 bytes) is kept
# in CASE.page-PFN.cmp. Files: CASE.{xl,pvbuild,xl2}.dump / .xs, CASE.dump.diff,
# CASE.xs.diff, CASE.unexplained.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
grub=/usr/lib/grub-xen/grub-x86_64-xen.bin
[ -r "$grub" ] || fail "no $grub (package grub-xen-host; tests/xen/install-deps.sh installs it)"
t_all=$(now)

# ---- the allow-list -----------------------------------------------------------
# One entry a line: CASES|ERE|WHAT. A changed line (either side) of case C is
# explained when C is in CASES (comma-separated) and the line matches ERE from its
# first character (the ERE is anchored: no ^). Each entry is a difference written
# down in docs/conformance.md (section named in WHAT). Entries that explain nothing
# in a run are noted, so a fixed difference shows its entry is due for removal.
# Empty: the one entry it had (kernel_sp, docs/conformance.md) went with its fix. Any
# difference now fails the scenario.
allow_list=''

# ---- the dumper ---------------------------------------------------------------
# run.sh builds it on the host into the share; it runs from dom0's tmpfs (not paged in
# over 9p). Without it (a run.sh that did not build it), gcc builds it here (over a minute).
md=/tmp/built-memory-memdump
if [ -x "$HARNESS_SHARE/bin/memdump" ]; then
    cp "$HARNESS_SHARE/bin/memdump" "$md" || fail "cannot copy $HARNESS_SHARE/bin/memdump to $md"
else
    t0=$(now)
    gcc -O2 -Wall -o "$md" "$HARNESS_REPO/tests/xen/memdump/memdump.c" -lxenctrl -lxenforeignmemory -lxenguest \
        > "$HARNESS_OUT/gcc.log" 2>&1 || fail "memdump.c did not compile: $(head -n 3 "$HARNESS_OUT/gcc.log" | paste -sd ' ')"
    metric compile_memdump_in_dom0_s "$(elapsed "$t0")"
fi

# The work files live in dom0's tmpfs (the share is uncached 9p, slow under a loaded
# host) and are copied to $HARNESS_OUT once, when the scenario exits, whatever the verdict.
W=/tmp/built-memory
rm -rf "$W" && mkdir -p "$W" || fail "cannot make $W"
trap 'cp "$W"/* "$HARNESS_OUT"/ 2>/dev/null' EXIT

# cfg NAME KERNEL RAMDISK MEMORY CMDLINE: the xl config both builders read
# (RAMDISK and CMDLINE may be empty: no line).
cfg() {
    printf 'name = "%s"\ntype = "pv"\nkernel = "%s"\n' "$1" "$2"
    [ -z "$3" ] || printf 'ramdisk = "%s"\n' "$3"
    printf 'memory = %s\nvcpus = 1\n' "$4"
    [ -z "$5" ] || printf 'extra = "%s"\n' "$5"
    printf 'on_poweroff = "destroy"\non_reboot = "destroy"\non_crash = "destroy"\n'
}

# build TOOL NAME CFG LOG: create the domain paused with xl or pvbuild.
build() {
    case $1 in
    xl) xl create -p "$3" > "$4" 2>&1 ;;
    pvbuild) "$HARNESS_PVBUILD" create -p "$3" > "$4" 2>&1 ;;
    esac || fail "$1 create -p $3 exited $?: $(grep -v '^libxl: debug' "$4" | tail -n 2 | paste -sd ' ')"
    xl domid "$2" > /dev/null 2>&1 || fail "$1 create -p left no domain $2"
}

# snapshot NAME BASE: BASE.dump (memdump) and BASE.xs (normalised xenstore trees).
snapshot() {
    _d=$(xl domid "$1") || fail "no domain $1"
    # xenconsoled maps the console ring and binds its channel when it notices the domain,
    # then writes console/tty: wait for that, so both domains are read in the same state.
    _tty() { xenstore-read "/local/domain/$_d/console/tty" > /dev/null 2>&1; }
    wait_for 60 _tty || fail "xenconsoled did not take $1's console (no console/tty) within 60 s"
    "$md" dump "$_d" "$2.frames" > "$2.dump" 2> "$2.dump.err" ||
        fail "memdump dump $1 (d$_d) exited $?: $(grep -v ' s$' "$2.dump.err" | head -n 2 | paste -sd ' ')"
    read -r _store _cons < "$2.frames" || fail "memdump wrote no frames for $1"
    [ -n "$_cons" ] || fail "memdump's frames for $1: '$_store $_cons'"
    _vm=$(xenstore-read "/local/domain/$_d/vm" 2>/dev/null)
    _uuid=${_vm##*/}
    {
        xenstore-ls -f "/local/domain/$_d" 2>&1
        [ -z "$_vm" ] || xenstore-ls -f "$_vm" 2>&1
        xenstore-ls -f "/libxl/$_d" 2>/dev/null
    } | sed -e "s|/local/domain/$_d/|/local/domain/DOMID/|g" -e "s|^/local/domain/$_d |/local/domain/DOMID |" \
        -e "s|^/libxl/$_d/|/libxl/DOMID/|" -e "s|/backend/\([a-z0-9_-]*\)/$_d/|/backend/\1/DOMID/|g" \
        -e "s|^\(/local/domain/DOMID/domid\) = \"$_d\"|\1 = \"DOMID\"|" \
        -e "s|^\(.*/frontend-id\) = \"$_d\"|\1 = \"DOMID\"|" \
        -e "s|\"$_store\"|\"STORE_MFN\"|" -e "s|\"$_cons\"|\"CONSOLE_MFN\"|" \
        -e "s|= \"$1\"\$|= \"NAME\"|" -e "s|\(/console/tty\) = \"/dev/pts/[0-9]*\"|\1 = \"PTS\"|" \
        -e "s|\(/start_time\) = \".*\"|\1 = \"TIME\"|" |
        { if [ -n "$_uuid" ]; then sed "s|$_uuid|UUID|g"; else cat; fi; } | LC_ALL=C sort > "$2.xs"
    [ -s "$2.xs" ] || fail "no xenstore tree for $1 (d$_d)"
}

# page_cmps CASE A_NAME B_NAME: cmp -l of up to 6 ordinary pages whose hashes differ.
page_cmps() {
    _da=$(xl domid "$2") _db=$(xl domid "$3")
    grep '^[<>] page 0x[0-9a-f]* [^ ]* hash ' "$W/$1.dump.diff" | awk '{ print $3 }' | sort -u | head -n 6 |
        while read -r _pfn; do
            "$md" page "$_da" "$_pfn" > "$W/$1.a.page" 2>/dev/null
            "$md" page "$_db" "$_pfn" > "$W/$1.b.page" 2>/dev/null
            {
                echo "page $_pfn: cmp -l (offset from 1, octal bytes: $2 then $3), first 24 of $(cmp -l "$W/$1.a.page" "$W/$1.b.page" 2>/dev/null | wc -l) differing bytes"
                cmp -l "$W/$1.a.page" "$W/$1.b.page" 2>&1 | head -n 24
            } > "$W/$1.page-$_pfn.cmp"
            evidence "$HARNESS_OUT/$1.page-$_pfn.cmp"
        done
    rm -f "$W/$1.a.page" "$W/$1.b.page"
}

# The differences found that no allow-list entry explains: "case: lines; ..."
unexplained=
used_entries=

# compare CASE TOOL_A TOOL_B KERNEL RAMDISK MEMORY CMDLINE
compare() {
    _case=$1 _ta=$2 _tb=$3
    _a=bm-$_case-a _b=bm-$_case-b
    _sa=$_ta _sb=$_tb
    [ "$_ta" != "$_tb" ] || _sb=${_tb}2
    cfg "$_a" "$4" "$5" "$6" "$7" > "$W/$_case.$_sa.cfg"
    cfg "$_b" "$4" "$5" "$6" "$7" > "$W/$_case.$_sb.cfg"
    _t=$(now)
    build "$_ta" "$_a" "$W/$_case.$_sa.cfg" "$W/$_case.$_sa.create.log"
    metric "${_case}_${_sa}_create_s" "$(elapsed "$_t")"
    _t=$(now)
    snapshot "$_a" "$W/$_case.$_sa"
    metric "${_case}_${_sa}_dump_s" "$(elapsed "$_t")"
    _t=$(now)
    build "$_tb" "$_b" "$W/$_case.$_sb.cfg" "$W/$_case.$_sb.create.log"
    metric "${_case}_${_sb}_create_s" "$(elapsed "$_t")"
    _t=$(now)
    snapshot "$_b" "$W/$_case.$_sb"
    metric "${_case}_${_sb}_dump_s" "$(elapsed "$_t")"
    _t=$(now)
    diff "$W/$_case.$_sa.dump" "$W/$_case.$_sb.dump" > "$W/$_case.dump.diff"
    diff "$W/$_case.$_sa.xs" "$W/$_case.$_sb.xs" > "$W/$_case.xs.diff"
    page_cmps "$_case" "$_a" "$_b"
    metric "${_case}_diff_s" "$(elapsed "$_t")"
    _t=$(now)
    # Both at once: Xen frees (and scrubs) each guest's memory, slow under TCG.
    xl destroy "$_a" > /dev/null 2>&1 &
    xl destroy "$_b" > /dev/null 2>&1 &
    wait
    wait_for 60 domain_gone "$_a" || fail "$_case: $_a still exists 60 s after xl destroy"
    wait_for 60 domain_gone "$_b" || fail "$_case: $_b still exists 60 s after xl destroy"
    metric "${_case}_destroy_s" "$(elapsed "$_t")"
    _t=$(now)
    # The changed lines, "< " (A) and "> " (B) kept; then those no entry explains.
    cat "$W/$_case.dump.diff" "$W/$_case.xs.diff" | grep '^[<>] ' > "$W/$_case.changed"
    cp "$W/$_case.changed" "$W/$_case.unexplained"
    if [ "$_case" != sound ]; then
        printf '%s\n' "$allow_list" | while IFS='|' read -r _cases _re _what; do
            case ",$_cases," in *",$_case,"*) ;; *) continue ;; esac
            if grep -Eq "^[<>] ($_re)" "$W/$_case.changed"; then
                note "$_case: allowed difference ($_what): $(grep -E "^[<>] ($_re)" "$W/$_case.changed" | head -n 2 | paste -sd '|')"
            else
                note "$_case: allow-list entry unused (difference gone?): $_what"
            fi
            grep -Ev "^[<>] ($_re)" "$W/$_case.unexplained" > "$W/$_case.unexplained.tmp"
            mv "$W/$_case.unexplained.tmp" "$W/$_case.unexplained"
        done
    fi
    metric "${_case}_allow_list_s" "$(elapsed "$_t")"
    _n=$(wc -l < "$W/$_case.unexplained")
    _lines=$(wc -l < "$W/$_case.$_sa.dump")
    if [ "$_n" -gt 0 ]; then
        evidence "$HARNESS_OUT/$_case.unexplained"
        note "$_case ($_ta vs $_tb): $_n unexplained changed lines, first: $(head -n 2 "$W/$_case.unexplained" | paste -sd '|')"
        unexplained="${unexplained:+$unexplained; }$_case: $_n lines ($(head -n 1 "$W/$_case.unexplained"))"
    elif [ "$_case" = sound ]; then
        note "$_case ($_ta vs $_tb): equal ($_lines dump lines, $(wc -l < "$W/$_case.$_sa.xs") xenstore lines)"
    else
        note "$_case ($_ta vs $_tb): equal but for the allow-list ($(wc -l < "$W/$_case.changed") changed lines allowed; $_lines dump lines, $(wc -l < "$W/$_case.$_sa.xs") xenstore lines)"
    fi
}

mod=$W/pvtk-module.bin
{ printf 'PVTESTMOD\n'; head -c 300001 /dev/urandom; } > "$mod" || fail "cannot write $mod"

if bm_soundness; then
    compare sound xl xl "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_MEMORY" "$HARNESS_GUEST_CMDLINE"
    # An unsound comparison proves nothing: stop here.
    [ -z "$unexplained" ] || fail "two guests built by xl differ, the normalisation is wrong: $unexplained"
fi
compare pvtk xl pvbuild "$HARNESS_PV_TEST_KERNEL" "$mod" 32 "built-memory token"
compare debian xl pvbuild "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$HARNESS_GUEST_MEMORY" "$HARNESS_GUEST_CMDLINE"
compare grub xl pvbuild "$grub" "" 128 ""
metric total_s "$(elapsed "$t_all")"
[ -z "$unexplained" ] || fail "pvbuild's guest differs from xl's beyond the allow-list (< xl, > pvbuild): $unexplained"
pass

# The built-memory comparison of HVM-container guests (PVH and HVM), shared by the scenarios
# built-memory-pvh and built-memory-hvm (sourced after lib.sh; POSIX sh, runs in dom0).
#
# One xl config is built paused by xl twice (the soundness case) and by pvbuild; each paused
# domain is read from dom0 by `memdump hvm` (tests/xen/memdump/memdump.c: Xen's own libraries
# and headers, nothing of pvbuild's) and its xenstore trees are listed, normalised; then the
# domain is destroyed. The scenario defines:
#   bm_cfg NAME     the xl config of guest NAME, on stdout;
#   bm_ready DOMID  true once the paused domain is as the toolstack leaves it (polled).
# and calls bm_setup, bm_build_dump (three times) and bm_compare.

# bm_setup TAG: memdump into $md (the harness's build, else compiled here), the work directory
# $W=/tmp/TAG, whose files are copied into the results when the scenario exits.
bm_setup() {
    md=/tmp/$1-memdump
    if [ -x "$HARNESS_SHARE/bin/memdump" ]; then
        cp "$HARNESS_SHARE/bin/memdump" "$md" || fail "cannot copy $HARNESS_SHARE/bin/memdump to $md"
    else
        gcc -O2 -Wall -o "$md" "$HARNESS_REPO/tests/xen/memdump/memdump.c" -lxenctrl -lxenforeignmemory -lxenguest \
            > "$HARNESS_OUT/gcc.log" 2>&1 || fail "memdump.c did not compile: $(head -n 3 "$HARNESS_OUT/gcc.log" | paste -sd ' ')"
    fi
    W=/tmp/$1
    rm -rf "$W" && mkdir -p "$W" || fail "cannot make $W"
    trap 'cp "$W"/* "$HARNESS_OUT"/ 2>/dev/null' EXIT
}

# bm_trees DOMID NAME: the domain's xenstore trees (/local/domain/D, /vm/UUID, /libxl/D, its
# device model's /local/domain/0/device-model/D and its backends /local/domain/0/backend/*/D),
# each node with its permissions (`xenstore-ls -p`, the padding dropped), normalised: the domid
# (in paths, values and permissions), uuid, name, console pty, start time and QEMU's process
# id, sorted.
bm_trees() {
    _vm=$(xenstore-read "/local/domain/$1/vm" 2>/dev/null)
    _uuid=${_vm##*/}
    {
        xenstore-ls -fp "/local/domain/$1" 2>&1
        [ -z "$_vm" ] || xenstore-ls -fp "$_vm" 2>&1
        xenstore-ls -fp "/libxl/$1" 2>/dev/null
        xenstore-ls -fp "/local/domain/0/device-model/$1" 2>/dev/null
        for _b in $(xenstore-list /local/domain/0/backend 2>/dev/null); do
            xenstore-ls -fp "/local/domain/0/backend/$_b/$1" 2>/dev/null
        done
    } | sed -e "s|^\(.*\"\)[ .]*(\([^()]*\))\$|\1 (\2)|" -e "s|\([nrwb]\)$1\([,)]\)|\1DOMID\2|g" \
        -e "s|/local/domain/$1/|/local/domain/DOMID/|g" -e "s|^/local/domain/$1 |/local/domain/DOMID |" \
        -e "s|^/libxl/$1/|/libxl/DOMID/|" -e "s|^/libxl/$1 |/libxl/DOMID |" \
        -e "s|^/local/domain/0/device-model/$1/|/local/domain/0/device-model/DOMID/|" \
        -e "s|^/local/domain/0/device-model/$1 |/local/domain/0/device-model/DOMID |" \
        -e "s|/backend/\([a-z0-9_-]*\)/$1/|/backend/\1/DOMID/|g" -e "s|= \"$2\" (|= \"NAME\" (|" \
        -e "s|^\(/local/domain/DOMID/domid\) = \"$1\"|\1 = \"DOMID\"|" -e "s|^\(.*/frontend-id\) = \"$1\"|\1 = \"DOMID\"|" \
        -e "s|\(/console/tty\) = \"/dev/pts/[0-9]*\"|\1 = \"PTS\"|" -e "s|\(/start_time\) = \"[^\"]*\"|\1 = \"TIME\"|" \
        -e "s|^\(/local/domain/DOMID/image/device-model-pid\) = \"[0-9]*\"|\1 = \"PID\"|" |
        { if [ -n "$_uuid" ]; then sed "s|$_uuid|UUID|g"; else cat; fi; } | LC_ALL=C sort
}

# bm_build_dump TOOL NAME: create NAME paused with TOOL (xl or pvbuild), wait for bm_ready,
# dump it into $W/NAME.dump and its normalised xenstore trees into $W/NAME.xs, destroy it.
# Metrics: NAME_create_s, NAME_dump_s.
bm_build_dump() {
    bm_cfg "$2" > "$W/$2.cfg"
    _t=$(now)
    case $1 in
    xl) xl create -p "$W/$2.cfg" > "$W/$2.create.log" 2>&1 ;;
    pvbuild) "$HARNESS_PVBUILD" create -p "$W/$2.cfg" > "$W/$2.create.log" 2>&1 ;;
    esac || fail "$1 create -p exited $?: $(grep -v '^libxl: debug' "$W/$2.create.log" | tail -n 2 | paste -sd ' ')"
    metric "$2_create_s" "$(elapsed "$_t")"
    _d=$(xl domid "$2") || fail "$1 create -p left no domain $2"
    wait_for 60 bm_ready "$_d" || fail "$2 (d$_d) was not ready (bm_ready) within 60 s of its create"
    _t=$(now)
    "$md" hvm "$_d" > "$W/$2.dump" 2> "$W/$2.dump.err" ||
        fail "memdump hvm $2 (d$_d) exited $?: $(grep -v ' s$' "$W/$2.dump.err" | head -n 2 | paste -sd ' ')"
    metric "$2_dump_s" "$(elapsed "$_t")"
    bm_trees "$_d" "$2" > "$W/$2.xs"
    xl destroy "$2" > /dev/null 2>&1 || fail "xl destroy $2 exited $?"
    wait_for 60 domain_gone "$2" || fail "$2 still exists 60 s after xl destroy"
}

# bm_compare XL XL2 PVB WHAT: the two xl dumps must be identical (else the normalisation is
# wrong; XL2 empty: not checked, see bm_soundness), xl's and pvbuild's dumps identical, and
# their xenstore trees identical.
bm_compare() {
    if [ -n "$2" ]; then
        diff "$W/$1.dump" "$W/$2.dump" > "$W/sound.dump.diff" || {
            evidence "$HARNESS_OUT/sound.dump.diff"
            fail "two $4 guests built by xl differ, the normalisation is wrong: $(grep -m 2 '^[<>]' "$W/sound.dump.diff" | paste -sd '|')"
        }
        diff "$W/$1.xs" "$W/$2.xs" > "$W/sound.xs.diff" || {
            evidence "$HARNESS_OUT/sound.xs.diff"
            fail "the xenstore trees of two $4 guests built by xl differ, the normalisation is wrong: $(grep -m 2 '^[<>]' "$W/sound.xs.diff" | paste -sd '|')"
        }
    fi
    diff "$W/$1.dump" "$W/$3.dump" > "$W/$4.dump.diff" || {
        evidence "$HARNESS_OUT/$4.dump.diff"
        fail "pvbuild's $4 guest differs from xl's (< xl, > pvbuild): $(grep -c '^[<>] ' "$W/$4.dump.diff") lines, first: $(grep -m 3 '^[<>] ' "$W/$4.dump.diff" | paste -sd '|')"
    }
    note "identical to xl's: $(wc -l < "$W/$1.dump") lines, $(grep -c '^page ' "$W/$1.dump") page lines, $(grep '^pages present' "$W/$1.dump")"
    diff "$W/$1.xs" "$W/$3.xs" > "$W/$4.xs.diff" || {
        evidence "$HARNESS_OUT/$4.xs.diff"
        fail "the xenstore trees differ (< xl, > pvbuild): $(grep -m 4 '^[<>]' "$W/$4.xs.diff" | paste -sd '|')"
    }
    note "xenstore trees equal ($(wc -l < "$W/$1.xs") lines)"
}

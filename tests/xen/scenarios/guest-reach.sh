# harness-timeout: 1500
# guest-reach (issue 13, "What a guest can reach"): on the harness's real oxenstored, the
# project's PV test kernel (tests/pv-test-kernel, `pvtk.xsprobe=1`, src/xsprobe.rs) tries
# over its own xenstore ring to write, create, remove and re-permission the nodes dom0
# trusts: its own name/domid/vm/memory/store/console nodes, its console backend, dom0's
# name, /vm/<uuid>, /libxl/<domid>, another guest's tree. Each attempt must come back EACCES
# (one CHECK line each); the controls must succeed: reading its own name, writing its own
# data/, and a node this scenario made writable for every domain (xenstore-chmod b0) just
# before, which dom0 must then see written: a probe that could not see a write succeed fails.
# From dom0 the scenario snapshots the whole store (xenstore-ls -fp) before the guest runs
# and after it shut down: the probe's mark may only be in the two allowed nodes, and every
# node the guest was refused is unchanged (value and permissions).
# The same probe runs under pvbuild and under xl (libxl): the CHECK outcomes must agree,
# and no node of the guest's (its /local/domain tree, its backends, /libxl/N, /vm/<uuid>)
# may be guest-writable under pvbuild unless it is under xl.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
command -v xenstore-ls > /dev/null || fail "no xenstore-ls in dom0"

MARK=pvtk-probe-wrote
OPEN=/local/domain/0/pvtk-probe/open
MKDIR_NODE=/local/domain/0/pvtk-probe-mkdir
memory=32
# The xs.* checks the kernel must report, all PASS (src/xsprobe.rs).
WANT="xs.ring xs.control.read_name xs.control.write_data xs.control.open_node
xs.deny.own_name xs.deny.own_domid xs.deny.own_vm xs.deny.own_memory_target
xs.deny.own_store_port xs.deny.own_console_backend xs.deny.own_console_ring_ref
xs.deny.own_new_node xs.deny.own_fake_vbd xs.deny.backend_console_state
xs.deny.backend_console_frontend xs.deny.dom0_name xs.deny.vm_name xs.deny.vm_uuid
xs.deny.libxl_type xs.deny.libxl_console_backend xs.deny.other_data xs.deny.other_name
xs.deny.setperms_own_name xs.deny.setperms_dom0_name xs.deny.rm_own_name
xs.deny.rm_own_console xs.deny.mkdir_dom0 xs.control.name_intact"

xenstore-read /local/domain/0/name > /dev/null 2>&1 || fail "dom0 has no /local/domain/0/name to probe"

# The module the test kernel checks (as run-under-xl.sh makes it).
module=$HARNESS_OUT/module.bin
{ printf 'PVTESTMOD\n'; head -c 100001 /dev/urandom; } > "$module"
mod_len=$(wc -c < "$module" | tr -d ' ')
mod_sum=$(gzip -c "$module" | tail -c 8 | od -An -tx4 -N4 | tr -d ' ')

# cfg NAME CMDLINE_EXTRA: the test kernel, preserved on shutdown so dom0 can read its tree.
cfg() {
    token=gr-token-$1
    cat <<CFG
name = "$1"
type = "pv"
kernel = "$HARNESS_PV_TEST_KERNEL"
ramdisk = "$module"
memory = $memory
vcpus = 1
extra = "expect_nr_pages=$((memory * 256)) expect_mod_len=$mod_len expect_mod_sum=$mod_sum expect_cmdline_token=$token $token $2"
on_poweroff = "preserve"
on_reboot = "preserve"
on_crash = "preserve"
CFG
}

# The other guest: pvbuild creates it first and leaves it paused; dom0 gives it data/x.
cfg gr-other "" > "$HARNESS_OUT/gr-other.cfg"
"$HARNESS_PVBUILD" create -p -e "$HARNESS_OUT/gr-other.cfg" > "$HARNESS_OUT/gr-other.log" 2>&1 ||
    fail "pvbuild create -p gr-other: $(grep -m 1 error "$HARNESS_OUT/gr-other.log")"
other=$(xl domid gr-other) || fail "no domid for gr-other"
xenstore-write "/local/domain/$other/data/x" other-original || fail "cannot write gr-other's data/x"
note "other guest gr-other is domain $other: $(xenstore-ls -p "/local/domain/$other/data" | tr -s ' ' | paste -sd ' ')"

# writable_nodes SNAPSHOT DOMID UUID: the guest's nodes (its tree, its backends, /libxl/N,
# /vm/UUID) that domain DOMID may write by their permissions, with DOMID and UUID replaced
# by fixed words so two runs compare. xenstore-ls -fp lines: `PATH = "VALUE"  (n0,r5)`.
writable_nodes() {
    awk -v d="$2" -v u="$3" '
    {
        path = $1
        perms = $NF
        if (perms !~ /^\(.*\)$/) next
        mine = index(path, "/local/domain/" d "/") == 1 || path == "/local/domain/" d ||
            index(path, "/libxl/" d "/") == 1 || path == "/libxl/" d ||
            index(path, "/vm/" u) == 1 || path ~ ("^/local/domain/0/backend/[^/]+/" d "(/|$)")
        if (!mine) next
        gsub(/[()]/, "", perms)
        n = split(perms, p, ",")
        w = 0
        if (substr(p[1], 2) == d || substr(p[1], 1, 1) == "w" || substr(p[1], 1, 1) == "b") w = 1
        for (i = 2; i <= n; i++)
            if (substr(p[i], 2) == d && (substr(p[i], 1, 1) == "w" || substr(p[i], 1, 1) == "b")) w = 1
        if (!w) next
        gsub("/local/domain/" d, "/local/domain/DOMID", path)
        gsub("/libxl/" d, "/libxl/DOMID", path)
        gsub("/vm/" u, "/vm/UUID", path)
        sub("/backend/[^/]+/" d, "&@", path); sub(d "@", "DOMID", path)
        print path
    }' "$1" | sort -u
}

# probe TAG CREATE UNPAUSE DESTROY: boot the probing kernel paused, snapshot, run, snapshot.
probe() {
    tag=$1
    out=$HARNESS_OUT/$tag
    name=gr-$tag
    mkdir -p "$out"
    xenstore-rm /local/domain/0/pvtk-probe 2> /dev/null
    xenstore-rm "$MKDIR_NODE" 2> /dev/null
    xenstore-write "$OPEN" initial && xenstore-chmod "$OPEN" b0 || fail "cannot open $OPEN for every domain"
    cfg "$name" "pvtk.xsprobe=1 pvtk.xsprobe_other=$other" > "$out/$name.cfg"
    rm -f "$(console_log "$name")"
    $2 "$out/$name.cfg" > "$out/create.log" 2>&1 || fail "$tag: $2 exited $?: $(tail -n 2 "$out/create.log" | paste -sd ' ')"
    dom=$(xl domid "$name") || fail "$tag: no domid for $name"
    vm=$(xenstore-read "/local/domain/$dom/vm") || fail "$tag: no vm node for $dom"
    uuid=${vm#/vm/}
    xenstore-ls -fp / > "$out/before.txt" 2>&1 || fail "$tag: xenstore-ls failed"
    writable_nodes "$out/before.txt" "$dom" "$uuid" > "$out/writable.txt"
    t0=$(now)
    $3 "$name" > "$out/unpause.log" 2>&1 || fail "$tag: $3 $name: $(cat "$out/unpause.log")"
    evidence "$(console_log "$name")"
    wait_for 300 console_has "$name" '^VERDICT ' || fail "$tag: no VERDICT on the console within 300 s"
    metric "${tag}_verdict_s" "$(elapsed "$t0")"
    wait_for 60 domain_shut_down "$name" || fail "$tag: $name did not shut down"
    xenstore-ls -fp / > "$out/after.txt" 2>&1 || fail "$tag: xenstore-ls failed"
    diff "$out/before.txt" "$out/after.txt" > "$out/store.diff"
    console_text "$name" | grep -E '^(CHECK|TRAP|PANIC|VERDICT|INFO xs)' > "$out/checks.txt"
    $4 "$name" > /dev/null 2>&1
    wait_for 60 domain_gone "$name" || fail "$tag: $name was not destroyed"

    grep ' FAIL ' "$out/checks.txt" | sed "s/^/NOTE $tag: /"
    for c in $WANT; do
        grep -q "^CHECK $c PASS" "$out/checks.txt" ||
            fail "$tag: $(grep -m 1 "^CHECK $c " "$out/checks.txt" || echo "no CHECK $c")"
    done
    grep -q '^VERDICT PASS' "$out/checks.txt" || fail "$tag: $(grep '^VERDICT' "$out/checks.txt")"
    # What the daemon answered, per check: `xs.deny.own_name=EACCES`.
    sed -n 's/^CHECK \(xs\.[^ ]*\) [A-Z]* .*-> \([A-Za-z(][^ ;]*\).*/\1=\2/p' "$out/checks.txt" > "$out/answers.txt"
    sed -n 's/^INFO \(xs\.[^ ]*\) .*-> \([A-Za-z(][^ ;]*\).*/\1=\2/p' "$out/checks.txt" >> "$out/answers.txt"
    note "$tag answers: $(grep -c '=EACCES$' "$out/answers.txt") EACCES: $(sed 's/^xs\.//' "$out/answers.txt" | paste -sd ' ')"

    # From dom0: the mark only where the guest may write it; the open node has it.
    marked=$(grep -F "$MARK" "$out/after.txt" | awk '{ print $1 }' | sort | paste -sd ' ')
    want_marked=$(printf '%s\n' "$OPEN" "/local/domain/$dom/data/probe" | sort | paste -sd ' ')
    [ "$marked" = "$want_marked" ] || fail "$tag: the mark is in [$marked], expected exactly [$want_marked]"
    # Every refused node is as it was (value and permissions), or still absent. One awk for
    # all (under TCG every fork is dear).
    sed -n 's/^CHECK xs\.deny\.[^ ]* PASS .* path=\([^ ]*\) -> .*/\1/p' "$out/checks.txt" > "$out/refused.txt"
    n=$(wc -l < "$out/refused.txt" | tr -d ' ')
    [ "$n" -ge 23 ] || fail "$tag: only $n refused paths found in the CHECK lines"
    changed=$(awk 'FNR == 1 { f++ }
        f == 1 { want[$1] = 1; next }
        f == 2 { if ($1 in want) b[$1] = $0; next }
        { if ($1 in want) a[$1] = $0 }
        END { for (p in want) if (a[p] != b[p]) printf "%s: before [%s] after [%s]; ", p, b[p], a[p] }' \
        "$out/refused.txt" "$out/before.txt" "$out/after.txt")
    [ -z "$changed" ] || fail "$tag: refused nodes changed: $changed"
    # The check above must be able to fail: the open node did change.
    grep -qxF "$OPEN" "$out/refused.txt" && fail "$tag: the open node is in the refused list"
    echo "$OPEN" > "$out/open.txt"
    awk 'FNR == 1 { f++ }
        f == 1 { want[$1] = 1; next }
        f == 2 { if ($1 in want) b[$1] = $0; next }
        { if ($1 in want) a[$1] = $0 }
        END { for (p in want) if (a[p] != b[p]) print "changed" }' \
        "$out/open.txt" "$out/before.txt" "$out/after.txt" | grep -q changed ||
        fail "$tag: the comparison does not see the open node change"
    grep -q "^$MKDIR_NODE " "$out/after.txt" && fail "$tag: $MKDIR_NODE exists after the probe"
    grep -q "^/local/domain/$other/data/x = \"other-original\"" "$out/after.txt" ||
        fail "$tag: gr-other's data/x changed: $(grep "^/local/domain/$other/data/x" "$out/after.txt")"
    metric "${tag}_refused_unchanged" "$n"
    metric "${tag}_guest_writable_nodes" "$(wc -l < "$out/writable.txt")"
}

probe pvbuild "$HARNESS_PVBUILD create -p -e" "$HARNESS_PVBUILD unpause" "$HARNESS_PVBUILD destroy"
probe xl "xl create -p" "xl unpause" "xl destroy"

"$HARNESS_PVBUILD" destroy gr-other > /dev/null 2>&1

# pvbuild against libxl: the same answers, and nothing guest-writable only under pvbuild.
diff "$HARNESS_OUT/pvbuild/answers.txt" "$HARNESS_OUT/xl/answers.txt" > "$HARNESS_OUT/answers.diff" ||
    fail "pvbuild and xl answers differ: $(paste -sd ' ' "$HARNESS_OUT/answers.diff")"
comm -23 "$HARNESS_OUT/pvbuild/writable.txt" "$HARNESS_OUT/xl/writable.txt" > "$HARNESS_OUT/writable-only-pvbuild.txt"
comm -13 "$HARNESS_OUT/pvbuild/writable.txt" "$HARNESS_OUT/xl/writable.txt" > "$HARNESS_OUT/writable-only-xl.txt"
note "guest-writable under pvbuild: $(paste -sd ' ' "$HARNESS_OUT/pvbuild/writable.txt")"
[ -s "$HARNESS_OUT/writable-only-xl.txt" ] &&
    note "guest-writable under xl only: $(paste -sd ' ' "$HARNESS_OUT/writable-only-xl.txt")"
[ -s "$HARNESS_OUT/writable-only-pvbuild.txt" ] &&
    fail "guest-writable under pvbuild but not under xl: $(paste -sd ' ' "$HARNESS_OUT/writable-only-pvbuild.txt")"
pass

# harness-timeout: 900
# pvbuild-xl-commands (issue 15): pvbuild's xl-style output against xl's own, on the same
# host at the same time.
# - `pvbuild -v create` and `xl -v create` of the same kernel, ramdisk, memory and command
#   line (both paused): every builder detail line pvbuild prints (domainbuilder: detail: /
#   xc: detail: ELF) equals xl's, in order, once xl's lines pvbuild does not reproduce are
#   set aside (libxenguest's own memory and mappings, the hypervisor's caps, what follows
#   xc_dom_boot_image); vcpu_x86_64's cr3 pfn is xl's. pvbuild's log starts with xl's
#   "Parsing config from FILE".
# - `pvbuild list` and `xl list` print the same lines (header, names, ids, memory, vcpus,
#   state letters, tabs; only the cpu time may differ), all domains and one by name; the same
#   for `-v` (UUID, reason code, label).
# - `pvbuild list -l` of the xl-made domain is libxl's stored config in xl's wrapper.
# - `pvbuild vcpu-list` and `xl vcpu-list`: the same lines for each paused guest (the cpu
#   time set aside), the same vcpus for all; `pvbuild dmesg` starts with `xl dmesg`'s bytes;
#   `pvbuild info` prints xl info's lines (free_memory aside), `info NAME` its value;
#   `pvbuild info -n` xl info -n's (the topology and NUMA tables too; memfree aside).
# - the pvbuild-made guest, unpaused, idles; `pvbuild sysrq c` crashes its kernel, and with
#   no monitor (-e) it stays: both lists show ---sc-.
# - `pvbuild console -t serial` and `-n 1` are one-line refusals.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
pn=pvbxa
xn=xlxa
# sysrq_always_enabled: Debian's kernel.sysrq (438) leaves out `c` (crash), which part 5 sends.
cmdline="$HARNESS_GUEST_CMDLINE pvbuild.idle=600 sysrq_always_enabled"
cleanup() {
    "$pvb" destroy "$pn" > /dev/null 2>&1
    xl destroy "$xn" > /dev/null 2>&1
}
trap cleanup EXIT
pv_cfg "$pn" "$cmdline" 'vcpus = 1' 'on_crash = "preserve"' > "$HARNESS_OUT/$pn.cfg"
pv_cfg "$xn" "$cmdline" 'vcpus = 1' 'on_crash = "preserve"' > "$HARNESS_OUT/$xn.cfg"

# 1. The builder's detail, live.
"$pvb" -v create -p -e "$HARNESS_OUT/$pn.cfg" > "$HARNESS_OUT/pvb-create.log" 2>&1 ||
    fail "pvbuild -v create exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/pvb-create.log")"
evidence "$HARNESS_OUT/pvb-create.log"
xl -v create -p -e "$HARNESS_OUT/$xn.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
    fail "xl -v create exited $?: $(tail -n 2 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
evidence "$HARNESS_OUT/xl-create.log"
[ "$(head -n 1 "$HARNESS_OUT/pvb-create.log")" = "Parsing config from $HARNESS_OUT/$pn.cfg" ] ||
    fail "pvbuild's first line is not xl's: $(head -n 1 "$HARNESS_OUT/pvb-create.log")"
grep -E '^(domainbuilder|xc): ' "$HARNESS_OUT/xl-create.log" | sed '/xc_dom_boot_image: called/,$d' |
    grep -vE 'xc_dom_boot_xen_init:|xc_dom_compat_check:|xc_dom_malloc |xc_dom_malloc_filemap|domU mapping|ELF: phdr [0-9]+ at 0x' \
        > "$HARNESS_OUT/detail.xl"
grep -E '^(domainbuilder|xc): ' "$HARNESS_OUT/pvb-create.log" | grep -v 'vcpu_x86_64: cr3' > "$HARNESS_OUT/detail.pvbuild"
n=$(wc -l < "$HARNESS_OUT/detail.xl")
[ "$n" -ge 40 ] || fail "only $n detail lines in xl's log"
diff "$HARNESS_OUT/detail.xl" "$HARNESS_OUT/detail.pvbuild" > "$HARNESS_OUT/detail.diff" ||
    fail "pvbuild's detail differs from xl's (< xl, > pvbuild): $(grep -m 2 '^[<>]' "$HARNESS_OUT/detail.diff" | paste -sd ' ')"
metric detail_lines_equal "$n"
cr3() { sed -n 's/^domainbuilder: detail: vcpu_x86_64: cr3: \(pfn 0x[0-9a-f]*\) .*/\1/p' "$1"; }
[ -n "$(cr3 "$HARNESS_OUT/xl-create.log")" ] && [ "$(cr3 "$HARNESS_OUT/xl-create.log")" = "$(cr3 "$HARNESS_OUT/pvb-create.log")" ] ||
    fail "cr3: xl '$(cr3 "$HARNESS_OUT/xl-create.log")', pvbuild '$(cr3 "$HARNESS_OUT/pvb-create.log")'"
note "$n builder detail lines identical to xl -v create's; cr3 $(cr3 "$HARNESS_OUT/xl-create.log") as xl's"

# 2. list: the cpu time (the 10 characters after the state) set aside.
untimed() { sed -E 's/^(.{69})  *[0-9]+\.[0-9]/\1 T/'; }
compare() {
    _what=$1
    shift
    xl "$@" > "$HARNESS_OUT/xl.$_what" 2>&1 || fail "xl $* exited $?"
    "$pvb" "$@" > "$HARNESS_OUT/pvb.$_what" 2>&1 || fail "pvbuild $* exited $?: $(head -n 1 "$HARNESS_OUT/pvb.$_what")"
    untimed < "$HARNESS_OUT/xl.$_what" > "$HARNESS_OUT/xl.$_what.untimed"
    untimed < "$HARNESS_OUT/pvb.$_what" > "$HARNESS_OUT/pvb.$_what.untimed"
    cmp -s "$HARNESS_OUT/xl.$_what.untimed" "$HARNESS_OUT/pvb.$_what.untimed" ||
        fail "$* differs from xl's: $(diff "$HARNESS_OUT/xl.$_what.untimed" "$HARNESS_OUT/pvb.$_what.untimed" | grep -m 2 '^[<>]' | paste -sd '|')"
    evidence "$HARNESS_OUT/pvb.$_what"
}
compare list list
compare list-v list -v
compare list-pvb list "$pn"
compare list-xl list "$xn"
note "list, list -v, list NAME: as xl's ($(($(wc -l < "$HARNESS_OUT/pvb.list") - 1)) domains)"
grep -q '	State	' "$HARNESS_OUT/pvb.list" || fail "no tabs in pvbuild list's header"

# 3. list -l: the xl-made domain's stored config.
xd=$(xl domid "$xn") || fail "no domain $xn"
"$pvb" list -l "$xn" > "$HARNESS_OUT/pvb.list-l" 2>&1 || fail "pvbuild list -l exited $?: $(head -n 1 "$HARNESS_OUT/pvb.list-l")"
evidence "$HARNESS_OUT/pvb.list-l"
ud=$(ls /var/lib/xen/userdata-d."$xd".*.libxl-json 2>/dev/null | head -n 1)
[ -n "$ud" ] || fail "libxl stored no config for $xn"
squeeze() { tr -d ' \n\t\000'; }
[ "$(squeeze < "$HARNESS_OUT/pvb.list-l")" = "[{\"domid\":$xd,\"config\":$(squeeze < "$ud")}]" ] ||
    fail "pvbuild list -l $xn is not libxl's stored config: $(head -c 200 "$HARNESS_OUT/pvb.list-l")"
xl list -l "$xn" > "$HARNESS_OUT/xl.list-l" 2>&1
if [ "$(squeeze < "$HARNESS_OUT/xl.list-l")" = "$(squeeze < "$HARNESS_OUT/pvb.list-l")" ]; then
    note "list -l $xn: identical to xl's"
else
    note "list -l $xn: libxl's stored config; xl's (refreshed from xenstore) differs: see xl.list-l"
fi

# 4. vcpu-list (the paused guests: nothing moves but the clock) and dmesg.
vuntimed() { sed -E 's/^(.{56}) *[0-9]+\.[0-9]/\1 T/'; }
for d in "$xn" "$pn"; do
    xl vcpu-list "$d" > "$HARNESS_OUT/xl.vcpu-$d" 2>&1 || fail "xl vcpu-list $d exited $?"
    "$pvb" vcpu-list "$d" > "$HARNESS_OUT/pvb.vcpu-$d" 2>&1 || fail "pvbuild vcpu-list $d exited $?: $(head -n 1 "$HARNESS_OUT/pvb.vcpu-$d")"
    [ "$(vuntimed < "$HARNESS_OUT/xl.vcpu-$d")" = "$(vuntimed < "$HARNESS_OUT/pvb.vcpu-$d")" ] ||
        fail "vcpu-list $d differs from xl's: $(diff "$HARNESS_OUT/xl.vcpu-$d" "$HARNESS_OUT/pvb.vcpu-$d" | grep -m 2 '^[<>]' | paste -sd '|')"
    evidence "$HARNESS_OUT/pvb.vcpu-$d"
done
xl vcpu-list > "$HARNESS_OUT/xl.vcpu" 2>&1
"$pvb" vcpu-list > "$HARNESS_OUT/pvb.vcpu" 2>&1 || fail "pvbuild vcpu-list exited $?: $(head -n 1 "$HARNESS_OUT/pvb.vcpu")"
[ "$(awk '{ print $1, $2, $3 }' "$HARNESS_OUT/xl.vcpu")" = "$(awk '{ print $1, $2, $3 }' "$HARNESS_OUT/pvb.vcpu")" ] ||
    fail "vcpu-list: not xl's vcpus: $(diff "$HARNESS_OUT/xl.vcpu" "$HARNESS_OUT/pvb.vcpu" | grep -m 2 '^[<>]' | paste -sd '|')"
note "vcpu-list, vcpu-list NAME: as xl's ($(($(wc -l < "$HARNESS_OUT/pvb.vcpu") - 1)) vcpus)"
xl dmesg > "$HARNESS_OUT/xl.dmesg" 2>&1 || fail "xl dmesg exited $?"
"$pvb" dmesg > "$HARNESS_OUT/pvb.dmesg" 2>&1 || fail "pvbuild dmesg exited $?: $(head -n 1 "$HARNESS_OUT/pvb.dmesg")"
xb=$(wc -c < "$HARNESS_OUT/xl.dmesg")
# The ring may have grown in between: xl's must be the start of pvbuild's.
[ "$xb" -gt 1000 ] && [ "$(head -c "$xb" "$HARNESS_OUT/pvb.dmesg" | cksum)" = "$(cksum < "$HARNESS_OUT/xl.dmesg")" ] ||
    fail "pvbuild dmesg ($(wc -c < "$HARNESS_OUT/pvb.dmesg") bytes) does not start with xl dmesg's $xb bytes"
note "dmesg: xl's $xb bytes, pvbuild's $(wc -c < "$HARNESS_OUT/pvb.dmesg")"

# xl info: every line the same but free_memory (it moves with dom0).
nofree() { grep -v '^free_memory '; }
xl info > "$HARNESS_OUT/xl.info" 2>&1 || fail "xl info exited $?"
"$pvb" info > "$HARNESS_OUT/pvb.info" 2>&1 || fail "pvbuild info exited $?: $(head -n 1 "$HARNESS_OUT/pvb.info")"
evidence "$HARNESS_OUT/pvb.info"
[ "$(nofree < "$HARNESS_OUT/xl.info")" = "$(nofree < "$HARNESS_OUT/pvb.info")" ] ||
    fail "info differs from xl's: $(diff "$HARNESS_OUT/xl.info" "$HARNESS_OUT/pvb.info" | grep -v free_memory | grep -m 2 '^[<>]' | paste -sd '|')"
[ "$(xl info xen_caps)" = "$("$pvb" info xen_caps)" ] || fail "info xen_caps: '$("$pvb" info xen_caps)', xl '$(xl info xen_caps)'"
note "info: $(wc -l < "$HARNESS_OUT/pvb.info") lines as xl's (free_memory aside)"
# xl info -n: the same with the cpu, PCI and NUMA tables (each node's memfree aside).
nofree_n() { nofree | sed '/^numa_info/,/^xen_major/ s/^\( *[0-9]*:  *[0-9]*  *\)[0-9]*/\1F/'; }
xl info -n > "$HARNESS_OUT/xl.info-n" 2>&1 || fail "xl info -n exited $?"
"$pvb" info -n > "$HARNESS_OUT/pvb.info-n" 2>&1 || fail "pvbuild info -n exited $?: $(head -n 1 "$HARNESS_OUT/pvb.info-n")"
evidence "$HARNESS_OUT/pvb.info-n"
grep -q '^cpu_topology ' "$HARNESS_OUT/xl.info-n" && grep -q '^numa_info ' "$HARNESS_OUT/xl.info-n" ||
    fail "xl info -n printed no topology: $(head -n 3 "$HARNESS_OUT/xl.info-n" | paste -sd ' ')"
[ "$(nofree_n < "$HARNESS_OUT/xl.info-n")" = "$(nofree_n < "$HARNESS_OUT/pvb.info-n")" ] ||
    fail "info -n differs from xl's: $(diff "$HARNESS_OUT/xl.info-n" "$HARNESS_OUT/pvb.info-n" | grep -v free_memory | grep -m 2 '^[<>]' | paste -sd '|')"
# xl ignores NAME with -n (main_info sets its filter only without -n): so does pvbuild.
[ "$(xl info -n xen_caps | nofree_n)" = "$("$pvb" info -n xen_caps | nofree_n)" ] || fail "info -n xen_caps differs from xl's"
note "info -n: $(wc -l < "$HARNESS_OUT/pvb.info-n") lines as xl's ($(sed -n '/^cpu:/,/^device topology/p' "$HARNESS_OUT/pvb.info-n" | grep -c '^ *[0-9]*:') cpus, $(sed -n '/^node:/,/^xen_major/p' "$HARNESS_OUT/pvb.info-n" | grep -c '^ *[0-9]*:') nodes; free memory aside)"

# 5. A crashed guest, kept.
clog() { tr -d '\r' < "$(console_log "$pn")" 2>/dev/null; }
idle() { clog | grep -q PVBUILD-GUEST-IDLE; }
"$pvb" unpause "$pn" || fail "pvbuild unpause exited $?"
wait_for 300 idle || fail "the guest did not reach its idle wait: $(clog | tail -n 2 | paste -sd ' ')"
evidence "$(console_log "$pn")"
"$pvb" sysrq "$pn" c || fail "pvbuild sysrq c exited $?"
crashed() { xl list "$pn" 2>/dev/null | awk 'NR == 2 { exit !($5 ~ /s/) }'; }
wait_for 120 crashed || fail "the guest did not shut down after sysrq c: $(xl list "$pn" 2>&1 | tail -n 1)"
compare list-crash list
compare list-crash-v list -v
"$pvb" list "$pn" > "$HARNESS_OUT/pvb.crashed" 2>&1
state=$(awk 'NR == 2 { print $5 }' "$HARNESS_OUT/pvb.crashed")
[ "$state" = "---sc-" ] || fail "the crashed guest's state is '$state', not ---sc-"
note "crashed guest: $state in both lists"

# 6. console -t/-n: one-line refusals.
for args in "-t serial" "-n 1"; do
    # shellcheck disable=SC2086
    "$pvb" console $args "$pn" > "$HARNESS_OUT/console.x" 2>&1 < /dev/null && fail "console $args succeeded"
    [ "$(wc -l < "$HARNESS_OUT/console.x")" = 1 ] && grep -q '^error: ' "$HARNESS_OUT/console.x" ||
        fail "console $args: $(paste -sd ' ' < "$HARNESS_OUT/console.x")"
done
pass

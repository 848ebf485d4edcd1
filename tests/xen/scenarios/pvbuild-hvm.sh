# harness-timeout: 900
# pvbuild-hvm (issues 14 and 15): an HVM guest (`type = "hvm"`, hvmloader + SeaBIOS, Debian's
# kernel by direct kernel boot, vga = "none"), the same xl config built by xl and by pvbuild.
#  1. xl -vvv create -p (2 vcpus): libxenguest's log of the HVM build (the oracle of the plan
#     comparison), the paused domain's HVM context and xenstore tree; then destroyed.
#  2. pvbuild plan --type hvm of the same memory and vcpus: its libxenguest lines (memory,
#     meminit_hvm's allocation, the segments) must equal xl's.
#  3. pvbuild create -p: the paused domain's boot vcpu (xen-hvmctx: every register of the
#     CPU record but the TSC) must equal xl's, its platform/* and memory/* entries xl's,
#     and its page count (`nr_pages` of Xen's own `q` debug key) xl's; then pvbuild
#     destroy leaves nothing.
#  4. pvbuild create --wait of a 1-vcpu, 128 MiB HVM guest, alone: its init's marker must show
#     on its emulated serial port (a file; each line stamped with the second it was seen, in
#     pvbhvm-serial.stamped) with the right release and command line. The guest then idles;
#     it is paused and dumped by `pvbuild dump-core` (issue 15): no `.xen_p2m`, a `.xen_pfn`
#     entry per page, as many pages as Xen's `nr_pages`; the real gfns exactly the guest's
#     RAM (0 to 128 MiB less the VGA hole), and the padding entries (pages Xen counts that lie
#     in the MMIO hole, where libxenguest's dump does not look) exactly the pages there: those
#     the domain builder populated (xl's paused domain of phase 1 less its RAM) and
#     hvmloader's ACPI pages (the NVS range of its E820 table in Xen's log). Then pvbuild
#     destroy: the waiting create ends, and nothing may be left. (Unpausing it instead costs
#     80 s more under TCG: the kernel prints RCU stall reports on the serial port after the
#     pause.)
# xl's side of phase 4 (xl's guest of the same config booted alone to its marker) is the
# opt-in pvbuild-hvm-boot (this script with HARNESS_HVM_XL_BOOT=1, which runs only that).
# The booted guests' command line adds `quiet pci=noearly` to the console (docs/hvm.md, "The
# boot to the marker"): without them Debian's kernel spent most of its boot in two scans of
# all 256 PCI buses by hand (its AMD GART aperture checks, the emulated CPU being an AMD one)
# and in printing its whole log through the emulated UART, each port access a round trip to
# QEMU in dom0.
# Metrics: xl_create_p_s, pvbuild_create_p_s, pvbuild_create_s, pvbuild_marker_s (seconds
# from the start of the create), pvbuild_dump_hvm_s; opt-in: xl_create_s, xl_marker_s.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
cmdline="console=ttyS0"
# hvm_cfg NAME [VCPUS [CMDLINE]]: the HVM xl config of this scenario (2 vcpus and the console
# alone unless given).
hvm_cfg() {
    cat <<CFG
name = "$1"
type = "hvm"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
cmdline = "${3:-$cmdline}"
memory = $HARNESS_GUEST_MEMORY
vcpus = ${2:-2}
serial = "file:$HARNESS_OUT/$1-serial.log"
vga = "none"
vnc = 0
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
# cpu_record FILE: vcpu 0's CPU record of a xen-hvmctx dump, without the TSC.
cpu_record() { awk '/^Entry/ { on = ($4 == 2 && $6 == "0,") } on && !/tsc/' "$1"; }
# dom_entries DOMID: the domain's platform/* and memory/* xenstore entries, domid stripped.
dom_entries() { xenstore-ls -f "/local/domain/$1" 2>&1 | grep -E "/(platform|memory)/" | sed "s|^/local/domain/$1/||" | sort; }
only_dom0() { [ "$(xl list 2>/dev/null | awk 'NR > 1 { n++ } END { print n }')" = "1" ]; }
no_qemu() { ! pgrep -f 'qemu-system-i386 -xen-domid' > /dev/null; }
# The booted guests: one vcpu (under TCG a nested HVM guest's SMP bring-up is dear, and the
# 2-vcpu build is compared in phases 1-3), 128 MiB, the quiet command line, an idle wait
# after the marker (long enough to pause and dump the guest).
boot_cmdline="console=ttyS0 quiet pci=noearly pvbuild.idle=30"
boot_cfg() { hvm_cfg "$1" 1 "$boot_cmdline" | sed 's/^memory = .*/memory = 128/'; }
want=$(expected_marker "$HARNESS_GUEST_KVER" "$boot_cmdline")
serial_marker() { serial_text "$1" | grep -m 1 "PVBUILD-GUEST-OK"; }
# serial_text, serial_tail, wait_serial: tests/xen/dom0/lib.sh.
# xen_nr_pages DOMID: the domain's page count as Xen's `q` debug key prints it (its output
# kept in xen-q-DOMID.txt).
xen_nr_pages() {
    xl debug-keys q
    xl dmesg | tr -d '\r' > "$HARNESS_OUT/xen-q-$1.txt"
    sed -n "/General information for domain $1:/,/nr_pages=/p" "$HARNESS_OUT/xen-q-$1.txt" | grep -o 'nr_pages=[0-9]*' | tail -n 1 | cut -d= -f2
}

# The opt-in pvbuild-hvm-boot: xl's guest of phase 4's config, booted alone to its marker.
if [ "${HARNESS_HVM_XL_BOOT:-0}" = 1 ]; then
    boot_cfg xlhvm > "$HARNESS_OUT/xlhvm.cfg"
    tx=$(now)
    trap 'xl destroy xlhvm > /dev/null 2>&1' EXIT
    xl create "$HARNESS_OUT/xlhvm.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1 ||
        fail "xl create exited $?: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | paste -sd ' ')"
    metric xl_create_s "$(elapsed "$tx")"
    evidence "$HARNESS_OUT/xlhvm-serial.stamped"
    wait_serial xlhvm "$tx" 900 PVBUILD-GUEST-OK || fail "no marker from xl's guest within 900 s: $(serial_tail xlhvm)"
    metric xl_marker_s "$(elapsed "$tx")"
    [ "$(serial_marker xlhvm)" = "$want" ] || fail "xl's marker is '$(serial_marker xlhvm)', expected '$want'"
    xl destroy xlhvm || fail "xl destroy xlhvm exited $?"
    wait_for 60 only_dom0 || fail "left behind: $(xl list 2>&1 | awk 'NR > 2 { print $1 }' | paste -sd ' ')"
    wait_for 30 no_qemu || fail "a QEMU is left: $(pgrep -af 'qemu-system-i386 -xen-domid' | cut -c1-120)"
    pass
fi

# 1. xl -vvv create -p: the oracle.
hvm_cfg xlhvmp > "$HARNESS_OUT/xlhvmp.cfg"
t0=$(now)
xl -vvv create -p "$HARNESS_OUT/xlhvmp.cfg" > "$HARNESS_OUT/xl-vvv-create.log" 2>&1 ||
    fail "xl -vvv create -p exited $?: $(tail -n 3 "$HARNESS_OUT/xl-vvv-create.log" | paste -sd ' ')"
metric xl_create_p_s "$(elapsed "$t0")"
grep -E '^(domainbuilder|xc): ' "$HARNESS_OUT/xl-vvv-create.log" > "$HARNESS_OUT/libxenguest.log"
evidence "$HARNESS_OUT/libxenguest.log"
d=$(xl domid xlhvmp)
/usr/lib/xen-4.17/bin/xen-hvmctx "$d" > "$HARNESS_OUT/xl-hvmctx.txt" 2>&1 || fail "xen-hvmctx of xl's guest exited $?"
dom_entries "$d" > "$HARNESS_OUT/xl-entries.txt"
xl_pages=$(xen_nr_pages "$d")
[ -n "$xl_pages" ] || fail "Xen's q key printed no nr_pages for xl's domain $d"
# The pages xl's builder put outside the guest's RAM (its memory less the VGA hole, pfns
# 0xa0-0xbf): the special pages, in the MMIO hole below 4 GiB.
builder_hole=$((xl_pages - (HARNESS_GUEST_MEMORY * 256 - 0x20)))
xl destroy xlhvmp || fail "xl destroy xlhvmp exited $?"

# 2. pvbuild plan --type hvm: the same libxenguest lines (vga = "none": no video memory).
"$HARNESS_PVBUILD" plan --type hvm --memory "$HARNESS_GUEST_MEMORY" --vcpus 2 /usr/lib/xen-4.17/boot/hvmloader \
    > "$HARNESS_OUT/pvbuild-plan.log" 2>&1 || fail "pvbuild plan --type hvm exited $?: $(grep -m 1 '^error' "$HARNESS_OUT/pvbuild-plan.log")"
layout='xc_dom_mem_init|range: start|xc_dom_alloc_segment|xc_dom_build_image  :|Adding module|PHYSICAL MEMORY|KB PAGES|MB PAGES|GB PAGES'
grep -E "$layout" "$HARNESS_OUT/libxenguest.log" > "$HARNESS_OUT/layout.xl"
grep -E "$layout" "$HARNESS_OUT/pvbuild-plan.log" > "$HARNESS_OUT/layout.pvbuild"
[ "$(wc -l < "$HARNESS_OUT/layout.xl")" -ge 10 ] || fail "xl's log has only $(wc -l < "$HARNESS_OUT/layout.xl") layout lines"
diff "$HARNESS_OUT/layout.xl" "$HARNESS_OUT/layout.pvbuild" > "$HARNESS_OUT/layout.diff" ||
    fail "pvbuild plan's HVM layout lines differ from xl's: $(head -n 4 "$HARNESS_OUT/layout.diff" | paste -sd ' ')"
metric layout_lines_identical "$(wc -l < "$HARNESS_OUT/layout.xl")"

# 3. pvbuild create -p: the same boot vcpu and entries; destroy leaves nothing.
hvm_cfg pvbhvmp > "$HARNESS_OUT/pvbhvmp.cfg"
log=$HARNESS_OUT/pvbuild-create-p.log
t0=$(now)
"$HARNESS_PVBUILD" -v create -p -e "$HARNESS_OUT/pvbhvmp.cfg" > "$log" 2>&1 ||
    fail "pvbuild create -p exited $?: $(grep -m 1 '^error' "$log")"
metric pvbuild_create_p_s "$(elapsed "$t0")"
evidence "$log"
d=$(xl domid pvbhvmp) || fail "pvbuild's HVM guest is not listed by xl"
state=$(xl list pvbhvmp 2>&1 | awk 'NR == 2 { print $5 }')
case $state in *p*) ;; *) fail "pvbhvmp is not paused: '$state'" ;; esac
/usr/lib/xen-4.17/bin/xen-hvmctx "$d" > "$HARNESS_OUT/pvbuild-hvmctx.txt" 2>&1 || fail "xen-hvmctx of pvbuild's guest exited $?"
cpu_record "$HARNESS_OUT/xl-hvmctx.txt" > "$HARNESS_OUT/cpu.xl"
cpu_record "$HARNESS_OUT/pvbuild-hvmctx.txt" > "$HARNESS_OUT/cpu.pvbuild"
[ "$(wc -l < "$HARNESS_OUT/cpu.xl")" -ge 20 ] || fail "xl's CPU record has $(wc -l < "$HARNESS_OUT/cpu.xl") lines"
diff "$HARNESS_OUT/cpu.xl" "$HARNESS_OUT/cpu.pvbuild" > "$HARNESS_OUT/cpu.diff" ||
    fail "the boot vcpu differs from xl's: $(grep '^[<>]' "$HARNESS_OUT/cpu.diff" | head -n 4 | paste -sd ' ')"
metric cpu_record_lines_identical "$(wc -l < "$HARNESS_OUT/cpu.xl")"
diff "$HARNESS_OUT/xl-hvmctx.txt" "$HARNESS_OUT/pvbuild-hvmctx.txt" > "$HARNESS_OUT/hvmctx.diff"
note "whole HVM context: $(grep -c '^[<>]' "$HARNESS_OUT/hvmctx.diff") differing lines of $(wc -l < "$HARNESS_OUT/xl-hvmctx.txt") (domid, TSC and timers expected)"
dom_entries "$d" > "$HARNESS_OUT/pvbuild-entries.txt"
diff "$HARNESS_OUT/xl-entries.txt" "$HARNESS_OUT/pvbuild-entries.txt" > "$HARNESS_OUT/entries.diff" ||
    fail "platform/memory entries differ from xl's: $(grep '^[<>]' "$HARNESS_OUT/entries.diff" | head -n 4 | paste -sd ' ')"
pvb_pages=$(xen_nr_pages "$d")
[ "$pvb_pages" = "$xl_pages" ] || fail "pvbuild's paused domain has ${pvb_pages:-no} pages (Xen's nr_pages), xl's had $xl_pages"
note "paused domains: $xl_pages pages each (Xen's nr_pages), $builder_hole of them outside the RAM"
"$HARNESS_PVBUILD" destroy pvbhvmp >> "$log" 2>&1 || fail "pvbuild destroy exited $?"
wait_for 30 only_dom0 || fail "after destroy: $(xl list 2>&1 | awk 'NR > 2 { print $1 }' | paste -sd ' ')"


# 4. pvbuild's guest alone, to its marker; then paused, dumped and destroyed.
boot_cfg pvbhvm > "$HARNESS_OUT/pvbhvm.cfg"
log=$HARNESS_OUT/pvbuild-create.log
core=/var/tmp/pvbhvm.core
tp=$(now)
trap 'rm -f "$core"; "$HARNESS_PVBUILD" destroy pvbhvm > /dev/null 2>&1' EXIT
"$HARNESS_PVBUILD" -v create --wait --timeout 900 "$HARNESS_OUT/pvbhvm.cfg" > "$log" 2>&1 &
pid=$!
evidence "$log"
evidence "$HARNESS_OUT/pvbhvm-serial.stamped"
created() { grep -q 'created domain' "$log" || ! proc_alive "$pid"; }
wait_for 120 created || fail "pvbuild create did not create the domain within 120 s: $(tail -n 2 "$log" | paste -sd ' ')"
grep -q 'created domain' "$log" || fail "pvbuild create exited before creating: $(grep -m 1 '^error' "$log")"
metric pvbuild_create_s "$(sed -n 's/.*created domain [0-9]* (pvbhvm) in \([0-9.]*\) s.*/\1/p' "$log" | head -n 1)"
wait_serial pvbhvm "$tp" 600 PVBUILD-GUEST-OK || fail "no marker from pvbuild's guest within 600 s: $(serial_tail pvbhvm)"
metric pvbuild_marker_s "$(elapsed "$tp")"
[ "$(serial_marker pvbhvm)" = "$want" ] || fail "pvbuild's marker is '$(serial_marker pvbhvm)', expected '$want'"
wait_serial pvbhvm "$tp" 60 PVBUILD-GUEST-IDLE || fail "the guest did not reach its idle wait: $(serial_tail pvbhvm)"
d=$(xl domid pvbhvm) || fail "pvbuild's booted HVM guest is not listed by xl"
xl pause pvbhvm || fail "xl pause pvbhvm exited $?"
# hvmloader's and SeaBIOS's lines in Xen's log (guest_loglvl=all), before the q key's dumps
# push them out of its ring.
xl dmesg | tr -d '\r' | grep "^(d$d) " > "$HARNESS_OUT/pvbhvm-firmware.log"

# The dump (issue 15), checked as pvbuild-dump-core checks a PVH guest's, and its padding
# accounted for page by page.
t=$(now)
"$HARNESS_PVBUILD" dump-core pvbhvm "$core" > "$HARNESS_OUT/pvb-dump.log" 2>&1 ||
    fail "pvbuild dump-core (HVM) exited $?: $(head -n 1 "$HARNESS_OUT/pvb-dump.log")"
metric pvbuild_dump_hvm_s "$(elapsed "$t")"
readelf -S -W "$core" > "$HARNESS_OUT/core.readelf" 2>&1
evidence "$HARNESS_OUT/core.readelf"
# The `.xen_pfn` table summarised: its gfns as ranges, and the invalid (padding) entries.
python3 "$HARNESS_REPO/tests/xen/dom0/core-pfns.py" "$core" > "$HARNESS_OUT/core-pfns.txt" 2>&1 ||
    fail "reading the core's .xen_pfn: $(tail -n 1 "$HARNESS_OUT/core-pfns.txt")"
rm -f "$core"
field() { sed -n "s/^$1 //p" "$HARNESS_OUT/core-pfns.txt"; }
size() {
    _h=$(awk -v n="$1" '{ for (i = 1; i <= NF; i++) if ($i == n) { print $(i + 4); exit } }' "$HARNESS_OUT/core.readelf")
    [ -n "$_h" ] && echo $((0x$_h))
}
grep -q '\.xen_p2m' "$HARNESS_OUT/core.readelf" && fail "the HVM core has a .xen_p2m"
pfn_bytes=$(size .xen_pfn)
page_bytes=$(size .xen_pages)
[ -n "$pfn_bytes" ] && [ -n "$page_bytes" ] || fail "the HVM core lacks .xen_pfn or .xen_pages: $(grep -o '\.xen_[a-z_]*' "$HARNESS_OUT/core.readelf" | paste -sd ' ')"
npfn=$((pfn_bytes / 8))
[ "$page_bytes" = $((npfn * 4096)) ] || fail "the HVM core has $npfn pfns but $page_bytes bytes of pages"
[ "$(field entries)" = "$npfn" ] || fail "the .xen_pfn read back has $(field entries) entries, readelf says $npfn"
xen_pages=$(xen_nr_pages "$d")
[ -n "$xen_pages" ] || fail "Xen's q key printed no nr_pages for domain $d"
note "dump-core HVM: $npfn pages (Xen's nr_pages $xen_pages): $(field valid) gfns ($(field ranges)), $(field invalid) padding entries"
[ "$npfn" = "$xen_pages" ] || fail "the HVM core holds $npfn pages, Xen says the domain has $xen_pages"
# Every gfn of the guest's 128 MiB but the VGA hole, and no other.
ram="0x0-0x9f 0xc0-$(printf '%#x' $((128 * 256 - 1)))"
[ "$(field ranges)" = "$ram" ] || fail "the core's gfns are $(field ranges), the guest's RAM is $ram"
# hvmloader's ACPI pages: the NVS range of its E820 table ("[03]: 00000000:fc000000 -
# 00000000:fc00b000: NVS").
nvs=$(sed -n 's/.*: 00000000:\([0-9a-f]*\) - 00000000:\([0-9a-f]*\): NVS$/\1 \2/p' "$HARNESS_OUT/pvbhvm-firmware.log" 2>/dev/null | head -n 1)
[ -n "$nvs" ] || fail "no NVS range in hvmloader's E820 table (pvbhvm-firmware.log)"
nvs_pages=$(( (0x${nvs#* } - 0x${nvs% *}) / 4096 ))
[ "$(field invalid)" = $((builder_hole + nvs_pages)) ] ||
    fail "the core pads $(field invalid) pages; the MMIO hole holds $builder_hole builder's pages and $nvs_pages of hvmloader's ACPI"
note "padding: the $builder_hole pages the builder populated in the MMIO hole and hvmloader's $nvs_pages ACPI pages (0x${nvs% *}-0x${nvs#* }), where the dump does not look"

"$HARNESS_PVBUILD" destroy pvbhvm > "$HARNESS_OUT/destroy.log" 2>&1 || fail "pvbuild destroy pvbhvm exited $?: $(head -n 1 "$HARNESS_OUT/destroy.log")"
done_p() { ! proc_alive "$pid"; }
wait_for 60 done_p || fail "pvbuild create --wait still running 60 s after its guest was destroyed"
wait "$pid" 2>/dev/null
wait_for 60 only_dom0 || fail "left behind: $(xl list 2>&1 | awk 'NR > 2 { print $1 }' | paste -sd ' ')"
wait_for 30 no_qemu || fail "a QEMU is left: $(pgrep -af 'qemu-system-i386 -xen-domid' | cut -c1-120)"
pass

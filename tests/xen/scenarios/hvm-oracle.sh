# harness-timeout: 900
# hvm-oracle (issue 14, throwaway): what xl and libxenguest do for an HVM guest by direct
# kernel boot; the logs become tests/xen/reference/*-hvm-*.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
cmdline="console=ttyS0 quiet"
hvm_cfg() {
    cat <<CFG
name = "$1"
type = "hvm"
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
cmdline = "$cmdline"
memory = $HARNESS_GUEST_MEMORY
vcpus = 2
serial = "file:$HARNESS_OUT/$1-serial.log"
vga = "$2"
vnc = 0
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
for vga in stdvga none; do
    hvm_cfg xlhvm$vga $vga > "$HARNESS_OUT/xlhvm$vga.cfg"
    xl -vvv create -p "$HARNESS_OUT/xlhvm$vga.cfg" > "$HARNESS_OUT/xl-vvv-create-$vga.log" 2>&1 ||
        fail "xl -vvv create -p ($vga) exited $?: $(tail -n 3 "$HARNESS_OUT/xl-vvv-create-$vga.log" | paste -sd ' ')"
    evidence "$HARNESS_OUT/xl-vvv-create-$vga.log"
    d=$(xl domid xlhvm$vga)
    /usr/lib/xen-4.17/bin/xen-hvmctx "$d" > "$HARNESS_OUT/xl-hvmctx-$vga.txt" 2>&1 || note "xen-hvmctx exited $?"
    xenstore-ls -f > "$HARNESS_OUT/xl-xenstore-$vga.txt" 2>&1
    ps -eo pid,args | grep -v grep | grep qemu > "$HARNESS_OUT/qemu-ps-$vga.txt"
    xl list -l xlhvm$vga > "$HARNESS_OUT/xl-list-l-$vga.json" 2>&1
    xl debug-keys q; xl dmesg | tail -n 80 > "$HARNESS_OUT/xl-dmesg-$vga.txt"
    if [ "$vga" = none ]; then
        t0=$(now)
        xl unpause xlhvm$vga
        got() { grep -q PVBUILD-GUEST-OK "$HARNESS_OUT/xlhvm$vga-serial.log" 2>/dev/null; }
        wait_for 400 got || { note "no marker in 400 s: $(tail -n 3 "$HARNESS_OUT/xlhvm$vga-serial.log" | tr -d '\r' | paste -sd ' ')"; }
        metric xl_marker_after_unpause_s "$(elapsed "$t0")"
        evidence "$HARNESS_OUT/xlhvm$vga-serial.log"
    fi
    xl destroy xlhvm$vga || fail "xl destroy exited $?"
done
pass

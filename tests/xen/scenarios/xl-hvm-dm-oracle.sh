# harness-timeout: 900
# harness-opt-in
# xl-hvm-dm-oracle (issue 14): the device model libxl 4.17 starts for HVM guests, captured as
# the oracle of pvbuild's HVM QEMU argv (host/src/devmodel/hvm.rs). For each config below,
# `xl -vvv create -p`, then: libxl's "Spawning device-model ... with arguments:" lines
# (NAME.dm-args), its xenstore entries for the device model and the domain (NAME.xenstore),
# QEMU's log, and `xl destroy`. A create that fails is recorded, not fatal (vga = "cirrus"
# is expected to fail on Debian's QEMU: its log says why). Opt-in: it proves nothing by
# itself; its output is kept in tests/xen/reference/xl-hvm-dm-*.log.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
setup_bridge
img=/tmp/hvmdm-disk.img
img2=/tmp/hvmdm-disk2.img
iso=/tmp/hvmdm-cd.iso
truncate -s 8M "$img" "$img2" "$iso" || fail "cannot make disk images"
common() {
    cat <<CFG
name = "$1"
type = "hvm"
memory = $HARNESS_GUEST_MEMORY
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}
direct() {
    cat <<CFG
kernel = "$HARNESS_GUEST_KERNEL"
ramdisk = "$HARNESS_GUEST_RAMDISK"
extra = "console=ttyS0 $HARNESS_GUEST_CMDLINE"
CFG
}
# hvmdm1: direct boot, serial pty, no vga, everything else libxl's default (vnc, sdl...).
{ common hvmdm1; direct; echo 'serial = "pty"'; echo 'vga = "none"'; } > "$HARNESS_OUT/hvmdm1.cfg"
# hvmdm2: 2 vcpus, serial to a file, stdvga with videoram, vnc off, nographic, boot order,
# IDE disks (hda file, xvdb file, a cdrom), two emulated NICs (e1000 with a MAC, default model).
{ common hvmdm2; direct; cat <<CFG; } > "$HARNESS_OUT/hvmdm2.cfg"
vcpus = 2
serial = "file:/tmp/hvmdm2-serial.log"
vga = "stdvga"
videoram = 16
vnc = 0
nographic = 1
boot = "cd"
disk = [ 'format=raw,vdev=hda,access=rw,target=$img', 'format=raw,vdev=xvdb,access=rw,target=$img2', 'format=raw,vdev=hdc,access=ro,devtype=cdrom,target=$iso' ]
vif = [ 'mac=00:16:3e:11:22:33,model=e1000,bridge=xenbr0', 'bridge=xenbr0' ]
CFG
# hvmdm3: cirrus, serial none, acpi off, maxvcpus beyond vcpus.
{ common hvmdm3; direct; cat <<CFG; } > "$HARNESS_OUT/hvmdm3.cfg"
vcpus = 1
maxvcpus = 2
serial = "none"
vga = "cirrus"
acpi = 0
vnc = 0
CFG
# hvmdm4: no kernel (firmware boot from disk), nothing about display or serial.
{ common hvmdm4; cat <<CFG; } > "$HARNESS_OUT/hvmdm4.cfg"
disk = [ '$img,raw,hda,w' ]
boot = "c"
CFG
for n in hvmdm1 hvmdm2 hvmdm3 hvmdm4; do
    t0=$(now)
    xl -vvv create -p "$HARNESS_OUT/$n.cfg" > "$HARNESS_OUT/$n.xl.log" 2>&1
    rc=$?
    metric "${n}_create_s" "$(elapsed "$t0")"
    note "$n: xl create -p exited $rc"
    grep -E 'libxl__spawn_local_dm|libxl_dm\.c' "$HARNESS_OUT/$n.xl.log" > "$HARNESS_OUT/$n.dm-args"
    d=$(xl domid "$n" 2>/dev/null)
    if [ -n "$d" ]; then
        { xenstore-ls -fp "/local/domain/$d"; xenstore-ls -fp "/local/domain/0/device-model/$d";
          xenstore-ls -fp "/libxl/$d"; xenstore-ls -fp "/local/domain/0/backend"; } > "$HARNESS_OUT/$n.xenstore" 2>&1
        ls -la /var/run/xen/ > "$HARNESS_OUT/$n.run-xen" 2>&1
        pid=$(xenstore-read "/local/domain/$d/image/device-model-pid" 2>/dev/null)
        [ -n "$pid" ] && tr '\0' '\n' < "/proc/$pid/cmdline" > "$HARNESS_OUT/$n.cmdline" 2>&1
        [ -n "$pid" ] && tr '\0' '\n' < "/proc/$pid/environ" > "$HARNESS_OUT/$n.environ" 2>&1
        ip -br link > "$HARNESS_OUT/$n.links" 2>&1
        xl destroy "$n" > "$HARNESS_OUT/$n.destroy.log" 2>&1 || note "$n: xl destroy exited $?"
    fi
    cp "/var/log/xen/qemu-dm-$n.log" "$HARNESS_OUT/$n.qemu.log" 2>/dev/null
done
ls -la /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu > "$HARNESS_OUT/firmware-dirs.txt" 2>&1
evidence "$HARNESS_OUT/hvmdm1.dm-args"
pass

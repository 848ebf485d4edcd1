# The configs whose `xl create -n` output host/tests/data/xl-dryrun/ holds (the harness
# scenario xl-create-dryrun writes them with KERNEL, RAMDISK and IMG set, runs xl and pvbuild
# on each). Sourced by that scenario; one function per config, printing it.
dry_pv_devices() {
    cat <<CFG
name = "dry-pv"
uuid = "6a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
type = "pv"
kernel = "$KERNEL"
ramdisk = "$RAMDISK"
extra = "console=hvc0 quiet"
memory = 64
maxmem = 96
vcpus = 2
maxvcpus = 3
disk = [ 'format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=$IMG', 'phy:/dev/loop7,xvdb,r' ]
vif = [ 'mac=00:16:3e:12:34:56,bridge=xenbr0', 'bridge=xenbr0,ip=10.99.0.5,mtu=1400' ]
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "preserve"
on_watchdog = "destroy"
CFG
}
dry_pv_bootloader() {
    cat <<CFG
name = "dry-grub"
uuid = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
bootloader = "pygrub"
bootloader_args = [ "--entry=1" ]
memory = 128
disk = [ '$IMG,raw,xvda,rw' ]
on_crash = "restart"
CFG
}
dry_pv_placement() {
    cat <<CFG
name = "dry-place"
uuid = "11111111-2222-4333-8444-555555555555"
kernel = "$KERNEL"
memory = 32
vcpus = 2
cpus = "0-1"
cpus_soft = "1"
cpu_weight = 512
cap = 50
pool = "Pool-0"
CFG
}
dry_pvh() {
    cat <<CFG
name = "dry-pvh"
uuid = "99999999-8888-4777-8666-555555555555"
type = "pvh"
kernel = "$KERNEL"
ramdisk = "$RAMDISK"
cmdline = "console=hvc0"
memory = 48
CFG
}
DRY_CONFIGS="dry_pv_devices dry_pv_bootloader dry_pv_placement dry_pvh"

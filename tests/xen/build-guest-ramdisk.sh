#!/usr/bin/env bash
# build-guest-ramdisk.sh OUT [KERNEL_RELEASE]: the guest ramdisk (gzip'd newc cpio,
# reproducible): busybox-static, guest/init and guest/stress (the crash soak's workload;
# /dev/console comes from the kernel's built-in initramfs); init prints
# "PVBUILD-GUEST-OK <kernel release> <cmdline>" on the console and powers off.
# With KERNEL_RELEASE, that kernel's xen-blkfront, xen-netfront and e1000 modules go in as
# /lib/xen-blkfront.ko, /lib/xen-netfront.ko and /lib/e1000.ko (guest/init loads them when
# the command line asks for the disk or network check; e1000 with `pvbuild.nic=e1000`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-guest-ramdisk.sh OUT [KERNEL_RELEASE]}
kver=${2:-}
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file -L "$busybox" | grep -q 'statically linked' ||
    { echo "error: a static busybox is needed (apt-get install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/proc"
cp "$busybox" "$tmp/bin/busybox"
cp "$here/guest/init" "$tmp/init"
cp "$here/guest/stress" "$tmp/stress"
if [ -n "$kver" ]; then
    mkdir -p "$tmp/lib"
    for mod in block/xen-blkfront net/xen-netfront net/ethernet/intel/e1000/e1000; do
        base=${mod##*/}
        ko=$(find "/lib/modules/$kver/kernel/drivers/${mod%/*}" -name "$base.ko*" | head -n 1)
        [ -n "$ko" ] || { echo "error: no $base module in /lib/modules/$kver" >&2; exit 1; }
        case $ko in
        *.ko) cp "$ko" "$tmp/lib/$base.ko" ;;
        *.ko.xz) xz -dc "$ko" > "$tmp/lib/$base.ko" ;;
        *.ko.zst) zstd -qdc "$ko" > "$tmp/lib/$base.ko" ;;
        *.ko.gz) gzip -dc "$ko" > "$tmp/lib/$base.ko" ;;
        esac
    done
fi
chmod 755 "$tmp/init" "$tmp/stress" "$tmp/bin/busybox"
find "$tmp" -exec touch -h -d @0 {} +
(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n > "$out.tmp"
mv "$out.tmp" "$out"

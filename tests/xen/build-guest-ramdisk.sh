#!/usr/bin/env bash
# build-guest-ramdisk.sh OUT: the guest ramdisk (gzip'd newc cpio, reproducible):
# busybox-static and guest/init (/dev/console comes from the kernel's built-in
# initramfs), which prints
# "PVBUILD-GUEST-OK <kernel release> <cmdline>" on the console and powers off.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-guest-ramdisk.sh OUT}
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file -L "$busybox" | grep -q 'statically linked' ||
    { echo "error: a static busybox is needed (apt-get install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/proc"
cp "$busybox" "$tmp/bin/busybox"
cp "$here/guest/init" "$tmp/init"
chmod 755 "$tmp/init" "$tmp/bin/busybox"
find "$tmp" -exec touch -h -d @0 {} +
(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n > "$out.tmp"
mv "$out.tmp" "$out"

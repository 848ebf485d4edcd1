#!/usr/bin/env bash
# build-dom0-initrd.sh OUT KERNEL_RELEASE: the dom0 initramfs (gzip'd newc cpio):
# busybox-static, dom0/init as /init, and the modules dom0 needs from
# /lib/modules/KERNEL_RELEASE with their dependencies (resolved from
# modules.dep), listed in load order in /etc/modules-order.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-dom0-initrd.sh OUT KERNEL_RELEASE}
kver=${2:?usage: build-dom0-initrd.sh OUT KERNEL_RELEASE}
moddir=/lib/modules/$kver
# What dom0 needs: Xen's devices and xenfs; virtio + 9p for the host's root and
# the share; overlay for a writable root.
wanted=(xen-privcmd xen-evtchn xen-gntdev xen-gntalloc xenfs
    virtio_ring virtio virtio_pci 9pnet 9pnet_virtio 9p netfs fscache overlay)

busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file -L "$busybox" | grep -q 'statically linked' ||
    { echo "error: a static busybox is needed (apt-get install busybox-static)" >&2; exit 1; }
[ -r "$moddir/modules.dep" ] || { echo "error: no $moddir/modules.dep" >&2; exit 1; }

# modules.dep: "path: dep dep ..." where the deps are the full closure, the
# first listed being loaded last.
declare -A path_of deps_of done_
while IFS= read -r line; do
    path=${line%%:*}
    base=${path##*/}
    base=${base%%.ko*}
    path_of[${base//-/_}]=$path
    deps_of[$path]=${line#*:}
done < "$moddir/modules.dep"

order=()
resolve() {
    local path=$1 deps i
    [ -z "${done_[$path]:-}" ] || return 0
    done_[$path]=1
    read -r -a deps <<< "${deps_of[$path]}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do resolve "${deps[i]}"; done
    order+=("$path")
}
for m in "${wanted[@]}"; do
    key=${m//-/_}
    if [ -z "${path_of[$key]:-}" ]; then
        # Built into the kernel: nothing to load.
        grep -qE "/${m}\.ko|/${key}\.ko" "$moddir/modules.builtin" 2>/dev/null ||
            { echo "error: module $m is neither in $moddir/modules.dep nor built in" >&2; exit 1; }
        continue
    fi
    resolve "${path_of[$key]}"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/modules" "$tmp/etc" "$tmp/dev" "$tmp/proc" "$tmp/sys"
cp "$busybox" "$tmp/bin/busybox"
cp "$here/dom0/init" "$tmp/init"
chmod 755 "$tmp/init" "$tmp/bin/busybox"
for path in "${order[@]}"; do
    base=${path##*/}
    ko=${base%%.ko*}.ko
    case $base in
    *.ko) cp "$moddir/$path" "$tmp/modules/$ko" ;;
    *.ko.xz) xz -dc "$moddir/$path" > "$tmp/modules/$ko" ;;
    *.ko.zst) zstd -qdc "$moddir/$path" > "$tmp/modules/$ko" ;;
    *.ko.gz) gzip -dc "$moddir/$path" > "$tmp/modules/$ko" ;;
    *) echo "error: unknown module format $path" >&2; exit 1 ;;
    esac
    echo "$ko" >> "$tmp/etc/modules-order"
done
(cd "$tmp" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 -n > "$out.tmp"
mv "$out.tmp" "$out"

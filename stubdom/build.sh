#!/bin/sh
# stubdom/build.sh [OUTDIR]: builds the images of a Linux device-model stub domain (issue 16)
# from this machine's Debian packages, as Xen's docs/misc/stubdom.txt ("Toolstack to Linux
# ioemu stubdomain protocol") describes them:
#   OUTDIR/stubdom-linux-kernel   Debian's kernel (linux-image-amd64), as installed
#   OUTDIR/stubdom-linux-initrd   a gzipped cpio: busybox (busybox-static), the kernel's Xen
#                                 frontend and device modules (tun and bridge for the
#                                 guest's NICs), Debian's QEMU for Xen
#                                 (qemu-system-xen) and the libraries it links, the xenstore
#                                 tools (xenstore-utils), vchan-socket-proxy (xen-utils-4.17),
#                                 the option ROMs QEMU loads, stubdom/init as /init, and
#                                 stubdom/privcmd-probe.c built with cc (gcc, libxen-dev).
# OUTDIR defaults to target/stubdom in the checkout. Nothing is downloaded: every file comes
# from an installed package or this directory, and a missing one is an error naming the package. The kernel is
# the newest one installed with its modules (PVBUILD_STUBDOM_KVER picks another). No root is
# needed; PVBUILD_STUBDOM_GZIP sets gzip's level (default 6). xl uses the images with `stubdomain_kernel` / `stubdomain_ramdisk` (docs/stubdom.md).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../target/stubdom}

die() { echo "error: $*" >&2; exit 1; }

kver=${PVBUILD_STUBDOM_KVER:-}
if [ -z "$kver" ]; then
    for k in $(ls /lib/modules 2>/dev/null | sort -V); do
        [ -r "/boot/vmlinuz-$k" ] && kver=$k
    done
fi
[ -n "$kver" ] || die "no kernel with modules is installed (apt-get install linux-image-amd64)"
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
[ -r "$kernel" ] || die "cannot read $kernel (linux-image-$kver)"
[ -r "$moddir/modules.dep" ] || die "no $moddir/modules.dep (linux-image-$kver)"

qemu=/usr/libexec/xen-qemu-system-i386
[ -x "$qemu" ] || die "no $qemu (apt-get install qemu-system-xen)"
proxy=/usr/lib/xen-4.17/bin/vchan-socket-proxy
[ -x "$proxy" ] || die "no $proxy (apt-get install xen-utils-4.17)"
for t in xenstore-read xenstore-write xenstore-list xenstore-exists; do
    [ -x "/usr/bin/$t" ] || die "no /usr/bin/$t (apt-get install xenstore-utils)"
done
busybox=/bin/busybox
[ -x "$busybox" ] || die "no $busybox (apt-get install busybox-static)"
# The stub has no dynamic loader for busybox to lean on before /init runs: it must be static.
if ldd "$busybox" > /dev/null 2>&1; then
    die "$busybox is not static (apt-get install busybox-static)"
fi
for c in cpio gzip ldd; do
    command -v "$c" > /dev/null 2>&1 || die "no $c on PATH"
done
cc=${CC:-cc}
command -v "$cc" > /dev/null 2>&1 || die "no C compiler $cc (apt-get install gcc)"
[ -r /usr/include/xen/sys/privcmd.h ] || die "no /usr/include/xen/sys/privcmd.h (apt-get install libxen-dev)"

root=$(mktemp -d "${TMPDIR:-/tmp}/pvbuild-stubdom.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/run" \
    "$root/lib/modules" "$root/usr/libexec" "$root/usr/bin" "$root/usr/share/qemu" \
    "$root/var/run/xen"
cp "$busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init"

# The kernel modules the stub loads, with what modules.dep says they need, in load order
# (dependencies first). Compressed modules are stored decompressed: busybox's insmod takes
# plain ELF.
# tun and bridge: the taps of the guest's emulated NICs, bridged to this domain's vifs.
modules="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkfront xen-netfront tun bridge"
order=
# (Recursive: its variables are local, or a dependency's would replace the module's own.)
add_module() {
    local path deps d n file name
    path=$(awk -v m="$1" -F: '{ n = $1; sub(/.*\//, "", n); sub(/\.ko(\.(xz|zst|gz))?$/, "", n);
        gsub(/_/, "-", n); mm = m; gsub(/_/, "-", mm); if (n == mm) { print $0; exit } }' "$moddir/modules.dep")
    [ -n "$path" ] || die "kernel $kver has no module $1 (linux-image-$kver)"
    deps=${path#*:}
    for d in $deps; do
        n=$(basename "$d"); n=${n%%.ko*}
        add_module "$n"
    done
    file=${path%%:*}
    name=$(basename "$file"); name=${name%%.ko*}
    case " $order " in *" $name "*) return 0 ;; esac
    case "$file" in
    *.ko) cp "$moddir/$file" "$root/lib/modules/$name.ko" ;;
    *.ko.xz) xz -dc "$moddir/$file" > "$root/lib/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$moddir/$file" > "$root/lib/modules/$name.ko" ;;
    *.ko.gz) gzip -dc "$moddir/$file" > "$root/lib/modules/$name.ko" ;;
    *) die "module $file: unknown compression" ;;
    esac
    order="$order $name"
}
for m in $modules; do add_module "$m"; done
echo "$order" | tr ' ' '\n' | sed '/^$/d' > "$root/lib/modules/load-order"

# A program and the shared libraries it links (ldd's view, the loader included), at their
# own paths.
copy_with_libs() {
    mkdir -p "$root$(dirname "$2")"
    cp -L "$1" "$root$2"
    ldd "$1" | awk '/=>/ { print $3 } /^[[:space:]]*\// { print $1 }' | while read -r lib; do
        [ -n "$lib" ] && [ -e "$lib" ] || continue
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}
copy_with_libs "$qemu" "$qemu"
copy_with_libs "$proxy" /usr/bin/vchan-socket-proxy
for t in xenstore-read xenstore-write xenstore-list xenstore-exists; do
    copy_with_libs "/usr/bin/$t" "/usr/bin/$t"
done
# The LD_PRELOAD object /init gives QEMU when xen-privcmd is restricted (stubdom/privcmd-probe.c
# says why), built from the repo's source against libxen-dev's privcmd.h.
mkdir -p "$root/usr/lib/pvbuild"
"$cc" -shared -fPIC -O2 -Wall -Wextra -Werror -o "$root/usr/lib/pvbuild/privcmd-probe.so" \
    "$here/privcmd-probe.c" || die "cannot build stubdom/privcmd-probe.c with $cc"
# A debugging aid, off by default: strace, which /init runs QEMU under when the stub's command
# line has `pvbuild.strace` (its ioctls and their errors go to the stub's console 0).
if [ "${PVBUILD_STUBDOM_STRACE:-0}" = 1 ]; then
    command -v strace > /dev/null 2>&1 || die "PVBUILD_STUBDOM_STRACE=1 but no strace (apt-get install strace)"
    copy_with_libs "$(command -v strace)" /usr/bin/strace
fi
# The option ROMs and firmware blobs QEMU may load for an HVM guest (its VGA cards, the direct
# kernel boot ROM, its NICs' boot ROMs), in the data directories Debian's QEMU searches
# (/usr/share/qemu, then seabios's and ipxe-qemu's), links resolved.
for f in vgabios-stdvga.bin vgabios-cirrus.bin linuxboot.bin linuxboot_dma.bin \
    efi-rtl8139.rom efi-e1000.rom pxe-rtl8139.rom pxe-e1000.rom; do
    for d in /usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu; do
        if [ -e "$d/$f" ]; then
            mkdir -p "$root$d"
            cp -L "$d/$f" "$root$d/$f"
        fi
    done
done
[ -e "$root/usr/share/qemu/linuxboot_dma.bin" ] ||
    die "no /usr/share/qemu/linuxboot_dma.bin (apt-get install qemu-system-data)"

mkdir -p "$out"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip "-${PVBUILD_STUBDOM_GZIP:-6}" > "$out/stubdom-linux-initrd.new"
mv "$out/stubdom-linux-initrd.new" "$out/stubdom-linux-initrd"
cp "$kernel" "$out/stubdom-linux-kernel"
echo "$kver" > "$out/stubdom-linux-kver"
size=$(du -k "$out/stubdom-linux-initrd" | cut -f1)
unpacked=$(du -sk "$root" | cut -f1)
echo "stubdom/build.sh: $out/stubdom-linux-kernel ($kver), $out/stubdom-linux-initrd" \
    "(${size} KiB, ${unpacked} KiB unpacked)"

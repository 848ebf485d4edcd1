#!/bin/sh
# tests/xen/install-deps.sh: install what the real-Xen harness (tests/xen/run.sh)
# needs on Debian 12 (bookworm). Run as root; idempotent: when everything is
# present it changes nothing (apt-get runs only for what is missing).
#
# On machine images that carry qemu-utils (or another qemu binary package) from
# bookworm-backports, qemu-system-x86 from bookworm cannot be installed next to
# it: those packages are then moved to the version of qemu-system-x86's
# candidate (found with apt-cache, not hard-coded), with --allow-downgrades.
set -eu

packages="qemu-system-x86 xen-hypervisor-4.17-amd64 xen-utils-4.17 linux-image-amd64
busybox-static libxen-dev cpio gzip xz-utils zstd lz4 bzip2 file coreutils binutils cpp gcc
e2fsprogs procps grub-pc-bin qemu-system-xen qemu-utils iproute2 grub-xen-host seabios man-db"

# The kernel the shared reference log was made with (`xl -vvv create` of it:
# ../shared/reference/xl-vvv-debian-VERSION.log beside the checkout): host/tests/plan_debian.rs
# compares `pvbuild plan` of that very kernel with the log, so it is installed beside the
# newest one (the harness boots the newest).
here=$(cd "$(dirname "$0")" && pwd)
for ref in "$here"/../../../shared/reference/xl-vvv-debian-*.log; do
    [ -r "$ref" ] || continue
    ver=$(basename "$ref" .log)
    ver=${ver#xl-vvv-debian-}
    packages="$packages linux-image-$ver"
done

if [ "$(id -u)" -ne 0 ]; then
    echo "error: run as root (apt-get install)" >&2
    exit 1
fi

installed() {
    dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'
}

missing=
for p in $packages; do
    installed "$p" || missing="$missing $p"
done

if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    pins=
    if ! installed qemu-system-x86; then
        want=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
        if [ -z "$want" ] || [ "$want" = "(none)" ]; then
            echo "error: apt has no candidate for qemu-system-x86" >&2
            exit 1
        fi
        # Installed binary packages built from the qemu source at another
        # version (typically bookworm-backports) block qemu-system-x86. Versions
        # compare without a binNMU suffix (+bN): arch:all packages lack it.
        src=$(echo "$want" | sed 's/+b[0-9]*$//')
        for p in $(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${source:Package} ${Version}\n' 2>/dev/null |
            awk -v src="$src" '$1 == "ii" && $3 == "qemu" { v = $4; sub(/\+b[0-9]+$/, "", v); if (v != src) print $2 }'); do
            v=$(apt-cache madison "$p" | awk -v src="$src" '{ v = $3; sub(/\+b[0-9]+$/, "", v) } v == src { print $3; exit }')
            if [ -n "$v" ]; then
                pins="$pins $p=$v"
            else
                echo "warning: $p is installed at another version than qemu-system-x86 $want, and apt has no $p $src" >&2
            fi
        done
    fi
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends --allow-downgrades $missing $pins
fi

# Rust: the PV test kernel and the no_std core build for x86_64-unknown-none.
if command -v rustup >/dev/null 2>&1; then
    rustup target list --installed | grep -qx x86_64-unknown-none || rustup target add x86_64-unknown-none
else
    echo "warning: no rustup: add the x86_64-unknown-none target to your Rust toolchain" >&2
fi

echo "tests/xen/install-deps.sh: all present"

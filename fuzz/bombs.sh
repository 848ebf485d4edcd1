#!/usr/bin/env bash
# Measures the worst time and memory `pvbuild plan` spends on hostile kernels and ramdisks
# (the figures in docs/limits.md): decompression bombs at the 1 GiB limit in every payload
# format, streams that lie about their size, and an oversized gzip ramdisk. Prints one line
# per case: wall time, CPU time, peak RSS, exit status and pvbuild's message.
#
# Usage: fuzz/bombs.sh PVBUILD_BINARY [WORKDIR]   (WORKDIR default /tmp/pvbuild-bombs; the
# inputs are made once, about 30 s of compression, and reused.)
set -euo pipefail
pvbuild=$(realpath "$1")
work=${2:-/tmp/pvbuild-bombs}
here=$(cd "$(dirname "$0")" && pwd)
elf=$here/../builder-core/tests/data/xen-pv64.elf
mkdir -p "$work"
cd "$work"

le32() { python3 -c "import sys,struct; sys.stdout.buffer.write(struct.pack('<I', $1))"; }
# The bzImage wrapper of builder-core/tests/data/make-fixtures.sh.
bzimage() { # $1 = payload file, $2 = output
    python3 - "$1" "$2" <<'PY'
import sys, struct
payload = open(sys.argv[1], "rb").read()
setup = bytearray(4 * 512)
setup[0x1f1] = 3
setup[0x1fe:0x200] = b"\x55\xaa"
setup[0x202:0x206] = b"HdrS"
struct.pack_into("<H", setup, 0x206, 0x020f)
struct.pack_into("<I", setup, 0x24c, len(payload))
open(sys.argv[2], "wb").write(bytes(setup) + payload)
PY
}

gib=$((1 << 30))
declare -A comp=([gz]="gzip -1 -n -c" [xz]="xz -0 --check=crc32 -c" [lzma]="lzma -0 -c"
    [zst]="zstd -1 -q -c" [lz4]="lz4 -l -1 -q -c" [bz2]="bzip2 -1 -c")
for f in gz xz lzma zst lz4 bz2; do
    [[ -f zeros-1g.$f.bz ]] && continue
    if [[ $f == gz ]]; then
        head -c $gib /dev/zero | ${comp[$f]} > p
    else
        { head -c $gib /dev/zero | ${comp[$f]}; le32 $gib; } > p
    fi
    bzimage p "zeros-1g.$f.bz"
    # The same stream claiming 1 GiB - 4 KiB: it overflows its buffer at the very end.
    head -c -4 p > q
    # (For gzip the last four bytes are ISIZE, inside the stream: the claim is made there.)
    { cat q; le32 $((gib - 4096)); } > q2
    bzimage q2 "zeros-1g-lies.$f.bz"
    # A short stream (1 KiB of zeros) claiming 1 GiB.
    if [[ $f == gz ]]; then
        head -c 1024 /dev/zero | ${comp[$f]} | head -c -4 > s
        { cat s; le32 $gib; } > s2
    else
        { head -c 1024 /dev/zero | ${comp[$f]}; le32 $gib; } > s2
    fi
    bzimage s2 "small-claims-1g.$f.bz"
    rm -f p q q2 s s2
done
[[ -f zeros-1g.gz ]] || head -c $gib /dev/zero | gzip -1 -n -c > zeros-1g.gz

run() { # label, args...
    local label=$1
    shift
    local rc=0
    /usr/bin/time -o stats -f '%e %U %S %M' "$pvbuild" plan "$@" >/dev/null 2>msg || rc=$?
    local secs user sys kb
    read -r secs user sys kb < <(tail -1 stats)
    # Wall time, and CPU time (user + system), which other load on the machine changes less.
    printf '%-28s %6ss %6ss CPU %6s MiB  rc %-3s %s\n' "$label" "$secs" \
        "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$((kb / 1024))" "$rc" \
        "$(head -1 msg | cut -c1-150)"
}
for f in gz xz lzma zst lz4 bz2; do
    run "bomb 1GiB $f" --memory 64 "zeros-1g.$f.bz"
    run "bomb 1GiB-4K (lies) $f" --memory 64 "zeros-1g-lies.$f.bz"
    run "1KiB claims 1GiB $f" --memory 64 "small-claims-1g.$f.bz"
done
run "gzip kernel 1GiB" --memory 64 zeros-1g.gz
run "gzip ramdisk 1GiB" --memory 64 --ramdisk zeros-1g.gz "$elf"
run "gzip ramdisk 1GiB, 2GiB mem" --memory 2048 --ramdisk zeros-1g.gz "$elf"
run "plan 16GiB guest" --memory 16384 "$elf"

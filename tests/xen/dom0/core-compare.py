#!/usr/bin/env python3
"""core-compare.py XL_CORE PVBUILD_CORE: compares two Xen core files section by section
(the sections read from each file's own ELF section headers): prints, per section of the
first, its size in each and how many bytes differ; exits 1 if the files differ, and 2 if
they differ only in the wallclock that Xen keeps in the guest's shared_info page.

Xen writes its wallclock into every domain's shared_info whenever dom0 sets it (XENPF_settime),
and dom0's Linux does that every 11 minutes (arch/x86/xen/time.c, xen_pvclock_gtod_notify): a
paused guest's two dumps taken across such a moment differ in those 16 bytes and nowhere else
(CI, 2026-12-07: 4 bytes from +0xc00). Their offsets are xen/include/public/xen.h's struct
shared_info on x86_64: vcpu_info[32] (64 bytes each), evtchn_pending[64] and evtchn_mask[64]
(8 bytes each), then wc_version, wc_sec, wc_nsec and wc_sec_hi (4 bytes each) at 0xc00-0xc0f.

The files are mapped, not read: dom0's root is in RAM, where two cores of a 128 MiB guest
read into Python as well ran dom0 out of memory (CI, pvbuild-dump-core: "Killed").
Sections are compared a megabyte at a time."""
import mmap
import struct
import sys

CHUNK = 1 << 20
WALLCLOCK = range(0xC00, 0xC10)


def sections(data):
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i) for i in range(shnum)]
    stroff = hdrs[shstrndx][4]
    out = {}
    for h in hdrs[1:]:
        name = data[stroff + h[0]:data.find(b"\0", stroff + h[0])].decode()
        out[name] = (h[4], h[5])
    return out


def count_diff(a, aoff, b, boff, size):
    """(bytes that differ, offset of the first, whether all of them are in WALLCLOCK) over
    `size` bytes at aoff in a and boff in b."""
    diff, first, wallclock = 0, None, True
    for pos in range(0, size, CHUNK):
        n = min(CHUNK, size - pos)
        x, y = a[aoff + pos:aoff + pos + n], b[boff + pos:boff + pos + n]
        if x == y:
            continue
        for i, (p, q) in enumerate(zip(x, y)):
            if p != q:
                diff += 1
                wallclock = wallclock and pos + i in WALLCLOCK
                if first is None:
                    first = pos + i
    return diff, first, wallclock


def same(a, b):
    if len(a) != len(b):
        return False
    return all(a[p:p + CHUNK] == b[p:p + CHUNK] for p in range(0, len(a), CHUNK))


def main():
    with open(sys.argv[1], "rb") as fa, open(sys.argv[2], "rb") as fb:
        a = mmap.mmap(fa.fileno(), 0, access=mmap.ACCESS_READ)
        b = mmap.mmap(fb.fileno(), 0, access=mmap.ACCESS_READ)
        if same(a, b):
            print(f"identical: {len(a)} bytes")
            return 0
        print(f"sizes: xl {len(a)}, pvbuild {len(b)}")
        sa, sb = sections(a), sections(b)
        header = sum(x != y for x, y in zip(a[:64], b[:64]))
        print(f"ELF header + section headers: {header} header bytes differ")
        # Only the wallclock: same size, same header, same sections, and every differing byte
        # in shared_info's wallclock fields.
        only_wallclock = len(a) == len(b) and header == 0 and set(sa) == set(sb)
        for name, (off, size) in sa.items():
            if name not in sb:
                print(f"{name}: only in xl")
                continue
            boff, bsize = sb[name]
            diff, first, wallclock = count_diff(a, off, b, boff, min(size, bsize))
            diff += abs(size - bsize)
            print(f"{name}: xl {off:#x}+{size:#x}, pvbuild {boff:#x}+{bsize:#x}, {diff} bytes differ"
                  + (f" (first at +{first:#x})" if first is not None else ""))
            if diff and not (name == ".xen_shared_info" and size == bsize and wallclock):
                only_wallclock = False
        if only_wallclock:
            print("only shared_info's wallclock differs (wc_version, wc_sec, wc_nsec, wc_sec_hi)")
            return 2
        return 1


sys.exit(main())

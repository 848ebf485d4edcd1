#!/usr/bin/env python3
"""core-compare.py XL_CORE PVBUILD_CORE: compares two Xen core files section by section
(the sections read from each file's own ELF section headers): prints, per section of the
first, its size in each and how many bytes differ; exits 1 if the files differ.

The files are mapped, not read: dom0's root is in RAM, where two cores of a 128 MiB guest
read into Python as well ran dom0 out of memory (CI, pvbuild-dump-core: "Killed").
Sections are compared a megabyte at a time."""
import mmap
import struct
import sys

CHUNK = 1 << 20


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
    """(bytes that differ, offset of the first) over `size` bytes at aoff in a and boff in b."""
    diff, first = 0, None
    for pos in range(0, size, CHUNK):
        n = min(CHUNK, size - pos)
        x, y = a[aoff + pos:aoff + pos + n], b[boff + pos:boff + pos + n]
        if x == y:
            continue
        for i, (p, q) in enumerate(zip(x, y)):
            if p != q:
                diff += 1
                if first is None:
                    first = pos + i
    return diff, first


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
        print(f"ELF header + section headers: {sum(x != y for x, y in zip(a[:64], b[:64]))} header bytes differ")
        for name, (off, size) in sa.items():
            if name not in sb:
                print(f"{name}: only in xl")
                continue
            boff, bsize = sb[name]
            diff, first = count_diff(a, off, b, boff, min(size, bsize))
            diff += abs(size - bsize)
            print(f"{name}: xl {off:#x}+{size:#x}, pvbuild {boff:#x}+{bsize:#x}, {diff} bytes differ"
                  + (f" (first at +{first:#x})" if first is not None else ""))
        return 1


sys.exit(main())

#!/usr/bin/env python3
"""core-compare.py XL_CORE PVBUILD_CORE: compares two Xen core files section by section
(the sections read from each file's own ELF section headers): prints, per section of the
first, its size in each and how many bytes differ; exits 1 if the files differ."""
import struct
import sys


def sections(data):
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    hdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + 64 * i) for i in range(shnum)]
    stroff = hdrs[shstrndx][4]
    out = {}
    for h in hdrs[1:]:
        name = data[stroff + h[0]:data.index(b"\0", stroff + h[0])].decode()
        out[name] = (h[4], h[5])
    return out


def main():
    a = open(sys.argv[1], "rb").read()
    b = open(sys.argv[2], "rb").read()
    if a == b:
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
        x, y = a[off:off + size], b[boff:boff + bsize]
        diff = sum(p != q for p, q in zip(x, y))
        first = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), None)
        print(f"{name}: xl {off:#x}+{size:#x}, pvbuild {boff:#x}+{bsize:#x}, {diff} bytes differ"
              + (f" (first at +{first:#x})" if first is not None else ""))
    return 1


sys.exit(main())

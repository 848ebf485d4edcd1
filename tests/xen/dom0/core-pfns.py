#!/usr/bin/env python3
"""core-pfns.py CORE: summarises the `.xen_pfn` table of a Xen core file (an HVM-container
guest's, as `xl dump-core` and `pvbuild dump-core` write it): its entries, the valid ones
(guest frame numbers), the invalid ones (all ones: the padding up to Xen's page count) and
the valid gfns as ranges, one `key value` line each."""
import struct, sys
f = open(sys.argv[1], "rb")
eh = f.read(64)
shoff, = struct.unpack_from("<Q", eh, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", eh, 0x3a)
def sh(i):
    f.seek(shoff + i * shentsize)
    return struct.unpack("<IIQQQQIIQQ", f.read(64))
strtab = sh(shstrndx)
f.seek(strtab[4]); names = f.read(strtab[5])
for i in range(shnum):
    s = sh(i)
    if names[s[0]:names.index(b"\0", s[0])] == b".xen_pfn":
        f.seek(s[4]); raw = f.read(s[5]); break
else:
    sys.exit("no .xen_pfn")
pfns = [p for p, in struct.iter_unpack("<Q", raw)]
valid = [p for p in pfns if p != 0xFFFFFFFFFFFFFFFF]
ranges, start, prev = [], None, None
for p in valid:
    if start is not None and p == prev + 1:
        prev = p; continue
    if start is not None: ranges.append((start, prev))
    start = prev = p
if start is not None: ranges.append((start, prev))
print("entries", len(pfns))
print("valid", len(valid))
print("invalid", len(pfns) - len(valid))
print("ranges", " ".join("%#x-%#x" % r for r in ranges))

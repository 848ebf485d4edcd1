#!/usr/bin/env python3
"""json-compare.py XL_JSON PVBUILD_JSON [IGNORED_PATH...]: compares two libxl domain
configurations (libxl userdata, a NUL at the end allowed) structurally: prints one line per
difference ("only in xl", "only in pvbuild", "differs") with its path, skipping the paths
given (dotted, e.g. c_info.uuid), and exits 1 if any is left."""
import json
import sys


def load(p):
    with open(p, "rb") as f:
        return json.loads(f.read().rstrip(b"\0").decode())


def walk(a, b, path, ignored, out):
    if path in ignored:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if p in ignored:
                continue
            if k not in b:
                out.append(f"only in xl: {p} = {json.dumps(a[k])}")
            elif k not in a:
                out.append(f"only in pvbuild: {p} = {json.dumps(b[k])}")
            else:
                walk(a[k], b[k], p, ignored, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", ignored, out)
    elif a != b:
        out.append(f"differs: {path}: xl {json.dumps(a)}, pvbuild {json.dumps(b)}")


def main():
    xl, pvb = load(sys.argv[1]), load(sys.argv[2])
    out = []
    walk(xl, pvb, "", set(sys.argv[3:]), out)
    for line in out:
        print(line)
    sys.exit(1 if out else 0)


main()

#!/usr/bin/env python3
"""Counts what one toolstack command asked of Xen and xenstored, from its strace.

Usage: strace-count.py TRACE   (written by `strace -f -qq -yy -xx -s 1048576 -o TRACE
-e trace=openat,connect,close,ioctl,write,writev,sendmsg,sendto CMD...`)

Prints one `key value` line each: `syscalls` (traced calls), `ioctl_privcmd`,
`ioctl_hypercall` (/dev/xen/hypercall), `ioctl_evtchn`, `ioctl_other`, `xs_requests`
(messages written to xenstored, over its socket or /dev/xen/xenbus: the 16-byte headers of
the byte stream, parsed in order, so a request written in pieces counts once) and
`xs_<type>` for each message type seen. An xenstore stream that does not parse is an error
(exit 1), so a change in strace's output cannot silently count zero.
"""
import re
import sys

XS_TYPES = [
    "control", "directory", "read", "get_perms", "watch", "unwatch", "transaction_start",
    "transaction_end", "introduce", "release", "get_domain_path", "write", "mkdir", "rm",
    "set_perms", "watch_event", "error", "is_domain_introduced", "resume", "set_target",
    "restrict", "reset_watches", "directory_part", "get_feature", "set_feature", "get_quota",
    "set_quota",
]

CALL = re.compile(r'^(?:\[pid\s+)?(\d+)\]?\s*(\w+)\((\d+)(<[^>]*>)?(.*)$')
STR = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def main(path):
    xs_fds = set()  # (pid, fd) connected to xenstored
    streams = {}  # (pid, fd) -> bytearray not yet parsed
    counts = {"syscalls": 0, "ioctl_privcmd": 0, "ioctl_hypercall": 0, "ioctl_evtchn": 0,
              "ioctl_other": 0, "xs_requests": 0}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        # `strace -f` without a pid prefix for the first process: "123 write(..." with -o.
        m = CALL.match(line)
        if not m:
            if re.match(r'^(?:\[pid\s+)?\d+\]?\s*\w+\(', line):
                counts["syscalls"] += 1
            continue
        pid, call, fd, ann, rest = m.groups()
        # With -xx the file names in -yy's annotations are hex-escaped too.
        ann = re.sub(r"\\x([0-9a-f]{2})", lambda h: chr(int(h.group(1), 16)), ann or "")
        counts["syscalls"] += 1
        key = (pid, fd)
        if call == "connect":
            s = "".join(bytes.fromhex(h.replace("\\x", "")).decode("utf-8", "replace")
                        for h in STR.findall(rest))
            if "xenstored" in s and not re.search(r"= -1", rest):
                xs_fds.add(key)
                streams[key] = bytearray()
        elif call == "close":
            xs_fds.discard(key)
            streams.pop(key, None)
        elif call == "ioctl":
            if "privcmd" in ann:
                counts["ioctl_privcmd"] += 1
            elif "/xen/hypercall" in ann:
                counts["ioctl_hypercall"] += 1
            elif "evtchn" in ann:
                counts["ioctl_evtchn"] += 1
            else:
                counts["ioctl_other"] += 1
        elif call in ("write", "writev", "sendmsg", "sendto"):
            if key not in xs_fds and not ("xenbus" in ann or "xenstored" in ann):
                continue
            # The returned count: what was really written (strace prints the whole buffer).
            rm = re.search(r"= (\d+)\s*$", rest)
            if not rm:
                continue
            data = b"".join(bytes.fromhex(h.replace("\\x", "")) for h in STR.findall(rest))
            data = data[: int(rm.group(1))]
            buf = streams.setdefault(key, bytearray())
            buf += data
            while len(buf) >= 16:
                typ = int.from_bytes(buf[0:4], "little")
                length = int.from_bytes(buf[12:16], "little")
                if typ >= len(XS_TYPES) or length > 4096:
                    print(f"error: pid {pid} fd {fd}: not a xenstore header: {bytes(buf[:16]).hex()}",
                          file=sys.stderr)
                    return 1
                if len(buf) < 16 + length:
                    break
                counts["xs_requests"] += 1
                k = "xs_" + XS_TYPES[typ]
                counts[k] = counts.get(k, 0) + 1
                del buf[: 16 + length]
    for k, v in counts.items():
        print(k, v)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: strace-count.py TRACE", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))

#!/usr/bin/env bash
# Seeds every fuzz target's corpus (fuzz/corpus/<target>/seed-*) from real inputs:
#   - the core's image fixtures (builder-core/tests/data: an ELF PV kernel, bzImages with each
#     payload format, gzip kernel and ramdisk),
#   - the project's PV test kernel (built here if missing and cargo can),
#   - Debian's kernel (/boot/vmlinuz-*): its bzImage header with truncated payloads, and the
#     PT_NOTE segment of the vmlinux inside it,
#   - small streams made by the system's gzip/xz/lzma/zstd/lz4/bzip2 (with Linux's trailer),
#   - the xl example configs (/etc/xen/xl*) and the project's own test configs,
#   - xenstore replies built per xs_wire.h (struct xsd_sockmsg + payload),
#   - `__xen_guest` strings as old kernels wrote them.
# Inputs that are absent are skipped (with a note). Re-running replaces the seed-* files and
# leaves what the fuzzers found alone. Needs python3.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

testk="$root/tests/pv-test-kernel/target/x86_64-unknown-none/release/pv-test-kernel"
if [[ ! -f $testk ]] && command -v cargo >/dev/null; then
    echo "seed-corpus: building the PV test kernel" >&2
    (cd "$root/tests/pv-test-kernel" && env -u CARGO_TARGET_DIR cargo build --release -q) ||
        echo "seed-corpus: could not build the PV test kernel; skipped" >&2
fi

python3 - "$root" "$testk" <<'PY'
import glob, gzip, lzma, os, shutil, struct, subprocess, sys, zlib

root, testk = sys.argv[1], sys.argv[2]
corpus = os.path.join(root, "fuzz", "corpus")
targets = ["probe", "elf_kernel", "xen_notes", "xen_guest", "bzimage", "decompress_gzip",
           "decompress_xz", "decompress_zstd", "decompress_lz4", "decompress_bzip2",
           "decompress_lzma", "unpack_kernel", "xl_config", "xenstore_reply", "build_guest",
           "build_elf", "bootloader_result", "console_ring", "mem_size", "serve_request"]
counts = {}
for t in targets:
    d = os.path.join(corpus, t)
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "seed-*")):
        os.remove(f)
    counts[t] = 0

def seed(target, name, data):
    with open(os.path.join(corpus, target, "seed-" + name), "wb") as f:
        f.write(data)
    counts[target] += 1

def note(msg):
    print("seed-corpus: " + msg, file=sys.stderr)

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        note(f"{path}: {e}; skipped")
        return None

# --- bzImage helpers (Documentation/arch/x86/boot.rst) -----------------------------------
def bz_payload(img):
    """(payload start, payload bytes) of a bzImage, or None."""
    if len(img) < 0x250 or img[0x202:0x206] != b"HdrS":
        return None
    setup_sects = img[0x1f1] or 4
    start = (setup_sects + 1) * 512
    off, length = struct.unpack_from("<II", img, 0x248)
    return start + off, img[start + off:start + off + length]

# --- ELF helpers ---------------------------------------------------------------------------
def elf_notes(elf):
    """Contents of every PT_NOTE segment of an ELF64 or ELF32 file."""
    out = []
    if elf[:4] != b"\x7fELF":
        return out
    if elf[4] == 2:
        phoff, = struct.unpack_from("<Q", elf, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
        for i in range(phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
            if p_type == 4:
                out.append(elf[p_offset:p_offset + p_filesz])
    else:
        phoff, = struct.unpack_from("<I", elf, 0x1c)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x2a)
        for i in range(phnum):
            p_type, p_offset, _, _, p_filesz = struct.unpack_from("<IIIII", elf, phoff + i * phentsize)
            if p_type == 4:
                out.append(elf[p_offset:p_offset + p_filesz])
    return out

# --- the core's fixtures -------------------------------------------------------------------
data = os.path.join(root, "builder-core", "tests", "data")
fixtures = {os.path.basename(p): read(p) for p in sorted(glob.glob(os.path.join(data, "*")))
            if os.path.isfile(p) and not p.endswith(".sh")}
# Regression inputs: streams that once failed (builder-core/tests/regressions.rs).
for p in sorted(glob.glob(os.path.join(data, "regressions", "*"))):
    ext = p.rsplit(".", 1)[-1]
    target = {"lzma": "decompress_lzma", "xz": "decompress_xz", "gz": "decompress_gzip",
              "zst": "decompress_zstd", "lz4": "decompress_lz4", "bz2": "decompress_bzip2"}.get(ext)
    blob = read(p)
    if blob is not None:
        seed(target or "unpack_kernel", "regression-" + os.path.basename(p), blob)
decomp_target = {"gz": "decompress_gzip", "xz": "decompress_xz", "zst": "decompress_zstd",
                 "lz4": "decompress_lz4", "bz2": "decompress_bzip2", "lzma": "decompress_lzma"}
for name, blob in fixtures.items():
    if blob is None:
        continue
    seed("probe", name, blob)
    seed("unpack_kernel", name, blob)
    if name != "initrd.gz":
        seed("build_guest", name, blob)
    if name.endswith(".elf"):
        seed("elf_kernel", name, blob)
        seed("build_elf", name, blob)
        for i, n in enumerate(elf_notes(blob)):
            seed("xen_notes", f"{name}-{i}", n)
    if name.startswith("bz-"):
        seed("bzimage", name, blob)
        fmt = name[3:-4]
        pl = bz_payload(blob)
        if pl and fmt in decomp_target:
            seed(decomp_target[fmt], "fixture", pl[1])
    if name.endswith(".gz"):
        seed("decompress_gzip", name, blob)

# --- the PV test kernel --------------------------------------------------------------------
tk = read(testk) if os.path.exists(testk) else None
if tk:
    for t in ("probe", "elf_kernel", "unpack_kernel", "build_guest", "build_elf"):
        seed(t, "pv-test-kernel", tk)
    for i, n in enumerate(elf_notes(tk)):
        seed("xen_notes", f"pv-test-kernel-{i}", n)
    seed("unpack_kernel", "pv-test-kernel.gz", gzip.compress(tk, 9))
    seed("build_guest", "pv-test-kernel.gz", gzip.compress(tk, 9))
else:
    note("no PV test kernel; skipped")

# --- Debian's kernel -----------------------------------------------------------------------
for vmlinuz in sorted(glob.glob("/boot/vmlinuz-*"))[:1]:
    img = read(vmlinuz)
    pl = bz_payload(img) if img else None
    if not pl:
        continue
    start, payload = pl
    base = os.path.basename(vmlinuz)
    head = img[:start]
    for cut in (0, 64, 4096, 65536):
        part = img[:start + cut]
        seed("bzimage", f"{base}-{cut}", part)
        seed("probe", f"{base}-{cut}", part)
        seed("unpack_kernel", f"{base}-{cut}", part)
    # A truncated payload with Linux's size trailer restored: the decoder runs into the cut.
    for cut in (4096, 65536):
        seed("decompress_xz" if payload[:6] == b"\xfd7zXZ\x00" else "probe",
             f"{base}-payload-{cut}", payload[:cut] + payload[-4:])
    try:
        dec = lzma.LZMADecompressor()
        vmlinux = dec.decompress(payload[:-4], max_length=256 << 20)
        for i, n in enumerate(elf_notes(vmlinux)):
            seed("xen_notes", f"{base}-vmlinux-{i}", n)
        # The vmlinux's ELF and program headers, cut short: the ELF parser's error paths.
        seed("elf_kernel", f"{base}-vmlinux-head", vmlinux[:4096])
    except lzma.LZMAError as e:
        note(f"{vmlinuz}: payload is not xz ({e})")

# --- small streams from the system's compressors, with Linux's le32 size trailer ----------
text = (open(os.path.join(root, "DEVELOPERS.md"), "rb").read()[:16384]
        if os.path.exists(os.path.join(root, "DEVELOPERS.md")) else b"pvbuild " * 2048)
samples = {"text": text, "zeros": bytes(65536), "empty": b"", "byte": b"x"}
tools = {"decompress_gzip": (["gzip", "-9", "-n", "-c"], False),
         "decompress_xz": (["xz", "--check=crc32", "-c"], True),
         "decompress_lzma": (["lzma", "-c"], True),
         "decompress_zstd": (["zstd", "-19", "-q", "-c"], True),
         "decompress_lz4": (["lz4", "-l", "-9", "-q", "-c"], True),
         "decompress_bzip2": (["bzip2", "-9", "-c"], True)}
for target, (cmd, trailer) in tools.items():
    if shutil.which(cmd[0]) is None:
        note(f"no {cmd[0]}; skipped")
        continue
    for name, s in samples.items():
        out = subprocess.run(cmd, input=s, stdout=subprocess.PIPE, check=True).stdout
        if trailer:
            out += struct.pack("<I", len(s))
        seed(target, name, out)
        seed("probe", f"{target}-{name}", out)

# --- xz container variants: every check type, BCJ filters, several blocks, sizes in block
# headers (multi-threaded xz), a small dictionary: the paths of builder-core's xz reader ------
if shutil.which("xz"):
    xz_variants = {
        "crc64": ["--check=crc64"], "sha256": ["--check=sha256"], "none": ["--check=none"],
        "x86-start": ["--x86=start=16", "--lzma2"], "arm64": ["--arm64", "--lzma2"],
        "blocks": ["--block-size=4096"], "mt-sizes": ["-T2", "--block-size=4096"],
        "dict4k": ["--lzma2=dict=4KiB"],
    }
    for name, args in xz_variants.items():
        out = subprocess.run(["xz", "-z", "-c"] + args, input=text, stdout=subprocess.PIPE,
                             check=True).stdout
        seed("decompress_xz", f"variant-{name}", out + struct.pack("<I", len(text)))

# --- xl configs ----------------------------------------------------------------------------
cfgs = sorted(glob.glob("/etc/xen/xl*")) + sorted(glob.glob(os.path.join(root, "tests", "**", "*.cfg*"), recursive=True))
for p in cfgs:
    c = read(p)
    if c is not None:
        seed("xl_config", os.path.basename(p), c)
seed("xl_config", "all-kinds", b'''# every kind of value xl.cfg(5) has
name = "g1"
type = "pv"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/initrd.gz"
cmdline = "console=hvc0 root=/dev/xvda1"
memory = 256
maxmem = 0x200
vcpus = 2
on_crash = 'destroy'
disk = [ 'format=raw, vdev=xvda, access=rw, target=/dev/vg/g1', ]
vif = [ "mac=00:16:3e:00:00:01,bridge=xenbr0" ]
bootloader = "pygrub"
bootloader_args = [ "--kernel=/vmlinuz", "--ramdisk=/initrd.img" ]
extra = "quiet" ; builder = "generic"
''')
seed("xl_config", "vifs", b'''name = "net"
kernel = "/boot/vmlinuz"
vif = [ '', 'mac=00:16:3E:74:3d:76,bridge=xenbr1,script=vif-route,ip=10.0.0.2', 'devid=7,vifname=web0,mtu=9000,untrusted,model=e1000', 'type=vif,netdev=eth0,backend=0,trusted=1' ]
''')

# --- xenstore replies (xen/include/public/io/xs_wire.h) ------------------------------------
def msg(t, payload, req=1, tx=0):
    return struct.pack("<IIII", t, req, tx, len(payload)) + payload
XS_DIRECTORY, XS_READ, XS_GET_PERMS, XS_WATCH, XS_TRANSACTION_START, XS_TRANSACTION_END = 1, 2, 3, 4, 6, 7
XS_GET_DOMAIN_PATH, XS_WRITE, XS_MKDIR, XS_WATCH_EVENT, XS_ERROR = 10, 11, 12, 15, 16
XS_IS_DOMAIN_INTRODUCED, XS_DIRECTORY_PART = 17, 22
replies = {
    "read": msg(XS_READ, b"linux"),
    "read-empty": msg(XS_READ, b""),
    "write-ok": msg(XS_WRITE, b"OK\0"),
    "mkdir-ok": msg(XS_MKDIR, b"OK\0"),
    "directory": msg(XS_DIRECTORY, b"0\0" b"1\0" b"7\0"),
    "directory-part": msg(XS_DIRECTORY_PART, b"12\0" b"device\0" b"memory\0\0"),
    "get-perms": msg(XS_GET_PERMS, b"n0\0" b"r7\0"),
    "domain-path": msg(XS_GET_DOMAIN_PATH, b"/local/domain/7\0"),
    "transaction-start": msg(XS_TRANSACTION_START, b"42\0"),
    "transaction-end": msg(XS_TRANSACTION_END, b"OK\0", tx=42),
    "introduced": msg(XS_IS_DOMAIN_INTRODUCED, b"T\0"),
    "error-enoent": msg(XS_ERROR, b"ENOENT\0"),
    "error-eagain": msg(XS_ERROR, b"EAGAIN\0", tx=42),
    "watch-ok": msg(XS_WATCH, b"OK\0"),
    "watch-event": msg(XS_WATCH_EVENT, b"/local/domain/7/device/vbd\0token\0", req=0),
    "two": msg(XS_WATCH_EVENT, b"@releaseDomain\0t\0", req=0) + msg(XS_READ, b"1"),
    "max-payload": msg(XS_READ, b"a" * 4096),
    "header-only": struct.pack("<IIII", XS_READ, 1, 0, 10),
}
for name, m in replies.items():
    seed("xenstore_reply", name, m)

# --- bootloader results (pygrub's simple0 output) and disk specs ----------------------------
d = b"/run/pvbuild/bootloader.1/files/"
for name, out in {
    "pygrub": b"kernel " + d + b"boot_kernel.abc\0ramdisk " + d + b"boot_ramdisk.def\0args root=/dev/xvda1 ro quiet\0",
    "kernel-only": b"kernel " + d + b"k\0",
    "outside": b"kernel /etc/passwd\0",
    "unknown": b"kernel " + d + b"k\0bogus line\0args\0",
}.items():
    seed("bootloader_result", name, out)
for i, spec in enumerate([b"phy:/dev/vg/guest,xvda,w", b"file:/srv/g.img,xvda1,w",
                          b"tap:qcow2:/srv/g.qcow2,xvda,w", b"/srv/g.img,raw,xvda,rw",
                          b"format=raw, vdev=xvda, access=rw, target=/srv/a,b.img",
                          b",,hdc,devtype=cdrom"]):
    seed("bootloader_result", f"disk{i}", spec)

# --- console rings (fuzz_targets/console_ring.rs: out_cons, out_prod, then the page) -------
text = b"[    0.000000] Linux version 6.1.0 (debian-kernel@lists.debian.org)\r\n" * 40
ring = lambda body: b"\0" * 1024 + body  # the out ring starts after the 1 KiB in ring
for name, (cons, prod, body) in {
    "empty": (0, 0, b""),
    "boot": (0, 300, ring(text[:300])),
    "wrapped": (0xFFFFFF00, 0x100, ring(text[:2048])),
    "full": (4096, 6144, ring(text[:2048])),
    "hostile": (5, 0xFFFF0000, ring(text[:2048])),
    "backwards": (1000, 10, ring(text[:100])),
}.items():
    seed("console_ring", name, struct.pack("<II", cons, prod) + body)

# --- memory sizes in xl's syntax (fuzz_targets/mem_size.rs) --------------------------------
for i, s in enumerate([b"256", b"128m", b"131072k", b"2G", b"1t", b"1048576b", b" 512M ",
                       b"18446744073709551615t", b"12q", b"m", b"-5"]):
    seed("mem_size", f"size{i}", s)

# --- pvbuild serve's packets (fuzz_targets/serve_request.rs) -------------------------------
for i, words in enumerate([[b"create", b"-p", b"/etc/xen/g.cfg", b'name="a b"'], [b"list"],
                           [b"-vv", b"destroy", b"g"], [b""], [b"\x1b[2J", b"\xff\xfe"]]):
    seed("serve_request", f"req{i}", b"PVB1" + b"".join(w + b"\0" for w in words))
seed("serve_request", "reply", b"PVB1\x02")
seed("serve_request", "unterminated", b"PVB1list")

# --- __xen_guest strings -------------------------------------------------------------------
for i, s in enumerate([
    b"GUEST_OS=linux,GUEST_VER=2.6,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,ELF_PADDR_OFFSET=0xC0000000,HYPERCALL_PAGE=0x2,LOADER=generic",
    b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xC0000000,PAE=yes[extended-cr3],FEATURES=writable_page_tables|!supervisor_mode_kernel",
    b"GUEST_OS=Plan9,XEN_VER=xen-3.0,LOADER=generic,BSD_SYMTAB",
    b"GUEST_OS=NetBSD,XEN_VER=xen-3.0,VIRT_BASE=0xc0100000,ELF_PADDR_OFFSET=0xc0100000,PAE=bimodal",
    b"",
]):
    seed("xen_guest", str(i), s)

for t in targets:
    print(f"{t:18} {counts[t]:3} seeds")
PY

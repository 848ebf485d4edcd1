#!/bin/sh
# build-hvm-disk.sh OUT KERNEL RAMDISK CMDLINE: a raw disk image that boots KERNEL with RAMDISK
# and CMDLINE through a BIOS (SeaBIOS in an HVM guest), built without root or loop devices from
# Debian's packages (e2fsprogs, grub-pc-bin, python3):
#   - an MBR disk with one ext2 partition (type 0x83, active) from sector 2048 to the end,
#     populated by `mke2fs -d` with /boot/vmlinuz, /boot/initrd.img and /boot/grub/grub.cfg;
#   - grub.cfg: `linux /boot/vmlinuz CMDLINE`, `initrd /boot/initrd.img`, `boot`; GRUB says
#     PVBUILD-GRUB-CFG on the serial port first, PVBUILD-GRUB-KERNEL-READ and
#     PVBUILD-GRUB-INITRD-READ after each file, so a log shows the disk's GRUB ran and when;
#   - GRUB for BIOS as grub-install puts it on an MBR disk (grub's util/setup.c): core.img
#     (`grub-mkimage -O i386-pc`, prefix (hd0,msdos1)/boot/grub, with the modules that read the
#     partition and load Linux built in) from sector 1, in the gap before the partition, and
#     boot.img's first 440 bytes in the MBR before the partition table.
# Nothing is patched: boot.img's kernel sector (a little-endian u64 at 0x5c) is 1 and its boot
# drive (0x64) 0xff ("the drive the BIOS says") as shipped, which is what grub-setup writes for
# core.img at sector 1; and grub-mkimage's diskboot.img (core.img's first sector) ends in the
# blocklist {start 2, len = core.img's other sectors, segment 0x820}. The script checks those
# fields rather than trusting them. The image is sparse; its size is what the files need plus
# 8 MiB.
set -eu
out=${1:?usage: build-hvm-disk.sh OUT KERNEL RAMDISK CMDLINE}
kernel=${2:?usage: build-hvm-disk.sh OUT KERNEL RAMDISK CMDLINE}
ramdisk=${3:?usage: build-hvm-disk.sh OUT KERNEL RAMDISK CMDLINE}
cmdline=${4:?usage: build-hvm-disk.sh OUT KERNEL RAMDISK CMDLINE}
grubdir=/usr/lib/grub/i386-pc
for f in "$grubdir/boot.img" "$grubdir/diskboot.img" "$grubdir/kernel.img"; do
    [ -r "$f" ] || { echo "error: no $f (package grub-pc-bin: tests/xen/install-deps.sh installs it)" >&2; exit 1; }
done
for c in mke2fs grub-mkimage python3; do
    command -v "$c" > /dev/null 2>&1 || { echo "error: no $c on PATH" >&2; exit 1; }
done
[ -r "$kernel" ] || { echo "error: cannot read the kernel $kernel" >&2; exit 1; }
[ -r "$ramdisk" ] || { echo "error: cannot read the ramdisk $ramdisk" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/boot/grub"
cp "$kernel" "$tmp/root/boot/vmlinuz"
cp "$ramdisk" "$tmp/root/boot/initrd.img"
cat > "$tmp/root/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_output serial
echo PVBUILD-GRUB-CFG
linux /boot/vmlinuz $cmdline
echo PVBUILD-GRUB-KERNEL-READ
initrd /boot/initrd.img
echo PVBUILD-GRUB-INITRD-READ
boot
CFG

# The partition: from sector 2048 (1 MiB, as fdisk aligns) to the end of the disk.
kib=$(du -s -k "$tmp/root" | cut -f1)
part_mib=$((kib / 1024 + 8))
mke2fs -q -F -t ext2 -L pvbuild-boot -E root_owner=0:0 -d "$tmp/root" "$tmp/part.img" "${part_mib}M" > /dev/null

# core.img: the modules built in (their dependencies are added by grub-mkimage).
grub-mkimage -O i386-pc -d "$grubdir" -p '(hd0,msdos1)/boot/grub' -o "$tmp/core.img" \
    biosdisk part_msdos ext2 linux normal serial terminal echo

python3 - "$grubdir/boot.img" "$tmp/core.img" "$tmp/part.img" "$out.tmp" <<'PY'
import struct, sys

SECTOR = 512
PART_START = 2048  # sectors: the partition's first LBA


def fail(msg):
    sys.stderr.write("error: " + msg + "\n")
    sys.exit(1)


boot_path, core_path, part_path, out_path = sys.argv[1:5]
boot = open(boot_path, "rb").read()
core = open(core_path, "rb").read()
if len(boot) != SECTOR:
    fail("%s is %d bytes, not one sector" % (boot_path, len(boot)))
# boot.img: the sector it loads core.img's first sector from, and the boot drive.
kernel_sector = struct.unpack_from("<Q", boot, 0x5C)[0]
boot_drive = boot[0x64]
if kernel_sector != 1 or boot_drive != 0xFF:
    fail("boot.img's kernel sector is %d and boot drive %#x, expected 1 and 0xff" % (kernel_sector, boot_drive))
core_sectors = (len(core) + SECTOR - 1) // SECTOR
if 1 + core_sectors > PART_START:
    fail("core.img is %d sectors, the gap before the partition %d" % (core_sectors, PART_START - 1))
# diskboot.img's blocklist (the last 12 bytes of core.img's first sector): the rest of core.img.
start, length, segment = struct.unpack_from("<QHH", core, SECTOR - 12)
if (start, length, segment) != (2, core_sectors - 1, 0x820):
    fail("diskboot's blocklist is start %d len %d segment %#x, expected 2 %d 0x820" % (start, length, segment, core_sectors - 1))
with open(part_path, "rb") as f:
    f.seek(0, 2)
    part_bytes = f.tell()
if part_bytes % SECTOR:
    fail("the partition image is %d bytes, not whole sectors" % part_bytes)
part_sectors = part_bytes // SECTOR
# One MBR partition entry: active, CHS fields saturated (LBA only), type 0x83 (Linux).
entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", PART_START, part_sectors)
mbr = bytearray(SECTOR)
mbr[0:440] = boot[0:440]
mbr[446:462] = entry
mbr[510:512] = b"\x55\xaa"
with open(out_path, "wb") as out:
    out.write(mbr)
    out.write(core)
    out.seek(PART_START * SECTOR)
    with open(part_path, "rb") as part:
        while True:
            chunk = part.read(1 << 20)
            if not chunk:
                break
            if chunk.count(0) == len(chunk):
                out.seek(len(chunk), 1)
            else:
                out.write(chunk)
    out.truncate((PART_START + part_sectors) * SECTOR)
print("core.img %d sectors, partition %d sectors from %d" % (core_sectors, part_sectors, PART_START))
PY
mv "$out.tmp" "$out"

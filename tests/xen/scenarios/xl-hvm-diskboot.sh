# harness-timeout: 1500
# harness-opt-in
# xl-hvm-diskboot (issue 14): xl's side of pvbuild-hvm-diskboot: xl's HVM guest of the same
# config (no kernel key; the disk image built in dom0 by tests/xen/build-hvm-disk.sh, booted
# through hvmloader, SeaBIOS and the disk's GRUB) to its init's marker on its emulated serial
# port. Opt-in: it proves nothing of pvbuild's (it proves the image); it is the reference time
# for pvbuild's boot (docs/timings.md).
HARNESS_HVM_XL_DISKBOOT=1
export HARNESS_HVM_XL_DISKBOOT
. "$HARNESS_REPO/tests/xen/scenarios/pvbuild-hvm-diskboot.sh"

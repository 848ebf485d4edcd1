# harness-timeout: 1500
# harness-opt-in
# xl-stubdom-diskboot (issue 16): pvbuild-stubdom's guest booted by pvbuild and then by xl in
# the same run: the same disk image (GRUB, the harness's kernel and ramdisk), the same stub
# images built in dom0, the same config (xl's disk on a loop device with a fast `script=`:
# libxl gives a stub domain blkback), each to the marker on its serial port; the two
# toolstacks' xenstore nodes of guest and stub, taken while each runs, normalised and diffed
# (xenstore-stub.diff, explained in docs/stubdom.md). Opt-in: two stub boots cost minutes
# under TCG; pvbuild's side alone is CI's pvbuild-stubdom. Times: docs/timings.md.
HARNESS_STUBDOM_XL=1
export HARNESS_STUBDOM_XL
. "$HARNESS_REPO/tests/xen/scenarios/pvbuild-stubdom.sh"

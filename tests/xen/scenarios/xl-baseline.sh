# harness-opt-in
# Opt-in (xl's side only: pvbuild's own scenarios keep CI's harness budget); its reference
# data is kept in the tree (tests/xen/README.md).
# xl-baseline: `xl create` boots Debian's kernel (xz bzImage) as a PV domU with
# the harness ramdisk; the guest must print its marker (right kernel release,
# right command line) on hvc0 and power off, and xl must see the poweroff.
# Metrics: xl_create_s (till `xl create` returned), marker_s, gone_s.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
xl_boot_debian xlbase
pass

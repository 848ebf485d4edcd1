# harness-timeout: 1800
# harness-opt-in
# pvbuild-hvm-boot (issue 14): pvbuild-hvm with its phase 4: xl's and pvbuild's HVM guests of
# the same config booted at once by direct kernel boot, each to its init's marker on its
# emulated serial port. Opt-in until it has passed within CI's budget (docs/hvm.md).
HARNESS_HVM_BOOT=1
export HARNESS_HVM_BOOT
. "$HARNESS_REPO/tests/xen/scenarios/pvbuild-hvm.sh"

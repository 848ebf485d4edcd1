# harness-timeout: 1000
# harness-opt-in
# pvbuild-hvm-boot (issue 14): xl's side of pvbuild-hvm's phase 4: xl's HVM guest of the same
# config (1 vcpu, 128 MiB, direct kernel boot, the same command line) booted alone to its
# init's marker on its emulated serial port, each serial line stamped with the second it was
# seen (xlhvm-serial.stamped). Opt-in: it proves nothing of pvbuild's; it is the reference
# time for pvbuild's boot (docs/timings.md).
HARNESS_HVM_XL_BOOT=1
export HARNESS_HVM_XL_BOOT
. "$HARNESS_REPO/tests/xen/scenarios/pvbuild-hvm.sh"

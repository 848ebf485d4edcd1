# harness-opt-in
# harness-timeout: 600
# harness-selftest-hang: a check of the harness itself, not of pvbuild. It makes the emulated
# machine stop answering as a hung Xen or dom0 would: real-time busy loops on both of dom0's
# vcpus, with the kernel's real-time throttling off, starve every other process of dom0
# (dom0's `timeout`, the heartbeat, this script). run.sh must notice the silent heartbeat,
# stop QEMU, keep the serial log, run this scenario once more on a new machine (which hangs
# again: FAIL, "on each of its 2 attempts") and go on with the scenarios named after it.
#   tests/xen/run.sh --no-build --scenario harness-selftest-hang --scenario console-ring
# must end with harness-selftest-hang FAIL and console-ring PASS (exit 1).
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
command -v chrt > /dev/null && command -v taskset > /dev/null || fail "no chrt/taskset in dom0"
echo -1 > /proc/sys/kernel/sched_rt_runtime_us || fail "cannot turn real-time throttling off"
note "starving dom0 now"
for c in 0 1; do
    taskset -c "$c" chrt -f 99 sh -c 'while :; do :; done' &
done
sleep 600
fail "dom0 was not starved: this script ran on"

#!/usr/bin/env bash
# The main job, end to end on a fresh Debian 12 machine: install Xen 4.17, QEMU and Debian's
# kernel, build pvbuild, boot Xen and a dom0 under QEMU emulation, and have `pvbuild create`
# boot Debian's own kernel (an xz bzImage) as a PV guest with a busybox ramdisk. Prints the
# guest's console and the shutdown reason pvbuild reported.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/xen/install-deps.sh
status=0
bash tests/xen/run.sh --scenario pvbuild-debian || status=$?
work=${HARNESS_WORK:-tests/xen/work}
echo
echo "==> what pvbuild printed in dom0"
cat "$work/share/results/pvbuild-debian/pvbuild-create.log" 2>/dev/null || true
echo
echo "==> the guest's console (xenconsoled's log)"
cat "$work/share/console/guest-pvbdeb.log" 2>/dev/null || echo "(no console log)"
exit $status

#!/bin/sh
# Stage 2 of dom0: PID 1 inside the overlay of this machine's root; $1 is the
# writable share (the host's tests/xen/work/share, mounted at the same path), $2 the checkout.
# Mounts the kernel filesystems, starts the Xen daemons as a Debian dom0 does
# (oxenstored, xen-init-dom0, xenconsoled --log=guest), runs the selected
# scenarios (run-scenarios.sh) and powers the machine off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C LC_ALL=C
share=$1
# The checkout, for the binds below (config.env, read later, sets HARNESS_REPO itself).
HARNESS_REPO_HINT=$2

fatal() {
    echo "HARNESS-DOM0-FATAL stage2: $*"
    echo "fatal $*" >> "$share/progress.log"
    sync
    busybox poweroff -f
    sleep 3600
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
# xenconsoled hands out ptys: devpts is required.
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
# The host's /tmp and /run are only read-only views here: give dom0 its own. A checkout (or
# work directory) under one of them, as where a newcomer clones it to try it, would be hidden
# by the new tmpfs: the host's directory is kept aside first, and the checkout and the share
# are bound back at their own paths.
for dir in /run /tmp; do
    aside=/.harness-host$dir
    mkdir -p "$aside" && mount --rbind "$dir" "$aside" || fatal "cannot keep the host's $dir aside"
    mount -t tmpfs -o mode=1777 tmpfs "$dir" || fatal "cannot mount a tmpfs on $dir"
    for p in "$HARNESS_REPO_HINT" "$share"; do
        case $p in
        "$dir"/*)
            mountpoint -q "$p" 2>/dev/null && continue
            mkdir -p "$p" && mount --rbind "$aside${p#"$dir"}" "$p" || fatal "cannot bind $p back"
            ;;
        esac
    done
done
chmod 0755 /run
mount -t tmpfs tmpfs /dev/shm
mount -t xenfs xenfs /proc/xen || fatal "mount xenfs"
mkdir -p /run/xen /run/xenstored /run/lock /var/log/xen /var/lib/xen /var/lib/xenstored

[ -r "$share/config.env" ] || fatal "no $share/config.env"
. "$share/config.env"
export HARNESS_REPO HARNESS_SHARE
echo "stage2 $(date +%s.%N)" >> "$share/progress.log"
# The share is mounted uncached (so results reach the host at once): run the
# binaries under test from a tmpfs copy, or every exec pages them in over 9p.
mkdir -p /run/harness/bin
for var in HARNESS_PVBUILD HARNESS_PV_TEST_KERNEL; do
    eval "f=\${$var:-}"
    if [ -n "$f" ] && [ -f "$f" ]; then
        cp "$f" /run/harness/bin/ || fatal "cannot copy $f"
        eval "$var=/run/harness/bin/\$(basename \"\$f\")"
    fi
done
export HARNESS_PVBUILD HARNESS_PV_TEST_KERNEL

xenbin=$(ls -d /usr/lib/xen-4.*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$xenbin/xl" ] || fatal "no xen-utils under /usr/lib/xen-4.*/bin"
export HARNESS_XENBIN="$xenbin"
mkdir -p "$share/console" "$share/daemons"

"$xenbin/oxenstored" --pid-file /run/xenstored.pid > "$share/daemons/oxenstored.out" 2>&1 || fatal "oxenstored failed to start"
i=0
until xenstore-read /tool >/dev/null 2>&1 || xenstore-ls / >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 100 ] || fatal "xenstored did not answer within 20 s"
    sleep 0.2
done
"$xenbin/xen-init-dom0" > "$share/daemons/xen-init-dom0.out" 2>&1 || fatal "xen-init-dom0 failed: $(tail -n 3 "$share/daemons/xen-init-dom0.out")"
"$xenbin/xenconsoled" --log=guest --log-dir="$share/console" --pid-file=/run/xenconsoled.pid \
    > "$share/daemons/xenconsoled.out" 2>&1 || fatal "xenconsoled failed to start"

echo "ready $(date +%s.%N)" >> "$share/progress.log"
echo "HARNESS-DOM0-READY"
sh "$HARNESS_REPO/tests/xen/dom0/run-scenarios.sh"
echo "halt $(date +%s.%N)" >> "$share/progress.log"
sync
busybox poweroff -f
sleep 3600

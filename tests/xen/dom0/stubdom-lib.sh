# Shell shared by the stub-domain scenarios (pvbuild-stubdom, xl-stubdom, xl-stubdom-diskboot):
# sourced after lib.sh.

# stub_xl_disk_setup DIR IMG: what xl needs to give a stub domain the disk IMG. libxl gives a
# stub domain blkback (phy), never qdisk: blkback is loaded (unloaded again at the end by
# stub_xl_disk_teardown if loaded here), IMG gets a loop device (as an xl user would set up,
# keeping the block script's losetup off libxl's 10 s InitWait limit), and DIR/fast-block is
# written: Xen's /etc/xen/scripts/block overran libxl's 40 s hotplug limit under TCG
# (measured: killed "because of timeout" with two emulations on the machine); for a device
# that is already a block device it only records its numbers, and this script does that and
# no more (an xl user may name any script: the disk's `script=`). Sets stub_loop.
stub_loop=
stub_blkback_loaded=
stub_xl_disk_setup() {
    if [ ! -d /sys/bus/xen-backend/drivers/vbd ]; then
        modprobe xen-blkback || fail "modprobe xen-blkback failed"
        stub_blkback_loaded=1
    fi
    modprobe loop 2> /dev/null
    wait_for 10 test -d /sys/bus/xen-backend/drivers/vbd ||
        fail "xen-blkback loaded but /sys/bus/xen-backend/drivers/vbd is missing"
    stub_loop=$(losetup -f --show "$2") || fail "losetup $2 failed"
    cat > "$1/fast-block" <<'SH'
#!/bin/sh
[ "$1" = add ] || exit 0
dev=$(xenstore-read "$XENBUS_PATH/params") || exit 1
mm=$(stat -L -c '%t:%T' "$dev") || exit 1
xenstore-write "$XENBUS_PATH/physical-device" "$mm" "$XENBUS_PATH/physical-device-path" "$dev" \
    "$XENBUS_PATH/hotplug-status" connected
SH
    chmod 755 "$1/fast-block" || fail "cannot write $1/fast-block"
}
stub_xl_disk_teardown() {
    [ -n "$stub_loop" ] && losetup -d "$stub_loop" 2> /dev/null
    [ -n "$stub_blkback_loaded" ] && modprobe -r xen-blkback 2> /dev/null
    stub_loop=
    stub_blkback_loaded=
}

# xs_stub_normalise GUEST STUB NAME < `xenstore-ls -f -p`: the nodes of the guest domain
# GUEST (named NAME) and its stub STUB, with what differs between two creates of the same
# config replaced: the domids by GUEST and STUB (in paths, in the values of the keys that hold
# a domid, in paths given as values, in permissions), the names by NAME and NAME-dm, the
# domains' /vm uuids by GUEST-UUID and STUB-UUID (any other uuid by UUID), event channels,
# ring references, grant references, pids, times, pty numbers and loop numbers by N (the
# guest's domid in its dm-argv, in the tap names there and in the stub's save/resume file
# names by GUEST). Only the nodes whose path names either domain (or its /vm or /libxl
# entry) are kept, sorted.
xs_stub_normalise() {
    awk -v g="$1" -v s="$2" -v name="$3" '
    function dom(x) { return x == g ? "GUEST" : x == s ? "STUB" : x }
    # A path: the segment after domain, libxl, device-model, and the second after backend.
    function npath(p,   n, a, i, out) {
        n = split(p, a, "/")
        for (i = 2; i <= n; i++) {
            if (a[i-1] == "domain" || a[i-1] == "libxl" || a[i-1] == "device-model" ||
                (i > 2 && a[i-2] == "backend"))
                a[i] = dom(a[i])
        }
        out = ""
        for (i = 2; i <= n; i++) out = out "/" a[i]
        return out
    }
    function nuuid(x) {
        if (gvm != "") gsub(gvm, "GUEST-UUID", x)
        if (svm != "") gsub(svm, "STUB-UUID", x)
        gsub(uuid, "UUID", x)
        return x
    }
    function nperm(p,   n, a, i, out) {
        n = split(p, a, ",")
        out = ""
        for (i = 1; i <= n; i++) out = out (i > 1 ? "," : "") substr(a[i], 1, 1) dom(substr(a[i], 2))
        return out
    }
    BEGIN {
        h = "[0-9a-f]"; h4 = h h h h
        uuid = h4 h4 "-" h4 "-" h4 "-" h4 "-" h4 h4 h4
    }
    { line[NR] = $0 }
    $0 ~ ("^/local/domain/" g "/vm = ") { gvm = $0; sub(/^[^"]*"\/vm\//, "", gvm); sub(/".*/, "", gvm) }
    $0 ~ ("^/local/domain/" s "/vm = ") { svm = $0; sub(/^[^"]*"\/vm\//, "", svm); sub(/".*/, "", svm) }
    END {
        for (r = 1; r <= NR; r++) {
            l = line[r]
            perm = ""
            if (match(l, /" +\([nrwb][0-9]+(,[nrwb][0-9]+)*\)$/)) {
                perm = substr(l, RSTART + 1, RLENGTH - 1)
                l = substr(l, 1, RSTART)
                sub(/^ +\(/, "", perm); sub(/\)$/, "", perm)
                perm = nperm(perm)
            }
            i = index(l, " = ")
            if (i == 0) continue
            path = npath(nuuid(substr(l, 1, i - 1)))
            if (path !~ /(GUEST|STUB)/) continue
            v = substr(l, i + 3); sub(/^"/, "", v); sub(/"$/, "", v)
            key = path; sub(/.*\//, "", key)
            if (key ~ /^(target|device-model-domid|frontend-id|backend-id|domid|stubdom-id)$/)
                v = dom(v)
            else if (v != "" && (key ~ /^(ring-ref|port|event-channel|pid|start_time|tty|limit)$/ ||
                                 key ~ /-(ref|pid)$/ || key ~ /^ring-ref[0-9]+$/))
                v = "N"
            else if (path ~ /\/dm-argv\/[0-9]+$/ && v == g)
                v = "GUEST"
            if (v ~ ("qemu-(save|resume)\\." g "$")) sub(/[0-9]+$/, "GUEST", v)
            if (path ~ /\/dm-argv\/[0-9]+$/) gsub("ifname=vif" g "\\.", "ifname=vifGUEST.", v)
            if (v ~ /^\/local\/domain\//) v = npath(v)
            v = nuuid(v)
            gsub(/\/dev\/loop[0-9]+/, "/dev/loopN", v)
            if (key == "physical-device" && v ~ /^7:/) v = "7:N"
            gsub(name "-dm", "NAME-dm", v); gsub(name, "NAME", v)
            gsub(name "-dm", "NAME-dm", path); gsub(name, "NAME", path)
            print path " = \"" v "\"" (perm == "" ? "" : "  (" perm ")")
        }
    }' | LC_ALL=C sort
}

# stub_images DIR: the stub's kernel and ramdisk in DIR: copied from the share where run.sh
# built them on the host, or built here by stubdom/build.sh when that failed.
stub_images() {
    if [ -s "$HARNESS_SHARE/stubdom/stubdom-linux-initrd" ] && [ -s "$HARNESS_SHARE/stubdom/stubdom-linux-kernel" ]; then
        mkdir -p "$1" && cp "$HARNESS_SHARE/stubdom/stubdom-linux-kernel" "$HARNESS_SHARE/stubdom/stubdom-linux-initrd" "$1/" ||
            fail "cannot copy the stub's images from $HARNESS_SHARE/stubdom"
        note "the stub's images were built on the host (run.sh)"
    else
        PVBUILD_STUBDOM_GZIP=1 sh "$HARNESS_REPO/stubdom/build.sh" "$1" > "$HARNESS_OUT/stubdom-build.log" 2>&1 ||
            fail "stubdom/build.sh failed: $(tail -n 2 "$HARNESS_OUT/stubdom-build.log" | paste -sd ' ')"
    fi
}

# no_qemu: no QEMU serves a domain. no_proxy: no QMP proxy runs. stub_leftovers WHAT TAG:
# nothing a stub guest had is left (domains, QEMUs, proxies, vifs, and xenstore against
# $HARNESS_OUT/xenstore.before: xs_unchanged), else a failure naming WHAT.
no_qemu() { ! pgrep -f 'qemu-system-i386 -xen-domid' > /dev/null; }
no_proxy() { ! pgrep -f 'vchan-socket-proxy' > /dev/null; }
stub_leftovers() {
    wait_for 60 only_dom0 || fail "$1 leaks a domain: $(xl list 2>&1 | awk 'NR > 2 { print $1 "(" $5 ")" }' | paste -sd ' ')"
    wait_for 30 no_qemu || fail "$1 leaks a QEMU: $(pgrep -af 'qemu-system-i386 -xen-domid' | cut -c1-120)"
    wait_for 30 no_proxy || fail "$1 leaks a QMP proxy: $(pgrep -af 'vchan-socket-proxy' | cut -c1-120)"
    _l=$(vif_links | head -n 3 | paste -sd ' ')
    [ -z "$_l" ] || fail "$1 leaks a network interface: $_l"
    xs_unchanged "$1" "$2"
}

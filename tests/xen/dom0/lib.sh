# Helpers for scenario scripts (sourced; POSIX sh, runs in dom0).
#
# The scenario contract (see tests/xen/README.md):
#   - a scenario is tests/xen/scenarios/NAME.sh, run by run-scenarios.sh with
#     `sh`, in its own result directory $HARNESS_OUT, under a timeout;
#   - it prints result lines on stdout, everything else is kept as its log:
#       PASS                  the verdict, when every check held (exit 0)
#       FAIL: <reason>        the verdict otherwise (exit non-zero)
#       METRIC <key> <value>  a measured figure (seconds unless the key says)
#       EVIDENCE <file>       a file whose last lines the host prints under the
#                             verdict (a guest console log, a tool's output)
#       NOTE <text>           anything worth a line in the host's report
#   - no verdict line, a non-zero exit or the timeout all count as FAIL.
# Environment: HARNESS_REPO, HARNESS_SHARE, HARNESS_OUT, HARNESS_XENBIN,
# HARNESS_PVBUILD, HARNESS_GUEST_KERNEL, HARNESS_GUEST_KVER,
# HARNESS_GUEST_RAMDISK, HARNESS_GUEST_CMDLINE, HARNESS_GUEST_MEMORY,
# HARNESS_PV_TEST_KERNEL (empty when not built).

# Hotplug scripts (vif-bridge) under TCG on a host whose cores are also busy can take
# longer than libxl's 40 s; pvbuild's limit is raised for the harness (docs/network.md).
PVBUILD_HOTPLUG_TIMEOUT=${PVBUILD_HOTPLUG_TIMEOUT:-120}
export PVBUILD_HOTPLUG_TIMEOUT

pass() { echo "PASS"; exit 0; }
fail() { echo "FAIL: $*"; exit 1; }
metric() { echo "METRIC $1 $2"; }
evidence() { echo "EVIDENCE $1"; }
note() { echo "NOTE $*"; }

# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }
# elapsed START [END]: END-START in seconds, two decimals.
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }

# The console log xenconsoled (--log=guest) writes for domain NAME.
console_log() { echo "$HARNESS_SHARE/console/guest-$1.log"; }

# The line the harness's guest ramdisk prints when it ran under KERNEL_RELEASE
# with the command line CMDLINE.
expected_marker() { echo "PVBUILD-GUEST-OK $1 $2"; }

# wait_for SECONDS CMD...: run CMD every 0.2 s until it succeeds; 1 when it
# still fails after SECONDS*5 tries (at least SECONDS; the scenario's own
# timeout bounds the whole). Few processes per try: under TCG a fork is dear.
wait_for() {
    _tries=$(($1 * 5))
    shift
    while ! "$@"; do
        [ "$_tries" -gt 0 ] || return 1
        _tries=$((_tries - 1))
        sleep 0.2
    done
}

# proc_alive PID: the process runs (a zombie, dead but not yet reaped by dom0's init, does not:
# `kill -0` would count it).
proc_alive() {
    _st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ -n "$_st" ] && [ "$_st" != Z ] && [ "$_st" != X ]
}

has_marker() { grep -q "PVBUILD-GUEST-OK" "$(console_log "$1")" 2>/dev/null; }
# console_text NAME: the guest's console log without carriage returns.
console_text() { tr -d '\r' < "$(console_log "$1")" 2>/dev/null; }
# triple_faults [DOMID...]: "; Xen: ..." with the last two "Triple fault" lines of Xen's log
# (of those domains, when given) and the guest RIP Xen printed after each, or nothing. A PVH
# guest under QEMU's TCG has been seen to triple-fault in Linux's PIT calibration loop
# (docs/next-round.md); a failure names it.
triple_faults() {
    _re='Triple fault'
    [ $# -gt 0 ] && _re="d($(echo "$@" | tr ' ' '|'))v[0-9]+ Triple fault"
    xl dmesg 2>/dev/null | tr -d '\r' | grep -E -A 6 "$_re" | grep -E "$_re|RIP:" |
        tail -n 4 | paste -sd ' ' | sed 's/^./; Xen: &/'
}
# bm_soundness: whether a built-memory scenario checks its normalisation itself (a second
# xl build of the same config, which must come out identical): with HARNESS_XL_SIDE=1
# (opt-in; xl's side only). An unsound normalisation shows in CI as a difference from pvbuild's build, never as
# a false pass: it can only leave differences in, and the soundness run then tells which.
bm_soundness() {
    [ "${HARNESS_XL_SIDE:-0}" = 1 ] && return 0
    note "the soundness build (xl twice) not run: opt-in, HARNESS_XL_SIDE=1"
    return 1
}

# console_has NAME PATTERN: whether the guest's console shows PATTERN.
console_has() { console_text "$1" | grep -q "$2"; }

# disk_hotplug_guest NAME TARGET TOKEN LOG: puts TOKEN's data line at the start of TARGET (an
# image or a block device) and clears the guest's line at byte 4096, then starts a guest
# NAME without disks (`pvbuild.diskhotplug`, with its monitor) and waits until it waits for
# xvdb.
disk_hotplug_guest() {
    printf 'PVBUILD-DISK-DATA %s\n' "$3" | dd of="$2" bs=512 count=1 conv=notrunc,sync,fsync 2>/dev/null
    dd if=/dev/zero of="$2" bs=512 seek=8 count=1 conv=notrunc,fsync 2>/dev/null
    "$HARNESS_PVBUILD" create --name "$1" --kernel "$HARNESS_GUEST_KERNEL" --ramdisk "$HARNESS_GUEST_RAMDISK" \
        --memory "$HARNESS_GUEST_MEMORY" --cmdline "$HARNESS_GUEST_CMDLINE pvbuild.diskhotplug" > "$4" 2>&1 ||
        fail "create $1 exited $?: $(grep -m 1 '^error' "$4")"
    evidence "$4"
    evidence "$(console_log "$1")"
    wait_for 240 console_has "$1" PVBUILD-DISK-WAITING ||
        fail "$1 never waited for its disk: $(console_text "$1" | tail -n 2 | paste -sd ' ')"
}
# What xenstore lists under /local/domain, space-separated: "0" once every guest is gone.
xs_domains() { xenstore-list /local/domain 2>&1 | paste -sd ' '; }
# Bounded: a dom0 daemon that crashed must not hang a wait (soak-crashes saw it).
domain_gone() { ! timeout 20 xl domid "$1" >/dev/null 2>&1; }
# Xen's state letters from `xl list`: s = shut down (and not yet destroyed).
domain_shut_down() { domain_gone "$1" || xl list "$1" 2>/dev/null | awk 'NR == 2 { exit !($5 ~ /s/) }'; }

# The marker line of domain NAME's console log (empty when none), carriage
# returns stripped (hvc output ends lines with CR LF).
marker_line() { tr -d '\r' 2>/dev/null < "$(console_log "$1")" | grep -m 1 "PVBUILD-GUEST-OK"; }

# check_marker_and_poweroff NAME CMDLINE PID LOG: domain NAME's marker must show
# CMDLINE; it must then shut down, and the `pvbuild create --wait` running as PID
# (output in LOG) must notice within 30 s and report the poweroff.
check_marker_and_poweroff() {
    _want=$(expected_marker "$HARNESS_GUEST_KVER" "$2")
    _got=$(marker_line "$1")
    [ "$_got" = "$_want" ] || fail "marker is '$_got', expected '$_want'"
    wait_for 120 domain_shut_down "$1" || fail "domain $1 did not shut down within 120 s of its marker"
    _pid=$3
    _create_done() { ! kill -0 "$_pid" 2>/dev/null; }
    wait_for 30 _create_done || fail "pvbuild create still running 30 s after the guest shut down"
    wait "$_pid" 2>/dev/null
    grep -qiE 'shut ?down.*poweroff' "$4" || fail "pvbuild did not report the shutdown reason (poweroff): $(tail -n 2 "$4" | tr -d '\r' | paste -sd ' ')"
}

# pv_cfg NAME CMDLINE [LINE...]: an xl config for pvbuild: the harness's kernel and ramdisk,
# CMDLINE as `extra`, the harness's memory, each LINE as given, on_poweroff = "destroy".
pv_cfg() {
    _n=$1
    _c=$2
    shift 2
    printf 'name = "%s"\ntype = "pv"\nkernel = "%s"\nramdisk = "%s"\nextra = "%s"\nmemory = %s\n' \
        "$_n" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" "$_c" "$HARNESS_GUEST_MEMORY"
    for _l in "$@"; do printf '%s\n' "$_l"; done
    echo 'on_poweroff = "destroy"'
}

# create_wait_up NAME CFG LOG READY WHAT: starts `pvbuild -v create --wait --timeout 300
# $CREATE_EXTRA CFG`
# in the background (output in LOG, its pid in $pid) and waits up to 240 s until READY NAME
# holds (WHAT names it for the failure) or pvbuild exited; fails if pvbuild exited before the
# guest's marker showed.
create_wait_up() {
    # The nested functions see their own (empty) positional parameters: keep ours.
    _cwu_name=$1
    _cwu_ready=$4
    # shellcheck disable=SC2086
    "$HARNESS_PVBUILD" -v create --wait --timeout 300 ${CREATE_EXTRA:-} "$2" > "$3" 2>&1 &
    pid=$!
    evidence "$3"
    _cwu_done() { ! kill -0 "$pid" 2>/dev/null; }
    _cwu_progress() { _cwu_done || "$_cwu_ready" "$_cwu_name"; }
    wait_for 240 _cwu_progress || fail "neither did pvbuild create return nor $5 within 240 s"
    if _cwu_done && ! has_marker "$1"; then
        wait "$pid"
        fail "pvbuild create exited $? before the guest ran: $(grep -m 1 '^error' "$3" | tr -d '\r')"
    fi
    evidence "$(console_log "$1")"
}

# write_xl_cfg NAME KERNEL RAMDISK: an xl config for the harness's PV guest.
write_xl_cfg() {
    cat <<CFG
name = "$1"
type = "pv"
kernel = "$2"
ramdisk = "$3"
memory = $HARNESS_GUEST_MEMORY
vcpus = 1
extra = "$HARNESS_GUEST_CMDLINE"
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
CFG
}

# xl_boot_debian NAME [XL_FLAGS...]: `xl [FLAGS] create` Debian's kernel with the
# harness ramdisk, then check the guest ran and powered off. Prints METRIC lines
# (xl_create_s: till `xl create` returned; marker_s: till the marker showed in
# the console log; gone_s: till the domain was destroyed) and the verdict.
# Keeps xl's output in $HARNESS_OUT/xl-create.log.
xl_boot_debian() {
    _name=$1
    shift
    _cfg="$HARNESS_OUT/$_name.cfg"
    write_xl_cfg "$_name" "$HARNESS_GUEST_KERNEL" "$HARNESS_GUEST_RAMDISK" > "$_cfg"
    _t0=$(now)
    xl "$@" create "$_cfg" > "$HARNESS_OUT/xl-create.log" 2>&1
    _rc=$?
    _t1=$(now)
    [ $_rc -eq 0 ] || fail "xl $* create exited $_rc: $(tail -n 3 "$HARNESS_OUT/xl-create.log" | tr -d '\r' | paste -sd ' ')"
    metric xl_create_s "$(elapsed "$_t0" "$_t1")"
    evidence "$(console_log "$_name")"
    wait_for 180 has_marker "$_name" || fail "no PVBUILD-GUEST-OK marker in $(console_log "$_name") within 180 s of xl create"
    metric marker_s "$(elapsed "$_t0")"
    wait_for 120 domain_gone "$_name" || fail "domain $_name still exists 120 s after its marker: $(xl list "$_name" 2>&1 | tail -n 1)"
    metric gone_s "$(elapsed "$_t0")"
    _want=$(expected_marker "$HARNESS_GUEST_KVER" "$HARNESS_GUEST_CMDLINE")
    _got=$(marker_line "$_name")
    [ "$_got" = "$_want" ] || fail "marker is '$_got', expected '$_want'"
    # xl's per-domain daemon logs the shutdown reason it saw (0 = poweroff).
    cp "/var/log/xen/xl-$_name.log" "$HARNESS_OUT/" 2>/dev/null
    grep -q "shut down, reason code 0" "$HARNESS_OUT/xl-$_name.log" 2>/dev/null ||
        fail "xl did not see a poweroff: $(tail -n 2 "$HARNESS_OUT/xl-$_name.log" 2>/dev/null | tr -d '\r' | paste -sd ' ')"
}

# setup_bridge: dom0's side of the network scenarios: xen-netback loaded and a bridge
# xenbr0 (libxl's default) at 10.99.0.1/24, where the guest init's `pvbuild.net` check
# pings. Idempotent.
setup_bridge() {
    modprobe xen-netback 2>/dev/null || fail "modprobe xen-netback failed"
    if [ ! -e /sys/class/net/xenbr0 ]; then
        ip link add name xenbr0 type bridge stp_state 0 forward_delay 0 || fail "cannot create xenbr0"
        ip addr add 10.99.0.1/24 dev xenbr0 || fail "cannot address xenbr0"
    fi
    ip link set xenbr0 up || fail "cannot bring xenbr0 up"
}

# vif_links: dom0's backend network interfaces (vif<domid>.<devid> and taps), one a line.
vif_links() { ip -o link show 2> /dev/null | awk -F': ' '$2 ~ /^vif[0-9]/ { print $2 }'; }

# net_line NAME KEY: the guest's PVBUILD-NET-KEY line (without the prefix), if any.
net_line() { tr -d '\r' 2>/dev/null < "$(console_log "$1")" | sed -n "s/^PVBUILD-NET-$2 *//p" | head -n 1; }
has_net_up() { tr -d '\r' 2>/dev/null < "$(console_log "$1")" | grep -q "^PVBUILD-NET-UP"; }

# check_guest_net NAME [IP]: the guest pinged dom0, and dom0 pings it at IP (10.99.0.2 unless
# given: the guest's `pvbuild.ip`) with 3 echo requests, which the guest counts; FAIL
# otherwise.
check_guest_net() {
    wait_for 180 has_net_up "$1" || fail "the guest's network never came up: $(tr -d '\r' < "$(console_log "$1")" | grep -m 2 -E 'PVBUILD-NET|netfront' | paste -sd ' ')"
    busybox ping -c 3 -W 10 "${2:-10.99.0.2}" > "$HARNESS_OUT/ping-$1.txt" 2>&1 || fail "dom0 cannot ping the guest: $(tail -n 2 "$HARNESS_OUT/ping-$1.txt" | paste -sd ' ')"
    [ -n "$(net_line "$1" PING-OK)" ] || fail "the guest cannot ping dom0: $(net_line "$1" PING-FAILED)"
}

# fault_inputs PREFIX: what the failure scenarios (fail-inject, kill-create) build from: sets
# kernel, ramdisk and memory (the PV test kernel with a 4 KiB module, or Debian's kernel and
# ramdisk), sets up the bridge, makes a 4 MiB disk image ($disk) and defines xs_snapshot
# (xenstore's tree without the nodes matching $ignore, sorted).
fault_inputs() {
    if [ -n "$HARNESS_PV_TEST_KERNEL" ]; then
        kernel=$HARNESS_PV_TEST_KERNEL
        ramdisk=$HARNESS_OUT/$1-module.bin
        memory=32
        { printf 'PVTESTMOD\n'; head -c 4086 /dev/urandom; } > "$ramdisk" || fail "cannot write $ramdisk"
    else
        kernel=$HARNESS_GUEST_KERNEL
        ramdisk=$HARNESS_GUEST_RAMDISK
        memory=$HARNESS_GUEST_MEMORY
        note "no PV test kernel: using Debian's kernel, $memory MiB"
    fi
    setup_bridge
    disk=$HARNESS_OUT/$1-disk.img
    truncate -s 4M "$disk" || fail "cannot make $disk"
}
xs_snapshot() { xenstore-ls -f 2>&1 | grep -Ev "$ignore" | LC_ALL=C sort; }
# xs_unchanged WHAT TAG: xenstore now (xs_snapshot, kept as xenstore.after.TAG) equal to
# $HARNESS_OUT/xenstore.before, else a failure naming WHAT and the first nodes that differ
# (the diff kept as xenstore.diff.TAG).
xs_unchanged() {
    xs_snapshot > "$HARNESS_OUT/xenstore.after.$2"
    cmp -s "$HARNESS_OUT/xenstore.before" "$HARNESS_OUT/xenstore.after.$2" && return 0
    diff "$HARNESS_OUT/xenstore.before" "$HARNESS_OUT/xenstore.after.$2" > "$HARNESS_OUT/xenstore.diff.$2"
    evidence "$HARNESS_OUT/xenstore.diff.$2"
    fail "$1 leaks xenstore nodes ($(grep -c '^[<>]' "$HARNESS_OUT/xenstore.diff.$2") lines differ, < before, > after): $(grep -m 3 '^[<>]' "$HARNESS_OUT/xenstore.diff.$2" | paste -sd ' ')"
}
# only_dom0: xl lists Domain-0 alone.
only_dom0() { [ "$(xl list 2>/dev/null | awk 'NR > 1 { n++; name = $1 } END { print n "," name }')" = "1,Domain-0" ]; }

# The serial log of HVM guest NAME, written by QEMU to $HARNESS_OUT/NAME-serial.log (the
# scenario's `serial = "file:..."`): its text without carriage returns, and its last 160
# printable characters on one line (for a failure message).
serial_text() { { tr -d '\r' < "$HARNESS_OUT/$1-serial.log"; } 2>/dev/null; }
serial_tail() { serial_text "$1" | tail -c 160 | tr -cd '[:print:]\n' | paste -sd ' '; }
# wait_serial NAME T0 LIMIT PATTERN [DOMAIN]: polls NAME's serial log every 2 s until PATTERN
# shows (1 after LIMIT seconds; with DOMAIN, 2 once that domain is gone, looked at every 20 s), appending each new line to NAME-serial.stamped with the seconds since
# T0 when it was seen. Few processes a poll: under TCG every fork in dom0 takes time from the
# guest's boot (with Xen's log polled each second beside it, a boot took 453 s, not 271 s,
# though the machine's load differed too).
wait_serial() {
    _tries=$(($3 / 2))
    _first=1
    while :; do
        _m=$({ wc -l < "$HARNESS_OUT/$1-serial.log"; } 2>/dev/null)
        _new=
        if [ "${_m:-0}" -gt "${_seen:-0}" ]; then
            _t=$(elapsed "$2")
            serial_text "$1" | sed -n "$((${_seen:-0} + 1)),${_m}p" | sed "s/^/[+$_t s] /" >> "$HARNESS_OUT/$1-serial.stamped"
            _seen=$_m
            _new=1
        fi
        if [ -n "$_first$_new" ] && grep -a -q "$4" "$HARNESS_OUT/$1-serial.stamped" 2>/dev/null; then
            return 0
        fi
        _first=
        [ "$_tries" -gt 0 ] || return 1
        _tries=$((_tries - 1))
        if [ -n "${5:-}" ] && [ $((_tries % 10)) = 0 ] && ! xl domid "$5" > /dev/null 2>&1; then
            return 2
        fi
        sleep 2
    done
}

# cores_match XL_CORE PVBUILD_CORE OUT REDO: compares two cores of one paused guest with
# core-compare.py (its report in OUT); returns 0 when they are identical byte for byte. When
# they differ only in shared_info's wallclock (dom0 set Xen's clock between the two dumps:
# Linux does every 11 minutes, and Xen writes it into every domain), runs REDO, a command that
# takes the older of the two dumps again, and compares once more, strictly; the note says so.
cores_match() {
    python3 "$HARNESS_REPO/tests/xen/dom0/core-compare.py" "$1" "$2" > "$3" 2>&1
    _rc=$?
    [ "$_rc" = 0 ] && return 0
    [ "$_rc" = 2 ] || return 1
    note "the wallclock moved between the dumps ($(grep -v ' 0 bytes differ' "$3" | paste -sd '|')): taken again with $4"
    $4 || return 1
    python3 "$HARNESS_REPO/tests/xen/dom0/core-compare.py" "$1" "$2" > "$3" 2>&1
}

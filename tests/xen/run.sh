#!/usr/bin/env bash
# tests/xen/run.sh: boot Debian's Xen and a PV dom0 under QEMU (TCG), with this
# machine's whole userland visible in dom0, run the scenario scripts of
# tests/xen/scenarios/ there and report PASS/FAIL per scenario.
#
#   tests/xen/run.sh [--scenario NAME]... [--no-build] [--timeout SECONDS] [--list]
#
# Exit status: 0 when every selected scenario passed, 1 otherwise (a failed
# check, a timeout, a dom0 that did not come up), 2 on bad usage.
# Everything the run made is in tests/xen/work/ (serial.log: Xen + dom0 console;
# share/results/NAME/: each scenario's log, verdict and files; share/console/:
# xenconsoled's guest logs; timings.txt). See tests/xen/README.md.
set -euo pipefail
# The whole script is one brace group, parsed before it runs: editing this file
# during a run cannot change the run.
{

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${HARNESS_WORK:-$here/work}
mkdir -p "$work" && work=$(cd "$work" && pwd)
share=$work/share

usage() {
    sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# opt_in FILE: the scenario has a "# harness-opt-in" header line (it runs only when named).
opt_in() { head -n 5 "$1" | grep -qx '# harness-opt-in'; }

scenarios=()
build=1
scenario_timeout=${HARNESS_SCENARIO_TIMEOUT:-600}
# The emulated CPU (QEMU's -cpu): `max` without XSAVE. With XSAVE, Xen 4.17 switching vcpus
# under QEMU 7.2's TCG corrupts the state of the vcpus it switches: processes in dom0 and in
# guests (xl's and pvbuild's alike) crash or compute wrong results at random whenever two
# vcpus share a cpu (measured by the opt-in scenario soak-crashes; tests/xen/README.md).
# Without XSAVE Xen switches with FXSAVE/FXRSTOR and the soak finds none. HARNESS_QEMU_CPU
# overrides it (HARNESS_QEMU_CPU=max reproduces the crashes). Without RDTSCP too: QEMU's SVM
# lacks next-RIP saving, so Xen cannot emulate a PVH/HVM guest's RDTSCP ("SVM Insn len
# emulation failed") and Debian's kernel as a PVH guest dies at its first one (issue 14);
# PV guests and dom0 do not notice.
qemu_cpu=${HARNESS_QEMU_CPU:-max,xsave=off,rdtscp=off}
# QEMU's -accel: `tcg` by default (multi-threaded: one host thread per vcpu);
# HARNESS_QEMU_ACCEL=tcg,thread=single runs both vcpus on one host thread.
qemu_accel=${HARNESS_QEMU_ACCEL:-tcg}
# More options for Xen's command line (HARNESS_XEN_ARGS="dom0_max_vcpus=1 dom0_vcpus_pin").
xen_args=${HARNESS_XEN_ARGS:-}
# The emulated machine's memory in MiB (QEMU's -m): dom0 keeps 1024 of it, the guests share
# the rest. HARNESS_QEMU_MEMORY=7168 leaves room for the opt-in pvbuild-create-rss's 4 GiB guest.
qemu_memory=${HARNESS_QEMU_MEMORY:-3072}
[[ $qemu_memory =~ ^[0-9]+$ ]] && [ "$qemu_memory" -ge 2048 ] ||
    { echo "error: HARNESS_QEMU_MEMORY must be a number of MiB, at least 2048" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --scenario | -s)
        [ $# -ge 2 ] || usage
        scenarios+=("$2")
        shift 2
        ;;
    --no-build) build=0; shift ;;
    --timeout)
        [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || usage
        scenario_timeout=$2
        shift 2
        ;;
    --list)
        for f in "$here"/scenarios/*.sh; do
            if opt_in "$f"; then
                echo "$(basename "$f" .sh) (opt-in: runs only when named)"
            else
                basename "$f" .sh
            fi
        done
        exit 0
        ;;
    -h | --help) usage ;;
    *) echo "error: unknown argument '$1'" >&2; usage ;;
    esac
done
# Without --scenario: every scenario except the opt-in ones (a "# harness-opt-in" line in
# the header, such as the soak-crashes diagnosis), which run only when named.
if [ ${#scenarios[@]} -eq 0 ]; then
    for f in "$here"/scenarios/*.sh; do
        opt_in "$f" && continue
        scenarios+=("$(basename "$f" .sh)")
    done
fi
for s in "${scenarios[@]}"; do
    [[ $s =~ ^[A-Za-z0-9_.-]+$ ]] && [ -r "$here/scenarios/$s.sh" ] ||
        { echo "error: no scenario '$s' (tests/xen/run.sh --list)" >&2; exit 2; }
done

t_start=$(date +%s.%N)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[%6ss] %s\n' "$(since "$t_start")" "$*"; }

# ---- inputs -----------------------------------------------------------------
# The newest Debian kernel and Xen in /boot unless told otherwise.
newest() { ls -1 "$@" 2>/dev/null | sort -V | tail -n 1; }
dom0_kernel=${HARNESS_DOM0_KERNEL:-$(newest /boot/vmlinuz-*-amd64)}
guest_kernel=${HARNESS_GUEST_KERNEL:-$dom0_kernel}
xen_gz=${HARNESS_XEN:-$(newest /boot/xen-4.*-amd64.gz)}
missing=()
for tool in qemu-system-x86_64 busybox cpio gzip file timeout; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -n "$dom0_kernel" ] && [ -r "$dom0_kernel" ] || missing+=("a /boot/vmlinuz-*-amd64 kernel")
[ -n "$xen_gz" ] && [ -r "$xen_gz" ] || missing+=("/boot/xen-4.*-amd64.gz")
ls -d /usr/lib/xen-4.*/bin/xl >/dev/null 2>&1 || missing+=("xen-utils (xl)")
if [ ${#missing[@]} -gt 0 ]; then
    echo "error: missing ${missing[*]}: run tests/xen/install-deps.sh as root" >&2
    exit 1
fi

# The kernel release from a bzImage's header (setup header field kernel_version
# at 0x20e, an offset from 0x200).
kernel_release() {
    local off
    off=$(od -An -tu2 -j $((0x20e)) -N2 "$1" | tr -d ' ')
    [ -n "$off" ] && [ "$off" -gt 0 ] || return 1
    dd if="$1" bs=1 skip=$((off + 0x200)) count=128 2>/dev/null | tr '\0' '\n' | head -n 1 | cut -d' ' -f1
}
dom0_kver=$(kernel_release "$dom0_kernel") || { echo "error: $dom0_kernel is not a bzImage" >&2; exit 1; }
guest_kver=$(kernel_release "$guest_kernel") || { echo "error: $guest_kernel is not a bzImage" >&2; exit 1; }
[ -d "/lib/modules/$dom0_kver" ] || { echo "error: no /lib/modules/$dom0_kver for dom0's kernel" >&2; exit 1; }
# QEMU's -initrd takes "file args,file args": no commas in these paths.
for p in "$dom0_kernel" "$work"; do
    case $p in *,*) echo "error: '$p' contains a comma, which QEMU's -initrd cannot take" >&2; exit 1 ;; esac
done

# ---- build ------------------------------------------------------------------
rm -rf "$share"
mkdir -p "$share/bin" "$share/results" "$share/console"
t_build=$(now)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
pvbuild_bin=$share/bin/pvbuild
pv_test_kernel=
if [ $build -eq 1 ]; then
    say "building pvbuild (cargo build --release -p pvbuild)"
    if (cd "$repo" && cargo build --release -p pvbuild) > "$work/build-pvbuild.log" 2>&1; then
        cp "$target_dir/release/pvbuild" "$pvbuild_bin"
    else
        say "pvbuild did not build (its scenarios will fail): $(tail -n 3 "$work/build-pvbuild.log" | tr -d '\r' | paste -sd ' ')"
    fi
    if [ -f "$repo/tests/pv-test-kernel/Cargo.toml" ]; then
        say "building the PV test kernel (tests/pv-test-kernel)"
        if (cd "$repo/tests/pv-test-kernel" && env -u CARGO_TARGET_DIR cargo build --release) > "$work/build-pv-test-kernel.log" 2>&1; then
            cp "$repo/tests/pv-test-kernel/target/x86_64-unknown-none/release/pv-test-kernel" "$share/bin/pv-test-kernel"
            pv_test_kernel=$share/bin/pv-test-kernel
        else
            say "the PV test kernel did not build: $(tail -n 3 "$work/build-pv-test-kernel.log" | tr -d '\r' | paste -sd ' ')"
        fi
    fi
else
    [ -x "$target_dir/release/pvbuild" ] && cp "$target_dir/release/pvbuild" "$pvbuild_bin"
    k=$repo/tests/pv-test-kernel/target/x86_64-unknown-none/release/pv-test-kernel
    [ -f "$k" ] && cp "$k" "$share/bin/pv-test-kernel" && pv_test_kernel=$share/bin/pv-test-kernel
fi
# The built-memory scenario's oracle (C against libxen-dev's libraries): built here, as gcc
# under TCG in dom0 takes over a minute. Always rebuilt (a second), with or without --no-build.
if ! gcc -O2 -Wall -o "$share/bin/memdump" "$here/memdump/memdump.c" -lxenctrl -lxenforeignmemory -lxenguest \
    > "$work/build-memdump.log" 2>&1; then
    say "memdump did not build (built-memory will compile it in dom0): $(head -n 3 "$work/build-memdump.log" | paste -sd ' ')"
fi
# The stub domain's images (stubdom/build.sh) for pvbuild-stubdom and xl-stubdom-diskboot
# (which sources it): built here when one of them runs (3 s on the host, 35-190 s in dom0, which builds
# them itself when this failed).
for s in "${scenarios[@]}"; do
    case $s in
    pvbuild-stubdom | xl-stubdom-diskboot)
        if ! PVBUILD_STUBDOM_GZIP=1 sh "$repo/stubdom/build.sh" "$share/stubdom" > "$work/build-stubdom.log" 2>&1; then
            rm -rf "$share/stubdom"
            say "the stub domain's images did not build (the scenario builds them in dom0): $(tail -n 2 "$work/build-stubdom.log" | paste -sd ' ')"
        fi
        break
        ;;
    esac
done
t_build_end=$(now)

t_images=$(now)
if [ ! -s "$work/xen" ] || [ "$xen_gz" -nt "$work/xen" ]; then
    zcat "$xen_gz" > "$work/xen.tmp" && mv "$work/xen.tmp" "$work/xen"
fi
"$here/build-dom0-initrd.sh" "$work/dom0-initrd.gz" "$dom0_kver"
# The guest's xen-blkfront comes from the guest kernel's modules, when this machine has them.
blk_kver=
[ -d "/lib/modules/$guest_kver" ] && blk_kver=$guest_kver
"$here/build-guest-ramdisk.sh" "$share/guest-initrd.gz" $blk_kver
t_images_end=$(now)

guest_cmdline="console=hvc0 quiet"
# write_config SCENARIO...: what dom0 reads (stage2.sh, run-scenarios.sh), naming the scenarios
# this boot runs.
write_config() {
{
    printf 'HARNESS_REPO=%q\n' "$repo"
    printf 'HARNESS_SHARE=%q\n' "$share"
    printf 'HARNESS_SCENARIOS=%q\n' "$*"
    printf 'HARNESS_SCENARIO_TIMEOUT=%q\n' "$scenario_timeout"
    printf 'HARNESS_QEMU_CPU=%q\n' "$qemu_cpu"
    printf 'HARNESS_QEMU_ACCEL=%q\n' "$qemu_accel"
    printf 'HARNESS_XEN_ARGS=%q\n' "$xen_args"
    # The soak's knobs (HARNESS_SOAK_SECONDS, HARNESS_SOAK_XL_CPUS) go through as they are.
    for v in ${!HARNESS_SOAK_@}; do printf '%s=%q\nexport %s\n' "$v" "${!v}" "$v"; done
    # HARNESS_XL_SIDE=1: the scenarios that also time xl beside pvbuild do (opt-in).
    printf 'HARNESS_XL_SIDE=%q\nexport HARNESS_XL_SIDE\n' "${HARNESS_XL_SIDE:-0}"
    # HARNESS_CURVE_N: how many guests create-curve makes per tool (opt-in scenario).
    printf 'HARNESS_CURVE_N=%q\nexport HARNESS_CURVE_N\n' "${HARNESS_CURVE_N:-1000}"
    # HARNESS_DUMP_CORE_SETCLOCK=1: pvbuild-dump-core sets dom0's clock between its dumps.
    printf 'HARNESS_DUMP_CORE_SETCLOCK=%q\nexport HARNESS_DUMP_CORE_SETCLOCK\n' "${HARNESS_DUMP_CORE_SETCLOCK:-0}"
    printf 'HARNESS_PVBUILD=%q\n' "$pvbuild_bin"
    printf 'HARNESS_PV_TEST_KERNEL=%q\n' "$pv_test_kernel"
    printf 'HARNESS_GUEST_KERNEL=%q\n' "$guest_kernel"
    printf 'HARNESS_GUEST_KVER=%q\n' "$guest_kver"
    printf 'HARNESS_GUEST_RAMDISK=%q\n' "$share/guest-initrd.gz"
    printf 'HARNESS_GUEST_CMDLINE=%q\n' "$guest_cmdline"
    printf 'HARNESS_GUEST_MEMORY=%q\n' 256
    printf 'export HARNESS_REPO HARNESS_SHARE HARNESS_SCENARIOS HARNESS_SCENARIO_TIMEOUT HARNESS_PVBUILD HARNESS_PV_TEST_KERNEL\n'
    printf 'export HARNESS_GUEST_KERNEL HARNESS_GUEST_KVER HARNESS_GUEST_RAMDISK HARNESS_GUEST_CMDLINE HARNESS_GUEST_MEMORY HARNESS_QEMU_CPU HARNESS_QEMU_ACCEL HARNESS_XEN_ARGS\n'
} > "$share/config.env"
}

# ---- boot -------------------------------------------------------------------
boot_timeout=${HARNESS_BOOT_TIMEOUT:-240}
# Each scenario's limit: its own "# harness-timeout: SECONDS" (never less than the default;
# run-scenarios.sh grants the same), or the whole run would be cut before a long scenario's own
# limit.
declare -A s_limit
total_timeout=$((boot_timeout + 30))
for s in "${scenarios[@]}"; do
    own=$(sed -n 's/^# harness-timeout: \([0-9][0-9]*\)$/\1/p' "$here/scenarios/$s.sh" 2>/dev/null | head -n 1)
    limit=$scenario_timeout
    [ -n "$own" ] && [ "$own" -gt "$limit" ] && limit=$own
    s_limit[$s]=$limit
    total_timeout=$((total_timeout + limit + 15))
done
# A dom0 boot under TCG occasionally stalls (seen: the kernel stopping after "sched_clock:
# Marking stable" with no further output). A boot that stalls or misses its deadline before any
# scenario started is retried, up to HARNESS_BOOT_ATTEMPTS times; each attempt's serial log is
# kept. A dom0 that reports a fatal error of its own is not retried.
boot_attempts=${HARNESS_BOOT_ATTEMPTS:-3}
stall_timeout=${HARNESS_STALL_TIMEOUT:-120}
# After dom0 is up, the host watches each scenario too: dom0's own `timeout` ends a scenario
# at its limit, so a scenario still running HARNESS_HANG_GRACE s after that means the emulated
# machine itself stopped answering (seen once in CI: Xen or dom0 hung in pvbuild-placement,
# and `timeout` never returned). The host then keeps the serial log and what dom0 saw 15 s
# before the limit, stops QEMU, boots a new machine and goes on with the scenarios not yet
# run. The hung scenario runs once more on the new machine (HARNESS_HANG_RETRIES, default 1);
# the report says it hung either way, and a second hang fails it.
hang_grace=${HARNESS_HANG_GRACE:-120}
# And dom0's heartbeat (run-scenarios.sh touches share/heartbeat every 5 s): none for
# HARNESS_HEARTBEAT_TIMEOUT s while a scenario runs is a hang too, found without waiting for
# the scenario's limit. 45 s: the longest silence of every run measured (timings.txt's
# heartbeat_max_silence_s, full CI-style runs and CI's own of 2026-12-07) was 5-6 s, the
# heartbeat's own period; it was 120 s, most of a hang's cost.
heartbeat_timeout=${HARNESS_HEARTBEAT_TIMEOUT:-45}
hang_retries=${HARNESS_HANG_RETRIES:-1}
# HARNESS_BUDGET (seconds, default none): the whole run's limit. When it is spent the machine
# is stopped and every scenario not finished fails as "not run: budget": a readable failure
# instead of CI's own timeout.
budget=${HARNESS_BUDGET:-}
max_machines=${HARNESS_MAX_MACHINES:-4}
t_qemu_first=
declare -A s_start s_secs s_hangs s_hang_note
pending=("${scenarios[@]}")
attempt=1
fatal=
t_ready=
t_first_ready=
machine=0
while [ ${#pending[@]} -gt 0 ]; do
    machine=$((machine + 1))
    write_config "${pending[@]}"
    : > "$share/progress.log"
    rm -f "$share/heartbeat"
    serial=$work/serial.log
    [ -s "$serial" ] && [ "$machine" -gt 1 ] && cp "$serial" "$work/serial-machine$((machine - 1)).log"
    : > "$serial"
    qemu=(qemu-system-x86_64 -machine q35 -accel "$qemu_accel" -cpu "$qemu_cpu" -m "$qemu_memory" -smp 2 -no-reboot
        -display none -monitor none -nic none -serial "file:$serial"
        -kernel "$work/xen"
        -append "console=com1 dom0_mem=1024M loglvl=all guest_loglvl=all smap=false${xen_args:+ $xen_args}"
        -initrd "$dom0_kernel console=hvc0 earlyprintk=xen,$work/dom0-initrd.gz"
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$share,mount_tag=pvbshare,security_model=none,multidevs=remap")
    printf '%q ' timeout -k 10 "$total_timeout" "${qemu[@]}" > "$work/qemu-command.txt"
    echo >> "$work/qemu-command.txt"
    say "booting Xen ($(basename "$xen_gz")) + dom0 ($dom0_kver) under QEMU TCG; scenarios: ${pending[*]}"
    t_qemu=$(now)
    : "${t_qemu_first:=$t_qemu}"
    timeout -k 10 "$total_timeout" "${qemu[@]}" > "$work/qemu.out" 2>&1 &
    qemu_pid=$!
    trap 'kill "$qemu_pid" 2>/dev/null || true' EXIT INT TERM

    seen=0
    last_sz=-1
    last_change=$(date +%s)
    boot_retryable=
    t_ready=
    halted=
    fatal=
    t_halt=
    cur=
    hung=
    budget_out=
    boot_deadline=$(awk -v a="$t_qemu" -v b="$boot_timeout" 'BEGIN { printf "%.0f", a + b }')
    # dom0's progress lines not yet read: a scenario's start and end, dom0's state.
    read_progress() {
        mapfile -t lines < "$share/progress.log"
        while [ "$seen" -lt "${#lines[@]}" ]; do
            read -r ev arg _ <<< "${lines[$seen]}"
            seen=$((seen + 1))
            case $ev in
            stage2) say "dom0 switched into the host's root" ;;
            ready)
                t_ready=$(now)
                : "${t_first_ready:=$t_ready}"
                say "dom0 ready (xenstored, xen-init-dom0, xenconsoled) after $(since "$t_qemu" "$t_ready") s"
                ;;
            start)
                s_start[$arg]=$(now)
                cur=$arg
                ;;
            end)
                s_secs[$arg]=$(since "${s_start[$arg]:-$t_qemu}")
                cur=
                v=$(cat "$share/results/$arg/verdict" 2>/dev/null || echo "FAIL: no verdict")
                if [ "$v" = PASS ]; then say "PASS $arg (${s_secs[$arg]} s)"; else say "FAIL $arg: ${v#FAIL: } (${s_secs[$arg]} s)"; fi
                rest=()
                for p in "${pending[@]}"; do [ "$p" = "$arg" ] || rest+=("$p"); done
                pending=("${rest[@]}")
                ;;
            halt) halted=1; t_halt=$(now) ;;
            fatal) fatal=${lines[$((seen - 1))]#fatal }; say "dom0 failed: $fatal" ;;
            esac
        done
    }
    while kill -0 "$qemu_pid" 2>/dev/null; do
        read_progress
        sz=$(stat -c %s "$serial" 2>/dev/null || echo 0)
        if [ "$sz" != "$last_sz" ]; then
            last_sz=$sz
            last_change=$(date +%s)
        fi
        if [ -z "$t_ready" ] && [ -z "$fatal" ] && [ $(($(date +%s) - last_change)) -gt "$stall_timeout" ]; then
            fatal="dom0 boot stalled: no console output for $stall_timeout s"
            boot_retryable=1
            say "$fatal: stopping QEMU"
            kill "$qemu_pid" 2>/dev/null || true
        fi
        if [ -z "$t_ready" ] && [ -z "$fatal" ] && [ "$(date +%s)" -gt "$boot_deadline" ]; then
            fatal="dom0 not ready within $boot_timeout s"
            boot_retryable=1
            say "$fatal: stopping QEMU"
            kill "$qemu_pid" 2>/dev/null || true
        fi
        if [ -n "$cur" ] && [ -z "$hung" ] &&
            awk -v a="${s_start[$cur]}" -v n="$(now)" -v l="$((s_limit[$cur] + hang_grace))" 'BEGIN { exit !(n - a > l) }'; then
            hung=$cur
            say "$cur still running $hang_grace s after its limit of ${s_limit[$cur]} s: the emulated machine hung; stopping QEMU"
            kill "$qemu_pid" 2>/dev/null || true
        fi
        # The longest silence of dom0 while a scenario ran (timings.txt), so that the limit
        # can be set from measurement.
        hb_age=
        if [ -n "$cur" ] && [ -e "$share/heartbeat" ]; then
            hb_age=$(($(date +%s) - $(stat -c %Y "$share/heartbeat" 2>/dev/null || date +%s)))
            if [ "$hb_age" -gt "${hb_max:-0}" ]; then hb_max=$hb_age hb_max_in=$cur; fi
        fi
        if [ -n "$cur" ] && [ -z "$hung" ] && [ -n "$hb_age" ] && [ "$hb_age" -gt "$heartbeat_timeout" ]; then
            hung=$cur
            say "$cur: no heartbeat from dom0 for $heartbeat_timeout s: the emulated machine hung; stopping QEMU"
            kill "$qemu_pid" 2>/dev/null || true
        fi
        if [ -n "$budget" ] && [ -z "$budget_out" ] &&
            awk -v a="$t_start" -v n="$(now)" -v b="$budget" 'BEGIN { exit !(n - a > b) }'; then
            budget_out=1
            say "the harness's budget of $budget s (HARNESS_BUDGET) is spent: stopping QEMU"
            kill "$qemu_pid" 2>/dev/null || true
        fi
        if grep -q 'HARNESS-DOM0-FATAL' "$serial" 2>/dev/null && [ -z "$fatal" ]; then
            fatal=$(grep -m 1 -a 'HARNESS-DOM0-FATAL' "$serial" | tr -d '\r')
            say "dom0 failed: $fatal"
        fi
        # dom0 powered off but the machine did not go away: stop it.
        if { [ -n "$halted" ] || [ -n "$fatal" ]; } && [ -n "${t_halt:=$(now)}" ] &&
            awk -v a="$t_halt" -v n="$(now)" 'BEGIN { exit !(n - a > 20) }'; then
            kill "$qemu_pid" 2>/dev/null || true
        fi
        sleep 0.5
    done
    qemu_rc=0
    wait "$qemu_pid" || qemu_rc=$?
    trap - EXIT INT TERM
    # What dom0 wrote in its last half second (a short last scenario's end, then the power-off,
    # can both come between two looks).
    read_progress
    if [ -n "$budget_out" ]; then
        fatal="the harness's budget of $budget s ran out"
        break
    fi
    if [ -n "$boot_retryable" ] && [ -z "$t_ready" ] && [ "$attempt" -lt "$boot_attempts" ]; then
        cp "$serial" "$work/serial-attempt$attempt.log" 2>/dev/null || true
        say "boot attempt $attempt of $boot_attempts failed ($fatal): booting again"
        attempt=$((attempt + 1))
        machine=$((machine - 1))
        continue
    fi
    # The machine stopped while a scenario ran (hung, or QEMU died): keep what it left, and go
    # on with the scenarios not yet run on a new machine.
    if [ -n "$t_ready" ] && [ -z "$fatal" ] && [ -n "$cur" ]; then
        hung=$cur
        n=$((${s_hangs[$hung]:-0} + 1))
        s_hangs[$hung]=$n
        keep=$share/results/$hung.machine-stopped-$n
        rm -rf "$keep"
        mv "$share/results/$hung" "$keep" 2>/dev/null || mkdir -p "$keep"
        cp "$serial" "$keep/serial.log" 2>/dev/null || true
        why="the emulated machine stopped answering $(since "${s_start[$hung]}") s into it (QEMU exit $qemu_rc)"
        say "$hung: $why; its log, dom0's processes before the limit and the serial log: ${keep#"$repo"/}/"
        [ -r "$keep/ps-before-timeout.txt" ] && { grep -v ' [SI] ' "$keep/ps-before-timeout.txt" | head -n 20 | sed 's/^/    | /' || true; }
        tail -n 15 "$serial" | tr -d '\r' | sed 's/^/    | serial: /' || true
        s_hang_note[$hung]="${s_hang_note[$hung]:+${s_hang_note[$hung]}; }machine stopped: $why (${keep#"$repo"/}/)"
        if [ "$n" -gt "$hang_retries" ]; then
            mkdir -p "$share/results/$hung"
            echo "FAIL: $why, on each of its $n attempts" > "$share/results/$hung/verdict"
            s_secs[$hung]=$(since "${s_start[$hung]}")
            rest=()
            for p in "${pending[@]}"; do [ "$p" = "$hung" ] || rest+=("$p"); done
            pending=("${rest[@]}")
        fi
        [ ${#pending[@]} -gt 0 ] && say "a new machine for the ${#pending[@]} scenarios left"
        attempt=1
        continue
    fi
    # The machine stopped between two scenarios with some left (QEMU died, or dom0 powered off
    # early): a new machine for the rest, at most HARNESS_MAX_MACHINES machines in all.
    if [ -n "$t_ready" ] && [ -z "$fatal" ] && [ ${#pending[@]} -gt 0 ] && [ "$machine" -lt "$max_machines" ]; then
        say "the machine stopped (QEMU exit $qemu_rc) with ${#pending[@]} scenarios left: a new machine for them"
        attempt=1
        continue
    fi
    break
done
t_end=$(now)
t_ready=${t_first_ready:-$t_ready}
t_qemu=$t_qemu_first

# ---- report -----------------------------------------------------------------
echo
passed=0
failed=0
for s in "${scenarios[@]}"; do
    res=$share/results/$s
    if [ -r "$res/verdict" ]; then
        verdict=$(cat "$res/verdict")
    elif [ -n "${s_start[$s]:-}" ]; then
        verdict="FAIL: did not finish (the machine stopped: ${fatal:-QEMU exited $qemu_rc})"
    else
        verdict="FAIL: not run (${fatal:-dom0 did not reach it; QEMU exited $qemu_rc})"
    fi
    metrics=$(grep -a '^METRIC ' "$res/log" 2>/dev/null | awk '{ printf "%s%s=%s", sep, $2, $3; sep = " " }' || true)
    if [ "$verdict" = PASS ]; then
        passed=$((passed + 1))
        echo "PASS $s (${s_secs[$s]:-?} s${metrics:+; $metrics})"
    else
        failed=$((failed + 1))
        echo "FAIL $s: ${verdict#FAIL: } (${s_secs[$s]:-?} s${metrics:+; $metrics})"
    fi
    [ -n "${s_hang_note[$s]:-}" ] && echo "    note: ${s_hang_note[$s]}"
    grep -a '^NOTE ' "$res/log" 2>/dev/null | sed 's/^NOTE /    note: /' || true
    { grep -a '^EVIDENCE ' "$res/log" 2>/dev/null || true; } | cut -d' ' -f2- | awk '!seen[$0]++' | while read -r f; do
        echo "    --- ${f#"$repo"/} (last lines)"
        if [ -s "$f" ]; then
            tail -n 6 "$f" | tr -d '\r' | sed 's/^/    | /'
        else
            echo "    | (missing or empty)"
        fi
    done
done
boot_s=-
[ -n "$t_ready" ] && boot_s=$(since "$t_qemu" "$t_ready")
{
    echo "build_s $(since "$t_build" "$t_build_end")"
    echo "images_s $(since "$t_images" "$t_images_end")"
    echo "boot_to_dom0_ready_s $boot_s"
    for s in "${scenarios[@]}"; do
        echo "scenario_${s}_s ${s_secs[$s]:--}"
        grep -a '^METRIC ' "$share/results/$s/log" 2>/dev/null | awk -v s="$s" '{ print "  " s "." $2, $3 }' || true
    done
    echo "qemu_total_s $(since "$t_qemu" "$t_end")"
    echo "run_total_s $(since "$t_start" "$t_end")"
    echo "heartbeat_max_silence_s ${hb_max:-0} ${hb_max_in:--}"
} > "$work/timings.txt"
echo
echo "timings: build $(since "$t_build" "$t_build_end") s, images $(since "$t_images" "$t_images_end") s," \
    "boot to dom0 ready $boot_s s, QEMU $(since "$t_qemu" "$t_end") s, total $(since "$t_start" "$t_end") s, dom0's longest silence ${hb_max:-0} s${hb_max_in:+ (in $hb_max_in)} (tests/xen/work/timings.txt)"
if [ $failed -gt 0 ] || [ -n "$fatal" ]; then
    echo "--- tail of tests/xen/work/serial.log (Xen + dom0 console)"
    tail -n 25 "$serial" | tr -d '\r' | sed 's/^/    | /'
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ -z "$fatal" ]
exit
}

#!/usr/bin/env bash
# Longer fuzzing runs, one target at a time per invocation: runs each target on its corpus
# and prints one line of figures per target (the numbers docs/fuzzing.md records).
#   FUZZ_SECONDS      wall-clock bound per target (default 240)
#   FUZZ_CPU_SECONDS  CPU bound per target (user + system); when set, the run ends once the
#                     fuzzer has used this much CPU, however long that takes on a shared machine
# Build first: `cargo fuzz build -s none -O`. Arguments: target names (default: all).
# Crashes land in fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-240}
cpu_bound=${FUZZ_CPU_SECONDS:-}
if [ -n "$cpu_bound" ]; then seconds=$((cpu_bound * 4)); fi
bindir=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release
targets=${*:-$(cargo fuzz list)}
tick=$(getconf CLK_TCK)
# CPU seconds used by this shell's reaped children so far (`times` must run in this shell,
# not in a command substitution's subshell).
timesfile=$(mktemp)
trap 'rm -f "$timesfile" "$timesfile".*' EXIT
children_cpu() {
    times >"$timesfile"
    awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$timesfile"
}
for t in $targets; do
    logs=${FUZZ_LOGS:-/tmp/fuzz-logs}
    mkdir -p "corpus/$t" "artifacts/$t" "$logs"
    log=$logs/$t.log
    start=$(date +%s)
    children_cpu >"$timesfile.before"
    "$bindir/$t" "corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1 &
    pid=$!
    if [ -n "$cpu_bound" ]; then
        while kill -0 "$pid" 2>/dev/null; do
            # utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks.
            used=$(awk -v t="$tick" '{ print int(($14 + $15) / t) }' "/proc/$pid/stat" 2>/dev/null || echo 0)
            if [ "${used:-0}" -ge "$cpu_bound" ]; then kill -INT "$pid"; break; fi
            sleep 5
        done
    fi
    wait "$pid"
    rc=$?
    children_cpu >"$timesfile.after"
    cpu=$(cat "$timesfile.before" "$timesfile.after" | awk 'NR == 1 { a = $1 } NR == 2 { printf "%d", $1 - a }')
    # libFuzzer exits 72 when interrupted, which is how the CPU bound ends a run.
    if [ -n "$cpu_bound" ] && [ "$rc" = 72 ]; then rc=0; fi
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%s | %s | %s s | %s s CPU | %s | %s | %s | %s | %s | %s MB | rc %s\n' "$(date -u +%H:%M)" "$t" \
        "$(($(date +%s) - start))" "$cpu" "$(stat number_of_executed_units)" \
        "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "$(stat peak_rss_mb)" "$rc"
done

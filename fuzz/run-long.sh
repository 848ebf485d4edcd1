#!/usr/bin/env bash
# Longer fuzzing runs, one target at a time (the machine's cores are shared): runs each
# target for FUZZ_SECONDS (default 240) on its corpus and prints one line of figures per
# target (the numbers docs/fuzzing.md records). Build first: `cargo fuzz build -s none -O`.
# Arguments: target names (default: all). Crashes land in fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-240}
bindir=${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release
targets=${*:-$(cargo fuzz list)}
for t in $targets; do
    logs=${FUZZ_LOGS:-/tmp/fuzz-logs}
    mkdir -p "corpus/$t" "artifacts/$t" "$logs"
    log=$logs/$t.log
    start=$(date +%s)
    "$bindir/$t" "corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%s | %s | %s s | %s | %s | %s | %s | %s | %s MB | rc %s\n' "$(date -u +%H:%M)" "$t" \
        "$(($(date +%s) - start))" "$(stat number_of_executed_units)" \
        "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "$(stat peak_rss_mb)" "$rc"
done

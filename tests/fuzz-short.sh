#!/usr/bin/env bash
# The CI short run of every fuzz target (issue 4): builds all cargo-fuzz targets, seeds their
# corpora from real inputs (fuzz/seed-corpus.sh), runs each for FUZZ_SECONDS (default 20)
# with a memory and a per-input time limit, and fails if any target crashes, hangs or runs
# out of memory. One line per target, then `N passed, N failed`.
#
# Environment: FUZZ_SECONDS (seconds per target, default 20), FUZZ_JOBS (targets run at once,
# default: the cores), FUZZ_RSS_MB (default 2048),
# FUZZ_TIMEOUT (seconds one input may take, default 10), FUZZ_TARGETS (space-separated
# subset), CARGO_TARGET_DIR (where the targets are built; default fuzz/target).
# Needs cargo-fuzz (installed here if missing) and python3; works on the stable toolchain
# (`-s none`: libFuzzer's coverage, no sanitizer; Rust's own checks catch what ASan would).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-20}
rss=${FUZZ_RSS_MB:-2048}
per_input=${FUZZ_TIMEOUT:-10}
tdir=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$tdir

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-short: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version '^0.13' --locked || exit 1
fi
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
echo "fuzz-short: building $(echo $targets | wc -w) targets" >&2
if ! cargo fuzz build -s none -O >/dev/null 2>build.log; then
    tail -40 build.log >&2
    echo "fuzz-short: build failed"
    echo "0 passed, $(echo $targets | wc -w) failed"
    exit 1
fi
rm -f build.log
./seed-corpus.sh >/dev/null || exit 1

bindir=$tdir/x86_64-unknown-linux-gnu/release
# run_one TARGET OUT: runs one target, writes its line(s) to OUT and its verdict to OUT.rc.
run_one() {
    local t=$1 out=$2 log rc cov corp line what
    mkdir -p "corpus/$t" "artifacts/$t"
    log=$(mktemp)
    "$bindir/$t" "corpus/$t" -max_total_time="$seconds" -rss_limit_mb="$rss" \
        -malloc_limit_mb="$rss" -timeout="$per_input" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    line=$(printf '%-18s runs %-9s exec/s %-7s cov %-6s corpus %-6s rss %sMB' "$t" \
        "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" \
        "${corp:-?}" "$(stat peak_rss_mb)")
    if [[ $rc -eq 0 ]]; then
        echo "ok    $line" >"$out"
        echo 0 >"$out.rc"
    else
        what=$(grep -m1 -oE 'deadly signal|panicked at[^\n]*|timeout after [0-9]+ seconds|out-of-memory \([^)]*\)|malloc\([0-9]+\)' "$log" || echo "exit $rc")
        {
            echo "FAIL  $line: $what"
            grep -m3 -E "^artifact_prefix|Test unit written to|panicked at" "$log" | sed 's/^/      /'
        } >"$out"
        echo 1 >"$out.rc"
    fi
    rm -f "$log"
}
# FUZZ_JOBS targets at a time (default: the machine's cores), each on its own core; the lines
# come out in the targets' order.
jobs=${FUZZ_JOBS:-$(nproc)}
results=$(mktemp -d)
n=0
for t in $targets; do
    while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do wait -n; done
    run_one "$t" "$results/$(printf '%03d' $n)" &
    n=$((n + 1))
done
wait
pass=0
fail=0
for f in "$results"/[0-9][0-9][0-9]; do
    cat "$f"
    if [[ $(cat "$f.rc") -eq 0 ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
rm -rf "$results"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]

#!/bin/sh
# Runs in dom0 (from stage2.sh): each scenario named in $HARNESS_SCENARIOS, one
# after the other, each under `timeout $HARNESS_SCENARIO_TIMEOUT`, with its
# stdout+stderr in $HARNESS_SHARE/results/NAME/log and its verdict line in
# .../verdict. Progress lines go to $HARNESS_SHARE/progress.log, which run.sh
# on the host follows. Domains a scenario leaves behind are destroyed (and
# said so in its log) so the next one starts clean.
share=$HARNESS_SHARE
scen_dir="$HARNESS_REPO/tests/xen/scenarios"
export PATH="$HARNESS_XENBIN:$PATH"

# A heartbeat the host watches (run.sh): while dom0 answers, this file's mtime moves every 5 s.
# A machine whose heartbeat stops while a scenario runs has hung, whatever the scenario's limit.
(
    while :; do
        date +%s > "$share/heartbeat"
        sleep 5
    done
) &
heartbeat=$!

for name in $HARNESS_SCENARIOS; do
    out="$share/results/$name"
    mkdir -p "$out"
    echo "start $name $(date +%s.%N)" >> "$share/progress.log"
    echo "HARNESS-SCENARIO-START $name"
    # A scenario may ask for more time than the default with a line
    # "# harness-timeout: SECONDS" (never less).
    limit=$HARNESS_SCENARIO_TIMEOUT
    own=$(sed -n 's/^# harness-timeout: \([0-9][0-9]*\)$/\1/p' "$scen_dir/$name.sh" 2>/dev/null | head -n 1)
    [ -n "$own" ] && [ "$own" -gt "$limit" ] && limit=$own
    if [ -r "$scen_dir/$name.sh" ]; then
        # A watchdog keeps what dom0 was doing 15 s before the timeout (processes, their
        # state and kernel wait channel), so that a hung scenario says where it hung.
        (
            sleep $((limit > 30 ? limit - 15 : 15))
            # Shell builtins only: if the hang is in reading the root filesystem (9p), an
            # exec'd `ps` would hang too. Each line: wchan, then /proc/PID/stat (pid, comm,
            # state, ppid, ...).
            for p in /proc/[0-9]*; do
                w=
                read -r w < "$p/wchan" 2>/dev/null
                read -r st < "$p/stat" 2>/dev/null || continue
                echo "${w:--} $st"
            done > "$out/ps-before-timeout.txt" 2>&1
            echo "harness: dom0's processes 15 s before the timeout: ps-before-timeout.txt" >> "$out/log"
        ) &
        watchdog=$!
        (cd "$out" && HARNESS_OUT="$out" timeout -k 5 "$limit" sh "$scen_dir/$name.sh") > "$out/log" 2>&1
        rc=$?
        kill "$watchdog" 2>/dev/null
        wait "$watchdog" 2>/dev/null
    else
        echo "FAIL: no scenario script $scen_dir/$name.sh" > "$out/log"
        rc=1
    fi
    verdict=$(grep -E '^(PASS$|FAIL: )' "$out/log" | tail -n 1)
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        verdict="FAIL: timed out after $limit s${verdict:+ (last verdict line: $verdict)}"
    elif [ -z "$verdict" ]; then
        verdict="FAIL: exited $rc without a verdict line: $(tail -n 1 "$out/log")"
    elif [ "$verdict" = PASS ] && [ $rc -ne 0 ]; then
        verdict="FAIL: printed PASS but exited $rc"
    fi
    # Leftovers: every domain but dom0.
    left=$(xl list 2>/dev/null | awk 'NR > 2 { print $2 }')
    for d in $left; do
        echo "harness: destroying leftover domain $d" >> "$out/log"
        xl destroy "$d" >> "$out/log" 2>&1
    done
    echo "$verdict" > "$out/verdict"
    echo "HARNESS-SCENARIO-END $name $verdict"
    echo "end $name $(date +%s.%N)" >> "$share/progress.log"
done
kill "$heartbeat" 2>/dev/null

# pvbuild-testkernel (issue 3, scenario 2): pvbuild boots the project's own PV test kernel
# (tests/pv-test-kernel), which checks what the builder promised (start_info, the p2m list,
# its page tables and their read-only frames, the command line, the module's bytes) and
# reports each check and a verdict on its console, then shuts down: poweroff on pass, crash
# on fail. pvbuild (`create --wait`) must report that reason.
# A negative run follows: a wrong expected module checksum must fail exactly module.sum and
# end in a crash, which pvbuild must report too; so a kernel or builder that always passed
# would fail this scenario.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
[ -n "$HARNESS_PV_TEST_KERNEL" ] && [ -r "$HARNESS_PV_TEST_KERNEL" ] || fail "the PV test kernel was not built"
run=$HARNESS_REPO/tests/pv-test-kernel/run-under-xl.sh
builder="$HARNESS_PVBUILD create --wait --timeout 120"

out=$HARNESS_OUT/pass
mkdir -p "$out"
sh "$run" -k "$HARNESS_PV_TEST_KERNEL" -n pvtk -o "$out" -c "$builder" > "$out/result.txt" 2>&1
cat "$out/result.txt" | grep -E '^(METRIC|NOTE)'
evidence "$out/pvtk-checks.txt"
grep -q '^PASS' "$out/result.txt" || fail "test kernel under pvbuild: $(grep '^FAIL' "$out/result.txt")"
grep -qE 'shut down: poweroff' "$out/create.log" ||
    fail "pvbuild did not report poweroff: $(tail -n 2 "$out/create.log" | paste -sd ' ')"
metric checks_passed "$(grep -c '^CHECK .* PASS' "$out/pvtk-checks.txt")"

out=$HARNESS_OUT/wrong-sum
mkdir -p "$out"
sh "$run" -k "$HARNESS_PV_TEST_KERNEL" -n pvtkneg -o "$out" -c "$builder" -f wrong-sum > "$out/result.txt" 2>&1
grep -q '^PASS' "$out/result.txt" || fail "negative run: $(grep '^FAIL' "$out/result.txt")"
grep -qE 'shut down: crash' "$out/create.log" ||
    fail "pvbuild did not report the crash of the failing kernel: $(tail -n 2 "$out/create.log" | paste -sd ' ')"
note "negative run: $(grep '^VERDICT' "$out/pvtkneg-checks.txt")"
pass

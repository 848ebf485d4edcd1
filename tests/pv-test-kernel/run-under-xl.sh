#!/bin/sh
# run-under-xl.sh: boot the PV test kernel in dom0 with a generated module and a
# command line carrying the values the kernel must find, wait for its verdict on
# the console and check the shutdown reason. POSIX sh; runs in dom0.
#
#   run-under-xl.sh [-k KERNEL] [-n NAME] [-m MEMORY_MIB] [-s MODULE_BYTES]
#                   [-o OUTDIR] [-c "BUILDER CMD"] [-f wrong-sum|fault]
#
# -c is the command that creates the domain from the xl config (its path is
#    appended): default "xl create"; e.g. -c "$HARNESS_PVBUILD create".
# -f checks that the kernel can fail: wrong-sum passes a wrong expect_mod_sum
#    (the kernel must report exactly module.sum FAIL and crash), fault adds
#    selftest=fault (it must report a TRAP and crash). PASS then means "failed
#    as it should".
# Prints lines in the harness's scenario contract (tests/xen/dom0/lib.sh):
# METRIC, EVIDENCE, NOTE, and last "PASS" or "FAIL: reason"; exit 0 on PASS.
# The console log is read from $CONSOLE_LOG_DIR (default: $HARNESS_SHARE/console
# when set, else /var/log/xen/console), where `xenconsoled --log=guest` writes.
set -u
here=$(cd "$(dirname "$0")" && pwd)

kernel=${HARNESS_PV_TEST_KERNEL:-$here/target/x86_64-unknown-none/release/pv-test-kernel}
name=pvtk
memory=32
mod_size=300001
out=${HARNESS_OUT:-$(mktemp -d /tmp/pvtk.XXXXXX)}
builder="xl create"
negative=
while getopts k:n:m:s:o:c:f: opt; do
    case $opt in
    k) kernel=$OPTARG ;;
    n) name=$OPTARG ;;
    m) memory=$OPTARG ;;
    s) mod_size=$OPTARG ;;
    o) out=$OPTARG ;;
    c) builder=$OPTARG ;;
    f) negative=$OPTARG ;;
    *) sed -n '6,7p' "$0" >&2; exit 2 ;;
    esac
done
if [ -n "${CONSOLE_LOG_DIR:-}" ]; then
    logdir=$CONSOLE_LOG_DIR
elif [ -n "${HARNESS_SHARE:-}" ]; then
    logdir=$HARNESS_SHARE/console
else
    logdir=/var/log/xen/console
fi
conslog=$logdir/guest-$name.log

pass() { echo "PASS"; exit 0; }
fail() { echo "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }

[ -r "$kernel" ] || fail "no test kernel at $kernel (cd tests/pv-test-kernel && cargo build --release)"
mkdir -p "$out" || fail "cannot create $out"

# The module: a recognisable header and random bytes, an odd length, never gzip
# (the builder would unpack a gzip module and the guest would see other bytes).
module=$out/$name-module.bin
{ printf 'PVTESTMOD\n'; head -c "$mod_size" /dev/urandom; } > "$module" || fail "cannot write $module"
mod_len=$(wc -c < "$module" | tr -d ' ')
# CRC-32 as gzip stores it: the first 4 bytes of the 8-byte trailer, little endian.
mod_sum=$(gzip -c "$module" | tail -c 8 | od -An -tx4 -N4 | tr -d ' ')
[ -n "$mod_sum" ] || fail "cannot compute the module's CRC-32"
token=pvtk-token-$$
extra=
case $negative in
"") ;;
wrong-sum) mod_sum=$(printf '%08x' $(((0x$mod_sum + 1) & 0xffffffff))) ;;
fault) extra=" selftest=fault" ;;
*) fail "unknown -f mode '$negative' (wrong-sum, fault)" ;;
esac
cmdline="expect_nr_pages=$((memory * 256)) expect_mod_len=$mod_len expect_mod_sum=$mod_sum expect_cmdline_token=$token $token$extra"

cfg=$out/$name.cfg
sed -e "s|@NAME@|$name|" -e "s|@KERNEL@|$kernel|" -e "s|@RAMDISK@|$module|" \
    -e "s|@MEMORY@|$memory|" -e "s|@CMDLINE@|$cmdline|" "$here/xl-test.cfg.in" > "$cfg"
echo "NOTE command line: $cmdline"

rm -f "$conslog" "/var/log/xen/xl-$name.log"
t0=$(now)
$builder "$cfg" > "$out/create.log" 2>&1
rc=$?
echo "METRIC create_s $(elapsed "$t0")"
[ $rc -eq 0 ] || fail "$builder exited $rc: $(tail -n 3 "$out/create.log" | tr '\n' ' ')"
echo "EVIDENCE $conslog"

# Wait for the verdict line (the kernel prints it last, then shuts down).
verdict=
i=0
while [ $i -lt 900 ]; do
    verdict=$(tr -d '\r' < "$conslog" 2>/dev/null | grep -m 1 '^VERDICT ')
    [ -n "$verdict" ] && break
    sleep 0.1
    i=$((i + 1))
done
echo "METRIC verdict_s $(elapsed "$t0")"
# Domain gone (xl destroys it on poweroff and crash alike with this config).
i=0
while xl domid "$name" > /dev/null 2>&1 && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
tr -d '\r' < "$conslog" 2>/dev/null | grep -E '^(CHECK|TRAP|PANIC|VERDICT)' > "$out/$name-checks.txt"
grep ' FAIL ' "$out/$name-checks.txt" | sed 's/^/NOTE /'
[ -n "$verdict" ] || fail "no VERDICT line in $conslog within 90 s"
checks=$(grep -c '^CHECK .* PASS' "$out/$name-checks.txt")
echo "METRIC checks_passed $checks"
# xl's per-domain daemon logs the reason: 0 poweroff (pass), 3 crash (fail).
want_reason=0
[ -z "$negative" ] || want_reason=3
xllog=/var/log/xen/xl-$name.log
if [ -r "$xllog" ]; then
    cp "$xllog" "$out/" 2>/dev/null
    grep -q "shut down, reason code $want_reason" "$xllog" ||
        fail "$verdict but xl did not see shutdown reason $want_reason: $(grep 'reason code' "$xllog" | tail -n 1)"
else
    echo "NOTE no $xllog: shutdown reason not checked"
fi
case $negative in
"") [ "$verdict" = "VERDICT PASS" ] || fail "test kernel says $verdict" ;;
wrong-sum)
    fails=$(grep -c '^CHECK [^ ]* FAIL ' "$out/$name-checks.txt")
    [ "$fails" -eq 1 ] && grep -q '^CHECK module.sum FAIL' "$out/$name-checks.txt" ||
        fail "a wrong expect_mod_sum should fail module.sum alone; got: $(grep '^CHECK [^ ]* FAIL ' "$out/$name-checks.txt" | tr '\n' ' ')"
    case $verdict in "VERDICT FAIL 1/"*) ;; *) fail "expected VERDICT FAIL 1/N, got $verdict" ;; esac ;;
fault)
    grep -q '^TRAP vector=14 ' "$out/$name-checks.txt" || fail "selftest=fault: no page-fault TRAP line"
    [ "$verdict" = "VERDICT FAIL 1/1" ] || fail "selftest=fault: expected VERDICT FAIL 1/1, got $verdict" ;;
esac
pass

# refuse-32bit (issue 3, scenario 5): this Xen is built without 32-bit PV, so a
# 32-bit PAE kernel must be refused before any domain is created, from the
# hypervisor's own capability list, with a message that says why.
#   1. build tests/xen/guest/pae32.S (as --32, ld -m elf_i386) into $HARNESS_OUT;
#      `pvbuild plan` must read it as guest type xen-3.0-x86_32p, and `xl info`'s
#      xen_caps must not list that type (else the premise does not hold);
#   2. `pvbuild create --kernel pae32 --memory 32 --name p32` must exit non-zero
#      with one "error:" line that names xen-3.0-x86_32p, says it is not
#      supported by this Xen and carries xen_caps verbatim;
#   3. before any domain was created: `xl list` is unchanged, xenstore has no
#      new /local/domain/N, and no domain id was consumed: a paused probe domain
#      (`xl create -p`, then destroyed) made just before and just after gets
#      consecutive ids (Xen hands them out increasing, from a rover);
#   4. xl for comparison: `xl create -p` of the same kernel must fail too; its
#      message is a NOTE, and so is how many domain ids it consumed.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
want_type=xen-3.0-x86_32p

# 1. the kernel, and the premise.
k=$HARNESS_OUT/pae32
sh "$HARNESS_REPO/tests/xen/guest/build-pae32.sh" "$k" > "$HARNESS_OUT/build-pae32.log" 2>&1 ||
    fail "build-pae32.sh exited $?: $(tail -n 2 "$HARNESS_OUT/build-pae32.log" | paste -sd ' ')"
"$pvb" plan --memory 32 "$k" > "$HARNESS_OUT/plan.txt" 2>&1 ||
    fail "pvbuild plan of pae32 exited $?: $(head -n 2 "$HARNESS_OUT/plan.txt" | paste -sd ' ')"
got_type=$(awk -F': ' '/^guest type/ { print $2 }' "$HARNESS_OUT/plan.txt" | tr -d ' ')
[ "$got_type" = "$want_type" ] || fail "pvbuild plan reads pae32 as guest type '$got_type', not $want_type"
caps=$(xl info 2>/dev/null | sed -n 's/^xen_caps *: *//p' | sed 's/ *$//')
[ -n "$caps" ] || fail "no xen_caps in xl info"
note "xen_caps: $caps"
case " $caps " in *" $want_type "*) fail "this Xen lists $want_type in its capabilities ($caps): nothing to refuse" ;; esac

# The probe: a paused domain, destroyed at once; its id in $probe_id.
if [ -n "$HARNESS_PV_TEST_KERNEL" ]; then
    probe_kernel=$HARNESS_PV_TEST_KERNEL probe_mem=32
else
    probe_kernel=$HARNESS_GUEST_KERNEL probe_mem=$HARNESS_GUEST_MEMORY
fi
probe_cfg=$HARNESS_OUT/probe.cfg
printf 'name = "p32-probe"\ntype = "pv"\nkernel = "%s"\nmemory = %s\nvcpus = 1\n' "$probe_kernel" "$probe_mem" > "$probe_cfg"
probe() {
    xl create -p "$probe_cfg" > "$HARNESS_OUT/probe-$1.log" 2>&1 ||
        fail "probe $1: xl create -p exited $?: $(tail -n 2 "$HARNESS_OUT/probe-$1.log" | paste -sd ' ')"
    probe_id=$(xl domid p32-probe 2>/dev/null)
    xl destroy p32-probe >> "$HARNESS_OUT/probe-$1.log" 2>&1 || fail "probe $1: xl destroy p32-probe exited $?"
    wait_for 30 domain_gone p32-probe || fail "probe $1: p32-probe still exists 30 s after xl destroy"
    case $probe_id in '' | *[!0-9]*) fail "probe $1: no domain id for p32-probe: '$probe_id'" ;; esac
}
xl_list() { xl list 2>&1 | awk 'NR > 1 { print $1, $2 }'; }

# 2. and 3. pvbuild.
xl_list > "$HARNESS_OUT/xl-list.before"
probe before
id_before=$probe_id
log=$HARNESS_OUT/pvbuild-create.log
"$pvb" create --kernel "$k" --memory 32 --name p32 > "$log" 2>&1
rc=$?
evidence "$log"
[ $rc -ne 0 ] || fail "pvbuild create of the PAE kernel exited 0: $(head -n 1 "$log")"
nerr=$(grep -c '^error:' "$log")
[ "$nerr" -eq 1 ] || fail "pvbuild create: $nerr lines start with 'error:' (want 1): $(head -n 3 "$log" | paste -sd ' ')"
line=$(grep '^error:' "$log")
case $line in *"$want_type"*) ;; *) fail "the error does not name $want_type: $line" ;; esac
case $line in *"not supported by this Xen"*) ;; *) fail "the error does not say $want_type is not supported by this Xen: $line" ;; esac
case $line in *"$caps"*) ;; *) fail "the error does not carry Xen's capability list ($caps): $line" ;; esac
xl_list > "$HARNESS_OUT/xl-list.after"
cmp -s "$HARNESS_OUT/xl-list.before" "$HARNESS_OUT/xl-list.after" ||
    fail "xl list changed across the refused create: $(diff "$HARNESS_OUT/xl-list.before" "$HARNESS_OUT/xl-list.after" | grep '^[<>]' | paste -sd ' ')"
doms=$(xs_domains)
[ "$doms" = 0 ] || fail "xenstore /local/domain lists '$doms' after the refused create"
probe after
id_after=$probe_id
consumed=$((id_after - id_before - 1))
metric pvbuild_domids_consumed "$consumed"
[ "$consumed" -eq 0 ] || fail "pvbuild consumed $consumed domain id(s): the probes got ids $id_before and $id_after"
note "pvbuild refused before creating a domain (probe ids $id_before, $id_after): $line"

# 4. xl, for comparison.
printf 'name = "p32-xl"\ntype = "pv"\nkernel = "%s"\nmemory = 32\nvcpus = 1\n' "$k" > "$HARNESS_OUT/p32-xl.cfg"
xl create -p "$HARNESS_OUT/p32-xl.cfg" > "$HARNESS_OUT/xl-create.log" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
    xl destroy p32-xl > /dev/null 2>&1
    fail "xl create -p of the PAE kernel succeeded on a Xen without $want_type"
fi
evidence "$HARNESS_OUT/xl-create.log"
note "xl create exited $rc: $(grep -iE 'error|not supported' "$HARNESS_OUT/xl-create.log" | head -n 2 | tr -s ' ' | paste -sd ' ')"
wait_for 30 domain_gone p32-xl || fail "xl left domain p32-xl behind"
probe xl
metric xl_domids_consumed "$((probe_id - id_after - 1))"
pass

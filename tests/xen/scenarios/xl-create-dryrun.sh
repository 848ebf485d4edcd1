# harness-timeout: 120
# xl-create-dryrun (issue 15): `pvbuild create -n` prints what `xl create -n` prints, the
# domain configuration in libxl's JSON (libxl_domain_config_to_json of the parsed config),
# for the configs of host/tests/data/xl-dryrun/configs.sh (PV with disks, vifs and on_*
# actions; pygrub; placement keys; PVH). xl needs a running Xen for it (libxl_ctx_alloc
# opens privcmd), hence this scenario; xl's output is kept in the results for the unit
# tests' copy (host/tests/data/xl-dryrun/NAME.json). Compared byte for byte.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
[ -x "$HARNESS_PVBUILD" ] || fail "no pvbuild binary at $HARNESS_PVBUILD"
pvb=$HARNESS_PVBUILD
. "$HARNESS_REPO/host/tests/data/xl-dryrun/configs.sh"
KERNEL=$HARNESS_GUEST_KERNEL
RAMDISK=$HARNESS_GUEST_RAMDISK
IMG=/var/tmp/dry.img
bad=
n=0
for c in $DRY_CONFIGS; do
    "$c" > "$HARNESS_OUT/$c.cfg"
    xl create -n "$HARNESS_OUT/$c.cfg" > "$HARNESS_OUT/$c.xl.json" 2> "$HARNESS_OUT/$c.xl.err" ||
        fail "xl create -n $c exited $?: $(tail -n 1 "$HARNESS_OUT/$c.xl.err")"
    "$pvb" create -n "$HARNESS_OUT/$c.cfg" > "$HARNESS_OUT/$c.pvb.json" 2> "$HARNESS_OUT/$c.pvb.err" ||
        fail "pvbuild create -n $c exited $?: $(head -n 1 "$HARNESS_OUT/$c.pvb.err")"
    evidence "$HARNESS_OUT/$c.pvb.json"
    if cmp -s "$HARNESS_OUT/$c.xl.json" "$HARNESS_OUT/$c.pvb.json"; then
        n=$((n + 1))
    else
        python3 "$HARNESS_REPO/tests/xen/dom0/json-compare.py" "$HARNESS_OUT/$c.xl.json" "$HARNESS_OUT/$c.pvb.json" > "$HARNESS_OUT/$c.diff" 2>&1
        bad="$bad $c: $(head -n 3 "$HARNESS_OUT/$c.diff" | paste -sd '|')"
    fi
done
[ -z "$bad" ] || fail "create -n differs from xl's:$bad"
note "create -n: $n configs byte for byte as xl create -n's"
pass

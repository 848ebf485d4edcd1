# harness-opt-in
# Opt-in (xl's side only: pvbuild's own scenarios keep CI's harness budget); its reference
# data is kept in the tree (tests/xen/README.md).
# xl-vvv-log: the xl-baseline guest with `xl -vvv create`, keeping libxenguest's
# log (the "domainbuilder:"/"xc:" lines) in libxenguest.log for the plan
# comparison (issue 3, scenario 3). Checks the guest ran, and that the log is a
# whole PV build log: the kernel probe, the layout, start_info and the vcpu.
. "$HARNESS_REPO/tests/xen/dom0/lib.sh"
xl_boot_debian xlvvv -vvv
grep -E '^(domainbuilder|xc): ' "$HARNESS_OUT/xl-create.log" > "$HARNESS_OUT/libxenguest.log"
for want in 'xc_dom_kernel_file: filename="'"$HARNESS_GUEST_KERNEL"'"' \
    'xc_dom_module_file: filename="'"$HARNESS_GUEST_RAMDISK"'"' \
    'loader probe OK' 'xc_dom_alloc_segment:   kernel' 'xc_dom_alloc_segment:   module0' \
    'xc_dom_alloc_segment:   phys2mach' 'xc_dom_build_image  : virt_pgtab_end' \
    'start_info_x86_64: called' 'vcpu_x86_64: cr3'; do
    grep -qF "$want" "$HARNESS_OUT/libxenguest.log" || fail "libxenguest log lacks '$want'"
done
metric libxenguest_lines "$(wc -l < "$HARNESS_OUT/libxenguest.log")"
# Against the reference run of DEVELOPERS.md (when this machine has it): the
# layout lines match when the same kernel and an equal-sized ramdisk are used.
ref=/work/shared/reference/xl-vvv-debian-$HARNESS_GUEST_KVER.log
if [ -r "$ref" ]; then
    layout='xc_dom_alloc_segment|xc_dom_alloc_page|count_pgtables|virt_alloc_end|virt_pgtab_end|xc_dom_mem_init'
    grep -E "$layout" "$ref" > "$HARNESS_OUT/layout.reference"
    grep -E "$layout" "$HARNESS_OUT/libxenguest.log" > "$HARNESS_OUT/layout.this-run"
    if cmp -s "$HARNESS_OUT/layout.reference" "$HARNESS_OUT/layout.this-run"; then
        note "layout lines identical to $ref"
    else
        note "layout lines differ from $ref (ramdisk size?): see layout.* in $HARNESS_OUT"
    fi
fi
evidence "$HARNESS_OUT/libxenguest.log"
pass

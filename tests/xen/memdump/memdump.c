/*
 * memdump: a normalised text dump of a paused 64-bit PV domain as Xen holds it,
 * read from dom0 through Xen's own libraries (libxenctrl, libxenforeignmemory,
 * libxenguest's xc_map_m2p) and headers. It is the oracle of the harness
 * scenario built-memory: two dumps of guests built from the same config (one
 * by xl, one by pvbuild) must be identical, so nothing here comes from
 * pvbuild's code. Every machine frame number is written as the pfn the
 * domain's own p2m maps to it, so the dumps of two domains are comparable.
 *
 *   memdump dump DOMID [FILE] the dump, on stdout (sections below); with FILE, also
 *                             "STORE_MFN CONSOLE_MFN" (decimal) into FILE
 *   memdump page DOMID PFN    the raw 4096 bytes of guest page PFN, on stdout
 *   memdump frames DOMID      "STORE_MFN CONSOLE_MFN" from start_info
 *   memdump hvm DOMID         the dump of a paused HVM-container (PVH) domain: see
 *                             "HVM-container guests" below
 *
 * How it finds the guest's memory without trusting the builder's layout:
 * vcpu 0's context (XEN_DOMCTL_getvcpucontext) gives cr3 (an mfn) and rsi
 * (start_info's virtual address); the guest's own page tables, walked from
 * cr3, give start_info's frame; start_info gives nr_pages and mfn_list (the
 * p2m's virtual address), read through the same walk. The reverse map
 * mfn -> pfn is built from that p2m; Xen's M2P is checked against it.
 * Page types (L1..L4, pinned) come from XEN_DOMCTL_getpageframeinfo3.
 *
 * Sections of the dump (every line is domain-independent unless the domain
 * was built differently):
 *   dominfo.*   XEN_DOMCTL_getdomaininfo without cpu_time, the uuid and
 *               shared_info_frame (Xen's page, not the guest's: checked
 *               against start_info's shared_info instead);
 *   vcpu0.*     every field of vcpu_guest_context (x86_64 layout); frames
 *               (cr3, ctrlreg[1], gdt_frames) as pfns, fpu_ctxt as its
 *               non-zero 32-bit words;
 *   evtchn.*    state of ports 0..7 (remote domain as "dom0"/"self"/number);
 *   start_info.* every field, frames as pfns, shared_info as "xen's frame of
 *               this domain" when it is, and the rest of its page;
 *   m2p         how many pfns Xen's M2P maps back to the same pfn;
 *   page ...    every pfn in order: its Xen page type; page tables decoded
 *               (every non-zero entry: frame as pfn, flags exactly), p2m
 *               pages decoded (entry == its index after translation, or the
 *               value), start_info decoded above, other pages "zero" or a
 *               64-bit hash of their contents; runs of equal lines folded;
 *   shared_info.* everything but the vcpu time records and the wallclock;
 *   gnttab.*    every non-zero v1 entry of grant-table frame 0 (the entries
 *               xc_dom_gnttab_seed writes for console and xenstore), frame
 *               as pfn.
 *
 * HVM-container guests (`memdump hvm`): a translated guest has no p2m of its own and
 * its frames are addressed by guest-physical number (gfn), so pages are compared by gfn
 * directly. Sections:
 *   dominfo.*, evtchn.*  as above;
 *   hvmparam.N  every HVM parameter (XEN_HVM_PARAM get), its value or the errno;
 *   hvmctx.T.I  every record of the HVM context (XEN_DOMCTL_gethvmcontext), typecode T
 *               and instance I: its length, then each non-zero 64-bit word at its
 *               offset. Masked: the CPU record's tsc (the guest's TSC when read: time),
 *               an HVM guest's RTC clock and PM timer count (mask_time);
 *   hvm_start_info.*  the start info the boot vcpu's %rbx points at, field by field, its
 *               module list and memory map entry by entry (the command line as text);
 *   page ...    every gfn from 0 to the domain's maximum gpfn: "absent" (not
 *               populated), "zero", or a 64-bit hash; runs folded;
 *   gnttab.*    as above, frames as gfns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenguest.h>
#include <xen/grant_table.h>
#include <xen/memory.h>
#include <xen/hvm/params.h>
#include <xen/hvm/save.h>
#include <xen/arch-x86/hvm/start_info.h>

/* Exported by libxenctrl 4.17 (tools/libs/ctrl/xc_private.h), not in its public header. */
int xc_get_pfn_type_batch(xc_interface *xch, uint32_t dom, unsigned int num, xen_pfn_t *arr);

#define PAGE 4096UL
#define PTE_FRAME_MASK 0x000ffffffffff000ULL /* bits 12..51 (x86-64 4-level) */
#define PTE_PRESENT 1ULL
#define NO_PFN UINT64_MAX

static xc_interface *xch;
static xenforeignmemory_handle *fmem;
static uint32_t domid;
static xc_domaininfo_t info;
static vcpu_guest_context_any_t ctx;
static start_info_t si;
static uint64_t nr_pages;
static uint64_t *p2m;        /* pfn -> mfn, nr_pages entries */
static uint64_t si_mfn;      /* start_info's frame */
static uint64_t *p2m_frames; /* the frames holding the p2m list */
static uint64_t nr_p2m_frames;

struct rev { uint64_t mfn, pfn; };
static struct rev *rev;
static uint64_t nr_rev, nr_dup;

static void die(const char *what)
{
    fprintf(stderr, "memdump: d%u: %s: %s\n", domid, what, strerror(errno));
    exit(2);
}

static void *map_mfn(uint64_t mfn)
{
    xen_pfn_t f = mfn;
    int err = 0;
    void *p = xenforeignmemory_map(fmem, domid, PROT_READ, 1, &f, &err);
    if (!p || err) {
        if (err)
            errno = -err;
        return NULL;
    }
    return p;
}

static void unmap1(void *p) { xenforeignmemory_unmap(fmem, p, 1); }

/* va -> mfn through the guest's 4-level page tables from cr3; NO_PFN when unmapped. */
static uint64_t walk(uint64_t cr3_mfn, uint64_t va)
{
    uint64_t mfn = cr3_mfn;
    for (int level = 4; level >= 1; level--) {
        unsigned idx = (va >> (12 + 9 * (level - 1))) & 511;
        uint64_t *t = map_mfn(mfn);
        if (!t)
            die("map a page table during the walk");
        uint64_t e = t[idx];
        unmap1(t);
        if (!(e & PTE_PRESENT))
            return NO_PFN;
        if (level > 1 && (e & 0x80))
            return NO_PFN; /* superpage: PV guests built by a toolstack have none */
        mfn = (e & PTE_FRAME_MASK) >> 12;
    }
    return mfn;
}

static int rev_cmp(const void *a, const void *b)
{
    const struct rev *x = a, *y = b;
    return x->mfn < y->mfn ? -1 : x->mfn > y->mfn;
}

static uint64_t m2p_of(uint64_t mfn)
{
    struct rev key = { mfn, 0 };
    struct rev *r = bsearch(&key, rev, nr_rev, sizeof(*rev), rev_cmp);
    return r ? r->pfn : NO_PFN;
}

/* A frame as text: "pfn N" when the domain's p2m maps it, else "mfn-not-in-p2m". */
static int hvm_mode;
static const char *fr(uint64_t mfn, char *buf, size_t n)
{
    if (hvm_mode) {
        snprintf(buf, n, "gfn:%#" PRIx64, mfn);
        return buf;
    }
    uint64_t p = m2p_of(mfn);
    if (p == NO_PFN)
        snprintf(buf, n, "mfn-not-in-p2m");
    else
        snprintf(buf, n, "pfn:%#" PRIx64, p);
    return buf;
}

static void setup(void)
{
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch)
        die("xc_interface_open");
    fmem = xenforeignmemory_open(NULL, 0);
    if (!fmem)
        die("xenforeignmemory_open");
    if (xc_domain_getinfolist(xch, domid, 1, &info) != 1 || info.domain != domid)
        die("xc_domain_getinfolist");
    unsigned width = 0;
    if (xc_domain_get_guest_width(xch, domid, &width) || width != 8) {
        fprintf(stderr, "memdump: d%u is not a 64-bit PV domain (width %u)\n", domid, width);
        exit(2);
    }
    if (xc_vcpu_getcontext(xch, domid, 0, &ctx))
        die("xc_vcpu_getcontext");
    uint64_t cr3 = xen_cr3_to_pfn(ctx.x64.ctrlreg[3]);
    si_mfn = walk(cr3, ctx.x64.user_regs.rsi);
    if (si_mfn == NO_PFN) {
        fprintf(stderr, "memdump: d%u: rsi %#" PRIx64 " (start_info) is not mapped from cr3\n", domid,
                (uint64_t)ctx.x64.user_regs.rsi);
        exit(2);
    }
    start_info_t *s = map_mfn(si_mfn);
    if (!s)
        die("map start_info");
    memcpy(&si, s, sizeof(si));
    unmap1(s);
    nr_pages = si.nr_pages;
    if (nr_pages == 0 || nr_pages > (1ULL << 28)) {
        fprintf(stderr, "memdump: d%u: start_info nr_pages %" PRIu64 " out of range\n", domid, nr_pages);
        exit(2);
    }
    nr_p2m_frames = (nr_pages * 8 + PAGE - 1) / PAGE;
    p2m = calloc(nr_p2m_frames * (PAGE / 8), 8);
    p2m_frames = calloc(nr_p2m_frames, 8);
    rev = calloc(nr_pages, sizeof(*rev));
    if (!p2m || !p2m_frames || !rev)
        die("calloc");
    for (uint64_t i = 0; i < nr_p2m_frames; i++) {
        uint64_t m = walk(cr3, si.mfn_list + i * PAGE);
        if (m == NO_PFN) {
            fprintf(stderr, "memdump: d%u: p2m page %" PRIu64 " (va %#lx) is not mapped\n", domid, i,
                    si.mfn_list + i * PAGE);
            exit(2);
        }
        p2m_frames[i] = m;
        uint64_t *t = map_mfn(m);
        if (!t)
            die("map a p2m page");
        memcpy(p2m + i * (PAGE / 8), t, PAGE);
        unmap1(t);
    }
    for (uint64_t p = 0; p < nr_pages; p++)
        if (p2m[p] != (uint64_t)INVALID_MFN)
            rev[nr_rev++] = (struct rev){ p2m[p], p };
    qsort(rev, nr_rev, sizeof(*rev), rev_cmp);
    /* Two pfns on one mfn would make the translation ambiguous: count and drop them. */
    uint64_t w = 0;
    for (uint64_t i = 0; i < nr_rev; i++) {
        if (w && rev[w - 1].mfn == rev[i].mfn) {
            nr_dup++;
            continue;
        }
        rev[w++] = rev[i];
    }
    nr_rev = w;
}

static uint64_t hash_page(const uint64_t *w)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (unsigned i = 0; i < PAGE / 8; i++) {
        h ^= w[i] * 0xff51afd7ed558ccdULL;
        h = ((h << 27) | (h >> 37)) * 0xc4ceb9fe1a85ec53ULL + i;
    }
    return h;
}

static int is_zero(const uint64_t *w, unsigned from)
{
    for (unsigned i = from; i < PAGE / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

/* ---- folding runs of page lines: "page A[-B] TEXT" --------------------------- */
static char run_text[256];
static uint64_t run_first, run_last;
static int run_open;

static void run_flush(void)
{
    if (!run_open)
        return;
    if (run_first == run_last)
        printf("page %#" PRIx64 " %s\n", run_first, run_text);
    else
        printf("page %#" PRIx64 "-%#" PRIx64 " %s\n", run_first, run_last, run_text);
    run_open = 0;
}

static void run_add(uint64_t pfn, const char *text)
{
    if (run_open && run_last + 1 == pfn && !strcmp(text, run_text)) {
        run_last = pfn;
        return;
    }
    run_flush();
    snprintf(run_text, sizeof(run_text), "%s", text);
    run_first = run_last = pfn;
    run_open = 1;
}

static const char *type_name(uint64_t t, char *buf, size_t n)
{
    static const char *names[16] = { "notab", "L1", "L2", "L3", "L4", "t5", "t6", "t7",
                                     "t8", "t9", "t10", "t11", "t12", "broken", "xalloc", "xtab" };
    unsigned k = (t & XEN_DOMCTL_PFINFO_LTAB_MASK) >> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
    if ((t & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_XTAB ||
        (t & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_BROKEN ||
        (t & XEN_DOMCTL_PFINFO_LTAB_MASK) == XEN_DOMCTL_PFINFO_XALLOC)
        snprintf(buf, n, "%s", names[k]);
    else
        snprintf(buf, n, "%s%s", names[k & 7], (t & XEN_DOMCTL_PFINFO_LPINTAB) ? "+pinned" : "");
    return buf;
}

/* Every non-zero entry of a page table: runs of consecutive pfns with equal flags folded. */
static void dump_table(uint64_t pfn, const char *tn, const uint64_t *t)
{
    int open = 0;
    unsigned first = 0, last = 0;
    uint64_t first_pfn = 0, flags = 0;
    int nonguest = 0;
    for (unsigned i = 0; i <= 512; i++) {
        uint64_t e = i < 512 ? t[i] : 0;
        uint64_t f = e & ~PTE_FRAME_MASK;
        uint64_t p = e ? m2p_of((e & PTE_FRAME_MASK) >> 12) : NO_PFN;
        int ng = e && p == NO_PFN;
        if (open && e && f == flags && !ng && !nonguest && p == first_pfn + (i - first)) {
            last = i;
            continue;
        }
        if (open) {
            if (nonguest)
                printf("page %#" PRIx64 " %s pte %u-%u mfn-not-in-p2m flags %#" PRIx64 "\n", pfn, tn, first, last, flags);
            else if (first == last)
                printf("page %#" PRIx64 " %s pte %u pfn:%#" PRIx64 " flags %#" PRIx64 "\n", pfn, tn, first, first_pfn, flags);
            else
                printf("page %#" PRIx64 " %s pte %u-%u pfn:%#" PRIx64 "+ flags %#" PRIx64 "\n", pfn, tn, first, last, first_pfn, flags);
            open = 0;
        }
        if (i < 512 && e) {
            open = 1;
            first = last = i;
            first_pfn = p;
            flags = f;
            nonguest = ng;
        }
    }
}

/* A p2m page: entry k holds the mfn of pfn k; after translation that is k itself. */
static void dump_p2m_page(uint64_t index, const uint64_t *t)
{
    char b[64];
    for (unsigned i = 0; i < 512; i++) {
        uint64_t k = index * 512 + i;
        uint64_t v = t[i];
        if (k < nr_pages && v != (uint64_t)INVALID_MFN && m2p_of(v) == k)
            continue;
        if (k < nr_pages)
            printf("p2m[%#" PRIx64 "] = %s\n", k,
                   v == (uint64_t)INVALID_MFN ? "INVALID_MFN" : fr(v, b, sizeof(b)));
        else if (v)
            printf("p2m[%#" PRIx64 "] (past nr_pages) = %#" PRIx64 "\n", k, v);
    }
}

static void dump_start_info(const uint8_t *page)
{
    char b[64];
    printf("start_info.magic %.32s\n", si.magic);
    printf("start_info.nr_pages %#lx\n", si.nr_pages);
    if (si.shared_info == (info.shared_info_frame << 12))
        printf("start_info.shared_info xen's shared_info frame of this domain\n");
    else
        printf("start_info.shared_info %#lx (NOT this domain's shared_info frame)\n", si.shared_info);
    printf("start_info.flags %#x\n", si.flags);
    printf("start_info.store_mfn %s\n", fr(si.store_mfn, b, sizeof(b)));
    printf("start_info.store_evtchn %u\n", si.store_evtchn);
    printf("start_info.console.mfn %s\n", fr(si.console.domU.mfn, b, sizeof(b)));
    printf("start_info.console.evtchn %u\n", si.console.domU.evtchn);
    printf("start_info.pt_base %#lx\n", si.pt_base);
    printf("start_info.nr_pt_frames %#lx\n", si.nr_pt_frames);
    printf("start_info.mfn_list %#lx\n", si.mfn_list);
    printf("start_info.mod_start %#lx\n", si.mod_start);
    printf("start_info.mod_len %#lx\n", si.mod_len);
    printf("start_info.cmd_line \"%.*s\"\n", MAX_GUEST_CMDLINE, (const char *)si.cmd_line);
    /* The bytes of cmd_line after its NUL must be zero as well. */
    size_t n = strnlen((const char *)si.cmd_line, MAX_GUEST_CMDLINE);
    int dirty = 0;
    for (size_t i = n; i < MAX_GUEST_CMDLINE; i++)
        dirty |= si.cmd_line[i];
    printf("start_info.cmd_line_tail %s\n", dirty ? "non-zero" : "zero");
    printf("start_info.first_p2m_pfn %#lx\n", si.first_p2m_pfn);
    printf("start_info.nr_p2m_frames %#lx\n", si.nr_p2m_frames);
    int rest = 0;
    for (size_t i = sizeof(start_info_t); i < PAGE; i++)
        rest |= page[i];
    printf("start_info.rest_of_page %s\n", rest ? "non-zero" : "zero");
}

static void dump_vcpu(void)
{
    const vcpu_guest_context_x86_64_t *c = &ctx.x64;
    char b[64];
    printf("vcpu0.flags %#lx\n", (unsigned long)c->flags);
#define R(f) printf("vcpu0.user_regs." #f " %#" PRIx64 "\n", (uint64_t)c->user_regs.f)
    R(r15); R(r14); R(r13); R(r12); R(rbp); R(rbx); R(r11); R(r10); R(r9); R(r8);
    R(rax); R(rcx); R(rdx); R(rsi); R(rdi); R(error_code); R(entry_vector); R(rip);
    R(cs); R(saved_upcall_mask); R(rflags); R(rsp); R(ss); R(es); R(ds); R(fs); R(gs);
#undef R
    for (unsigned i = 0; i < 256; i++) {
        const struct trap_info *t = (const void *)&c->trap_ctxt[i];
        printf("vcpu0.trap_ctxt[%u] vector %u flags %#x cs %#x address %#lx\n", i, t->vector, t->flags, t->cs,
               t->address);
    }
    printf("vcpu0.ldt_base %#" PRIx64 "\n", (uint64_t)c->ldt_base);
    printf("vcpu0.ldt_ents %#" PRIx64 "\n", (uint64_t)c->ldt_ents);
    for (unsigned i = 0; i < 16; i++)
        printf("vcpu0.gdt_frames[%u] %s\n", i, c->gdt_frames[i] ? fr(c->gdt_frames[i], b, sizeof(b)) : "0");
    printf("vcpu0.gdt_ents %#" PRIx64 "\n", (uint64_t)c->gdt_ents);
    printf("vcpu0.kernel_ss %#" PRIx64 "\n", (uint64_t)c->kernel_ss);
    printf("vcpu0.kernel_sp %#" PRIx64 "\n", (uint64_t)c->kernel_sp);
    for (unsigned i = 0; i < 8; i++) {
        if (i == 3 || (i == 1 && c->ctrlreg[1]))
            printf("vcpu0.ctrlreg[%u] %s low-bits %#" PRIx64 "\n", i, fr(xen_cr3_to_pfn(c->ctrlreg[i]), b, sizeof(b)),
                   (uint64_t)(c->ctrlreg[i] & 0xfff));
        else
            printf("vcpu0.ctrlreg[%u] %#" PRIx64 "\n", i, (uint64_t)c->ctrlreg[i]);
    }
    for (unsigned i = 0; i < 8; i++)
        printf("vcpu0.debugreg[%u] %#" PRIx64 "\n", i, (uint64_t)c->debugreg[i]);
    printf("vcpu0.event_callback_eip %#" PRIx64 "\n", (uint64_t)c->event_callback_eip);
    printf("vcpu0.failsafe_callback_eip %#" PRIx64 "\n", (uint64_t)c->failsafe_callback_eip);
    printf("vcpu0.syscall_callback_eip %#" PRIx64 "\n", (uint64_t)c->syscall_callback_eip);
    printf("vcpu0.vm_assist %#" PRIx64 "\n", (uint64_t)c->vm_assist);
    printf("vcpu0.fs_base %#" PRIx64 "\n", (uint64_t)c->fs_base);
    printf("vcpu0.gs_base_kernel %#" PRIx64 "\n", (uint64_t)c->gs_base_kernel);
    printf("vcpu0.gs_base_user %#" PRIx64 "\n", (uint64_t)c->gs_base_user);
    const uint32_t *fpu = (const void *)&c->fpu_ctxt;
    for (unsigned i = 0; i < sizeof(c->fpu_ctxt) / 4; i++)
        if (fpu[i])
            printf("vcpu0.fpu_ctxt[%#x] %#x\n", i * 4, fpu[i]);
    printf("vcpu0.fpu_ctxt other words zero\n");
}

static void dump_dominfo(void)
{
    unsigned width = 0;
    xc_domain_get_guest_width(xch, domid, &width);
    printf("dominfo.guest_width %u\n", width);
    printf("dominfo.flags %#x\n", info.flags);
    printf("dominfo.tot_pages %#" PRIx64 "\n", (uint64_t)info.tot_pages);
    printf("dominfo.max_pages %#" PRIx64 "\n", (uint64_t)info.max_pages);
    printf("dominfo.outstanding_pages %#" PRIx64 "\n", (uint64_t)info.outstanding_pages);
    printf("dominfo.shr_pages %#" PRIx64 "\n", (uint64_t)info.shr_pages);
    printf("dominfo.paged_pages %#" PRIx64 "\n", (uint64_t)info.paged_pages);
    printf("dominfo.nr_online_vcpus %u\n", info.nr_online_vcpus);
    printf("dominfo.max_vcpu_id %u\n", info.max_vcpu_id);
    printf("dominfo.ssidref %u\n", info.ssidref);
    printf("dominfo.cpupool %u\n", info.cpupool);
    printf("dominfo.gpaddr_bits %u\n", info.gpaddr_bits);
    printf("dominfo.arch_config.emulation_flags %#x\n", info.arch_config.emulation_flags);
    printf("dominfo.arch_config.misc_flags %#x\n", info.arch_config.misc_flags);
}

static void dump_evtchn(void)
{
    for (unsigned port = 0; port < 8; port++) {
        xc_evtchn_status_t st = { .dom = DOMID_SELF, .port = port };
        st.dom = domid;
        if (xc_evtchn_status(xch, &st)) {
            printf("evtchn.%u error %d\n", port, errno);
            continue;
        }
        /*
         * The builder allocates the store and console channels unbound, remote dom0;
         * xenstored and xenconsoled bind them when they see the domain (then the
         * state is interdomain, with a port number of dom0's, which differs per
         * domain). Either state with dom0 as the remote is printed the same:
         * whether a daemon has bound the channel yet is a race, not the builder's doing.
         */
        if ((st.status == EVTCHNSTAT_unbound && st.u.unbound.dom == 0) ||
            (st.status == EVTCHNSTAT_interdomain && st.u.interdomain.dom == 0)) {
            printf("evtchn.%u to dom0 (unbound or bound by dom0) vcpu %u\n", port, st.vcpu);
            continue;
        }
        printf("evtchn.%u status %u vcpu %u", port, st.status, st.vcpu);
        if (st.status == EVTCHNSTAT_unbound)
            printf(" remote %s", st.u.unbound.dom == domid ? "self" : "other");
        else if (st.status == EVTCHNSTAT_interdomain)
            printf(" remote other");
        else if (st.status == EVTCHNSTAT_virq)
            printf(" virq %u", st.u.virq);
        printf("\n");
    }
}

static void dump_m2p(void)
{
    unsigned long max_mfn = 0;
    if (xc_maximum_ram_page(xch, &max_mfn))
        die("xc_maximum_ram_page");
    xen_pfn_t *m2p = xc_map_m2p(xch, max_mfn, PROT_READ, NULL);
    if (!m2p)
        die("xc_map_m2p");
    uint64_t agree = 0, bad = 0;
    for (uint64_t p = 0; p < nr_pages; p++) {
        if (p2m[p] == (uint64_t)INVALID_MFN || p2m[p] > max_mfn)
            continue;
        if (m2p[p2m[p]] == p)
            agree++;
        else if (bad++ < 8)
            printf("m2p pfn %#" PRIx64 ": Xen's M2P says %#" PRIx64 "\n", p, (uint64_t)m2p[p2m[p]]);
    }
    printf("m2p %" PRIu64 " of %" PRIu64 " pfns map back; %" PRIu64 " not; %" PRIu64 " mfns twice in the p2m\n",
           agree, nr_pages, bad, nr_dup);
}

static void dump_pages(void)
{
    /* pfn -> index of the p2m-list page it holds, or -1. */
    int64_t *p2m_index = malloc(nr_pages * sizeof(*p2m_index));
    if (!p2m_index)
        die("malloc");
    for (uint64_t p = 0; p < nr_pages; p++)
        p2m_index[p] = -1;
    for (uint64_t j = 0; j < nr_p2m_frames; j++) {
        uint64_t p = m2p_of(p2m_frames[j]);
        if (p != NO_PFN)
            p2m_index[p] = j;
    }
    enum { BATCH = 1024 };
    xen_pfn_t arr[BATCH], types[BATCH];
    int err[BATCH];
    char text[200], tn[32];
    for (uint64_t base = 0; base < nr_pages; base += BATCH) {
        unsigned n = nr_pages - base < BATCH ? nr_pages - base : BATCH;
        for (unsigned i = 0; i < n; i++)
            types[i] = arr[i] = p2m[base + i];
        if (xc_get_pfn_type_batch(xch, domid, n, types))
            die("xc_get_pfn_type_batch");
        memset(err, 0, sizeof(err));
        uint8_t *m = xenforeignmemory_map(fmem, domid, PROT_READ, n, arr, err);
        if (!m)
            die("xenforeignmemory_map of a batch");
        for (unsigned i = 0; i < n; i++) {
            uint64_t pfn = base + i;
            const uint64_t *w = (const void *)(m + i * PAGE);
            uint64_t t = types[i];
            type_name(t, tn, sizeof(tn));
            if (p2m[pfn] == (uint64_t)INVALID_MFN) {
                run_add(pfn, "INVALID_MFN");
                continue;
            }
            if (err[i]) {
                snprintf(text, sizeof(text), "%s unmappable (errno %d)", tn, -err[i]);
                run_add(pfn, text);
                continue;
            }
            /* L1..L4 (pinned or not); XTAB, XALLOC and BROKEN have bit 31 set too. */
            uint64_t lt = t & XEN_DOMCTL_PFINFO_LTAB_MASK;
            unsigned k = (lt == XEN_DOMCTL_PFINFO_XTAB || lt == XEN_DOMCTL_PFINFO_XALLOC ||
                          lt == XEN_DOMCTL_PFINFO_BROKEN)
                             ? 0
                             : (t & XEN_DOMCTL_PFINFO_LTABTYPE_MASK) >> XEN_DOMCTL_PFINFO_LTAB_SHIFT;
            int64_t p2m_idx = p2m_index[pfn];
            if (k >= 1 && k <= 4) {
                run_flush();
                printf("page %#" PRIx64 " %s page-table\n", pfn, tn);
                dump_table(pfn, tn, w);
            } else if (p2m_idx >= 0) {
                run_flush();
                printf("page %#" PRIx64 " %s p2m-list page %" PRId64 "\n", pfn, tn, p2m_idx);
                dump_p2m_page(p2m_idx, w);
            } else if (p2m[pfn] == si_mfn) {
                run_flush();
                printf("page %#" PRIx64 " %s start_info\n", pfn, tn);
                dump_start_info((const uint8_t *)w);
            } else if (is_zero(w, 0)) {
                snprintf(text, sizeof(text), "%s zero", tn);
                run_add(pfn, text);
            } else {
                run_flush();
                printf("page %#" PRIx64 " %s hash %016" PRIx64 "\n", pfn, tn, hash_page(w));
            }
        }
        xenforeignmemory_unmap(fmem, m, n);
    }
    run_flush();
    free(p2m_index);
}

static void dump_shared_info(void)
{
    char b[64];
    shared_info_t *s = map_mfn(info.shared_info_frame);
    if (!s)
        die("map shared_info");
    for (unsigned i = 0; i < XEN_LEGACY_MAX_VCPUS; i++) {
        struct vcpu_info *v = &s->vcpu_info[i];
        printf("shared_info.vcpu_info[%u] upcall_pending %u upcall_mask %u pending_sel %#lx cr2 %#lx\n", i,
               v->evtchn_upcall_pending, v->evtchn_upcall_mask, (unsigned long)v->evtchn_pending_sel,
               (unsigned long)v->arch.cr2);
    }
    for (unsigned i = 0; i < sizeof(s->evtchn_pending) / sizeof(s->evtchn_pending[0]); i++)
        printf("shared_info.evtchn_pending[%u] %#lx mask %#lx\n", i, (unsigned long)s->evtchn_pending[i],
               (unsigned long)s->evtchn_mask[i]);
    printf("shared_info.arch.max_pfn %#lx\n", s->arch.max_pfn);
    printf("shared_info.arch.pfn_to_mfn_frame_list_list %s\n",
           s->arch.pfn_to_mfn_frame_list_list ? fr(s->arch.pfn_to_mfn_frame_list_list, b, sizeof(b)) : "0");
    printf("shared_info.arch.nmi_reason %#lx\n", s->arch.nmi_reason);
    printf("shared_info.arch.p2m_cr3 %#lx\n", s->arch.p2m_cr3);
    printf("shared_info.arch.p2m_vaddr %#lx\n", s->arch.p2m_vaddr);
    printf("shared_info.arch.p2m_generation %#lx\n", s->arch.p2m_generation);
    int rest = 0;
    for (size_t i = sizeof(*s); i < PAGE; i++)
        rest |= ((const uint8_t *)s)[i];
    printf("shared_info.rest_of_page %s\n", rest ? "non-zero" : "zero");
    unmap1(s);
}

static void dump_gnttab(void)
{
    char b[64];
    void *addr = NULL;
    xenforeignmemory_resource_handle *res = xenforeignmemory_map_resource(
        fmem, domid, XENMEM_resource_grant_table, XENMEM_resource_grant_table_id_shared, 0, 1, &addr, PROT_READ, 0);
    if (!res)
        die("xenforeignmemory_map_resource(grant table frame 0)");
    const grant_entry_v1_t *g = addr;
    unsigned shown = 0;
    for (unsigned i = 0; i < PAGE / sizeof(*g); i++) {
        if (!g[i].flags && !g[i].domid && !g[i].frame)
            continue;
        shown++;
        /*
         * GTF_reading/GTF_writing are Xen's record that a backend maps the grant now
         * (xenconsoled maps the console's when it sees the domain): a race, not the
         * builder's doing, so masked; xc_dom_gnttab_seed writes GTF_permit_access.
         */
        printf("gnttab[%u] flags %#x domid %u frame %s\n", i, g[i].flags & ~(GTF_reading | GTF_writing), g[i].domid,
               fr(g[i].frame, b, sizeof(b)));
    }
    printf("gnttab other entries of frame 0 zero (%u shown)\n", shown);
    xenforeignmemory_unmap_resource(fmem, res);
}

/* ---- HVM-container guests ------------------------------------------------------ */

static void *map_gfn(uint64_t gfn)
{
    return map_mfn(gfn); /* a translated guest's frames are mapped by gfn */
}

static void setup_hvm(void)
{
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch)
        die("xc_interface_open");
    fmem = xenforeignmemory_open(NULL, 0);
    if (!fmem)
        die("xenforeignmemory_open");
    if (xc_domain_getinfolist(xch, domid, 1, &info) != 1 || info.domain != domid)
        die("xc_domain_getinfolist");
    if (!(info.flags & XEN_DOMINF_hvm_guest)) {
        errno = EINVAL;
        die("not an HVM-container domain");
    }
    hvm_mode = 1;
}

static void dump_hvm_params(void)
{
    for (unsigned i = 0; i < HVM_NR_PARAMS; i++) {
        uint64_t v = 0;
        if (xc_hvm_param_get(xch, domid, i, &v))
            printf("hvmparam.%u error %d\n", i, errno);
        else
            printf("hvmparam.%u %#" PRIx64 "\n", i, v);
    }
}

/*
 * The clocks of an HVM guest's emulated devices tick while it is paused: what they hold
 * when read is time, not the builder's doing (two domains xl builds from one config differ
 * there). Zeroed before the record is printed, each with a line saying so:
 *   RTC (typecode 11): the time-of-day registers of cmos_data (0 seconds, 2 minutes,
 *     4 hours, 6 day of week, 7 day of month, 8 month, 9 year: Xen's RTC keeps them as the
 *     host's time plus the guest's offset), register A's update-in-progress bit (bit 7)
 *     and register C's interrupt flags (bits 4-7: set as the clock ticks);
 *   PMTIMER (typecode 13): tmr_val (the ACPI PM timer's free-running count) and
 *     pm1a_sts's TMR_STS (bit 0: set when the count's bit 23 flips).
 * The CPU record's tsc is masked where it is printed (dump_hvm_context).
 */
static void mask_time(uint16_t type, uint16_t inst, uint8_t *body, uint32_t len)
{
    if (type == 11 && len >= offsetof(struct hvm_hw_rtc, cmos_index)) {
        static const unsigned clock[] = { 0, 2, 4, 6, 7, 8, 9 };
        for (unsigned i = 0; i < sizeof(clock) / sizeof(clock[0]); i++)
            body[clock[i]] = 0;
        body[0x0a] &= 0x7f;
        body[0x0c] &= 0x0f;
        printf("hvmctx.%u.%u cmos_data[0,2,4,6-9], [0xa] bit 7, [0xc] bits 4-7 (time, not compared)\n", type, inst);
    }
    if (type == 13 && len >= sizeof(struct hvm_hw_pmtimer)) {
        struct hvm_hw_pmtimer t;
        memcpy(&t, body, sizeof(t));
        t.tmr_val = 0;
        t.pm1a_sts &= ~1u;
        memcpy(body, &t, sizeof(t));
        printf("hvmctx.%u.%u tmr_val, pm1a_sts bit 0 (time, not compared)\n", type, inst);
    }
}

/* The boot vcpu's %rbx (the start info's address), from the CPU record of vcpu 0. */
static uint64_t hvm_rbx;

static void dump_hvm_context(void)
{
    int len = xc_domain_hvm_getcontext(xch, domid, NULL, 0);
    if (len <= 0)
        die("xc_domain_hvm_getcontext (size)");
    uint8_t *buf = calloc(1, len);
    if (!buf)
        die("calloc");
    len = xc_domain_hvm_getcontext(xch, domid, buf, len);
    if (len <= 0)
        die("xc_domain_hvm_getcontext");
    size_t off = 0;
    while (off + sizeof(struct hvm_save_descriptor) <= (size_t)len) {
        struct hvm_save_descriptor d;
        memcpy(&d, buf + off, sizeof(d));
        off += sizeof(d);
        if (off + d.length > (size_t)len) {
            printf("hvmctx truncated record %u.%u length %u\n", d.typecode, d.instance, d.length);
            break;
        }
        printf("hvmctx.%u.%u length %u\n", d.typecode, d.instance, d.length);
        uint8_t *body = buf + off;
        mask_time(d.typecode, d.instance, body, d.length);
        if (d.typecode == 2 && d.instance == 0 && d.length >= sizeof(struct hvm_hw_cpu)) {
            const struct hvm_hw_cpu *c = (const void *)body;
            hvm_rbx = c->rbx;
        }
        for (uint32_t w = 0; w + 8 <= d.length; w += 8) {
            uint64_t v;
            memcpy(&v, body + w, 8);
            if (d.typecode == 2 && w == offsetof(struct hvm_hw_cpu, tsc)) {
                printf("hvmctx.%u.%u[%#x] tsc (time, not compared)\n", d.typecode, d.instance, w);
                continue;
            }
            if (v)
                printf("hvmctx.%u.%u[%#x] %#" PRIx64 "\n", d.typecode, d.instance, w, v);
        }
        for (uint32_t w = d.length & ~7u; w < d.length; w++)
            if (body[w])
                printf("hvmctx.%u.%u[%#x] byte %#x\n", d.typecode, d.instance, w, body[w]);
        off += d.length;
        if (d.typecode == 0) /* HVM_SAVE_CODE(END) */
            break;
    }
    free(buf);
}

/* Copies LEN bytes at guest-physical ADDR (populated pages) into OUT; 0 on success. */
static int read_phys(uint64_t addr, void *out, size_t len)
{
    uint8_t *o = out;
    while (len) {
        size_t in = addr & (PAGE - 1), n = PAGE - in;
        if (n > len)
            n = len;
        uint8_t *p = map_gfn(addr >> 12);
        if (!p)
            return -1;
        memcpy(o, p + in, n);
        unmap1(p);
        o += n;
        addr += n;
        len -= n;
    }
    return 0;
}

static void dump_hvm_start_info(void)
{
    struct hvm_start_info si;
    printf("hvm_start_info.address %#" PRIx64 "\n", hvm_rbx);
    if (read_phys(hvm_rbx, &si, sizeof(si))) {
        printf("hvm_start_info unreadable\n");
        return;
    }
    printf("hvm_start_info.magic %#x version %u flags %#x nr_modules %u\n", si.magic, si.version, si.flags,
           si.nr_modules);
    printf("hvm_start_info.modlist_paddr %#" PRIx64 "\n", si.modlist_paddr);
    printf("hvm_start_info.cmdline_paddr %#" PRIx64 "\n", si.cmdline_paddr);
    printf("hvm_start_info.rsdp_paddr %#" PRIx64 "\n", si.rsdp_paddr);
    printf("hvm_start_info.memmap_paddr %#" PRIx64 " memmap_entries %u reserved %#x\n", si.memmap_paddr,
           si.memmap_entries, si.reserved);
    if (si.cmdline_paddr) {
        char cmd[2048] = { 0 };
        if (read_phys(si.cmdline_paddr, cmd, sizeof(cmd) - 1))
            printf("hvm_start_info.cmdline unreadable\n");
        else
            printf("hvm_start_info.cmdline \"%s\"\n", cmd);
    }
    for (uint32_t i = 0; i < si.nr_modules && i < 16; i++) {
        struct hvm_modlist_entry m;
        if (read_phys(si.modlist_paddr + i * sizeof(m), &m, sizeof(m))) {
            printf("hvm_start_info.module[%u] unreadable\n", i);
            continue;
        }
        printf("hvm_start_info.module[%u] paddr %#" PRIx64 " size %#" PRIx64 " cmdline_paddr %#" PRIx64
               " reserved %#" PRIx64 "\n",
               i, m.paddr, m.size, m.cmdline_paddr, m.reserved);
    }
    for (uint32_t i = 0; i < si.memmap_entries && i < 128; i++) {
        struct hvm_memmap_table_entry e;
        if (read_phys(si.memmap_paddr + i * sizeof(e), &e, sizeof(e))) {
            printf("hvm_start_info.memmap[%u] unreadable\n", i);
            continue;
        }
        printf("hvm_start_info.memmap[%u] addr %#" PRIx64 " size %#" PRIx64 " type %u reserved %#x\n", i, e.addr,
               e.size, e.type, e.reserved);
    }
}

#define GFN_BATCH 4096
static void dump_hvm_pages(void)
{
    xen_pfn_t max_gpfn = 0;
    if (xc_domain_maximum_gpfn(xch, domid, &max_gpfn) < 0)
        die("xc_domain_maximum_gpfn");
    printf("max_gpfn %#lx\n", (unsigned long)max_gpfn);
    static xen_pfn_t gfns[GFN_BATCH];
    static int errs[GFN_BATCH];
    char text[64];
    uint64_t present = 0;
    for (uint64_t first = 0; first <= max_gpfn; first += GFN_BATCH) {
        unsigned n = max_gpfn + 1 - first < GFN_BATCH ? (unsigned)(max_gpfn + 1 - first) : GFN_BATCH;
        for (unsigned i = 0; i < n; i++) {
            gfns[i] = first + i;
            errs[i] = 0;
        }
        uint8_t *p = xenforeignmemory_map(fmem, domid, PROT_READ, n, gfns, errs);
        for (unsigned i = 0; i < n; i++) {
            if (!p || errs[i]) {
                run_add(first + i, "absent");
                continue;
            }
            present++;
            const uint64_t *w = (const void *)(p + (size_t)i * PAGE);
            if (is_zero(w, 0))
                run_add(first + i, "zero");
            else {
                snprintf(text, sizeof(text), "hash %016" PRIx64, hash_page(w));
                run_add(first + i, text);
            }
        }
        if (p)
            xenforeignmemory_unmap(fmem, p, n);
    }
    run_flush();
    printf("pages present %" PRIu64 "\n", present);
}

static void phase(const char *what)
{
    static struct timespec last;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (last.tv_sec)
        fprintf(stderr, "memdump: d%u: %s %.2f s\n", domid, what,
                (now.tv_sec - last.tv_sec) + (now.tv_nsec - last.tv_nsec) / 1e9);
    last = now;
}

int main(int argc, char **argv)
{
    phase("start");
    if (argc < 3) {
        fprintf(stderr, "usage: memdump dump DOMID [FRAMES-FILE] | frames DOMID | page DOMID PFN | hvm DOMID\n");
        return 2;
    }
    domid = strtoul(argv[2], NULL, 0);
    if (!strcmp(argv[1], "hvm")) {
        setup_hvm();
        phase("setup");
        dump_dominfo();
        dump_evtchn();
        dump_hvm_params();
        dump_hvm_context();
        dump_hvm_start_info();
        phase("dominfo, evtchn, params, context, start info");
        dump_hvm_pages();
        phase("pages");
        dump_gnttab();
        return 0;
    }
    setup();
    if (!strcmp(argv[1], "frames")) {
        printf("%#lx %#lx\n", (unsigned long)si.store_mfn, (unsigned long)si.console.domU.mfn);
        printf("%lu %lu\n", (unsigned long)si.store_mfn, (unsigned long)si.console.domU.mfn);
        return 0;
    }
    if (!strcmp(argv[1], "page") && argc == 4) {
        uint64_t pfn = strtoull(argv[3], NULL, 0);
        if (pfn >= nr_pages)
            return 2;
        void *p = map_mfn(p2m[pfn]);
        if (!p)
            die("map the page");
        fwrite(p, 1, PAGE, stdout);
        unmap1(p);
        return 0;
    }
    if (strcmp(argv[1], "dump"))
        return 2;
    /* Where the time goes, on stderr (the harness runs under TCG on a shared host). */
    phase("setup");
    dump_dominfo();
    dump_vcpu();
    dump_evtchn();
    printf("p2m %" PRIu64 " pages at va %#lx, %" PRIu64 " frames\n", nr_pages, si.mfn_list, nr_p2m_frames);
    phase("dominfo, vcpu, evtchn");
    dump_m2p();
    phase("m2p");
    dump_pages();
    phase("pages");
    dump_shared_info();
    dump_gnttab();
    phase("shared_info, gnttab");
    /* With a third argument: start_info's store and console frames, decimal, into that
     * file (the scenario normalises xenstore's ring-ref values with them). */
    if (argc == 4) {
        FILE *f = fopen(argv[3], "w");
        if (!f || fprintf(f, "%lu %lu\n", (unsigned long)si.store_mfn, (unsigned long)si.console.domU.mfn) < 0 ||
            fclose(f))
            die("write the frames file");
    }
    return 0;
}

/*
 * stubdom/privcmd-probe.c: an LD_PRELOAD object for QEMU in pvbuild's Linux stub domain,
 * loaded by stubdom/init only when xen-privcmd is restricted to the stub's target (the
 * kernel's default in a domU since XSA-482; docs/stubdom.md, "The privcmd restriction").
 *
 * libxendevicemodel's xendevicemodel_open() (Xen 4.17, tools/libs/devicemodel/linux.c) asks
 * whether IOCTL_PRIVCMD_DM_OP exists with an empty call, dom = DOMID_INVALID, num = 0. A
 * restricted privcmd checks the domid before it looks at num, so it answers EPERM; the
 * library then closes the device and sends every later DM_OP through libxencall's
 * IOCTL_PRIVCMD_HYPERCALL, which a restricted privcmd refuses outright. This object changes
 * only that probe: the same empty call, naming the target domain (PVBUILD_PRIVCMD_TARGET,
 * set by /init from xenstore's `target`) instead of DOMID_INVALID, and says so on stderr. The
 * kernel still makes its check and answers it; no other ioctl is touched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <xen/xen.h>
#include <xen/sys/privcmd.h>

typedef int (*ioctl_fn)(int, unsigned long, ...);

/* The target domain from the environment, or DOMID_INVALID when absent or malformed. */
static domid_t probe_target(void)
{
    const char *s = getenv("PVBUILD_PRIVCMD_TARGET");
    char *end;
    unsigned long v;

    if (!s || !*s)
        return DOMID_INVALID;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v >= DOMID_FIRST_RESERVED)
        return DOMID_INVALID;
    return (domid_t)v;
}

int ioctl(int fd, unsigned long request, ...)
{
    static ioctl_fn real;
    va_list ap;
    void *arg;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);

    if (!real) {
        real = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
        if (!real) {
            errno = ENOSYS;
            return -1;
        }
    }

    if (request == IOCTL_PRIVCMD_DM_OP && arg) {
        const privcmd_dm_op_t *op = arg;

        if (op->dom == DOMID_INVALID && op->num == 0) {
            privcmd_dm_op_t probe = *op;
            int rc, err;

            probe.dom = probe_target();
            rc = real(fd, request, &probe);
            err = errno;
            /* One line per probe on QEMU's stderr (the stub's console): what was asked. */
            fprintf(stderr, "privcmd-probe: DM_OP probe for domain %u: %s\n",
                    (unsigned int)probe.dom, rc < 0 ? strerror(err) : "ok");
            errno = err;
            return rc;
        }
    }
    return real(fd, request, arg);
}

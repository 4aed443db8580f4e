/* rt_util.c — error messages and allocation for the runtime. Sizes in an artifact come from a
 * file, so allocations fail softly (NULL -> a clear error) instead of aborting as xmalloc does. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt_internal.h"

int rt_err(RtErr *e, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void rt_err_out(const RtErr *e, char *err, size_t errlen) {
    if (err && errlen) snprintf(err, errlen, "%s", e->msg);
}

void *rt_alloc(size_t bytes) {
    if (bytes > ((size_t)1 << 46)) return NULL;
    size_t n = (bytes + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    memset(p, 0, n ? n : 64);
    return p;
}

void rt_free(void *p) { free(p); }

int rt_mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

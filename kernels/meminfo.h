/* meminfo.h — how much memory this process may still take, so that a run too big for the
 * machine is refused with one line before it allocates, instead of dying in the allocator or
 * to the kernel's OOM killer half-way through step 1.
 *
 * Available = the smallest of: MemAvailable + SwapFree (/proc/meminfo), the cgroup's limit
 * minus its usage net of file cache (v1 memory.limit_in_bytes or v2 memory.max), and the
 * address-space / data-segment limits (RLIMIT_AS, RLIMIT_DATA: `ulimit -v`, `ulimit -d`) minus
 * what this process already maps. It errs on the generous side (page cache counts as free):
 * a refusal must never hit a run that would have fitted. */
#ifndef TERN_MEMINFO_H
#define TERN_MEMINFO_H

#include <stddef.h>

#include "kernels/util.h"

typedef struct MemAvail {
    size_t bytes;      /* SIZE_MAX when nothing could be read */
    const char *limit; /* which bound decided: "MemAvailable", "cgroup memory limit", "ulimit -v", "ulimit -d" */
} MemAvail;

MemAvail mem_available(void);

/* 0 when `bytes` more fit, else -1 with "WHAT need X, only Y available (LIMIT)" in err. */
int mem_check(size_t bytes, const char *what, Err *err);
/* Refuses (one line on stderr, exit status 1) when `bytes` more than are available; `what`
 * names the allocation ("the model's 5153960755200 parameters (values + gradients)"). For the
 * allocations no caller could shrink or recover from: the parameter store. */
void mem_require(size_t bytes, const char *what);

#endif

/* util.h — error reporting, aligned allocation, timing. The lowest layer: everything may use it. */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Library code reports bad input through an Err instead of exiting: one line naming the
 * file / key and what is wrong. Only main() turns it into an exit status. */
typedef struct Err {
    int code;        /* 0 = ok */
    char msg[1024];
} Err;

/* Sets the message (printf-style) and returns -1, so `return err_set(e, ...)` reads naturally.
 * A NULL err is allowed (the message is dropped). Control bytes become '?': one line. */
int err_set(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(Err *err);
/* Puts "PREFIX: " (printf-style) before err's message and returns -1. The message is copied
 * first: formatting a buffer into itself is undefined behaviour. */
int err_prefix(Err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 64-byte aligned allocation (cache line / AVX-512). Out of memory is fatal, because no caller
 * could recover meaningfully mid-step: one line naming the size and the calling file:line
 * ("tern: out of memory: cannot allocate 12.5 GiB (13421772800 bytes) at model/gpt.c:203"),
 * then exit status 1. Sizes a user or a file controls are checked before they get here
 * (kernels/meminfo.h). */
#define TERN_STR2(x) #x
#define TERN_STR(x) TERN_STR2(x)
#define TERN_HERE __FILE__ ":" TERN_STR(__LINE__)
#define xmalloc(bytes) xmalloc_at((bytes), TERN_HERE)
#define xcalloc(n, size) xcalloc_at((n), (size), TERN_HERE)
#define xrealloc(p, bytes) xrealloc_at((p), (bytes), TERN_HERE) /* not aligned beyond malloc's guarantee */
#define xstrdup(s) xstrdup_at((s), TERN_HERE)
void *xmalloc_at(size_t bytes, const char *where);
void *xcalloc_at(size_t n, size_t size, const char *where);
void *xrealloc_at(void *p, size_t bytes, const char *where);
char *xstrdup_at(const char *s, const char *where);
void xfree(void *p);
/* Zeroed memory whose pages become resident only when first written: large sizes are anonymous
 * mappings, which the kernel fills with zero pages on demand (xcalloc writes every byte). For
 * buffers a run may never touch: the gradients of a forward-only run (evaluation, MeZO,
 * generation), optimizer state. Free with xfree_lazy and the same n and size. */
#define xcalloc_lazy(n, size) xcalloc_lazy_at((n), (size), TERN_HERE)
void *xcalloc_lazy_at(size_t n, size_t size, const char *where);
void xfree_lazy(void *p, size_t n, size_t size);
/* "12.5 TiB", "312.0 MiB", "512 B" (binary units) */
void format_bytes(double bytes, char *buf, size_t n);

double now_seconds(void);              /* monotonic clock */
/* Writes len bytes to path atomically: a temporary file beside it (mode 0644), fsync'd, then
 * renamed over path, so a crash or a full disk never leaves half a file under the name. */
int write_file_atomic(const char *path, const void *data, size_t len, Err *err);
/* mkdir -p: creates path and its missing parents (mode 0755); an existing folder is fine. */
int make_dirs(const char *path, Err *err);
size_t peak_rss_bytes(void);           /* VmHWM of this process, 0 if unknown */
size_t current_rss_bytes(void);

/* Threads used by OpenMP loops and BLAS. 0 = leave as is. */
void tern_set_threads(int n);
int tern_get_threads(void);

#define TERN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TERN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define TERN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif

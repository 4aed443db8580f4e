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

/* 64-byte aligned allocation (cache line / AVX-512). Out of memory is fatal: it prints one line
 * and aborts, because no caller could recover meaningfully mid-step. */
void *xmalloc(size_t bytes);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t bytes); /* not aligned beyond malloc's guarantee */
char *xstrdup(const char *s);
void xfree(void *p);

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

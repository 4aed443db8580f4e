#include "kernels/util.h"

#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int err_set(Err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* messages quote names from the input (JSON keys, tensor names, paths): a control byte
     * there must not break the one-line error or reach the terminal */
    for (char *c = err->msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    err->code = -1;
    return -1;
}

int err_prefix(Err *err, const char *fmt, ...) {
    if (!err) return -1;
    char msg[sizeof err->msg], pre[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    return err_set(err, "%s: %s", pre, msg);
}

void err_clear(Err *err) {
    if (!err) return;
    err->code = 0;
    err->msg[0] = 0;
}

void format_bytes(double bytes, char *buf, size_t n) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    size_t u = 0;
    while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) bytes /= 1024, u++;
    if (u == 0) snprintf(buf, n, "%.0f B", bytes);
    else snprintf(buf, n, "%.1f %s", bytes, units[u]);
}

/* __FILE__ may be an absolute path: keep the repo-relative tail (folder/file.c:line) */
static const char *short_where(const char *where) {
    const char *last = NULL, *prev = NULL;
    for (const char *p = where; *p; p++)
        if (*p == '/') prev = last, last = p;
    return prev ? prev + 1 : where;
}

static void oom(double bytes, const char *where) {
    char h[32];
    format_bytes(bytes, h, sizeof h);
    if (bytes >= (double)SIZE_MAX) fprintf(stderr, "tern: out of memory: cannot allocate an array whose size overflows at %s\n", short_where(where));
    else fprintf(stderr, "tern: out of memory: cannot allocate %s (%.0f bytes) at %s\n", h, bytes, short_where(where));
    exit(1);
}

void *xmalloc_at(size_t bytes, const char *where) {
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n < bytes) oom((double)SIZE_MAX, where);
    if (n == 0) n = 64;
    if (posix_memalign(&p, 64, n) != 0 || !p) oom((double)bytes, where);
    return p;
}

void *xcalloc_at(size_t n, size_t size, const char *where) {
    if (size && n > SIZE_MAX / size) oom((double)SIZE_MAX, where);
    void *p = xmalloc_at(n * size, where);
    memset(p, 0, n * size);
    return p;
}

void *xrealloc_at(void *p, size_t bytes, const char *where) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) oom((double)bytes, where);
    return q;
}

char *xstrdup_at(const char *s, const char *where) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d) oom((double)n, where);
    memcpy(d, s, n);
    return d;
}

void xfree(void *p) { free(p); }

/* below this, a mapping's page rounding costs more than the laziness saves */
#define LAZY_MIN_BYTES ((size_t)1 << 20)

void *xcalloc_lazy_at(size_t n, size_t size, const char *where) {
    if (size && n > SIZE_MAX / size) oom((double)SIZE_MAX, where);
    size_t bytes = n * size;
    if (bytes < LAZY_MIN_BYTES) return xcalloc_at(n, size, where);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) oom((double)bytes, where);
    return p;
}

void xfree_lazy(void *p, size_t n, size_t size) {
    if (!p) return;
    if (n * size < LAZY_MIN_BYTES) xfree(p);
    else munmap(p, n * size);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t status_field_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0) {
            kb = (size_t)strtoull(line + klen, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

size_t peak_rss_bytes(void) { return status_field_kb("VmHWM:"); }
size_t current_rss_bytes(void) { return status_field_kb("VmRSS:"); }

void tern_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}

int tern_get_threads(void) { return omp_get_max_threads(); }

int make_dirs(const char *path, Err *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return err_set(err, "%s: bad folder path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++)
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return err_set(err, "%s: cannot create folder (%s)", buf, strerror(errno));
            buf[i] = c;
        }
    return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, Err *err) {
    size_t n = strlen(path) + 16;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        xfree(tmp);
        return err_set(err, "%s: cannot create a temporary file beside it (%s)", path, strerror(e));
    }
    fchmod(fd, 0644);
    const char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            break;
        }
        done += (size_t)w;
    }
    int ok = done == len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        xfree(tmp);
        return err_set(err, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    xfree(tmp);
    return 0;
}

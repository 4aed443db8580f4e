#include "kernels/util.h"

#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void err_clear(Err *err) {
    if (!err) return;
    err->code = 0;
    err->msg[0] = 0;
}

static void oom(size_t bytes) {
    fprintf(stderr, "tern: out of memory allocating %zu bytes\n", bytes);
    abort();
}

void *xmalloc(size_t bytes) {
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    if (posix_memalign(&p, 64, n) != 0 || !p) oom(bytes);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) oom(SIZE_MAX);
    void *p = xmalloc(n * size);
    memset(p, 0, n * size);
    return p;
}

void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) oom(bytes);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d) oom(n);
    memcpy(d, s, n);
    return d;
}

void xfree(void *p) { free(p); }

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
        return err_set(err, "%s: cannot write (%s)", path, strerror(e ? e : EIO));
    }
    xfree(tmp);
    return 0;
}

#include "data/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/h5io.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int open_bin(Shard *s, const char *path, Err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(err, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, "%s: cannot stat (%s)", path, strerror(e));
    }
    size_t size = (size_t)st.st_size;
    if (size < SHARD_HEADER_BYTES) {
        close(fd);
        return err_set(err, "%s: %zu bytes is shorter than the 1024-byte shard header (truncated or not a shard)", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return err_set(err, "%s: mmap failed (%s)", path, strerror(errno));
    const unsigned char *b = map;
    int32_t hdr[3];
    for (int i = 0; i < 3; i++)
        hdr[i] = (int32_t)((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                           (uint32_t)b[4 * i + 3] << 24);
    int rc = 0;
    if (hdr[0] != SHARD_MAGIC)
        rc = err_set(err, "%s: wrong magic %d (expected %d): not a token shard", path, hdr[0], SHARD_MAGIC);
    else if (hdr[1] != SHARD_VERSION)
        rc = err_set(err, "%s: unsupported shard version %d (expected %d)", path, hdr[1], SHARD_VERSION);
    else if (hdr[2] < 0 || (size_t)SHARD_HEADER_BYTES + 2 * (size_t)hdr[2] != size)
        rc = err_set(err, "%s: header says %d tokens (%zu bytes) but the file has %zu bytes (truncated or corrupt)",
                     path, hdr[2], (size_t)SHARD_HEADER_BYTES + 2 * (size_t)(hdr[2] < 0 ? 0 : hdr[2]), size);
    if (rc) {
        munmap(map, size);
        return rc;
    }
    s->map = map;
    s->map_len = size;
    s->ntokens = (size_t)hdr[2];
    s->t16 = (const uint16_t *)(b + SHARD_HEADER_BYTES);
    madvise(map, size, MADV_SEQUENTIAL);
    return 0;
}

static int open_h5(Shard *s, const char *path, Err *err) {
    hid_t f = h5_open_read(path, err);
    if (f < 0) return -1;
    size_t shape[4];
    int nd = h5_shape(f, "tokens", shape, err);
    if (nd != 1) {
        h5_close(f);
        return nd < 0 ? err_set(err, "%s: no /tokens dataset", path) : err_set(err, "%s: /tokens must be 1-D", path);
    }
    Err e2;
    if (h5_stored_elems(f, "tokens", sizeof(uint32_t), &shape[0], &e2)) {
        h5_close(f);
        return err_set(err, "%s: %s", path, e2.msg);
    }
    s->owned = xmalloc((shape[0] ? shape[0] : 1) * sizeof(uint32_t));
    hid_t ds = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hid_t t = H5Dget_type(ds);
    int rc = 0;
    if (H5Tget_class(t) != H5T_INTEGER || H5Tget_sign(t) != H5T_SGN_NONE || H5Tget_size(t) > 4)
        rc = err_set(err, "%s: /tokens must be uint16 or uint32", path);
    else if (H5Dread(ds, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->owned) < 0)
        rc = err_set(err, "%s: cannot read /tokens (corrupt?)", path);
    H5Tclose(t);
    H5Dclose(ds);
    h5_close(f);
    if (rc) {
        xfree(s->owned);
        s->owned = NULL;
        return rc;
    }
    s->t32 = s->owned;
    s->ntokens = shape[0];
    return 0;
}

int shard_validate(Shard *s, size_t vocab, Err *err) {
    uint32_t mx = 0;
    size_t n = s->ntokens;
    if (s->t16) {
        const uint16_t *t = s->t16;
#pragma omp simd reduction(max : mx)
        for (size_t i = 0; i < n; i++) mx = t[i] > mx ? t[i] : mx;
    } else {
        const uint32_t *t = s->t32;
#pragma omp simd reduction(max : mx)
        for (size_t i = 0; i < n; i++) mx = t[i] > mx ? t[i] : mx;
    }
    s->max_token = mx;
    if (vocab && n && mx >= vocab) {
        size_t at = 0;
        while (shard_token(s, at) < vocab) at++;
        return err_set(err, "%s: token %u at position %zu is out of range for vocab %zu", s->path,
                       shard_token(s, at), at, vocab);
    }
    return 0;
}

int shard_open(Shard *s, const char *path, size_t vocab, Err *err) {
    memset(s, 0, sizeof *s);
    struct stat st;
    if (stat(path, &st) != 0) return err_set(err, "%s: cannot open (%s)", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return err_set(err, "%s: not a regular file (a folder?): not a token shard", path);
    int rc = (ends_with(path, ".h5") || ends_with(path, ".hdf5")) ? open_h5(s, path, err) : open_bin(s, path, err);
    if (rc) return rc;
    s->path = xstrdup(path);
    if (shard_validate(s, vocab, err)) {
        shard_close(s);
        return -1;
    }
    return 0;
}

void shard_close(Shard *s) {
    if (s->map) munmap(s->map, s->map_len);
    xfree(s->owned);
    free(s->path);
    memset(s, 0, sizeof *s);
}

void shard_copy(const Shard *s, size_t start, size_t n, int32_t *out) {
    if (s->t16)
        for (size_t i = 0; i < n; i++) out[i] = s->t16[start + i];
    else
        for (size_t i = 0; i < n; i++) out[i] = (int32_t)s->t32[start + i];
}

static char *temp_path(const char *path) {
    size_t n = strlen(path) + 32;
    char *t = xmalloc(n);
    snprintf(t, n, "%s.tmp.%ld", path, (long)getpid());
    return t;
}

int shard_write_bin(const char *path, const uint32_t *tokens, size_t n, Err *err) {
    if (n > INT32_MAX) return err_set(err, "%s: %zu tokens exceed the shard format's int32 count", path, n);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] > 65535) return err_set(err, "%s: token %u does not fit uint16 (use an .h5 shard)", path, tokens[i]);
    char *tmp = temp_path(path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = err_set(err, "%s: cannot create (%s)", tmp, strerror(errno));
        xfree(tmp);
        return rc;
    }
    unsigned char hdr[SHARD_HEADER_BYTES] = {0};
    uint32_t h[3] = {SHARD_MAGIC, SHARD_VERSION, (uint32_t)n};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) hdr[4 * i + k] = (unsigned char)(h[i] >> (8 * k));
    int ok = fwrite(hdr, 1, sizeof hdr, f) == sizeof hdr;
    unsigned char buf[1 << 16];
    for (size_t i = 0; ok && i < n;) {
        size_t m = 0;
        while (i < n && m + 2 <= sizeof buf) {
            buf[m++] = (unsigned char)(tokens[i] & 0xff);
            buf[m++] = (unsigned char)(tokens[i] >> 8);
            i++;
        }
        ok = fwrite(buf, 1, m, f) == m;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = ok ? 0 : errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) unlink(tmp);
    xfree(tmp);
    return ok ? 0 : err_set(err, "%s: write failed: %s", path, strerror(e ? e : EIO));
}

int shard_write_h5(const char *path, const uint32_t *tokens, size_t n, Err *err) {
    char *tmp = temp_path(path);
    hid_t f = h5_create(tmp, err);
    if (f < 0) {
        xfree(tmp);
        return -1;
    }
    int rc = h5_write_u32_chunked(f, "tokens", n, tokens, (size_t)1 << 20, 1, err);
    if (rc) h5_close(f);
    else rc = h5_close_written(f, err);
    if (rc) err_prefix(err, "%s", path);
    else if (rename(tmp, path) != 0) rc = err_set(err, "%s: write failed: rename: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    xfree(tmp);
    return rc;
}

int path_glob(const char *pattern, char ***paths, size_t *n, Err *err) {
    glob_t g;
    memset(&g, 0, sizeof g);
    int r = glob(pattern, 0, NULL, &g);
    if (r == GLOB_NOMATCH || (r == 0 && g.gl_pathc == 0)) {
        globfree(&g);
        return err_set(err, "%s: no files match", pattern);
    }
    if (r != 0) {
        globfree(&g);
        return err_set(err, "%s: glob failed", pattern);
    }
    *n = g.gl_pathc;
    *paths = xmalloc(g.gl_pathc * sizeof(char *));
    for (size_t i = 0; i < g.gl_pathc; i++) (*paths)[i] = xstrdup(g.gl_pathv[i]); /* glob sorts */
    globfree(&g);
    return 0;
}

void path_list_free(char **paths, size_t n) {
    for (size_t i = 0; i < n; i++) free(paths[i]);
    xfree(paths);
}

int path_glob_list(const char *pattern, char ***paths, size_t *n, Err *err) {
    *paths = NULL;
    *n = 0;
    char *copy = xstrdup(pattern);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char **p = NULL;
        size_t m = 0;
        if (path_glob(tok, &p, &m, err)) {
            free(copy);
            path_list_free(*paths, *n);
            *paths = NULL;
            return -1;
        }
        *paths = xrealloc(*paths, (*n + m) * sizeof(char *));
        memcpy(*paths + *n, p, m * sizeof(char *));
        *n += m;
        xfree(p);
    }
    free(copy);
    if (*n == 0) return err_set(err, "%s: no files", pattern);
    return 0;
}

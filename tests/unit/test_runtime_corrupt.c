/* Damaged artifacts, built with AddressSanitizer + UBSan (tests/runtime.cmake compiles the
 * runtime sources into this test with -fsanitize): every truncation of a small artifact, a bit
 * flip at every byte, then the same inside the decompressed container with the CRC repaired
 * (so the damage reaches the header, table, hyper-parameter and payload checks), must give a
 * clean error or — where the damage is harmless, e.g. in the config text — a model that runs.
 * Never a crash, a sanitizer report or an unbounded allocation. Also: a wrong version and a
 * foreign file give their specific one-line messages. argv[1]: the folder with the artifacts
 * test_runtime_parity writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "check.h"
#include "runtime/rt_internal.h"

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* A loaded model must also run: a few tokens through a short session. */
static int exercise(TrtModel *m) {
    TrtSessionOptions so = {1, 1, 8};
    TrtSession *s = NULL;
    char err[512];
    int rc = trt_session_new(m, &so, &s, err, sizeof err);
    if (!rc) {
        int32_t ids[3] = {0, 1 % (int32_t)m->info.vocab_size, 2 % (int32_t)m->info.vocab_size};
        rc = trt_session_observe(s, ids, 3, NULL, err, sizeof err);
        trt_session_free(s);
    }
    return rc;
}

static size_t g_loads, g_ok, g_bad_msgs;

static void try_file(const uint8_t *d, size_t n) {
    TrtModel *m = NULL;
    char err[512] = "";
    TrtLoadOptions lo = {NULL, (size_t)64 << 20, NULL};
    g_loads++;
    if (trt_model_load_memory(&m, d, n, "x.tern", &lo, err, sizeof err) == 0) {
        g_ok++;
        exercise(m);
        trt_model_free(m);
    } else if (!err[0] || strchr(err, '\n') || strncmp(err, "x.tern: ", 8)) {
        g_bad_msgs++;
        printf("    bad message: \"%s\"\n", err);
    }
}

static void try_container(const uint8_t *c, size_t n) {
    TrtModel *m = NULL;
    RtErr e = {{0}};
    g_loads++;
    if (rt_load_container(&m, c, n, "x.tern", RT_ISA_AVX512VNNI, 1, &e) == 0) {
        g_ok++;
        exercise(m);
        trt_model_free(m);
    } else if (!e.msg[0] || strchr(e.msg, '\n')) {
        g_bad_msgs++;
    }
}

static void fix_crc(uint8_t *c, size_t n) {
    if (n >= 4) tern_wr_u32(c + n - 4, tern_crc32(0, c, n - 4));
}

static void file_level(const uint8_t *d, size_t n) {
    g_loads = g_ok = g_bad_msgs = 0;
    for (size_t len = 0; len < n; len += (len < 4096 ? 1 : 61)) try_file(d, len);
    size_t trunc_ok = g_ok;
    uint8_t *b = malloc(n + 16);
    for (size_t i = 0; i < n; i++) {
        memcpy(b, d, n);
        b[i] ^= (uint8_t)(1u << (i % 8));
        try_file(b, n);
    }
    memcpy(b, d, n);
    memcpy(b + n, "garbage!", 8);
    try_file(b, n + 8); /* trailing bytes */
    CHECK(trunc_ok == 0, "a truncated file loaded");
    CHECK(g_bad_msgs == 0, "%zu errors without a clean one-line message", g_bad_msgs);
    printf("  file level: %zu truncations and bit flips loaded safely (%zu accepted, all others one-line errors)\n", g_loads, g_ok);
    free(b);
}

static void container_level(const uint8_t *d, size_t n, int npat, size_t stride) {
    size_t clen = (size_t)ZSTD_getFrameContentSize(d + TERN_PREAMBLE_SIZE, n - TERN_PREAMBLE_SIZE);
    uint8_t *c = malloc(clen), *b = malloc(clen + 64);
    CHECK(ZSTD_decompress(c, clen, d + TERN_PREAMBLE_SIZE, n - TERN_PREAMBLE_SIZE) == clen, "decompress fixture");
    TernHeader h;
    tern_header_decode(c, &h);
    g_loads = g_ok = g_bad_msgs = 0;
    const uint8_t pats[4] = {0x01, 0x80, 0xff, 0x00};
    /* everything before the payload: every byte, four kinds of damage, CRC repaired */
    for (size_t i = 0; i < h.payload_off && i < clen; i++)
        for (int p = 0; p < npat; p++) {
            memcpy(b, c, clen);
            if (p < 2) b[i] ^= pats[p];
            else b[i] = pats[p];
            fix_crc(b, clen);
            try_container(b, clen);
        }
    size_t head_loads = g_loads, head_ok = g_ok;
    /* the payload: codes and scales */
    for (size_t i = h.payload_off; i + 4 < clen; i += stride) {
        memcpy(b, c, clen);
        b[i] ^= (uint8_t)(0x11u << (i % 4));
        fix_crc(b, clen);
        try_container(b, clen);
    }
    /* truncated containers (the header's size no longer matches) and a CRC left stale */
    for (size_t len = 0; len < clen; len += 13) {
        memcpy(b, c, len);
        fix_crc(b, len);
        try_container(b, len);
    }
    memcpy(b, c, clen);
    b[h.payload_off] ^= 1;
    RtErr e = {{0}};
    TrtModel *m = NULL;
    CHECK(rt_load_container(&m, b, clen, "x", RT_ISA_AVX512VNNI, 1, &e) != 0 && strstr(e.msg, "CRC"), "stale CRC: %s", e.msg);
    CHECK(g_bad_msgs == 0, "%zu container errors without a clean message", g_bad_msgs);
    printf("  container level: %zu damaged containers (%zu header/table/config edits, %zu of them still valid and run)\n", g_loads,
           head_loads, head_ok);
    free(c);
    free(b);
}

static void messages(const uint8_t *d, size_t n) {
    uint8_t *b = malloc(n);
    char err[512];
    TrtModel *m = NULL;
    memcpy(b, d, n);
    tern_wr_u32(b + 16, TERN_FORMAT_VERSION + 1); /* preamble version: a newer format */
    char want[2][64];
    snprintf(want[0], sizeof want[0], "version %u is not supported", TERN_FORMAT_VERSION + 1);
    snprintf(want[1], sizeof want[1], "reads version %u", TERN_FORMAT_VERSION);
    CHECK(trt_model_load_memory(&m, b, n, "v3.tern", NULL, err, sizeof err) != 0 && strstr(err, want[0]) && strstr(err, want[1]),
          "wrong version: %s", err);
    printf("  wrong version: %s\n", err);
    tern_wr_u32(b + 16, 1); /* version 1: per-architecture structs, before the block registry */
    CHECK(trt_model_load_memory(&m, b, n, "v1.tern", NULL, err, sizeof err) != 0 && strstr(err, "re-export it with this tern"),
          "version 1: %s", err);
    printf("  version 1:     %s\n", err);
    CHECK(trt_model_load_memory(&m, "hello world, not a model at all!", 32, "t.txt", NULL, err, sizeof err) != 0 &&
              strstr(err, "not a tern artifact"),
          "foreign file: %s", err);
    printf("  foreign file:  %s\n", err);
    CHECK(trt_model_load_memory(&m, d, n / 2, "half.tern", NULL, err, sizeof err) != 0 && strstr(err, "half.tern"), "truncated: %s", err);
    printf("  truncated:     %s\n", err);
    memcpy(b, d, n);
    b[n - 100] ^= 0x40;
    CHECK(trt_model_load_memory(&m, b, n, "flip.tern", NULL, err, sizeof err) != 0 && strstr(err, "corrupt"), "bit flip: %s", err);
    printf("  bit flip:      %s\n", err);
    CHECK(trt_model_load(&m, "/nonexistent/model.tern", NULL, err, sizeof err) != 0 && strstr(err, "cannot open"), "missing: %s", err);
    free(b);
}

int main(int argc, char **argv) {
    printf("test_runtime_corrupt\n");
    if (argc < 2) {
        printf("usage: test_runtime_corrupt FIXTURE_DIR\n");
        return 2;
    }
    const char *names[] = {"tiny.tern", "ternary.tern"};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[k]);
        size_t n = 0;
        uint8_t *d = read_all(path, &n);
        CHECK(d != NULL, "fixture %s (written by test_runtime_parity)", path);
        if (!d) continue;
        printf(" %s (%zu bytes)\n", names[k], n);
        TrtModel *m = NULL;
        char err[512];
        CHECK(trt_model_load_memory(&m, d, n, names[k], NULL, err, sizeof err) == 0, "intact fixture loads: %s", err);
        if (m) {
            CHECK(exercise(m) == 0, "intact fixture runs");
            trt_model_free(m);
        }
        if (k == 0) file_level(d, n);
        if (k == 0) container_level(d, n, 4, 7);
        else container_level(d, n, 2, 29);
        if (k == 0) messages(d, n);
        free(d);
    }
    return test_summary("test_runtime_corrupt");
}

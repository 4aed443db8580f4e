/* Shards, loader and validation windows: exact round trips, the loader's resume and rank
 * slicing, and one-line errors for bad shards. Needs nothing outside the repo (writes its own
 * shards to a temp folder). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/teacher.h"
#include "kernels/util.h"

static char dir[256];

static void path_of(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static void write_raw(const char *name, const void *data, size_t n) {
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static int expect_error(const char *name, size_t vocab, const char *needle) {
    char p[512];
    path_of(p, sizeof p, name);
    Shard s;
    Err err = {0};
    int rc = shard_open(&s, p, vocab, &err);
    int ok = rc != 0 && strstr(err.msg, needle) && strstr(err.msg, name) && !strchr(err.msg, '\n');
    printf("  %-22s -> %s\n", name, rc ? err.msg : "(accepted!)");
    CHECK(ok, "%s: expected an error mentioning \"%s\"", name, needle);
    if (!rc) shard_close(&s);
    return ok;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/tern_test_data_%ld", (long)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd)) return 1;

    printf("shard round trip\n");
    uint32_t toks[5000];
    for (int i = 0; i < 5000; i++) toks[i] = (i % 97 == 0) ? 1 : (uint32_t)((i * 7919) % 1000);
    char p[512], p2[512];
    Err err = {0};
    path_of(p, sizeof p, "a_000000.bin");
    CHECK(shard_write_bin(p, toks, 3001, &err) == 0, "%s", err.msg);
    path_of(p2, sizeof p2, "a_000001.bin");
    CHECK(shard_write_bin(p2, toks + 3001, 1999, &err) == 0, "%s", err.msg);
    Shard s;
    CHECK(shard_open(&s, p, 1000, &err) == 0, "%s", err.msg);
    int same = s.ntokens == 3001;
    for (size_t i = 0; same && i < 3001; i++) same = shard_token(&s, i) == toks[i];
    printf("  .bin: %zu tokens back, identical: %s\n", s.ntokens, same ? "yes" : "NO");
    CHECK(same, "bin round trip");
    shard_close(&s);
    path_of(p, sizeof p, "big.h5");
    uint32_t big[100];
    for (int i = 0; i < 100; i++) big[i] = 70000u + (uint32_t)i;
    CHECK(shard_write_h5(p, big, 100, &err) == 0, "%s", err.msg);
    CHECK(shard_open(&s, p, 80000, &err) == 0, "%s", err.msg);
    same = s.ntokens == 100;
    for (size_t i = 0; same && i < 100; i++) same = shard_token(&s, i) == big[i];
    printf("  .h5 (uint32, ids > 65535): identical: %s\n", same ? "yes" : "NO");
    CHECK(same, "h5 round trip");
    shard_close(&s);
    CHECK(shard_write_bin(p, big, 10, &err) != 0, "ids > 65535 accepted for .bin");

    printf("bad shards give one line naming the file\n");
    unsigned char hdr[1024 + 20];
    memset(hdr, 0, sizeof hdr);
    int32_t h[3] = {20240520, 1, 10};
    memcpy(hdr, h, sizeof h);
    write_raw("good.bin", hdr, 1024 + 20);
    write_raw("truncated.bin", hdr, 1024 + 13);
    write_raw("short_header.bin", hdr, 100);
    write_raw("empty.bin", hdr, 0);
    int32_t hm[3] = {12345, 1, 10};
    memcpy(hdr, hm, sizeof hm);
    write_raw("wrong_magic.bin", hdr, 1024 + 20);
    int32_t hv[3] = {20240520, 2, 10};
    memcpy(hdr, hv, sizeof hv);
    write_raw("wrong_version.bin", hdr, 1024 + 20);
    memcpy(hdr, h, sizeof h);
    uint16_t bad_tok = 1500;
    memcpy(hdr + 1024 + 6, &bad_tok, 2);
    write_raw("token_range.bin", hdr, 1024 + 20);
    write_raw("not_hdf5.h5", "hello, world", 12);
    expect_error("truncated.bin", 1024, "truncated");
    expect_error("short_header.bin", 1024, "header");
    expect_error("empty.bin", 1024, "header");
    expect_error("wrong_magic.bin", 1024, "magic");
    expect_error("wrong_version.bin", 1024, "version");
    expect_error("token_range.bin", 1024, "out of range");
    expect_error("not_hdf5.h5", 1024, "HDF5");
    expect_error("missing.bin", 1024, "cannot open");
    path_of(p, sizeof p, "good.bin");
    CHECK(shard_open(&s, p, 1024, &err) == 0, "good shard rejected: %s", err.msg);
    shard_close(&s);

    printf("permutation is a bijection\n");
    uint64_t ns[] = {1, 2, 3, 7, 64, 1000, 4097};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        uint64_t n = ns[k];
        unsigned char *seen = calloc(n, 1);
        int ok = 1;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t j = permute_index(i, n, 99);
            if (j >= n || seen[j]) ok = 0;
            else seen[j] = 1;
        }
        CHECK(ok, "permute_index(n=%llu) not a bijection", (unsigned long long)n);
        free(seen);
    }

    printf("loader: order, resume, epochs, rank slices\n");
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s/a_*.bin", dir);
    size_t T = 16, B = 3;
    Loader L;
    CHECK(loader_open(&L, pattern, T, 5, 0, 1, 1000, &err) == 0, "%s", err.msg);
    printf("  %zu shards, %llu windows of %zu+1 tokens\n", L.nshards, (unsigned long long)L.nwindows, T);
    CHECK(L.nwindows == (3001 - 1) / 16 + (1999 - 1) / 16, "window count %llu", (unsigned long long)L.nwindows);
    int32_t x[3 * 16], y[3 * 16], x2[3 * 16], y2[3 * 16];
    /* every window's x/y are consecutive shard tokens, y shifted by one */
    loader_next(&L, B, x, y);
    int shift_ok = 1;
    for (size_t b = 0; b < B; b++)
        for (size_t i = 0; i + 1 < T; i++) shift_ok &= x[b * T + i + 1] == y[b * T + i];
    CHECK(shift_ok, "targets are not inputs shifted by one");
    for (int i = 0; i < 20; i++) loader_next(&L, B, x, y);
    LoaderCursor saved = L.cur;
    int32_t seqx[30][48];
    for (int i = 0; i < 30; i++) loader_next(&L, B, seqx[i], y);
    Loader L2;
    CHECK(loader_open(&L2, pattern, T, 5, 0, 1, 1000, &err) == 0, "%s", err.msg);
    L2.cur = saved;
    int resume_ok = 1;
    for (int i = 0; i < 30; i++) {
        loader_next(&L2, B, x2, y2);
        resume_ok &= memcmp(x2, seqx[i], sizeof x2) == 0;
    }
    printf("  resume from a saved cursor (epoch %llu, pos %llu) reproduces 30 batches: %s\n",
           (unsigned long long)saved.epoch, (unsigned long long)saved.pos, resume_ok ? "yes" : "NO");
    CHECK(resume_ok, "resume differs");
    for (int i = 0; i < 100; i++) loader_next(&L, B, x, y);
    CHECK(L.cur.epoch >= 1, "epochs did not advance (%llu)", (unsigned long long)L.cur.epoch);
    /* epochs are reshuffled */
    size_t s0, o0, s1, o1;
    int differs = 0;
    for (uint64_t k = 0; k < 20; k++) {
        loader_window_at(&L, 0, k, &s0, &o0);
        loader_window_at(&L, 1, k, &s1, &o1);
        differs |= s0 != s1 || o0 != o1;
    }
    CHECK(differs, "epoch 1 has the same order as epoch 0");
    loader_close(&L2);
    loader_close(&L);

    /* rank slices: world 3, B 2; over one epoch each window appears exactly once */
    int world = 3;
    size_t Bw = 2;
    Loader R[3];
    for (int r = 0; r < world; r++) CHECK(loader_open(&R[r], pattern, T, 11, r, world, 1000, &err) == 0, "%s", err.msg);
    uint64_t nw = R[0].nwindows, steps = nw / (Bw * world);
    unsigned char *seen = calloc(nw, 1);
    int disjoint = 1;
    for (uint64_t st = 0; st < steps; st++)
        for (int r = 0; r < world; r++) {
            loader_next(&R[r], Bw, x, y);
            for (size_t b = 0; b < Bw; b++) {
                /* identify the window by its position in the epoch order */
                uint64_t k = st * Bw * world + (uint64_t)r * Bw + b;
                size_t sh, off;
                loader_window_at(&R[r], 0, k, &sh, &off);
                int32_t w[17];
                shard_copy(&R[r].shards[sh], off, T, w);
                disjoint &= memcmp(w, x + b * T, T * sizeof(int32_t)) == 0;
                uint64_t id = R[r].first_window[sh] + off / T;
                if (seen[id]) disjoint = 0;
                seen[id] = 1;
            }
        }
    size_t covered = 0;
    for (uint64_t i = 0; i < nw; i++) covered += seen[i];
    printf("  world %d x B %zu: %zu of %llu windows read in %llu steps, each once: %s\n", world, Bw, covered,
           (unsigned long long)nw, (unsigned long long)steps, disjoint ? "yes" : "NO");
    CHECK(disjoint, "rank slices overlap or disagree with the order");
    CHECK(covered == steps * Bw * world, "coverage");
    free(seen);
    for (int r = 0; r < world; r++) loader_close(&R[r]);

    printf("validation windows and documents\n");
    TokenStream ts;
    CHECK(stream_open(&ts, pattern, 1000, &err) == 0, "%s", err.msg);
    CHECK(ts.ntokens == 5000, "stream tokens %zu", ts.ntokens);
    size_t nv = stream_val_windows(&ts, 64);
    CHECK(nv == 4999 / 64, "val windows %zu", nv);
    int32_t vx[64], vy[64];
    stream_val_window(&ts, 64, 46, vx, vy); /* crosses the shard boundary at 3001 */
    int vok = 1;
    for (int i = 0; i < 64; i++) vok &= (uint32_t)vx[i] == toks[46 * 64 + i] && (uint32_t)vy[i] == toks[46 * 64 + i + 1];
    CHECK(vok, "validation window across shards");
    size_t *starts, nd;
    stream_documents(&ts, 1, &starts, &nd);
    size_t expect = 0;
    for (int i = 0; i < 5000; i++) expect += toks[i] == 1;
    printf("  %zu val windows of 64; %zu documents (BOS positions)\n", nv, nd);
    CHECK(nd == expect && starts[0] == 0, "documents");
    xfree(starts);
    stream_close(&ts);

    printf("teacher-logit files\n");
    {
        size_t V = 50, K = 5, N = 300;
        float *logits = malloc(N * V * sizeof(float));
        for (size_t i = 0; i < N * V; i++) logits[i] = (float)((i * 2654435761u) % 1000) / 100.0f - 5.0f;
        int32_t *idx = malloc(N * K * sizeof(int32_t));
        float *val = malloc(N * K * sizeof(float)), *lse = malloc(N * sizeof(float));
        for (size_t r = 0; r < N; r++) teacher_topk_row(logits + r * V, V, K, idx + r * K, val + r * K, lse + r);
        int sorted = 1;
        for (size_t r = 0; r < N; r++)
            for (size_t j = 1; j < K; j++) sorted &= val[r * K + j - 1] >= val[r * K + j];
        CHECK(sorted, "top-k not sorted");
        for (int fp16 = 0; fp16 < 2; fp16++) {
            path_of(p, sizeof p, fp16 ? "t16.h5" : "t32.h5");
            TeacherMeta meta = {.k = K, .vocab_size = V, .seq_len = 64, .temperature = 1.0, .offset = 10, .fp16 = fp16};
            snprintf(meta.shard, sizeof meta.shard, "x.bin");
            TeacherWriter w;
            CHECK(teacher_writer_open(&w, p, &meta, &err) == 0, "%s", err.msg);
            CHECK(teacher_writer_append(&w, idx, val, lse, 200, &err) == 0, "%s", err.msg);
            CHECK(teacher_writer_append(&w, idx + 200 * K, val + 200 * K, lse + 200, 100, &err) == 0, "%s", err.msg);
            CHECK(teacher_writer_close(&w, &err) == 0, "%s", err.msg);
            TeacherReader r;
            CHECK(teacher_reader_open(&r, p, V, &err) == 0, "%s", err.msg);
            int32_t i2[64 * 5];
            float v2[64 * 5], l2[64];
            CHECK(teacher_read_window(&r, 10 + 100, 64, i2, v2, l2, &err) == 0, "%s", err.msg);
            double verr = 0;
            int iok = memcmp(i2, idx + 100 * K, sizeof i2) == 0;
            for (size_t j = 0; j < 64 * K; j++) verr = fmax(verr, fabs(v2[j] - val[100 * K + j]));
            printf("  %s: 300 rows, window at shard position 110: ids identical %s, max value error %.2e, lse %s\n",
                   fp16 ? "f16" : "f32", iok ? "yes" : "NO", verr, memcmp(l2, lse + 100, sizeof l2) == 0 ? "identical" : "DIFFERS");
            CHECK(iok && verr <= (fp16 ? 5e-3 : 0) && memcmp(l2, lse + 100, sizeof l2) == 0, "teacher round trip");
            CHECK(teacher_read(&r, 290, 20, i2, v2, l2, &err) != 0 && strstr(err.msg, "beyond"), "read past the end accepted");
            teacher_reader_close(&r);
            TeacherReader r2;
            err_clear(&err);
            CHECK(teacher_reader_open(&r2, p, 1024, &err) != 0 && strstr(err.msg, "vocabulary") && strstr(err.msg, p),
                  "vocab mismatch accepted");
            printf("  wrong vocab -> %s\n", err.msg);
        }
        /* truncated file */
        path_of(p, sizeof p, "t32.h5");
        FILE *f = fopen(p, "rb");
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)len);
        if (fread(buf, 1, (size_t)len, f) != (size_t)len) printf("  short read\n");
        fclose(f);
        write_raw("t_trunc.h5", buf, (size_t)len / 2);
        path_of(p, sizeof p, "t_trunc.h5");
        TeacherReader r3;
        err_clear(&err);
        CHECK(teacher_reader_open(&r3, p, V, &err) != 0 && strstr(err.msg, "t_trunc.h5"), "truncated teacher accepted");
        printf("  truncated -> %s\n", err.msg);
        free(buf);
        /* the writer leaves nothing behind when aborted */
        path_of(p, sizeof p, "aborted.h5");
        TeacherMeta meta = {.k = K, .vocab_size = V, .seq_len = 64, .temperature = 1.0};
        TeacherWriter w;
        teacher_writer_open(&w, p, &meta, &err);
        teacher_writer_abort(&w);
        CHECK(access(p, F_OK) != 0, "aborted teacher file left behind");
        free(logits);
        free(idx);
        free(val);
        free(lse);
    }

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("  (could not remove %s)\n", dir);
    return test_summary("test_data");
}

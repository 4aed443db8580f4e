/* rt_check.h — helpers the runtime round-trip tests share (test_runtime_trn.c, test_runtime_gdn.c):
 * the mean next-token cross-entropy of a logits window, the largest difference of two arrays,
 * feeding a session in pieces, finding a key's value in an encoded key/value section, an
 * artifact's container decompressed, and the trainer's logits "as exported". */
#ifndef TERN_TEST_RT_CHECK_H
#define TERN_TEST_RT_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <zstd.h>

#include "model/model.h"
#include "model/qat.h"
#include "runtime/rt_internal.h"

/* cross-entropy of the next token at every position, averaged: what evaluation measures */
static inline double mean_ce(const float *z, const int32_t *ids, size_t T, size_t V) {
    double s = 0;
    for (size_t i = 0; i + 1 < T; i++) {
        const float *l = z + i * V;
        double mx = -1e30, sum = 0;
        for (size_t v = 0; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (size_t v = 0; v < V; v++) sum += exp(l[v] - mx);
        s += mx + log(sum) - l[ids[i + 1]];
    }
    return s / (double)(T - 1);
}

static inline double max_diff(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = d; /* NaN counts as the worst */
    }
    return w;
}

/* Feeds ids in pieces of the given lengths (cycled); logits of every position into out. */
static inline int feed_pieces(TrtSession *s, const int32_t *ids, size_t T, const size_t *len, size_t nlen, float *out, size_t V) {
    char err[256];
    size_t i = 0, k = 0;
    while (i < T) {
        size_t n = len[k++ % nlen];
        if (n > T - i) n = T - i;
        if (trt_session_observe(s, ids + i, n, out + i * V, err, sizeof err)) {
            printf("    observe: %s\n", err);
            return -1;
        }
        i += n;
    }
    return 0;
}

/* Offset of key's value in an encoded key/value section (the bytes after its type), 0 if absent. */
static inline size_t kv_value_off(const uint8_t *p, size_t len, const char *key, uint32_t *type) {
    size_t o = 4, n = tern_rd_u32(p);
    for (size_t i = 0; i < n && o + 4 <= len; i++) {
        size_t kl = tern_rd_u32(p + o);
        int hit = kl == strlen(key) && !memcmp(p + o + 4, key, kl);
        o += 4 + kl;
        uint32_t t = tern_rd_u32(p + o);
        o += 4;
        if (hit) {
            *type = t;
            return o;
        }
        o += t == TERN_KV_STR ? 4 + tern_rd_u32(p + o) : 4;
    }
    return 0;
}

/* The container of an artifact (malloc'd, *clen bytes) and its decoded header. */
static inline uint8_t *rt_container_of(const uint8_t *art, size_t alen, size_t *clen, TernHeader *h) {
    *clen = (size_t)ZSTD_getFrameContentSize(art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE);
    uint8_t *c = malloc(*clen);
    if (ZSTD_decompress(c, *clen, art + TERN_PREAMBLE_SIZE, alen - TERN_PREAMBLE_SIZE) != *clen) printf("  FAIL decompress\n");
    memset(h, 0, sizeof *h);
    tern_header_decode(c, h);
    return c;
}

/* The trainer's logits of one window "as exported": fake quantization on, fp16-stored tensors
 * rounded (what `tern eval --quantized` computes); tp is initialised here. */
static inline Tensor *logits_as_exported(Model *m, Tape *tp, const int32_t *ids, size_t T) {
    m->qat_active = 1;
    quant_plan_round_passthrough(m);
    tape_init(tp, 0);
    tape_no_grad_begin(tp);
    Tensor *z = model_logits(m, tp, ids, 1, T);
    tape_no_grad_end(tp);
    return z;
}

#endif

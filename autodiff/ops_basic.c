/* Elementwise, broadcast, reshape, concat/slice, reductions, token shift, embedding. */
#include <string.h>

#include "autodiff/ops.h"
#include "kernels/norm.h"
#include "kernels/reduce.h"
#include "kernels/rng.h"
#include "kernels/util.h"

#define PAR_MIN 32768

static int bcast_ok(const Tensor *a, const Tensor *b) {
    if (b->numel == a->numel || b->numel == 1) return 1;
    if (b->numel == 0 || a->numel % b->numel) return 0;
    int nb = b->ndim;
    while (nb > 1 && b->shape[b->ndim - nb] == 1) nb--; /* ignore leading 1s */
    if (nb > a->ndim) return 0;
    for (int i = 0; i < nb; i++)
        if (b->shape[b->ndim - 1 - i] != a->shape[a->ndim - 1 - i]) return 0;
    return 1;
}

static void check_bcast(const char *op, const Tensor *a, const Tensor *b) {
    if (!bcast_ok(a, b)) {
        char sa[64], sb[64];
        tensor_shape_str(a, sa, sizeof sa);
        tensor_shape_str(b, sb, sizeof sb);
        tern_fatal("%s: cannot broadcast %s onto %s", op, sb, sa);
    }
}

static Tensor *like(Tape *tp, const Tensor *a) { return tensor_new(tp, a->ndim, a->shape); }

/* d(b) for a broadcast operand: sum over rows of src (or of src*mul when mul != NULL). */
static void bcast_grad(Tape *tp, float *db, size_t m, const float *src, const float *mul, size_t n) {
    size_t rows = n / m;
    if (m == n) {
        if (mul) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
            for (size_t i = 0; i < n; i++) db[i] += src[i] * mul[i];
        } else {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
            for (size_t i = 0; i < n; i++) db[i] += src[i];
        }
        return;
    }
    float *scratch = arena_alloc(&tp->arena, colsum_scratch_floats(m) * sizeof(float));
    colsum_product_accumulate(db, src, mul, rows, m, scratch);
}

/* ------------------------------------------------------------------ add / sub */
static void add_backward(Tape *tp, TapeEntry *e) {
    Tensor *a = e->in[0], *b = e->in[1], *out = e->out;
    const float *g = tensor_grad(tp, out);
    float sign = e->farg[0];
    if (a->requires_grad) {
        float *ga = tensor_grad(tp, a);
        size_t n = a->numel;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) ga[i] += g[i];
    }
    if (b->requires_grad) {
        float *gb = tensor_grad(tp, b);
        if (sign > 0) {
            bcast_grad(tp, gb, b->numel, g, NULL, out->numel);
        } else {
            /* -sum(g): accumulate into a temporary, then subtract */
            float *tmp = arena_calloc(&tp->arena, b->numel, sizeof(float));
            bcast_grad(tp, tmp, b->numel, g, NULL, out->numel);
            for (size_t i = 0; i < b->numel; i++) gb[i] -= tmp[i];
        }
    }
}

static Tensor *add_sub(Tape *tp, Tensor *a, Tensor *b, float sign, const char *name) {
    check_bcast(name, a, b);
    Tensor *out = like(tp, a);
    size_t n = a->numel, m = b->numel;
    const float *x = a->data, *y = b->data;
    float *o = out->data;
    if (m == n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) o[i] = x[i] + sign * y[i];
    } else {
        size_t rows = n / m;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t r = 0; r < rows; r++) {
#pragma omp simd
            for (size_t j = 0; j < m; j++) o[r * m + j] = x[r * m + j] + sign * y[j];
        }
    }
    Tensor *in[2] = {a, b};
    if (tape_wants_grad(tp, in, 2)) {
        TapeEntry *e = tape_record(tp, name, add_backward, out, in, 2);
        e->farg[0] = sign;
    }
    return out;
}

Tensor *op_add(Tape *tp, Tensor *a, Tensor *b) { return add_sub(tp, a, b, 1.0f, "add"); }
Tensor *op_sub(Tape *tp, Tensor *a, Tensor *b) { return add_sub(tp, a, b, -1.0f, "sub"); }

/* ------------------------------------------------------------------ mul */
static void mul_backward(Tape *tp, TapeEntry *e) {
    Tensor *a = e->in[0], *b = e->in[1], *out = e->out;
    const float *g = tensor_grad(tp, out);
    size_t n = a->numel, m = b->numel;
    if (a->requires_grad) {
        float *ga = tensor_grad(tp, a);
        const float *y = b->data;
        if (m == n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
            for (size_t i = 0; i < n; i++) ga[i] += g[i] * y[i];
        } else {
            size_t rows = n / m;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (size_t r = 0; r < rows; r++) {
#pragma omp simd
                for (size_t j = 0; j < m; j++) ga[r * m + j] += g[r * m + j] * y[j];
            }
        }
    }
    if (b->requires_grad) bcast_grad(tp, tensor_grad(tp, b), m, g, a->data, n);
}

Tensor *op_mul(Tape *tp, Tensor *a, Tensor *b) {
    check_bcast("mul", a, b);
    Tensor *out = like(tp, a);
    size_t n = a->numel, m = b->numel;
    const float *x = a->data, *y = b->data;
    float *o = out->data;
    if (m == n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) o[i] = x[i] * y[i];
    } else {
        size_t rows = n / m;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t r = 0; r < rows; r++) {
#pragma omp simd
            for (size_t j = 0; j < m; j++) o[r * m + j] = x[r * m + j] * y[j];
        }
    }
    Tensor *in[2] = {a, b};
    if (tape_wants_grad(tp, in, 2)) tape_record(tp, "mul", mul_backward, out, in, 2);
    return out;
}

/* ------------------------------------------------------------------ scale */
static void scale_backward(Tape *tp, TapeEntry *e) {
    Tensor *a = e->in[0];
    if (!a->requires_grad) return;
    const float *g = tensor_grad(tp, e->out);
    float *ga = tensor_grad(tp, a), s = e->farg[0];
    size_t n = a->numel;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) ga[i] += s * g[i];
}

Tensor *op_scale(Tape *tp, Tensor *a, float s) {
    Tensor *out = like(tp, a);
    size_t n = a->numel;
    const float *x = a->data;
    float *o = out->data;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) o[i] = s * x[i];
    if (tape_wants_grad(tp, &a, 1)) {
        TapeEntry *e = tape_record(tp, "scale", scale_backward, out, &a, 1);
        e->farg[0] = s;
    }
    return out;
}

/* ------------------------------------------------------------------ dropout
 * Inverted dropout (Srivastava et al. 2014): out = x * keep / (1 - p), keep ~ Bernoulli(1 - p)
 * drawn statelessly from (key, element index), so a step's mask is reproducible from its key and
 * the backward multiplies by the same factors (saved in the arena). */
static void dropout_backward(Tape *tp, TapeEntry *e) {
    Tensor *a = e->in[0];
    if (!a->requires_grad) return;
    const float *g = tensor_grad(tp, e->out), *f = e->ctx;
    float *ga = tensor_grad(tp, a);
    size_t n = a->numel;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) ga[i] += f[i] * g[i];
}

Tensor *op_dropout(Tape *tp, Tensor *a, float p, uint64_t key) {
    TERN_CHECK(p >= 0.0f && p < 1.0f, "op_dropout: p must be in [0, 1), got %g", (double)p);
    if (p == 0.0f) return a;
    Tensor *out = like(tp, a);
    size_t n = a->numel;
    float *f = arena_alloc(&tp->arena, (n ? n : 1) * sizeof(float));
    const float keep = 1.0f / (1.0f - p);
    /* keep when the top 24 bits of the hash, read as a fraction, are >= p */
    const uint64_t thresh = (uint64_t)((double)p * 16777216.0);
    const float *x = a->data;
    float *o = out->data;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        f[i] = (rng_hash(key, i) >> 40) >= thresh ? keep : 0.0f;
        o[i] = f[i] * x[i];
    }
    if (tape_wants_grad(tp, &a, 1)) {
        TapeEntry *e = tape_record(tp, "dropout", dropout_backward, out, &a, 1);
        e->ctx = f;
    }
    return out;
}

/* ------------------------------------------------------------------ add_mul: x + s*y */
static void add_mul_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *s = e->in[1], *y = e->in[2];
    const float *g = tensor_grad(tp, e->out);
    size_t n = x->numel, m = s->numel, rows = n / m;
    if (x->requires_grad) {
        float *gx = tensor_grad(tp, x);
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
        for (size_t i = 0; i < n; i++) gx[i] += g[i];
    }
    if (y->requires_grad) {
        float *gy = tensor_grad(tp, y);
        const float *sv = s->data;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t r = 0; r < rows; r++) {
#pragma omp simd
            for (size_t j = 0; j < m; j++) gy[r * m + j] += g[r * m + j] * sv[j];
        }
    }
    if (s->requires_grad) bcast_grad(tp, tensor_grad(tp, s), m, g, y->data, n);
}

Tensor *op_add_mul(Tape *tp, Tensor *x, Tensor *s, Tensor *y) {
    TERN_CHECK(x->numel == y->numel, "add_mul: x and y differ in size (%zu vs %zu)", x->numel, y->numel);
    check_bcast("add_mul", y, s);
    Tensor *out = like(tp, x);
    size_t n = x->numel, m = s->numel, rows = n / m;
    const float *xv = x->data, *sv = s->data, *yv = y->data;
    float *o = out->data;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
#pragma omp simd
        for (size_t j = 0; j < m; j++) o[r * m + j] = xv[r * m + j] + sv[j] * yv[r * m + j];
    }
    Tensor *in[3] = {x, s, y};
    if (tape_wants_grad(tp, in, 3)) tape_record(tp, "add_mul", add_mul_backward, out, in, 3);
    return out;
}

/* ------------------------------------------------------------------ mix: m0*x + m1*x0 */
static void mix_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *m0 = e->in[1], *x0 = e->in[2], *m1 = e->in[3];
    const float *g = tensor_grad(tp, e->out);
    size_t n = x->numel, m = m0->numel, rows = n / m;
    if (x->requires_grad || x0->requires_grad) {
        float *gx = x->requires_grad ? tensor_grad(tp, x) : NULL;
        float *gx0 = x0->requires_grad ? tensor_grad(tp, x0) : NULL;
        const float *a = m0->data, *b = m1->data;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t r = 0; r < rows; r++) {
            if (gx) {
#pragma omp simd
                for (size_t j = 0; j < m; j++) gx[r * m + j] += g[r * m + j] * a[j];
            }
            if (gx0) {
#pragma omp simd
                for (size_t j = 0; j < m; j++) gx0[r * m + j] += g[r * m + j] * b[j];
            }
        }
    }
    if (m0->requires_grad) bcast_grad(tp, tensor_grad(tp, m0), m, g, x->data, n);
    if (m1->requires_grad) bcast_grad(tp, tensor_grad(tp, m1), m, g, x0->data, n);
}

Tensor *op_mix(Tape *tp, Tensor *x, Tensor *m0, Tensor *x0, Tensor *m1) {
    TERN_CHECK(x->numel == x0->numel, "mix: x and x0 differ in size");
    TERN_CHECK(m0->numel == m1->numel, "mix: m0 and m1 differ in size");
    check_bcast("mix", x, m0);
    Tensor *out = like(tp, x);
    size_t n = x->numel, m = m0->numel, rows = n / m;
    const float *xv = x->data, *x0v = x0->data, *a = m0->data, *b = m1->data;
    float *o = out->data;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t r = 0; r < rows; r++) {
#pragma omp simd
        for (size_t j = 0; j < m; j++) o[r * m + j] = a[j] * xv[r * m + j] + b[j] * x0v[r * m + j];
    }
    Tensor *in[4] = {x, m0, x0, m1};
    if (tape_wants_grad(tp, in, 4)) tape_record(tp, "mix", mix_backward, out, in, 4);
    return out;
}

/* ------------------------------------------------------------------ sum / mean */
static void sum_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    float g = tensor_grad(tp, e->out)[0] * e->farg[0];
    float *gx = tensor_grad(tp, x);
    size_t n = x->numel;
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) gx[i] += g;
}

static Tensor *sum_mean(Tape *tp, Tensor *x, int mean) {
    Tensor *out = tensor_new1(tp, 1);
    double s = reduce_sum(x->data, x->numel);
    float k = mean ? 1.0f / (float)(x->numel ? x->numel : 1) : 1.0f;
    out->data[0] = (float)(mean ? s / (double)(x->numel ? x->numel : 1) : s);
    if (tape_wants_grad(tp, &x, 1)) {
        TapeEntry *e = tape_record(tp, mean ? "mean" : "sum", sum_backward, out, &x, 1);
        e->farg[0] = k;
    }
    return out;
}

Tensor *op_sum(Tape *tp, Tensor *x) { return sum_mean(tp, x, 0); }
Tensor *op_mean(Tape *tp, Tensor *x) { return sum_mean(tp, x, 1); }

/* ------------------------------------------------------------------ reshape */
Tensor *op_reshape(Tape *tp, Tensor *x, int ndim, const size_t *shape) {
    TERN_CHECK(shape_numel(ndim, shape) == x->numel, "reshape: element count changes (%zu -> %zu)",
               x->numel, shape_numel(ndim, shape));
    return tensor_view(tp, x, 0, ndim, shape);
}

/* ------------------------------------------------------------------ concat / slice (last dim) */
static void concat_backward(Tape *tp, TapeEntry *e) {
    const float *g = tensor_grad(tp, e->out);
    size_t C = tensor_cols(e->out), rows = tensor_rows(e->out), off = 0;
    for (int k = 0; k < e->nin; k++) {
        Tensor *x = e->in[k];
        size_t c = tensor_cols(x);
        if (x->requires_grad) {
            float *gx = tensor_grad(tp, x);
#pragma omp parallel for schedule(static) if (rows * c >= PAR_MIN)
            for (size_t r = 0; r < rows; r++)
                for (size_t j = 0; j < c; j++) gx[r * c + j] += g[r * C + off + j];
        }
        off += c;
    }
}

Tensor *op_concat(Tape *tp, Tensor **xs, int n) {
    TERN_CHECK(n >= 1 && n <= TAPE_MAX_IN, "concat: 1..%d inputs", TAPE_MAX_IN);
    size_t rows = tensor_rows(xs[0]), C = 0;
    for (int k = 0; k < n; k++) {
        TERN_CHECK(xs[k]->ndim == xs[0]->ndim && tensor_rows(xs[k]) == rows,
                   "concat: leading dimensions differ");
        C += tensor_cols(xs[k]);
    }
    size_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[xs[0]->ndim - 1] = C;
    Tensor *out = tensor_new(tp, xs[0]->ndim, shape);
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        size_t c = tensor_cols(xs[k]);
        const float *x = xs[k]->data;
        for (size_t r = 0; r < rows; r++) memcpy(out->data + r * C + off, x + r * c, c * sizeof(float));
        off += c;
    }
    if (tape_wants_grad(tp, xs, n)) tape_record(tp, "concat", concat_backward, out, xs, n);
    return out;
}

static void slice_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0];
    if (!x->requires_grad) return;
    const float *g = tensor_grad(tp, e->out);
    float *gx = tensor_grad(tp, x);
    size_t C = tensor_cols(x), rows = tensor_rows(x), start = e->iarg[0], len = e->iarg[1];
#pragma omp parallel for schedule(static) if (rows * len >= PAR_MIN)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < len; j++) gx[r * C + start + j] += g[r * len + j];
}

Tensor *op_slice(Tape *tp, Tensor *x, size_t start, size_t len) {
    size_t C = tensor_cols(x), rows = tensor_rows(x);
    TERN_CHECK(start + len <= C, "slice: [%zu, %zu) outside last dim %zu", start, start + len, C);
    size_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = len;
    Tensor *out = tensor_new(tp, x->ndim, shape);
    for (size_t r = 0; r < rows; r++) memcpy(out->data + r * len, x->data + r * C + start, len * sizeof(float));
    if (tape_wants_grad(tp, &x, 1)) {
        TapeEntry *e = tape_record(tp, "slice", slice_backward, out, &x, 1);
        e->iarg[0] = start;
        e->iarg[1] = len;
    }
    return out;
}

/* ------------------------------------------------------------------ token shift */
static void token_shift_backward(Tape *tp, TapeEntry *e) {
    Tensor *x = e->in[0], *mu = e->in[1];
    const float *g = tensor_grad(tp, e->out);
    size_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    const float *m = mu->data, *xv = x->data;
    if (x->requires_grad) {
        float *gx = tensor_grad(tp, x);
#pragma omp parallel for collapse(2) schedule(static) if (B * T * C >= PAR_MIN)
        for (size_t b = 0; b < B; b++)
            for (size_t t = 0; t < T; t++) {
                const float *gt = g + (b * T + t) * C;
                const float *gn = t + 1 < T ? gt + C : NULL;
                float *d = gx + (b * T + t) * C;
                if (t == 0) {
                    for (size_t c = 0; c < C; c++) d[c] += gt[c];
                } else {
#pragma omp simd
                    for (size_t c = 0; c < C; c++) d[c] += m[c] * gt[c];
                }
                if (gn) {
#pragma omp simd
                    for (size_t c = 0; c < C; c++) d[c] += (1.0f - m[c]) * gn[c];
                }
            }
    }
    if (mu->requires_grad) {
        /* dmu = sum_{t>=1} g_t * (x_t - x_{t-1}) */
        float *diff = arena_alloc(&tp->arena, B * T * C * sizeof(float));
        for (size_t b = 0; b < B; b++)
            for (size_t t = 0; t < T; t++)
                for (size_t c = 0; c < C; c++) {
                    size_t i = (b * T + t) * C + c;
                    diff[i] = t ? xv[i] - xv[i - C] : 0.0f;
                }
        bcast_grad(tp, tensor_grad(tp, mu), C, g, diff, B * T * C);
    }
}

Tensor *op_token_shift(Tape *tp, Tensor *x, Tensor *mu) {
    TERN_CHECK(x->ndim == 3 && mu->numel == x->shape[2], "token_shift: x must be [B,T,C], mu [C]");
    size_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    Tensor *out = like(tp, x);
    const float *m = mu->data, *xv = x->data;
    float *o = out->data;
#pragma omp parallel for collapse(2) schedule(static) if (B * T * C >= PAR_MIN)
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            const float *xt = xv + (b * T + t) * C, *xp = t ? xt - C : xt;
            float *ot = o + (b * T + t) * C;
#pragma omp simd
            for (size_t c = 0; c < C; c++) ot[c] = m[c] * xt[c] + (1.0f - m[c]) * xp[c];
        }
    Tensor *in[2] = {x, mu};
    if (tape_wants_grad(tp, in, 2)) tape_record(tp, "token_shift", token_shift_backward, out, in, 2);
    return out;
}

/* ------------------------------------------------------------------ embedding */
static void embedding_backward(Tape *tp, TapeEntry *e) {
    Tensor *table = e->in[0];
    if (!table->requires_grad) return;
    const float *g = tensor_grad(tp, e->out);
    float *gt = tensor_grad(tp, table);
    const int32_t *idx = e->ctx;
    size_t N = e->iarg[0], C = tensor_cols(table);
    /* Parallel over column stripes: each thread owns columns, rows are visited in order, so
     * repeated indices accumulate deterministically. */
    size_t stripe = 64;
    size_t nstripes = (C + stripe - 1) / stripe;
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (size_t s = 0; s < nstripes; s++) {
        size_t c0 = s * stripe, c1 = TERN_MIN(C, c0 + stripe);
        for (size_t i = 0; i < N; i++) {
            float *dst = gt + (size_t)idx[i] * C;
            const float *src = g + i * C;
            for (size_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

Tensor *op_embedding(Tape *tp, Tensor *table, const int32_t *idx, size_t N, int out_ndim,
                     const size_t *out_shape) {
    size_t V = table->shape[0], C = tensor_cols(table);
    Tensor *out = out_ndim ? tensor_new(tp, out_ndim, out_shape) : tensor_new2(tp, N, C);
    TERN_CHECK(out->numel == N * C, "embedding: output shape does not hold N*C elements");
    for (size_t i = 0; i < N; i++)
        TERN_CHECK(idx[i] >= 0 && (size_t)idx[i] < V, "embedding: index %d outside [0, %zu)", idx[i], V);
#pragma omp parallel for schedule(static) if (N * C >= PAR_MIN)
    for (size_t i = 0; i < N; i++) memcpy(out->data + i * C, table->data + (size_t)idx[i] * C, C * sizeof(float));
    if (tape_wants_grad(tp, &table, 1)) {
        TapeEntry *e = tape_record(tp, "embedding", embedding_backward, out, &table, 1);
        int32_t *copy = arena_alloc(&tp->arena, N * sizeof(int32_t));
        memcpy(copy, idx, N * sizeof(int32_t));
        e->ctx = copy;
        e->iarg[0] = N;
    }
    return out;
}

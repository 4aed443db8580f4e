/* linear.c — y = x W^T with W kept packed.
 *
 * Integer path (a layer quantized with act_bits 8, BitNet b1.58's W1.58A8 / the int8
 * activations of tern's QAT): the input is quantized to int8 exactly as kernels/quant.c's
 * quantize_act_int8 does during QAT, and for every output
 *     y = sum over segments s of (float)isum_s * (wscale_s * ascale_s),
 * summed in column order, where a segment is a maximal run of columns sharing one weight scale
 * and one activation scale, and isum_s = sum of code_w * code_x over it (an exact integer).
 * The stored values are u = code + qmax, so isum = sum(u x) - qmax * sum(x) (bitnet.cpp's I2_S
 * trick): the u8 x s8 instructions (maddubs / VNNI dpbusd) need no sign handling and sum(x)
 * per 128-column chunk is computed once per token. Every kernel table gives identical integers
 * and the scalar reference (rt_linear_ref) defines the same sum in the same order, so the
 * integer path is bit-identical across instruction sets.
 *
 * Float path (act_bits 0 — the parameter-golf int5 recipe — fp16/fp32 weights, and the tied
 * head, which QAT multiplies without quantizing its input): float activations times the stored
 * codes, scale applied per weight-scale segment, i.e. the trainer's x . (code * scale) up to the
 * order of float rounding. Batched calls (prefill) unpack a packed row once for all tokens. */
#include <math.h>
#include <string.h>

#include "runtime/rt_internal.h"

#define RT_SIMD_MAX_COLS 65536 /* int32 segment sums cannot overflow below this */

static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

void rt_tensor_plan(RtTensor *t) {
    t->nchunks = (t->cols + TERN_CHUNK - 1) / TERN_CHUNK;
    t->simd = 0;
    t->seg_chunks = t->wseg_chunks = t->nchunks;
    if (tern_dtype_is_float(t->dtype)) {
        t->simd = 1;
        return;
    }
    if (t->cols > RT_SIMD_MAX_COLS) return;
    /* intN rows are not padded to whole chunks: chunked kernels need whole chunks per row */
    if (t->dtype != TERN_DT_T2 && t->cols % TERN_CHUNK) return;
    size_t wp = 0, ap = 0; /* boundary periods in chunks (0 = none) */
    if (t->dtype == TERN_DT_T2 && t->group) {
        if (t->group % TERN_CHUNK) return;
        wp = t->group / TERN_CHUNK;
    }
    if (t->act_block) {
        if (t->act_block % TERN_CHUNK) return;
        ap = t->act_block / TERN_CHUNK;
    }
    size_t seg = t->nchunks;
    if (wp && ap) {
        size_t lo = wp < ap ? wp : ap, hi = wp < ap ? ap : wp;
        if (hi % lo) return; /* irregular segments: scalar path */
        seg = lo;
    } else if (wp) {
        seg = wp;
    } else if (ap) {
        seg = ap;
    }
    t->seg_chunks = seg < t->nchunks ? seg : t->nchunks;
    t->wseg_chunks = wp && wp < t->nchunks ? wp : t->nchunks;
    t->simd = 1;
}

void rt_tensor_row_float(const RtTensor *t, size_t r, float *dst) {
    const uint8_t *row = t->data + r * t->row_bytes;
    if (tern_dtype_is_float(t->dtype)) {
        for (size_t c = 0; c < t->cols; c++) dst[c] = tern_row_float(t->dtype, row, c);
        return;
    }
    for (size_t c = 0; c < t->cols; c++) dst[c] = (float)tern_row_code(t->dtype, row, c) * t->scales[rt_wscale_index(t, r, c)];
}

/* ---------------------------------------------------------------- activations */
size_t rt_actq_bytes(size_t n, size_t cols) {
    size_t cp = round_up(cols, TERN_CHUNK), nch = cp / TERN_CHUNK;
    /* the block count is at most cols (block >= 1) */
    return round_up(n * cp, 64) + round_up(n * cols * sizeof(float), 64) + round_up(n * nch * sizeof(int32_t), 64) + 64;
}

void rt_actq_init(RtActQ *a, void *mem, size_t n, size_t cols, size_t block) {
    a->n = n;
    a->cols = cols;
    a->cols_pad = round_up(cols, TERN_CHUNK);
    a->nchunks = a->cols_pad / TERN_CHUNK;
    a->block = block;
    size_t B = block ? block : cols;
    a->nblk = (cols + B - 1) / B;
    uint8_t *p = (uint8_t *)round_up((size_t)(uintptr_t)mem, 64);
    a->q = (int8_t *)p;
    p += round_up(n * a->cols_pad, 64);
    a->scale = (float *)p;
    p += round_up(n * cols * sizeof(float), 64);
    a->csum = (int32_t *)p;
}

void rt_quantize_act(RtActQ *a, const float *x) {
    size_t cols = a->cols, B = a->block ? a->block : cols;
    for (size_t t = 0; t < a->n; t++) {
        const float *xr = x + t * cols;
        int8_t *q = a->q + t * a->cols_pad;
        for (size_t b = 0; b < a->nblk; b++) {
            size_t c0 = b * B, n = cols - c0 < B ? cols - c0 : B;
            float m = 0;
            for (size_t i = 0; i < n; i++) { /* fmaxf, written so it inlines (no NaN here can matter: fmaxf drops them too) */
                float a = fabsf(xr[c0 + i]);
                m = a > m ? a : m;
            }
            if (m < 1e-5f) m = 1e-5f;
            float s = m / 127.0f;
            a->scale[t * a->nblk + b] = s;
            for (size_t i = 0; i < n; i++) {
                float v = nearbyintf(xr[c0 + i] / s);
                /* NaN (from a non-finite activation) becomes 0 rather than undefined behaviour */
                q[c0 + i] = (int8_t)(v >= 127 ? 127 : (v <= -128 ? -128 : (v == v ? v : 0)));
            }
        }
        memset(q + cols, 0, a->cols_pad - cols);
        for (size_t c = 0; c < a->nchunks; c++) {
            int32_t s = 0;
            for (size_t i = 0; i < TERN_CHUNK; i++) s += q[c * TERN_CHUNK + i];
            a->csum[t * a->nchunks + c] = s;
        }
    }
}

/* ---------------------------------------------------------------- the canonical definition */
void rt_linear_ref(float *y, const float *x, size_t n, const RtTensor *W, int force_float) {
    size_t rows = W->rows, cols = W->cols;
    int intpath = W->act_bits == 8 && !tern_dtype_is_float(W->dtype) && !force_float;
    if (!intpath) {
        float *w = rt_alloc(cols * sizeof(float));
        if (!w) return;
        for (size_t r = 0; r < rows; r++) {
            rt_tensor_row_float(W, r, w);
            for (size_t t = 0; t < n; t++) {
                float s = 0.0f;
                for (size_t c = 0; c < cols; c++) s += w[c] * x[t * cols + c];
                y[t * rows + r] = s;
            }
        }
        rt_free(w);
        return;
    }
    RtActQ a;
    void *mem = rt_alloc(rt_actq_bytes(n, cols));
    if (!mem) return;
    rt_actq_init(&a, mem, n, cols, W->act_block);
    rt_quantize_act(&a, x);
    size_t A = W->act_block;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *row = W->data + r * W->row_bytes;
        for (size_t t = 0; t < n; t++) {
            const int8_t *xq = a.q + t * a.cols_pad;
            float acc = 0.0f;
            int64_t isum = 0;
            size_t wi = rt_wscale_index(W, r, 0), ai = 0;
            for (size_t c = 0; c < cols; c++) {
                size_t wn = rt_wscale_index(W, r, c), an = A ? c / A : 0;
                if (wn != wi || an != ai) {
                    acc += (float)isum * (W->scales[wi] * a.scale[t * a.nblk + ai]);
                    isum = 0;
                    wi = wn;
                    ai = an;
                }
                isum += (int64_t)tern_row_code(W->dtype, row, c) * xq[c];
            }
            acc += (float)isum * (W->scales[wi] * a.scale[t * a.nblk + ai]);
            y[t * rows + r] = acc;
        }
    }
    rt_free(mem);
}

/* ---------------------------------------------------------------- the fast driver */
size_t rt_linear_scratch_bytes(size_t n, size_t cols, int threads) {
    size_t cp = round_up(cols, TERN_CHUNK);
    return rt_actq_bytes(n, cols) + (size_t)(threads > 0 ? threads : 1) * round_up(cp, 64) + 128;
}

static void row_int(const RtKernels *k, const RtTensor *W, size_t r, const RtActQ *a, float *y, size_t n, uint8_t *ubuf) {
    const uint8_t *row = W->data + r * W->row_bytes;
    size_t nch = W->nchunks, seg = W->seg_chunks, rows = W->rows;
    uint32_t dt = W->dtype;
    if (dt == TERN_DT_I4 || dt == TERN_DT_I5 || dt == TERN_DT_I6) k->unpack_u8(dt, ubuf, row, nch * TERN_CHUNK);
    int32_t off = W->qmax;
    /* the BitNet default (group 128, one activation scale per token): one call per row */
    int g1 = dt == TERN_DT_T2 && seg == 1 && W->group == TERN_CHUNK && !W->act_block;
    for (size_t t = 0; t < n; t++) {
        const int8_t *xq = a->q + t * a->cols_pad;
        const int32_t *cs = a->csum + t * nch;
        const float *as = a->scale + t * a->nblk;
        if (g1) {
            y[t * rows + r] = k->t2_row_g1(row, xq, cs, W->scales + r * nch, as[0], nch);
            continue;
        }
        float acc = 0.0f;
        for (size_t c0 = 0; c0 < nch; c0 += seg) {
            size_t nc = nch - c0 < seg ? nch - c0 : seg;
            int32_t isum, xs = 0;
            if (dt != TERN_DT_I8)
                for (size_t c = c0; c < c0 + nc; c++) xs += cs[c];
            if (dt == TERN_DT_T2) isum = k->t2_dot(row + c0 * 32, xq + c0 * TERN_CHUNK, nc) - xs;
            else if (dt == TERN_DT_I8) isum = k->dot_s8s8((const int8_t *)row + c0 * TERN_CHUNK, xq + c0 * TERN_CHUNK, nc * TERN_CHUNK);
            else isum = k->dot_u8s8(ubuf + c0 * TERN_CHUNK, xq + c0 * TERN_CHUNK, nc * TERN_CHUNK) - off * xs;
            float ws = W->scales[rt_wscale_index(W, r, c0 * TERN_CHUNK)];
            float asc = as[W->act_block ? c0 * TERN_CHUNK / W->act_block : 0];
            acc += (float)isum * (ws * asc);
        }
        y[t * rows + r] = acc;
    }
}

/* Float path, one row for n tokens: y = sum over weight-scale segments of scale * sum(code x),
 * from the stored codes (a packed row is unpacked to bytes once for all n tokens; no float copy
 * of the weights), the same arithmetic for one token or many, so prefill and decode agree
 * exactly. */
static void row_float(const RtKernels *k, const RtTensor *W, size_t r, const float *x, float *y, size_t n, uint8_t *ubuf) {
    const uint8_t *row = W->data + r * W->row_bytes;
    size_t cols = W->cols, rows = W->rows, step = W->wseg_chunks * TERN_CHUNK;
    uint32_t dt = W->dtype;
    if (dt == TERN_DT_F32) {
        for (size_t t = 0; t < n; t++) y[t * rows + r] = k->dot_f32((const float *)(const void *)row, x + t * cols, cols);
        return;
    }
    if (dt == TERN_DT_F16) {
        for (size_t t = 0; t < n; t++) y[t * rows + r] = k->dot_f16f32(row, x + t * cols, cols);
        return;
    }
    if (dt != TERN_DT_I8) k->unpack_u8(dt, ubuf, row, W->nchunks * TERN_CHUNK);
    for (size_t t = 0; t < n; t++) {
        const float *xt = x + t * cols;
        float acc = 0.0f;
        for (size_t c0 = 0; c0 < cols; c0 += step) {
            size_t len = cols - c0 < step ? cols - c0 : step;
            float ws = W->scales[rt_wscale_index(W, r, c0)];
            float d = dt == TERN_DT_I8 ? k->dot_s8f32((const int8_t *)row + c0, xt + c0, len) : k->dot_u8f32(ubuf + c0, xt + c0, len, W->qmax);
            acc += ws * d;
        }
        y[t * rows + r] = acc;
    }
}

void rt_linear(const RtKernels *k, float *y, const float *x, size_t n, const RtTensor *W, int force_float, void *scratch,
               int threads) {
    if (!W->simd) {
        rt_linear_ref(y, x, n, W, force_float);
        return;
    }
    int intpath = W->act_bits == 8 && !tern_dtype_is_float(W->dtype) && !force_float;
    size_t cols = W->cols, cp = round_up(cols, TERN_CHUNK);
    RtActQ a;
    uint8_t *p = scratch;
    if (intpath) {
        rt_actq_init(&a, p, n, cols, W->act_block);
        rt_quantize_act(&a, x);
    }
    p += rt_actq_bytes(n, cols);
    p = (uint8_t *)round_up((size_t)(uintptr_t)p, 64);
    size_t per_thread = round_up(cp, 64); /* the unpacked row */
    int nt = threads > 0 ? threads : 1;
    /* small products are not worth waking threads for */
    if ((double)W->rows * (double)cols * (double)n < 65536.0) nt = 1;
    if (nt > (int)W->rows) nt = (int)W->rows;
    (void)nt;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        uint8_t *ubuf = p + (size_t)RT_THREAD_ID() * per_thread;
#pragma omp for schedule(static)
        for (size_t r = 0; r < W->rows; r++) {
            if (intpath) row_int(k, W, r, &a, y, n, ubuf);
            else row_float(k, W, r, x, y, n, ubuf);
        }
    }
}

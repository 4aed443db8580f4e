/* gru.c — the time loops of the GRU cells (kernels/gru.h): one GEMM with the previous state per
 * step forward (the engine: three, its reset comes before its candidate's product), one
 * (torch) or three (engine) per step backward; everything else is elementwise
 * (kernels/gru_math.h) and parallel over the B sequences. */
#include "kernels/gru.h"

#include <string.h>

#include "kernels/gemm.h"
#include "kernels/gru_math.h"
#include "kernels/quant.h"

#define PAR_MIN 16384 /* B*H below which the elementwise loops stay on one thread */

size_t gru_work_floats(size_t B, size_t H) { return 10 * B * H; }

/* The B rows of step t's previous state into dst [B, H] (zeros at t = 0), fake-quantized when
 * act is on: the input of the step's recurrent product. */
static void prev_rows(float *dst, const float *h, size_t B, size_t T, size_t H, size_t t, const GruAct *act) {
    for (size_t b = 0; b < B; b++) {
        if (t) memcpy(dst + b * H, h + (b * T + t - 1) * H, H * sizeof(float));
        else memset(dst + b * H, 0, H * sizeof(float));
    }
    if (act && act->on) fake_quantize_act_int8(dst, dst, B, H, act->block);
}

void gru_prev_states(float *hp, const float *h, size_t B, size_t T, size_t H, const GruAct *act) {
    for (size_t b = 0; b < B; b++) {
        memset(hp + b * T * H, 0, H * sizeof(float));
        if (T > 1) memcpy(hp + (b * T + 1) * H, h + b * T * H, (T - 1) * H * sizeof(float));
    }
    if (act && act->on) fake_quantize_act_int8(hp, hp, B * T, H, act->block);
}

/* the float state before step t of sequence b (zeros at t = 0) */
static inline const float *state_before(const float *h, const float *zeros, size_t b, size_t T, size_t H, size_t t) {
    return t ? h + (b * T + t - 1) * H : zeros + b * H;
}

/* ------------------------------------------------------------------ PyTorch cell */

void gru_torch_forward(float *h, float *save, const float *xp, const float *whh, const float *bhh, size_t B, size_t T,
                       size_t H, const GruAct *act, float *work) {
    size_t N = B * T * H;
    float *hq = work, *hp = work + B * H, *zeros = work + 4 * B * H; /* [B, H], [B, 3H], [B, H] */
    memset(zeros, 0, B * H * sizeof(float));
    for (size_t t = 0; t < T; t++) {
        prev_rows(hq, h, B, T, H, t, act);
        for (size_t b = 0; b < B; b++) memcpy(hp + b * 3 * H, bhh, 3 * H * sizeof(float));
        sgemm(0, 1, B, 3 * H, H, 1.0f, hq, H, whh, H, 1.0f, hp, 3 * H);
#pragma omp parallel for schedule(static) if (B * H >= PAR_MIN)
        for (size_t b = 0; b < B; b++) {
            size_t row = b * T + t;
            float *s = save ? save + row * H : NULL;
            gru_torch_step(h + row * H, s, s ? s + N : NULL, s ? s + 2 * N : NULL, s ? s + 3 * N : NULL, xp + row * 3 * H,
                           hp + b * 3 * H, state_before(h, zeros, b, T, H, t), H, 0);
        }
    }
}

void gru_torch_backward(float *dxp, float *drec, const float *dh, const float *h, const float *save, const float *whh,
                        size_t B, size_t T, size_t H, size_t tbptt, float *work) {
    size_t N = B * T * H;
    float *delta = work, *dprev = work + B * H; /* [B, H] each */
    memset(delta, 0, B * H * sizeof(float));
    for (size_t t = T; t-- > 0;) {
#pragma omp parallel for schedule(static) if (B * H >= PAR_MIN)
        for (size_t b = 0; b < B; b++) {
            size_t row = b * T + t;
            const float *r = save + row * H, *z = r + N, *n = r + 2 * N, *a = r + 3 * N;
            const float *g1 = dh + row * H, *dl = delta + b * H;
            float *dx = dxp + row * 3 * H, *dr = drec + row * 3 * H, *dp = dprev + b * H;
            for (size_t j = 0; j < H; j++) {
                float g = g1[j] + dl[j], hp = t ? h[(row - 1) * H + j] : 0.0f;
                float dn = g * (1.0f - z[j]), dz = g * (hp - n[j]);
                float dan = dn * (1.0f - n[j] * n[j]);
                float dar = dan * a[j] * r[j] * (1.0f - r[j]), daz = dz * z[j] * (1.0f - z[j]);
                dx[j] = dar, dx[H + j] = daz, dx[2 * H + j] = dan;
                dr[j] = dar, dr[H + j] = daz, dr[2 * H + j] = dan * r[j];
                dp[j] = g * z[j];
            }
        }
        if (!t) break;
        /* step t's rows of drec are T * 3H apart */
        sgemm(0, 0, B, H, 3 * H, 1.0f, drec + t * 3 * H, T * 3 * H, whh, H, 1.0f, dprev, H);
        if (tbptt && t % tbptt == 0) memset(delta, 0, B * H * sizeof(float));
        else memcpy(delta, dprev, B * H * sizeof(float));
    }
}

/* ------------------------------------------------------------------ the engine's cell */

void gru_engine_forward(float *h, float *save, float *inv, const float *xp, const float *wz, const float *wr,
                        const float *wh, size_t B, size_t T, size_t E, size_t H, float eps, const GruAct *act_h,
                        const GruAct *act_q, float *work) {
    size_t N = B * T * H, ld = E + H, BH = B * H;
    /* [B, H] each: quantized previous state, z | r products ([B, 2H]), z, r, c, q, W_h q, zeros */
    float *hq = work, *hzr = work + BH, *z = work + 3 * BH, *r = work + 4 * BH, *c = work + 5 * BH, *q = work + 6 * BH;
    float *a = work + 7 * BH, *zeros = work + 8 * BH;
    memset(zeros, 0, BH * sizeof(float));
    for (size_t t = 0; t < T; t++) {
        prev_rows(hq, h, B, T, H, t, act_h);
        sgemm(0, 1, B, H, H, 1.0f, hq, H, wz + E, ld, 0.0f, hzr, 2 * H);
        sgemm(0, 1, B, H, H, 1.0f, hq, H, wr + E, ld, 0.0f, hzr + H, 2 * H);
#pragma omp parallel for schedule(static) if (BH >= PAR_MIN)
        for (size_t b = 0; b < B; b++)
            gru_engine_gates(z + b * H, r + b * H, q + b * H, xp + (b * T + t) * 3 * H, hzr + b * 2 * H,
                             state_before(h, zeros, b, T, H, t), H, 0);
        if (act_q && act_q->on) fake_quantize_act_int8(q, q, B, H, act_q->block);
        sgemm(0, 1, B, H, H, 1.0f, q, H, wh + E, ld, 0.0f, a, H);
#pragma omp parallel for schedule(static) if (BH >= PAR_MIN)
        for (size_t b = 0; b < B; b++) {
            size_t row = b * T + t;
            float s = gru_engine_state(h + row * H, c + b * H, xp + row * 3 * H + 2 * H, a + b * H, z + b * H,
                                       state_before(h, zeros, b, T, H, t), H, eps, 0);
            if (inv) inv[row] = s;
            if (!save) continue;
            const float *src[4] = {z + b * H, r + b * H, c + b * H, q + b * H};
            for (int k = 0; k < 4; k++) memcpy(save + k * N + row * H, src[k], H * sizeof(float));
        }
    }
}

/* One step of the engine's backward up to the candidate: from g = dL/dh_t, the RMSNorm, the
 * interpolation and the tanh; writes dpc (dxp's h part), dz and the first part of d h_{t-1}. */
static void engine_back_state(float *dxp_row, float *dz, float *dp, const float *g, const float *hcur,
                              float inv, const float *z, const float *c, const float *prev, size_t H) {
    double m = 0;
    for (size_t j = 0; j < H; j++) m += (double)hcur[j] * (double)g[j];
    float mean = (float)(m / (double)H);
    for (size_t j = 0; j < H; j++) {
        float du = (g[j] - hcur[j] * mean) * inv;
        float dpc = du * z[j] * (1.0f - c[j] * c[j]);
        dz[j] = du * (c[j] - prev[j]);
        dp[j] = du * (1.0f - z[j]);
        dxp_row[2 * H + j] = dpc;
    }
}

void gru_engine_backward(float *dxp, const float *dh, const float *h, const float *save, const float *inv, const float *wz,
                         const float *wr, const float *wh, size_t B, size_t T, size_t E, size_t H, size_t tbptt,
                         float *work) {
    size_t N = B * T * H, ld = E + H, BH = B * H;
    float *delta = work, *dp = work + BH, *dq = work + 2 * BH, *dz = work + 3 * BH, *g = work + 4 * BH;
    float *zeros = work + 5 * BH;
    size_t ldx = T * 3 * H; /* step t's rows of dxp are T * 3H apart */
    memset(delta, 0, BH * sizeof(float));
    memset(zeros, 0, BH * sizeof(float));
    for (size_t t = T; t-- > 0;) {
#pragma omp parallel for schedule(static) if (BH >= PAR_MIN)
        for (size_t b = 0; b < B; b++) {
            size_t row = b * T + t;
            float *gb = g + b * H;
            for (size_t j = 0; j < H; j++) gb[j] = dh[row * H + j] + delta[b * H + j];
            engine_back_state(dxp + row * 3 * H, dz + b * H, dp + b * H, gb, h + row * H, inv[row],
                              save + row * H, save + 2 * N + row * H, state_before(h, zeros, b, T, H, t), H);
        }
        sgemm(0, 0, B, H, H, 1.0f, dxp + t * 3 * H + 2 * H, ldx, wh + E, ld, 0.0f, dq, H);
#pragma omp parallel for schedule(static) if (BH >= PAR_MIN)
        for (size_t b = 0; b < B; b++) {
            size_t row = b * T + t;
            const float *z = save + row * H, *r = save + N + row * H, *prev = state_before(h, zeros, b, T, H, t);
            const float *dqb = dq + b * H, *dzb = dz + b * H;
            float *dx = dxp + row * 3 * H, *dpb = dp + b * H;
            for (size_t j = 0; j < H; j++) {
                float dr = dqb[j] * prev[j];
                dpb[j] += dqb[j] * r[j];
                dx[j] = dzb[j] * z[j] * (1.0f - z[j]);
                dx[H + j] = dr * r[j] * (1.0f - r[j]);
            }
        }
        if (!t) break;
        sgemm(0, 0, B, H, H, 1.0f, dxp + t * 3 * H, ldx, wz + E, ld, 1.0f, dp, H);
        sgemm(0, 0, B, H, H, 1.0f, dxp + t * 3 * H + H, ldx, wr + E, ld, 1.0f, dp, H);
        if (tbptt && t % tbptt == 0) memset(delta, 0, BH * sizeof(float));
        else memcpy(delta, dp, BH * sizeof(float));
    }
}

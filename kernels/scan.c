/* Linear recurrence scans: sequential, Kogge-Stone and chunked two-level, forward and backward.
 * See scan.h for the maths and the layout. */
#include "kernels/scan.h"

#include <string.h>

#define PAR_MIN 16384 /* elements below which thread start-up costs more than the scan */
#define CB 64         /* channels per task: 4 AVX-512 vectors, a 256-byte row slice */
#define CHUNK 64      /* time steps per chunk of the two-level scan */

static const char *const kNames[SCAN_COUNT] = {"sequential", "kogge_stone", "chunked"};

const char *scan_kind_name(ScanKind k) { return (unsigned)k < SCAN_COUNT ? kNames[k] : "?"; }

/* Sequential wins on CPU at every TRN shape we measured (experiments/bench/TRN.md): B*K
 * channels give enough parallelism and it does the least work. */
ScanKind scan_default_kind(void) { return SCAN_SEQUENTIAL; }

int scan_kind_from_name(const char *s) {
    if (!strcmp(s, "auto")) return (int)scan_default_kind();
    for (int i = 0; i < SCAN_COUNT; i++)
        if (!strcmp(s, kNames[i])) return i;
    return -1;
}

size_t scan_workspace_floats(ScanKind k, size_t B, size_t T, size_t R, size_t C) {
    switch (k) {
    case SCAN_SEQUENTIAL: return B * R * C;                 /* backward's running lam */
    case SCAN_KOGGE_STONE: return 2 * (B * T * C + B * T * R * C); /* ping-pong (a, x) */
    case SCAN_CHUNKED: {
        size_t nch = (T + CHUNK - 1) / CHUNK;
        size_t fwd = B * nch * C + B * nch * R * C;
        size_t bwd = B * T * R * C + B * nch * C + B * nch * R * C;
        return fwd > bwd ? fwd : bwd;
    }
    default: return 0;
    }
}

/* ------------------------------------------------------------------ references */
void scan_forward_ref(float *h, const float *a, const float *x, size_t B, size_t T, size_t R, size_t C) {
    for (size_t b = 0; b < B; b++)
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++) {
                double s = 0;
                for (size_t t = 0; t < T; t++) {
                    s = (double)a[(b * T + t) * C + c] * s + (double)x[((b * T + t) * R + r) * C + c];
                    h[((b * T + t) * R + r) * C + c] = (float)s;
                }
            }
}

void scan_backward_ref(float *da, float *dx, const float *dh, const float *a, const float *h, size_t B,
                       size_t T, size_t R, size_t C) {
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++) {
            for (size_t r = 0; r < R; r++) {
                double lam = 0;
                for (size_t t = T; t-- > 0;) {
                    size_t i = ((b * T + t) * R + r) * C + c;
                    double an = t + 1 < T ? (double)a[(b * T + t + 1) * C + c] : 0.0;
                    lam = (double)dh[i] + an * lam;
                    dx[i] += (float)lam;
                    if (t > 0) da[(b * T + t) * C + c] += (float)(lam * (double)h[i - R * C]);
                }
            }
        }
}

/* ------------------------------------------------------------------ sequential */
static void seq_forward(float *restrict h, const float *restrict a, const float *restrict x, size_t B,
                        size_t T, size_t R, size_t C) {
    size_t ncb = (C + CB - 1) / CB, ntask = B * ncb;
#pragma omp parallel for schedule(static) if (B * T * R * C >= PAR_MIN && ntask > 1)
    for (size_t task = 0; task < ntask; task++) {
        size_t b = task / ncb, c0 = (task % ncb) * CB, w = C - c0 < CB ? C - c0 : CB;
        for (size_t t = 0; t < T; t++) {
            const float *at = a + (b * T + t) * C + c0;
            for (size_t r = 0; r < R; r++) {
                size_t o = ((b * T + t) * R + r) * C + c0;
                const float *xt = x + o;
                float *ht = h + o;
                if (t == 0) {
                    memcpy(ht, xt, w * sizeof(float));
                } else {
                    /* the previous row was written a moment ago: it is in L1 */
                    const float *hp = ht - R * C;
#pragma omp simd
                    for (size_t c = 0; c < w; c++) ht[c] = at[c] * hp[c] + xt[c];
                }
            }
        }
    }
}

static void seq_backward(float *restrict da, float *restrict dx, const float *restrict dh,
                         const float *restrict a, const float *restrict h, size_t B, size_t T, size_t R,
                         size_t C, float *restrict work) {
    size_t ncb = (C + CB - 1) / CB, ntask = B * ncb;
#pragma omp parallel for schedule(static) if (B * T * R * C >= PAR_MIN && ntask > 1)
    for (size_t task = 0; task < ntask; task++) {
        size_t b = task / ncb, c0 = (task % ncb) * CB, w = C - c0 < CB ? C - c0 : CB;
        float *lam = work + b * R * C + c0; /* lam for rhs r at lam + r*C */
        for (size_t t = T; t-- > 0;) {
            const float *an = t + 1 < T ? a + (b * T + t + 1) * C + c0 : NULL;
            for (size_t r = 0; r < R; r++) {
                size_t o = ((b * T + t) * R + r) * C + c0;
                const float *g = dh + o;
                float *d = dx + o, *l = lam + r * C;
                if (!an) {
#pragma omp simd
                    for (size_t c = 0; c < w; c++) {
                        l[c] = g[c];
                        d[c] += l[c];
                    }
                } else {
#pragma omp simd
                    for (size_t c = 0; c < w; c++) {
                        l[c] = g[c] + an[c] * l[c];
                        d[c] += l[c];
                    }
                }
            }
            if (t == 0) continue;
            float *dat = da + (b * T + t) * C + c0;
            for (size_t r = 0; r < R; r++) {
                const float *hp = h + ((b * T + t - 1) * R + r) * C + c0, *l = lam + r * C;
#pragma omp simd
                for (size_t c = 0; c < w; c++) dat[c] += l[c] * hp[c];
            }
        }
    }
}

/* ------------------------------------------------------------------ Kogge-Stone */
/* One pass with offset d: x'_t = x_t + A_t x_{t-d}, A'_t = A_t A_{t-d} (t >= d), identity
 * padding below d; reverse = 1 mirrors it for the suffix scan of the backward
 * (x'_t = x_t + A_t x_{t+d}). An NULL: the last pass, whose A is never read again. */
static void ks_pass(float *restrict Xn, float *restrict An, const float *restrict X, const float *restrict A,
                    size_t B, size_t T, size_t R, size_t C, size_t d, int reverse) {
#pragma omp parallel for collapse(2) schedule(static) if (B * T * R * C >= PAR_MIN)
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            int has = reverse ? t + d < T : t >= d;
            size_t src = reverse ? t + d : t - d;
            const float *At = A + (b * T + t) * C;
            if (!has) {
                memcpy(Xn + (b * T + t) * R * C, X + (b * T + t) * R * C, R * C * sizeof(float));
                if (An) memcpy(An + (b * T + t) * C, At, C * sizeof(float));
                continue;
            }
            const float *As = A + (b * T + src) * C;
            for (size_t r = 0; r < R; r++) {
                const float *xt = X + ((b * T + t) * R + r) * C, *xs = X + ((b * T + src) * R + r) * C;
                float *o = Xn + ((b * T + t) * R + r) * C;
#pragma omp simd
                for (size_t c = 0; c < C; c++) o[c] = xt[c] + At[c] * xs[c];
            }
            if (An) {
                float *o = An + (b * T + t) * C;
#pragma omp simd
                for (size_t c = 0; c < C; c++) o[c] = At[c] * As[c];
            }
        }
}

/* Runs the passes ping-ponging through the workspace; the result lands in out. */
static void ks_run(float *out, const float *A0, const float *X0, size_t B, size_t T, size_t R, size_t C,
                   float *work, int reverse) {
    size_t na = B * T * C, nx = B * T * R * C;
    float *Ab[2] = {work, work + na}, *Xb[2] = {work + 2 * na, work + 2 * na + nx};
    if (T <= 1) {
        memcpy(out, X0, nx * sizeof(float));
        return;
    }
    const float *A = A0, *X = X0;
    int buf = 0;
    for (size_t d = 1; d < T; d *= 2) {
        int last = 2 * d >= T;
        float *Xn = last ? out : Xb[buf], *An = last ? NULL : Ab[buf];
        ks_pass(Xn, An, X, A, B, T, R, C, d, reverse);
        A = An;
        X = Xn;
        buf ^= 1;
    }
}

static void ks_forward(float *h, const float *a, const float *x, size_t B, size_t T, size_t R, size_t C,
                       float *work) {
    ks_run(h, a, x, B, T, R, C, work, 0);
}

static void ks_backward(float *restrict da, float *restrict dx, const float *restrict dh,
                        const float *restrict a, const float *restrict h, size_t B, size_t T, size_t R,
                        size_t C, float *restrict work) {
    size_t na = B * T * C, nx = B * T * R * C;
    size_t npass = 0;
    for (size_t d = 1; d < T; d *= 2) npass++;
    /* ks_run's workspace is [A0 | A1 | X0 | X1]; pass p writes A[p%2], X[p%2]. The shifted
     * coefficients a_{t+1} (0 past the end) live in A1: pass 0 reads them and writes A0, and
     * pass 1 overwrites A1 only after that. lam goes where the last pass would write anyway,
     * X[(npass-1)%2], which is never that pass's own source. */
    float *ash = work + na;
    float *lam = work + 2 * na + (npass ? (npass - 1) % 2 : 0) * nx;
#pragma omp parallel for collapse(2) schedule(static) if (na >= PAR_MIN)
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            float *o = ash + (b * T + t) * C;
            if (t + 1 < T) memcpy(o, a + (b * T + t + 1) * C, C * sizeof(float));
            else memset(o, 0, C * sizeof(float));
        }
    ks_run(lam, ash, dh, B, T, R, C, work, 1);
    const float *L = lam;
#pragma omp parallel for collapse(2) schedule(static) if (nx >= PAR_MIN)
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            for (size_t r = 0; r < R; r++) {
                size_t o = ((b * T + t) * R + r) * C;
#pragma omp simd
                for (size_t c = 0; c < C; c++) dx[o + c] += L[o + c];
            }
            if (t == 0) continue;
            float *dat = da + (b * T + t) * C;
            for (size_t r = 0; r < R; r++) {
                size_t o = ((b * T + t) * R + r) * C, p = ((b * T + t - 1) * R + r) * C;
#pragma omp simd
                for (size_t c = 0; c < C; c++) dat[c] += L[o + c] * h[p + c];
            }
        }
}

/* ------------------------------------------------------------------ chunked two-level */
/* Forward: (1) each chunk scans from a zero state and records the product of its a's;
 * (2) per channel, the state entering each chunk: carry_{k+1} = P_k carry_k + hloc_{end of k};
 * (3) each chunk adds (prod of a from its start to t) * carry. */
static void ch_forward(float *restrict h, const float *restrict a, const float *restrict x, size_t B,
                       size_t T, size_t R, size_t C, float *restrict work) {
    size_t nch = (T + CHUNK - 1) / CHUNK, ncb = (C + CB - 1) / CB;
    float *P = work, *carry = work + B * nch * C; /* [B, nch, C], [B, nch, R, C] */
    size_t ntask = B * nch * ncb;
    int par = B * T * R * C >= PAR_MIN;
#pragma omp parallel for schedule(static) if (par && ntask > 1)
    for (size_t task = 0; task < ntask; task++) {
        size_t b = task / (nch * ncb), k = (task / ncb) % nch, c0 = (task % ncb) * CB;
        size_t w = C - c0 < CB ? C - c0 : CB, t0 = k * CHUNK, t1 = t0 + CHUNK < T ? t0 + CHUNK : T;
        float *pk = P + (b * nch + k) * C + c0;
        for (size_t t = t0; t < t1; t++) {
            const float *at = a + (b * T + t) * C + c0;
            if (t == t0) memcpy(pk, at, w * sizeof(float));
            else {
#pragma omp simd
                for (size_t c = 0; c < w; c++) pk[c] *= at[c];
            }
            for (size_t r = 0; r < R; r++) {
                size_t o = ((b * T + t) * R + r) * C + c0;
                if (t == t0) memcpy(h + o, x + o, w * sizeof(float));
                else {
                    const float *hp = h + o - R * C;
#pragma omp simd
                    for (size_t c = 0; c < w; c++) h[o + c] = at[c] * hp[c] + x[o + c];
                }
            }
        }
    }
    size_t ntask2 = B * ncb;
#pragma omp parallel for schedule(static) if (par && ntask2 > 1)
    for (size_t task = 0; task < ntask2; task++) {
        size_t b = task / ncb, c0 = (task % ncb) * CB, w = C - c0 < CB ? C - c0 : CB;
        for (size_t r = 0; r < R; r++) memset(carry + ((b * nch) * R + r) * C + c0, 0, w * sizeof(float));
        for (size_t k = 1; k < nch; k++) {
            size_t tend = k * CHUNK - 1;
            const float *pk = P + (b * nch + k - 1) * C + c0;
            for (size_t r = 0; r < R; r++) {
                const float *cp = carry + ((b * nch + k - 1) * R + r) * C + c0;
                const float *hl = h + ((b * T + tend) * R + r) * C + c0;
                float *cn = carry + ((b * nch + k) * R + r) * C + c0;
#pragma omp simd
                for (size_t c = 0; c < w; c++) cn[c] = pk[c] * cp[c] + hl[c];
            }
        }
    }
    size_t ntask3 = B * (nch - 1) * ncb;
#pragma omp parallel for schedule(static) if (par && ntask3 > 1)
    for (size_t task = 0; task < ntask3; task++) {
        size_t b = task / ((nch - 1) * ncb), k = 1 + (task / ncb) % (nch - 1), c0 = (task % ncb) * CB;
        size_t w = C - c0 < CB ? C - c0 : CB, t0 = k * CHUNK, t1 = t0 + CHUNK < T ? t0 + CHUNK : T;
        float p[CB];
        for (size_t c = 0; c < w; c++) p[c] = 1.0f;
        for (size_t t = t0; t < t1; t++) {
            const float *at = a + (b * T + t) * C + c0;
#pragma omp simd
            for (size_t c = 0; c < w; c++) p[c] *= at[c];
            for (size_t r = 0; r < R; r++) {
                const float *cr = carry + ((b * nch + k) * R + r) * C + c0;
                float *ht = h + ((b * T + t) * R + r) * C + c0;
#pragma omp simd
                for (size_t c = 0; c < w; c++) ht[c] += p[c] * cr[c];
            }
        }
    }
}

/* Backward, mirrored: (1) local reverse scans lamloc from a zero carry at each chunk's end, and
 * Q_k = prod of a over the chunk without its first step; (2) from the last chunk back, the carry
 * into chunk k is cin_k = a_{start(k+1)} lam_{start(k+1)}, with lam_start = lamloc_start + Q cin;
 * (3) lam_t = lamloc_t + (prod_{u=t+1}^{end} a_u) cin_k, then dx and da. */
static void ch_backward(float *restrict da, float *restrict dx, const float *restrict dh,
                        const float *restrict a, const float *restrict h, size_t B, size_t T, size_t R,
                        size_t C, float *restrict work) {
    size_t nch = (T + CHUNK - 1) / CHUNK, ncb = (C + CB - 1) / CB;
    float *lamloc = work;                        /* [B, T, R, C] */
    float *Q = lamloc + B * T * R * C;           /* [B, nch, C] */
    float *cin = Q + B * nch * C;                /* [B, nch, R, C] */
    size_t ntask = B * nch * ncb;
    int par = B * T * R * C >= PAR_MIN;
#pragma omp parallel for schedule(static) if (par && ntask > 1)
    for (size_t task = 0; task < ntask; task++) {
        size_t b = task / (nch * ncb), k = (task / ncb) % nch, c0 = (task % ncb) * CB;
        size_t w = C - c0 < CB ? C - c0 : CB, t0 = k * CHUNK, t1 = t0 + CHUNK < T ? t0 + CHUNK : T;
        float *qk = Q + (b * nch + k) * C + c0;
        for (size_t c = 0; c < w; c++) qk[c] = 1.0f;
        for (size_t t = t1; t-- > t0;) {
            const float *an = t + 1 < t1 ? a + (b * T + t + 1) * C + c0 : NULL;
            for (size_t r = 0; r < R; r++) {
                size_t o = ((b * T + t) * R + r) * C + c0;
                if (!an) memcpy(lamloc + o, dh + o, w * sizeof(float));
                else {
                    const float *ln = lamloc + o + R * C;
#pragma omp simd
                    for (size_t c = 0; c < w; c++) lamloc[o + c] = dh[o + c] + an[c] * ln[c];
                }
            }
            if (t > t0) {
                const float *at = a + (b * T + t) * C + c0;
#pragma omp simd
                for (size_t c = 0; c < w; c++) qk[c] *= at[c];
            }
        }
    }
    size_t ntask2 = B * ncb;
#pragma omp parallel for schedule(static) if (par && ntask2 > 1)
    for (size_t task = 0; task < ntask2; task++) {
        size_t b = task / ncb, c0 = (task % ncb) * CB, w = C - c0 < CB ? C - c0 : CB;
        for (size_t r = 0; r < R; r++)
            memset(cin + ((b * nch + nch - 1) * R + r) * C + c0, 0, w * sizeof(float));
        for (size_t k = nch - 1; k >= 1; k--) {
            size_t s = k * CHUNK;
            const float *qk = Q + (b * nch + k) * C + c0, *as = a + (b * T + s) * C + c0;
            for (size_t r = 0; r < R; r++) {
                const float *ck = cin + ((b * nch + k) * R + r) * C + c0;
                const float *ls = lamloc + ((b * T + s) * R + r) * C + c0;
                float *cp = cin + ((b * nch + k - 1) * R + r) * C + c0;
#pragma omp simd
                for (size_t c = 0; c < w; c++) cp[c] = as[c] * (ls[c] + qk[c] * ck[c]);
            }
        }
    }
#pragma omp parallel for schedule(static) if (par && ntask > 1)
    for (size_t task = 0; task < ntask; task++) {
        size_t b = task / (nch * ncb), k = (task / ncb) % nch, c0 = (task % ncb) * CB;
        size_t w = C - c0 < CB ? C - c0 : CB, t0 = k * CHUNK, t1 = t0 + CHUNK < T ? t0 + CHUNK : T;
        float q[CB];
        for (size_t c = 0; c < w; c++) q[c] = 1.0f;
        for (size_t t = t1; t-- > t0;) {
            float *dat = t > 0 ? da + (b * T + t) * C + c0 : NULL;
            for (size_t r = 0; r < R; r++) {
                size_t o = ((b * T + t) * R + r) * C + c0;
                const float *ck = cin + ((b * nch + k) * R + r) * C + c0;
                float *ll = lamloc + o; /* final lam overwrites the local one in place */
#pragma omp simd
                for (size_t c = 0; c < w; c++) {
                    ll[c] += q[c] * ck[c];
                    dx[o + c] += ll[c];
                }
                if (dat) {
                    const float *hp = h + o - R * C;
#pragma omp simd
                    for (size_t c = 0; c < w; c++) dat[c] += ll[c] * hp[c];
                }
            }
            const float *at = a + (b * T + t) * C + c0;
#pragma omp simd
            for (size_t c = 0; c < w; c++) q[c] *= at[c];
        }
    }
}

/* ------------------------------------------------------------------ dispatch */
void scan_forward(ScanKind k, float *h, const float *a, const float *x, size_t B, size_t T, size_t R,
                  size_t C, float *work) {
    if (!B || !T || !R || !C) return;
    switch (k) {
    case SCAN_KOGGE_STONE: ks_forward(h, a, x, B, T, R, C, work); break;
    case SCAN_CHUNKED: ch_forward(h, a, x, B, T, R, C, work); break;
    default: seq_forward(h, a, x, B, T, R, C); break;
    }
}

void scan_backward(ScanKind k, float *da, float *dx, const float *dh, const float *a, const float *h,
                   size_t B, size_t T, size_t R, size_t C, float *work) {
    if (!B || !T || !R || !C) return;
    switch (k) {
    case SCAN_KOGGE_STONE: ks_backward(da, dx, dh, a, h, B, T, R, C, work); break;
    case SCAN_CHUNKED: ch_backward(da, dx, dh, a, h, B, T, R, C, work); break;
    default: seq_backward(da, dx, dh, a, h, B, T, R, C, work); break;
    }
}

#include "train/eval.h"

#include <math.h>
#include <string.h>

#include "kernels/util.h"

static void finish(EvalResult *r, const ByteCounter *bc, double t0) {
    r->val_loss = r->tokens > 0 ? r->loss_sum / r->tokens : NAN;
    r->val_bpb = bc ? bpb_value(r->loss_sum, r->bytes) : -1.0;
    r->seconds = now_seconds() - t0;
}

int eval_standard(Model *m, Tape *tp, const TokenStream *s, size_t T, size_t B, const ByteCounter *bc,
                  size_t max_tokens, EvalResult *r) {
    memset(r, 0, sizeof *r);
    double t0 = now_seconds();
    size_t nw = stream_val_windows(s, T);
    if (max_tokens && max_tokens / T < nw) nw = max_tokens / T > 0 ? max_tokens / T : 1;
    int32_t *x = xmalloc(B * T * sizeof(int32_t)), *y = xmalloc(B * T * sizeof(int32_t));
    float *per = xmalloc(B * T * sizeof(float));
    for (size_t w0 = 0; w0 < nw; w0 += B) {
        size_t nb = TERN_MIN(B, nw - w0);
        for (size_t b = 0; b < nb; b++) stream_val_window(s, T, w0 + b, x + b * T, y + b * T);
        tape_reset(tp);
        tape_no_grad_begin(tp);
        m->ops->loss(m, tp, x, y, nb, T, per, 0);
        tape_no_grad_end(tp);
        for (size_t i = 0; i < nb * T; i++) r->loss_sum += per[i];
        r->tokens += (double)(nb * T);
        if (bc) r->bytes += bpb_count(bc, x, y, nb * T);
        r->windows += nb;
    }
    tape_reset(tp);
    xfree(x);
    xfree(y);
    xfree(per);
    finish(r, bc, t0);
    return 0;
}

int eval_sliding(Model *m, Tape *tp, const TokenStream *s, size_t T, size_t stride, size_t B,
                 const ByteCounter *bc, size_t max_tokens, EvalResult *r) {
    memset(r, 0, sizeof *r);
    double t0 = now_seconds();
    if (stride == 0 || stride > T) stride = T;
    size_t N = s->ntokens;
    if (N < 2) {
        finish(r, bc, t0);
        return 0;
    }
    size_t ntargets = N - 1;
    if (max_tokens && max_tokens < ntargets) ntargets = max_tokens;
    /* window k covers inputs [start, start+T) with start = k*stride (clamped so the window fits);
     * it scores targets from max(prev_end, start) to start+T */
    int32_t *x = xmalloc(B * T * sizeof(int32_t)), *y = xmalloc(B * T * sizeof(int32_t));
    float *per = xmalloc(B * T * sizeof(float));
    size_t *score_from = xmalloc(B * sizeof(size_t));
    size_t scored_to = 0; /* targets [0, scored_to) done; target i predicts token i+1 */
    while (scored_to < ntargets) {
        size_t nb = 0;
        while (nb < B && scored_to < ntargets) {
            size_t end = TERN_MIN(scored_to + stride, ntargets); /* new targets [scored_to, end) */
            if (scored_to == 0) end = TERN_MIN(T, ntargets);
            size_t start = end > T ? end - T : 0;
            size_t len = end - start;
            /* pad a short final window by repeating its first token; padded rows are not scored */
            stream_copy(s, start, len, x + nb * T);
            stream_copy(s, start + 1, len, y + nb * T);
            for (size_t i = len; i < T; i++) {
                x[nb * T + i] = x[nb * T];
                y[nb * T + i] = y[nb * T];
            }
            score_from[nb] = (scored_to - start) | ((len) << 32);
            scored_to = end;
            nb++;
        }
        tape_reset(tp);
        tape_no_grad_begin(tp);
        m->ops->loss(m, tp, x, y, nb, T, per, 0);
        tape_no_grad_end(tp);
        for (size_t b = 0; b < nb; b++) {
            size_t from = score_from[b] & 0xffffffffu, len = score_from[b] >> 32;
            for (size_t i = from; i < len; i++) {
                r->loss_sum += per[b * T + i];
                r->tokens += 1;
                if (bc) r->bytes += bpb_token_bytes(bc, x[b * T + i], y[b * T + i]);
            }
        }
        r->windows += nb;
    }
    tape_reset(tp);
    xfree(x);
    xfree(y);
    xfree(per);
    xfree(score_from);
    finish(r, bc, t0);
    return 0;
}

#include "train/eval.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/util.h"
#include "model/lora.h"
#include "optim/optimizer.h"
#include <cjson/cJSON.h>

static void finish(EvalResult *r, const ByteCounter *bc, double t0) {
    r->val_loss = r->tokens > 0 ? r->loss_sum / r->tokens : NAN;
    r->val_bpb = bc ? bpb_value(r->loss_sum, r->bytes) : -1.0;
    r->seconds = now_seconds() - t0;
}

int eval_standard(Model *m, Tape *tp, const TokenStream *s, size_t T, size_t B, const ByteCounter *bc,
                  size_t max_tokens, const Dist *dist, EvalResult *r) {
    memset(r, 0, sizeof *r);
    double t0 = now_seconds();
    size_t nw = stream_val_windows(s, T);
    if (max_tokens && max_tokens / T < nw) nw = max_tokens / T > 0 ? max_tokens / T : 1;
    size_t rank = dist ? (size_t)dist->rank : 0, world = dist ? (size_t)dist->world : 1;
    int32_t *x = xmalloc(B * T * sizeof(int32_t)), *y = xmalloc(B * T * sizeof(int32_t));
    float *per = xmalloc(B * T * sizeof(float));
    for (size_t w0 = rank * B; w0 < nw; w0 += B * world) {
        size_t nb = TERN_MIN(B, nw - w0);
        for (size_t b = 0; b < nb; b++) stream_val_window(s, T, w0 + b, x + b * T, y + b * T);
        tape_reset(tp);
        tape_no_grad_begin(tp);
        model_loss(m, tp, x, y, nb, T, per, 0);
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
    if (world > 1) {
        double sums[4] = {r->loss_sum, r->tokens, r->bytes, (double)r->windows};
        dist_allreduce_sum_f64(dist, sums, 4);
        r->loss_sum = sums[0];
        r->tokens = sums[1];
        r->bytes = sums[2];
        r->windows = (size_t)sums[3];
    }
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
        model_loss(m, tp, x, y, nb, T, per, 0);
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

static const char *const kDefaultTargets[] = {"*attn.c_q.weight", "*attn.c_v.weight"};

void ttt_defaults(TttOptions *o) {
    memset(o, 0, sizeof *o);
    o->rank = 8;
    o->chunk = 256;
    o->context = 1024;
    o->lr = 0.01;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-10;
    o->seed = 1234;
    o->head = 1;
    o->targets = kDefaultTargets;
    o->ntargets = 2;
}

int eval_ttt(Model *m, Tape *tp, const TokenStream *s, int32_t bos, const ByteCounter *bc, const TttOptions *o,
             size_t max_tokens, EvalResult *r, Err *err) {
    memset(r, 0, sizeof *r);
    double t0 = now_seconds();
    if (o->context == 0 || o->context > m->max_seq_len)
        return err_set(err, "ttt: context must be in [1, %zu], got %zu", m->max_seq_len, o->context);
    if (o->chunk == 0 || o->chunk > o->context)
        return err_set(err, "ttt: chunk (%zu) must be in [1, context = %zu]: every scored target needs its window", o->chunk, o->context);
    int n = lora_attach(m, o->rank, o->targets, o->ntargets, o->head, err);
    if (n < 0) return -1;
    if (n == 0) {
        lora_detach(m);
        return err_set(err, "ttt: no weight matches the adapter targets");
    }
    char gcfg[256];
    snprintf(gcfg, sizeof gcfg,
             "{\"groups\":{\"lora\":{\"type\":\"adamw\",\"lr\":%.17g,\"beta1\":%.17g,\"beta2\":%.17g,\"eps\":%.17g}},"
             "\"rules\":[{\"match\":\"*\",\"group\":\"lora\"}]}",
             o->lr, o->beta1, o->beta2, o->eps);
    cJSON *ocfg = cJSON_Parse(gcfg);
    Optimizer opt;
    int rc = optimizer_init(&opt, &m->lora->ps, ocfg, NULL, NULL, err);
    cJSON_Delete(ocfg);
    if (rc) {
        lora_detach(m);
        return -1;
    }
    /* only the adapters learn: the base weights get no gradient (and no weight-gradient GEMMs) */
    for (size_t i = 0; i < m->ps.n; i++) m->ps.t[i]->requires_grad = 0;
    size_t *starts = NULL, nd = 0;
    stream_documents(s, bos, &starts, &nd);
    size_t C = o->context;
    int32_t *x = xmalloc(C * sizeof(int32_t)), *y = xmalloc(C * sizeof(int32_t)), *yt = xmalloc(C * sizeof(int32_t));
    float *per = xmalloc(C * sizeof(float));
    Rng rng;
    rng_seed(&rng, o->seed);
    size_t scored = 0;
    for (size_t d = 0; d < nd && (!max_tokens || scored < max_tokens); d++) {
        size_t begin = starts[d];
        size_t end = d + 1 < nd ? starts[d + 1] : s->ntokens - 1; /* the next BOS is the last target */
        size_t L = end - begin;                                    /* targets d[1..L] */
        if (L == 0) continue;
        lora_reset(m, &rng);
        memset(opt.state_a, 0, m->lora->ps.total * sizeof(float));
        memset(opt.state_b, 0, m->lora->ps.total * sizeof(float));
        opt.step = 0;
        for (size_t c0 = 1; c0 <= L; c0 += o->chunk) {
            size_t c1 = TERN_MIN(c0 + o->chunk - 1, L); /* targets c0..c1 (document offsets) */
            size_t win_end = c1;                         /* inputs end at offset c1-1 */
            size_t win_start = win_end > C ? win_end - C : 0;
            size_t len = win_end - win_start;
            stream_copy(s, begin + win_start, len, x);
            stream_copy(s, begin + win_start + 1, len, y);
            size_t first = c0 - 1 - win_start; /* window index of the first chunk target */
            for (size_t i = 0; i < len; i++) yt[i] = i >= first ? y[i] : -1;
            tape_reset(tp);
            Tensor *loss = model_loss(m, tp, x, yt, 1, len, per, 0);
            for (size_t i = first; i < len; i++) {
                r->loss_sum += per[i];
                r->tokens += 1;
                if (bc) r->bytes += bpb_token_bytes(bc, x[i], y[i]);
            }
            scored += len - first;
            if (c1 < L) { /* train on the chunk just scored, unless it is the document's last */
                params_zero_grad(&m->lora->ps);
                tape_backward(tp, loss);
                optimizer_step(&opt, 1.0);
            }
        }
        r->windows++;
    }
    tape_reset(tp);
    for (size_t i = 0; i < m->ps.n; i++) m->ps.t[i]->requires_grad = 1;
    optimizer_free(&opt);
    lora_detach(m);
    xfree(starts);
    xfree(x);
    xfree(y);
    xfree(yt);
    xfree(per);
    finish(r, bc, t0);
    return 0;
}

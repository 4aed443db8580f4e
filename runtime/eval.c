/* eval.c — val_loss and val_bpb of an artifact on token shards, by the official rule exactly as
 * `tern eval` (train/eval.c eval_standard) applies it: the shards are concatenated in glob
 * order, cut into non-overlapping windows of T tokens (inputs tokens[wT, wT+T), targets shifted
 * by one, the last partial window dropped), each window scored from an empty context; sums of
 * cross-entropy (nats), tokens and bytes in double; bytes by data/bpb.c, the same code the
 * trainer uses. Shards are the parameter-golf .bin format (256 x int32 header: 20240520, 1,
 * count; then uint16 tokens), read here with plain stdio so the runtime needs no HDF5. */
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/rt_internal.h"

#define SHARD_MAGIC 20240520
#define SHARD_HEADER 1024

typedef struct Stream {
    uint16_t *tok;
    size_t n, cap;
} Stream;

static int read_shard(Stream *s, const char *path, size_t vocab, RtErr *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return rt_err(e, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rt_err(e, "%s: not a regular file (a folder?): not a token shard", path);
    }
    uint8_t hdr[SHARD_HEADER];
    if (fread(hdr, 1, SHARD_HEADER, f) != SHARD_HEADER) {
        fclose(f);
        return rt_err(e, "%s: shorter than the 1024-byte shard header (truncated or not a shard)", path);
    }
    int32_t magic = (int32_t)tern_rd_u32(hdr), ver = (int32_t)tern_rd_u32(hdr + 4), cnt = (int32_t)tern_rd_u32(hdr + 8);
    if (magic != SHARD_MAGIC) {
        fclose(f);
        return rt_err(e, "%s: wrong magic %d (expected %d): not a token shard", path, magic, SHARD_MAGIC);
    }
    if (ver != 1 || cnt < 0) {
        fclose(f);
        return ver != 1 ? rt_err(e, "%s: unsupported shard version %d (expected 1)", path, ver)
                        : rt_err(e, "%s: header says %d tokens (truncated or corrupt)", path, cnt);
    }
    size_t n = (size_t)cnt;
    if (s->n + n > s->cap) {
        size_t cap = (s->n + n) * 2;
        uint16_t *t = realloc(s->tok, cap * sizeof(uint16_t));
        if (!t) {
            fclose(f);
            return rt_err(e, "%s: out of memory", path);
        }
        s->tok = t;
        s->cap = cap;
    }
    uint8_t *raw = (uint8_t *)(s->tok + s->n);
    size_t got = fread(raw, 1, 2 * n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != 2 * n || extra)
        return rt_err(e, "%s: header says %zu tokens but the file has %s bytes (truncated or corrupt)", path, n,
                      extra ? "more" : "fewer");
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8);
        if (v >= vocab) return rt_err(e, "%s: token %zu is %u, outside the model's vocabulary of %zu", path, i, v, vocab);
        s->tok[s->n + i] = v;
    }
    s->n += n;
    return 0;
}

static int open_stream(Stream *s, const char *pattern, size_t vocab, RtErr *e) {
    char *copy = strdup(pattern);
    if (!copy) return rt_err(e, "out of memory");
    int rc = 0, nfiles = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        glob_t g;
        memset(&g, 0, sizeof g);
        int r = glob(tok, 0, NULL, &g);
        if (r == GLOB_NOMATCH || (r == 0 && g.gl_pathc == 0)) rc = rt_err(e, "%s: no files match", tok);
        else if (r) rc = rt_err(e, "%s: glob failed", tok);
        for (size_t i = 0; !rc && i < g.gl_pathc; i++) { /* glob sorts, as data/shard.c relies on */
            const char *p = g.gl_pathv[i];
            size_t L = strlen(p);
            if (L > 3 && !strcmp(p + L - 3, ".h5")) rc = rt_err(e, "%s: HDF5 shards are not read by the runtime (use .bin)", p);
            else rc = read_shard(s, p, vocab, e);
            nfiles++;
        }
        globfree(&g);
    }
    free(copy);
    if (!rc && !nfiles) rc = rt_err(e, "%s: no files", pattern);
    return rc;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int trt_eval(const TrtModel *m, const char *shards, size_t T, size_t max_tokens, int threads, TrtEvalResult *r, char *err,
             size_t errlen) {
    RtErr e = {{0}};
    memset(r, 0, sizeof *r);
    double t0 = now();
    if (!T) T = m->info.eval_seq_len;
    if (T == 0 || T > m->info.seq_len) {
        rt_err(&e, "--seq-len %zu must be in [1, %zu] (the model's seq_len)", T, m->info.seq_len);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    Stream s = {0};
    if (open_stream(&s, shards, m->info.vocab_size, &e)) {
        free(s.tok);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    size_t nw = s.n > 1 ? (s.n - 1) / T : 0;
    if (nw == 0) { /* nothing to score is an error, not "val_loss nan" */
        free(s.tok);
        rt_err(&e, "%s: %zu tokens: too few for one %zu-token window (needs %zu; more data or a smaller --seq-len)", shards, s.n,
               T, T + 1);
        rt_err_out(&e, err, errlen);
        return -1;
    }
    if (max_tokens && max_tokens / T < nw) nw = max_tokens / T > 0 ? max_tokens / T : 1;
    size_t V = m->info.vocab_size;
    /* windows are independent: one single-threaded session per thread, windows handed out
     * dynamically, results summed in window order afterwards (the same sums for any thread
     * count). Coarse parallelism needs no barrier per layer, which matters on a busy machine. */
    int nt = threads > 0 ? threads : RT_MAX_THREADS();
    if (nt < 1) nt = 1;
    if ((size_t)nt > nw && nw > 0) nt = (int)nw;
    double *wloss = calloc(nw ? nw : 1, sizeof(double)), *wbytes = calloc(nw ? nw : 1, sizeof(double));
    int rc = wloss && wbytes ? 0 : rt_err(&e, "out of memory");
    int failed = 0;
    char ferr[512] = "";
#pragma omp parallel num_threads(nt) if (nt > 1 && !rc)
    {
        TrtSessionOptions so = {0, 1, T};
        TrtSession *sess = NULL;
        char terr[512] = "";
        float *logits = malloc(T * V * sizeof(float));
        int32_t *x = malloc(T * sizeof(int32_t)), *y = malloc(T * sizeof(int32_t));
        int ok = !rc && logits && x && y;
        if (!ok) snprintf(terr, sizeof terr, "out of memory for a %zu x %zu logits window", T, V);
        if (ok && trt_session_new(m, &so, &sess, terr, sizeof terr)) ok = 0;
#pragma omp for schedule(dynamic, 1)
        for (size_t w = 0; w < nw; w++) {
            if (!ok) continue;
            for (size_t i = 0; i < T; i++) {
                x[i] = s.tok[w * T + i];
                y[i] = s.tok[w * T + i + 1];
            }
            trt_session_reset(sess);
            if (trt_session_observe(sess, x, T, logits, terr, sizeof terr)) {
                ok = 0;
                continue;
            }
            double ls = 0;
            for (size_t i = 0; i < T; i++) {
                /* log-sum-exp of the (already softcapped) logits in double; each position's loss
                 * rounded to float as the trainer's per-token losses are */
                const float *z = logits + i * V;
                double mx = z[0];
                for (size_t c = 1; c < V; c++) mx = z[c] > mx ? z[c] : mx;
                double sum = 0;
                for (size_t c = 0; c < V; c++) sum += exp((double)z[c] - mx);
                ls += (double)(float)(mx + log(sum) - (double)z[y[i]]);
            }
            wloss[w] = ls;
            wbytes[w] = m->have_bc ? bpb_count(&m->bc, x, y, T) : 0;
        }
        if (!ok) {
#pragma omp critical
            {
                if (!failed) snprintf(ferr, sizeof ferr, "%s", terr);
                failed = 1;
            }
        }
        trt_session_free(sess);
        free(logits);
        free(x);
        free(y);
    }
    if (!rc && failed) rc = rt_err(&e, "%s", ferr);
    /* the window sums in order, as train/eval.c adds them */
    for (size_t w = 0; w < nw && !rc; w++) {
        r->loss_sum += wloss[w];
        r->tokens += (double)T;
        r->bytes += wbytes[w];
        r->windows++;
    }
    free(wloss);
    free(wbytes);
    free(s.tok);
    if (rc) {
        rt_err_out(&e, err, errlen);
        return -1;
    }
    r->seq_len = T;
    r->val_loss = r->tokens > 0 ? r->loss_sum / r->tokens : NAN;
    r->val_bpb = m->have_bc ? bpb_value(r->loss_sum, r->bytes) : -1.0;
    r->seconds = now() - t0;
    return 0;
}

/* tern generate --ckpt F [--prompt TEXT | --prompt - | --prompt-file F] [-n 64] [--temp 0.8] [--top-p 0.95] [--seed 42]
 *
 * Samples text from any checkpoint the framework can load (trained runs, imported teachers), so a
 * model can be looked at before it is exported. The framework recomputes the window for every
 * new token (no KV cache: that is tern-run's job); fine for small models. The context is a
 * sliding window: each token is predicted from the last model.seq_len tokens, so any -n runs in
 * bounded memory and time per token. The prompt is encoded with the checkpoint's tokenizer (or
 * --tokenizer) after a BOS; text is streamed to stdout as it decodes; --ids also prints the ids.
 * --temp 0 is greedy. The options' rules are data/gen_args.h's, shared with tern-run. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/gen_args.h"
#include "data/tokenizer.h"
#include "kernels/rng.h"
#include "train/cli.h"
#include "train/model_io.h"

static void usage(FILE *f) {
    fprintf(f, "usage: tern generate --ckpt F [options]\n"
               "  --prompt TEXT     text to continue (default: empty, i.e. BOS only); --prompt - reads standard input\n"
               "  --prompt-file F   the prompt is the text of file F\n"
               "  -n, --tokens N    tokens to generate (default 64, at most 1000000)\n"
               "  --temp T          temperature (default 0.8; 0 = greedy)\n"
               "  --top-p P         nucleus sampling mass, in (0, 1] (default 0.95)\n"
               "  --seed S          sampling seed (default 42)\n"
               "  --tokenizer F     tokenizer (default: the checkpoint's data.tokenizer)\n"
               "  --ema             use the checkpoint's EMA weights\n"
               "  --ids             also print the generated ids (one line, after the text)\n"
               "  --threads N       OpenMP/BLAS threads\n"
               "Context: a sliding window. Each token is predicted from the last model.seq_len tokens (prompt and\n"
               "generated text alike); earlier ones are forgotten, so any -n works.\n");
}

typedef struct Cand {
    float p;
    int32_t id;
} Cand;

static int cand_desc(const void *a, const void *b) {
    float x = ((const Cand *)a)->p, y = ((const Cand *)b)->p;
    return (x < y) - (x > y);
}

/* Picks the next id from logits z[V]: argmax when temp <= 0, else a sample from the smallest
 * set of most likely ids whose probability (at temperature temp) reaches top_p. */
static int32_t sample(const float *z, size_t V, double temp, double top_p, Rng *rng, Cand *c) {
    size_t best = 0;
    for (size_t i = 1; i < V; i++)
        if (z[i] > z[best]) best = i;
    if (temp <= 0) return (int32_t)best;
    double sum = 0;
    for (size_t i = 0; i < V; i++) {
        c[i].p = (float)exp(((double)z[i] - z[best]) / temp);
        c[i].id = (int32_t)i;
        sum += c[i].p;
    }
    qsort(c, V, sizeof *c, cand_desc);
    double mass = 0;
    size_t k = 0;
    while (k < V && (k == 0 || mass < top_p * sum)) mass += c[k++].p;
    double u = rng_uniform(rng) * mass, acc = 0;
    for (size_t i = 0; i < k; i++) {
        acc += c[i].p;
        if (u < acc) return c[i].id;
    }
    return c[k - 1].id;
}

/* Writes the text of generated token `id`: its bytes, except that the first text of all is
 * decoded alone (a SentencePiece tokenizer drops the leading space of a text's first piece). */
static int print_piece(const Tokenizer *tok, int32_t id, size_t *printed, Err *err) {
    char buf[256];
    size_t len = tokenizer_piece_bytes(tok, id, buf, sizeof buf);
    if (*printed == 0 && len) {
        char *text = NULL;
        if (tokenizer_decode(tok, &id, 1, &text, &len, err)) return -1;
        fwrite(text, 1, len, stdout);
        free(text);
    } else {
        fwrite(buf, 1, TERN_MIN(len, sizeof buf), stdout);
    }
    *printed += len;
    fflush(stdout);
    return 0;
}

/* Samples up to n tokens after the W-token window ctx[0..*nctx) (its last W ids are the context),
 * streaming their text; the generated ids go to out[0..*nout) (EOS ends early). */
static int generate(Model *m, const Tokenizer *tok, int32_t *ctx, size_t nctx, size_t n, const GenArgs *g, size_t printed,
                    int32_t *out, size_t *nout, Err *err) {
    size_t W = m->max_seq_len, V = m->vocab;
    int32_t eos = tokenizer_eos(tok);
    Cand *cand = xmalloc(V * sizeof(Cand));
    Rng rng;
    rng_seed(&rng, g->seed);
    Tape tp;
    tape_init(&tp, 0);
    int rc = 0;
    *nout = 0;
    for (size_t step = 0; step < n && !rc; step++) {
        tape_reset(&tp);
        tape_no_grad_begin(&tp);
        Tensor *z = model_logits(m, &tp, ctx, 1, nctx);
        tape_no_grad_end(&tp);
        int32_t id = sample(z->data + (nctx - 1) * V, V, g->temp, g->top_p, &rng, cand);
        out[(*nout)++] = id;
        if (id == eos) break;
        if (nctx == W) memmove(ctx, ctx + 1, --nctx * sizeof(int32_t)); /* slide: forget the oldest */
        ctx[nctx++] = id;
        rc = print_piece(tok, id, &printed, err);
    }
    tape_free(&tp);
    xfree(cand);
    return rc;
}

/* Parses the command line into g and the rest; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, GenArgs *g, const char **ckpt, const char **tokpath, long *threads, int *use_ema,
                      int *print_ids) {
    const char *v;
    char msg[512];
    for (int i = 1; i < argc; i++) {
        int r = gen_args_parse(g, argc, argv, &i, msg, sizeof msg);
        if (r < 0) {
            fprintf(stderr, "tern generate: %s\n", msg);
            return 2;
        }
        if (r > 0) continue;
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "ckpt"))) *ckpt = v;
        else if ((v = cli_value(argc, argv, &i, "tokenizer"))) *tokpath = v;
        else if ((v = cli_value(argc, argv, &i, "threads"))) *threads = strtol(v, NULL, 10);
        else if (cli_is_flag(argv[i], "ema")) *use_ema = 1;
        else if (cli_is_flag(argv[i], "ids")) *print_ids = 1;
        else {
            fprintf(stderr, "tern generate: unknown argument %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!*ckpt) {
        usage(stderr);
        return 2;
    }
    return -1;
}

int cmd_generate(int argc, char **argv) {
    const char *ckpt = NULL, *tokpath = NULL;
    long threads = 0;
    int use_ema = 0, print_ids = 0;
    GenArgs g = {.n = 64, .temp = 0.8, .top_p = 0.95, .seed = 42};
    int status = parse_args(argc, argv, &g, &ckpt, &tokpath, &threads, &use_ema, &print_ids);
    if (status >= 0) return status;
    if (threads > 0) tern_set_threads((int)threads);
    Err err = {0};
    Model *m = NULL;
    cJSON *cfg = NULL;
    Tokenizer *tok = NULL;
    TokenBuf buf = {0};
    int32_t *out = NULL;
    char *text = NULL;
    status = 1;
    if (gen_args_read_prompt(&g, &err) || model_load_checkpoint(ckpt, use_ema, &m, &cfg, &err)) goto out;
    if (!tokpath) {
        const cJSON *tp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "data"), "tokenizer");
        if (cJSON_IsString(tp) && tp->valuestring[0]) tokpath = tp->valuestring;
    }
    if (!tokpath) {
        err_set(&err, "%s: no tokenizer in the checkpoint's config; pass --tokenizer", ckpt);
        goto out;
    }
    if (tokenizer_load(&tok, tokpath, &err)) goto out;
    if (tokenizer_vocab_size(tok) > m->vocab) {
        err_set(&err, "%s: tokenizer has %zu ids, the model %zu", tokpath, tokenizer_vocab_size(tok), m->vocab);
        goto out;
    }
    int32_t bos = tokenizer_bos(tok);
    if (bos >= 0) {
        buf.ids = xmalloc(16 * sizeof(int32_t));
        buf.cap = 16;
        buf.ids[buf.n++] = bos;
    }
    if (tokenizer_encode(tok, g.prompt, g.prompt_len, &buf, &err)) goto out;
    if (buf.n == 0) {
        err_set(&err, "empty prompt and the tokenizer has no BOS");
        goto out;
    }
    size_t printed = 0, W = m->max_seq_len, nctx = TERN_MIN(buf.n, W), nout = 0;
    if (tokenizer_decode(tok, buf.ids + (bos >= 0), buf.n - (bos >= 0), &text, &printed, &err)) goto out;
    fwrite(text, 1, printed, stdout);
    out = xmalloc(g.n * sizeof(int32_t));
    /* the window: the prompt's last W ids (the buffer holds at least W from here on) */
    if (buf.cap < W) buf.ids = xrealloc(buf.ids, (buf.cap = W) * sizeof(int32_t));
    memmove(buf.ids, buf.ids + buf.n - nctx, nctx * sizeof(int32_t));
    if (generate(m, tok, buf.ids, nctx, g.n, &g, printed, out, &nout, &err)) goto out;
    printf("\n");
    if (print_ids) {
        for (size_t i = 0; i < nout; i++) printf("%s%d", i ? " " : "", out[i]);
        printf("\n");
    }
    status = 0;
out:
    if (status) fprintf(stderr, "tern generate: %s\n", err.msg);
    free(text);
    xfree(out);
    gen_args_free(&g);
    tokenbuf_free(&buf);
    tokenizer_free(tok);
    cJSON_Delete(cfg);
    model_free(m);
    return status;
}

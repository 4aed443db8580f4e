/* tern generate --ckpt F [--prompt TEXT] [-n 64] [--temp 0.8] [--top-p 0.95] [--seed 42]
 *
 * Samples text from any checkpoint the framework can load (trained runs, imported teachers), so a
 * model can be looked at before it is exported. The framework recomputes the window for every
 * new token (no KV cache: that is tern-run's job); fine for small models. The prompt is encoded
 * with the checkpoint's tokenizer (or --tokenizer) after a BOS; text is streamed to stdout as it
 * decodes; --ids also prints the ids. --temp 0 is greedy. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "kernels/rng.h"
#include "train/cli.h"
#include "train/model_io.h"

static void usage(FILE *f) {
    fprintf(f, "usage: tern generate --ckpt F [options]\n"
               "  --prompt TEXT     text to continue (default: empty, i.e. BOS only)\n"
               "  -n N              tokens to generate (default 64)\n"
               "  --temp T          temperature (default 0.8; 0 = greedy)\n"
               "  --top-p P         nucleus sampling mass (default 0.95)\n"
               "  --seed S          sampling seed (default 42)\n"
               "  --tokenizer F     tokenizer (default: the checkpoint's data.tokenizer)\n"
               "  --ema             use the checkpoint's EMA weights\n"
               "  --ids             also print the generated ids (one line, after the text)\n"
               "  --threads N       OpenMP/BLAS threads\n");
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

int cmd_generate(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = "", *tokpath = NULL, *v;
    long n = 64, seed = 42, threads = 0;
    double temp = 0.8, top_p = 0.95;
    int use_ema = 0, print_ids = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "ckpt"))) ckpt = v;
        else if ((v = cli_value(argc, argv, &i, "prompt"))) prompt = v;
        else if ((v = cli_value(argc, argv, &i, "tokenizer"))) tokpath = v;
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n = strtol(argv[++i], NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "temp"))) temp = strtod(v, NULL);
        else if ((v = cli_value(argc, argv, &i, "top-p"))) top_p = strtod(v, NULL);
        else if ((v = cli_value(argc, argv, &i, "seed"))) seed = strtol(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "threads"))) threads = strtol(v, NULL, 10);
        else if (cli_is_flag(argv[i], "ema")) use_ema = 1;
        else if (cli_is_flag(argv[i], "ids")) print_ids = 1;
        else {
            fprintf(stderr, "tern generate: unknown argument %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!ckpt) {
        usage(stderr);
        return 2;
    }
    if (n < 1 || n > 1000000 || !(temp >= 0) || !(top_p > 0 && top_p <= 1)) {
        fprintf(stderr, "tern generate: need -n in [1, 1e6], --temp >= 0 and --top-p in (0, 1]\n");
        return 2;
    }
    if (threads > 0) tern_set_threads((int)threads);
    Err err = {0};
    Model *m = NULL;
    cJSON *cfg = NULL;
    Tokenizer *tok = NULL;
    TokenBuf buf = {0};
    Cand *cand = NULL;
    char *text = NULL;
    int status = 1;
    if (model_load_checkpoint(ckpt, use_ema, &m, &cfg, &err)) goto out;
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
    int32_t bos = tokenizer_bos(tok), eos = tokenizer_eos(tok);
    if (bos >= 0) {
        buf.ids = xmalloc(16 * sizeof(int32_t));
        buf.cap = 16;
        buf.ids[buf.n++] = bos;
    }
    if (tokenizer_encode(tok, prompt, strlen(prompt), &buf, &err)) goto out;
    if (buf.n == 0) {
        err_set(&err, "empty prompt and the tokenizer has no BOS");
        goto out;
    }
    size_t nprompt = buf.n, W = m->max_seq_len, V = m->vocab;
    cand = xmalloc(V * sizeof(Cand));
    Rng rng;
    rng_seed(&rng, (uint64_t)seed);
    Tape tp;
    tape_init(&tp, 0);
    size_t printed = 0;
    if (tokenizer_decode(tok, buf.ids + (bos >= 0), buf.n - (bos >= 0), &text, &printed, &err)) goto out_tape;
    fwrite(text, 1, printed, stdout);
    free(text);
    text = NULL;
    for (long step = 0; step < n; step++) {
        size_t T = buf.n < W ? buf.n : W;
        tape_reset(&tp);
        tape_no_grad_begin(&tp);
        Tensor *z = model_logits(m, &tp, buf.ids + buf.n - T, 1, T);
        tape_no_grad_end(&tp);
        int32_t id = sample(z->data + (T - 1) * V, V, temp, top_p, &rng, cand);
        if (buf.n == buf.cap) {
            buf.cap *= 2;
            buf.ids = xrealloc(buf.ids, buf.cap * sizeof(int32_t));
        }
        buf.ids[buf.n++] = id;
        if (id == eos) break;
        size_t len = 0;
        /* decode everything after BOS and print what is new (pieces may complete UTF-8 bytes) */
        if (tokenizer_decode(tok, buf.ids + (bos >= 0), buf.n - (bos >= 0), &text, &len, &err)) goto out_tape;
        if (len > printed) fwrite(text + printed, 1, len - printed, stdout);
        printed = len > printed ? len : printed;
        fflush(stdout);
        free(text);
        text = NULL;
    }
    printf("\n");
    if (print_ids) {
        for (size_t i = nprompt; i < buf.n; i++) printf("%s%d", i > nprompt ? " " : "", buf.ids[i]);
        printf("\n");
    }
    status = 0;
out_tape:
    tape_free(&tp);
out:
    if (status) fprintf(stderr, "tern generate: %s\n", err.msg);
    free(text);
    xfree(cand);
    tokenbuf_free(&buf);
    tokenizer_free(tok);
    cJSON_Delete(cfg);
    model_free(m);
    return status;
}

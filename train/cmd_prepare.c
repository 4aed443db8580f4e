/* tern prepare INPUT... --tokenizer MODEL -o OUTDIR: text or JSONL -> token shards.
 *
 * Each document becomes BOS + its tokens. Documents are shuffled by --seed (unless
 * --no-shuffle) and the first --val-docs N (or --val-fraction f) go to the validation split.
 * Encoding runs in parallel over documents (OpenMP) with the order preserved. On any error
 * (missing "text" field, invalid UTF-8, ...) nothing is left behind: shards already written by
 * this run are removed. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/shard.h"
#include "data/tokenizer.h"
#include "kernels/gemm.h"
#include "kernels/rng.h"
#include "train/cli.h"
#include "train/progress.h"

typedef struct Doc {
    const char *text;
    size_t len;
    const char *file;
    size_t line; /* 1-based line for JSONL, 0 otherwise */
} Doc;

typedef struct Inputs {
    char **bufs;
    size_t nbufs;
    Doc *docs;
    size_t ndocs, cap;
    char **jsonl_texts; /* decoded JSON strings we own */
    size_t njson;
} Inputs;

static void add_doc(Inputs *in, const char *text, size_t len, const char *file, size_t line) {
    if (in->ndocs == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 1024;
        in->docs = xrealloc(in->docs, in->cap * sizeof(Doc));
    }
    in->docs[in->ndocs++] = (Doc){text, len, file, line};
}

static char *read_file(const char *path, size_t *len, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!b || got != (size_t)n) {
        free(b);
        err_set(err, "%s: read failed", path);
        return NULL;
    }
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int load_inputs(Inputs *in, char **files, int nfiles, const char *split, Err *err) {
    for (int i = 0; i < nfiles; i++) {
        size_t len;
        char *b = read_file(files[i], &len, err);
        if (!b) return -1;
        in->bufs = xrealloc(in->bufs, (in->nbufs + 1) * sizeof(char *));
        in->bufs[in->nbufs++] = b;
        if (ends_with(files[i], ".jsonl") || ends_with(files[i], ".json")) {
            size_t line = 0;
            for (char *p = b; p < b + len;) {
                char *e = memchr(p, '\n', (size_t)(b + len - p));
                if (!e) e = b + len;
                line++;
                *e = 0;
                char *q = p;
                while (*q == ' ' || *q == '\t' || *q == '\r') q++;
                if (*q) {
                    cJSON *o = cJSON_Parse(p);
                    const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
                    if (!o || !cJSON_IsString(t)) {
                        cJSON_Delete(o);
                        return err_set(err, "%s:%zu: %s", files[i], line,
                                       o ? "no string \"text\" field" : "invalid JSON");
                    }
                    char *s = xstrdup(t->valuestring);
                    in->jsonl_texts = xrealloc(in->jsonl_texts, (in->njson + 1) * sizeof(char *));
                    in->jsonl_texts[in->njson++] = s;
                    add_doc(in, s, strlen(s), files[i], line);
                    cJSON_Delete(o);
                }
                p = e + 1;
            }
        } else if (!strcmp(split, "file")) {
            if (len) add_doc(in, b, len, files[i], 0);
        } else if (!strcmp(split, "line")) {
            for (char *p = b; p < b + len;) {
                char *e = memchr(p, '\n', (size_t)(b + len - p));
                if (!e) e = b + len;
                if (e > p) add_doc(in, p, (size_t)(e - p), files[i], 0);
                p = e + 1;
            }
        } else { /* blank: paragraphs separated by blank lines */
            char *p = b, *end = b + len;
            while (p < end) {
                while (p < end && (*p == '\n' || *p == '\r')) p++;
                char *s = p;
                while (p < end) {
                    char *e = memchr(p, '\n', (size_t)(end - p));
                    if (!e) {
                        p = end;
                        break;
                    }
                    char *n = e + 1;
                    if (n < end && (*n == '\n' || (*n == '\r' && n + 1 < end && n[1] == '\n'))) {
                        p = e;
                        break;
                    }
                    p = n;
                }
                if (p > s) add_doc(in, s, (size_t)(p - s), files[i], 0);
            }
        }
    }
    if (in->ndocs == 0) return err_set(err, "no documents in the input");
    return 0;
}

static void free_inputs(Inputs *in) {
    for (size_t i = 0; i < in->nbufs; i++) free(in->bufs[i]);
    for (size_t i = 0; i < in->njson; i++) free(in->jsonl_texts[i]);
    xfree(in->bufs);
    xfree(in->jsonl_texts);
    xfree(in->docs);
}

typedef struct Writer {
    const char *dir, *name, *split;
    uint32_t *buf;
    size_t n, cap, shard_tokens;
    size_t nshards, total;
    int h5;
    char **written;
    size_t nwritten;
} Writer;

static int writer_flush(Writer *w, Err *err) {
    if (!w->n) return 0;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s_%s_%06zu.%s", w->dir, w->name, w->split, w->nshards, w->h5 ? "h5" : "bin");
    int rc = w->h5 ? shard_write_h5(path, w->buf, w->n, err) : shard_write_bin(path, w->buf, w->n, err);
    if (rc) return -1;
    w->written = xrealloc(w->written, (w->nwritten + 1) * sizeof(char *));
    w->written[w->nwritten++] = xstrdup(path);
    w->nshards++;
    w->n = 0;
    return 0;
}

static int writer_add(Writer *w, const int32_t *ids, size_t n, Err *err) {
    for (size_t i = 0; i < n; i++) {
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 1 << 20;
            if (w->cap > w->shard_tokens) w->cap = w->shard_tokens;
            w->buf = xrealloc(w->buf, w->cap * sizeof(uint32_t));
        }
        w->buf[w->n++] = (uint32_t)ids[i];
        w->total++;
        if (w->n == w->shard_tokens && writer_flush(w, err)) return -1;
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern prepare INPUT... --tokenizer MODEL -o OUTDIR [options]\n"
            "  INPUT             .txt files (documents per --split) or .jsonl with a \"text\" field per line\n"
            "  --name NAME       shard name prefix (default: data) -> OUTDIR/NAME_{train,val}_000000.bin\n"
            "  --val-docs N      first N shuffled documents form the validation split\n"
            "  --val-fraction F  or this fraction of the documents (default 0: no validation split)\n"
            "  --split MODE      for .txt: file (one document per file, default) | blank (paragraphs) | line\n"
            "  --shard-tokens N  tokens per shard (default 100000000)\n"
            "  --seed S          document shuffle seed (default 1337); --no-shuffle keeps input order\n"
            "  --threads N       encoding threads\n"
            "  --allow-invalid-utf8  read malformed UTF-8 bytes as U+FFFD (as spm_encode) instead of failing\n"
            "  --json            summary as one JSON object on stdout\n");
}

int cmd_prepare(int argc, char **argv) {
    char **files = calloc((size_t)argc, sizeof(char *));
    int nfiles = 0, json = 0, shuffle = 1, threads = 0, allow_invalid = 0;
    const char *tokpath = NULL, *outdir = NULL, *name = "data", *split = "file";
    size_t val_docs = 0, shard_tokens = 100000000;
    double val_frac = 0;
    uint64_t seed = 1337;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_flag(argv[i], "help")) {
            usage(stdout);
            free(files);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "tokenizer"))) tokpath = v;
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) outdir = argv[++i];
        else if ((v = cli_value(argc, argv, &i, "out"))) outdir = v;
        else if ((v = cli_value(argc, argv, &i, "name"))) name = v;
        else if ((v = cli_value(argc, argv, &i, "val-docs"))) val_docs = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "val-fraction"))) val_frac = atof(v);
        else if ((v = cli_value(argc, argv, &i, "split"))) split = v;
        else if ((v = cli_value(argc, argv, &i, "shard-tokens"))) shard_tokens = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "seed"))) seed = strtoull(v, NULL, 10);
        else if ((v = cli_value(argc, argv, &i, "threads"))) threads = atoi(v);
        else if (cli_is_flag(argv[i], "no-shuffle")) shuffle = 0;
        else if (cli_is_flag(argv[i], "allow-invalid-utf8")) allow_invalid = 1;
        else if (cli_is_flag(argv[i], "json")) json = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "tern prepare: unknown option %s (see --help)\n", argv[i]);
            free(files);
            return 2;
        } else files[nfiles++] = argv[i];
    }
    if (!nfiles || !tokpath || !outdir) {
        usage(stderr);
        free(files);
        return 2;
    }
    if (strcmp(split, "file") && strcmp(split, "blank") && strcmp(split, "line")) {
        fprintf(stderr, "tern prepare: --split must be file, blank or line\n");
        free(files);
        return 2;
    }
    if (val_frac < 0 || val_frac >= 1 || shard_tokens == 0) {
        fprintf(stderr, "tern prepare: --val-fraction must be in [0, 1) and --shard-tokens > 0\n");
        free(files);
        return 2;
    }
    if (threads > 0) tern_set_threads(threads);
    Err err = {0};
    Tokenizer *tok = NULL;
    Inputs in;
    memset(&in, 0, sizeof in);
    Writer wt = {0}, wv = {0};
    int status = 1;
    size_t *order = NULL;
    TokenBuf *bufs = NULL;
    int *failed = NULL;
    Err *errs = NULL;
    TokScratch **scratch = NULL;
    int nthreads = omp_get_max_threads();
    if (tokenizer_load(&tok, tokpath, &err)) goto out;
    int32_t bos = tokenizer_bos(tok), unk = tokenizer_unk(tok);
    if (bos < 0) {
        err_set(&err, "%s: tokenizer has no BOS token", tokpath);
        goto out;
    }
    if (make_dirs(outdir, &err)) goto out;
    if (load_inputs(&in, files, nfiles, split, &err)) goto out;
    size_t nd = in.ndocs;
    order = xmalloc(nd * sizeof(size_t));
    for (size_t i = 0; i < nd; i++) order[i] = i;
    if (shuffle) {
        Rng r;
        rng_seed(&r, seed);
        for (size_t i = nd - 1; i > 0; i--) {
            size_t j = (size_t)rng_below(&r, i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    size_t nval = val_docs ? val_docs : (size_t)floor(val_frac * (double)nd);
    if (nval >= nd) {
        err_set(&err, "validation split (%zu documents) leaves no training documents (%zu in total)", nval, nd);
        goto out;
    }
    int big = tokenizer_vocab_size(tok) > 65536;
    wt = (Writer){.dir = outdir, .name = name, .split = "train", .shard_tokens = shard_tokens, .h5 = big};
    wv = (Writer){.dir = outdir, .name = name, .split = "val", .shard_tokens = shard_tokens, .h5 = big};
    size_t total_bytes = 0, done_bytes = 0, unk_count = 0, ntok_val = 0, bytes_val = 0;
    for (size_t i = 0; i < nd; i++) total_bytes += in.docs[i].len;
    const size_t CHUNK = 2048;
    bufs = xcalloc(CHUNK, sizeof(TokenBuf));
    failed = xcalloc(CHUNK, sizeof(int));
    errs = xcalloc(CHUNK, sizeof(Err));
    scratch = xcalloc((size_t)nthreads, sizeof(TokScratch *));
    Progress prog;
    progress_init(&prog);
    double t0 = now_seconds();
    for (size_t c0 = 0; c0 < nd; c0 += CHUNK) {
        size_t cn = TERN_MIN(CHUNK, nd - c0);
#pragma omp parallel for schedule(dynamic, 1)
        for (size_t k = 0; k < cn; k++) {
            const Doc *d = &in.docs[order[c0 + k]];
            int tid = omp_get_thread_num();
            if (!scratch[tid]) scratch[tid] = tokscratch_new(tok); /* once per thread, kept across chunks */
            bufs[k].n = 0;
            failed[k] = tokenizer_encode_ex(tok, scratch[tid], d->text, d->len, allow_invalid ? TOK_ENCODE_ALLOW_INVALID_UTF8 : 0,
                                            &bufs[k], &errs[k]) != 0;
        }
        for (size_t k = 0; k < cn; k++) {
            const Doc *d = &in.docs[order[c0 + k]];
            if (failed[k]) {
                if (d->line) err_set(&err, "%s:%zu: %s", d->file, d->line, errs[k].msg);
                else err_set(&err, "%s: %s", d->file, errs[k].msg);
                goto out;
            }
            int is_val = c0 + k < nval;
            Writer *w = is_val ? &wv : &wt;
            if (writer_add(w, &bos, 1, &err) || writer_add(w, bufs[k].ids, bufs[k].n, &err)) goto out;
            if (unk >= 0)
                for (size_t i = 0; i < bufs[k].n; i++) unk_count += bufs[k].ids[i] == unk;
            if (is_val) {
                ntok_val += bufs[k].n + 1;
                bytes_val += d->len;
            }
            done_bytes += d->len;
        }
        double el = now_seconds() - t0;
        char line[200];
        snprintf(line, sizeof line, "prepare: %zu/%zu documents, %.1f/%.1f MB, %.2f MB/s", TERN_MIN(c0 + cn, nd), nd,
                 done_bytes / 1e6, total_bytes / 1e6, done_bytes / 1e6 / fmax(el, 1e-9));
        progress_update(&prog, (double)done_bytes / (double)(total_bytes ? total_bytes : 1), line, 0);
    }
    if (writer_flush(&wt, &err) || writer_flush(&wv, &err)) goto out;
    progress_done(&prog);
    double secs = now_seconds() - t0;
    size_t ntok = wt.total + wv.total;
    double unk_rate = ntok ? (double)unk_count / (double)ntok : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tokenizer", tokpath);
        cJSON_AddStringToObject(o, "out_dir", outdir);
        cJSON_AddNumberToObject(o, "documents", (double)nd);
        cJSON_AddNumberToObject(o, "val_documents", (double)nval);
        cJSON_AddNumberToObject(o, "tokens", (double)ntok);
        cJSON_AddNumberToObject(o, "train_tokens", (double)wt.total);
        cJSON_AddNumberToObject(o, "val_tokens", (double)wv.total);
        cJSON_AddNumberToObject(o, "bytes", (double)total_bytes);
        cJSON_AddNumberToObject(o, "bytes_per_token", ntok ? (double)total_bytes / (double)(ntok - nd) : 0);
        cJSON_AddNumberToObject(o, "unknown_rate", unk_rate);
        cJSON_AddNumberToObject(o, "train_shards", (double)wt.nshards);
        cJSON_AddNumberToObject(o, "val_shards", (double)wv.nshards);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "mb_per_s", total_bytes / 1e6 / fmax(secs, 1e-9));
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    }
    fprintf(stderr,
            "tern prepare: %zu documents (%zu val), %zu tokens (%zu train / %zu val), %.2f MB, %.3f bytes/token, "
            "unknown rate %.4f%%, %.1fs (%.2f MB/s)\n  shards: %s/%s_train_*.%s (%zu)%s\n",
            nd, nval, ntok, wt.total, wv.total, total_bytes / 1e6,
            ntok > nd ? (double)total_bytes / (double)(ntok - nd) : 0.0, 100 * unk_rate, secs,
            total_bytes / 1e6 / fmax(secs, 1e-9), outdir, name, big ? "h5" : "bin", wt.nshards,
            wv.nshards ? ", plus the val split" : "");
    status = 0;
out:
    if (status) {
        fprintf(stderr, "tern prepare: %s\n", err.msg);
        for (size_t i = 0; i < wt.nwritten; i++) unlink(wt.written[i]);
        for (size_t i = 0; i < wv.nwritten; i++) unlink(wv.written[i]);
    }
    for (size_t i = 0; i < wt.nwritten; i++) free(wt.written[i]);
    for (size_t i = 0; i < wv.nwritten; i++) free(wv.written[i]);
    xfree(wt.written);
    xfree(wv.written);
    xfree(wt.buf);
    xfree(wv.buf);
    if (bufs)
        for (size_t k = 0; k < 2048; k++) tokenbuf_free(&bufs[k]);
    xfree(bufs);
    xfree(failed);
    xfree(errs);
    if (scratch)
        for (int i = 0; i < nthreads; i++) tokscratch_free(scratch[i]);
    xfree(scratch);
    xfree(order);
    free_inputs(&in);
    if (tok) tokenizer_free(tok);
    free(files);
    return status;
}

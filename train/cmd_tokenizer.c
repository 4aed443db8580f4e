/* tern tokenizer {train,encode,decode,info}: train tern's BPE, and encode / decode / inspect any
 * tokenizer data/tokenizer.h can load (SentencePiece .model, tern BPE, vocab.txt, "byte").
 * encode and decode follow spm_encode / spm_decode: one output line per input line. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "train/cli.h"
#include "train/progress.h"

static int fail(const char *fmt_msg) {
    fprintf(stderr, "tern tokenizer: %s\n", fmt_msg);
    return 1;
}

static int read_all(const char *path, char **data, size_t *len, Err *err) {
    FILE *f = path ? fopen(path, "rb") : stdin;
    *data = NULL;
    *len = 0;
    if (!f) return err_set(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    char *buf = xrealloc(NULL, cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = xrealloc(buf, cap *= 2);
    }
    buf[n] = 0; /* n < cap always: parsers may stop on the NUL */
    int bad = ferror(f);
    if (path) fclose(f);
    if (bad) {
        free(buf);
        return err_set(err, "%s: read error", path ? path : "<stdin>");
    }
    *data = buf;
    *len = n;
    return 0;
}

/* ---------------------------------------------------------------- train */

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: tern tokenizer train FILES... --vocab N -o OUT [--threads K] [--json]\n"
            "Trains tern's byte-level BPE on the text files and writes it to OUT\n"
            "(format: docs/tokenizer_format.md). N counts the 256 bytes and 3 specials.\n");
}

typedef struct TrainProgress {
    Progress p;
    double t0;
} TrainProgress;

static void train_progress(void *ctx, const char *phase, size_t done, size_t total) {
    TrainProgress *tp = ctx;
    char text[160];
    double frac = total ? (double)done / (double)total : 1.0;
    if (!strcmp(phase, "count"))
        snprintf(text, sizeof text, "counting words: %.1f / %.1f MB", done / 1e6, total / 1e6);
    else
        snprintf(text, sizeof text, "merges %zu / %zu  (%.1f s)", done, total, now_seconds() - tp->t0);
    /* plain mode: one line per 10% */
    int force = done == total || (total >= 10 && done % (total / 10 ? total / 10 : 1) == 0);
    progress_update(&tp->p, frac, text, force);
}

static int cmd_train_bpe(int argc, char **argv) {
    const char *out = NULL, *v;
    long vocab = 0, threads = 0;
    int json = 0;
    const char **files = xcalloc((size_t)argc, sizeof *files);
    size_t nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            train_usage(stdout);
            free(files);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "vocab"))) {
            vocab = strtol(v, NULL, 10);
        } else if ((v = cli_value(argc, argv, &i, "threads"))) {
            threads = strtol(v, NULL, 10);
        } else if ((v = cli_value(argc, argv, &i, "output"))) {
            out = v;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (cli_is_flag(argv[i], "json")) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tern tokenizer train: unknown option '%s'\n", argv[i]);
            train_usage(stderr);
            free(files);
            return 2;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (!nfiles || !out || vocab <= 0) {
        train_usage(stderr);
        free(files);
        return 2;
    }
    Err err = {0};
    char **texts = xcalloc(nfiles, sizeof *texts);
    size_t *lens = xcalloc(nfiles, sizeof *lens), total = 0;
    int status = 1;
    Tokenizer *tok = NULL;
    for (size_t i = 0; i < nfiles; i++) {
        if (read_all(files[i], &texts[i], &lens[i], &err)) goto done;
        total += lens[i];
    }
    TrainProgress tp;
    progress_init(&tp.p);
    tp.t0 = now_seconds();
    TokBpeTrainOptions opt = {.vocab_size = (size_t)vocab, .threads = (int)threads, .progress = train_progress,
                              .progress_ctx = &tp};
    if (tokenizer_train_bpe(&tok, (const char *const *)texts, lens, nfiles, &opt, &err)) goto done;
    progress_done(&tp.p);
    double secs = now_seconds() - tp.t0;
    if (tokenizer_save(tok, out, &err)) goto done;
    TokInfo info;
    tokenizer_get_info(tok, &info);
    if (json) {
        printf("{\"output\":\"%s\",\"vocab_size\":%zu,\"merges\":%zu,\"bytes\":%zu,\"seconds\":%.3f}\n", out,
               info.vocab_size, info.num_merges, total, secs);
    }
    fprintf(stderr, "tern tokenizer: %zu merges (vocab %zu) from %.2f MB in %.2f s -> %s\n", info.num_merges,
            info.vocab_size, total / 1e6, secs, out);
    status = 0;
done:
    if (status) fail(err.msg);
    for (size_t i = 0; i < nfiles; i++) free(texts[i]);
    free(texts);
    free(lens);
    free(files);
    tokenizer_free(tok);
    return status;
}

/* ---------------------------------------------------------------- encode */

static void encode_usage(FILE *f) {
    fprintf(f,
            "usage: tern tokenizer encode MODEL [--file F] [--jsonl] [--bos] [--json] [--threads K]\n"
            "                                   [--allow-invalid-utf8] [--stats]\n"
            "Encodes F (or stdin) and prints the ids: one line of space-separated ids per input line\n"
            "(as spm_encode does), or with --jsonl one line per document ({\"text\": ...} per line,\n"
            "each document encoded whole). MODEL: a SentencePiece .model, a tern BPE file, a vocab.txt\n"
            "or \"byte\".\n"
            "  --bos                 start every output line with the BOS id\n"
            "  --json                print one JSON object instead: {\"ids\": [[...], ...], \"tokens\": ...}\n"
            "  --allow-invalid-utf8  read malformed UTF-8 as spm_encode does (U+FFFD) instead of failing\n"
            "  --stats               print lines, tokens, MB/s and the unknown-token rate on stderr\n");
}

typedef struct Unit {
    const char *text;
    size_t len;
    size_t lineno;
    char *owned; /* decoded JSON text */
} Unit;

static char *put_int(char *w, int32_t v) {
    char tmp[12];
    int n = 0;
    uint32_t u = v < 0 ? (uint32_t)(-(int64_t)v) : (uint32_t)v;
    do tmp[n++] = (char)('0' + u % 10), u /= 10;
    while (u);
    if (v < 0) *w++ = '-';
    while (n) *w++ = tmp[--n];
    return w;
}

static int cmd_encode(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *v;
    int jsonl = 0, json = 0, bos = 0, stats = 0;
    unsigned flags = 0;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            encode_usage(stdout);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "file"))) {
            file = v;
        } else if ((v = cli_value(argc, argv, &i, "threads"))) {
            threads = strtol(v, NULL, 10);
        } else if (cli_is_flag(argv[i], "jsonl")) {
            jsonl = 1;
        } else if (cli_is_flag(argv[i], "json")) {
            json = 1;
        } else if (cli_is_flag(argv[i], "bos")) {
            bos = 1;
        } else if (cli_is_flag(argv[i], "stats")) {
            stats = 1;
        } else if (cli_is_flag(argv[i], "allow-invalid-utf8")) {
            flags |= TOK_ENCODE_ALLOW_INVALID_UTF8;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tern tokenizer encode: unknown option '%s'\n", argv[i]);
            encode_usage(stderr);
            return 2;
        } else if (!model) {
            model = argv[i];
        } else {
            fprintf(stderr, "tern tokenizer encode: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model) {
        encode_usage(stderr);
        return 2;
    }
    if (threads > 0) omp_set_num_threads((int)threads);
    Err err = {0};
    Tokenizer *tok = NULL;
    char *data = NULL;
    size_t len = 0;
    Unit *units = NULL;
    size_t nunits = 0;
    const char *inname = file ? file : "<stdin>";
    int status = 1;
    double t0 = now_seconds();
    if (tokenizer_load(&tok, model, &err) || read_all(file, &data, &len, &err)) goto done;
    int32_t bos_id = tokenizer_bos(tok);
    if (bos && bos_id < 0) {
        err_set(&err, "%s: the tokenizer has no BOS id", model);
        goto done;
    }

    /* Lines (spm_encode's reading: split on '\n', keep '\r', a last line without '\n' counts). */
    size_t cap = 1024;
    units = xmalloc(cap * sizeof *units);
    for (size_t pos = 0, lineno = 1; pos < len; lineno++) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (nunits == cap) units = xrealloc(units, (cap *= 2) * sizeof *units);
        units[nunits++] = (Unit){data + pos, end - pos, lineno, NULL};
        pos = end + 1;
    }
    if (jsonl) {
        size_t k = 0;
        for (size_t i = 0; i < nunits; i++) {
            Unit *u = &units[i];
            if (u->len == 0) continue;
            cJSON *o = cJSON_ParseWithLength(u->text, u->len);
            const char *s = o ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "text")) : NULL;
            if (!s) {
                cJSON_Delete(o);
                err_set(&err, "%s:%zu: not a JSON object with a \"text\" string", inname, u->lineno);
                for (size_t j = 0; j < k; j++) free(units[j].owned);
                goto done;
            }
            Unit w = {NULL, strlen(s), u->lineno, xstrdup(s)};
            w.text = w.owned;
            units[k++] = w;
            cJSON_Delete(o);
        }
        nunits = k;
    }

    /* Refuse malformed UTF-8 before printing anything, rather than stopping half-way. */
    if (!(flags & TOK_ENCODE_ALLOW_INVALID_UTF8)) {
        for (size_t i = 0; i < nunits; i++) {
            size_t bad = tokenizer_first_invalid_utf8(units[i].text, units[i].len);
            if (bad < units[i].len) {
                err_set(&err, "%s:%zu: invalid UTF-8 at byte %zu of the %s (0x%02X); --allow-invalid-utf8 accepts it",
                        inname, units[i].lineno, bad, jsonl ? "document" : "line", (unsigned)(uint8_t)units[i].text[bad]);
                if (jsonl)
                    for (size_t j = 0; j < nunits; j++) free(units[j].owned);
                goto done;
            }
        }
    }

    /* Encode in batches, in parallel, one scratch per thread; print in input order. */
    size_t batch = 16384, total_tokens = 0, unknown = 0;
    TokenBuf *bufs = xcalloc(batch, sizeof *bufs);
    Err *errs = xcalloc(batch, sizeof *errs);
    int *failed = xcalloc(batch, sizeof *failed);
    int nthreads = omp_get_max_threads();
    TokScratch **scratch = xcalloc((size_t)nthreads, sizeof *scratch);
    for (int i = 0; i < nthreads; i++) scratch[i] = tokscratch_new(tok);
    size_t outcap = 1 << 20;
    char *outbuf = xmalloc(outcap);
    cJSON *jout = json ? cJSON_CreateObject() : NULL;
    cJSON *jids = json ? cJSON_AddArrayToObject(jout, "ids") : NULL;
    int bad = 0;
    for (size_t b0 = 0; b0 < nunits && !bad; b0 += batch) {
        size_t bn = TERN_MIN(batch, nunits - b0);
#pragma omp parallel for schedule(dynamic, 64)
        for (size_t k = 0; k < bn; k++) {
            const Unit *u = &units[b0 + k];
            bufs[k].n = 0;
            failed[k] = tokenizer_encode_ex(tok, scratch[omp_get_thread_num()], u->text, u->len, flags, &bufs[k],
                                            &errs[k]) != 0;
        }
        for (size_t k = 0; k < bn; k++) {
            const Unit *u = &units[b0 + k];
            if (failed[k]) {
                err_set(&err, "%s:%zu: %s", inname, u->lineno, errs[k].msg);
                bad = 1;
                break;
            }
            total_tokens += bufs[k].n;
            unknown += tokenizer_count_unknown(tok, bufs[k].ids, bufs[k].n);
            if (json) {
                cJSON *arr = cJSON_CreateArray();
                if (bos) cJSON_AddItemToArray(arr, cJSON_CreateNumber(bos_id));
                for (size_t i = 0; i < bufs[k].n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(bufs[k].ids[i]));
                cJSON_AddItemToArray(jids, arr);
                continue;
            }
            size_t need = (bufs[k].n + 1) * 12 + 2;
            if (need > outcap) outbuf = xrealloc(outbuf, outcap = need);
            char *w = outbuf;
            if (bos) {
                w = put_int(w, bos_id);
                if (bufs[k].n) *w++ = ' ';
            }
            for (size_t i = 0; i < bufs[k].n; i++) {
                if (i) *w++ = ' ';
                w = put_int(w, bufs[k].ids[i]);
            }
            *w++ = '\n';
            fwrite(outbuf, 1, (size_t)(w - outbuf), stdout);
        }
    }
    double secs = now_seconds() - t0;
    if (!bad) {
        if (json) {
            cJSON_AddStringToObject(jout, "tokenizer", model);
            cJSON_AddNumberToObject(jout, "lines", (double)nunits);
            cJSON_AddNumberToObject(jout, "tokens", (double)total_tokens);
            cJSON_AddNumberToObject(jout, "bytes", (double)len);
            cJSON_AddNumberToObject(jout, "unknown", (double)unknown);
            cJSON_AddNumberToObject(jout, "seconds", secs);
            char *s = cJSON_PrintUnformatted(jout);
            printf("%s\n", s);
            cJSON_free(s);
        }
        if (stats)
            fprintf(stderr, "tern tokenizer: %zu %s, %zu tokens, %.2f MB in %.3f s (%.2f MB/s), unknown %.4f%%\n",
                    nunits, jsonl ? "documents" : "lines", total_tokens, len / 1e6, secs, len / 1e6 / secs,
                    total_tokens ? 100.0 * (double)unknown / (double)total_tokens : 0.0);
        status = 0;
    }
    cJSON_Delete(jout);
    free(outbuf);
    for (int i = 0; i < nthreads; i++) tokscratch_free(scratch[i]);
    free(scratch);
    for (size_t k = 0; k < batch; k++) tokenbuf_free(&bufs[k]);
    free(bufs);
    free(errs);
    free(failed);
    if (jsonl)
        for (size_t i = 0; i < nunits; i++) free(units[i].owned);
done:
    if (status) fail(err.msg);
    fflush(stdout);
    free(units);
    free(data);
    tokenizer_free(tok);
    return status;
}

/* ---------------------------------------------------------------- decode */

static void decode_usage(FILE *f) {
    fprintf(f,
            "usage: tern tokenizer decode MODEL [--file F]\n"
            "Reads lines of space-separated ids from F (or stdin) and prints each line's text\n"
            "(as spm_decode --input_format=id does).\n");
}

static int cmd_decode(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            decode_usage(stdout);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "file"))) {
            file = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tern tokenizer decode: unknown option '%s'\n", argv[i]);
            decode_usage(stderr);
            return 2;
        } else if (!model) {
            model = argv[i];
        } else {
            fprintf(stderr, "tern tokenizer decode: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model) {
        decode_usage(stderr);
        return 2;
    }
    Err err = {0};
    Tokenizer *tok = NULL;
    char *data = NULL;
    size_t len = 0;
    TokenBuf ids = {0};
    int status = 1;
    const char *inname = file ? file : "<stdin>";
    if (tokenizer_load(&tok, model, &err) || read_all(file, &data, &len, &err)) goto done;
    for (size_t pos = 0, lineno = 1; pos < len; lineno++) {
        char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        ids.n = 0;
        const char *p = data + pos, *e = data + end;
        while (p < e) {
            while (p < e && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
            if (p >= e) break;
            char *q;
            errno = 0;
            long x = strtol(p, &q, 10);
            if (q == p || q > e || errno || x < INT32_MIN || x > INT32_MAX || (q < e && *q != ' ' && *q != '\t' && *q != '\r')) {
                err_set(&err, "%s:%zu: not an id: \"%.*s\"", inname, lineno, (int)TERN_MIN((size_t)(e - p), (size_t)20), p);
                goto done;
            }
            if (ids.n == ids.cap) {
                ids.cap = ids.cap ? 2 * ids.cap : 256;
                ids.ids = xrealloc(ids.ids, ids.cap * sizeof *ids.ids);
            }
            ids.ids[ids.n++] = (int32_t)x;
            p = q;
        }
        char *text;
        size_t tlen;
        Err e2 = {0};
        if (tokenizer_decode(tok, ids.ids, ids.n, &text, &tlen, &e2)) {
            err_set(&err, "%s:%zu: %s", inname, lineno, e2.msg);
            goto done;
        }
        fwrite(text, 1, tlen, stdout);
        fputc('\n', stdout);
        free(text);
        pos = end + 1;
    }
    status = 0;
done:
    if (status) fail(err.msg);
    fflush(stdout);
    tokenbuf_free(&ids);
    free(data);
    tokenizer_free(tok);
    return status;
}

/* ---------------------------------------------------------------- info */

static void info_usage(FILE *f) {
    fprintf(f, "usage: tern tokenizer info MODEL [--json]\n"
               "Kind, vocab size, special ids and (SentencePiece) normalizer settings of a tokenizer.\n");
}

static void add_special(cJSON *o, const Tokenizer *t, const char *key, int32_t id) {
    if (id < 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    const char *text;
    size_t n;
    tokenizer_piece(t, id, &text, &n);
    cJSON *s = cJSON_AddObjectToObject(o, key);
    cJSON_AddNumberToObject(s, "id", id);
    char *piece = xmalloc(n + 1);
    memcpy(piece, text, n);
    piece[n] = 0;
    cJSON_AddStringToObject(s, "piece", piece);
    free(piece);
}

static int cmd_info_tok(int argc, char **argv) {
    const char *model = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            info_usage(stdout);
            return 0;
        } else if (cli_is_flag(argv[i], "json")) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tern tokenizer info: unknown option '%s'\n", argv[i]);
            info_usage(stderr);
            return 2;
        } else if (!model) {
            model = argv[i];
        } else {
            fprintf(stderr, "tern tokenizer info: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!model) {
        info_usage(stderr);
        return 2;
    }
    Err err = {0};
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, model, &err)) return fail(err.msg);
    TokInfo in;
    tokenizer_get_info(tok, &in);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", model);
    cJSON_AddStringToObject(o, "kind", in.kind);
    cJSON_AddNumberToObject(o, "vocab_size", (double)in.vocab_size);
    cJSON *sp = cJSON_AddObjectToObject(o, "specials");
    add_special(sp, tok, "bos", in.bos);
    add_special(sp, tok, "eos", in.eos);
    add_special(sp, tok, "unk", in.unk);
    add_special(sp, tok, "pad", in.pad);
    cJSON_AddNumberToObject(o, "byte_pieces", (double)in.num_byte_pieces);
    cJSON_AddNumberToObject(o, "control_pieces", (double)in.num_control);
    if (in.kind && !strcmp(in.kind, "sentencepiece")) {
        cJSON_AddStringToObject(o, "model_type", in.model_type);
        cJSON_AddStringToObject(o, "normalizer", in.normalizer);
        cJSON_AddNumberToObject(o, "charsmap_bytes", (double)in.charsmap_bytes);
        cJSON_AddBoolToObject(o, "add_dummy_prefix", in.add_dummy_prefix);
        cJSON_AddBoolToObject(o, "remove_extra_whitespaces", in.remove_extra_whitespaces);
        cJSON_AddBoolToObject(o, "escape_whitespaces", in.escape_whitespaces);
        cJSON_AddBoolToObject(o, "treat_whitespace_as_suffix", in.treat_whitespace_as_suffix);
        cJSON_AddBoolToObject(o, "byte_fallback", in.byte_fallback);
        cJSON_AddBoolToObject(o, "split_digits", in.split_digits);
        cJSON_AddNumberToObject(o, "user_defined_pieces", (double)in.num_user_defined);
        cJSON_AddNumberToObject(o, "unused_pieces", (double)in.num_unused);
    } else if (in.kind && !strcmp(in.kind, "bpe")) {
        cJSON_AddNumberToObject(o, "merges", (double)in.num_merges);
        cJSON_AddStringToObject(o, "normalizer", in.normalizer);
    }
    if (json) {
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        cJSON_free(s);
    } else {
        printf("%s: %s tokenizer, vocab %zu\n", model, in.kind, in.vocab_size);
        const char *names[4] = {"bos", "eos", "unk", "pad"};
        int32_t ids[4] = {in.bos, in.eos, in.unk, in.pad};
        for (int k = 0; k < 4; k++) {
            const char *text = "";
            size_t n = 0;
            if (ids[k] >= 0) tokenizer_piece(tok, ids[k], &text, &n);
            if (ids[k] >= 0) printf("  %-4s %6d  %.*s\n", names[k], ids[k], (int)n, text);
            else printf("  %-4s   none\n", names[k]);
        }
        printf("  byte pieces %zu, control pieces %zu\n", in.num_byte_pieces, in.num_control);
        if (!strcmp(in.kind, "sentencepiece")) {
            printf("  model_type %s, normalizer %s (charsmap %zu bytes)\n", in.model_type,
                   in.normalizer[0] ? in.normalizer : "(none)", in.charsmap_bytes);
            printf("  add_dummy_prefix %d, remove_extra_whitespaces %d, escape_whitespaces %d\n", in.add_dummy_prefix,
                   in.remove_extra_whitespaces, in.escape_whitespaces);
            printf("  byte_fallback %d, split_digits %d, treat_whitespace_as_suffix %d\n", in.byte_fallback,
                   in.split_digits, in.treat_whitespace_as_suffix);
            printf("  user-defined pieces %zu, unused pieces %zu\n", in.num_user_defined, in.num_unused);
        } else if (!strcmp(in.kind, "bpe")) {
            printf("  merges %zu, normalizer: %s\n", in.num_merges, in.normalizer);
        }
    }
    cJSON_Delete(o);
    tokenizer_free(tok);
    return 0;
}

/* ---------------------------------------------------------------- dispatch */

static void usage(FILE *f) {
    fprintf(f, "usage: tern tokenizer <command> ...   (tern tokenizer <command> --help)\n"
               "  train   FILES... --vocab N -o OUT   train tern's byte-level BPE\n"
               "  encode  MODEL [--file F]            text -> ids, one line per input line\n"
               "  decode  MODEL [--file F]            ids -> text, one line per input line\n"
               "  info    MODEL [--json]              what a tokenizer is\n");
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (cli_is_flag(sub, "help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "train")) return cmd_train_bpe(argc - 1, argv + 1);
    if (!strcmp(sub, "encode")) return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(sub, "decode")) return cmd_decode(argc - 1, argv + 1);
    if (!strcmp(sub, "info")) return cmd_info_tok(argc - 1, argv + 1);
    fprintf(stderr, "tern tokenizer: unknown command '%s'\n", sub);
    usage(stderr);
    return 2;
}

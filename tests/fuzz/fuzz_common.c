#include "tests/fuzz/fuzz_common.h"

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/util.h"

uint8_t fz_u8(Fz *f) {
    if (!f->n) return 0;
    f->n--;
    return *f->p++;
}

uint32_t fz_u32(Fz *f) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(f) << (8 * i);
    return v;
}

uint64_t fz_u64(Fz *f) {
    uint64_t lo = fz_u32(f); /* two statements: the order of the reads is fixed */
    return lo | (uint64_t)fz_u32(f) << 32;
}

size_t fz_range(Fz *f, size_t lo, size_t hi) {
    size_t span = hi - lo, v = 0;
    for (size_t seen = 0; seen < span && f->n; seen = seen << 8 | 0xff) v = v << 8 | fz_u8(f);
    return span == SIZE_MAX ? v : lo + v % (span + 1);
}

void fz_back(Fz *f, void *out, size_t n) {
    size_t k = n < f->n ? n : f->n;
    memcpy(out, f->p + f->n - k, k);
    memset((uint8_t *)out + k, 0, n - k);
    f->n -= k;
}

uint64_t fz_pick_u64(Fz *f, const uint64_t *table, size_t n) { return table[fz_range(f, 0, n - 1)]; }

Fz fz_take_front(Fz *f, size_t n) {
    Fz part = {f->p, n < f->n ? n : f->n};
    f->p += part.n;
    f->n -= part.n;
    return part;
}

const uint8_t *fz_rest(Fz *f, size_t *n) {
    const uint8_t *p = f->p;
    *n = f->n;
    f->p += f->n;
    f->n = 0;
    return p;
}

void fz_split(Fz *f, const uint8_t **a, size_t *na, const uint8_t **b, size_t *nb) {
    size_t second = fz_range(f, 0, 65535);
    if (second > f->n) second = f->n;
    *a = f->p;
    *na = f->n - second;
    *b = f->p + *na;
    *nb = second;
    f->p += f->n;
    f->n = 0;
}

FzParts fz_file_and_text(const uint8_t *data, size_t size) {
    Fz f = {data, size};
    FzParts p;
    fz_split(&f, &p.file, &p.nfile, &p.text, &p.ntext);
    return p;
}

const uint64_t kFzEdgeSizes[] = {0, 1, 2, 3, 7, 255, 256, 65535, 65536, (1ull << 31) - 1, 1ull << 31, 1ull << 32,
                                 (1ull << 32) + 1, 1ull << 40, 1ull << 53, 1ull << 62, (1ull << 63) - 1, 1ull << 63,
                                 UINT64_MAX - 1, UINT64_MAX};
const size_t kFzEdgeSizeCount = sizeof kFzEdgeSizes / sizeof kFzEdgeSizes[0];

/* ---------------------------------------------------------------- scratch files */

#define FZ_MAX_SCRATCH 8
static char g_scratch[FZ_MAX_SCRATCH][256]; /* one process fuzzes one harness: no sharing */
static int g_nscratch;

static void remove_scratch(void) {
    for (int i = 0; i < g_nscratch; i++) unlink(g_scratch[i]);
}

const char *fz_scratch_path(const char *suffix) {
    char want[256];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(want, sizeof want, "%s/tern_fuzz_%ld%s", dir, (long)getpid(), suffix);
    for (int i = 0; i < g_nscratch; i++)
        if (!strcmp(g_scratch[i], want)) return g_scratch[i];
    if (g_nscratch == FZ_MAX_SCRATCH) fz_fail(__FILE__, __LINE__, "too many scratch files");
    if (g_nscratch == 0 && !getenv("TERN_FUZZ_KEEP")) atexit(remove_scratch); /* keep: to inspect one input's file */
    memcpy(g_scratch[g_nscratch], want, sizeof want);
    return g_scratch[g_nscratch++];
}

void fz_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) fz_fail(__FILE__, __LINE__, "cannot write %s", path);
}

void fz_check_h5_closed(const char *who) {
    ssize_t nopen = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    FZ_ASSERT(nopen == 0, "%s left %zd HDF5 objects open", who, nopen);
}

void fz_check_error(const Err *err, const char *name) {
    FZ_ASSERT(err->msg[0] && !strchr(err->msg, '\n'), "error message empty or on several lines: \"%s\"", err->msg);
    if (!name) return;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    FZ_ASSERT(strstr(err->msg, base), "error does not name the file %s: \"%s\"", base, err->msg);
}

void fz_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FUZZ INVARIANT BROKEN at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---------------------------------------------------------------- model sizes */

/* Sizes whose architecture default (model/gpt.c, llama.c, trn_hybrid.c) is too large to build
 * in a harness, and the small value fz_model_section_shrink gives them. */
static const struct {
    const char *arch, *key;
    double small;
} kLargeDefaults[] = {
    {"gpt", "dim", 16},          {"llama", "dim", 16},             {"llama", "hidden", 16},
    {"trn_hybrid", "dim", 16},   {"trn_hybrid", "oscillators", 4}, {"trn_hybrid", "bigram_rows", 0},
    {"trn_hybrid", "layout", 0}, /* a string: "TA" */
};

static const char *arch_of(const cJSON *section) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(section, "arch");
    return cJSON_IsString(a) ? a->valuestring : "gpt";
}

void fz_model_section_shrink(cJSON *section) {
    if (!cJSON_IsObject(section)) return;
    const char *arch = arch_of(section);
    for (size_t i = 0; i < TERN_ARRAY_LEN(kLargeDefaults); i++) {
        if (strcmp(arch, kLargeDefaults[i].arch) || cJSON_GetObjectItemCaseSensitive(section, kLargeDefaults[i].key)) continue;
        if (!strcmp(kLargeDefaults[i].key, "layout")) cJSON_AddStringToObject(section, "layout", "TA");
        else cJSON_AddNumberToObject(section, kLargeDefaults[i].key, kLargeDefaults[i].small);
    }
}

int fz_model_section_small(const cJSON *section) {
    static const char *const kLinear[] = {"vocab_size", "seq_len", "bigram_rows", "omega_init_len", "res_warmup", NULL};
    if (!cJSON_IsObject(section)) return 1; /* model_create refuses it without allocating */
    const char *arch = arch_of(section);
    for (size_t i = 0; i < TERN_ARRAY_LEN(kLargeDefaults); i++)
        if (!strcmp(arch, kLargeDefaults[i].arch) && !cJSON_GetObjectItemCaseSensitive(section, kLargeDefaults[i].key)) return 0;
    for (const cJSON *v = section->child; v; v = v->next) {
        double cap = 32;
        for (int i = 0; kLinear[i]; i++)
            if (!strcmp(v->string, kLinear[i])) cap = 4096;
        if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) > cap) return 0;
        if (cJSON_IsString(v) && strlen(v->valuestring) > 16) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- tokenizers */

static int same_ids(const TokenBuf *a, const TokenBuf *b) {
    return a->n == b->n && (a->n == 0 || !memcmp(a->ids, b->ids, a->n * sizeof *a->ids));
}

static void check_ids(const Tokenizer *t, const TokenBuf *b) {
    size_t V = tokenizer_vocab_size(t);
    for (size_t i = 0; i < b->n; i++) FZ_ASSERT(b->ids[i] >= 0 && (size_t)b->ids[i] < V, "encode gave id %d (vocab %zu)", b->ids[i], V);
}

/* The one encode error a loaded tokenizer may give: a SentencePiece charsmap rule whose
 * replacement lies outside the strings is refused when the rule is used, not at load. */
static int corrupt_rule(const Tokenizer *t, const Err *err) {
    return tokenizer_kind(t) == TOK_SENTENCEPIECE && strstr(err->msg, "corrupt model") != NULL;
}

static void exercise_encode(const Tokenizer *t, const char *text, size_t n, int lossless) {
    Err err;
    int valid = tokenizer_first_invalid_utf8(text, n) == n;
    TokenBuf plain = {0}, cached = {0}, again = {0};
    int rc = tokenizer_encode(t, text, n, &plain, &err);
    TokInfo info;
    tokenizer_get_info(t, &info);
    if (tokenizer_kind(t) == TOK_SENTENCEPIECE && strcmp(info.model_type, "bpe")) { /* only BPE models encode */
        FZ_ASSERT(rc != 0, "a %s SentencePiece model encoded", info.model_type);
        return;
    }
    if (rc && corrupt_rule(t, &err)) return;
    FZ_ASSERT(valid ? rc == 0 : rc != 0 && plain.n == 0, "encode of %s UTF-8 returned %d (%s)", valid ? "valid" : "invalid", rc, err.msg);
    /* a kept scratch (its word cache filled by the first call) must give the same ids */
    TokScratch *s = tokscratch_new(t);
    int tolerated = 0;
    for (int pass = 0; pass < 2 && !tolerated; pass++) {
        TokenBuf *b = pass ? &again : &cached;
        rc = tokenizer_encode_ex(t, s, text, n, TOK_ENCODE_ALLOW_INVALID_UTF8, b, &err);
        tolerated = rc && corrupt_rule(t, &err);
        FZ_ASSERT(rc == 0 || tolerated, "encode allowing invalid UTF-8 failed: %s", err.msg);
        check_ids(t, b);
    }
    tokscratch_free(s);
    if (tolerated) { /* (invalid bytes became U+FFFD, which the broken rule maps) */
        FZ_ASSERT(!valid, "lenient encode failed where the strict one did not");
        tokenbuf_free(&plain);
        tokenbuf_free(&cached);
        tokenbuf_free(&again);
        return;
    }
    FZ_ASSERT(same_ids(&cached, &again), "a second encode with the same scratch gave other ids");
    if (valid) FZ_ASSERT(same_ids(&plain, &cached), "encode and encode_ex disagree on valid UTF-8");
    char *dec = NULL;
    size_t dlen = 0;
    rc = tokenizer_decode(t, cached.ids, cached.n, &dec, &dlen, &err);
    FZ_ASSERT(rc == 0, "decoding encoded ids failed: %s", err.msg);
    FZ_ASSERT(strlen(dec) <= dlen, "decoded length");
    if (lossless && valid) FZ_ASSERT(dlen == n && !memcmp(dec, text, n), "decode(encode(text)) != text (%zu vs %zu bytes)", dlen, n);
    free(dec);
    tokenbuf_free(&plain);
    tokenbuf_free(&cached);
    tokenbuf_free(&again);
}

/* Decodes ids read from bytes: mostly near the vocabulary (in range and just past it). */
static void exercise_decode(const Tokenizer *t, const uint8_t *bytes, size_t nbytes) {
    size_t V = tokenizer_vocab_size(t), n = nbytes / 4;
    if (n > 4096) n = 4096;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    int in_range = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t raw;
        memcpy(&raw, bytes + 4 * i, 4);
        ids[i] = (raw >> 30) ? (int32_t)raw : (int32_t)(raw % (V + 2)) - 1;
        in_range &= ids[i] >= 0 && (size_t)ids[i] < V;
    }
    char *dec = NULL;
    size_t dlen = 0;
    Err err;
    int rc = tokenizer_decode(t, ids, n, &dec, &dlen, &err);
    FZ_ASSERT((rc == 0) == in_range, "decode returned %d for %s ids (%s)", rc, in_range ? "valid" : "out-of-range", rc ? err.msg : "");
    FZ_ASSERT(rc != 0 || dec, "decode gave no text");
    free(dec);
    free(ids);
}

static void exercise_pieces(const Tokenizer *t) {
    size_t V = tokenizer_vocab_size(t);
    for (int32_t id = -1; id <= (int32_t)V && id < 100000; id++) {
        const char *text;
        size_t len;
        char buf[16];
        int r = tokenizer_piece(t, id, &text, &len);
        int ok = id >= 0 && (size_t)id < V;
        FZ_ASSERT((r >= 0) == ok, "tokenizer_piece(%d) = %d for vocab %zu", id, r, V);
        if (ok && len) {
            volatile char last = text[len - 1]; /* ASan checks the piece lies inside the table */
            (void)last;
        }
        (void)tokenizer_piece_type(t, id);
        (void)tokenizer_piece_bytes(t, id, buf, sizeof buf);
    }
    int32_t sp[4] = {tokenizer_bos(t), tokenizer_eos(t), tokenizer_unk(t), tokenizer_pad(t)};
    for (int i = 0; i < 4; i++) FZ_ASSERT(sp[i] >= -1 && sp[i] < (int32_t)V, "special id %d out of range (vocab %zu)", sp[i], V);
    TokInfo info;
    tokenizer_get_info(t, &info);
    FZ_ASSERT(info.vocab_size == V && info.kind && info.path && info.model_type && info.normalizer, "tokenizer info");
}

void fz_exercise_tokenizer(const Tokenizer *t, const uint8_t *text, size_t n, const uint8_t *ids_bytes, size_t nids_bytes,
                           int lossless) {
    FZ_ASSERT(tokenizer_vocab_size(t) > 0, "a loaded tokenizer with an empty vocabulary");
    exercise_encode(t, (const char *)text, n, lossless);
    exercise_decode(t, ids_bytes, nids_bytes);
    exercise_pieces(t);
}

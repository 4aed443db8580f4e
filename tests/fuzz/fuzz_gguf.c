/* libFuzzer target: GGUF files (data/gguf.c; versions 1 to 3) and the SentencePiece model made
 * from a llama GGUF's tokenizer arrays (gguf_sentencepiece_model, then data/sentencepiece.c).
 * The input is the file. Every metadata value is read through the typed getters, numeric arrays
 * at their ends, string arrays whole, tensors (up to 64 Ki values) converted to float. */
#include <stdlib.h>
#include <string.h>

#include "data/gguf.h"
#include "data/sentencepiece.h"
#include "tests/fuzz/fuzz_common.h"

static void read_metadata(const Gguf *g) {
    Err err;
    for (size_t i = 0; i < g->nkv && i < 4096; i++) {
        const GgufKv *kv = &g->kv[i];
        uint64_t u;
        double d;
        char *s = NULL;
        (void)gguf_get_u64(g, kv->key, &u, &err);
        (void)gguf_get_f64(g, kv->key, &d, &err);
        if (gguf_get_str(g, kv->key, &s, &err) == 0) free(s);
        if (kv->type != GGUF_ARRAY) continue;
        if (kv->elem_type == GGUF_STRING) {
            /* the parser checked every string lies in the file: the count is bounded by its size */
            FZ_ASSERT(kv->count <= g->size, "%s: %llu strings in %zu bytes", kv->key, (unsigned long long)kv->count, g->size);
            const char **ss = malloc((kv->count ? kv->count : 1) * sizeof *ss);
            size_t *len = malloc((kv->count ? kv->count : 1) * sizeof *len);
            if (gguf_array_strings(g, kv, ss, len, &err) == 0)
                for (uint64_t k = 0; k < kv->count; k++)
                    FZ_ASSERT((const uint8_t *)ss[k] >= g->map && (const uint8_t *)ss[k] + len[k] <= g->map + g->size, "string outside the file");
            free(ss);
            free(len);
        } else {
            uint64_t at[3] = {0, kv->count ? kv->count - 1 : 0, kv->count};
            for (int k = 0; k < 3; k++) (void)gguf_array_num(g, kv, at[k], &d, &err);
        }
    }
}

static void read_tensors(const Gguf *g) {
    Err err;
    for (size_t i = 0; i < g->ntensors && i < 4096; i++) {
        const GgufTensor *t = &g->tensors[i];
        FZ_ASSERT(gguf_tensor(g, t->name) != NULL, "tensor %s not found by name", t->name);
        if (t->numel > (1u << 16)) continue;
        float *out = malloc((size_t)t->numel * sizeof(float) + 1);
        (void)gguf_tensor_f32(g, t, out, (size_t)t->numel, &err);
        free(out);
    }
}

static void read_tokenizer(const Gguf *g) {
    uint8_t *proto = NULL;
    size_t len = 0;
    Err err;
    if (gguf_sentencepiece_model(g, &proto, &len, &err)) {
        fz_check_error(&err, NULL);
        return;
    }
    Tokenizer *t = NULL;
    if (tokenizer_load_memory(&t, proto, len, "gguf tokenizer", &err) == 0) {
        static const char kText[] = "Once upon a time, 123 \xc3\xa9t\xc3\xa9!";
        fz_exercise_tokenizer(t, (const uint8_t *)kText, sizeof kText - 1, proto, TERN_MIN(len, 64), 0);
        tokenizer_free(t);
    }
    free(proto);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_scratch_path("_model.gguf");
    fz_write_file(path, data, size);
    Gguf g;
    Err err;
    if (gguf_open(&g, path, &err)) {
        fz_check_error(&err, path);
        return 0;
    }
    read_metadata(&g);
    read_tensors(&g);
    read_tokenizer(&g);
    gguf_close(&g);
    return 0;
}

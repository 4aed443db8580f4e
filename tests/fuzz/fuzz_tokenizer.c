/* libFuzzer target: tokenizer_load_memory (data/tokenizer.c), which picks the kind from the
 * bytes — tern BPE (magic line), MaxMatch vocab.txt (UTF-8 text without control bytes) or a
 * SentencePiece ModelProto — and everything a loaded tokenizer does: encode (strict and
 * lenient UTF-8, with a kept scratch and without: the same ids), decode of the ids and of
 * arbitrary ids, piece lookups, info; a tern BPE file saved and read back must be the same
 * tokenizer. The input is the file, then the text after a split point. */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_common.h"

/* Saving a tern BPE tokenizer and loading the file must give the same pieces. */
static void check_save_reload(const Tokenizer *t) {
    const char *path = fz_scratch_path("_saved.tok");
    Err err;
    Tokenizer *u = NULL;
    int r = tokenizer_save(t, path, &err);
    FZ_ASSERT(r == 0, "saving a loaded BPE tokenizer failed: %s", err.msg);
    r = tokenizer_load(&u, path, &err);
    FZ_ASSERT(r == 0, "a saved BPE tokenizer does not load: %s", err.msg);
    size_t V = tokenizer_vocab_size(t);
    FZ_ASSERT(tokenizer_vocab_size(u) == V, "vocab %zu became %zu", V, tokenizer_vocab_size(u));
    for (int32_t id = 0; (size_t)id < V; id++) {
        char a[64], b[64];
        size_t na = tokenizer_piece_bytes(t, id, a, sizeof a), nb = tokenizer_piece_bytes(u, id, b, sizeof b);
        FZ_ASSERT(na == nb && !memcmp(a, b, TERN_MIN(na, sizeof a)), "piece %d changed in the round trip", id);
    }
    tokenizer_free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FzParts in = fz_file_and_text(data, size);
    Tokenizer *t = NULL;
    Err err;
    if (tokenizer_load_memory(&t, in.file, in.nfile, "fuzz.tok", &err)) {
        fz_check_error(&err, "fuzz.tok");
        return 0;
    }
    TokKind kind = tokenizer_kind(t);
    fz_exercise_tokenizer(t, in.text, in.ntext, in.text, in.ntext, kind == TOK_BYTE || kind == TOK_BPE);
    if (kind == TOK_BPE) check_save_reload(t);
    tokenizer_free(t);
    return 0;
}

/* libFuzzer target: the MaxMatch tokenizer's vocab.txt reader (data/tok_maxmatch.c) and its
 * greedy longest-match encoder. The input is the vocab file, then the text after a split point.
 * Besides no crash: a text that is one of the vocabulary's plain tokens encodes to one id with
 * that text (itself, an equal earlier line or a byte token of it). */
#include <string.h>

#include "data/tokenizer_impl.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FzParts in = fz_file_and_text(data, size);
    Tokenizer *t = NULL;
    Err err;
    if (tok_maxmatch_create(&t, (const char *)in.file, in.nfile, "fuzz.vocab", &err)) {
        fz_check_error(&err, "fuzz.vocab");
        return 0;
    }
    fz_exercise_tokenizer(t, in.text, in.ntext, in.text, in.ntext, 0);
    /* the longest match of a whole plain token is the token itself (or an equal earlier line) */
    size_t V = tokenizer_vocab_size(t);
    for (int32_t id = 0; (size_t)id < V && id < 64; id++) {
        const char *s;
        size_t n;
        if (tokenizer_piece_type(t, id) != PIECE_NORMAL || tokenizer_piece(t, id, &s, &n) < 0) continue;
        TokenBuf b = {0};
        int r = tokenizer_encode_ex(t, NULL, s, n, TOK_ENCODE_ALLOW_INVALID_UTF8, &b, &err);
        char got[64];
        size_t gn = r == 0 && b.n == 1 ? tokenizer_piece_bytes(t, b.ids[0], got, sizeof got) : 0;
        FZ_ASSERT(gn == n && !memcmp(got, s, TERN_MIN(n, sizeof got)), "token %d does not encode to one token of its text", id);
        tokenbuf_free(&b);
    }
    tokenizer_free(t);
    return 0;
}

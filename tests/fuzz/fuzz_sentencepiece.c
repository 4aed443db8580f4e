/* libFuzzer target: the SentencePiece ModelProto reader (data/protobuf.c, data/sentencepiece.c:
 * pieces, trainer and normalizer specs, the precompiled charsmap's double-array trie), its
 * normalizer, BPE encoder and decoder, directly and as a Tokenizer. The input is the model, then
 * the text after a split point. Besides no crash: every piece's text maps back to an id with that
 * text, and the special ids are pieces of the right type. */
#include <stdlib.h>
#include <string.h>

#include "data/sentencepiece.h"
#include "data/tokenizer_impl.h"
#include "tests/fuzz/fuzz_common.h"

static void check_pieces(const SpModel *m) {
    size_t n = sp_model_num_pieces(m);
    for (int32_t id = 0; (size_t)id < n; id++) {
        const SpPiece *p = sp_model_piece(m, id);
        int32_t back = sp_model_piece_to_id(m, p->text, p->len);
        const SpPiece *q = back >= 0 ? sp_model_piece(m, back) : NULL;
        FZ_ASSERT(q && q->len == p->len && !memcmp(q->text, p->text, p->len), "piece %d does not map back to its text", id);
    }
    int32_t sp[4] = {sp_model_bos(m), sp_model_eos(m), sp_model_unk(m), sp_model_pad(m)};
    for (int i = 0; i < 4; i++) FZ_ASSERT(sp[i] >= -1 && sp[i] < (int32_t)n, "special id %d of %zu pieces", sp[i], n);
    FZ_ASSERT(sp[2] < 0 || sp_model_piece(m, sp[2])->type == PIECE_UNKNOWN, "the unknown id is no unknown piece");
}

static void normalize_both_ways(const SpModel *m, const uint8_t *text, size_t n) {
    int valid = tokenizer_first_invalid_utf8((const char *)text, n) == n;
    for (unsigned flags = 0; flags <= TOK_ENCODE_ALLOW_INVALID_UTF8; flags++) {
        char *out = NULL;
        size_t len = 0;
        Err err;
        int r = sp_normalize(m, (const char *)text, n, flags, &out, &len, &err);
        /* refused: strict on invalid UTF-8, or a charsmap rule pointing outside its strings */
        FZ_ASSERT(r == 0 || (!flags && !valid) || strstr(err.msg, "corrupt model"), "normalize failed: %s", err.msg);
        FZ_ASSERT(r != 0 || (out && strlen(out) <= len), "normalize gave no text");
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FzParts in = fz_file_and_text(data, size);
    SpModel *m = NULL;
    Err err;
    if (sp_model_parse(&m, in.file, in.nfile, &err)) {
        fz_check_error(&err, NULL);
        return 0;
    }
    check_pieces(m);
    normalize_both_ways(m, in.text, in.ntext);
    sp_model_free(m);
    Tokenizer *t = NULL;
    int r = tok_sentencepiece_create(&t, in.file, in.nfile, "fuzz.model", &err);
    FZ_ASSERT(r == 0, "the tokenizer refuses a model the parser took: %s", err.msg);
    fz_exercise_tokenizer(t, in.text, in.ntext, in.text, in.ntext, 0);
    tokenizer_free(t);
    return 0;
}

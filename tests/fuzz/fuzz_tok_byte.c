/* libFuzzer target: the byte-level tokenizer (data/tok_byte.c). It has no file to parse, so the
 * whole input is text and ids: encode must be lossless, decode must refuse exactly the ids
 * outside [0, 259), and the piece table must answer for every id. */
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Tokenizer *t = tokenizer_byte_new();
    FZ_ASSERT(tokenizer_vocab_size(t) == 259, "byte vocab");
    fz_exercise_tokenizer(t, data, size, data, size, 1);
    tokenizer_free(t);
    return 0;
}

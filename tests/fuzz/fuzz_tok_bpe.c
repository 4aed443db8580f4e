/* libFuzzer target: tern's BPE tokenizer (data/tok_bpe.c). The first byte picks:
 *   even: the input (before a split point) is a tern BPE file for tok_bpe_create;
 *   odd:  the input is up to four training texts for tokenizer_train_bpe (259..320 ids).
 * Either tokenizer then encodes the text after the split point; byte-level BPE is lossless, so
 * decode(encode(text)) must give the text back, and saving the tokenizer and reading the file
 * again must give the same ids for it. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_impl.h"
#include "tests/fuzz/fuzz_common.h"

static Tokenizer *train(Fz *f, const uint8_t *corpus, size_t n) {
    const char *texts[4];
    size_t lens[4], ntexts = fz_range(f, 1, 4), at = 0;
    for (size_t i = 0; i < ntexts; i++) {
        size_t len = i + 1 == ntexts ? n - at : fz_range(f, 0, n - at);
        texts[i] = (const char *)corpus + at;
        lens[i] = len;
        at += len;
    }
    TokBpeTrainOptions opt = {.vocab_size = 259 + fz_range(f, 0, 61), .threads = 1};
    Tokenizer *t = NULL;
    Err err;
    int r = tokenizer_train_bpe(&t, texts, lens, ntexts, &opt, &err);
    FZ_ASSERT(r == 0, "training failed: %s", err.msg);
    FZ_ASSERT(tokenizer_vocab_size(t) <= opt.vocab_size, "trained %zu ids, asked for %zu", tokenizer_vocab_size(t), opt.vocab_size);
    return t;
}

/* The saved file, read back, encodes text to the same ids. */
static void check_save_reload(const Tokenizer *t, const uint8_t *text, size_t n) {
    TokStr file = {0};
    Err err;
    int r = t->ops->save(t, &file, &err);
    FZ_ASSERT(r == 0, "save failed: %s", err.msg);
    Tokenizer *u = NULL;
    r = tok_bpe_create(&u, file.p, file.n, "saved", &err);
    FZ_ASSERT(r == 0, "a saved tokenizer does not read back: %s", err.msg);
    TokenBuf a = {0}, b = {0};
    tokenizer_encode_ex(t, NULL, (const char *)text, n, TOK_ENCODE_ALLOW_INVALID_UTF8, &a, &err);
    tokenizer_encode_ex(u, NULL, (const char *)text, n, TOK_ENCODE_ALLOW_INVALID_UTF8, &b, &err);
    FZ_ASSERT(a.n == b.n && (a.n == 0 || !memcmp(a.ids, b.ids, a.n * sizeof *a.ids)), "the saved tokenizer encodes differently");
    tokenbuf_free(&a);
    tokenbuf_free(&b);
    tokenizer_free(u);
    free(file.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Fz f = {data, size};
    int training = fz_u8(&f) & 1;
    size_t train_bytes = training ? fz_range(&f, 0, 4096) : 0;
    const uint8_t *file, *text;
    size_t nfile, ntext;
    fz_split(&f, &file, &nfile, &text, &ntext);
    Tokenizer *t = NULL;
    Err err;
    if (training) {
        Fz choices = {data, size < 8 ? size : 8};
        t = train(&choices, file, TERN_MIN(nfile, train_bytes));
    } else if (tok_bpe_create(&t, (const char *)file, nfile, "fuzz.bpe", &err)) {
        fz_check_error(&err, "fuzz.bpe");
        return 0;
    }
    fz_exercise_tokenizer(t, text, ntext, text, ntext, 1);
    check_save_reload(t, text, ntext);
    tokenizer_free(t);
    return 0;
}

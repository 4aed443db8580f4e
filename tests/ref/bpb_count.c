/* bpb_count MODEL SHARD T — tern's byte counts for the bits-per-byte denominator, printed as
 * JSON, for tests/ref/bpb_ref.py to compare with the official parameter-golf rule. */
#include <stdio.h>
#include <stdlib.h>

#include "data/bpb.h"
#include "data/loader.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bpb_count MODEL SHARD T\n");
        return 2;
    }
    Err err = {0};
    Tokenizer *tok;
    if (tokenizer_load(&tok, argv[1], &err)) {
        fprintf(stderr, "bpb_count: %s\n", err.msg);
        return 1;
    }
    ByteCounter bc;
    TokenStream s;
    if (bpb_init(&bc, tok, tokenizer_vocab_size(tok), &err) || stream_open(&s, argv[2], tokenizer_vocab_size(tok), &err)) {
        fprintf(stderr, "bpb_count: %s\n", err.msg);
        return 1;
    }
    size_t T = (size_t)atol(argv[3]);
    int32_t *all = malloc(s.ntokens * sizeof(int32_t));
    stream_copy(&s, 0, s.ntokens, all);
    double pair_bytes = bpb_count(&bc, all, all + 1, s.ntokens - 1);
    size_t nw = stream_val_windows(&s, T);
    int32_t *x = malloc(T * sizeof(int32_t)), *y = malloc(T * sizeof(int32_t));
    double val_bytes = 0;
    for (size_t w = 0; w < nw; w++) {
        stream_val_window(&s, T, w, x, y);
        val_bytes += bpb_count(&bc, x, y, T);
    }
    printf("{\"tokens\": %zu, \"pair_bytes\": %.0f, \"val_windows\": %zu, \"val_bytes\": %.0f}\n", s.ntokens, pair_bytes, nw,
           val_bytes);
    free(all);
    free(x);
    free(y);
    stream_close(&s);
    bpb_free(&bc);
    tokenizer_free(tok);
    return 0;
}

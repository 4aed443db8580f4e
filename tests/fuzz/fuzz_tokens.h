/* fuzz_tokens.h — what the token-file harnesses (fuzz_shard, fuzz_h5_tokens, fuzz_checkpoint)
 * do with a file: open it as a shard with a vocabulary the input picks, then as a training
 * loader with a cursor the input picks (as a resumed checkpoint sets it) and as an evaluation
 * stream; every token read must be inside the shard and below the vocabulary. */
#ifndef TERN_FUZZ_TOKENS_H
#define TERN_FUZZ_TOKENS_H

#include <stdint.h>

#include "data/loader.h"
#include "tests/fuzz/fuzz_common.h"

void fz_exercise_token_file(const char *path, Fz *f);
/* loader_next_pos from cursor (epoch, pos) for `steps` steps of B windows; checks every window. */
void fz_exercise_loader_cursor(Loader *L, uint64_t epoch, uint64_t pos, size_t B, int steps, size_t vocab);

#endif

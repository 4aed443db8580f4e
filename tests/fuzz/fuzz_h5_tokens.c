/* libFuzzer target: HDF5 token shards (data/shard.c open_h5 on data/h5io.c) and the loader
 * over them. The input is decoded into a valid HDF5 file (tests/fuzz/fuzz_h5gen.h): /tokens as
 * uint16 or uint32 of a fuzzed length and contents, which the input may drop, retype (signed,
 * float, string, 64-bit), reshape (rank 0..4, huge never-written dimensions), fill with extreme
 * values or replace by a group; plus stray objects. */
#include "tests/fuzz/fuzz_h5gen.h"
#include "tests/fuzz/fuzz_tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const kNames[] = {"tokens", "tokens/tokens", "data", "tokens2", "/", NULL};
    Fz f = {data, size}, choices = fz_take_front(&f, 32);
    GenSpec spec = {.extra_names = kNames};
    size_t n = fz_range(&f, 0, 2048);
    gen_dataset(&spec, "tokens", fz_range(&f, 0, 1) ? GT_U32 : GT_U16, 1, &n);
    const char *path = fz_scratch_path("_tokens.h5");
    h5gen_write(&spec, &f, path);
    fz_exercise_token_file(path, &choices);
    fz_check_h5_closed("shard_open / loader over an .h5 shard");
    return 0;
}

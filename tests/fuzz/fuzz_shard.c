/* libFuzzer target: .bin token shards (data/shard.c) and what reads them (data/loader.c).
 * The first byte picks the input's form:
 *   even: the whole file as it is;
 *   odd:  a header built from the input (magic, version and token count mostly right, the
 *         count sometimes off by one, negative or huge) followed by the input's tokens, so
 *         mutations reach the token checks and the loader instead of stopping at the size check.
 * An opened shard is then read as a training loader with a fuzzed cursor and as a stream. */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_tokens.h"

static uint8_t *structured_shard(Fz *f, size_t *len) {
    size_t ntok = fz_range(f, 0, 4096);
    int32_t hdr[3] = {SHARD_MAGIC, SHARD_VERSION, (int32_t)ntok};
    uint8_t fault = fz_u8(f);
    if (fault >= 224) hdr[fault & 1] ^= (int32_t)fz_u32(f);                    /* magic / version */
    else if (fault >= 192) hdr[2] = (int32_t)ntok + (fault & 1 ? 1 : -1);      /* off by one */
    else if (fault >= 176) hdr[2] = (int32_t)(uint32_t)fz_pick_u64(f, kFzEdgeSizes, kFzEdgeSizeCount);
    *len = SHARD_HEADER_BYTES + 2 * ntok;
    uint8_t *b = calloc(*len, 1);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) b[4 * i + k] = (uint8_t)((uint32_t)hdr[i] >> (8 * k));
    if (fault >= 160 && fault < 176) fz_back(f, b + 12, SHARD_HEADER_BYTES - 12); /* the unused header words */
    fz_back(f, b + SHARD_HEADER_BYTES, 2 * ntok);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Fz f = {data, size};
    const char *path = fz_scratch_path("_shard.bin");
    if (fz_u8(&f) & 1) {
        Fz choices = fz_take_front(&f, 32);
        size_t len;
        uint8_t *b = structured_shard(&f, &len);
        fz_write_file(path, b, len);
        free(b);
        f = choices;
    } else {
        /* the loader's choices come first, the file is the rest */
        Fz choices = {f.p, f.n < 32 ? f.n : 32};
        size_t n;
        const uint8_t *file = fz_rest(&f, &n);
        fz_write_file(path, file, n);
        f = choices;
    }
    fz_exercise_token_file(path, &f);
    return 0;
}

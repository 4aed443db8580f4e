/* libFuzzer target for the artifact loader (clang -fsanitize=fuzzer,address,undefined; built
 * by tests/runtime.cmake, run for a bounded time by tests/fuzz/run_fuzz.sh).
 * The first input byte picks what the rest is:
 *   even: a whole artifact file (preamble + zstd frame), as trt_model_load_memory reads it;
 *   odd:  a decompressed container with the CRC check skipped, so mutations reach the header,
 *         tensor table, hyper-parameter and payload checks instead of stopping at a checksum.
 * A model that loads is also run for a few tokens with a short context. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/rt_internal.h"

static void run_some(TrtModel *m) {
    TrtSessionOptions so = {1, 1, 4};
    TrtSession *s = NULL;
    char err[256];
    /* keep each input fast: skip forward passes through big (but valid) models */
    if (m->info.params > 2000000) return;
    if (trt_session_new(m, &so, &s, err, sizeof err)) return;
    int32_t ids[2] = {0, (int32_t)(m->info.vocab_size - 1)};
    trt_session_observe(s, ids, 2, NULL, err, sizeof err);
    trt_session_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] & 1;
    data++;
    size--;
    TrtModel *m = NULL;
    if (mode == 0) {
        char err[256];
        TrtLoadOptions lo = {"scalar", (size_t)64 << 20, NULL};
        if (trt_model_load_memory(&m, data, size, "fuzz", &lo, err, sizeof err) == 0) {
            run_some(m);
            trt_model_free(m);
        }
    } else {
        RtErr e;
        if (size > ((size_t)64 << 20)) return 0;
        if (rt_load_container(&m, data, size, "fuzz", RT_ISA_AVX512VNNI, 0, &e) == 0) {
            run_some(m);
            trt_model_free(m);
        }
    }
    return 0;
}

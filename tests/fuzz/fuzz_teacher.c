/* libFuzzer target: teacher-logit files (data/teacher.c reader on data/h5io.c). The input is
 * decoded into a valid HDF5 file (tests/fuzz/fuzz_h5gen.h) laid out as `tern logits` writes it
 * (attributes format, version, k, vocab_size, temperature, shard, offset, seq_len, teacher;
 * /indices [N, k] int32 mostly inside the vocabulary, /values [N, k] f32 or f16, /lse [N]),
 * which the input then damages: attributes of the wrong type, rank or value (NaN, negative,
 * huge), datasets missing, retyped, reshaped or huge and never written. The reader is opened
 * with an expected vocabulary and read as the trainer reads it: windows at fuzzed shard
 * positions, with buffers sized from the file's k after the trainer's own k check. */
#include <stdlib.h>
#include <string.h>

#include "data/teacher.h"
#include "kernels/softmax.h"
#include "tests/fuzz/fuzz_h5gen.h"
#include "tests/fuzz/fuzz_tokens.h"

static void build_spec(GenSpec *s, Fz *f, size_t *vocab) {
    size_t k = fz_range(f, 1, 8), V = fz_range(f, 2, 64), N = fz_range(f, 0, 64);
    gen_attr_str(s, "/", "format", "tern-teacher-logits");
    gen_attr_num(s, "/", "version", GT_I64, 1);
    gen_attr_num(s, "/", "k", GT_I64, (double)k);
    gen_attr_num(s, "/", "vocab_size", GT_I64, (double)V);
    gen_attr_num(s, "/", "temperature", GT_F64, 1.0 + (double)fz_range(f, 0, 3));
    gen_attr_str(s, "/", "shard", "shards/train_000000.bin");
    gen_attr_num(s, "/", "offset", GT_I64, (double)fz_range(f, 0, 3));
    gen_attr_num(s, "/", "seq_len", GT_I64, (double)fz_range(f, 1, 64));
    gen_attr_str(s, "/", "teacher", "fuzz");
    size_t dims[2] = {N, k};
    gen_dataset(s, "indices", GT_I32, 2, dims)->fuzz_mod = V;
    gen_dataset(s, "values", fz_range(f, 0, 1) ? GT_F16 : GT_F32, 2, dims);
    gen_dataset(s, "lse", GT_F32, 1, dims);
    *vocab = V;
}

static void read_windows(TeacherReader *r, Fz *f) {
    size_t k = r->meta.k, nwin = fz_range(f, 1, 4);
    for (size_t w = 0; w < nwin; w++) {
        size_t T = fz_range(f, 1, 16);
        uint64_t pos = fz_range(f, 0, 3) ? r->meta.offset + fz_range(f, 0, 80) : fz_pick_u64(f, kFzEdgeSizes, kFzEdgeSizeCount);
        int32_t *idx = malloc(T * k * sizeof *idx);
        float *val = malloc(T * k * sizeof *val), *lse = malloc(T * sizeof *lse);
        int which = (int)fz_range(f, 0, 7); /* any of the three may be skipped (NULL) */
        Err err;
        int rc = teacher_read_window(r, (size_t)pos, T, which & 1 ? NULL : idx, which & 2 ? NULL : val, which & 4 ? NULL : lse, &err);
        if (rc) fz_check_error(&err, r->path);
        int outside = pos < r->meta.offset || pos - r->meta.offset > r->rows || T > r->rows - (pos - r->meta.offset);
        FZ_ASSERT(!outside || (rc && (strstr(err.msg, "beyond") || strstr(err.msg, "precedes"))),
                  "a window outside the %zu rows was not refused as such: %s", r->rows, rc ? err.msg : "(read)");
        for (size_t i = 0; !rc && !(which & 1) && i < T * k; i++)
            FZ_ASSERT(idx[i] >= 0 && (size_t)idx[i] < r->meta.vocab_size, "id %d passed the vocabulary check", idx[i]);
        free(idx);
        free(val);
        free(lse);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const kNames[] = {"indices", "values", "lse", "format", "k", "vocab_size", "extra/indices", NULL};
    Fz f = {data, size}, choices = fz_take_front(&f, 32);
    GenSpec spec = {.extra_names = kNames};
    size_t V;
    build_spec(&spec, &f, &V);
    const char *path = fz_scratch_path("_teacher.h5");
    h5gen_write(&spec, &f, path);
    size_t expected[3] = {0, V, V + 1};
    TeacherReader r;
    Err err;
    if (teacher_reader_open(&r, path, expected[fz_range(&choices, 0, 2)], &err) == 0) {
        /* what the trainer checks before sizing its buffers from k (train/trainer.c) */
        if (r.meta.k >= 1 && r.meta.k <= DISTILL_MAX_K && r.meta.temperature > 0) read_windows(&r, &choices);
        teacher_reader_close(&r);
    } else {
        fz_check_error(&err, path);
    }
    fz_check_h5_closed("the teacher reader");
    return 0;
}

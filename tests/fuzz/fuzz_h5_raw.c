/* libFuzzer target, run by hand (tests/fuzz/README.md): raw byte damage to real HDF5 files, read
 * by tern's three HDF5 readers. Unlike the structured harnesses this reaches the HDF5 library's
 * own parsing with malformed metadata, where the library is known to crash (upstream CVEs), so a
 * finding here is triaged: a crash inside libhdf5 is not ours to fix.
 * Once per process, tern's own writers make the pristine files: an .h5 token shard
 * (shard_write_h5), a teacher-logit file (TeacherWriter) and a checkpoint of a tiny GPT
 * (checkpoint_save). The input picks one (first byte), then lists damage as 4-byte records:
 * a 16-bit offset into the file (modulo its size), an operation (xor, set, truncate) and a byte. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shard.h"
#include "data/teacher.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "tests/fuzz/fuzz_common.h"

typedef struct Pristine {
    uint8_t *bytes;
    size_t n;
} Pristine;

static Pristine g_files[3]; /* written once, read-only after: one process, one harness */
static Model *g_model;

static Pristine slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    Pristine p = {0};
    if (!f) fz_fail(__FILE__, __LINE__, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    p.n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    p.bytes = malloc(p.n);
    if (fread(p.bytes, 1, p.n, f) != p.n) fz_fail(__FILE__, __LINE__, "short read of %s", path);
    fclose(f);
    return p;
}

static void make_pristine(void) {
    const char *path = fz_scratch_path("_pristine.h5");
    Err err;
    uint32_t tok[300];
    for (int i = 0; i < 300; i++) tok[i] = (uint32_t)(i * 13 % 50);
    if (shard_write_h5(path, tok, 300, &err)) fz_fail(__FILE__, __LINE__, "%s", err.msg);
    g_files[0] = slurp(path);

    TeacherMeta meta = {.k = 4, .vocab_size = 50, .seq_len = 16, .temperature = 1.0, .fp16 = 1};
    TeacherWriter w;
    int32_t idx[8 * 4];
    float val[8 * 4], lse[8];
    for (int i = 0; i < 32; i++) idx[i] = i % 50, val[i] = (float)-i;
    for (int i = 0; i < 8; i++) lse[i] = 1.0f;
    if (teacher_writer_open(&w, path, &meta, &err) || teacher_writer_append(&w, idx, val, lse, 8, &err) || teacher_writer_close(&w, &err))
        fz_fail(__FILE__, __LINE__, "%s", err.msg);
    g_files[1] = slurp(path);

    const char *cfg = "{\"seed\":1,\"model\":{\"arch\":\"gpt\",\"vocab_size\":50,\"layers\":1,\"dim\":8,\"heads\":2,\"kv_heads\":1,\"seq_len\":16}}";
    cJSON *root = cJSON_Parse(cfg);
    if (model_create(&g_model, cJSON_GetObjectItemCaseSensitive(root, "model"), 1, &err)) fz_fail(__FILE__, __LINE__, "%s", err.msg);
    cJSON_Delete(root);
    CheckpointData cd = {.ps = &g_model->ps, .total = g_model->ps.total, .config_json = cfg, .state_a = g_model->ps.values};
    if (checkpoint_save(path, &cd, &err)) fz_fail(__FILE__, __LINE__, "%s", err.msg);
    g_files[2] = slurp(path);
}

static void read_damaged(int kind, const char *path) {
    Err err;
    if (kind == 0) {
        Shard s;
        if (shard_open(&s, path, 50, &err) == 0) shard_close(&s);
    } else if (kind == 1) {
        TeacherReader r;
        if (teacher_reader_open(&r, path, 50, &err) == 0) {
            int32_t idx[16 * 4];
            float val[16 * 4], lse[16];
            if (r.meta.k == 4) (void)teacher_read_window(&r, (size_t)r.meta.offset, 8, idx, val, lse, &err);
            teacher_reader_close(&r);
        }
    } else {
        char *cfg = checkpoint_read_config(path, &err);
        free(cfg);
        float *a = malloc(g_model->ps.total * sizeof(float));
        TrainState st;
        (void)checkpoint_load(path, &g_model->ps, a, NULL, NULL, &st, &err);
        free(a);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_files[0].bytes) make_pristine();
    Fz f = {data, size};
    int kind = (int)fz_range(&f, 0, 2);
    const Pristine *p = &g_files[kind];
    uint8_t *b = malloc(p->n);
    memcpy(b, p->bytes, p->n);
    size_t n = p->n;
    while (f.n >= 4) {
        size_t at = (size_t)fz_range(&f, 0, 65535) % n;
        uint8_t op = fz_u8(&f), v = fz_u8(&f);
        if (op < 200) b[at] ^= v ? v : 1;
        else if (op < 250) b[at] = v;
        else n = at ? at : 1; /* truncate */
    }
    const char *path = fz_scratch_path("_damaged.h5");
    fz_write_file(path, b, n);
    free(b);
    read_damaged(kind, path);
    fz_check_h5_closed("a reader of a damaged file");
    return 0;
}

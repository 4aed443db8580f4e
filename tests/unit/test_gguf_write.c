/* GGUF writing (data/gguf_write.*) and ggml's block layouts (kernels/ggml_blocks.*):
 *  - Q8_0 / TQ2_0 / TQ1_0 blocks with hand-computed bytes (the bit order and the base-3 fixed
 *    point of ggml-common.h), then random rows packed and decoded by the ggml-style decoders:
 *    ternary blocks decode to exactly fp16(scale) * t; Q8_0 to within half a step.
 *  - a GGUF v3 file with every metadata kind the exporter writes and F32 / F16 / Q8_0 / TQ2_0 /
 *    TQ1_0 tensors, read back by tern's own GGUF reader (data/gguf.h): values, 32-byte aligned
 *    offsets and the tensors (dequantized by gguf_tensor_f32). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/gguf.h"
#include "data/gguf_write.h"
#include "kernels/ggml_blocks.h"
#include "kernels/quant.h"
#include "kernels/rng.h"

static float half(float v) { return f16_to_f32(f32_to_f16(v)); }

static void test_hand_blocks(void) {
    int8_t t[256];
    uint8_t b2[GGML_TQ2_0_BYTES], b1[GGML_TQ1_0_BYTES];
    float sc = 0.5f;
    /* all +1: TQ2_0 codes 2 = 0b10 in every pair; TQ1_0 c = 242 -> ceil(242 * 256 / 243) = 255 */
    memset(t, 1, sizeof t);
    ggml_pack_tq2_0(b2, t, &sc, 256);
    ggml_pack_tq1_0(b1, t, &sc, 256);
    CHECK(b2[0] == 0xAA && b2[63] == 0xAA, "TQ2_0 all +1: bytes 0xAA (got %02x)", b2[0]);
    CHECK(b1[0] == 255 && b1[47] == 255, "TQ1_0 all +1: bytes 255 (got %u)", b1[0]);
    /* qh: four trits 2 then x3: 80 * 3 = 240 -> ceil(240 * 256 / 243) = 253 */
    CHECK(b1[48] == 253, "TQ1_0 all +1: qh bytes 253 (got %u)", b1[48]);
    uint16_t h;
    memcpy(&h, b2 + 64, 2);
    CHECK(f16_to_f32(h) == 0.5f, "TQ2_0 scale after the codes");
    memcpy(&h, b1 + 52, 2);
    CHECK(f16_to_f32(h) == 0.5f, "TQ1_0 scale after qs and qh");
    /* weight m + 32 k of the first half sits at bits 2k of byte m: only weight 33 = +1 (byte 1, bits 2-3) */
    memset(t, -1, sizeof t);
    t[33] = 1;
    ggml_pack_tq2_0(b2, t, &sc, 256);
    CHECK(b2[1] == 0x08 && b2[0] == 0x00 && b2[32] == 0x00, "TQ2_0 weight 33 -> byte 1 bits 2-3 (got %02x)", b2[1]);
    /* TQ1_0: weight 32 is trit 1 of byte 0: c = 0*81 + 2*27 = 54 -> ceil(54 * 256 / 243) = 57 */
    memset(t, -1, sizeof t);
    t[32] = 1;
    ggml_pack_tq1_0(b1, t, &sc, 256);
    CHECK(b1[0] == 57 && b1[1] == 0, "TQ1_0 weight 32 -> byte 0, second trit (got %u)", b1[0]);
    /* Q8_0: d = max|x| / 127 first (fp16), then the codes; round half away from zero */
    float x[32] = {0};
    x[0] = 127.0f, x[1] = -63.5f, x[2] = 0.49f;
    uint8_t q[GGML_Q8_0_BYTES];
    ggml_quantize_q8_0(q, x, 32);
    memcpy(&h, q, 2);
    CHECK(f16_to_f32(h) == 1.0f && (int8_t)q[2] == 127 && (int8_t)q[3] == -64 && q[4] == 0, "Q8_0 hand block");
}

static void test_random_rows(void) {
    Rng rng;
    rng_seed(&rng, 7);
    enum { N = 1024 };
    int8_t t[N];
    float sc[N / 256], y[N], x[N];
    for (int i = 0; i < N; i++) t[i] = (int8_t)rng_below(&rng, 3) - 1;
    for (int b = 0; b < N / 256; b++) sc[b] = 0.01f + (float)(rng_next(&rng) % 1000) * 1e-3f;
    uint8_t p2[N / 256 * GGML_TQ2_0_BYTES], p1[N / 256 * GGML_TQ1_0_BYTES];
    ggml_pack_tq2_0(p2, t, sc, N);
    ggml_pack_tq1_0(p1, t, sc, N);
    int bad2 = 0, bad1 = 0;
    ggml_dequantize_tq2_0(y, p2, N);
    for (int i = 0; i < N; i++) bad2 += y[i] != half(sc[i / 256]) * (float)t[i];
    ggml_dequantize_tq1_0(y, p1, N);
    for (int i = 0; i < N; i++) bad1 += y[i] != half(sc[i / 256]) * (float)t[i];
    CHECK(bad2 == 0, "TQ2_0: %d of %d weights decode differently", bad2, N);
    CHECK(bad1 == 0, "TQ1_0: %d of %d weights decode differently", bad1, N);
    /* every 5-trit pattern survives TQ1_0's fixed point (243 patterns x 256 weights) */
    int badp = 0;
    for (int c = 0; c < 243; c++) {
        int8_t u[256];
        for (int i = 0; i < 256; i++) {
            int k = (i < 160) ? i / 32 : (i < 240 ? (i - 160) / 16 : (i - 240) / 4);
            int pw = 1;
            for (int j = 0; j < 4 - k; j++) pw *= 3; /* digit k of c, most significant first */
            u[i] = (int8_t)((c / pw) % 3 - 1);
        }
        float one = 1.0f, z[256];
        uint8_t b[GGML_TQ1_0_BYTES];
        ggml_pack_tq1_0(b, u, &one, 256);
        ggml_dequantize_tq1_0(z, b, 256);
        for (int i = 0; i < 256; i++) badp += z[i] != (float)u[i];
    }
    CHECK(badp == 0, "TQ1_0: all 243 trit patterns decode back (%d wrong)", badp);
    for (int i = 0; i < N; i++) x[i] = (float)((int)(rng_next(&rng) % 20001) - 10000) * 1e-3f;
    uint8_t q8[N / 32 * GGML_Q8_0_BYTES];
    ggml_quantize_q8_0(q8, x, N);
    ggml_dequantize_q8_0(y, q8, N);
    double worst = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        /* half a step, plus the fp16 rounding of d times the largest code */
        double bound = 0.5 * amax / 127 * (1 + 1e-3) + 127 * fabs(half(amax / 127) - amax / 127);
        for (int j = 0; j < 32; j++) worst = fmax(worst, fabs(y[b * 32 + j] - x[b * 32 + j]) / bound);
    }
    CHECK(worst <= 1.0, "Q8_0 error within half a step (worst %.3f of the bound)", worst);
}

static void test_file(void) {
    GgufWriter w;
    gguf_writer_init(&w);
    gguf_put_str(&w, "general.architecture", "llama");
    gguf_put_u32(&w, "llama.block_count", 3);
    gguf_put_f32(&w, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
    gguf_put_bool(&w, "tokenizer.ggml.add_space_prefix", 0);
    const char *toks[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a"};
    size_t tl[] = {5, 3, 4, 4};
    float scores[] = {0, 0, 0, -1.5f};
    int32_t types[] = {2, 3, 3, 1};
    gguf_put_arr_str(&w, "tokenizer.ggml.tokens", toks, tl, 4);
    gguf_put_arr_f32(&w, "tokenizer.ggml.scores", scores, 4);
    gguf_put_arr_i32(&w, "tokenizer.ggml.token_type", types, 4);
    float a[3] = {1.5f, -2.0f, 3.25f};
    uint8_t *d0 = malloc(12);
    memcpy(d0, a, 12);
    gguf_add_tensor(&w, "a", 1, (uint64_t[]){3}, GGML_TYPE_F32, d0, 12);
    uint8_t *d1 = malloc(4);
    uint16_t hh[2] = {f32_to_f16(0.5f), f32_to_f16(-4.0f)};
    memcpy(d1, hh, 4);
    gguf_add_tensor(&w, "h", 2, (uint64_t[]){1, 2}, GGML_TYPE_F16, d1, 4);
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i - 31.5f;
    uint8_t *d2 = malloc(2 * GGML_Q8_0_BYTES);
    ggml_quantize_q8_0(d2, x, 64);
    gguf_add_tensor(&w, "q", 2, (uint64_t[]){32, 2}, GGML_TYPE_Q8_0, d2, 2 * GGML_Q8_0_BYTES);
    int8_t t[512];
    for (int i = 0; i < 512; i++) t[i] = (int8_t)(i % 3 - 1);
    float sc[2] = {0.25f, 3.0f};
    uint8_t *d3 = malloc(2 * GGML_TQ2_0_BYTES), *d4 = malloc(2 * GGML_TQ1_0_BYTES);
    ggml_pack_tq2_0(d3, t, sc, 512);
    ggml_pack_tq1_0(d4, t, sc, 512);
    gguf_add_tensor(&w, "t2", 2, (uint64_t[]){256, 2}, GGML_TYPE_TQ2_0, d3, 2 * GGML_TQ2_0_BYTES);
    gguf_add_tensor(&w, "t1", 2, (uint64_t[]){512, 1}, GGML_TYPE_TQ1_0, d4, 2 * GGML_TQ1_0_BYTES);
    char path[] = "/tmp/tern_gguf_write_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "temp file");
    close(fd);
    Err err = {0};
    CHECK(gguf_writer_save(&w, path, &err) == 0, "save: %s", err.msg);
    gguf_writer_free(&w);

    Gguf g;
    CHECK(gguf_open(&g, path, &err) == 0, "read back: %s", err.msg);
    CHECK(g.version == 3 && g.ntensors == 5 && g.nkv == 8, "version 3, 5 tensors, 7 keys + general.alignment");
    char *s = NULL;
    uint64_t n = 0;
    double e = 0, pre = 1;
    CHECK(gguf_get_str(&g, "general.architecture", &s, &err) == 0 && !strcmp(s, "llama"), "string");
    free(s);
    CHECK(gguf_get_u64(&g, "llama.block_count", &n, &err) == 0 && n == 3, "u32");
    CHECK(gguf_get_f64(&g, "llama.attention.layer_norm_rms_epsilon", &e, &err) == 0 && (float)e == 1e-6f, "f32");
    CHECK(gguf_get_f64(&g, "tokenizer.ggml.add_space_prefix", &pre, &err) == 0 && pre == 0, "bool");
    CHECK(gguf_get_u64(&g, "general.alignment", &n, &err) == 0 && n == 32, "alignment 32");
    const GgufKv *kv = gguf_find(&g, "tokenizer.ggml.tokens");
    const char *ss[4];
    size_t sl[4];
    CHECK(kv && kv->count == 4 && gguf_array_strings(&g, kv, ss, sl, &err) == 0 && sl[3] == 4 && !memcmp(ss[3], toks[3], 4),
          "string array");
    kv = gguf_find(&g, "tokenizer.ggml.scores");
    CHECK(kv && gguf_array_num(&g, kv, 3, &e, &err) == 0 && e == -1.5, "f32 array");
    kv = gguf_find(&g, "tokenizer.ggml.token_type");
    CHECK(kv && gguf_array_num(&g, kv, 0, &e, &err) == 0 && e == 2, "i32 array");
    for (size_t i = 0; i < g.ntensors; i++)
        CHECK(g.tensors[i].data && (size_t)(g.tensors[i].data - g.map) % 32 == 0, "tensor %s at an aligned offset", g.tensors[i].name);
    float out[512];
    CHECK(gguf_tensor_f32(&g, gguf_tensor(&g, "a"), out, 3, &err) == 0 && !memcmp(out, a, 12), "F32 tensor");
    CHECK(gguf_tensor_f32(&g, gguf_tensor(&g, "h"), out, 2, &err) == 0 && out[0] == 0.5f && out[1] == -4.0f, "F16 tensor");
    CHECK(gguf_tensor_f32(&g, gguf_tensor(&g, "q"), out, 64, &err) == 0 && fabsf(out[63] - 31.5f) < 0.2f && fabsf(out[0] + 31.5f) < 0.2f,
          "Q8_0 tensor dequantized");
    int bad = 0;
    CHECK(gguf_tensor_f32(&g, gguf_tensor(&g, "t2"), out, 512, &err) == 0, "TQ2_0 tensor: %s", err.msg);
    for (int i = 0; i < 512; i++) bad += out[i] != sc[i / 256] * (float)t[i];
    CHECK(gguf_tensor_f32(&g, gguf_tensor(&g, "t1"), out, 512, &err) == 0, "TQ1_0 tensor: %s", err.msg);
    for (int i = 0; i < 512; i++) bad += out[i] != sc[i / 256] * (float)t[i];
    CHECK(bad == 0, "ternary tensors read back exactly (%d wrong)", bad);
    gguf_close(&g);
    unlink(path);
}

int main(void) {
    test_hand_blocks();
    test_random_rows();
    test_file();
    return test_summary("test_gguf_write");
}

/* export/format.h: every dtype's pack/unpack round-trips exactly (random codes over the whole
 * range, all row lengths around the packing groups), the int5 layout is byte-for-byte
 * parameter-golf's (_pack_int5: value + 15, 8 values per 40-bit little-endian word), the
 * ternary layouts match their definitions (TQ2_0 bit pairs, base-3 digits), half conversion
 * agrees with kernels/quant.c on every half and on many floats, the CRC-32 gives the standard
 * check value, and the header / table / hyper-parameter encoders round-trip. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "export/format.h"
#include "kernels/quant.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void test_roundtrip(void) {
    const uint32_t dts[] = {TERN_DT_I8, TERN_DT_I6, TERN_DT_I5, TERN_DT_I4, TERN_DT_T2, TERN_DT_T3};
    int8_t codes[1100], back[1100];
    uint8_t buf[1200];
    size_t cases = 0;
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
        uint32_t dt = dts[d];
        int q = tern_dtype_qmax(dt);
        int ok = 1;
        for (size_t cols = 1; cols <= 1030; cols += (cols < 300 ? 1 : 37)) {
            for (size_t i = 0; i < cols; i++) codes[i] = (int8_t)((int)(next_u32() % (uint32_t)(2 * q + 1)) - q);
            /* the extremes at both ends too */
            codes[0] = (int8_t)-q;
            codes[cols - 1] = (int8_t)q;
            size_t rb = tern_row_bytes(dt, cols);
            memset(buf, 0xAB, sizeof buf);
            tern_pack_row(dt, buf, codes, cols);
            tern_unpack_row(dt, back, buf, cols);
            if (memcmp(codes, back, cols)) ok = 0;
            if (!tern_row_valid(dt, buf, cols)) ok = 0;
            if (buf[rb] != 0xAB) ok = 0; /* writes stay inside the row */
            for (size_t i = 0; i < cols; i++)
                if (tern_row_code(dt, buf, i) != codes[i]) ok = 0;
            cases++;
        }
        CHECK(ok, "%s pack/unpack round trip", tern_dtype_name(dt));
        printf("  %-10s round trip over row lengths 1..1030: %s\n", tern_dtype_name(dt), ok ? "ok" : "FAIL");
    }
    CHECK(cases > 0, "cases");
}

static void test_layouts(void) {
    /* int5 = parameter-golf: u = q + 15; 8 values -> 40-bit LE word, value i at bits 5i..5i+4 */
    int8_t c[16];
    for (int i = 0; i < 16; i++) c[i] = (int8_t)((i * 7) % 31 - 15);
    uint8_t b[10];
    tern_pack_row(TERN_DT_I5, b, c, 16);
    int ok = 1;
    for (int g = 0; g < 2; g++) {
        uint64_t w = 0;
        for (int i = 0; i < 8; i++) w |= (uint64_t)(c[8 * g + i] + 15) << (5 * i);
        for (int k = 0; k < 5; k++) ok &= b[5 * g + k] == (uint8_t)(w >> (8 * k));
    }
    CHECK(ok, "int5 layout is parameter-golf's 40-bit word");
    const int8_t ex[8] = {-15, 0, 15, 1, 2, 3, 4, 5}; /* the example in docs/FORMAT.md 1.5 */
    const uint8_t exb[5] = {0xE0, 0x79, 0x18, 0xE5, 0xA4};
    tern_pack_row(TERN_DT_I5, b, ex, 8);
    CHECK(!memcmp(b, exb, 5), "docs/FORMAT.md int5 example bytes");
    CHECK(tern_row_bytes(TERN_DT_I5, 512) == 320 && tern_row_bytes(TERN_DT_I5, 9) == 10, "int5 row bytes (0.625 B/weight, padded to 8)");
    CHECK(tern_row_bytes(TERN_DT_I6, 4) == 3 && tern_row_bytes(TERN_DT_I4, 3) == 2, "int6/int4 row bytes");
    /* ternary 2-bit: byte m of a 128-block holds weights m, m+32, m+64, m+96 in bits 0-1 .. 6-7 */
    int8_t t[128];
    for (int i = 0; i < 128; i++) t[i] = (int8_t)((i % 3) - 1);
    uint8_t tb[32];
    tern_pack_row(TERN_DT_T2, tb, t, 128);
    ok = 1;
    for (int m = 0; m < 32; m++) {
        uint8_t want = 0;
        for (int k = 0; k < 4; k++) want |= (uint8_t)((t[m + 32 * k] + 1) << (2 * k));
        ok &= tb[m] == want;
    }
    CHECK(ok, "ternary 2-bit layout (TQ2_0 order, u = w + 1)");
    /* padding of a short row is weight 0 (u = 1) */
    tern_pack_row(TERN_DT_T2, tb, t, 5);
    CHECK(tern_row_u(TERN_DT_T2, tb, 100) == 1, "2-bit padding is u = 1");
    /* base 3: byte = t0 + 3 t1 + 9 t2 + 27 t3 + 81 t4, t = w + 1 */
    int8_t w5[7] = {-1, 0, 1, 1, -1, 1, 0};
    uint8_t b3[2];
    tern_pack_row(TERN_DT_T3, b3, w5, 7);
    CHECK(b3[0] == 0 + 3 * 1 + 9 * 2 + 27 * 2 + 81 * 0 && b3[1] == 2 + 3 * 1 + 9 * 1 + 27 * 1 + 81 * 1, "base-3 digits (%u, %u)", b3[0], b3[1]);
    CHECK(tern_row_bytes(TERN_DT_T3, 240) == 48, "base-3: 1.6 bits per weight");
    uint8_t bad = 243;
    CHECK(!tern_row_valid(TERN_DT_T3, &bad, 5), "base-3 byte 243 rejected");
    uint8_t bad2[32];
    memset(bad2, 0xff, sizeof bad2);
    CHECK(!tern_row_valid(TERN_DT_T2, bad2, 128), "2-bit code 3 rejected");
    int8_t m128 = -128;
    CHECK(!tern_row_valid(TERN_DT_I8, (const uint8_t *)&m128, 1), "int8 -128 rejected");
    printf("  layouts: int5 = parameter-golf, 2-bit = TQ2_0 order, base-3 digits: checked\n");
}

static void test_half(void) {
    size_t bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = tern_f16_to_f32((uint16_t)h), b = f16_to_f32((uint16_t)h);
        if (memcmp(&a, &b, 4) && !(isnan(a) && isnan(b))) bad++;
        if (!isnan(a) && tern_f32_to_f16(a) != (uint16_t)h) bad++; /* exact values convert back */
    }
    CHECK(bad == 0, "%zu halves disagree", bad);
    size_t bad2 = 0, n = 0;
    const float special[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e-8f, 2.98e-8f, 2.9802322e-8f, 5.96e-8f, 6.1e-5f,
                             6.097555e-5f, INFINITY, -INFINITY, FLT_MIN, FLT_MAX, 1.0f / 3.0f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++, n++)
        if (tern_f32_to_f16(special[i]) != f32_to_f16(special[i])) bad2++;
    for (int i = 0; i < 2000000; i++, n++) {
        uint32_t u = next_u32() << 1 ^ next_u32();
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f)) continue;
        if (tern_f32_to_f16(f) != f32_to_f16(f)) bad2++;
    }
    CHECK(bad2 == 0, "%zu of %zu floats convert differently from kernels/quant.c", bad2, n);
    printf("  half: all 65536 halves and %zu floats agree with kernels/quant.c\n", n);
}

static void test_crc_and_headers(void) {
    CHECK(tern_crc32(0, "123456789", 9) == 0xCBF43926u, "CRC-32 check value");
    CHECK(tern_crc32(tern_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u, "CRC-32 chaining");
    TernHeader h = {TERN_FORMAT_VERSION, TERN_HEADER_SIZE, 0, 7, TERN_TENSOR_ENTRY_SIZE, 0, 128, 64, 192, 1000, 55,
                    1055, 77, TERN_TOK_FILE, 1152, 999, 2155};
    uint8_t hb[TERN_HEADER_SIZE];
    tern_header_encode(hb, &h);
    TernHeader h2;
    uint8_t hb2[TERN_HEADER_SIZE];
    CHECK(tern_header_decode(hb, &h2) == 0, "header decodes");
    tern_header_encode(hb2, &h2);
    CHECK(!memcmp(hb, hb2, sizeof hb) && h2.tokenizer_kind == TERN_TOK_FILE && h2.container_size == 2155, "header round trip");
    TernTensorEntry e = {"blocks.3.mlp.fc.weight", TERN_DT_T2, TERN_SCALE_F16, 8, 2, 128, 0, 0, 1024, 512, 4096, 131072, 135168, 8192};
    uint8_t eb[TERN_TENSOR_ENTRY_SIZE];
    tern_entry_encode(eb, &e);
    TernTensorEntry e2;
    uint8_t eb2[TERN_TENSOR_ENTRY_SIZE];
    CHECK(tern_entry_decode(eb, &e2) == 0, "table entry decodes");
    tern_entry_encode(eb2, &e2);
    CHECK(!memcmp(eb, eb2, sizeof eb) && !strcmp(e2.name, e.name) && e2.scale_size == 8192 && e2.act_bits == 8, "table entry round trip");
    /* typed key/values: a round trip, then every truncation and a set of damaged sections refused */
    TernKv kv[4];
    memset(kv, 0, sizeof kv);
    snprintf(kv[0].key, sizeof kv[0].key, "stack.dim"), kv[0].type = TERN_KV_U32, kv[0].u = 512;
    snprintf(kv[1].key, sizeof kv[1].key, "stack.softcap"), kv[1].type = TERN_KV_F32, kv[1].f = 30.0f;
    snprintf(kv[2].key, sizeof kv[2].key, "stack.skips"), kv[2].type = TERN_KV_BOOL, kv[2].u = 1;
    snprintf(kv[3].key, sizeof kv[3].key, "layer.0.mixer"), kv[3].type = TERN_KV_STR, snprintf(kv[3].s, sizeof kv[3].s, "attention");
    size_t kn = tern_kv_section_size(kv, 4), got = 0;
    uint8_t kb[256], kb2[256];
    CHECK(kn == 4 + (8 + 9 + 4) + (8 + 13 + 4) + (8 + 11 + 4) + (8 + 13 + 4 + 9) && kn <= sizeof kb, "kv section size %zu", kn);
    tern_kv_encode(kb, kv, 4);
    TernKv back[4];
    const char *why = NULL;
    CHECK(tern_kv_decode(kb, kn, back, 4, &got, &why) == 0 && got == 4, "kv section decodes");
    tern_kv_encode(kb2, back, got);
    CHECK(!memcmp(kb, kb2, kn) && back[0].u == 512 && back[1].f == 30.0f && back[2].u == 1 && !strcmp(back[3].s, "attention"),
          "kv round trip");
    size_t refused = 0;
    for (size_t cut = 0; cut < kn; cut++) refused += tern_kv_decode(kb, cut, back, 4, &got, &why) != 0;
    CHECK(refused == kn, "every truncation of the kv section refused (%zu of %zu)", refused, kn);
    struct {
        size_t off;
        uint8_t v;
        const char *what;
    } dmg[] = {{4 + 4 + 9, 7, "unknown type"}, {4 + 21 + 25 + 4 + 11 + 4, 2, "bool 2"}, {8, 0x01, "unprintable key"},
               {4, 0x40, "key length past the end"}};
    for (size_t k = 0; k < sizeof dmg / sizeof dmg[0]; k++) {
        memcpy(kb2, kb, kn);
        kb2[dmg[k].off] = dmg[k].v;
        CHECK(tern_kv_decode(kb2, kn, back, 4, &got, &why) != 0, "damaged kv section (%s) refused", dmg[k].what);
    }
    memcpy(kb2, kb, kn);
    CHECK(tern_kv_decode(kb2, kn - 1, back, 4, &got, &why) != 0, "short kv section refused");
    snprintf(kv[1].key, sizeof kv[1].key, "stack.dim");
    tern_kv_encode(kb2, kv, 4);
    CHECK(tern_kv_decode(kb2, tern_kv_section_size(kv, 4), back, 4, &got, &why) != 0 && !strcmp(why, "repeated key"), "repeated key refused");
    TernPreamble p = {TERN_FORMAT_VERSION, 0, 123456789012ull}, p2;
    uint8_t pb[TERN_PREAMBLE_SIZE];
    tern_preamble_encode(pb, &p);
    CHECK(tern_preamble_decode(pb, sizeof pb, &p2) == 0 && p2.container_size == p.container_size && p2.version == TERN_FORMAT_VERSION, "preamble");
    CHECK(tern_rd_u32(pb) == 0x184D2A5Eu, "preamble is a zstd skippable frame");
    pb[9] ^= 1;
    CHECK(tern_preamble_decode(pb, sizeof pb, &p2) != 0, "wrong magic rejected");
    printf("  CRC-32 and header / table / hparams encoders: checked\n");
}

int main(void) {
    printf("test_export_format\n");
    test_roundtrip();
    test_layouts();
    test_half();
    test_crc_and_headers();
    return test_summary("test_export_format");
}

/* GGUF reading (data/gguf.*): small files written here in versions 1 and 3 with every value
 * kind the importer reads (strings, integers, floats, arrays of strings / floats / ints) and
 * F32 + F16 tensors; the values, the tensor data, the SentencePiece model built from the
 * tokenizer arrays (parsed back by tern's own ModelProto reader); then every truncation of the
 * file and single-byte corruptions of its header: each must be refused or read without touching
 * memory outside the file (run under ASan by `make test-sanitize`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/gguf.h"
#include "data/sentencepiece.h"
#include "kernels/quant.h"

typedef struct Buf {
    unsigned char *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(Buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(Buf *b, uint64_t v) { put(b, &v, 8); }
static void f32(Buf *b, float v) { put(b, &v, 4); }
static void cnt(Buf *b, int ver, uint64_t v) {
    if (ver == 1) u32(b, (uint32_t)v);
    else u64(b, v);
}
static void str(Buf *b, int ver, const char *s) {
    cnt(b, ver, strlen(s));
    put(b, s, strlen(s));
}

static const char *kTokens[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81" "a", "b", "\xe2\x96\x81" "ab", "a"};
static const float kScores[] = {0, 0, 0, -1, -2, -0.5f, -3};
static const int32_t kTypes[] = {2, 3, 3, 1, 1, 1, 1};

static Buf make(int ver) {
    Buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, (uint32_t)ver);
    cnt(&b, ver, 2); /* tensors */
    cnt(&b, ver, 8); /* metadata */
    str(&b, ver, "general.architecture"), u32(&b, GGUF_STRING), str(&b, ver, "llama");
    str(&b, ver, "llama.block_count"), u32(&b, GGUF_U32), u32(&b, 5);
    str(&b, ver, "llama.attention.layer_norm_rms_epsilon"), u32(&b, GGUF_F32), f32(&b, 1e-5f);
    str(&b, ver, "tokenizer.ggml.model"), u32(&b, GGUF_STRING), str(&b, ver, "llama");
    str(&b, ver, "tokenizer.ggml.tokens"), u32(&b, GGUF_ARRAY), u32(&b, GGUF_STRING), cnt(&b, ver, 7);
    for (int i = 0; i < 7; i++) str(&b, ver, kTokens[i]);
    str(&b, ver, "tokenizer.ggml.scores"), u32(&b, GGUF_ARRAY), u32(&b, GGUF_F32), cnt(&b, ver, 7);
    for (int i = 0; i < 7; i++) f32(&b, kScores[i]);
    str(&b, ver, "tokenizer.ggml.token_type"), u32(&b, GGUF_ARRAY), u32(&b, GGUF_I32), cnt(&b, ver, 7);
    for (int i = 0; i < 7; i++) put(&b, &kTypes[i], 4);
    str(&b, ver, "tokenizer.ggml.bos_token_id"), u32(&b, GGUF_U32), u32(&b, 1);
    /* tensors: w [3, 2] f32 (dims {2, 3}), h [4] f16 */
    str(&b, ver, "w"), u32(&b, 2), cnt(&b, ver, 2), cnt(&b, ver, 3), u32(&b, GGML_F32), u64(&b, 0);
    str(&b, ver, "h"), u32(&b, 1), cnt(&b, ver, 4), u32(&b, GGML_F16), u64(&b, 32);
    while (b.n % 32) put(&b, "", 1);
    for (int i = 0; i < 6; i++) f32(&b, (float)i + 0.5f);
    while (b.n % 32) put(&b, "", 1);
    uint16_t h[4] = {0x3c00, 0xc000, 0x3800, 0x0000}; /* 1, -2, 0.5, 0 */
    put(&b, h, sizeof h);
    return b;
}

static int open_bytes(Gguf *g, const char *path, const Buf *b, Err *err) {
    FILE *f = fopen(path, "wb");
    if (b->n) fwrite(b->p, 1, b->n, f);
    fclose(f);
    return gguf_open(g, path, err);
}

int main(void) {
    char path[] = "/tmp/tern_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    for (int ver = 1; ver <= 3; ver += 2) {
        printf("version %d\n", ver);
        Buf b = make(ver);
        Gguf g;
        Err err = {0};
        CHECK(open_bytes(&g, path, &b, &err) == 0, "open: %s", err.msg);
        if (!g.map) continue;
        char *s = NULL;
        uint64_t n = 0;
        double e = 0;
        CHECK(gguf_get_str(&g, "general.architecture", &s, &err) == 0 && !strcmp(s, "llama"), "string value");
        free(s);
        CHECK(gguf_get_u64(&g, "llama.block_count", &n, &err) == 0 && n == 5, "u32 value");
        CHECK(gguf_get_f64(&g, "llama.attention.layer_norm_rms_epsilon", &e, &err) == 0 && (float)e == 1e-5f, "f32 value");
        CHECK(gguf_get_u64(&g, "missing.key", &n, &err) != 0 && strstr(err.msg, "missing.key"), "a missing key is named");
        CHECK(gguf_get_u64(&g, "general.architecture", &n, &err) != 0 && strstr(err.msg, "not a number"), "type checked");
        const GgufTensor *w = gguf_tensor(&g, "w"), *h = gguf_tensor(&g, "h");
        CHECK(w && w->ndim == 2 && w->dims[0] == 2 && w->dims[1] == 3 && w->numel == 6, "f32 tensor info");
        float out[6];
        CHECK(w && gguf_tensor_f32(&g, w, out, 6, &err) == 0 && out[0] == 0.5f && out[5] == 5.5f, "f32 tensor data");
        CHECK(h && gguf_tensor_f32(&g, h, out, 4, &err) == 0 && out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.5f && out[3] == 0.0f,
              "f16 tensor data");
        CHECK(w && gguf_tensor_f32(&g, w, out, 5, &err) != 0, "a size mismatch is refused");
        uint8_t *proto = NULL;
        size_t plen = 0;
        CHECK(gguf_sentencepiece_model(&g, &proto, &plen, &err) == 0, "tokenizer proto: %s", err.msg);
        SpModel *sp = NULL;
        if (proto) {
            CHECK(sp_model_parse(&sp, proto, plen, &err) == 0, "the proto parses back: %s", err.msg);
            if (sp) {
                CHECK(sp_model_num_pieces(sp) == 7 && sp_model_bos(sp) == 1 && sp_model_eos(sp) == 2 && sp_model_unk(sp) == 0,
                      "7 pieces, bos 1, eos 2, unk 0");
                const SpPiece *pc = sp_model_piece(sp, 5);
                CHECK(pc && pc->score == -0.5f && pc->type == 1 && !strncmp(pc->text, kTokens[5], pc->len), "piece 5 round trip");
                sp_model_free(sp);
            }
            free(proto);
        }
        gguf_close(&g);
        /* every truncation, and each header byte overwritten with a few values */
        size_t refused = 0, accepted = 0;
        for (size_t cut = 0; cut < b.n; cut++) {
            Buf t = {b.p, cut, cut};
            Gguf g2;
            if (open_bytes(&g2, path, &t, &err) == 0) {
                accepted++;
                for (size_t i = 0; i < g2.ntensors; i++)
                    if (g2.tensors[i].data) (void)gguf_tensor_f32(&g2, &g2.tensors[i], out, (size_t)g2.tensors[i].numel > 6 ? 0 : (size_t)g2.tensors[i].numel, &err);
                gguf_close(&g2);
            } else {
                refused++;
            }
        }
        printf("  truncations: %zu refused, %zu accepted (cut inside the padding or the unused tail)\n", refused, accepted);
        CHECK(refused >= b.n - 64, "truncated files are refused");
        const unsigned char vals[] = {0x00, 0xff, 0x7f, 0x80};
        for (size_t i = 0; i < b.n && i < 400; i++)
            for (size_t k = 0; k < 4; k++) {
                Buf c = {malloc(b.n), b.n, b.n};
                memcpy(c.p, b.p, b.n);
                c.p[i] = vals[k];
                Gguf g3;
                if (open_bytes(&g3, path, &c, &err) == 0) {
                    uint8_t *p2 = NULL;
                    size_t l2 = 0;
                    if (gguf_sentencepiece_model(&g3, &p2, &l2, &err) == 0) free(p2);
                    gguf_close(&g3);
                }
                free(c.p);
            }
        printf("  %zu single-byte corruptions of the header read without a fault\n", (b.n < 400 ? b.n : 400) * 4);
        free(b.p);
    }
    remove(path);
    return test_summary("test_gguf");
}

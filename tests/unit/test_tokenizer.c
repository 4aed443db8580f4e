/* test_tokenizer.c — tokenizers against references that could disagree:
 *  - SentencePiece: every id of every line of the FineWeb documents and of the four $TERN_DATA/text
 *    corpora against the official spm_encode (or the Python sentencepiece module), decoding against
 *    spm_decode, whole documents against the first 628,457 tokens of the FineWeb train shard, and
 *    variants of the model (dummy prefix, kept whitespace, suffix spaces, no byte fallback,
 *    user-defined symbols) rebuilt here and checked the same way;
 *  - the byte tokenizer and tern BPE: exact round trips, BPE against a naive merge-by-merge
 *    reference, the same merges whatever the thread count, save / load;
 *  - MaxMatch on a small vocab with known ids and unknown rate;
 *  - bad input: empty / random / truncated / damaged model files, malformed UTF-8, bad ids. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "data/protobuf.h"
#include "data/sentencepiece.h"
#include "data/tokenizer.h"

static char g_tmp[256];         /* scratch folder for this run */
static const char *g_data;      /* $TERN_DATA, NULL when absent */
static char g_model[512];       /* the sp1024 model */
static int g_ref;               /* 0: no reference tool, 1: spm_encode/spm_decode, 2: Python sentencepiece */

/* ---------------------------------------------------------------- helpers */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(data, 1, len, f) == len;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_tmp, name); }

typedef struct Lines {
    const char **p;
    size_t *n;
    size_t count;
} Lines;

/* spm_encode's reading: split on '\n', keep '\r', a last line without '\n' counts. */
static Lines split_lines(const char *data, size_t len) {
    Lines l = {0};
    size_t cap = 1024;
    l.p = malloc(cap * sizeof *l.p);
    l.n = malloc(cap * sizeof *l.n);
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (l.count == cap) {
            cap *= 2;
            l.p = realloc(l.p, cap * sizeof *l.p);
            l.n = realloc(l.n, cap * sizeof *l.n);
        }
        l.p[l.count] = data + pos;
        l.n[l.count++] = end - pos;
        pos = end + 1;
    }
    return l;
}

static void lines_free(Lines *l) {
    free(l->p);
    free(l->n);
    memset(l, 0, sizeof *l);
}

typedef struct IdLines {
    int32_t *ids;
    size_t *off; /* count + 1 */
    size_t count;
} IdLines;

static int parse_id_lines(const char *path, IdLines *out) {
    size_t len;
    char *data = slurp(path, &len);
    memset(out, 0, sizeof *out);
    if (!data) return -1;
    Lines l = split_lines(data, len);
    size_t cap = len / 2 + 16, n = 0;
    out->ids = malloc(cap * sizeof *out->ids);
    out->off = malloc((l.count + 1) * sizeof *out->off);
    out->count = l.count;
    for (size_t i = 0; i < l.count; i++) {
        out->off[i] = n;
        const char *p = l.p[i], *e = p + l.n[i];
        while (p < e) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p) break;
            out->ids[n++] = (int32_t)v;
            p = q;
        }
    }
    out->off[l.count] = n;
    lines_free(&l);
    free(data);
    return 0;
}

static void idlines_free(IdLines *x) {
    free(x->ids);
    free(x->off);
    memset(x, 0, sizeof *x);
}

static int run(const char *cmd) {
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        printf("  command failed (%d): %s\n", rc, cmd);
        return -1;
    }
    return 0;
}

/* The reference: spm_encode / spm_decode, else Python's sentencepiece on the same bytes. */
static const char *kPyEncode =
    "import sys, sentencepiece as s\n"
    "sp = s.SentencePieceProcessor(model_file=sys.argv[1])\n"
    "lines = sys.stdin.buffer.read().split(b'\\n')\n"
    "if lines and lines[-1] == b'': lines.pop()\n"
    "sys.stdout.write(''.join(' '.join(map(str, sp.encode(l))) + '\\n' for l in lines))\n";
static const char *kPyDecode =
    "import sys, sentencepiece as s\n"
    "sp = s.SentencePieceProcessor(model_file=sys.argv[1])\n"
    "lines = sys.stdin.buffer.read().split(b'\\n')\n"
    "if lines and lines[-1] == b'': lines.pop()\n"
    "out = sys.stdout.buffer\n"
    "for l in lines: out.write(sp.decode([int(x) for x in l.split()]).encode('utf-8') + b'\\n')\n";

static int ref_run(const char *model, const char *in, const char *out, int decode) {
    char cmd[4096];
    if (g_ref == 1) {
        snprintf(cmd, sizeof cmd, "%s --model='%s' %s < '%s' > '%s'", decode ? "/usr/bin/spm_decode" : "/usr/bin/spm_encode",
                 model, decode ? "--input_format=id" : "--output_format=id", in, out);
    } else {
        char script[512];
        tmp_path(script, sizeof script, decode ? "ref_decode.py" : "ref_encode.py");
        const char *src = decode ? kPyDecode : kPyEncode;
        if (spit(script, src, strlen(src))) return -1;
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' < '%s' > '%s'", script, model, in, out);
    }
    return run(cmd);
}

static void detect_reference(void) {
    /* TERN_TOKENIZER_REF=python|none forces the fallbacks (to test them on a machine with spm) */
    const char *force = getenv("TERN_TOKENIZER_REF");
    int allow_spm = !force || !strcmp(force, "spm"), allow_py = !force || !strcmp(force, "python");
    if (allow_spm && access("/usr/bin/spm_encode", X_OK) == 0 && access("/usr/bin/spm_decode", X_OK) == 0) {
        g_ref = 1;
        printf("reference: /usr/bin/spm_encode and /usr/bin/spm_decode\n");
        return;
    }
    if (allow_py && access("/usr/bin/python3", X_OK) == 0 &&
        system("/usr/bin/python3 -c 'import sentencepiece' > /dev/null 2>&1") == 0) {
        g_ref = 2;
        printf("reference: /usr/bin/python3 with sentencepiece (spm_encode not found)\n");
        return;
    }
    printf("SKIP: reference comparisons: neither spm_encode nor Python sentencepiece is installed\n");
}

static int ids_equal(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    printf("      %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* ---------------------------------------------------------------- byte tokenizer */

static void test_byte(void) {
    printf("byte tokenizer\n");
    Err err = {0};
    Tokenizer *t;
    CHECK(tokenizer_load(&t, "byte", &err) == 0, "%s", err.msg);
    if (!t) return;
    CHECK(tokenizer_vocab_size(t) == 259 && tokenizer_bos(t) == 256 && tokenizer_eos(t) == 257 &&
              tokenizer_pad(t) == 258 && tokenizer_unk(t) == -1,
          "vocab %zu bos %d", tokenizer_vocab_size(t), tokenizer_bos(t));
    const char *text = "h\xC3\xA9llo \xF0\x9F\x99\x82\n\ttab";
    TokenBuf b = {0};
    CHECK(tokenizer_encode(t, text, strlen(text), &b, &err) == 0, "%s", err.msg);
    int same = b.n == strlen(text);
    for (size_t i = 0; same && i < b.n; i++) same = b.ids[i] == (uint8_t)text[i];
    CHECK(same, "ids are not the bytes");
    int32_t with_specials[64];
    size_t n = 0;
    with_specials[n++] = 256;
    for (size_t i = 0; i < b.n; i++) with_specials[n++] = b.ids[i];
    with_specials[n++] = 257;
    char *dec;
    size_t dlen;
    CHECK(tokenizer_decode(t, with_specials, n, &dec, &dlen, &err) == 0 && dlen == strlen(text) && !memcmp(dec, text, dlen),
          "round trip");
    free(dec);
    char pb[8];
    const char *piece;
    size_t plen;
    CHECK(tokenizer_piece_bytes(t, 0xC3, pb, sizeof pb) == 1 && (uint8_t)pb[0] == 0xC3, "piece bytes");
    CHECK(tokenizer_piece(t, 0x41, &piece, &plen) == 6 && !memcmp(piece, "<0x41>", 6), "piece text");
    CHECK(tokenizer_piece_type(t, 256) == PIECE_CONTROL && tokenizer_piece_bytes(t, 256, pb, sizeof pb) == 0, "specials");
    b.n = 0;
    CHECK(tokenizer_encode(t, "ab\xFF", 3, &b, &err) == -1 && strstr(err.msg, "byte 2"), "invalid UTF-8: %s", err.msg);
    CHECK(b.n == 0, "failed encode left %zu ids", b.n);
    CHECK(tokenizer_encode_ex(t, NULL, "ab\xFF", 3, TOK_ENCODE_ALLOW_INVALID_UTF8, &b, &err) == 0 && b.n == 3 &&
              b.ids[2] == 255,
          "lossless bytes");
    int32_t bad = 259;
    CHECK(tokenizer_decode(t, &bad, 1, &dec, &dlen, &err) == -1 && strstr(err.msg, "259"), "bad id: %s", err.msg);
    printf("  ok: ids = bytes, BOS/EOS decode to nothing, malformed UTF-8 rejected at its offset\n");
    tokenbuf_free(&b);
    tokenizer_free(t);
}

/* ---------------------------------------------------------------- tern BPE */

static const char *kTrainText =
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away into the forest.\n"
    "In the beginning there was the word, and the word was tokenized into pieces of bytes.\n"
    "Tokenizers merge the most frequent pairs: th, he, the, in, ing, er, and so on, until the vocabulary is full.\n"
    "Numbers like 1234 and 2024 are split into digits; punctuation!!! stays apart... mostly.\n"
    "Caf\xC3\xA9 cr\xC3\xA8me br\xC3\xBBl\xC3\xA9" "e, na\xC3\xAFve r\xC3\xA9sum\xC3\xA9, \xC3\xBC" "ber, \xC3\xA7" "a va.\n"
    "    Indented line with    several   spaces\tand\ttabs.\n\n\n";

static const char *kUnseen =
    "Unseen text: \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE6\x96\x87\xE7\xAB\xA0, emoji \xF0\x9F\x99\x82\xF0\x9F\x91\x8D"
    "\xF0\x9F\x8F\xBD and a family \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7, "
    "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80, \xCE\xB1\xCE\xB2\xCE\xB3, "
    "tabs\t\tand  double  spaces, CRLF\r\n, trailing   \n\n 99 bottles, zzzzzzzzzzzz, \x01\x02 control.";

/* Sequential reference: apply each merge, in order, left to right over the whole byte string.
 * Equal to the encoder on texts that are one pre-tokenizer chunk. */
static size_t naive_bpe(const Tokenizer *t, const char *text, size_t len, int32_t *ids) {
    size_t n = len, vocab = tokenizer_vocab_size(t);
    for (size_t i = 0; i < len; i++) ids[i] = (uint8_t)text[i];
    for (size_t m = 256; m + 3 < vocab; m++) {
        /* the merge's halves are the two pieces whose bytes concatenate to m's bytes; find them
         * by trying every split of m's bytes */
        char mb[256];
        size_t ml = tokenizer_piece_bytes(t, (int32_t)m, mb, sizeof mb);
        int32_t a = -1, b = -1;
        for (size_t k = 1; k < ml && a < 0; k++) {
            for (int32_t x = 0; x < (int32_t)m && a < 0; x++) {
                char xb[256];
                if (tokenizer_piece_bytes(t, x, xb, sizeof xb) != k || memcmp(xb, mb, k)) continue;
                for (int32_t y = 0; y < (int32_t)m; y++) {
                    char yb[256];
                    if (tokenizer_piece_bytes(t, y, yb, sizeof yb) != ml - k || memcmp(yb, mb + k, ml - k)) continue;
                    /* several splits may spell the same bytes; the real halves are the pair present */
                    for (size_t i = 0; i + 1 < n; i++)
                        if (ids[i] == x && ids[i + 1] == y) a = x, b = y;
                    if (a >= 0) break;
                }
            }
        }
        if (a < 0) continue;
        size_t j = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && ids[i] == a && ids[i + 1] == b) ids[j++] = (int32_t)m, i += 2;
            else ids[j++] = ids[i++];
        }
        n = j;
    }
    return n;
}

static void test_bpe(void) {
    printf("tern BPE\n");
    Err err = {0};
    const char *texts[1] = {kTrainText};
    size_t lens[1] = {strlen(kTrainText)};
    Tokenizer *t1 = NULL, *t2 = NULL, *t3 = NULL;
    TokBpeTrainOptions o1 = {.vocab_size = 320, .threads = 1}, o2 = {.vocab_size = 320, .threads = 2};
    CHECK(tokenizer_train_bpe(&t1, texts, lens, 1, &o1, &err) == 0, "%s", err.msg);
    CHECK(tokenizer_train_bpe(&t2, texts, lens, 1, &o2, &err) == 0, "%s", err.msg);
    if (!t1 || !t2) goto out;
    TokInfo info;
    tokenizer_get_info(t1, &info);
    printf("  trained on %zu bytes: %zu merges, vocab %zu\n", lens[0], info.num_merges, info.vocab_size);
    CHECK(info.num_merges == 61 && tokenizer_bos(t1) == 317, "merges %zu bos %d", info.num_merges, tokenizer_bos(t1));
    char p1[512], p2[512];
    tmp_path(p1, sizeof p1, "bpe1.txt");
    tmp_path(p2, sizeof p2, "bpe2.txt");
    CHECK(tokenizer_save(t1, p1, &err) == 0 && tokenizer_save(t2, p2, &err) == 0, "%s", err.msg);
    size_t l1, l2;
    char *f1 = slurp(p1, &l1), *f2 = slurp(p2, &l2);
    CHECK(f1 && f2 && l1 == l2 && !memcmp(f1, f2, l1), "1 and 2 threads trained different merges");
    CHECK(tokenizer_load(&t3, p1, &err) == 0 && tokenizer_kind(t3) == TOK_BPE, "reload: %s", err.msg);

    /* round trips, on the training text and on unseen text with CJK, emoji (ZWJ), Cyrillic, CRLF */
    const char *samples[] = {kTrainText, kUnseen, "", "a", " ", "\n\n", "x\xF0\x9F\x99\x82y"};
    TokenBuf b = {0}, b3 = {0};
    for (size_t s = 0; s < TERN_ARRAY_LEN(samples); s++) {
        size_t n = strlen(samples[s]);
        b.n = b3.n = 0;
        CHECK(tokenizer_encode(t1, samples[s], n, &b, &err) == 0, "%s", err.msg);
        if (t3) CHECK(tokenizer_encode(t3, samples[s], n, &b3, &err) == 0 && ids_equal(b.ids, b.n, b3.ids, b3.n),
                      "reloaded tokenizer encodes differently");
        char *dec;
        size_t dl;
        CHECK(tokenizer_decode(t1, b.ids, b.n, &dec, &dl, &err) == 0 && dl == n && !memcmp(dec, samples[s], n),
              "round trip of sample %zu", s);
        if (s < 2) printf("  sample %zu: %zu bytes -> %zu tokens, decode exact\n", s, n, b.n);
        if (s == 0) CHECK(b.n * 10 < n * 7, "too little compression on the training text (%zu tokens)", b.n);
        free(dec);
    }
    /* the chunk-wise priority-queue encoder equals merging rule by rule */
    const char *words[] = {"the", " the", "tokenizers", " forest", "zzzzzzzzzzzz", "bbbbb", " beginning", "!!!..."};
    int32_t ref[64];
    size_t agree = 0;
    for (size_t w = 0; w < TERN_ARRAY_LEN(words); w++) {
        size_t n = strlen(words[w]);
        b.n = 0;
        tokenizer_encode(t1, words[w], n, &b, &err);
        size_t rn = naive_bpe(t1, words[w], n, ref);
        int ok = ids_equal(b.ids, b.n, ref, rn);
        CHECK(ok, "\"%s\": encoder and naive merges disagree", words[w]);
        agree += ok;
    }
    printf("  encoder == naive merge-by-merge reference on %zu/%zu words\n", agree, TERN_ARRAY_LEN(words));

    /* damaged files: a merge naming a later id, a wrong count, garbage after the specials */
    const char *bad[] = {
        "tern-bpe 1\nvocab_size 260\npretokenizer words-v1\nmerges 1\n256 1\nspecials 3\n<s> 257\n</s> 258\n<pad> 259\n",
        "tern-bpe 1\nvocab_size 261\npretokenizer words-v1\nmerges 1\n97 98\nspecials 3\n<s> 257\n</s> 258\n<pad> 259\n",
        "tern-bpe 1\nvocab_size 260\npretokenizer words-v1\nmerges 1\n97 98\nspecials 3\n<s> 257\n</s> 258\n",
        "tern-bpe 2\n",
        "tern-bpe 1\nvocab_size 261\npretokenizer words-v1\nmerges 2\n97 98\n97 98\nspecials 3\n<s> 258\n</s> 259\n<pad> 260\n",
    };
    for (size_t k = 0; k < TERN_ARRAY_LEN(bad); k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/bad_bpe_%zu.txt", g_tmp, k);
        spit(p, bad[k], strlen(bad[k]));
        Tokenizer *t = NULL;
        err_clear(&err);
        int rc = tokenizer_load(&t, p, &err);
        CHECK(rc == -1 && t == NULL && strstr(err.msg, p), "bad BPE file %zu accepted (%s)", k, err.msg);
        if (k == 0) printf("  damaged file -> \"%s\"\n", err.msg);
    }
    tokenbuf_free(&b);
    tokenbuf_free(&b3);
    free(f1);
    free(f2);
out:
    tokenizer_free(t1);
    tokenizer_free(t2);
    tokenizer_free(t3);
}

/* ---------------------------------------------------------------- MaxMatch */

static void test_maxmatch(void) {
    printf("MaxMatch\n");
    Err err = {0};
    const char *vocab = "<unk>\n<s>\nhe\nhell\nhello\nl\no\n \nw\nworld\n<0x0A>\nwor\n\xC3\xA9t\xC3\xA9\n";
    char p[512];
    tmp_path(p, sizeof p, "vocab.txt");
    spit(p, vocab, strlen(vocab));
    Tokenizer *t = NULL;
    CHECK(tokenizer_load(&t, p, &err) == 0, "%s", err.msg);
    if (!t) return;
    CHECK(tokenizer_kind(t) == TOK_MAXMATCH && tokenizer_vocab_size(t) == 13 && tokenizer_unk(t) == 0 &&
              tokenizer_bos(t) == 1,
          "vocab %zu unk %d bos %d", tokenizer_vocab_size(t), tokenizer_unk(t), tokenizer_bos(t));
    const char *text = "hello world\nhelo wort \xC3\xA9t\xC3\xA9 xyz\xC3\xA9";
    /* hello ' ' world \n he l o ' ' wor <unk:t> ' ' été ' ' <unk:x> <unk:y> <unk:z> <unk:é> */
    const int32_t want[] = {4, 7, 9, 10, 2, 5, 6, 7, 11, 0, 7, 12, 7, 0, 0, 0, 0};
    TokenBuf b = {0};
    CHECK(tokenizer_encode(t, text, strlen(text), &b, &err) == 0, "%s", err.msg);
    int ok = ids_equal(b.ids, b.n, want, TERN_ARRAY_LEN(want));
    CHECK(ok, "MaxMatch ids differ");
    if (!ok) {
        print_ids("got ", b.ids, b.n);
        print_ids("want", want, TERN_ARRAY_LEN(want));
    }
    double rate = tokenizer_unknown_rate(t, b.ids, b.n);
    CHECK(tokenizer_count_unknown(t, b.ids, b.n) == 5 && fabs(rate - 5.0 / 17.0) < 1e-12, "unknown rate %f", rate);
    char *dec;
    size_t dl;
    CHECK(tokenizer_decode(t, b.ids, b.n, &dec, &dl, &err) == 0 &&
              !strcmp(dec, "hello world\nhelo wor\xEF\xBF\xBD \xC3\xA9t\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"),
          "decode: \"%s\"", dec);
    free(dec);
    printf("  %zu tokens, %zu unknown, unknown rate %.4f (expected 5/17)\n", b.n, tokenizer_count_unknown(t, b.ids, b.n),
           rate);
    tokenizer_free(t);

    /* [UNK] also marks the unknown id, wherever it is */
    const char *vocab2 = "ab\na\n[UNK]\nb\n";
    tmp_path(p, sizeof p, "vocab2.txt");
    spit(p, vocab2, strlen(vocab2));
    CHECK(tokenizer_load(&t, p, &err) == 0 && tokenizer_vocab_size(t) == 4 && tokenizer_unk(t) == 2, "[UNK] line");
    if (t) {
        b.n = 0;
        CHECK(tokenizer_encode(t, "abac", 4, &b, &err) == 0 && b.n == 3 && b.ids[0] == 0 && b.ids[1] == 1 && b.ids[2] == 2,
              "abac");
        tokenizer_free(t);
    }
    tokenbuf_free(&b);
}

/* ---------------------------------------------------------------- bad input */

static void expect_load_error(const char *path, const char *what) {
    Tokenizer *t = NULL;
    Err err = {0};
    int rc = tokenizer_load(&t, path, &err);
    CHECK(rc == -1 && t == NULL, "%s: loaded", what);
    CHECK(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", what, err.msg);
    printf("  %-30s -> %s\n", what, err.msg);
    tokenizer_free(t);
}

static void test_bad_inputs(void) {
    printf("bad input\n");
    char p[512];
    tmp_path(p, sizeof p, "empty.model");
    spit(p, "", 0);
    expect_load_error(p, "empty file");
    tmp_path(p, sizeof p, "missing.model");
    expect_load_error(p, "missing file");
    uint8_t rnd[4096];
    uint64_t x = 0x1234567887654321ull;
    for (size_t i = 0; i < sizeof rnd; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        rnd[i] = (uint8_t)x;
    }
    tmp_path(p, sizeof p, "random.model");
    spit(p, rnd, sizeof rnd);
    expect_load_error(p, "random bytes");
    rnd[0] = 0x0A; /* looks like a ModelProto's first field */
    spit(p, rnd, sizeof rnd);
    expect_load_error(p, "random bytes after 0x0A");
    /* text is a tokenizer only with a signature: a tern BPE file whose magic is damaged, prose,
     * or a vocab.txt without an <unk> / [UNK] line must not load as MaxMatch */
    const char *texts[][2] = {{"tern-bpX 1\nvocab_size 259\npretokenizer words-v1\nmerges 0\nspecials 3\n<s> 256\n</s> 257\n<pad> 258\n",
                               "BPE with a damaged magic"},
                              {"It is a truth universally acknowledged, that a single man\n", "prose"},
                              {"ab\na\nb\n", "vocab.txt without <unk>"},
                              {"<unk>\t0\n<s>\t0\n\xe2\x96\x81the\t-1.5\n", "SentencePiece .vocab"}};
    for (size_t i = 0; i < TERN_ARRAY_LEN(texts); i++) {
        tmp_path(p, sizeof p, "text.tok");
        spit(p, texts[i][0], strlen(texts[i][0]));
        expect_load_error(p, texts[i][1]);
    }
    if (!g_data) return;

    size_t len;
    char *model = slurp(g_model, &len);
    CHECK(model != NULL, "cannot read %s", g_model);
    if (!model) return;
    size_t cuts[] = {1, 2, 10, 1000, 5000, 20000, len / 2, len - 100, len - 1};
    size_t failed = 0;
    for (size_t k = 0; k < TERN_ARRAY_LEN(cuts); k++) {
        snprintf(p, sizeof p, "%s/trunc_%zu.model", g_tmp, cuts[k]);
        spit(p, model, cuts[k]);
        Tokenizer *t = NULL;
        Err err = {0};
        int rc = tokenizer_load(&t, p, &err);
        failed += rc == -1;
        CHECK(rc == -1 && strstr(err.msg, p), "truncated to %zu bytes: rc %d (%s)", cuts[k], rc, err.msg);
        if (cuts[k] == 1000) printf("  %-30s -> %s\n", "first 1000 bytes of the model", err.msg);
        tokenizer_free(t);
    }
    printf("  %zu/%zu truncations rejected\n", failed, TERN_ARRAY_LEN(cuts));

    /* Damage inside the charsmap's trie: loading may succeed (nothing there is checked up front),
     * but encoding must stay in bounds — ASan/UBSan would catch a stray read. */
    const char *text = "Hello, w\xC3\xB6rld! \xEF\xBC\xA8\xEF\xBD\x85llo \xE2\x91\xA0 \xEF\xAC\x81ne \xC2\xBD tab\there";
    size_t survived = 0;
    for (int trial = 0; trial < 8; trial++) {
        char *dam = malloc(len);
        memcpy(dam, model, len);
        size_t start = len - 240000 + 64; /* inside the charsmap */
        for (size_t i = 0; i < 2048; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            dam[start + (x % 200000)] = (char)(x >> 32);
        }
        Tokenizer *t = NULL;
        Err err = {0};
        if (tokenizer_load_memory(&t, dam, len, "damaged.model", &err) == 0) {
            TokenBuf b = {0};
            int rc = tokenizer_encode(t, text, strlen(text), &b, &err);
            survived += rc == 0 || rc == -1;
            tokenbuf_free(&b);
            tokenizer_free(t);
        } else {
            survived++;
        }
        free(dam);
    }
    CHECK(survived == 8, "damaged charsmaps");
    printf("  8 models with damaged charsmaps: loaded or rejected, encoding stayed in bounds\n");

    Tokenizer *t = NULL;
    Err err = {0};
    if (tokenizer_load(&t, g_model, &err) == 0) {
        TokenBuf b = {0};
        const char *bad = "ok so far \xE9t\xE9";
        CHECK(tokenizer_encode(t, bad, strlen(bad), &b, &err) == -1 && strstr(err.msg, "byte 10") && b.n == 0,
              "malformed UTF-8: %s", err.msg);
        printf("  %-30s -> %s\n", "Latin-1 text", err.msg);
        const char *bad2[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "abc\x80"};
        for (size_t k = 0; k < TERN_ARRAY_LEN(bad2); k++)
            CHECK(tokenizer_encode(t, bad2[k], strlen(bad2[k]), &b, &err) == -1, "malformed case %zu accepted", k);
        int32_t ids[] = {5, 1024};
        char *dec;
        size_t dl;
        CHECK(tokenizer_decode(t, ids, 2, &dec, &dl, &err) == -1 && strstr(err.msg, "1024"), "bad id: %s", err.msg);
        printf("  %-30s -> %s\n", "id 1024", err.msg);
        tokenbuf_free(&b);
        tokenizer_free(t);
    }
    free(model);
}

/* ---------------------------------------------------------------- SentencePiece parity */

typedef struct Corpus {
    char *data;
    size_t len;
    Lines lines;
} Corpus;

/* Encodes every line of `path` and compares with the reference, then decodes and compares with
 * the reference decoder. Returns the number of id mismatches (lines). */
static size_t compare_lines(const Tokenizer *tok, const char *model, const char *name, const char *path,
                            size_t *tokens_out) {
    size_t len;
    char *data = slurp(path, &len);
    CHECK(data != NULL, "cannot read %s", path);
    if (!data) return 1;
    Lines l = split_lines(data, len);
    char ref_ids[512], ref_dec[512];
    tmp_path(ref_ids, sizeof ref_ids, "ref.ids");
    tmp_path(ref_dec, sizeof ref_dec, "ref.dec");
    IdLines ref = {0};
    size_t mism_lines = 0, mism_tokens = 0, tokens = 0, invalid = 0, dec_diff_ref = 0, dec_diff_input = 0, shown = 0;
    if (ref_run(model, path, ref_ids, 0) || parse_id_lines(ref_ids, &ref)) {
        CHECK(0, "%s: the reference encoder failed", name);
        goto out;
    }
    CHECK(ref.count == l.count, "%s: %zu reference lines for %zu input lines", name, ref.count, l.count);
    if (ref.count != l.count) goto out;
    if (ref_run(model, ref_ids, ref_dec, 1)) {
        CHECK(0, "%s: the reference decoder failed", name);
        goto out;
    }
    size_t dlen = 0;
    char *dec_data = slurp(ref_dec, &dlen);
    if (!dec_data) dec_data = calloc(1, 1);
    Lines dl = split_lines(dec_data, dlen);
    CHECK(dl.count == l.count, "%s: %zu decoded lines for %zu", name, dl.count, l.count);

    TokScratch *s = tokscratch_new(tok);
    TokenBuf b = {0};
    Err err = {0};
    for (size_t i = 0; i < l.count; i++) {
        b.n = 0;
        if (tokenizer_encode_ex(tok, s, l.p[i], l.n[i], 0, &b, &err)) {
            /* malformed UTF-8: the strict API refuses (with the offset); spm reads U+FFFD */
            invalid++;
            CHECK(strstr(err.msg, "invalid UTF-8 at byte") != NULL, "%s:%zu: %s", name, i + 1, err.msg);
            b.n = 0;
            CHECK(tokenizer_encode_ex(tok, s, l.p[i], l.n[i], TOK_ENCODE_ALLOW_INVALID_UTF8, &b, &err) == 0, "%s",
                  err.msg);
        }
        tokens += b.n;
        const int32_t *r = ref.ids + ref.off[i];
        size_t rn = ref.off[i + 1] - ref.off[i];
        if (!ids_equal(b.ids, b.n, r, rn)) {
            mism_lines++;
            for (size_t k = 0; k < TERN_MAX(b.n, rn); k++) mism_tokens += k >= b.n || k >= rn || b.ids[k] != r[k];
            if (shown++ < 3) {
                printf("    %s:%zu differs: \"%.*s\"\n", name, i + 1, (int)TERN_MIN(l.n[i], (size_t)120), l.p[i]);
                print_ids("tern", b.ids, b.n);
                print_ids("ref ", r, rn);
            }
        }
        char *dec;
        size_t dn;
        if (tokenizer_decode(tok, b.ids, b.n, &dec, &dn, &err)) {
            CHECK(0, "%s:%zu: decode: %s", name, i + 1, err.msg);
            continue;
        }
        dec_diff_input += !(dn == l.n[i] && !memcmp(dec, l.p[i], dn));
        if (i < dl.count && !(dn == dl.n[i] && !memcmp(dec, dl.p[i], dn))) {
            if (dec_diff_ref++ < 3)
                printf("    %s:%zu decode differs from the reference: \"%s\" vs \"%.*s\"\n", name, i + 1, dec,
                       (int)dl.n[i], dl.p[i]);
        }
        free(dec);
    }
    printf("  %-24s %7zu lines %9zu tokens | id mismatches: %zu lines, %zu tokens | malformed-UTF-8 lines %zu | "
           "decode != reference decode: %zu | decode != input: %zu\n",
           name, l.count, tokens, mism_lines, mism_tokens, invalid, dec_diff_ref, dec_diff_input);
    CHECK(mism_lines == 0, "%s: %zu lines differ from the reference", name, mism_lines);
    CHECK(dec_diff_ref == 0, "%s: %zu decodes differ from the reference decoder", name, dec_diff_ref);
    *tokens_out += tokens;
    tokenbuf_free(&b);
    tokscratch_free(s);
    lines_free(&dl);
    free(dec_data);
out:
    idlines_free(&ref);
    lines_free(&l);
    free(data);
    return mism_lines;
}

typedef struct Docs {
    char **text;
    size_t *len;
    size_t n;
} Docs;

static int load_docs(const char *path, Docs *d) {
    size_t len;
    char *data = slurp(path, &len);
    memset(d, 0, sizeof *d);
    if (!data) return -1;
    Lines l = split_lines(data, len);
    d->text = calloc(l.count, sizeof *d->text);
    d->len = calloc(l.count, sizeof *d->len);
    for (size_t i = 0; i < l.count; i++) {
        if (!l.n[i]) continue;
        cJSON *o = cJSON_ParseWithLength(l.p[i], l.n[i]);
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "text"));
        if (s) {
            d->len[d->n] = strlen(s);
            d->text[d->n++] = strdup(s);
        }
        cJSON_Delete(o);
    }
    lines_free(&l);
    free(data);
    return 0;
}

static void docs_free(Docs *d) {
    for (size_t i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    free(d->len);
}

/* Whole documents, as the shard was made (sp.encode(text) per document, BOS before each). */
static void check_shard(const Tokenizer *tok, const Docs *docs) {
    char path[512];
    snprintf(path, sizeof path, "%s/fineweb/fineweb_train_000000.bin", g_data);
    size_t len;
    char *bin = slurp(path, &len);
    CHECK(bin && len >= 1024, "cannot read %s", path);
    if (!bin) return;
    int32_t hdr[256];
    memcpy(hdr, bin, sizeof hdr);
    size_t ntok = (size_t)hdr[2];
    CHECK(hdr[0] == 20240520 && hdr[1] == 1 && len == 1024 + 2 * ntok, "shard header %d %d %d", hdr[0], hdr[1], hdr[2]);
    const uint8_t *tk = (const uint8_t *)bin + 1024;
    size_t pos = 0, mism_docs = 0, mism_tokens = 0, total = 0, roundtrip = 0;
    TokenBuf b = {0};
    Err err = {0};
    for (size_t d = 0; d < docs->n; d++) {
        b.n = 0;
        tokenbuf_free(&b);
        if (tokenizer_encode(tok, docs->text[d], docs->len[d], &b, &err)) {
            CHECK(0, "document %zu: %s", d, err.msg);
            continue;
        }
        int bad = 0;
        for (size_t k = 0; k <= b.n; k++) {
            int32_t want = pos + k < ntok ? (int32_t)(tk[2 * (pos + k)] | tk[2 * (pos + k) + 1] << 8) : -1;
            int32_t got = k == 0 ? 1 : b.ids[k - 1];
            if (got != want) bad = 1, mism_tokens++;
        }
        mism_docs += bad;
        if (bad && mism_docs <= 3) printf("    document %zu differs from the shard\n", d);
        pos += b.n + 1;
        total += b.n + 1;
        char *dec;
        size_t dn;
        if (tokenizer_decode(tok, b.ids, b.n, &dec, &dn, &err) == 0) {
            roundtrip += dn == docs->len[d] && !memcmp(dec, docs->text[d], dn);
            free(dec);
        }
    }
    printf("  %zu documents encoded whole, BOS + ids vs fineweb_train_000000.bin: %zu tokens compared, %zu tokens / %zu "
           "documents differ (expected total 628457)\n",
           docs->n, total, mism_tokens, mism_docs);
    printf("  decode(encode(doc)) == doc for %zu/%zu documents (nmt_nfkc maps newlines and tabs to spaces and "
           "collapses runs of spaces, so most documents cannot round-trip)\n",
           roundtrip, docs->n);
    CHECK(docs->n == 200 && total == 628457 && mism_tokens == 0, "shard parity: %zu docs %zu tokens %zu mismatches",
          docs->n, total, mism_tokens);
    tokenbuf_free(&b);
    free(bin);
}

/* Many threads on one Tokenizer: the same ids as one thread. */
static void check_threads(const Tokenizer *tok, const Docs *docs) {
    size_t n = docs->n;
    TokenBuf *serial = calloc(n, sizeof *serial), *par = calloc(n, sizeof *par);
    for (size_t i = 0; i < n; i++) tokenizer_encode(tok, docs->text[i], docs->len[i], &serial[i], NULL);
    int nt = 4;
    size_t diff = 0;
    for (int rep = 0; rep < 3; rep++) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (size_t i = 0; i < n; i++) {
            par[i].n = 0;
            tokenizer_encode(tok, docs->text[i], docs->len[i], &par[i], NULL);
        }
        for (size_t i = 0; i < n; i++) diff += !ids_equal(serial[i].ids, serial[i].n, par[i].ids, par[i].n);
    }
    printf("  %d threads x 3 passes over the documents: %zu differences from one thread\n", nt, diff);
    CHECK(diff == 0, "threaded encoding differs");
    for (size_t i = 0; i < n; i++) tokenbuf_free(&serial[i]), tokenbuf_free(&par[i]);
    free(serial);
    free(par);
}

/* ---------------------------------------------------------------- model variants */

typedef struct Bytes {
    char *p;
    size_t n, cap;
} Bytes;

static void bytes_put(Bytes *b, const void *d, size_t n) {
    if (n == 0) return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void bytes_varint(Bytes *b, uint64_t v) {
    char tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        tmp[n++] = (char)(byte | (v ? 0x80 : 0));
    } while (v);
    bytes_put(b, tmp, n);
}

static void bytes_field_len(Bytes *b, uint32_t field, const void *d, size_t n) {
    bytes_varint(b, (uint64_t)field << 3 | 2);
    bytes_varint(b, n);
    bytes_put(b, d, n);
}

static void bytes_field_varint(Bytes *b, uint32_t field, uint64_t v) {
    bytes_varint(b, (uint64_t)field << 3 | 0);
    bytes_varint(b, v);
}

typedef struct Variant {
    const char *name;
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces, treat_whitespace_as_suffix, byte_fallback;
    const char *const *user_defined; /* pieces turned into USER_DEFINED */
    const char *const *unused;       /* pieces turned into UNUSED */
    int denormalizer;                /* add a denormalizer_spec: the model's charsmap, spaces escaped */
} Variant;

/* Rebuilds the model with other normalizer / trainer settings; byte pieces become UNUSED when
 * byte_fallback is off (SentencePiece refuses byte pieces without it). */
static int write_variant(const char *src, size_t len, const Variant *v, const char *path) {
    Bytes out = {0};
    PbReader r;
    PbField f;
    Err err = {0};
    pb_reader_init(&r, src, len);
    int rc;
    while ((rc = pb_next(&r, &f, &err)) == 1) {
        if (f.number == 1) {
            PbReader pr;
            PbField pf;
            pb_reader_sub(&pr, &f);
            Bytes pm = {0};
            const char *text = "";
            size_t tlen = 0;
            uint64_t type = 1;
            uint32_t score_bits = 0;
            while (pb_next(&pr, &pf, &err) == 1) {
                if (pf.number == 1) text = (const char *)pf.data, tlen = pf.len;
                if (pf.number == 2) score_bits = (uint32_t)pf.u64;
                if (pf.number == 3) type = pf.u64;
            }
            if (type == 6 && !v->byte_fallback) type = 5;
            for (const char *const *u = v->user_defined; u && *u; u++)
                if (strlen(*u) == tlen && !memcmp(*u, text, tlen)) type = 4;
            for (const char *const *u = v->unused; u && *u; u++)
                if (strlen(*u) == tlen && !memcmp(*u, text, tlen)) type = 5;
            bytes_field_len(&pm, 1, text, tlen);
            bytes_varint(&pm, 2 << 3 | 5);
            uint8_t sb[4] = {(uint8_t)score_bits, (uint8_t)(score_bits >> 8), (uint8_t)(score_bits >> 16),
                             (uint8_t)(score_bits >> 24)};
            bytes_put(&pm, sb, 4);
            if (type != 1) bytes_field_varint(&pm, 3, type);
            bytes_field_len(&out, 1, pm.p, pm.n);
            free(pm.p);
        } else if (f.number == 2) {
            PbReader tr;
            PbField tf;
            pb_reader_sub(&tr, &f);
            Bytes tm = {0};
            const uint8_t *at = f.data;
            while (pb_next(&tr, &tf, &err) == 1) {
                const uint8_t *end = tr.p;
                if (tf.number != 24 && tf.number != 35) bytes_put(&tm, at, (size_t)(end - at));
                at = end;
            }
            bytes_field_varint(&tm, 24, (uint64_t)v->treat_whitespace_as_suffix);
            bytes_field_varint(&tm, 35, (uint64_t)v->byte_fallback);
            bytes_field_len(&out, 2, tm.p, tm.n);
            free(tm.p);
        } else if (f.number == 3) {
            PbReader nr;
            PbField nf;
            pb_reader_sub(&nr, &f);
            Bytes nm = {0};
            while (pb_next(&nr, &nf, &err) == 1)
                if (nf.number == 1 || nf.number == 2) bytes_field_len(&nm, nf.number, nf.data, nf.len);
            bytes_field_varint(&nm, 3, (uint64_t)v->add_dummy_prefix);
            bytes_field_varint(&nm, 4, (uint64_t)v->remove_extra_whitespaces);
            bytes_field_varint(&nm, 5, (uint64_t)v->escape_whitespaces);
            bytes_field_len(&out, 3, nm.p, nm.n);
            if (v->denormalizer) {
                Bytes dn = {0};
                pb_reader_sub(&nr, &f);
                while (pb_next(&nr, &nf, &err) == 1)
                    if (nf.number == 2) bytes_field_len(&dn, 2, nf.data, nf.len);
                /* escaping on, so a denormalizer that is applied shows (spaces come out as U+2581) */
                bytes_field_varint(&dn, 3, 0);
                bytes_field_varint(&dn, 4, 0);
                bytes_field_varint(&dn, 5, 1);
                bytes_field_len(&out, 5, dn.p, dn.n);
                free(dn.p);
            }
            free(nm.p);
        } else {
            bytes_put(&out, src + f.offset, (size_t)(r.p - ((const uint8_t *)src + f.offset)));
        }
    }
    int ok = rc == 0 && spit(path, out.p, out.n) == 0;
    free(out.p);
    return ok ? 0 : -1;
}

/* Lines that exercise the normalizer and the whitespace rules. */
static const char *kTricky[] = {
    "", " ", "   ", "  leading spaces", "trailing spaces   ", "a  b   c    d", "\tx\ty\t", "carriage\r",
    "\xEF\xBD\x88\xEF\xBD\x85\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBD\x8F fullwidth", "\xEF\xAC\x81ne ligature", "\xC2\xBD half",
    "e\xCC\x81 combining", "\xE2\x91\xA0\xE2\x91\xA1 circled", "\xE2\x85\xAB roman", "\xC2\xA0nbsp\xC2\xA0 inside",
    "zero\xE2\x80\x8Bwidth", "\xF0\x9F\x99\x82\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD emoji", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
    "digits 1234567890 and 3.14159", "\xE2\x84\xA2 \xE2\x80\xA6 \xE2\x80\x90 \xE2\x80\x9Cquotes\xE2\x80\x9D", "\x01\x02 control",
    "ideographic\xE3\x80\x80space", "<s> </s> <unk> <pad> <0x41> literal specials", "\xE2\x96\x81 literal meta",
    "\xE2\x96\x81\xE2\x96\x81x", "  \xE2\x96\x81  ", "\xEF\xBF\xBD replacement", "bad \xFF\xFE bytes \xC3", "overlong \xC0\xAF",
    "surrogate \xED\xA0\x80 x", "truncated \xE2\x82", "the thing in the interesting ring er ere", "x",
    "Supercalifragilisticexpialidocious-and-then-some-very-long-hyphenated-word-that-goes-on-and-on-forever-more",
    "\xCE\x91\xCE\xB8\xCE\xAE\xCE\xBD\xCE\xB1 \xD0\x9C\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0",
    "\xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8\xA9", "\xE1\x84\x80\xE1\x85\xA1 jamo", "\xEF\xBC\x91\xEF\xBC\x92 wide digits",
};

static void check_variants(const Docs *docs) {
    size_t len;
    char *src = slurp(g_model, &len);
    if (!src) return;
    /* corpus: the tricky lines, the first 3000 lines of tinyshakespeare, 1500 document lines */
    Bytes corpus = {0};
    for (size_t i = 0; i < TERN_ARRAY_LEN(kTricky); i++) {
        bytes_put(&corpus, kTricky[i], strlen(kTricky[i]));
        bytes_put(&corpus, "\n", 1);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/text/tinyshakespeare.txt", g_data);
    size_t slen;
    char *shakes = slurp(path, &slen);
    if (shakes) {
        Lines l = split_lines(shakes, slen);
        for (size_t i = 0; i < l.count && i < 3000; i++) {
            bytes_put(&corpus, l.p[i], l.n[i]);
            bytes_put(&corpus, "\n", 1);
        }
        lines_free(&l);
        free(shakes);
    }
    size_t added = 0;
    for (size_t d = 0; d < docs->n && added < 1500; d++) {
        Lines l = split_lines(docs->text[d], docs->len[d]);
        for (size_t i = 0; i < l.count && added < 1500; i++, added++) {
            bytes_put(&corpus, l.p[i], l.n[i]);
            bytes_put(&corpus, "\n", 1);
        }
        lines_free(&l);
    }
    char corpus_path[512];
    tmp_path(corpus_path, sizeof corpus_path, "variants.txt");
    spit(corpus_path, corpus.p, corpus.n);
    free(corpus.p);

    static const char *const kUser[] = {"ing", "\xE2\x96\x81the", "er", NULL};
    /* merged into, then split back into the halves they were made of ("ing" -> "in" "g" -> ...) */
    static const char *const kUnused[] = {"\xE2\x96\x81the", "ing", "in", "\xE2\x96\x81" "a", NULL};
    const Variant variants[] = {
        {"as shipped", 0, 1, 1, 0, 1, NULL, NULL, 0},
        {"add_dummy_prefix", 1, 1, 1, 0, 1, NULL, NULL, 0},
        {"keep whitespace", 0, 0, 1, 0, 1, NULL, NULL, 0},
        {"dummy + keep ws", 1, 0, 1, 0, 1, NULL, NULL, 0},
        {"whitespace as suffix", 1, 1, 1, 1, 1, NULL, NULL, 0},
        {"no escaping", 0, 1, 0, 0, 1, NULL, NULL, 0},
        {"no byte fallback", 0, 1, 1, 0, 0, NULL, NULL, 0},
        {"user-defined symbols", 1, 1, 1, 0, 1, kUser, NULL, 0},
        {"unused pieces", 0, 1, 1, 0, 0, NULL, kUnused, 0},
        {"denormalizer", 0, 1, 1, 0, 1, NULL, NULL, 1},
    };
    size_t total_bad = 0, tokens = 0;
    for (size_t k = 0; k < TERN_ARRAY_LEN(variants); k++) {
        char vpath[512], name[64];
        snprintf(vpath, sizeof vpath, "%s/variant_%zu.model", g_tmp, k);
        CHECK(write_variant(src, len, &variants[k], vpath) == 0, "cannot write variant %s", variants[k].name);
        Tokenizer *t = NULL;
        Err err = {0};
        if (tokenizer_load(&t, vpath, &err)) {
            CHECK(0, "variant %s: %s", variants[k].name, err.msg);
            continue;
        }
        snprintf(name, sizeof name, "[%s]", variants[k].name);
        total_bad += compare_lines(t, vpath, name, corpus_path, &tokens);
        tokenizer_free(t);
    }
    printf("  model variants: %zu lines differ in total (%zu tokens compared)\n", total_bad, tokens);
    free(src);
}

static void test_sentencepiece(void) {
    printf("SentencePiece (%s)\n", g_model);
    Tokenizer *tok = NULL;
    Err err = {0};
    CHECK(tokenizer_load(&tok, g_model, &err) == 0, "%s", err.msg);
    if (!tok) return;
    CHECK(tokenizer_kind(tok) == TOK_SENTENCEPIECE && tokenizer_vocab_size(tok) == 1024 && tokenizer_pad(tok) == 0 &&
              tokenizer_bos(tok) == 1 && tokenizer_eos(tok) == 2 && tokenizer_unk(tok) == 3,
          "specials pad %d bos %d eos %d unk %d", tokenizer_pad(tok), tokenizer_bos(tok), tokenizer_eos(tok),
          tokenizer_unk(tok));
    TokInfo info;
    tokenizer_get_info(tok, &info);
    CHECK(!strcmp(info.normalizer, "nmt_nfkc") && info.byte_fallback && info.split_digits && !info.add_dummy_prefix &&
              info.num_byte_pieces == 256,
          "spec");
    char pb[16];
    CHECK(tokenizer_piece_bytes(tok, 267, pb, sizeof pb) == 4 && !memcmp(pb, " the", 4), "piece 267 bytes");

    Docs docs;
    char path[512];
    snprintf(path, sizeof path, "%s/fineweb/fineweb_docs200.jsonl", g_data);
    CHECK(load_docs(path, &docs) == 0, "cannot read %s", path);
    check_shard(tok, &docs);
    check_threads(tok, &docs);

    if (g_ref) {
        /* every line of every document, then the four corpora, line by line like spm_encode */
        Bytes all = {0};
        for (size_t d = 0; d < docs.n; d++) {
            bytes_put(&all, docs.text[d], docs.len[d]);
            bytes_put(&all, "\n", 1);
        }
        char lines_path[512];
        tmp_path(lines_path, sizeof lines_path, "docs_lines.txt");
        spit(lines_path, all.p, all.n);
        free(all.p);
        size_t tokens = 0, bad = 0;
        bad += compare_lines(tok, g_model, "fineweb_docs200 (lines)", lines_path, &tokens);
        const char *files[] = {"tinyshakespeare.txt", "gutenberg.txt", "brown.txt", "state_union.txt"};
        for (size_t i = 0; i < TERN_ARRAY_LEN(files); i++) {
            snprintf(path, sizeof path, "%s/text/%s", g_data, files[i]);
            bad += compare_lines(tok, g_model, files[i], path, &tokens);
        }
        printf("  total: %zu tokens compared with the reference, %zu lines differ\n", tokens, bad);
        check_variants(&docs);
    }
    docs_free(&docs);
    tokenizer_free(tok);
}

/* ---------------------------------------------------------------- main */

static void remove_tmp(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) printf("  could not remove %s\n", g_tmp);
}

int main(void) {
    const char *tmpdir = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/tern_tok_XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(g_tmp)) {
        printf("cannot create a temporary folder: %s\n", strerror(errno));
        return 1;
    }
    const char *data = getenv("TERN_DATA");
    struct stat st;
    if (data && *data) {
        snprintf(g_model, sizeof g_model, "%s/fineweb/fineweb_1024_bpe.model", data);
        if (stat(g_model, &st) == 0) g_data = data;
    }

    test_byte();
    test_bpe();
    test_maxmatch();
    test_bad_inputs();
    if (!g_data) {
        printf("SKIP: SentencePiece parity: $TERN_DATA (%s) has no fineweb/fineweb_1024_bpe.model\n", data ? data : "unset");
    } else {
        detect_reference();
        test_sentencepiece();
    }
    remove_tmp();
    return test_summary("test_tokenizer");
}

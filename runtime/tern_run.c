/* tern-run — the command line of the inference runtime: generate, eval, bench, info.
 * Human text on stderr (generated text on stdout), --json prints one object on stdout. Bad
 * input: one line "tern-run <cmd>: <what>" and exit status 1; usage errors exit 2. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "data/gen_args.h"
#include "kernels/util.h"
#include "runtime/rt_internal.h"
#include "runtime/ternrt.h"

static int is_flag(const char *a, const char *name) { return a[0] == '-' && a[1] == '-' && !strcmp(a + 2, name); }

/* One usage line and exit status 2 for an option given last without its value (a command-line
 * usage error, reported here where the option is known). */
static void missing_value(const char *opt) {
    fprintf(stderr, "tern-run: %s needs a value (see --help)\n", opt);
    exit(2);
}

/* "--name V" or "--name=V" (also "-n V" when shortc is given) */
static const char *value(int argc, char **argv, int *i, const char *name, const char *shortc) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (shortc && !strcmp(a, shortc)) {
        if (*i + 1 >= argc) missing_value(a);
        return argv[++*i];
    }
    if (a[0] != '-' || a[1] != '-' || strncmp(a + 2, name, n)) return NULL;
    if (a[2 + n] == '=') return a + 3 + n;
    if (a[2 + n] != 0) return NULL;
    if (*i + 1 >= argc) missing_value(a);
    return argv[++*i];
}

/* JSON string of bytes that need not be valid UTF-8 (a barely trained byte-level model emits
 * stray bytes): malformed sequences become U+FFFD. */
static void json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t ok = tokenizer_first_invalid_utf8(s + i, n - i);
            if (ok == 0) {
                fputs("\\ufffd", f);
            } else {
                /* copy the well-formed run of non-ASCII bytes (stop at the next ASCII byte) */
                size_t j = i;
                while (j < i + ok && (unsigned char)s[j] >= 0x80) j++;
                fwrite(s + i, 1, j - i, f);
                i = j - 1;
            }
            continue;
        }
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

typedef struct Common {
    const char *model, *isa, *kv;
    int threads, json;
} Common;

/* Options every subcommand takes; returns 1 when argv[*i] was one. */
static int common_opt(Common *c, int argc, char **argv, int *i) {
    const char *v;
    if ((v = value(argc, argv, i, "threads", NULL))) c->threads = atoi(v);
    else if ((v = value(argc, argv, i, "isa", NULL))) c->isa = v;
    else if ((v = value(argc, argv, i, "kv", NULL))) c->kv = v;
    else if (is_flag(argv[*i], "json")) c->json = 1;
    else if (argv[*i][0] != '-' && !c->model) c->model = argv[*i];
    else return 0;
    return 1;
}

static TrtModel *load(const char *cmd, const Common *c) {
    TrtLoadOptions lo = {c->isa, 0, c->kv};
    TrtModel *m = NULL;
    char err[512];
    if (trt_model_load(&m, c->model, &lo, err, sizeof err)) {
        fprintf(stderr, "tern-run %s: %s\n", cmd, err);
        return NULL;
    }
    return m;
}

/* ---------------------------------------------------------------- generate */
typedef struct GenCtx {
    FILE *out;
    char *text;
    size_t len, cap;
} GenCtx;

static int on_token(void *ctx, int32_t id, const char *text, size_t len) {
    (void)id;
    GenCtx *g = ctx;
    if (g->out) {
        fwrite(text, 1, len, g->out);
        fflush(g->out);
    }
    if (g->len + len + 1 > g->cap) {
        size_t cap = (g->len + len + 1) * 2;
        char *t = realloc(g->text, cap);
        if (!t) return 1;
        g->text = t;
        g->cap = cap;
    }
    memcpy(g->text + g->len, text, len);
    g->len += len;
    g->text[g->len] = 0;
    return 0;
}

static void usage_generate(FILE *f) {
    fprintf(f, "usage: tern-run generate MODEL.tern [--prompt TEXT] [options]\n"
               "  --prompt TEXT       text to continue (encoded with the artifact's tokenizer; BOS first); - reads stdin\n"
               "  --prompt-file F     the prompt is the text of file F\n"
               "  -n, --tokens N      tokens to generate (default 128, at most 1000000)\n"
               "  --temp T            temperature (default 0.7; 0 = greedy)\n"
               "  --top-p P           nucleus sampling mass (default 0.92; 1 = off)\n"
               "  --rep-penalty R     repetition penalty over the last 64 tokens (default 1.1; 1 = off)\n"
               "  --seed S            sampling seed (default 42): the same seed gives the same text\n"
               "  --no-bos            do not put BOS before the prompt\n"
               "  --no-stop           keep going past EOS\n"
               "  --threads N         threads (default: all)   --isa X  auto|avx512vnni|avx512|avx2|scalar\n"
               "  --kv f32|f16        KV cache type (default f32; f16 halves its memory)\n"
               "  --json              one JSON object (text, ids, timing) on stdout instead of streaming\n");
}

static int cmd_generate(int argc, char **argv) {
    Common c = {0};
    TrtSampling sp;
    trt_sampling_defaults(&sp);
    /* the sampling options' rules are data/gen_args.h's, shared with `tern generate` */
    GenArgs ga = {.n = 128, .temp = sp.temperature, .top_p = sp.top_p, .rep_penalty = sp.repetition_penalty, .seed = 42,
                  .has_rep_penalty = 1};
    int bos = 1;
    for (int i = 1; i < argc; i++) {
        char msg[512];
        if (is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage_generate(stdout);
            return 0;
        }
        int r = gen_args_parse(&ga, argc, argv, &i, msg, sizeof msg);
        if (r < 0) {
            fprintf(stderr, "tern-run generate: %s\n", msg);
            return 2;
        }
        if (r > 0 || common_opt(&c, argc, argv, &i)) continue;
        if (is_flag(argv[i], "no-bos")) bos = 0;
        else if (is_flag(argv[i], "no-stop")) sp.stop_at_eos = 0;
        else {
            fprintf(stderr, "tern-run generate: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!c.model) {
        usage_generate(stderr);
        return 2;
    }
    sp.temperature = (float)ga.temp;
    sp.top_p = (float)ga.top_p;
    sp.repetition_penalty = (float)ga.rep_penalty;
    size_t n = ga.n;
    uint64_t seed = ga.seed;
    Err perr = {0};
    if (gen_args_read_prompt(&ga, &perr)) {
        fprintf(stderr, "tern-run generate: %s\n", perr.msg);
        return 1;
    }
    const char *prompt = ga.prompt;
    size_t prompt_len = ga.prompt_len;
    TrtModel *m = load("generate", &c);
    if (!m) {
        gen_args_free(&ga);
        return 1;
    }
    TrtSessionOptions so = {seed, c.threads, 0};
    TrtSession *s = NULL;
    char err[512];
    int status = 1;
    GenCtx g = {c.json ? NULL : stdout, NULL, 0, 0};
    int32_t *ids = malloc((n ? n : 1) * sizeof(int32_t));
    size_t np = 0, ng = 0;
    if (!ids || trt_session_new(m, &so, &s, err, sizeof err)) goto fail;
    double t0 = now_seconds();
    if (prompt_len || bos) {
        if (trt_session_observe_text(s, prompt, prompt_len, bos, &np, err, sizeof err)) goto fail;
    }
    double t1 = now_seconds();
    if (!c.json) {
        fwrite(prompt, 1, prompt_len, stdout);
        fflush(stdout);
    }
    if (trt_generate(s, n, &sp, on_token, &g, ids, &ng, err, sizeof err)) goto fail;
    double t2 = now_seconds();
    if (c.json) {
        printf("{\"prompt\":");
        json_str(stdout, prompt, prompt_len);
        printf(",\"text\":");
        json_str(stdout, g.text ? g.text : "", g.len);
        printf(",\"ids\":[");
        for (size_t i = 0; i < ng; i++) printf("%s%d", i ? "," : "", ids[i]);
        printf("],\"prompt_tokens\":%zu,\"tokens\":%zu,\"seed\":%llu,\"prefill_seconds\":%.6f,\"decode_seconds\":%.6f}\n", np, ng,
               (unsigned long long)seed, t1 - t0, t2 - t1);
    } else {
        printf("\n");
        fprintf(stderr, "[%zu prompt tokens in %.3fs; %zu tokens in %.3fs = %.1f tok/s; %s kernels]\n", np, t1 - t0, ng, t2 - t1,
                t2 > t1 ? (double)ng / (t2 - t1) : 0.0, trt_model_info(m)->isa);
    }
    status = 0;
fail:
    if (status) fprintf(stderr, "tern-run generate: %s\n", err);
    free(g.text);
    free(ids);
    gen_args_free(&ga);
    trt_session_free(s);
    trt_model_free(m);
    return status;
}

/* ---------------------------------------------------------------- eval */
static void usage_eval(FILE *f) {
    fprintf(f, "usage: tern-run eval MODEL.tern --data SHARD_GLOB [options]\n"
               "  val_loss and val_bpb with the official rule, as `tern eval`: non-overlapping windows, each scored\n"
               "  from an empty context; bytes counted by the embedded tokenizer (data/bpb.c).\n"
               "  --seq-len T      window length (default: the run's data.seq_len stored in the artifact)\n"
               "  --max-tokens N   score at most N targets\n"
               "  --threads N      threads (default: all)   --isa X  auto|avx512vnni|avx512|avx2|scalar\n"
               "  --kv f32|f16     KV cache type (default f32)\n"
               "  --json           one JSON object on stdout\n");
}

static int cmd_eval(int argc, char **argv) {
    Common c = {0};
    const char *data = NULL;
    size_t T = 0, maxt = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage_eval(stdout);
            return 0;
        }
        if ((v = value(argc, argv, &i, "data", NULL))) data = v;
        else if ((v = value(argc, argv, &i, "seq-len", NULL))) T = strtoull(v, NULL, 10);
        else if ((v = value(argc, argv, &i, "max-tokens", NULL))) maxt = strtoull(v, NULL, 10);
        else if (common_opt(&c, argc, argv, &i)) continue;
        else {
            fprintf(stderr, "tern-run eval: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!c.model || !data) {
        usage_eval(stderr);
        return 2;
    }
    TrtModel *m = load("eval", &c);
    if (!m) return 1;
    TrtEvalResult r;
    char err[512];
    if (trt_eval(m, data, T, maxt, c.threads, &r, err, sizeof err)) {
        fprintf(stderr, "tern-run eval: %s\n", err);
        trt_model_free(m);
        return 1;
    }
    if (c.json) {
        printf("{\"artifact\":");
        json_str(stdout, c.model, strlen(c.model));
        printf(",\"data\":");
        json_str(stdout, data, strlen(data));
        printf(",\"mode\":\"standard\",\"seq_len\":%zu,\"val_loss\":%.17g", r.seq_len, r.val_loss);
        if (r.val_bpb >= 0) printf(",\"val_bpb\":%.17g", r.val_bpb);
        printf(",\"tokens\":%.0f,\"bytes\":%.0f,\"windows\":%zu,\"seconds\":%.3f,\"isa\":\"%s\"}\n", r.tokens, r.bytes, r.windows,
               r.seconds, trt_model_info(m)->isa);
    } else {
        printf("val_loss %.6f", r.val_loss);
        if (r.val_bpb >= 0) printf("  val_bpb %.6f", r.val_bpb);
        printf("  tokens %.0f  bytes %.0f  (standard, T=%zu, %.1fs, %s)\n", r.tokens, r.bytes, r.seq_len, r.seconds,
               trt_model_info(m)->isa);
    }
    trt_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------- bench */
static void usage_bench(FILE *f) {
    fprintf(f, "usage: tern-run bench MODEL.tern [options]\n"
               "  prefill tokens/s (one batched call of --prompt tokens), decode tokens/s (--gen single-token\n"
               "  steps with a growing KV cache, greedy), resident memory after load and with a session.\n"
               "  --prompt N   prefill length (default 128)   --gen N  decode steps (default 128)\n"
               "  --repeat R   best of R runs (default 3)\n"
               "  --threads N  threads (default: all)   --isa X  auto|avx512vnni|avx512|avx2|scalar\n"
               "  --kv f32|f16 KV cache type (default f32)\n"
               "  --json       one JSON object on stdout\n");
}

static int cmd_bench(int argc, char **argv) {
    Common c = {0};
    size_t np = 128, ng = 128, rep = 3;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage_bench(stdout);
            return 0;
        }
        if ((v = value(argc, argv, &i, "prompt", NULL))) np = strtoull(v, NULL, 10);
        else if ((v = value(argc, argv, &i, "gen", NULL))) ng = strtoull(v, NULL, 10);
        else if ((v = value(argc, argv, &i, "repeat", NULL))) rep = strtoull(v, NULL, 10);
        else if (common_opt(&c, argc, argv, &i)) continue;
        else {
            fprintf(stderr, "tern-run bench: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!c.model || np == 0 || rep == 0) {
        usage_bench(stderr);
        return 2;
    }
    size_t rss0 = current_rss_bytes();
    double tl = now_seconds();
    TrtModel *m = load("bench", &c);
    if (!m) return 1;
    tl = now_seconds() - tl;
    size_t rss_model = current_rss_bytes();
    const TrtModelInfo *in = trt_model_info(m);
    if (np + ng > in->seq_len) {
        fprintf(stderr, "tern-run bench: --prompt + --gen = %zu exceeds the model's seq_len %zu\n", np + ng, in->seq_len);
        trt_model_free(m);
        return 2;
    }
    TrtSessionOptions so = {1, c.threads, 0};
    TrtSession *s = NULL;
    char err[512];
    if (trt_session_new(m, &so, &s, err, sizeof err)) {
        fprintf(stderr, "tern-run bench: %s\n", err);
        trt_model_free(m);
        return 1;
    }
    size_t rss_session = current_rss_bytes();
    int32_t *ids = malloc(np * sizeof(int32_t));
    uint64_t x = 12345;
    for (size_t i = 0; i < np; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((x >> 33) % in->vocab_size);
    }
    double best_pf = 1e30, best_dec = 1e30;
    size_t rss_prompt = 0, kv_bytes = 0;
    TrtSampling greedy = {0, 1, 1, 64, 0};
    for (size_t r = 0; r < rep; r++) {
        trt_session_reset(s);
        double t0 = now_seconds();
        if (trt_session_observe(s, ids, np, NULL, err, sizeof err)) break;
        double t1 = now_seconds();
        if (r == 0) rss_prompt = current_rss_bytes();
        for (size_t i = 0; i < ng; i++) {
            int32_t id = trt_sample(s, &greedy);
            if (trt_session_observe(s, &id, 1, NULL, err, sizeof err)) break;
        }
        double t2 = now_seconds();
        if (t1 - t0 < best_pf) best_pf = t1 - t0;
        if (t2 - t1 < best_dec) best_dec = t2 - t1;
    }
    size_t rss_peak = peak_rss_bytes();
    kv_bytes = trt_session_state_bytes(s);
    double pf = (double)np / best_pf, dec = ng ? (double)ng / best_dec : 0;
    int threads = s->threads;
    if (c.json) {
        printf("{\"artifact\":");
        json_str(stdout, c.model, strlen(c.model));
        printf(",\"isa\":\"%s\",\"threads\":%d,\"params\":%zu,\"weights\":\"%s\",\"file_bytes\":%zu,\"container_bytes\":%zu,"
               "\"weight_bytes\":%zu,\"load_seconds\":%.4f,\"prompt_tokens\":%zu,\"gen_tokens\":%zu,\"prefill_tok_per_s\":%.2f,"
               "\"decode_tok_per_s\":%.2f,\"rss_before_load\":%zu,\"rss_model\":%zu,\"rss_session\":%zu,\"rss_prompt\":%zu,\"rss_peak\":%zu,"
               "\"kv_cache\":\"%s\",\"state_bytes\":%zu}\n",
               in->isa, threads, in->params, in->weights_summary, in->file_bytes, in->container_bytes, in->weight_bytes, tl, np, ng,
               pf, dec, rss0, rss_model, rss_session, rss_prompt, rss_peak, c.kv ? c.kv : "f32", kv_bytes);
    } else {
        printf("model      %s: %zu params (%s), %zu x %zu, vocab %zu\n", c.model, in->params, in->weights_summary, in->layers,
               in->dim, in->vocab_size);
        printf("kernels    %s, %d thread(s)\n", in->isa, threads);
        printf("artifact   %zu bytes (container %zu, weights in memory %zu), loaded in %.3fs\n", in->file_bytes, in->container_bytes,
               in->weight_bytes, tl);
        printf("prefill    %zu tokens: %.1f tok/s\n", np, pf);
        printf("decode     %zu tokens after the prompt: %.1f tok/s\n", ng, dec);
        printf("RSS        before load %.1f MB, after load %.1f MB (+%.1f), with a session %.1f MB, after the prompt %.1f MB, "
               "peak %.1f MB (getrusage)\n",
               rss0 / 1e6, rss_model / 1e6, (rss_model - rss0) / 1e6, rss_session / 1e6, rss_prompt / 1e6, rss_peak / 1e6);
        printf("KV cache   %s, session state %.2f MB after %zu tokens (%zu positions held)\n", c.kv ? c.kv : "f32", kv_bytes / 1e6,
               np + ng, trt_session_cache_positions(s));
    }
    free(ids);
    trt_session_free(s);
    trt_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------- info */
static void usage_info(FILE *f) {
    fprintf(f, "usage: tern-run info MODEL.tern [--json] [--config]\n"
               "  architecture, hyper-parameters, tensors (dtype, shape, bytes) and sizes; --config prints the stored run config\n");
}

static int cmd_info(int argc, char **argv) {
    Common c = {0};
    int config = 0;
    for (int i = 1; i < argc; i++) {
        if (is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage_info(stdout);
            return 0;
        }
        if (is_flag(argv[i], "config")) config = 1;
        else if (common_opt(&c, argc, argv, &i)) continue;
        else {
            fprintf(stderr, "tern-run info: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!c.model) {
        usage_info(stderr);
        return 2;
    }
    TrtModel *m = load("info", &c);
    if (!m) return 1;
    const TrtModelInfo *in = trt_model_info(m);
    if (config) {
        printf("%s\n", in->config_json);
    } else if (c.json) {
        printf("{\"arch\":\"%s\",\"format_version\":%u,\"vocab_size\":%zu,\"layers\":%zu,\"dim\":%zu,\"heads\":%zu,\"kv_heads\":%zu,"
               "\"mlp_hidden\":%zu,\"seq_len\":%zu,\"eval_seq_len\":%zu,\"params\":%zu,\"file_bytes\":%zu,\"container_bytes\":%zu,"
               "\"weight_bytes\":%zu,\"tokenizer\":%s,\"bos\":%d,\"eos\":%d,\"isa\":\"%s\",\"tensors\":[",
               in->arch, in->format_version, in->vocab_size, in->layers, in->dim, in->heads, in->kv_heads, in->mlp_hidden, in->seq_len,
               in->eval_seq_len, in->params, in->file_bytes, in->container_bytes, in->weight_bytes, in->has_tokenizer ? "true" : "false",
               in->bos, in->eos, in->isa);
        for (size_t i = 0; i < m->ntensors; i++) {
            const RtTensor *t = &m->tensors[i];
            printf("%s{\"name\":\"%s\",\"dtype\":\"%s\",\"rows\":%zu,\"cols\":%zu,\"group\":%zu,\"act_bits\":%d}", i ? "," : "", t->name,
                   tern_dtype_name(t->stored_dtype), t->rows, t->cols, t->group, t->act_bits);
        }
        printf("]}\n");
    } else {
        printf("%s: tern artifact v%u, %s %zu x %zu (heads %zu/%zu, mlp %zu), vocab %zu, seq_len %zu (eval %zu)\n", c.model,
               in->format_version, in->arch, in->layers, in->dim, in->heads, in->kv_heads, in->mlp_hidden, in->vocab_size, in->seq_len,
               in->eval_seq_len);
        printf("%zu params: %s; file %zu bytes, container %zu, weights in memory %zu; tokenizer %s; kernels %s\n", in->params,
               in->weights_summary, in->file_bytes, in->container_bytes, in->weight_bytes, in->has_tokenizer ? "embedded" : "none",
               in->isa);
        for (size_t i = 0; i < m->ntensors; i++) {
            const RtTensor *t = &m->tensors[i];
            printf("  %-32s %-9s %6zu x %-6zu %s%s\n", t->name, tern_dtype_name(t->stored_dtype), t->rows, t->cols,
                   t->act_bits ? "int8 activations" : "", t->simd ? "" : " (scalar kernel)");
        }
    }
    trt_model_free(m);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: tern-run <command> MODEL.tern [options]   (tern-run <command> --help)\n"
               "  generate   continue a prompt (streaming)\n"
               "  eval       val_loss / val_bpb on token shards, as `tern eval`\n"
               "  bench      prefill and decode tokens/s, resident memory\n"
               "  info       what an artifact holds\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || is_flag(argv[1], "help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "generate")) return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
    fprintf(stderr, "tern-run: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

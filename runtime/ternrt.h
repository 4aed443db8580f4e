/* ternrt.h — libternrt, the tern inference runtime: runs an artifact written by `tern export`
 * (docs/FORMAT.md) with its weights kept packed.
 *
 * Threading: a TrtModel is immutable once loaded and may be shared by any number of threads;
 * each TrtSession belongs to one thread at a time (its KV cache, scratch and random state are
 * its own). Different sessions on one model may run concurrently. The library keeps no global
 * mutable state. Errors: functions return 0 on success and -1 on failure, writing one line
 * into err (errlen bytes, may be NULL). */
#ifndef TERNRT_H
#define TERNRT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TrtModel TrtModel;
typedef struct TrtSession TrtSession;

typedef struct TrtLoadOptions {
    /* Highest instruction set to use: NULL or "auto" (what cpuid reports), "avx512vnni",
     * "avx512", "avx2" or "scalar". A level the CPU lacks falls back to the best it has. */
    const char *isa;
    size_t max_container_bytes; /* refuse artifacts that decompress to more (0 = 16 GiB) */
    /* The KV cache of this model's sessions: NULL or "f32" (floats, the exact forward), or
     * "f16" (IEEE halves: half the memory; logits move slightly, see runtime/README.md). */
    const char *kv_cache;
} TrtLoadOptions;

int trt_model_load(TrtModel **out, const char *path, const TrtLoadOptions *opt, char *err, size_t errlen);
/* Same from bytes in memory (the bytes are not kept); name is used in messages. */
int trt_model_load_memory(TrtModel **out, const void *data, size_t len, const char *name, const TrtLoadOptions *opt,
                          char *err, size_t errlen);
void trt_model_free(TrtModel *m);

typedef struct TrtModelInfo {
    const char *arch;          /* "gpt" */
    uint32_t format_version;
    size_t vocab_size, layers, dim, heads, kv_heads, mlp_hidden;
    size_t seq_len;            /* longest context the model was built for */
    size_t eval_seq_len;       /* the run's data.seq_len (default eval window) */
    size_t params;             /* parameter count */
    size_t file_bytes;         /* artifact size */
    size_t container_bytes;    /* decompressed container */
    size_t weight_bytes;       /* packed weights and scales held in memory */
    int has_tokenizer;
    int32_t bos, eos;          /* -1 when the tokenizer has none */
    const char *isa;           /* kernels in use, e.g. "avx512vnni" */
    const char *config_json;   /* the run config stored in the artifact (NUL-terminated) */
    const char *weights_summary; /* e.g. "int5 x54, fp16 x1, fp32 x37" */
} TrtModelInfo;
const TrtModelInfo *trt_model_info(const TrtModel *m);

typedef struct TrtSessionOptions {
    uint64_t seed;        /* sampling seed */
    int threads;          /* OpenMP threads for this session's forward passes (0 = all) */
    size_t max_context;   /* longest context (0 = the model's seq_len; at most seq_len); the KV cache
                             grows with the context used, doubling from 64 positions up to this */
} TrtSessionOptions;

int trt_session_new(const TrtModel *m, const TrtSessionOptions *opt, TrtSession **out, char *err, size_t errlen);
void trt_session_free(TrtSession *s);
/* Forgets the context (the KV cache); the random state continues. */
void trt_session_reset(TrtSession *s);
size_t trt_session_length(const TrtSession *s);   /* tokens in the context */
/* Positions the session's KV cache holds now (>= its length; it never shrinks), and the bytes
 * of its decode state (every layer's KV cache or recurrent state). */
size_t trt_session_cache_positions(const TrtSession *s);
size_t trt_session_state_bytes(const TrtSession *s);

/* Feeds tokens (prefill, batched). logits: NULL, or n * vocab floats receiving the logits after
 * every fed token (used by evaluation). Tokens beyond the context length are an error. */
int trt_session_observe(TrtSession *s, const int32_t *ids, size_t n, float *logits, char *err, size_t errlen);
/* Encodes UTF-8 text with the artifact's tokenizer and feeds it; add_bos puts the tokenizer's
 * BOS first (documents start with BOS in training). *n_tokens (may be NULL) gets the count. */
int trt_session_observe_text(TrtSession *s, const char *text, size_t len, int add_bos, size_t *n_tokens, char *err,
                             size_t errlen);
/* Next-token logits (vocab floats, softcapped as in training) after the last fed token; NULL
 * before anything was fed. Valid until the next call on the session. */
const float *trt_session_logits(const TrtSession *s);

typedef struct TrtSampling {
    float temperature;         /* 0 = greedy (argmax) */
    float top_p;               /* nucleus sampling; 1 = off */
    float repetition_penalty;  /* CTRL-style (logit / p when > 0, * p otherwise); 1 = off */
    size_t repetition_window;  /* last N context tokens penalised (0 = 64) */
    int stop_at_eos;           /* stop after generating the tokenizer's EOS */
} TrtSampling;
void trt_sampling_defaults(TrtSampling *sp); /* temp 0.7, top_p 0.92, penalty 1.1, window 64 */

/* Called after each generated token with its id and the bytes it decodes to (for streaming);
 * a non-zero return stops generation. */
typedef int (*TrtTokenCallback)(void *ctx, int32_t id, const char *text, size_t len);

/* Samples up to n tokens, feeding each back. When the context is full the older half is dropped
 * and the newer half re-fed. out_ids (may be NULL) receives the ids; *n_out (may be NULL) the count. */
int trt_generate(TrtSession *s, size_t n, const TrtSampling *sp, TrtTokenCallback cb, void *ctx, int32_t *out_ids,
                 size_t *n_out, char *err, size_t errlen);
/* One token from the current logits under sp (does not feed it back). */
int32_t trt_sample(TrtSession *s, const TrtSampling *sp);

/* Text of ids (malloc'd, NUL-terminated; free with free()). */
int trt_decode(const TrtModel *m, const int32_t *ids, size_t n, char **text, size_t *len, char *err, size_t errlen);
/* Encodes text into ids (malloc'd; free with free()). */
int trt_encode(const TrtModel *m, const char *text, size_t len, int32_t **ids, size_t *n, char *err, size_t errlen);

/* Validation loss and bits per byte over token shards (parameter-golf .bin; a glob or a
 * comma-separated list), the official rule as `tern eval`: non-overlapping windows of T
 * tokens (T = 0: the artifact's eval_seq_len), every target scored with its window as context,
 * bytes counted by data/bpb.c. max_tokens caps the targets scored (0 = all). */
typedef struct TrtEvalResult {
    double loss_sum, tokens, bytes, val_loss, val_bpb; /* val_bpb < 0 without a tokenizer */
    size_t windows, seq_len;
    double seconds;
} TrtEvalResult;
int trt_eval(const TrtModel *m, const char *shards, size_t T, size_t max_tokens, int threads, TrtEvalResult *r, char *err,
             size_t errlen);

/* ---------------------------------------------------------------- agents
 * The Hybrid-GRU engine's application interface: applications drive agents with text. An agent
 * is a session (its own recurrent state or KV cache, context and random stream) plus its sampler
 * settings; any number of agents share one loaded model, which they only read. Calls on
 * different agents may run concurrently on different threads; one agent is used by one thread
 * at a time. A model whose layers never read the position (GRU / MLGRU stacks) lets an agent
 * observe and act without end: the state is kept and only the oldest token history is dropped;
 * other models keep the newer half of a full context and re-feed it. */
typedef struct TrtAgent TrtAgent;

typedef struct TrtAgentOptions {
    uint64_t seed;             /* the agent's random stream */
    int threads;               /* OpenMP threads of its forward passes (0 = 1: agents usually run side by side) */
    size_t max_context;        /* context / KV cache length (0 = the model's seq_len) */
    float top_p;               /* nucleus sampling (0 or 1 = off: the full distribution, as the engine) */
    float repetition_penalty;  /* CTRL-style over the last 64 tokens (0 or 1 = off) */
    int stop_at_eos;           /* act stops after generating the tokenizer's EOS */
} TrtAgentOptions;

int trt_agent_new(const TrtModel *m, const TrtAgentOptions *opt, TrtAgent **out, char *err, size_t errlen);
void trt_agent_free(TrtAgent *a);
/* Feeds UTF-8 text (the first text an agent sees starts with the tokenizer's BOS, as training
 * documents do). */
int trt_agent_observe(TrtAgent *a, const char *text, char *err, size_t errlen);
/* Generates up to n tokens at this temperature (0 = greedy), feeding each back, and returns
 * their text (malloc'd, NUL-terminated; free with free()). */
int trt_agent_act(TrtAgent *a, size_t n, float temperature, char **text, char *err, size_t errlen);
/* Next-token logits (vocab floats) after what the agent has seen; NULL before anything. */
const float *trt_agent_logits(const TrtAgent *a);
/* An agent's whole state (recurrent state or KV cache, context, next-token logits, random
 * stream) as bytes: size, save into buf, and restore from a buffer saved by an agent of the same
 * model with the same max_context (checked; the sampler settings are the restoring agent's). */
size_t trt_agent_state_size(const TrtAgent *a);
int trt_agent_save(const TrtAgent *a, void *buf, size_t size, char *err, size_t errlen);
int trt_agent_restore(TrtAgent *a, const void *buf, size_t size, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif

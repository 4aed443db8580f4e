/* rt_internal.h — the runtime's insides, shared by its files, its tests and the fuzz target.
 * Not installed; the public face is ternrt.h. */
#ifndef TERNRT_INTERNAL_H
#define TERNRT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "data/bpb.h"
#include "data/tokenizer.h"
#include "export/format.h"
#include "runtime/ternrt.h"

#ifdef _OPENMP
#include <omp.h>
#define RT_THREAD_ID() omp_get_thread_num()
#define RT_MAX_THREADS() omp_get_max_threads()
#else
#define RT_THREAD_ID() 0
#define RT_MAX_THREADS() 1
#endif

/* Errors inside the runtime: a fixed message buffer (same shape as kernels/util.h's Err, which
 * the tokenizer code uses). */
typedef struct RtErr {
    char msg[512];
} RtErr;
int rt_err(RtErr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_err_out(const RtErr *e, char *err, size_t errlen);

/* ---------------------------------------------------------------- tensors */
typedef struct RtTensor {
    char name[TERN_NAME_MAX];
    uint32_t dtype;        /* in memory: base-3 rows are expanded to TERN_DT_T2 at load */
    uint32_t stored_dtype; /* as in the file */
    int act_bits;          /* 0 | 8 */
    size_t act_block;      /* 0 = per token */
    size_t group;          /* ternary weights per scale (0 = per tensor) */
    size_t rows, cols, row_bytes;
    int qmax;              /* offset of the stored unsigned value */
    const uint8_t *data;   /* rows * row_bytes */
    float *scales;         /* nscales, converted to float at load (NULL for float dtypes) */
    size_t nscales;
    /* Kernel plan (rt_tensor_plan): simd = the chunked kernels apply (columns in chunks of
     * TERN_CHUNK; scale groups and activation blocks whole chunks, one dividing the other);
     * seg_chunks = chunks per segment (a run of columns sharing one weight scale and one
     * activation scale) for the integer path, wseg_chunks likewise for the weight scale alone
     * (float path). */
    int simd;
    size_t nchunks, seg_chunks, wseg_chunks;
} RtTensor;

/* Scale index of column c of row r. */
static inline size_t rt_wscale_index(const RtTensor *t, size_t r, size_t c) {
    if (tern_dtype_is_intn(t->dtype)) return r;
    if (!t->group) return 0;
    return r * ((t->cols + t->group - 1) / t->group) + c / t->group;
}
void rt_tensor_plan(RtTensor *t);
/* Dequantized row r into dst[cols] (any dtype; scalar). */
void rt_tensor_row_float(const RtTensor *t, size_t r, float *dst);

/* int8 activations of n tokens: per-token (or per-block) absmax scales, exactly
 * kernels/quant.c's quantize_act_int8, plus per-chunk code sums for the offset trick. */
typedef struct RtActQ {
    int8_t *q;         /* [n, cols_pad], zero past cols */
    float *scale;      /* [n, nblk] */
    int32_t *csum;     /* [n, nchunks] */
    size_t n, cols, cols_pad, block, nblk, nchunks;
} RtActQ;
size_t rt_actq_bytes(size_t n, size_t cols);
void rt_actq_init(RtActQ *a, void *mem, size_t n, size_t cols, size_t block);
void rt_quantize_act(RtActQ *a, const float *x);

/* ---------------------------------------------------------------- kernels
 * One table per instruction set, chosen at load from cpuid. The integer kernels are exact; the
 * float ones differ from the scalar ones only in the order of their sums. n is a multiple of
 * TERN_CHUNK except for the float dots (any n). */
typedef struct RtKernels {
    const char *name;
    /* sum of u * x over nchunks 2-bit chunks (u = stored value, not yet offset) */
    int32_t (*t2_dot)(const uint8_t *w, const int8_t *x, size_t nchunks);
    /* stored values of a packed I4/I5/I6/T2 row, first n columns, as bytes */
    void (*unpack_u8)(uint32_t dtype, uint8_t *u, const uint8_t *row, size_t n);
    int32_t (*dot_u8s8)(const uint8_t *u, const int8_t *x, size_t n);
    int32_t (*dot_s8s8)(const int8_t *w, const int8_t *x, size_t n);
    float (*dot_f32)(const float *w, const float *x, size_t n);
    /* float-path dots straight from the stored form: sum (u - off) x, sum q x, sum half(h) x */
    float (*dot_u8f32)(const uint8_t *u, const float *x, size_t n, int off);
    float (*dot_s8f32)(const int8_t *q, const float *x, size_t n);
    float (*dot_f16f32)(const uint8_t *h, const float *x, size_t n);
    /* a whole 2-bit row whose every chunk has its own weight scale (ternary group 128, one
     * activation scale): sum over chunks c, in order, of
     * (float)(sum(u x) - csum[c]) * (ws[c] * as) — exactly what the generic segment loop does */
    float (*t2_row_g1)(const uint8_t *w, const int8_t *x, const int32_t *csum, const float *ws, float as, size_t nchunks);
    /* attention: out[j] = sum_c q[c] blk[16 c + j] for the 16 positions of a key block (keys
     * cached transposed per block of 16), and o[c] = sum_j w[j] v[j stride + c], c < D */
    void (*kblock_scores)(float *out, const float *q, const float *blk, size_t D);
    void (*weighted_rows)(float *o, const float *w, const float *v, size_t n, size_t stride, size_t D);
    /* dst[i] = the IEEE half h[i] as a float (the fp16 KV cache) */
    void (*f16_to_f32)(float *dst, const uint16_t *h, size_t n);
} RtKernels;

enum { RT_ISA_SCALAR = 0, RT_ISA_AVX2 = 1, RT_ISA_AVX512 = 2, RT_ISA_AVX512VNNI = 3 };
/* Best level this CPU (and OS) supports. */
int rt_cpu_isa(void);
/* Kernels for a level (capped by the CPU's); name is "scalar", "avx2", "avx512", "avx512vnni". */
void rt_kernels_select(RtKernels *k, int isa);
void rt_kernels_scalar(RtKernels *k);
void rt_kernels_avx2(RtKernels *k);
void rt_kernels_avx512(RtKernels *k, int vnni, int vbmi);
int rt_isa_from_name(const char *s); /* -1 unknown */

/* y[n, rows] = x[n, cols] W^T. Integer path (W quantized with act_bits 8): x is quantized to
 * int8 per the tensor's spec; otherwise (act_bits 0, fp16/fp32 weights, or force_float) the
 * weights are dequantized on the fly and multiplied with float activations. scratch:
 * rt_linear_scratch_bytes. threads: OpenMP threads for this call. */
size_t rt_linear_scratch_bytes(size_t n, size_t cols, int threads);
void rt_linear(const RtKernels *k, float *y, const float *x, size_t n, const RtTensor *W, int force_float, void *scratch,
               int threads);
/* The canonical (scalar, element by element) definition of the same product, used by tests. */
void rt_linear_ref(float *y, const float *x, size_t n, const RtTensor *W, int force_float);

/* ---------------------------------------------------------------- shared math (common.c) */
/* out = rmsnorm(in) [* w] over rows of C (w may be NULL), as kernels/norm.c */
void rt_rmsnorm(float *out, const float *in, const float *w, size_t N, size_t C, float eps);
void rt_rope_inv_freq(float *inv_freq, size_t D, float base);
/* cos / sin of the RoPE angles of positions p0 .. p0 + n - 1: [n, half] each */
void rt_rope_rows(float *cosb, float *sinb, const float *inv_freq, size_t half, size_t p0, size_t n);
void rt_softcap(float *z, size_t V, float cap);
/* out[n, H] = silu(gate) * up of fc [n, 2H] = [gate | up], as kernels/act.c swiglu_forward */
void rt_swiglu(float *out, const float *fc, size_t n, size_t H);

/* ---------------------------------------------------------------- key/values
 * The artifact's hyper-parameters (export/format.h). Lookups mark what they read, so the stack
 * can refuse keys nobody reads (a newer writer's, or damage) after binding. */
typedef struct RtKvSet {
    TernKv *kv;
    size_t n;
    uint8_t *seen;
} RtKvSet;
const TernKv *rt_kv_find(const RtKvSet *s, const char *key); /* NULL when absent; marks it read */
int rt_kv_u32(const RtKvSet *s, const char *key, uint32_t lo, uint32_t hi, uint32_t *out, RtErr *e);
int rt_kv_f32(const RtKvSet *s, const char *key, float *out, RtErr *e); /* finite */
int rt_kv_bool(const RtKvSet *s, const char *key, int *out, RtErr *e);
int rt_kv_str(const RtKvSet *s, const char *key, const char **out, RtErr *e);

/* ---------------------------------------------------------------- block kinds (runtime/blocks/)
 * The runtime's side of model/block.h: each kind binds its tensors ("blocks.<i>." + its names)
 * and keys, states its decode state and scratch, and computes y = kind(h) for n tokens of a
 * chunk. runtime/stack.c is the one trunk around them (embedding, residual scaffold, skips,
 * head). */
typedef struct RtDims {
    size_t C, V, seq_len;
    float eps;
    size_t Cin; /* the layer's input width: C, or stack.embed_dim for a widening first layer */
} RtDims;

/* A forward over n tokens at positions p0 .. p0 + n - 1 (n <= the chunk size P). */
typedef struct RtFwd {
    const RtKernels *k;
    size_t p0, n, max_ctx;
    int threads;
    float eps;
    const float *cosb, *sinb; /* RoPE rows of these positions ([n, D/2]) for kinds that need them */
    float *scratch;           /* the kind's scratch_floats */
    void *lin;                /* rt_linear scratch for the widest input */
    size_t cap;               /* positions the session's caches hold now (p0 + n <= cap <= max_ctx) */
    int kv_f16;               /* the KV cache holds IEEE halves */
} RtFwd;

typedef struct RtBlockKind {
    const char *name;         /* as model/: "attention", "mlp", "swiglu", "trn" */
    int role;                 /* 0 token mixer, 1 channel mixer */
    /* Reads the kind's keys and binds layer `layer`'s tensors (counting them in *used);
     * *inst is the kind's, freed by unbind. */
    int (*bind)(const TrtModel *m, const RtKvSet *kv, const RtDims *d, size_t layer, void **inst, size_t *used, RtErr *e);
    void (*unbind)(void *inst);
    /* RoPE: the head dim and base this layer rotates with (0 = none) */
    size_t (*rope)(const void *inst, float *base);
    /* decode state per session (KV cache, recurrent state), floats, for a cache of cap positions
     * (kv_f16: a KV cache of halves); reset to 0 by the stack */
    size_t (*state_floats)(const void *inst, size_t cap, int kv_f16);
    size_t (*scratch_floats)(const void *inst, size_t P, size_t max_ctx, int threads);
    size_t (*max_cols)(const void *inst); /* widest input of its linears */
    void (*forward)(const void *inst, const RtFwd *f, float *state, float *y, const float *h);
    /* A state whose layout depends on cap (the KV cache): copies the first npos positions of
     * src (laid out for src_cap) into dst (laid out for dst_cap >= npos). NULL: the state does
     * not depend on cap and is copied whole. dst and src may be unaligned bytes (a saved agent). */
    void (*state_move)(const void *inst, void *dst, size_t dst_cap, const void *src, size_t src_cap, size_t npos, int kv_f16);
} RtBlockKind;

extern const RtBlockKind rt_block_attention, rt_block_mlp, rt_block_swiglu, rt_block_trn, rt_block_gru, rt_block_mlgru;
extern const RtBlockKind rt_block_gdn, rt_block_mlstm, rt_block_moe;
const RtBlockKind *rt_block_kind_find(const char *name);

/* The small per-channel tensors a kind reads as floats: dequantized copies (rt_alloc'd). */
int rt_want_vec(const TrtModel *m, const char *name, size_t rows, size_t cols, float **out, size_t *used, RtErr *e);

/* ---------------------------------------------------------------- model and sessions */
struct RtStack;

struct TrtModel {
    uint8_t *container;      /* decompressed container (64-byte aligned); tensors point into it */
    size_t container_len;
    TernHeader hdr;
    RtTensor *tensors;
    size_t ntensors;
    uint8_t *expanded;       /* base-3 rows expanded to 2-bit */
    float *scale_mem;
    Tokenizer *tok;
    ByteCounter bc;          /* bits-per-byte tables (data/bpb.c), when there is a tokenizer */
    int have_bc;
    char *config_json;
    char summary[256];
    RtKernels k;
    struct RtStack *stack;   /* the backbone (stack.c) */
    int kv_f16;              /* its sessions keep their KV caches as IEEE halves (TrtLoadOptions.kv_cache) */
    char arch[TERN_KV_STR_MAX + 1];
    TrtModelInfo info;
};

struct TrtSession {
    const TrtModel *m;
    uint64_t rng[4];
    int threads;
    size_t max_ctx, n_past;
    int32_t *tokens;         /* the context, max_ctx */
    float *logits;           /* vocab: after the last fed token */
    int have_logits;
    TokScratch *tscratch;
    void *state;             /* the stack's decode state and scratch */
    int kv_f16;              /* its KV cache holds IEEE halves (the model's kv_f16) */
};

/* The trunk (stack.c): binds the key/values and tensors (fills m->info), a session's state,
 * and the forward: n tokens at positions n_past.. (the caller checks room and advances n_past);
 * logits_all: NULL or [n, vocab]; s->logits always receives the last position's. */
int rt_stack_bind(TrtModel *m, const uint8_t *kv, size_t kv_size, RtErr *e);
void rt_stack_unbind(TrtModel *m);
int rt_stack_session_init(TrtSession *s, RtErr *e);
void rt_stack_session_free(TrtSession *s);
void rt_stack_forward(TrtSession *s, const int32_t *ids, size_t n, float *logits_all);
/* The session's decode state (every layer's recurrent state or KV cache and token-shift row),
 * nfloats floats laid out for the cache's current capacity (rt_stack_cache_cap), and the
 * previous token BigramHash carries. */
float *rt_stack_state(TrtSession *s, size_t *nfloats, int32_t **prev_tok);
/* The KV cache grows with the context used: capacity for npos positions, doubling from
 * RT_KV_FIRST positions, capped at max_ctx (0 when it already has room; -1 out of memory). */
int rt_stack_reserve(TrtSession *s, size_t npos, RtErr *e);
size_t rt_stack_cache_cap(const TrtSession *s);
size_t rt_stack_cap_for(const TrtSession *s, size_t npos); /* the capacity reserve(npos) gives a fresh session */
size_t rt_stack_state_floats(const TrtSession *s, size_t cap); /* state floats at that capacity */
/* The first npos positions of a state laid out for src_cap into one laid out for dst_cap (what
 * growth does, and what an agent saves and restores: the state at rt_stack_cap_for(n_past)). */
void rt_stack_state_copy(const TrtSession *s, void *dst, size_t dst_cap, const void *src, size_t src_cap, size_t npos);
/* 1 when no layer reads the token position (only GRU / MLGRU mixers): a stream may go on past
 * the context length with its state kept (rt_session_make_room). */
int rt_stack_position_free(const TrtModel *m);
/* Room in the session's context for k more tokens (k <= max_ctx / 2), see session.c. */
int rt_session_make_room(TrtSession *s, size_t k, RtErr *e);
/* Layer `layer`'s token-mixer decode state in a session (n floats; NULL when it keeps none): tests
 * compare the state decode and prefill leave. */
const float *rt_stack_mixer_state(const TrtSession *s, size_t layer, size_t *n);

/* Loader entry for an already decompressed container (the fuzz target and the corruption test
 * use it directly). The bytes are copied. check_crc = 0 skips the CRC (fuzzing). */
int rt_load_container(TrtModel **out, const uint8_t *c, size_t len, const char *name, int isa, int check_crc,
                      RtErr *e);

/* Allocation that fails softly (NULL) instead of aborting: sizes here come from files. */
void *rt_alloc(size_t bytes);    /* 64-byte aligned, zeroed */
void rt_free(void *p);
int rt_mul_ok(size_t a, size_t b, size_t *out);
/* For a bind: the tensor `name`, which must be rows x cols; counts it in *used (the stack then
 * checks that every tensor of the artifact was used). */
int rt_want_tensor(const TrtModel *m, const char *name, size_t rows, size_t cols, const RtTensor **out, size_t *used, RtErr *e);
/* Fills m->info with the shape the backbone reports, and the parameter count of its tensors. */
void rt_info_fill(TrtModel *m, const char *arch, size_t vocab, size_t layers, size_t dim, size_t heads, size_t kv_heads,
                  size_t mlp_hidden, size_t seq_len, size_t eval_seq_len);

#endif

/* block.h — block kinds, the registered unit every backbone is built from.
 *
 * A block kind is a token mixer (attention, the TRN oscillator, later GRU, Gated DeltaNet,
 * mLSTM, Titans) or a channel mixer (MLP, SwiGLU, later MoE). It lives in one file under
 * model/blocks/ and declares, through one BlockKind record:
 *   - its config keys: one CfgField table over its own config struct, with defaults and a
 *     resolve/check function (keys live flat in the run config's "model" section, beside the
 *     stack's shared keys of StackConfig; no two tables may share a key);
 *   - its parameters, registered under the layer's prefix ("blocks.3."), and their init;
 *   - its forward on the tape: h [B, T, C] (the normed residual) -> [B, T, C];
 *   - its optimizer-group rules (those before the stack's generic ones);
 *   - what the artifact needs (typed key/values; its tensors are its parameters, by name);
 *   - its decode state (recurrent kinds: floats per layer and per session at inference).
 * model/stack.c builds every backbone from them: embedding (+ BigramHash) -> layers (each an
 * optional token mixer and an optional channel mixer inside the residual scaffold: resid_mix,
 * pre-norms, token shift, branch scales; U-Net skips across layers) -> final norm -> head.
 * docs/ARCHITECTURE.md says how to add a kind. */
#ifndef TERN_BLOCK_H
#define TERN_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/ops.h"
#include "kernels/jsoncfg.h"
#include "kernels/rng.h"
#include "model/model.h"

typedef enum BlockRole { BLOCK_MIXER = 0, BLOCK_CHANNEL = 1 } BlockRole;

/* How tensors are named: the parameter-golf module tree (blocks.3.attn.c_q.weight,
 * lm_head.weight) or Meta's Llama (blocks.3.attn.wq.weight, output.weight). A preset property:
 * it keeps every checkpoint's names what they always were. */
typedef enum NameStyle { NAMES_PGOLF = 0, NAMES_LLAMA = 1 } NameStyle;

/* The stack's shared keys: one table (kStackFields) for every backbone. */
typedef struct StackConfig {
    char arch[CFG_STR_MAX];    /* the preset: gpt | trn_hybrid | llama */
    char layout[CFG_STR_MAX];  /* one letter per layer (the preset's layer types) */
    size_t vocab_size, layers, dim, heads, kv_heads, mlp_mult, seq_len;
    double softcap, rope_base, embed_init_std, qk_gain_init, norm_eps, init_std;
    int tie_embeddings, skips, zero_init_proj, subln, emb_norm, qk_norm, q_gain;
    int resid_mix, branch_scales, norm_gain, token_shift;
    size_t bigram_rows, bigram_dim;
    double bigram_scale_init, bigram_table_init_std, bigram_proj_init_std;
    size_t embed_dim;          /* token embedding width (0 = dim; see BlockKind.widens) */
    /* not keys: set from the preset */
    NameStyle names;
    /* not a key: the width of the layer's input for the call it is passed to — dim, or
     * embed_dim for a first layer whose mixer widens (model/stack.c passes a copy) */
    size_t in_dim;
} StackConfig;

extern const CfgField kStackFields[];
extern const size_t kStackFieldCount;

/* Typed key/values a kind gives the artifact (export/format.h encodes them; GGUF-like keys such
 * as "attn.heads"). model/ cannot include export/, so the list is neutral here. */
typedef enum KvType { KV_U32 = 0, KV_F32 = 1, KV_BOOL = 2, KV_STR = 3 } KvType;
typedef struct KvEntry {
    char key[64];
    KvType type;
    uint64_t u;          /* U32, BOOL */
    double f;            /* F32 */
    char s[CFG_STR_MAX]; /* STR */
} KvEntry;
typedef struct KvList {
    KvEntry *e;
    size_t n, cap;
} KvList;
void kv_add_u32(KvList *kv, const char *key, uint64_t v);
void kv_add_f32(KvList *kv, const char *key, double v);
void kv_add_bool(KvList *kv, const char *key, int v);
void kv_add_str(KvList *kv, const char *key, const char *v);
void kv_free(KvList *kv);

/* What a kind's forward sees besides its input. */
typedef struct BlockCtx {
    Model *m;                 /* QAT plan and adapters apply through model_linear */
    Tape *tp;
    size_t B, T;
    int training;             /* training forward (counted in m->train_forwards already) */
    const StackConfig *sc;
    const RopeTable *rope;    /* the stack's RoPE table (NULL without heads) */
    int recompute;            /* activation checkpointing re-runs this forward in backward: the
                               * output must be the same and nothing on the model may change
                               * (per-step counters such as MoE's load are not added to again) */
} BlockCtx;

typedef struct BlockKind {
    const char *name;
    BlockRole role;
    const CfgField *fields;   /* its keys in the model section (may be none) */
    size_t nfields;
    size_t cfg_bytes;         /* its config struct */
    void (*defaults)(void *cfg);
    /* Resolves derived sizes (always) and checks the keys against the stack's (when used: a
     * layer of the layout has this kind). Errors name the key. */
    int (*resolve)(void *cfg, const StackConfig *sc, int used, Err *err);
    int needs_rope;           /* the stack builds its RoPE table when a used kind says so */
    size_t inst_bytes;        /* per-layer instance: the kind's tensor pointers */
    /* Registers the layer's parameters; prefix is "blocks.<i>." */
    void (*add_params)(void *inst, const void *cfg, const StackConfig *sc, ParamStore *ps, const char *prefix);
    void (*init)(void *inst, const void *cfg, const StackConfig *sc, Rng *rng);
    Tensor *(*forward)(const void *inst, const void *cfg, const BlockCtx *c, Tensor *h);
    /* Optimizer-group rules for its parameters, JSON objects separated by commas, tried before
     * the stack's generic ones (every 2-D block matrix -> "matrix", the rest -> "scalar"); NULL
     * when the generic ones fit. */
    const char *group_rules;
    /* The artifact's keys for this kind (prefix "<kind>."); NULL when the runtime has no
     * counterpart (export refuses such models with a message). */
    int (*export_keys)(const void *cfg, const StackConfig *sc, KvList *kv, Err *err);
    /* Artifacts of a model using this kind store int4/5/6 codes one per byte by default: its
     * weights' bit-packed codes barely compress (the TRN hybrid's int5 weights fit the 16 MB
     * parameter-golf limit only that way before training). */
    int export_byte_codes;
    /* Floats of recurrent decode state per layer for a context of ctx tokens (the KV cache of
     * attention, the oscillators of TRN); NULL: none. Used for memory estimates and docs; the
     * runtime's kind allocates its own. */
    size_t (*decode_state_floats)(const void *cfg, const StackConfig *sc, size_t ctx);
    /* A token mixer that reads sc->in_dim wide inputs and returns dim wide outputs: it may be
     * the first layer of a stack whose embedding (model.embed_dim) is narrower or wider than
     * dim. That layer reads the embedding as it is (no pre-norm, no residual around it). */
    int widens;
    /* State that is not trained by gradient (autodiff/buffers.h), for kinds that have some (MoE's
     * routing bias); all NULL otherwise. step_floats: counters per layer that the training
     * forwards of one optimizer step add to (the stack keeps every layer's in one array, which
     * the trainer zeroes before a step and sums over MPI ranks after it). add_buffers: allocates
     * the layer's state in the instance, registers its buffers in bs under prefix
     * ("blocks.<i>.") and keeps `step`, its slice of the counters. after_step: the update after
     * an optimizer step from the (global) counters; returns a figure for metrics.jsonl (MoE: the
     * load balance max/mean), or -1. free_inst: frees what add_buffers allocated. */
    size_t (*step_floats)(const void *cfg, const StackConfig *sc);
    void (*add_buffers)(void *inst, const void *cfg, const StackConfig *sc, BufferStore *bs, const char *prefix, float *step);
    double (*after_step)(void *inst, const void *cfg, const StackConfig *sc);
    void (*free_inst)(void *inst);
} BlockKind;

/* The registry (model/registry.c). */
const BlockKind *block_kind_find(const char *name);
size_t block_kind_count(void);
const BlockKind *block_kind_at(size_t i);

/* The block kinds (model/blocks/<name>.c). */
extern const BlockKind kBlockAttention, kBlockMlp, kBlockSwiglu, kBlockGlu, kBlockTrn, kBlockGru, kBlockMlgru;
extern const BlockKind kBlockGdn, kBlockMlstm, kBlockMoe;

/* Helpers for kinds: "<prefix><name>" registered with params_add2, and the inits the backbones
 * share (torch.nn.Linear's U(-1/sqrt(in), 1/sqrt(in)) and a constant fill). */
Tensor *block_param(ParamStore *ps, const char *prefix, const char *name, int ndim, size_t a, size_t b);
void block_init_linear(Tensor *w, Rng *rng);
void block_fill(Tensor *t, float v);

#endif

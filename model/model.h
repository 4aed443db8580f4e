/* model.h — a trainable language model: its parameters (one ParamStore), its buffers (state not
 * trained by gradient), the stack of blocks that computes its logits, and its resolved config.
 *
 * model_create builds the backbone named by model.arch — a preset of the one stack
 * (model/stack.h: gpt, trn_hybrid, llama) — from the "model" section of a run config. Models
 * return logits; the loss (cross-entropy, distillation) is the caller's: model_loss is the plain
 * cross-entropy for evaluation and tests, the trainer applies distillation itself. Parameter
 * names follow the PyTorch reference implementations (e.g. blocks.3.attn.c_q.weight), so
 * checkpoints can be read into the reference models with h5py for parity tests. */
#ifndef TERN_MODEL_H
#define TERN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/buffers.h"
#include "autodiff/params.h"
#include "autodiff/tape.h"
#include "kernels/rng.h"
#include "kernels/util.h"

struct cJSON;
struct KvList;
typedef struct Model Model;

/* Ranges of the shape keys the architectures share (their config tables, CFG_R): wide enough for
 * any model a CPU framework trains or imports (Llama-3-405B: dim 16384, hidden 53248, 128 heads,
 * vocab 128256), narrow enough that a typo or a flipped byte in a file is an error naming the
 * key. Together they are bounded by the memory check (params_finalize, train/memplan.h). */
#define MODEL_MAX_VOCAB 2097152.0  /* 2^21 */
#define MODEL_MAX_DIM 65536.0
#define MODEL_MAX_HIDDEN 1048576.0 /* MLP hidden, 2^20 */
#define MODEL_MAX_HEADS 4096.0
#define MODEL_MAX_SEQ 1048576.0    /* positions (RoPE tables), 2^20 */

struct Model {
    ParamStore ps;
    BufferStore bs;
    struct Stack *stack;         /* the backbone (model/stack.c) */
    const char *arch;            /* the preset's name: "gpt", "trn_hybrid", "llama" */
    size_t vocab;
    size_t max_seq_len;
    float softcap;               /* logit softcap (0 = off), applied by the loss or model_logits */
    struct cJSON *config;        /* resolved model section (owned) */
    char *default_groups;        /* JSON array of default optimizer group rules (owned) */
    uint64_t train_forwards;     /* training forwards so far (the buffer "train_forwards") */
    struct QuantPlan *qplan;     /* quantization plan (model/qat.h), NULL = none */
    int qat_active;              /* fake quantization on in forward passes */
    struct Lora *lora;           /* test-time adapters (model/lora.h), NULL = none */
    int checkpoint_blocks;       /* recording training forwards keep only each layer's output and
                                  * recompute the layer in backward (train.checkpoint_blocks) */
};

/* Builds the model described by `section` (the "model" object of a run config) with parameters
 * initialised from `seed`. Unknown keys and bad values are errors naming the key. */
int model_create(Model **out, const struct cJSON *section, uint64_t seed, Err *err);
void model_free(Model *m);
size_t model_num_params(const Model *m);
/* Arena high-water of the tape that checkpointed layers run on (0 when none was used), and a
 * fresh start of it (memory probes measure one micro-step from scratch). */
size_t model_ckpt_high_water(const Model *m);
void model_ckpt_reset(Model *m);

/* Logits [B*T, V] of x [B, T] before the softcap (losses fuse it). training: a training forward
 * (counted in m->train_forwards first; warm-ups read the count). */
Tensor *model_forward(Model *m, Tape *tp, const int32_t *x, size_t B, size_t T, int training);
/* Final logits [B*T, V]: softcapped when the model caps them. */
Tensor *model_logits(Model *m, Tape *tp, const int32_t *x, size_t B, size_t T);
/* Mean cross-entropy of y given x ([B, T] int32 each) with the model's softcap; per_token (B*T,
 * may be NULL) receives each position's loss. */
Tensor *model_loss(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T, float *per_token,
                   int training);

/* The artifact's key/values (stack keys, per-layer block kinds, each kind's keys); an error when
 * a block kind has no runtime counterpart. */
int model_export_kv(const Model *m, struct KvList *kv, Err *err);
/* Whether the artifact stores intN codes one per byte by default (a used kind says so). */
int model_prefers_byte_codes(const Model *m);
/* Floats of decode state a runtime session keeps for a context of ctx tokens (KV caches,
 * recurrent states). */
size_t model_decode_state_floats(const Model *m, size_t ctx);

/* The counters that the training forwards of one optimizer step add to (MoE: tokens routed to
 * each expert of each layer), *n floats (NULL, 0 when no kind counts). The trainer zeroes them
 * before a step and sums them over MPI ranks after it, then calls model_after_step. */
float *model_step_counts(Model *m, size_t *n);
/* The kinds' updates of their buffers after an optimizer step, from the step's counters (MoE:
 * b_e += rate sign(mean load - load_e)). Returns the largest figure a layer reports (MoE: its
 * load max/mean), -1 when none does. */
double model_after_step(Model *m);

/* The same function as a parameter-golf-format GPT (see model/llama.c), for export. */
int llama_to_gpt(const Model *llama, Model **gpt, Err *err);

#endif

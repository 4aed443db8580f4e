/* model.h — a trainable language model: its parameters (one ParamStore), its architecture's
 * forward pass built from autodiff ops, and its resolved config.
 *
 * The registry (model_create) picks the architecture from model.arch in the run config:
 * "gpt" (model/gpt.c) today; trn_hybrid, hgru and chimera as they land. Parameter names
 * follow the PyTorch reference implementations (e.g. blocks.3.attn.c_q.weight), so checkpoints
 * can be read into the reference models with h5py for parity tests. */
#ifndef TERN_MODEL_H
#define TERN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "autodiff/params.h"
#include "autodiff/tape.h"
#include "kernels/rng.h"
#include "kernels/util.h"

struct cJSON;
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

typedef struct ModelOps {
    const char *arch;
    /* Mean cross-entropy of y given x ([B, T] int32 each); per_token (B*T, may be NULL)
     * receives each position's loss. training selects training-only behaviour. */
    Tensor *(*loss)(Model *m, Tape *tp, const int32_t *x, const int32_t *y, size_t B, size_t T,
                    float *per_token, int training);
    /* Final logits [B*T, V] (softcapped when the model caps them). */
    Tensor *(*logits)(Model *m, Tape *tp, const int32_t *x, size_t B, size_t T);
    void (*destroy)(Model *m);
} ModelOps;

struct Model {
    const ModelOps *ops;
    ParamStore ps;
    void *impl;
    size_t vocab;
    size_t max_seq_len;
    struct cJSON *config;        /* resolved model section (owned) */
    const char *default_groups;  /* JSON array of default optimizer group rules (static text) */
    uint64_t train_forwards;     /* forwards with training=1 (warm-ups that count them) */
    struct QuantPlan *qplan;     /* quantization plan (model/qat.h), NULL = none */
    int qat_active;              /* fake quantization on in forward passes */
    struct Lora *lora;           /* test-time adapters (model/lora.h), NULL = none */
    /* when set, loss() scores against a teacher's top-k (op_distill) instead of plain
     * cross-entropy; the trainer sets it per micro-step */
    const struct DistillTarget *distill;
};

/* Builds the model described by `section` (the "model" object of a run config) with parameters
 * initialised from `seed`. Unknown keys and bad values are errors naming the key. */
int model_create(Model **out, const struct cJSON *section, uint64_t seed, Err *err);
void model_free(Model *m);
size_t model_num_params(const Model *m);

/* Architecture constructors (registry entries). */
int gpt_create(Model **out, const struct cJSON *section, uint64_t seed, Err *err);
int llama_create(Model **out, const struct cJSON *section, uint64_t seed, Err *err);
/* The same function as a parameter-golf-format GPT (see model/llama.c), for export. */
int llama_to_gpt(const Model *llama, Model **gpt, Err *err);

#endif

/* qat.h — which parameters are quantized, how, and how the rest is stored: one plan, shared by
 * quantization-aware training, `tern eval --quantized` and `tern export`, so that all three see
 * the same numbers.
 *
 * "quant" section: qat (fake-quantize during training), weights (none | int4 | int5 | int6 |
 * int8 | ternary), min_numel (2-D tensors with more weights are quantized; 65,536 as the
 * parameter-golf records), embed (include the token embedding / tied head), clip_quantile,
 * group (ternary), scale_dtype (fp32 | fp16), act_bits (0 | 8) and act_block, start_lr_frac /
 * start_step (late QAT: the switch is evaluated every step), rules (per-layer overrides:
 * [{"match": glob, "weights": ..., ...}], first match wins).
 * "export" section: passthrough (fp16 | fp32 for tensors that are not quantized), fp32_match
 * (globs kept fp32 anyway: control tensors), ternary_packing (2bit | base3), zstd_level. */
#ifndef TERN_QAT_H
#define TERN_QAT_H

#include <stddef.h>

#include "autodiff/ops_quant.h"
#include "kernels/jsoncfg.h"
#include "model/model.h"

struct cJSON;

typedef enum StoreDtype { STORE_F32 = 0, STORE_F16 = 1, STORE_QUANT = 2 } StoreDtype;

typedef struct ParamPlan {
    StoreDtype store;
    QuantSpec spec; /* when store == STORE_QUANT */
} ParamPlan;

typedef struct QuantPlan {
    size_t n;
    ParamPlan *p; /* per parameter index */
    int qat;
    double start_lr_frac;
    long start_step;
    char ternary_packing[16];
    int zstd_level;
} QuantPlan;

/* Builds the plan for m from the run config's "quant" and "export" sections (either may be
 * NULL: defaults) and attaches it to the model (m->qplan). Resolved sections are written to
 * resolved_quant / resolved_export when non-NULL. */
int quant_plan_attach(Model *m, const struct cJSON *quant, const struct cJSON *exp, struct cJSON *resolved_quant,
                      struct cJSON *resolved_export, Err *err);
void quant_plan_free(QuantPlan *qp);
/* Late-QAT switch, called every step: turns fake quantization on (and keeps it on) once the LR
 * multiplier (the decay part of the schedule, warm-up excluded) drops below start_lr_frac or the
 * step reaches start_step. Returns 1 when it just turned on. */
int qat_update(Model *m, unsigned long long step, double lr_mult);
/* A frozen base (LoRA, train/lora_ft.h): every parameter the plan quantizes is replaced, in place
 * and once, by its quantize-dequantize values; QAT is switched off (the weights are on the grid
 * already; int8 activations are then not fake-quantized). */
void quant_plan_bake(Model *m);
/* Rounds the parameters stored in fp16 to fp16, in place (evaluating "as exported"). */
void quant_plan_round_passthrough(Model *m);
const char *store_name(const ParamPlan *pp, char *buf, size_t n);

/* Used by architectures: a linear layer whose weight (and input) follow the plan while QAT is
 * active, plus the layer's LoRA adapter when one is attached; the plain op otherwise (also when
 * m is NULL: a layer used on its own). */
Tensor *model_weight(Model *m, Tape *tp, Tensor *W);
/* W's quantization spec while QAT is active (NULL otherwise): for layers that quantize their
 * own activations (the GRU cells' recurrent inputs). */
const QuantSpec *model_quant_spec(const Model *m, const Tensor *W);
Tensor *model_linear(Model *m, Tape *tp, Tensor *x, Tensor *W, Tensor *b);

#endif

/* lora_ft.h — LoRA fine-tuning (train.lora, issue 16): the frozen base and its hash, the
 * adapters on top, and reading a LoRA checkpoint back (eval, generate, export --merge-lora).
 *
 * A LoRA run's checkpoints hold the adapters only (/params/lora.<name>.A / .B, their optimizer
 * state) plus the resolved config, whose train.lora names the base checkpoint and the hash of its
 * parameters (model/lora.h lora_params_hash). Resuming, evaluating or exporting loads the base
 * from that path (or one given instead), recomputes the hash and refuses a different base in one
 * line. With quant.qat on, the frozen base is fake-quantized once, in place (quant_plan_bake), and
 * the fp32 adapters train on top of the quantized weights, as QLoRA does (Dettmers et al. 2023). */
#ifndef TERN_LORA_FT_H
#define TERN_LORA_FT_H

#include "model/model.h"
#include "train/runconfig.h"

struct cJSON;

/* Loads the base checkpoint `path` into m's parameters and writes the hash of them (16 hex digits)
 * to hash_out; when expect is non-empty the hash must equal it. */
int lora_open_base(Model *m, const char *path, const char *expect, char hash_out[17], Err *err);
/* Attaches the adapters lc describes (scale alpha / rank, dropout, seeded from seed), A random and
 * B zero; an error when the targets match no 2-D parameter. */
int lora_setup(Model *m, const LoraConfig *lc, uint64_t seed, Err *err);
/* One forward + backward on a short window: every adapter must receive a gradient, i.e. its
 * weight must be applied through a linear layer (not an embedding lookup, a tied head or a
 * kind's own recurrent op). Names the first that does not. */
int lora_check_targets(Model *m, Err *err);
/* Whether a stored run config (a checkpoint's) is a LoRA run's; fills lc when it is. */
int lora_config_of(const struct cJSON *root, LoraConfig *lc, int *is_lora, Err *err);
/* For a LoRA checkpoint whose model m is built (not loaded): the base (base_override, else the
 * stored path; its hash checked against the stored one), the quantized base when the stored
 * quant.qat is on, and the adapters from ckpt (their EMA weights when use_ema). */
int lora_load_checkpoint(Model *m, const char *ckpt, const struct cJSON *root, const char *base_override, int use_ema,
                         Err *err);

#endif

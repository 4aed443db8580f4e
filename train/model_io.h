/* model_io.h — rebuilding a model (and its run config) from a checkpoint. */
#ifndef TERN_MODEL_IO_H
#define TERN_MODEL_IO_H

#include "model/model.h"

struct cJSON;

/* Builds the checkpoint's model and loads its parameters (EMA weights when use_ema and present).
 * *config receives the checkpoint's run config (caller frees with cJSON_Delete). */
int model_load_checkpoint(const char *path, int use_ema, Model **out, struct cJSON **config, Err *err);
/* The same; a LoRA run's checkpoint (train/lora_ft.h) loads its base (base: another path for it,
 * NULL = the stored one; its hash is checked either way) with the adapters attached, unmerged
 * (m->lora; lora_merge folds them). */
int model_load_checkpoint_base(const char *path, int use_ema, const char *base, Model **out, struct cJSON **config, Err *err);

#endif

/* model_io.h — rebuilding a model (and its run config) from a checkpoint. */
#ifndef TERN_MODEL_IO_H
#define TERN_MODEL_IO_H

#include "model/model.h"

struct cJSON;

/* Builds the checkpoint's model and loads its parameters (EMA weights when use_ema and present).
 * *config receives the checkpoint's run config (caller frees with cJSON_Delete). */
int model_load_checkpoint(const char *path, int use_ema, Model **out, struct cJSON **config, Err *err);

#endif

/* Shared helpers for refdump cases and the hook where model cases are added. */
#ifndef TERN_REFDUMP_CASES_H
#define TERN_REFDUMP_CASES_H

#include "autodiff/tensor.h"
#include "data/h5io.h"

Tensor *refdump_load(hid_t f, const char *name, int requires_grad);
void refdump_save(hid_t f, const char *name, const Tensor *t, const float *data);
double refdump_attr(hid_t f, const char *key, double dflt);

#define REFDUMP_EXTRA_CASES

/* one block kind on its own (refdump_block.c) */
int refdump_case_block(hid_t in, hid_t out);

#endif

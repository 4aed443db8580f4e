/* metrics_read.h — a run's metrics.jsonl read back as series, for `tern plot` (train/plot.h).
 *
 * The rows the trainer writes (train/trainer.c), one JSON object a line:
 *   {"step", "train_loss", "lr_mult", "tokens", "tok_per_s", "elapsed_s", ["grad_norm"]}
 *   {"step", "val_loss", ["val_bpb"], "val_tokens", "val_bytes", "eval_seconds"}
 *   {"step", "event": "qat_start" | "resume" | "checkpoint" | "non_finite_skipped" | ...}
 * Validation rows and events carry no tokens or clock (runs from before the "resume" event had
 * none either): those are taken from the train rows — tokens exactly (every step, skipped ones
 * included, adds train.batch_tokens), the clock interpolated linearly in the step. Train and
 * validation rows at a step not after the previous row's (old run folders, resumed before the
 * metrics were cut back to the checkpoint) replace the rows they repeat. */
#ifndef TERN_METRICS_READ_H
#define TERN_METRICS_READ_H

#include <stddef.h>

#include "kernels/util.h"

typedef struct MetricsPoint {
    double step, tokens, seconds; /* where: optimizer step, training tokens seen, wall clock (s) */
    double y;                     /* train_loss, val_loss, or unused for events */
    double bpb;                   /* val_bpb of a validation row; NAN when the row has none */
} MetricsPoint;

typedef struct MetricsSeries {
    MetricsPoint *p;
    size_t n, cap;
} MetricsSeries;

typedef struct RunMetrics {
    char name[256];       /* the run's name for the legend: its folder's name */
    MetricsSeries train;  /* rows with train_loss */
    MetricsSeries val;    /* rows with val_loss */
    MetricsSeries qat;    /* qat_start events */
    MetricsSeries resume; /* resume events */
} RunMetrics;

/* Reads `path`: a run folder (its metrics.jsonl) or a metrics file. A last line without its
 * newline (a run killed mid-write) is dropped; any other line that is not a JSON object with a
 * numeric step, a number of the wrong type, or a file without one train_loss row is one error
 * naming the file (and line). */
int metrics_read(RunMetrics *m, const char *path, Err *err);
void metrics_free(RunMetrics *m);

#endif

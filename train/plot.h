/* plot.h — loss curves of one or many runs as a PNG or SVG picture, drawn with cairo
 * (`tern plot`, and RUN_DIR/loss.png at the end of `tern train`).
 *
 * Two panels side by side over a shared x axis (training tokens, or the wall clock):
 *   left   train loss (nats/token): the logged rows faint, an exponential moving average of them
 *          (beta = PlotOptions.smooth, bias-corrected as Adam's moments and TensorBoard's
 *          smoothing are) drawn over them;
 *   right  val_bpb (bits/byte) with a marker per validation, or val_loss (nats/token) when a
 *          run has no val_bpb (no tokenizer);
 * one colour per run, named in the legend below; the step where quantization-aware training
 * switched on is a dashed vertical line, each resume a dotted one, in the run's colour.
 * Linear axes with ticks at 1-2-5 steps. */
#ifndef TERN_PLOT_H
#define TERN_PLOT_H

#include <stddef.h>

#include "kernels/util.h"
#include "train/metrics_read.h"

#define PLOT_WIDTH 1200  /* pixels (PNG) / points (SVG) */
#define PLOT_HEIGHT 520
#define PLOT_SMOOTH_DEFAULT 0.9

typedef enum { PLOT_X_TOKENS, PLOT_X_SECONDS } PlotXAxis;
typedef enum { PLOT_PNG, PLOT_SVG } PlotFormat;

typedef struct PlotOptions {
    PlotXAxis x;
    double smooth; /* EMA factor beta in [0, 1) for the train loss; 0 = the rows as logged */
} PlotOptions;

typedef struct PlotRect {
    double x, y, w, h; /* top-left corner and size, in pixels */
} PlotRect;

/* Where panel 0 (train loss) or 1 (validation) draws its data: the tests look for pixels there. */
PlotRect plot_panel_rect(int panel);

/* The format named by path's extension (.png / .svg, any case); anything else is an error
 * naming the path. */
int plot_format_of(const char *path, PlotFormat *fmt, Err *err);

/* Axis ticks covering [lo, hi] with about `target` intervals of 1, 2 or 5 times a power of ten:
 * *step, and the first and last tick (*first <= lo, *last >= hi). An empty range is widened. */
void plot_nice_ticks(double lo, double hi, size_t target, double *step, double *first, double *last);

/* out[i] = bias-corrected exponential moving average of x[0..i]:
 * s_i = beta s_{i-1} + (1 - beta) x_i, divided by 1 - beta^(i+1) (out[0] = x[0]). */
void plot_ema(const double *x, size_t n, double beta, double *out);
/* The EMA factor used for a series of n rows: beta, lowered so that the EMA's window
 * (1 / (1 - beta) rows) stays within n / 20; 0 (no smoothing) below 21 rows. */
double plot_ema_beta(double beta, size_t n);

/* Draws the runs and writes the picture to path (format from its extension) atomically: a
 * failure leaves what was there. */
int plot_write(const RunMetrics *runs, size_t n, const PlotOptions *opt, const char *path, Err *err);

/* RUN_DIR/metrics.jsonl -> RUN_DIR/loss.png with the default options (the end of tern train). */
int plot_run_dir(const char *run_dir, Err *err);

#endif

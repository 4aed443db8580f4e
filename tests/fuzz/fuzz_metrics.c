/* libFuzzer target: a run's metrics.jsonl read back for `tern plot` (train/metrics_read.c).
 * The input is the file. What must hold besides no crash, leak or undefined behaviour:
 *   - every error is one line naming the file;
 *   - a file that reads has a train row, no series holds more points than the file has lines,
 *     train and validation steps strictly increase, every point's step and clock are finite and
 *     its tokens a number (the plot's axes are built from them; a value past +-1e300 is
 *     refused, so their differences are finite too). */
#include <math.h>

#include "tests/fuzz/fuzz_common.h"
#include "train/metrics_read.h"

static void check_series(const MetricsSeries *s, size_t lines, const char *what, int ordered) {
    FZ_ASSERT(s->n <= lines, "%zu %s points from %zu lines", s->n, what, lines);
    for (size_t i = 0; i < s->n; i++) {
        const MetricsPoint *p = &s->p[i];
        FZ_ASSERT(!ordered || i == 0 || p->step > s->p[i - 1].step, "%s point %zu: step %g after %g", what, i, p->step,
                  s->p[i - 1].step);
        FZ_ASSERT(isfinite(p->step) && p->step >= 0 && fabs(p->step) <= 1e300, "%s point %zu: step %g", what, i, p->step);
        FZ_ASSERT(isfinite(p->seconds), "%s point %zu: clock %g", what, i, p->seconds);
        FZ_ASSERT(!isnan(p->tokens), "%s point %zu: tokens %g", what, i, p->tokens);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_scratch_path("_metrics.jsonl");
    fz_write_file(path, data, size);
    RunMetrics m;
    Err err;
    if (metrics_read(&m, path, &err) == 0) {
        size_t lines = 0;
        for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
        FZ_ASSERT(m.train.n >= 1, "a metrics file without train rows was accepted");
        check_series(&m.train, lines, "train", 1);
        check_series(&m.val, lines, "val", 1);
        check_series(&m.qat, lines, "qat", 0);
        check_series(&m.resume, lines, "resume", 0);
        metrics_free(&m);
    } else {
        fz_check_error(&err, path);
    }
    return 0;
}

#include "train/metrics_read.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void series_push(MetricsSeries *s, MetricsPoint p) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->p = xrealloc(s->p, s->cap * sizeof *s->p);
    }
    s->p[s->n++] = p;
}

/* A row at a step not after the last one's: a run resumed before resume cut metrics.jsonl back
 * to its checkpoint (run_dir.h) logged those steps again. The later rows win, as the cut-back
 * would have had it, so every series is in strictly increasing step order. */
static void series_push_in_order(MetricsSeries *s, MetricsPoint p) {
    while (s->n > 0 && s->p[s->n - 1].step >= p.step) s->n--;
    series_push(s, p);
}

/* *out = o[key] when it is a number; NAN when absent or null (cJSON writes NaN / Inf as null).
 * Any other type, or a number past +-1e300 (1e999 parses as Inf), is an error: the axes take
 * differences of these. */
static int number_or_nan(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NAN;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= 1e300)) return -1;
    *out = v->valuedouble;
    return 0;
}

static int read_row(RunMetrics *m, const cJSON *o, const char *path, size_t line, Err *err) {
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    MetricsPoint p = {0};
    double val_loss;
    if (!cJSON_IsObject(o) || number_or_nan(o, "step", &p.step) || !isfinite(p.step) || p.step < 0)
        return err_set(err, "%s:%zu: not a metrics row (a JSON object with a step >= 0)", path, line);
    static const char *const keys[] = {"tokens", "elapsed_s", "train_loss", "val_loss", "val_bpb"};
    double *dst[] = {&p.tokens, &p.seconds, &p.y, &val_loss, &p.bpb};
    for (size_t k = 0; k < TERN_ARRAY_LEN(keys); k++)
        if (number_or_nan(o, keys[k], dst[k])) return err_set(err, "%s:%zu: \"%s\" is not a number within +-1e300", path, line, keys[k]);
    if (cJSON_IsString(ev) && !strcmp(ev->valuestring, "qat_start")) series_push(&m->qat, p);
    if (cJSON_IsString(ev) && !strcmp(ev->valuestring, "resume")) series_push(&m->resume, p);
    if (isfinite(p.y)) series_push_in_order(&m->train, p);
    if (isfinite(val_loss)) {
        p.y = val_loss;
        series_push_in_order(&m->val, p);
    }
    return 0;
}

/* Wall clock at `step`, interpolated between the train rows around it (from (0, 0) before the
 * first; the last row's clock after it). */
static double seconds_at(const MetricsSeries *tr, double step) {
    const MetricsPoint *a = NULL;
    for (size_t i = 0; i < tr->n; i++) {
        const MetricsPoint *b = &tr->p[i];
        if (!isfinite(b->seconds)) continue;
        if (b->step >= step) {
            double s0 = a ? a->step : 0, t0 = a ? a->seconds : 0;
            return b->step > s0 ? t0 + (b->seconds - t0) * (step - s0) / (b->step - s0) : b->seconds;
        }
        a = b;
    }
    return a ? a->seconds : 0;
}

static void fill_axes(MetricsSeries *s, const MetricsSeries *tr, double tokens_per_step) {
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->p[i].tokens)) s->p[i].tokens = s->p[i].step * tokens_per_step;
        if (!isfinite(s->p[i].seconds)) s->p[i].seconds = seconds_at(tr, s->p[i].step);
    }
}

static void name_from_path(RunMetrics *m, const char *path, int is_dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    char *base = strrchr(buf, '/');
    if (!is_dir && base && !strcmp(base + 1, "metrics.jsonl")) { /* RUN_DIR/metrics.jsonl: the folder's name */
        *base = 0;
        base = strrchr(buf, '/');
    } else if (!is_dir) {
        char *dot = strrchr(base ? base : buf, '.');
        if (dot && dot != (base ? base + 1 : buf)) *dot = 0;
    }
    snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : buf);
}

static int read_lines(RunMetrics *m, FILE *f, const char *file, Err *err) {
    char *line = NULL;
    size_t cap = 0, no = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        no++;
        if (line[len - 1] != '\n') break; /* a last line cut by a killed writer */
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        cJSON *o = cJSON_Parse(line);
        rc = read_row(m, o, file, no, err);
        cJSON_Delete(o);
    }
    if (!rc && ferror(f)) rc = err_set(err, "%s: read failed (%s)", file, strerror(errno));
    free(line);
    return rc;
}

int metrics_read(RunMetrics *m, const char *path, Err *err) {
    memset(m, 0, sizeof *m);
    struct stat st;
    if (stat(path, &st) != 0) return err_set(err, "%s: no such run folder or metrics file (%s)", path, strerror(errno));
    int is_dir = S_ISDIR(st.st_mode);
    char file[4200];
    snprintf(file, sizeof file, is_dir ? "%s/metrics.jsonl" : "%s", path);
    name_from_path(m, path, is_dir);
    FILE *f = fopen(file, "r");
    if (!f) return err_set(err, "%s: cannot open (%s)", file, strerror(errno));
    int rc = read_lines(m, f, file, err);
    fclose(f);
    if (!rc && m->train.n == 0) rc = err_set(err, "%s: no train_loss rows to plot", file);
    if (rc) {
        metrics_free(m);
        return -1;
    }
    /* tokens = step x train.batch_tokens on every row (skipped steps count too) */
    const MetricsPoint *last = &m->train.p[m->train.n - 1];
    double tokens_per_step = last->step >= 1 && isfinite(last->tokens) ? last->tokens / last->step : 0;
    fill_axes(&m->train, &m->train, tokens_per_step);
    fill_axes(&m->val, &m->train, tokens_per_step);
    fill_axes(&m->qat, &m->train, tokens_per_step);
    fill_axes(&m->resume, &m->train, tokens_per_step);
    return 0;
}

void metrics_free(RunMetrics *m) {
    free(m->train.p);
    free(m->val.p);
    free(m->qat.p);
    free(m->resume.p);
    memset(m, 0, sizeof *m);
}

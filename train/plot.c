#include "train/plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Layout, in pixels: two panels of PANEL_W x PANEL_H, tick labels and axis titles around them,
 * the legend in the strip below. */
#define PANEL_X0 80.0
#define PANEL_GAP 100.0
#define PANEL_Y 46.0
#define PANEL_W 470.0
#define PANEL_H 350.0
#define LEGEND_Y 470.0
#define FONT_SIZE 12.0

/* Tableau 10, the colours matplotlib cycles through */
static const double kPalette[][3] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};

PlotRect plot_panel_rect(int panel) {
    PlotRect r = {PANEL_X0 + (panel ? PANEL_W + PANEL_GAP : 0), PANEL_Y, PANEL_W, PANEL_H};
    return r;
}

int plot_format_of(const char *path, PlotFormat *fmt, Err *err) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash)) {
        if (!strcasecmp(dot, ".png")) return *fmt = PLOT_PNG, 0;
        if (!strcasecmp(dot, ".svg")) return *fmt = PLOT_SVG, 0;
    }
    return err_set(err, "%s: unknown picture format (the name must end in .png or .svg)", path);
}

void plot_nice_ticks(double lo, double hi, size_t target, double *step, double *first, double *last) {
    double scale = fmax(fabs(lo), fabs(hi));
    if (!(hi - lo > 1e-9 * scale)) { /* one value (or a few ulps apart): a range around it */
        double pad = scale > 0 ? scale * 0.1 : 1.0;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / (double)(target ? target : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    const double slack = 1 + 1e-6; /* a span of 0.6000000000000001 over 6 still steps by 0.1 */
    *step = (f <= slack ? 1 : f <= 2 * slack ? 2 : f <= 5 * slack ? 5 : 10) * mag;
    *first = floor(lo / *step + 1e-9) * *step;
    *last = ceil(hi / *step - 1e-9) * *step;
}

double plot_ema_beta(double beta, size_t n) {
    /* an EMA's window is about 1 / (1 - beta) rows: keep it within 1/20 of the run, or a run
     * logged every 20 steps for 300 steps (15 rows) would be drawn lagging its whole length */
    double cap = 1 - 20.0 / (double)(n ? n : 1);
    return beta < cap ? beta : cap > 0 ? cap : 0;
}

void plot_ema(const double *x, size_t n, double beta, double *out) {
    double s = 0, w = 0;
    for (size_t i = 0; i < n; i++) {
        s = beta * s + (1 - beta) * x[i];
        w = beta * w + (1 - beta); /* = 1 - beta^(i+1): the bias correction */
        out[i] = s / w;
    }
}

/* ---------------------------------------------------------------- scene */
typedef struct Axis {
    double lo, hi, step; /* data range covered, tick spacing */
} Axis;

typedef struct Scene {
    const RunMetrics *runs;
    size_t n;
    const PlotOptions *opt;
    double x_div;        /* seconds per wall-clock unit, or tokens per tick-label unit */
    const char *x_title; /* "training tokens", "wall clock (min)", ... */
    const char *x_suffix;
    int val_bpb;         /* every run has val_bpb: plot it; else val_loss */
    Axis x, y[2];
} Scene;

static double x_of(const Scene *s, const MetricsPoint *p) {
    return s->opt->x == PLOT_X_SECONDS ? p->seconds / s->x_div : p->tokens;
}

static double val_of(const Scene *s, const MetricsPoint *p) { return s->val_bpb ? p->bpb : p->y; }

static void range_add(double *lo, double *hi, double v) {
    if (!isfinite(v)) return;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

/* pad: a fraction of the span added on both sides, so that no point sits on the frame */
static void axis_fit(Axis *a, double lo, double hi, double pad) {
    if (!(lo <= hi)) lo = 0, hi = 1; /* nothing to show */
    lo -= pad * (hi - lo);
    hi += pad * (hi - lo);
    double first, last;
    plot_nice_ticks(lo, hi, 6, &a->step, &first, &last);
    a->lo = first;
    a->hi = last;
}

/* The x unit (tokens in k / M / G, or the clock in s / min / h) and every axis's range. */
static void scene_fit(Scene *s) {
    double xlo = 0, xhi = -INFINITY, ylo[2] = {INFINITY, INFINITY}, yhi[2] = {-INFINITY, -INFINITY};
    double max_tokens = 0, max_seconds = 0;
    s->val_bpb = 1;
    for (size_t r = 0; r < s->n; r++) {
        const RunMetrics *m = &s->runs[r];
        for (size_t i = 0; i < m->val.n; i++) s->val_bpb &= isfinite(m->val.p[i].bpb);
        const MetricsPoint *last = &m->train.p[m->train.n - 1];
        max_tokens = fmax(max_tokens, last->tokens);
        max_seconds = fmax(max_seconds, last->seconds);
    }
    if (s->opt->x == PLOT_X_SECONDS) {
        s->x_div = max_seconds > 7200 ? 3600 : max_seconds > 180 ? 60 : 1;
        s->x_title = s->x_div == 3600 ? "wall clock (h)" : s->x_div == 60 ? "wall clock (min)" : "wall clock (s)";
        s->x_suffix = "";
    } else {
        s->x_div = max_tokens >= 1e9 ? 1e9 : max_tokens >= 1e6 ? 1e6 : max_tokens >= 1e3 ? 1e3 : 1;
        s->x_suffix = s->x_div == 1e9 ? "G" : s->x_div == 1e6 ? "M" : s->x_div == 1e3 ? "k" : "";
        s->x_title = "training tokens";
    }
    for (size_t r = 0; r < s->n; r++) {
        const RunMetrics *m = &s->runs[r];
        for (size_t i = 0; i < m->train.n; i++) {
            range_add(&xlo, &xhi, x_of(s, &m->train.p[i]));
            range_add(&ylo[0], &yhi[0], m->train.p[i].y);
        }
        for (size_t i = 0; i < m->val.n; i++) {
            range_add(&xlo, &xhi, x_of(s, &m->val.p[i]));
            range_add(&ylo[1], &yhi[1], val_of(s, &m->val.p[i]));
        }
    }
    axis_fit(&s->x, xlo, xhi, 0); /* from 0 */
    axis_fit(&s->y[0], ylo[0], yhi[0], 0.03);
    axis_fit(&s->y[1], ylo[1], yhi[1], 0.03);
}

/* ---------------------------------------------------------------- drawing */
/* Pixel coordinates, kept within cairo's fixed-point range (points far outside are clipped anyway). */
static double clamp_px(double v) { return isfinite(v) ? fmax(-1e5, fmin(1e5, v)) : -1e5; }

static double px(const Scene *s, const PlotRect *r, double x) {
    return clamp_px(r->x + (x - s->x.lo) / (s->x.hi - s->x.lo) * r->w);
}

static double py(const Axis *a, const PlotRect *r, double y) { return clamp_px(r->y + r->h - (y - a->lo) / (a->hi - a->lo) * r->h); }

static void set_color(cairo_t *cr, size_t run, double alpha) {
    const double *c = kPalette[run % TERN_ARRAY_LEN(kPalette)];
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

/* Text with its anchor at (x, y): ax / ay = 0 left / top, 0.5 centre, 1 right / bottom. */
static void text_at(cairo_t *cr, const char *t, double x, double y, double ax, double ay) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, t, &e);
    cairo_move_to(cr, x - ax * e.x_advance, y + (1 - ay) * FONT_SIZE * 0.8); /* 0.8: the ascent */
    cairo_show_text(cr, t);
}

/* A tick label: the value in the axis's unit with as many decimals as the step needs. */
static void tick_label(double v, double step, double div, const char *suffix, char *buf, size_t n) {
    double u = step / div;
    int dec = u >= 1 ? 0 : (int)fmin(6, ceil(-log10(u) - 1e-9));
    if (fabs(v) < step * 1e-9) {
        snprintf(buf, n, "0");
        return;
    }
    snprintf(buf, n, "%.*f%s", dec, v / div, suffix);
}

/* Intervals between the axis's first and last tick (counted, not stepped: v += step can stall
 * where step is below v's resolution). */
static size_t ticks(const Axis *a) { return (size_t)fmin(100, fmax(0, floor((a->hi - a->lo) / a->step + 0.5))); }

static void draw_grid(cairo_t *cr, const Scene *s, const PlotRect *r, const Axis *y) {
    char buf[64];
    cairo_set_line_width(cr, 1);
    for (size_t i = 0; i <= ticks(&s->x); i++) {
        double v = s->x.lo + (double)i * s->x.step, x = round(px(s, r, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, x, r->y);
        cairo_line_to(cr, x, r->y + r->h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
        tick_label(v, s->x.step, s->opt->x == PLOT_X_SECONDS ? 1 : s->x_div, s->x_suffix, buf, sizeof buf);
        text_at(cr, buf, x, r->y + r->h + 6, 0.5, 0);
    }
    for (size_t i = 0; i <= ticks(y); i++) {
        double v = y->lo + (double)i * y->step, yy = round(py(y, r, v)) + 0.5;
        cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
        cairo_move_to(cr, r->x, yy);
        cairo_line_to(cr, r->x + r->w, yy);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
        tick_label(v, y->step, 1, "", buf, sizeof buf);
        text_at(cr, buf, r->x - 6, yy - FONT_SIZE * 0.4, 1, 0);
    }
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_rectangle(cr, r->x + 0.5, r->y + 0.5, r->w, r->h);
    cairo_stroke(cr);
}

static void draw_titles(cairo_t *cr, const Scene *s, const PlotRect *r, const char *title, const char *y_title) {
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_at(cr, title, r->x + r->w / 2, r->y - 24, 0.5, 0);
    text_at(cr, s->x_title, r->x + r->w / 2, r->y + r->h + 26, 0.5, 0);
    cairo_save(cr);
    cairo_translate(cr, r->x - 58, r->y + r->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, y_title, 0, -FONT_SIZE * 0.4, 0.5, 0);
    cairo_restore(cr);
}

/* One polyline through the points of a series (y from `y[i]`) in run k's colour at `alpha`, `width`
 * pixels wide; a dot at each point if `dots`. */
static void draw_series(cairo_t *cr, const Scene *s, const PlotRect *r, const Axis *a, const MetricsSeries *ser,
                        const double *y, size_t k, double alpha, double width, int dots) {
    int pen = 0;
    set_color(cr, k, alpha);
    cairo_set_line_width(cr, width);
    for (size_t i = 0; i < ser->n; i++) {
        if (!isfinite(y[i])) continue;
        double x0 = px(s, r, x_of(s, &ser->p[i])), y0 = py(a, r, y[i]);
        if (pen) cairo_line_to(cr, x0, y0);
        else cairo_move_to(cr, x0, y0);
        pen = 1;
    }
    cairo_stroke(cr);
    for (size_t i = 0; dots && i < ser->n; i++) {
        if (!isfinite(y[i])) continue;
        cairo_arc(cr, px(s, r, x_of(s, &ser->p[i])), py(a, r, y[i]), 3, 0, 2 * M_PI);
        cairo_fill(cr);
    }
}

/* The QAT switch (dashed) and resumes (dotted) of run `k` as vertical lines across panel r. */
static void draw_events(cairo_t *cr, const Scene *s, const PlotRect *r, size_t k) {
    const RunMetrics *m = &s->runs[k];
    static const double kDash[] = {6, 4}, kDot[] = {2, 3};
    const MetricsSeries *sers[2] = {&m->qat, &m->resume};
    const char *labels[2] = {"QAT", "resume"};
    for (int e = 0; e < 2; e++) {
        cairo_set_dash(cr, e ? kDot : kDash, 2, 0);
        for (size_t i = 0; i < sers[e]->n; i++) {
            double x = round(px(s, r, x_of(s, &sers[e]->p[i]))) + 0.5;
            set_color(cr, k, 0.9);
            cairo_set_line_width(cr, 1.5);
            cairo_move_to(cr, x, r->y);
            cairo_line_to(cr, x, r->y + r->h);
            cairo_stroke(cr);
            text_at(cr, labels[e], x + 3, r->y + 3 + 14 * (double)(k % 4), 0, 0);
        }
    }
    cairo_set_dash(cr, NULL, 0, 0);
}

static void draw_train_panel(cairo_t *cr, const Scene *s) {
    PlotRect r = plot_panel_rect(0);
    char title[96];
    if (s->opt->smooth > 0) snprintf(title, sizeof title, "train loss (faint: as logged; line: EMA, beta <= %.2f, window <= 5%% of rows)", s->opt->smooth);
    else snprintf(title, sizeof title, "train loss (as logged)");
    draw_titles(cr, s, &r, title, "train loss (nats / token)");
    draw_grid(cr, s, &r, &s->y[0]);
    cairo_save(cr);
    cairo_rectangle(cr, r.x, r.y, r.w, r.h);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (size_t k = 0; k < s->n; k++) {
        const MetricsSeries *tr = &s->runs[k].train;
        double *y = xmalloc(tr->n * sizeof *y), *ema = xmalloc(tr->n * sizeof *ema);
        for (size_t i = 0; i < tr->n; i++) y[i] = tr->p[i].y;
        plot_ema(y, tr->n, plot_ema_beta(s->opt->smooth, tr->n), ema);
        draw_series(cr, s, &r, &s->y[0], tr, y, k, 0.3, 1, 0);
        draw_series(cr, s, &r, &s->y[0], tr, ema, k, 1, 2, 0);
        draw_events(cr, s, &r, k);
        xfree(y);
        xfree(ema);
    }
    cairo_restore(cr);
}

static void draw_val_panel(cairo_t *cr, const Scene *s) {
    PlotRect r = plot_panel_rect(1);
    const char *name = s->val_bpb ? "val_bpb" : "val_loss";
    draw_titles(cr, s, &r, name, s->val_bpb ? "val_bpb (bits / byte)" : "val_loss (nats / token)");
    draw_grid(cr, s, &r, &s->y[1]);
    size_t nval = 0;
    for (size_t k = 0; k < s->n; k++) nval += s->runs[k].val.n;
    if (nval == 0) {
        cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
        text_at(cr, "no validation rows", r.x + r.w / 2, r.y + r.h / 2, 0.5, 0.5);
        return;
    }
    cairo_save(cr);
    cairo_rectangle(cr, r.x, r.y, r.w, r.h);
    cairo_clip(cr);
    for (size_t k = 0; k < s->n; k++) {
        const MetricsSeries *v = &s->runs[k].val;
        double *y = xmalloc((v->n ? v->n : 1) * sizeof *y);
        for (size_t i = 0; i < v->n; i++) y[i] = val_of(s, &v->p[i]);
        draw_series(cr, s, &r, &s->y[1], v, y, k, 1, 2, 1);
        draw_events(cr, s, &r, k);
        xfree(y);
    }
    cairo_restore(cr);
}

/* Run names with their colour, then what the dashed and dotted lines mean (when there are any);
 * wraps at the edge. */
static void draw_legend(cairo_t *cr, const Scene *s) {
    double x = PANEL_X0, y = LEGEND_Y;
    int qat = 0, resume = 0;
    for (size_t k = 0; k < s->n; k++) {
        qat |= s->runs[k].qat.n > 0;
        resume |= s->runs[k].resume.n > 0;
    }
    const char *note = qat && resume ? "- - - QAT switched on     . . . resumed here"
                       : qat         ? "- - - QAT switched on"
                       : resume      ? ". . . resumed here"
                                     : "";
    for (size_t k = 0; k <= s->n; k++) {
        const char *name = k < s->n ? s->runs[k].name : note;
        cairo_text_extents_t e;
        cairo_text_extents(cr, name, &e);
        if (x + 30 + e.x_advance > PLOT_WIDTH - 20 && x > PANEL_X0) x = PANEL_X0, y += 18;
        if (k < s->n) {
            set_color(cr, k, 1);
            cairo_rectangle(cr, x, y + 4, 22, 4);
            cairo_fill(cr);
            x += 28;
        }
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        text_at(cr, name, x, y, 0, 0);
        x += e.x_advance + 24;
    }
}

static void draw_scene(cairo_t *cr, const Scene *s) {
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, FONT_SIZE);
    draw_train_panel(cr, s);
    draw_val_panel(cr, s);
    draw_legend(cr, s);
}

/* ---------------------------------------------------------------- output */
/* LeakSanitizer's hook (read in sanitizer builds only): fontconfig, which cairo asks for fonts,
 * keeps its parsed configuration for the life of the process on purpose (FcFini would free it,
 * but only a program that owns every fontconfig user may call it). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
const char *__lsan_default_options(void); /* and no table of what was suppressed on stderr */
const char *__lsan_default_options(void) { return "print_suppressions=0"; }

typedef struct ByteBuf {
    unsigned char *p;
    size_t n, cap;
} ByteBuf;

static cairo_status_t buf_write(void *closure, const unsigned char *data, unsigned int len) {
    ByteBuf *b = closure;
    if (b->n + len > b->cap) {
        b->cap = TERN_MAX(2 * b->cap, b->n + len);
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return CAIRO_STATUS_SUCCESS;
}

/* The picture's bytes in `out` (PNG or SVG); cairo's own failures become an error. */
static int render(const Scene *s, PlotFormat fmt, ByteBuf *out, Err *err) {
    cairo_surface_t *sf = fmt == PLOT_SVG ? cairo_svg_surface_create_for_stream(buf_write, out, PLOT_WIDTH, PLOT_HEIGHT)
                                          : cairo_image_surface_create(CAIRO_FORMAT_ARGB32, PLOT_WIDTH, PLOT_HEIGHT);
    cairo_t *cr = cairo_create(sf);
    draw_scene(cr, s);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS && fmt == PLOT_PNG) st = cairo_surface_write_to_png_stream(sf, buf_write, out);
    cairo_surface_finish(sf); /* the SVG surface writes its document here */
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS) return err_set(err, "cairo could not draw the plot: %s", cairo_status_to_string(st));
    return 0;
}

int plot_write(const RunMetrics *runs, size_t n, const PlotOptions *opt, const char *path, Err *err) {
    PlotFormat fmt;
    if (plot_format_of(path, &fmt, err)) return -1;
    if (n == 0) return err_set(err, "%s: no runs to plot", path);
    if (!(opt->smooth >= 0 && opt->smooth < 1)) return err_set(err, "the smoothing factor must be in [0, 1), got %g", opt->smooth);
    Scene s = {.runs = runs, .n = n, .opt = opt};
    scene_fit(&s);
    ByteBuf b = {0};
    int rc = render(&s, fmt, &b, err);
    if (!rc) rc = write_file_atomic(path, b.p, b.n, err);
    xfree(b.p);
    return rc;
}

int plot_run_dir(const char *run_dir, Err *err) {
    RunMetrics m;
    if (metrics_read(&m, run_dir, err)) return -1;
    PlotOptions opt = {PLOT_X_TOKENS, PLOT_SMOOTH_DEFAULT};
    char path[4200];
    snprintf(path, sizeof path, "%s/loss.png", run_dir);
    int rc = plot_write(&m, 1, &opt, path, err);
    metrics_free(&m);
    return rc;
}

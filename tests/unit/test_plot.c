/* Plots (train/plot.h, train/metrics_read.h): tick steps and the EMA against known answers, a
 * known metrics file read back (tokens and clock of events taken from the train rows), and its
 * picture: PNG of the stated size read back with cairo, with run-coloured pixels inside both
 * panels — and none in the validation panel for a run without validation rows —, SVG that is an
 * XML document, and one-line errors for missing / corrupt files, unknown extensions and an
 * unwritable path. */
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "train/metrics_read.h"
#include "train/plot.h"

static void test_ticks(void) {
    static const struct {
        double lo, hi;
        size_t target;
        double step, first, last;
    } cases[] = {
        {0, 9.3, 5, 2, 0, 10},          {0.13, 0.87, 6, 0.2, 0, 1.0}, {3.2, 3.2, 6, 0.2, 2.8, 3.6},
        {0, 1.2e6, 6, 2e5, 0, 1.2e6},   {2.31, 7.05, 6, 1, 2, 8},     {-3, 17, 4, 5, -5, 20},
        {3.0, 3.0000000000000004, 6, 0.1, 2.7, 3.3}, /* one ulp apart: a step of 1e-16 would never advance */
    };
    for (size_t i = 0; i < TERN_ARRAY_LEN(cases); i++) {
        double step, first, last;
        plot_nice_ticks(cases[i].lo, cases[i].hi, cases[i].target, &step, &first, &last);
        double tol = 1e-9 * fmax(1, fabs(cases[i].last));
        CHECK(fabs(step - cases[i].step) < tol && fabs(first - cases[i].first) < tol && fabs(last - cases[i].last) < tol,
              "ticks of [%g, %g]: step %g from %g to %g, expected %g from %g to %g", cases[i].lo, cases[i].hi, step,
              first, last, cases[i].step, cases[i].first, cases[i].last);
    }
    printf("  nice ticks: %zu known answers\n", TERN_ARRAY_LEN(cases));
}

static void test_ema(void) {
    double x[4] = {0, 1, 1, 1}, out[4];
    plot_ema(x, 2, 0.5, out); /* s = 0, 0.5; weights 0.5, 0.75 */
    CHECK(out[0] == 0 && fabs(out[1] - 2.0 / 3.0) < 1e-15, "ema of [0, 1] at 0.5: %g %g", out[0], out[1]);
    plot_ema(x + 1, 3, 0.9, out); /* a constant stays itself: the bias correction */
    CHECK(fabs(out[0] - 1) < 1e-15 && fabs(out[2] - 1) < 1e-15, "ema of a constant: %g %g", out[0], out[2]);
    plot_ema(x, 4, 0, out);
    CHECK(out[1] == 1 && out[0] == 0, "beta 0 leaves the rows as they are");
    CHECK(plot_ema_beta(0.9, 1000) == 0.9 && fabs(plot_ema_beta(0.9, 100) - 0.8) < 1e-12 && plot_ema_beta(0.9, 15) == 0 &&
              plot_ema_beta(0.9, 0) == 0,
          "ema factor capped by the run length: %g %g %g", plot_ema_beta(0.9, 1000), plot_ema_beta(0.9, 100), plot_ema_beta(0.9, 15));
    printf("  ema: known answers\n");
}

/* A run's metrics as the trainer writes them: 40 train rows (batch 256 tokens, 0.5 s a step),
 * validation every 10 steps, QAT from step 20, a checkpoint and a resume at 30, and the cut last
 * line of a killed writer. */
static void write_fixture(const char *path, int with_val) {
    FILE *f = fopen(path, "w");
    for (int s = 1; s <= 40; s++) {
        fprintf(f, "{\"step\":%d,\"train_loss\":%.4f,\"lr_mult\":1,\"tokens\":%d,\"tok_per_s\":512,\"elapsed_s\":%.2f}\n",
                s, 2.0 + 3.0 * exp(-s / 8.0) + 0.1 * sin(s), 256 * s, 0.5 * s);
        if (with_val && s % 10 == 0)
            fprintf(f, "{\"step\":%d,\"val_loss\":%.4f,\"val_bpb\":%.4f,\"val_tokens\":4096}\n", s, 2.5 + 10.0 / s, 1.2 + 4.0 / s);
        if (s == 20) fprintf(f, "{\"step\":20,\"event\":\"qat_start\",\"lr_mult\":0.5}\n");
        if (s == 30) fprintf(f, "{\"step\":30,\"event\":\"checkpoint\"}\n{\"step\":30,\"event\":\"resume\",\"tokens\":7680,\"elapsed_s\":15}\n");
    }
    fprintf(f, "{\"step\":41,\"train_lo");
    fclose(f);
}

/* An old run folder resumed before metrics were cut back: steps 4 and 5 logged twice. */
static void test_read_repeated(const char *tmp) {
    char path[256];
    snprintf(path, sizeof path, "%s/old.jsonl", tmp);
    FILE *f = fopen(path, "w");
    for (int s = 1; s <= 5; s++) fprintf(f, "{\"step\":%d,\"train_loss\":3,\"tokens\":%d,\"elapsed_s\":%d}\n", s, 64 * s, s);
    for (int s = 4; s <= 6; s++) fprintf(f, "{\"step\":%d,\"train_loss\":2,\"tokens\":%d,\"elapsed_s\":%d}\n", s, 64 * s, s + 10);
    fclose(f);
    Err err = {0};
    RunMetrics m;
    int rc = metrics_read(&m, path, &err);
    CHECK(rc == 0, "metrics_read: %s", err.msg);
    if (!rc) {
        int ok = m.train.n == 6 && !strcmp(m.name, "old");
        for (size_t i = 0; ok && i < m.train.n; i++) ok = m.train.p[i].step == (double)(i + 1) && m.train.p[i].y == (i < 3 ? 3 : 2);
        CHECK(ok, "the repeated steps replaced: %zu rows", m.train.n);
        metrics_free(&m);
    }
    unlink(path);
    printf("  an old resumed run's repeated steps: the later rows kept\n");
}

static void test_read(const char *dir) {
    Err err = {0};
    RunMetrics m;
    int rc = metrics_read(&m, dir, &err);
    CHECK(rc == 0, "metrics_read: %s", err.msg);
    if (rc) return;
    CHECK(!strcmp(m.name, "alpha"), "name from the folder: '%s'", m.name);
    CHECK(m.train.n == 40 && m.val.n == 4 && m.qat.n == 1 && m.resume.n == 1, "rows: train %zu val %zu qat %zu resume %zu",
          m.train.n, m.val.n, m.qat.n, m.resume.n);
    if (m.qat.n == 1 && m.val.n == 4) {
        CHECK(m.qat.p[0].tokens == 20 * 256 && fabs(m.qat.p[0].seconds - 10) < 1e-12,
              "QAT at step 20: %g tokens %g s, expected 5120 and 10", m.qat.p[0].tokens, m.qat.p[0].seconds);
        CHECK(m.val.p[1].tokens == 20 * 256 && fabs(m.val.p[1].bpb - 1.4) < 1e-12, "val row 2: %g tokens bpb %g",
              m.val.p[1].tokens, m.val.p[1].bpb);
    }
    metrics_free(&m);
    printf("  metrics read back: 40 train rows, 4 validations, QAT at 5120 tokens, cut last line dropped\n");
}

/* Pixels of a data colour (not the greys of grid, axes and text) inside a panel. */
static size_t coloured_pixels(cairo_surface_t *img, int panel) {
    PlotRect r = plot_panel_rect(panel);
    const unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    size_t n = 0;
    for (int y = (int)r.y + 2; y < (int)(r.y + r.h) - 1; y++)
        for (int x = (int)r.x + 2; x < (int)(r.x + r.w) - 1; x++) {
            uint32_t p = *(const uint32_t *)(data + (size_t)y * (size_t)stride + 4 * (size_t)x);
            int R = (p >> 16) & 255, G = (p >> 8) & 255, B = p & 255;
            int hi = R > G ? (R > B ? R : B) : (G > B ? G : B), lo = R < G ? (R < B ? R : B) : (G < B ? G : B);
            n += hi - lo > 60;
        }
    return n;
}

static void test_png(const char *dir, const char *png, int with_val) {
    Err err = {0};
    RunMetrics m;
    PlotOptions opt = {PLOT_X_TOKENS, PLOT_SMOOTH_DEFAULT};
    int rc = metrics_read(&m, dir, &err) || plot_write(&m, 1, &opt, png, &err);
    CHECK(rc == 0, "plot %s: %s", png, err.msg);
    if (!rc) metrics_free(&m);
    cairo_surface_t *img = cairo_image_surface_create_from_png(png);
    CHECK(cairo_surface_status(img) == CAIRO_STATUS_SUCCESS, "read back %s: %s", png,
          cairo_status_to_string(cairo_surface_status(img)));
    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
        int w = cairo_image_surface_get_width(img), h = cairo_image_surface_get_height(img);
        CHECK(w == PLOT_WIDTH && h == PLOT_HEIGHT, "size %dx%d, expected %dx%d", w, h, PLOT_WIDTH, PLOT_HEIGHT);
        size_t left = coloured_pixels(img, 0), right = coloured_pixels(img, 1);
        CHECK(left > 500, "train panel: %zu coloured pixels", left);
        if (with_val) CHECK(right > 100, "validation panel: %zu coloured pixels", right);
        else CHECK(right == 0, "validation panel of a run without validation: %zu coloured pixels", right);
        printf("  %s: %dx%d, coloured pixels: train panel %zu, validation panel %zu\n", with_val ? "run" : "run without val",
               w, h, left, right);
    }
    cairo_surface_destroy(img);
}

static void test_svg(const char *dir, const char *svg) {
    Err err = {0};
    RunMetrics m[2];
    PlotOptions opt = {PLOT_X_SECONDS, 0.5};
    int rc = metrics_read(&m[0], dir, &err) || metrics_read(&m[1], dir, &err) || plot_write(m, 2, &opt, svg, &err);
    CHECK(rc == 0, "plot %s: %s", svg, err.msg);
    if (rc) return;
    metrics_free(&m[0]);
    metrics_free(&m[1]);
    char head[64] = {0};
    FILE *f = fopen(svg, "r");
    size_t n = f ? fread(head, 1, sizeof head - 1, f) : 0;
    if (f) fclose(f);
    CHECK(n > 5 && (!strncmp(head, "<?xml", 5) || !strncmp(head, "<svg", 4)), "%s starts with '%.20s'", svg, head);
    printf("  svg of two runs against the clock: starts with '%.5s'\n", head);
}

/* Each bad input is one error line that names the file (and the line for a corrupt row). */
static void expect_fail(int rc, const Err *err, const char *must_name, const char *what) {
    CHECK(rc != 0 && strstr(err->msg, must_name) && !strchr(err->msg, '\n'), "%s: rc %d, '%s'", what, rc, err->msg);
    printf("  %s -> %s\n", what, err->msg);
}

static void test_errors(const char *tmp, const char *dir) {
    char path[512], png[512];
    Err err = {0};
    RunMetrics m;
    snprintf(path, sizeof path, "%s/missing", tmp);
    expect_fail(metrics_read(&m, path, &err), &err, "missing: no such run folder", "missing run folder");
    snprintf(path, sizeof path, "%s/corrupt.jsonl", tmp);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"step\":1,\"train_loss\":3.0,\"tokens\":64}\n\x01\x02garbage\n");
    fclose(f);
    expect_fail(metrics_read(&m, path, &err), &err, "corrupt.jsonl:2", "corrupt row");
    f = fopen(path, "w");
    fprintf(f, "{\"step\":1,\"train_loss\":\"x\"}\n");
    fclose(f);
    expect_fail(metrics_read(&m, path, &err), &err, "train_loss", "a loss that is a string");
    f = fopen(path, "w");
    fclose(f);
    expect_fail(metrics_read(&m, path, &err), &err, "corrupt.jsonl", "an empty file");
    unlink(path);
    PlotFormat fmt;
    expect_fail(plot_format_of("loss.jpg", &fmt, &err), &err, "loss.jpg", "unknown extension");
    if (metrics_read(&m, dir, &err) == 0) {
        PlotOptions opt = {PLOT_X_TOKENS, PLOT_SMOOTH_DEFAULT};
        snprintf(png, sizeof png, "%s/no/such/folder/loss.png", tmp);
        expect_fail(plot_write(&m, 1, &opt, png, &err), &err, png, "unwritable path");
        metrics_free(&m);
    }
}

int main(void) {
    char tmp[] = "/tmp/tern_test_plot_XXXXXX", dir[128], file[192], png[192], png2[192], svg[192];
    if (!mkdtemp(tmp)) return 1;
    snprintf(dir, sizeof dir, "%s/alpha", tmp);
    snprintf(file, sizeof file, "%s/metrics.jsonl", dir);
    snprintf(png, sizeof png, "%s/loss.png", dir);
    snprintf(png2, sizeof png2, "%s/noval.png", tmp);
    snprintf(svg, sizeof svg, "%s/two.svg", tmp);
    if (mkdir(dir, 0755) != 0) return 1;
    test_ticks();
    test_ema();
    write_fixture(file, 1);
    test_read(dir);
    test_read_repeated(tmp);
    test_png(dir, png, 1);
    test_svg(dir, svg);
    test_errors(tmp, dir);
    write_fixture(file, 0);
    test_png(file, png2, 0);
    const char *made[] = {file, png, png2, svg};
    for (size_t i = 0; i < TERN_ARRAY_LEN(made); i++) unlink(made[i]);
    rmdir(dir);
    rmdir(tmp);
    return test_summary("test_plot");
}

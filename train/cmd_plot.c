/* tern plot RUN_DIR... [-o FILE.png|.svg] [--time] [--smooth B]: the loss curves of one or many
 * runs in one picture (train/plot.h says what is drawn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/util.h"
#include "train/cli.h"
#include "train/plot.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern plot RUN_DIR... [options]\n"
            "  -o FILE.png|.svg  where to write (default RUN_DIR/loss.png for one run; needed for several)\n"
            "  --time            x axis: the wall clock instead of training tokens\n"
            "  --smooth B        EMA factor of the train-loss line, in [0, 1) (default %.2f; 0 = as logged)\n"
            "Left: train loss (the logged rows faint, their bias-corrected EMA over them); right: val_bpb\n"
            "(val_loss for runs without a tokenizer); one colour per run, named after its folder; the QAT\n"
            "switch dashed, resumes dotted. RUN_DIR may also be a metrics.jsonl file.\n",
            PLOT_SMOOTH_DEFAULT);
}

typedef struct PlotArgs {
    const char **runs;
    size_t nruns;
    const char *out;
    PlotOptions opt;
} PlotArgs;

/* 0 = go on, otherwise the exit status of a usage error; *done after --help */
static int parse_args(int argc, char **argv, PlotArgs *a, int *done) {
    *done = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            *done = 1;
            return 0;
        } else if (!strcmp(argv[i], "-o")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tern plot: -o needs a value\n");
                return 2;
            }
            a->out = argv[++i];
        } else if ((v = cli_value(argc, argv, &i, "output"))) {
            a->out = v;
        } else if ((v = cli_value(argc, argv, &i, "smooth"))) {
            char *end;
            a->opt.smooth = strtod(v, &end);
            if (end == v || *end || !(a->opt.smooth >= 0 && a->opt.smooth < 1)) {
                fprintf(stderr, "tern plot: --smooth must be a number in [0, 1), got '%s'\n", v);
                return 2;
            }
        } else if (cli_is_flag(argv[i], "time")) {
            a->opt.x = PLOT_X_SECONDS;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tern plot: unknown option %s (see --help)\n", argv[i]);
            return 2;
        } else {
            a->runs[a->nruns++] = argv[i];
        }
    }
    return 0;
}

int cmd_plot(int argc, char **argv) {
    PlotArgs a = {.runs = calloc((size_t)argc, sizeof(char *)), .opt = {PLOT_X_TOKENS, PLOT_SMOOTH_DEFAULT}};
    int done, status = parse_args(argc, argv, &a, &done);
    if (!status && !done && a.nruns == 0) {
        usage(stderr);
        status = 2;
    } else if (!status && !done && !a.out && a.nruns > 1) {
        fprintf(stderr, "tern plot: %zu runs: name the picture with -o FILE.png|.svg\n", a.nruns);
        status = 2;
    }
    if (status || done) {
        free(a.runs);
        return status;
    }
    char def[4200];
    if (!a.out) {
        snprintf(def, sizeof def, "%s/loss.png", a.runs[0]);
        a.out = def;
    }
    Err err = {0};
    PlotFormat fmt;
    RunMetrics *m = xcalloc(a.nruns, sizeof *m);
    size_t nread = 0;
    int rc = plot_format_of(a.out, &fmt, &err); /* before reading: a typo costs nothing */
    while (!rc && nread < a.nruns) {
        rc = metrics_read(&m[nread], a.runs[nread], &err);
        nread += rc == 0;
    }
    if (!rc) rc = plot_write(m, a.nruns, &a.opt, a.out, &err);
    if (rc) fprintf(stderr, "tern plot: %s\n", err.msg);
    else fprintf(stderr, "tern plot: wrote %s (%zu run%s)\n", a.out, a.nruns, a.nruns == 1 ? "" : "s");
    for (size_t i = 0; i < nread; i++) metrics_free(&m[i]);
    xfree(m);
    free(a.runs);
    return rc ? 1 : 0;
}

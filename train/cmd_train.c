/* tern train CONFIG.json [--set key=value ...] [--resume RUN_DIR] [--overwrite] [--stop-after N]
 *            [--threads N] [--json] [--quiet] */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/cli.h"
#include "train/dist.h"
#include "train/plot.h"
#include "train/run_dir.h"
#include "train/trainer.h"

static volatile sig_atomic_t g_stop; /* the one piece of process state a signal handler needs */

/* The first SIGINT/SIGTERM asks for a clean stop (finish the step, checkpoint); a second one,
 * when that takes too long (a long validation), ends the process at once. */
static void on_signal(int sig) {
    if (g_stop) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_stop = sig;
}

/* One error line per failure: in a world of several ranks the ranks first agree (two small
 * all-reduces, made at the same points by every rank) whether any failed and whether all failed
 * alike; an error every rank hit alike is printed once by rank 0, any other with its rank. */
static uint64_t msg_hash(const char *m) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *m; m++) h = (h ^ (unsigned char)*m) * 1099511628211ull;
    return h | 1;
}

static int agree_failure(const Dist *d, int failed, const char *msg, int *print, int *prefix) {
    uint64_t flo, fhi, hlo, hhi;
    dist_minmax_u64(d, failed ? 1 : 0, &flo, &fhi);
    dist_minmax_u64(d, failed && msg[0] ? msg_hash(msg) : 0, &hlo, &hhi);
    int alike = flo == 1 && hlo == hhi;
    *print = failed && msg[0] && (!alike || d->rank == 0);
    *prefix = d->world > 1 && !alike;
    return fhi != 0;
}

/* Rank 0, the only writer, takes the run folder; every rank learns whether it could (one agreement
 * point). Non-zero: every rank stops. */
static int hold_run_dir(const Dist *d, const char *run_dir, int refuse_existing, RunLock *lock, Err *err, int *print, int *prefix) {
    int bad = d->rank == 0 && run_dir_lock(lock, run_dir, refuse_existing, err) != 0;
    if (!bad) err->msg[0] = 0;
    return agree_failure(d, bad, err->msg, print, prefix);
}

static void report(const Dist *d, int prefix, const char *msg) {
    if (prefix) fprintf(stderr, "tern train [rank %d/%d]: %s\n", d->rank, d->world, msg);
    else fprintf(stderr, "tern train: %s\n", msg);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: tern train [CONFIG.json] [options]\n"
            "  --set KEY=VALUE   override any config key (repeatable), e.g. --set train.max_steps=200\n"
            "  --resume RUN_DIR  continue RUN_DIR/ckpt/latest.h5 in RUN_DIR, wherever it was moved (CONFIG optional:\n"
            "                    the checkpoint's config is used; metrics.jsonl is cut back to the checkpoint's step)\n"
            "  --overwrite       reuse an existing run folder instead of refusing\n"
            "  --stop-after N    stop (with a checkpoint) after step N without changing the schedule\n"
            "  --threads N       OpenMP/BLAS threads (same as --set threads=N)\n"
            "  --json            print the final summary as one JSON object on stdout\n"
            "  --quiet           no progress output\n"
            "  --dry-run         resolve and check the config (model, optimizer groups, data), print the\n"
            "                    resolved config as JSON on stdout and the memory estimate on stderr, and\n"
            "                    exit without training\n"
            "Writes runs/NAME/{config.json, metrics.jsonl, summary.json, loss.png, ckpt/step_N.h5, ckpt/latest.h5}\n"
            "(loss.png: tern plot's picture; --set train.plot=false skips it), keeping the\n"
            "newest train.keep_ckpts (3) step_N.h5; one tern train per run folder (RUN_DIR/lock names the holder).\n"
            "SIGINT/SIGTERM: finish the step, write a checkpoint, exit 130/143 (a second signal ends it at once).\n"
            "A run whose last steps were non-finite, or whose parameters are, fails (exit 1, summary status \"failed\").\n");
}

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *resume = NULL;
    char **sets = calloc((size_t)argc + 2, sizeof(char *));
    int nsets = 0, json = 0, quiet = 0, overwrite = 0, dry = 0;
    uint64_t stop_after = 0;
    char threads_set[64];
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_flag(argv[i], "help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            free(sets);
            return 0;
        } else if ((v = cli_value(argc, argv, &i, "set"))) {
            if (!strchr(v, '=') || v[0] == '=') {
                fprintf(stderr, "tern train: --set %s: expected key.path=value\n", v);
                free(sets);
                return 2;
            }
            sets[nsets++] = (char *)v;
        } else if ((v = cli_value(argc, argv, &i, "resume"))) {
            resume = v;
        } else if ((v = cli_value(argc, argv, &i, "stop-after"))) {
            stop_after = strtoull(v, NULL, 10);
        } else if ((v = cli_value(argc, argv, &i, "threads"))) {
            snprintf(threads_set, sizeof threads_set, "threads=%s", v);
            sets[nsets++] = threads_set;
        } else if (cli_is_flag(argv[i], "json")) {
            json = 1;
        } else if (cli_is_flag(argv[i], "quiet")) {
            quiet = 1;
        } else if (cli_is_flag(argv[i], "overwrite")) {
            overwrite = 1;
        } else if (cli_is_flag(argv[i], "dry-run")) {
            dry = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tern train: unknown option %s (see --help)\n", argv[i]);
            free(sets);
            return 2;
        } else if (!config) {
            config = argv[i];
        } else {
            fprintf(stderr, "tern train: more than one config given (%s)\n", argv[i]);
            free(sets);
            return 2;
        }
    }
    if (!config && !resume && nsets == 0) {
        usage(stderr);
        free(sets);
        return 2;
    }
    Err err = {0};
    RunConfig rc;
    char ckpt[1100];
    int status = 1;
    Dist dist;
    int agreed = 0;                /* the ranks already agreed that the run fails */
    int print_err = 1, prefix = 0; /* set by agree_failure */
    if (dist_init(&dist, &argc, &argv, err.msg, sizeof err.msg)) {
        fprintf(stderr, "tern train: %s\n", err.msg);
        free(sets);
        return 1;
    }
    if (dist.rank != 0) json = 0, quiet = 1; /* rank 0 speaks for the world */
    if (resume) {
        snprintf(ckpt, sizeof ckpt, "%s/ckpt/latest.h5", resume);
        if (!config) {
            char *text = checkpoint_read_config(ckpt, &err);
            if (!text) goto fail_early;
            cJSON *root = cJSON_Parse(text);
            free(text);
            if (!root) {
                err_set(&err, "%s: the stored config is not valid JSON", ckpt);
                goto fail_early;
            }
            for (int i = 0; i < nsets; i++)
                if (cfg_set_path(root, sets[i], &err)) {
                    cJSON_Delete(root);
                    goto fail_early;
                }
            if (runconfig_from_json(&rc, root, &err)) {
                cJSON_Delete(root);
                goto fail_early;
            }
        } else if (runconfig_load(&rc, config, sets, nsets, &err)) {
            goto fail_early;
        }
    } else if (runconfig_load(&rc, config, sets, nsets, &err)) {
        goto fail_early;
    }
    if (resume && run_dir_adopt(&rc, resume, &err)) { /* resume writes where it was pointed */
        runconfig_free(&rc);
        goto fail_early;
    }
    Trainer t;
    if (dry) {
        int bad = trainer_init_dry(&t, &rc, &err);
        if (!bad && dist.rank == 0) {
            char *s = cJSON_Print(rc.root);
            printf("%s\n", s);
            cJSON_free(s);
            char desc[2048], mem[512];
            optimizer_describe(&t.opt, desc, sizeof desc);
            memplan_describe(&t.mem, mem, sizeof mem);
            fprintf(stderr, "tern train --dry-run: %s, %zu parameters, %zu micro-steps of %zu x %zu per step\n%s  memory   %s\n",
                    t.model->arch, model_num_params(t.model), t.accum, t.B, t.T, desc, mem);
        }
        trainer_free(&t);
        runconfig_free(&rc);
        agreed = 1; /* no collective in a dry run: each rank answers for itself */
        if (bad) goto fail_early;
        free(sets);
        return 0;
    }
    RunLock lock = {-1, 0, 0};
    char run_dir[sizeof t.run_dir];
    run_dir_of(&rc, run_dir, sizeof run_dir);
    if (hold_run_dir(&dist, run_dir, !resume && !overwrite, &lock, &err, &print_err, &prefix)) {
        agreed = 1;
        run_dir_abandon(&lock, run_dir);
        runconfig_free(&rc);
        goto fail_early;
    }
    int init_bad = trainer_init(&t, &rc, resume ? ckpt : NULL, &dist, &err) != 0 ||
                   (dist.rank == 0 && run_dir_claim(&lock, run_dir, &err) != 0);
    if (!init_bad) err.msg[0] = 0;
    if (agree_failure(&dist, init_bad, err.msg, &print_err, &prefix)) { /* all ranks give up together */
        agreed = 1;
        trainer_free(&t);
        run_dir_abandon(&lock, run_dir);
        runconfig_free(&rc);
        goto fail_early;
    }
    t.quiet = quiet;
    if (lock.n_cleaned && !quiet) fprintf(stderr, "tern train: removed %zu stale temporary file(s) from %s\n", lock.n_cleaned, run_dir);
    t.stop_flag = &g_stop;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int r = trainer_run(&t, stop_after, &err); /* the ranks leave it at the same step */
    if (r >= 0) err.msg[0] = 0;
    agree_failure(&dist, r < 0, err.msg, &print_err, &prefix);
    Err serr = {0};
    /* a failed run's summary says so too; its own write error would only be a second line then */
    if (dist.rank == 0 && trainer_summary(&t, json, r, err.msg, &serr) && r >= 0) report(&dist, 0, serr.msg);
    if (r < 0) {
        if (print_err) report(&dist, prefix, err.msg);
        status = 1;
    } else {
        /* the picture is a convenience: a failure to draw it never fails the run */
        int plotted = 0;
        if (dist.rank == 0 && rc.train.plot) {
            Err perr = {0};
            plotted = plot_run_dir(t.run_dir, &perr) == 0;
            if (!plotted) fprintf(stderr, "tern train: warning: no loss plot: %s\n", perr.msg);
        }
        if (!quiet) {
            fprintf(stderr, "tern train: done — %llu steps, %llu tokens in %.1fs (%.0f tok/s)",
                    (unsigned long long)t.st.step, (unsigned long long)t.st.tokens, t.st.elapsed_seconds,
                    t.st.elapsed_seconds > 0 ? (double)t.st.tokens / t.st.elapsed_seconds : 0.0);
            if (t.last_val_bpb >= 0) fprintf(stderr, ", val_bpb %.4f", t.last_val_bpb);
            else if (t.last_val_loss == t.last_val_loss) fprintf(stderr, ", val_loss %.4f", t.last_val_loss);
            fprintf(stderr, "\n  run folder: %s  (checkpoint %s/ckpt/latest.h5%s%s%s)\n", t.run_dir, t.run_dir,
                    plotted ? ", plot " : "", plotted ? t.run_dir : "", plotted ? "/loss.png" : "");
        }
        status = r == 1 ? 128 + (int)g_stop : 0;
    }
    trainer_free(&t);
    run_dir_unlock(&lock);
    runconfig_free(&rc);
    free(sets);
    dist_finalize(&dist);
    return status;
fail_early:
    /* a failure before the ranks' first agreement point: tell the others, who are waiting there
     * (or failing alike) */
    if (!agreed) agree_failure(&dist, 1, err.msg, &print_err, &prefix);
    if (print_err) report(&dist, prefix, err.msg);
    free(sets);
    dist_finalize(&dist);
    return 1;
}

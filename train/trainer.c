#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/blas_core.h"
#include "kernels/gemm.h"
#include "kernels/softmax.h"
#include "kernels/util.h"
#include "model/lora.h"
#include "model/qat.h"
#include "train/lora_ft.h"
#include "train/resume.h"
#include "train/run_dir.h"

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int trainer_init_impl(Trainer *t, RunConfig *rc, const char *resume_ckpt, int dry, const Dist *dist, Err *err);
static void log_json(Trainer *t, cJSON *o);

/* Validation windows per forward: up to 8 sequences, up to 8192 tokens. */
static size_t eval_batch(size_t T) { return TERN_MAX((size_t)1, TERN_MIN((size_t)8, 8192 / T)); }

/* Estimates the run's memory (train/memplan.h) and refuses what cannot fit. */
static int plan_memory(Trainer *t, Err *err) {
    const RunConfig *rc = t->rc;
    size_t T = rc->data.seq_len, micro_tokens = rc->train.micro_batch * T;
    int validates = rc->data.val[0] && (rc->train.val_every || rc->train.eval_at_end);
    MemPlanShape s = {.B = rc->train.micro_batch, .T = T, .eval_B = validates ? eval_batch(T) : 0, .tokens = micro_tokens,
                      .forward_only = rc->mezo.enabled, .ema = rc->ema.enabled, .world = t->dist.world, .train = t->tps};
    /* MeZO keeps every micro-batch of a step */
    if (rc->mezo.enabled) s.tokens = TERN_MAX(micro_tokens, rc->train.batch_tokens / (size_t)t->dist.world);
    memplan_measure(&t->mem, t->model, &s);
    return memplan_check(&t->mem, err);
}

static void bcast_cb(void *ctx, float *buf, size_t n, int root) { dist_bcast_f32((const Dist *)ctx, buf, n, root); }

int trainer_init(Trainer *t, RunConfig *rc, const char *resume_ckpt, const Dist *dist, Err *err) {
    return trainer_init_impl(t, rc, resume_ckpt, 0, dist, err);
}

int trainer_init_dry(Trainer *t, RunConfig *rc, Err *err) { return trainer_init_impl(t, rc, NULL, 1, NULL, err); }

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Opens the teacher-logit files of distill.teacher and pairs each training shard with the one
 * written for it (by file name); every shard needs one covering all its training windows, and
 * all must share k and the temperature. */
static int open_teachers(Trainer *t, Err *err) {
    const RunConfig *rc = t->rc;
    char **paths = NULL;
    size_t n = 0;
    if (path_glob_list(rc->distill.teacher, &paths, &n, err)) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return err_set(err, "distill.teacher: %s", msg);
    }
    int rcode = 0;
    t->teachers = xcalloc(n ? n : 1, sizeof(TeacherReader));
    for (size_t i = 0; i < n && !rcode; i++) {
        if (teacher_reader_open(&t->teachers[i], paths[i], t->model->vocab, err)) rcode = -1;
        else t->nteachers++;
        if (!rcode && (t->teachers[i].meta.k != t->teachers[0].meta.k ||
                       t->teachers[i].meta.temperature != t->teachers[0].meta.temperature))
            rcode = err_set(err, "%s: k %zu / temperature %g differ from %s's (%zu / %g)", paths[i], t->teachers[i].meta.k,
                            t->teachers[i].meta.temperature, paths[0], t->teachers[0].meta.k, t->teachers[0].meta.temperature);
        if (!rcode && (t->teachers[i].meta.k > DISTILL_MAX_K || !(t->teachers[i].meta.temperature > 0)))
            rcode = err_set(err, "%s: k %zu / temperature %g unusable (k <= %d, temperature > 0)", paths[i], t->teachers[i].meta.k,
                            t->teachers[i].meta.temperature, DISTILL_MAX_K);
    }
    path_list_free(paths, n);
    if (rcode) return -1;
    Loader *L = &t->loader;
    t->teacher_of_shard = xmalloc(L->nshards * sizeof(int));
    for (size_t sh = 0; sh < L->nshards; sh++) {
        t->teacher_of_shard[sh] = -1;
        for (size_t i = 0; i < t->nteachers; i++)
            if (!strcmp(base_name(t->teachers[i].meta.shard), base_name(L->shards[sh].path))) t->teacher_of_shard[sh] = (int)i;
        if (t->teacher_of_shard[sh] < 0)
            return err_set(err, "distill.teacher: no teacher file was written for training shard %s (tern logits --data %s)",
                           L->shards[sh].path, L->shards[sh].path);
        const TeacherReader *r = &t->teachers[t->teacher_of_shard[sh]];
        uint64_t need = (L->first_window[sh + 1] - L->first_window[sh]) * t->T; /* positions the windows score */
        if (r->meta.offset != 0 || r->rows < need)
            return err_set(err, "%s: covers shard positions [%llu, %llu) of %s, the training windows need [0, %llu)", r->path,
                           (unsigned long long)r->meta.offset, (unsigned long long)(r->meta.offset + r->rows),
                           L->shards[sh].path, (unsigned long long)need);
    }
    size_t k = t->teachers[0].meta.k, rows = t->B * t->T;
    t->t_idx = xmalloc(rows * k * sizeof(int32_t));
    t->t_val = xmalloc(rows * k * sizeof(float));
    t->t_lse = xmalloc(rows * sizeof(float));
    t->win_shard = xmalloc(t->B * sizeof(size_t));
    t->win_off = xmalloc(t->B * sizeof(size_t));
    t->dt = (DistillTarget){.idx = t->t_idx, .val = t->t_val, .lse = t->t_lse, .k = k,
                            .temperature = (float)t->teachers[0].meta.temperature, .alpha = (float)rc->distill.alpha};
    return 0;
}

/* train.lora: the base loaded and frozen (no gradient buffer, no optimizer state), its hash
 * recorded in the resolved config (or checked against the one there: a resumed run), quantized
 * once when QAT is on, the adapters attached and checked; they become the trained store. The
 * optimizer defaults to one AdamW group "lora" over every adapter. */
static int setup_lora(Trainer *t, Err *err) {
    RunConfig *rc = t->rc;
    LoraConfig *lc = &rc->lora;
    Model *m = t->model;
    char hash[17];
    if (lora_open_base(m, lc->base, lc->base_hash, hash, err)) return -1;
    snprintf(lc->base_hash, sizeof lc->base_hash, "%s", hash);
    if (m->qplan && m->qplan->qat) quant_plan_bake(m);
    if (lora_setup(m, lc, (uint64_t)rc->seed, err)) return -1;
    params_freeze(&m->ps);
    t->tps = &m->lora->ps;
    if (lora_check_targets(m, err)) return -1;
    cJSON *optim = cfg_section(rc->root, "optim");
    if (!cJSON_GetObjectItemCaseSensitive(optim, "rules")) {
        cJSON *groups = cfg_section(optim, "groups");
        if (!cJSON_GetObjectItemCaseSensitive(groups, "lora")) cJSON_AddItemToObject(groups, "lora", cJSON_CreateObject());
    }
    return 0;
}

/* optim.mezo.sparse_ternary: hands MeZO the ternary specs of the QAT plan (the model's own
 * parameters only; a LoRA run tunes adapters, which have no plan). */
static int mezo_sparse_setup(Trainer *t, Err *err) {
    const QuantPlan *qp = t->model->qplan;
    if (t->tps != &t->model->ps || !qp || !qp->qat)
        return err_set(err, "config: optim.mezo.sparse_ternary needs a ternary QAT plan (quant.qat with ternary weights) on "
                            "the model's parameters");
    const QuantSpec **specs = xcalloc(t->tps->n ? t->tps->n : 1, sizeof *specs);
    for (size_t p = 0; p < t->tps->n && p < qp->n; p++)
        if (qp->p[p].store == STORE_QUANT && qp->p[p].spec.kind == QUANT_TERNARY) specs[p] = &qp->p[p].spec;
    int rc = mezo_sparse_init(&t->mezo, t->tps, specs, err);
    xfree(specs);
    return rc;
}

static int trainer_init_impl(Trainer *t, RunConfig *rc, const char *resume_ckpt, int dry, const Dist *dist, Err *err) {
    memset(t, 0, sizeof *t);
    t->rc = rc;
    t->last_val_loss = t->last_val_bpb = NAN;
    t->qat_start_step = -1;
    if (dist) t->dist = *dist;
    else t->dist = (Dist){.rank = 0, .world = 1, .local_size = 1};
    int threads = (int)rc->threads;
    if (threads <= 0 && t->dist.local_size > 1 && !getenv("OMP_NUM_THREADS")) {
        /* several ranks on one host: share its cores instead of oversubscribing them */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)TERN_MAX(1L, ncpu / t->dist.local_size);
    }
    if (threads > 0) {
        tern_set_threads(threads);
        blas_set_threads(threads);
    }
    cJSON *root = rc->root;
    /* model.seq_len defaults to data.seq_len */
    cJSON *msec = cfg_section(root, "model");
    if (!cJSON_GetObjectItemCaseSensitive(msec, "seq_len")) cJSON_AddNumberToObject(msec, "seq_len", (double)rc->data.seq_len);
    if (model_create(&t->model, msec, (uint64_t)rc->seed, err)) return -1;
    t->model->checkpoint_blocks = rc->train.checkpoint_blocks;
    if (t->model->max_seq_len < rc->data.seq_len)
        return err_set(err, "config: data.seq_len %zu exceeds model.seq_len %zu", rc->data.seq_len, t->model->max_seq_len);
    cJSON_ReplaceItemInObjectCaseSensitive(root, "model", cJSON_Duplicate(t->model->config, 1));

    cJSON *rq = cJSON_CreateObject(), *rx = cJSON_CreateObject();
    if (quant_plan_attach(t->model, cJSON_GetObjectItemCaseSensitive(root, "quant"), cJSON_GetObjectItemCaseSensitive(root, "export"),
                          rq, rx, err)) {
        cJSON_Delete(rq);
        cJSON_Delete(rx);
        return -1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quant");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "export");
    cJSON_AddItemToObject(root, "quant", rq);
    cJSON_AddItemToObject(root, "export", rx);
    t->tps = &t->model->ps;
    if (rc->lora.enabled && setup_lora(t, err)) return -1;

    /* the memory the run will take, before the optimizer state and the arenas are allocated */
    if (plan_memory(t, err)) return -1;

    cJSON *optim = cfg_section(root, "optim");
    cJSON *resolved_opt = cJSON_CreateObject();
    const char *rules = rc->lora.enabled ? "[{\"match\":\"*\",\"group\":\"lora\"}]" : t->model->default_groups;
    int rcode = optimizer_init(&t->opt, t->tps, optim, rules, resolved_opt, err);
    if (rcode) {
        cJSON_Delete(resolved_opt);
        return -1;
    }
    /* the resolved groups and rules replace what the config gave (or fill in when it gave none) */
    cJSON_DeleteItemFromObjectCaseSensitive(optim, "groups");
    cJSON_DeleteItemFromObjectCaseSensitive(optim, "rules");
    cJSON_AddItemToObject(optim, "groups", cJSON_DetachItemFromObject(resolved_opt, "groups"));
    cJSON_AddItemToObject(optim, "rules", cJSON_DetachItemFromObject(resolved_opt, "rules"));
    cJSON_Delete(resolved_opt);
    /* Muon's scratch is written by optimizer steps only, which a MeZO run never takes */
    if (!rc->mezo.enabled) memplan_add_optimizer(&t->mem, t->opt.work_floats * sizeof(float));

    if (rc->mezo.enabled) {
        if (mezo_init(&t->mezo, &rc->mezo, t->tps, err)) return -1;
        t->use_mezo = 1;
        if (rc->mezo.sparse_ternary && mezo_sparse_setup(t, err)) return -1;
    }
    /* data parallelism: each Muon matrix is orthogonalised on one rank and broadcast */
    if (t->dist.world > 1 && !t->use_mezo) optimizer_shard(&t->opt, t->dist.rank, t->dist.world, bcast_cb, &t->dist);

    /* batch geometry */
    t->T = rc->data.seq_len;
    t->B = rc->train.micro_batch;
    size_t per_micro = t->B * t->T, world = (size_t)t->dist.world;
    if (rc->train.batch_tokens % (per_micro * world)) {
        if (world > 1)
            return err_set(err, "config: train.batch_tokens (%zu) must be a multiple of micro_batch * seq_len * ranks (%zu x %zu)",
                           rc->train.batch_tokens, per_micro, world);
        return err_set(err, "config: train.batch_tokens (%zu) must be a multiple of micro_batch * seq_len (%zu)",
                       rc->train.batch_tokens, per_micro);
    }
    t->accum = rc->train.batch_tokens / (per_micro * world);

    /* data */
    if (!rc->data.train[0]) return err_set(err, "config: data.train (training shard glob) is required");
    if (loader_open(&t->loader, rc->data.train, t->T, (uint64_t)rc->seed, t->dist.rank, t->dist.world, t->model->vocab, err)) return -1;
    if (rc->distill.teacher[0] && open_teachers(t, err)) return -1;
    if (rc->data.val[0]) {
        if (stream_open(&t->val, rc->data.val, t->model->vocab, err)) return -1;
        t->have_val = 1;
        if (stream_val_windows(&t->val, t->T) == 0)
            return err_set(err, "%s: validation split shorter than one %zu-token window", rc->data.val, t->T);
    }
    if (rc->data.tokenizer[0]) {
        if (tokenizer_load(&t->tok, rc->data.tokenizer, err)) return -1;
        if (bpb_init(&t->bc, t->tok, t->model->vocab, err)) return -1;
        t->have_bc = 1;
    }

    /* budget */
    uint64_t by_tokens = rc->train.max_tokens ? (rc->train.max_tokens + rc->train.batch_tokens - 1) / rc->train.batch_tokens : 0;
    t->total_steps = rc->train.max_steps;
    if (by_tokens && (!t->total_steps || by_tokens < t->total_steps)) t->total_steps = by_tokens;
    if (!t->total_steps && rc->train.max_seconds <= 0)
        return err_set(err, "config: no budget: set train.max_steps, train.max_tokens or train.max_seconds");
    rc->schedule.total_steps = t->total_steps;
    rc->schedule.max_seconds = t->total_steps ? 0 : rc->train.max_seconds;

    ema_init(&rc->ema, t->tps);
    tape_init(&t->tape, 0);
    /* MeZO scores every micro-batch of a step twice per perturbation: it keeps them all */
    size_t ntok = t->use_mezo ? per_micro * t->accum : per_micro;
    t->x = xmalloc(ntok * sizeof(int32_t));
    t->y = xmalloc(ntok * sizeof(int32_t));

    if (rc->train.init_from[0] && !resume_ckpt &&
        checkpoint_load(rc->train.init_from, &t->model->ps, NULL, NULL, NULL, NULL, err))
        return -1;

    /* resume */
    if (resume_ckpt) {
        /* MeZO keeps no optimizer state: its checkpoints have none */
        if (checkpoint_load(resume_ckpt, t->tps, t->use_mezo ? NULL : t->opt.state_a, t->use_mezo ? NULL : t->opt.state_b,
                            rc->ema.enabled ? rc->ema.shadow : NULL, &t->st, err) ||
            resume_check_state(&t->st, &t->loader, resume_ckpt, err))
            return -1;
        t->opt.step = t->st.step;
        int have_buffers = 0;
        if (checkpoint_load_buffers(resume_ckpt, &t->model->bs, &have_buffers, err)) return -1;
        if (!have_buffers) t->model->train_forwards = t->st.train_forwards; /* written before /buffers existed */
        t->loader.cur.epoch = t->st.loader_epoch;
        t->loader.cur.pos = t->st.loader_pos;
        t->loader.cur.seed = t->st.loader_seed;
        t->bad_in_row = t->st.bad_steps;
        t->model->qat_active = (int)t->st.qat_active;
    }
    /* run folder */
    run_dir_of(rc, t->run_dir, sizeof t->run_dir);
    if (dry || t->dist.rank != 0) {
        runconfig_resolve(rc);
        return 0;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/ckpt", t->run_dir);
    if (make_dirs(path, err)) return -1;
    runconfig_resolve(rc);
    snprintf(path, sizeof path, "%s/config.json", t->run_dir);
    if (cfg_save_file(rc->root, path, err)) return -1;
    snprintf(path, sizeof path, "%s/metrics.jsonl", t->run_dir);
    t->metrics = run_metrics_open(path, resume_ckpt != NULL, t->st.step, err);
    if (!t->metrics) return -1;
    if (resume_ckpt) { /* where the run was resumed, for `tern plot` */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "step", (double)t->st.step);
        cJSON_AddStringToObject(o, "event", "resume");
        cJSON_AddNumberToObject(o, "tokens", (double)t->st.tokens);
        cJSON_AddNumberToObject(o, "elapsed_s", t->st.elapsed_seconds);
        log_json(t, o);
    }
    progress_init(&t->prog);
    return 0;
}

void trainer_free(Trainer *t) {
    if (t->metrics) fclose(t->metrics);
    mezo_free(&t->mezo);
    for (size_t i = 0; i < t->nteachers; i++) teacher_reader_close(&t->teachers[i]);
    xfree(t->teachers);
    xfree(t->teacher_of_shard);
    xfree(t->t_idx);
    xfree(t->t_val);
    xfree(t->t_lse);
    xfree(t->win_shard);
    xfree(t->win_off);
    xfree(t->x);
    xfree(t->y);
    tape_free(&t->tape);
    ema_free(&t->rc->ema);
    if (t->have_bc) bpb_free(&t->bc);
    tokenizer_free(t->tok);
    if (t->have_val) stream_close(&t->val);
    loader_close(&t->loader);
    optimizer_free(&t->opt);
    model_free(t->model);
    memset(t, 0, sizeof *t);
}

static void log_json(Trainer *t, cJSON *o) {
    if (!t->metrics) { /* ranks other than 0 write nothing */
        cJSON_Delete(o);
        return;
    }
    char *s = cJSON_PrintUnformatted(o);
    fprintf(t->metrics, "%s\n", s);
    fflush(t->metrics);
    cJSON_free(s);
    cJSON_Delete(o);
}

static int validate(Trainer *t) {
    if (!t->have_val) return 0;
    Ema *e = &t->rc->ema;
    if (e->enabled && e->started) ema_swap(e, t->tps);
    EvalResult r;
    size_t B = eval_batch(t->T);
    /* between steps the training tape is free: one arena, so validation adds no second set of
     * activation pages to the run's peak */
    eval_standard(t->model, &t->tape, &t->val, t->T, B, t->have_bc ? &t->bc : NULL, t->rc->train.val_tokens, &t->dist, &r);
    if (e->enabled && e->started) ema_swap(e, t->tps);
    t->last_val_loss = r.val_loss;
    t->last_val_bpb = r.val_bpb;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)t->st.step);
    cJSON_AddNumberToObject(o, "val_loss", r.val_loss);
    if (r.val_bpb >= 0) cJSON_AddNumberToObject(o, "val_bpb", r.val_bpb);
    cJSON_AddNumberToObject(o, "val_tokens", r.tokens);
    cJSON_AddNumberToObject(o, "val_bytes", r.bytes);
    cJSON_AddNumberToObject(o, "eval_seconds", r.seconds);
    log_json(t, o);
    if (!t->quiet) {
        progress_done(&t->prog);
        if (r.val_bpb >= 0)
            fprintf(stderr, "step %llu: val_loss %.4f val_bpb %.4f (%.0f tokens, %.1fs)\n", (unsigned long long)t->st.step,
                    r.val_loss, r.val_bpb, r.tokens, r.seconds);
        else
            fprintf(stderr, "step %llu: val_loss %.4f (%.0f tokens, %.1fs; no tokenizer: no bpb)\n",
                    (unsigned long long)t->st.step, r.val_loss, r.tokens, r.seconds);
    }
    return 0;
}

static int link_latest(const char *run_dir, const char *step_path, Err *err) {
    char latest[1200], tmp[1300];
    snprintf(latest, sizeof latest, "%s/ckpt/latest.h5", run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", latest, (long)getpid());
    unlink(tmp);
    if (link(step_path, tmp) != 0) return err_set(err, "%s: cannot link (%s)", tmp, strerror(errno));
    if (rename(tmp, latest) != 0) {
        unlink(tmp);
        return err_set(err, "%s: cannot rename (%s)", latest, strerror(errno));
    }
    return 0;
}

/* Checks that every rank holds bit-identical parameters and optimizer state (they should: the
 * same averaged gradient and the same optimizer step; different thread counts or BLAS builds
 * across ranks can make them drift by rounding). When they differ, rank 0's copy is broadcast. */
static void sync_check(Trainer *t) {
    if (t->dist.world <= 1) return;
    ParamStore *ps = t->tps;
    uint64_t fp = dist_fingerprint(ps->values, ps->total) + 3 * dist_fingerprint(t->opt.state_a, ps->total) +
                  5 * dist_fingerprint(t->opt.state_b, ps->total);
    uint64_t lo, hi;
    dist_minmax_u64(&t->dist, fp, &lo, &hi);
    if (lo == hi) return;
    dist_bcast_f32(&t->dist, ps->values, ps->total, 0);
    dist_bcast_f32(&t->dist, t->opt.state_a, ps->total, 0);
    dist_bcast_f32(&t->dist, t->opt.state_b, ps->total, 0);
    if (t->rc->ema.enabled) dist_bcast_f32(&t->dist, t->rc->ema.shadow, ps->total, 0);
    t->resyncs++;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)t->st.step);
    cJSON_AddStringToObject(o, "event", "ranks_resynced");
    log_json(t, o);
    if (!t->quiet) {
        progress_done(&t->prog);
        fprintf(stderr, "step %llu: the ranks' parameters had drifted apart by rounding (different thread counts?); "
                        "rank 0's were broadcast\n", (unsigned long long)t->st.step);
    }
}

static int trainer_save_rank0(Trainer *t, Err *err);

/* One micro-batch's training loss: the model's logits scored against the labels, or against
 * the teacher's top-k mixed with the labels when distilling (the model returns logits only). */
static Tensor *train_loss(Trainer *t) {
    Model *m = t->model;
    Tensor *z = model_forward(m, &t->tape, t->x, t->B, t->T, 1);
    if (t->nteachers) return op_distill(&t->tape, z, t->y, m->softcap, &t->dt, NULL);
    return op_cross_entropy(&t->tape, z, t->y, m->softcap, -1, NULL);
}

/* "last checkpoint: PATH" or "no checkpoint was written", for messages about a failed run. */
static const char *last_checkpoint(const Trainer *t, char *buf, size_t size) {
    char latest[1200];
    snprintf(latest, sizeof latest, "%s/ckpt/latest.h5", t->run_dir);
    if (!file_exists(latest)) return "no checkpoint was written";
    snprintf(buf, size, "last checkpoint: %s", latest);
    return buf;
}

/* Collective: rank 0 writes, and every rank returns its outcome (so all stop together on a
 * failed write instead of waiting for rank 0 forever). Non-finite parameters (an update that
 * overflowed) are never written: they would replace the last good latest.h5. Every rank holds
 * rank 0's parameters after sync_check, so all refuse alike. */
int trainer_save(Trainer *t, Err *err) {
    sync_check(t);
    if (!params_values_finite(t->tps)) {
        char last[1300];
        return err_set(err, "training failed: the parameters are not finite at step %llu (an update overflowed; lower the "
                            "learning rate or set train.grad_clip); not saved, %s", (unsigned long long)t->st.step,
                       last_checkpoint(t, last, sizeof last));
    }
    int rc = t->dist.rank == 0 ? trainer_save_rank0(t, err) : 0;
    if (t->dist.world > 1) {
        uint64_t lo, hi;
        dist_minmax_u64(&t->dist, rc ? 1 : 0, &lo, &hi);
        if (hi && !rc) rc = err_set(err, "stopping: rank 0 could not write the checkpoint");
    }
    return rc;
}

static int trainer_save_rank0(Trainer *t, Err *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/ckpt/step_%llu.h5", t->run_dir, (unsigned long long)t->st.step);
    t->st.train_forwards = t->model->train_forwards;
    t->st.loader_epoch = t->loader.cur.epoch;
    t->st.loader_pos = t->loader.cur.pos;
    t->st.loader_seed = t->loader.cur.seed;
    t->st.bad_steps = t->bad_in_row;
    t->st.qat_active = (uint64_t)t->model->qat_active;
    char *cfg = cJSON_PrintUnformatted(t->rc->root);
    CheckpointData cd = {.ps = t->tps,
                         .state_a = t->use_mezo ? NULL : t->opt.state_a,
                         .state_b = t->use_mezo ? NULL : t->opt.state_b,
                         .ema = t->rc->ema.enabled ? t->rc->ema.shadow : NULL,
                         .bs = &t->model->bs,
                         .total = t->tps->total,
                         .st = t->st,
                         .config_json = cfg};
    int rc = checkpoint_save(path, &cd, err);
    cJSON_free(cfg);
    if (!rc) rc = link_latest(t->run_dir, path, err);
    if (rc) return rc;
    cJSON *o = cJSON_CreateObject(); /* resume cuts metrics.jsonl back to this line */
    cJSON_AddNumberToObject(o, "step", (double)t->st.step);
    cJSON_AddStringToObject(o, "event", RUN_METRICS_CHECKPOINT_EVENT);
    log_json(t, o);
    run_dir_prune_checkpoints(t->run_dir, t->rc->train.keep_ckpts, t->st.step);
    return 0;
}

static int budget_done(const Trainer *t, double elapsed) {
    if (t->total_steps && t->st.step >= t->total_steps) return 1;
    if (t->rc->train.max_seconds > 0 && elapsed >= t->rc->train.max_seconds) return 1;
    return 0;
}

/* Mean loss of the step's micro-batches (already in t->x / t->y) at the current parameters, over
 * all ranks; forward only. */
static double mezo_batch_loss(Trainer *t) {
    size_t per = t->B * t->T;
    double l = 0;
    for (size_t micro = 0; micro < t->accum; micro++) {
        tape_reset(&t->tape);
        tape_no_grad_begin(&t->tape);
        Tensor *loss = model_loss(t->model, &t->tape, t->x + micro * per, t->y + micro * per, t->B, t->T, NULL, 0);
        tape_no_grad_end(&t->tape);
        l += loss->data[0];
    }
    l /= (double)t->accum;
    if (t->dist.world > 1) {
        dist_allreduce_sum_f64(&t->dist, &l, 1);
        l /= (double)t->dist.world;
    }
    return l;
}

/* One MeZO step (see optim/mezo.h). Returns 0 when every loss was finite (the update was taken),
 * -1 when not (the parameters are restored and nothing is updated). */
static int mezo_train_step(Trainer *t, double lr_mult, double *step_loss) {
    Mezo *mz = &t->mezo;
    float *theta = t->tps->values;
    size_t n = mz->c.samples;
    uint64_t keys[MEZO_MAX_SAMPLES];
    double g[MEZO_MAX_SAMPLES];
    float eps = (float)mz->c.eps;
    int finite = 1;
    *step_loss = 0;
    /* sparse ternary: the mask, from the unperturbed weights, holds for the whole step */
    t->mezo_live = mezo_mask(mz, theta, t->model->qat_active);
    for (size_t k = 0; k < n; k++) {
        keys[k] = mezo_key((uint64_t)t->rc->seed, t->st.step, k);
        mezo_perturb(mz, theta, keys[k], eps);
        double lp = mezo_batch_loss(t);
        mezo_perturb(mz, theta, keys[k], -2.0f * eps);
        double lm = mezo_batch_loss(t);
        mezo_perturb(mz, theta, keys[k], eps);
        g[k] = (lp - lm) / (2.0 * mz->c.eps);
        *step_loss += 0.5 * (lp + lm) / (double)n;
        if (!isfinite(lp) || !isfinite(lm)) finite = 0;
    }
    if (!finite) return -1;
    mezo_update(mz, theta, keys, g, n, mz->c.lr * lr_mult);
    return 0;
}

int trainer_run(Trainer *t, uint64_t stop_after, Err *err) {
    RunConfig *rc = t->rc;
    ParamStore *ps = t->tps;
    double t_start = now_seconds() - t->st.elapsed_seconds;
    double t_log = now_seconds();
    uint64_t tokens_log = t->st.tokens;
    double loss_acc = 0;
    size_t loss_n = 0;
    float seed = 1.0f / (float)t->accum;
    int stopped_by_signal = 0;
    /* every rank starts from rank 0's parameters (identical anyway when built from the same seed or
     * checkpoint; this makes it a guarantee) */
    dist_bcast_f32(&t->dist, ps->values, ps->total, 0);
    if (!t->quiet) {
        char desc[2048];
        if (t->use_mezo) {
            const MezoConfig *mc = &t->mezo.c;
            snprintf(desc, sizeof desc, "  mezo     lr %g eps %g wd %g, %zu %s perturbation(s) per step, %zu tensors %zu params "
                                        "(forward passes only%s)\n", mc->lr, mc->eps, mc->wd, mc->samples, mc->perturbation,
                     t->mezo.nranges, t->mezo.nfloats, t->mezo.codes ? "; sparse ternary: code-0 weights skipped while QAT is on" : "");
        } else {
            optimizer_describe(&t->opt, desc, sizeof desc);
        }
        char ranks[64] = "";
        if (t->dist.world > 1) snprintf(ranks, sizeof ranks, " x %d ranks", t->dist.world);
        fprintf(stderr, "tern train: %s — %s, %zu parameters, batch %zu tokens (%zu x %zu x %zu micro-steps%s), threads %d%s, "
                        "BLAS kernels %s\n%s",
                t->run_dir, t->model->arch, model_num_params(t->model), rc->train.batch_tokens, t->B, t->T,
                t->accum, ranks, tern_get_threads(), t->dist.world > 1 ? " per rank" : "", blas_core_name(), desc);
    }
    while (1) {
        /* the clock and the stop flag are agreed over the ranks (max), so every rank takes the same
         * schedule and stops at the same step */
        double ctl[2] = {now_seconds() - t_start, (t->stop_flag && *t->stop_flag) ? 1.0 : 0.0};
        dist_allreduce_max_f64(&t->dist, ctl, 2);
        double elapsed = ctl[0];
        if (budget_done(t, elapsed)) break;
        if (stop_after && t->st.step >= stop_after) break;
        if (ctl[1] > 0) {
            stopped_by_signal = 1;
            break;
        }
        double lr_mult = schedule_lr_mult(&rc->schedule, t->st.step, elapsed);
        if (qat_update(t->model, (unsigned long long)t->st.step, schedule_decay_mult(&rc->schedule, t->st.step, elapsed))) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", (double)t->st.step);
            cJSON_AddStringToObject(o, "event", "qat_start");
            cJSON_AddNumberToObject(o, "lr_mult", lr_mult);
            log_json(t, o);
            t->qat_start_step = (long long)t->st.step;
            if (!t->quiet) {
                progress_done(&t->prog);
                fprintf(stderr, "step %llu: quantization-aware training on (lr multiplier %.4f)\n", (unsigned long long)t->st.step, lr_mult);
            }
        }
        double step_loss = 0;
        int finite;
        size_t ncounts;
        float *counts = model_step_counts(t->model, &ncounts); /* MoE: tokens per expert, this step's */
        if (ncounts) memset(counts, 0, ncounts * sizeof(float));
        if (t->use_mezo) {
            size_t per = t->B * t->T;
            for (size_t micro = 0; micro < t->accum; micro++) loader_next(&t->loader, t->B, t->x + micro * per, t->y + micro * per);
            finite = mezo_train_step(t, lr_mult, &step_loss) == 0;
            goto after_update;
        }
        params_zero_grad(ps);
        int teacher_failed = 0;
        for (size_t micro = 0; micro < t->accum; micro++) {
            loader_next_pos(&t->loader, t->B, t->x, t->y, t->win_shard, t->win_off);
            if (t->nteachers) { /* the teacher's rows for these windows */
                size_t k = t->dt.k;
                for (size_t b = 0; b < t->B && !teacher_failed; b++)
                    if (teacher_read_window(&t->teachers[t->teacher_of_shard[t->win_shard[b]]], t->win_off[b], t->T,
                                            t->t_idx + b * t->T * k, t->t_val + b * t->T * k, t->t_lse + b * t->T, err))
                        teacher_failed = 1;
                if (teacher_failed) break;
            }
            tape_reset(&t->tape);
            Tensor *loss = train_loss(t);
            step_loss += loss->data[0];
            tape_backward_seed(&t->tape, loss, &seed);
        }
        /* a rank that cannot read its teacher rows stops every rank (none waits in the all-reduce) */
        if (t->nteachers && dist_any(&t->dist, teacher_failed)) {
            if (!teacher_failed) err_set(err, "stopping: another rank could not read its teacher rows");
            return -1;
        }
        step_loss /= (double)t->accum;
        if (t->dist.world > 1) {
            /* average the ranks' gradients (each is already the mean over its micro-steps) */
            dist_allreduce_sum_f32(&t->dist, ps->grads, ps->total);
            float inv = 1.0f / (float)t->dist.world;
            float *g = ps->grads;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < ps->total; i++) g[i] *= inv;
            dist_allreduce_sum_f64(&t->dist, &step_loss, 1);
            step_loss /= (double)t->dist.world;
        }
        finite = isfinite(step_loss) && params_grads_finite(ps);
    after_update:
        if (!finite) {
            t->bad_in_row++;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", (double)t->st.step);
            cJSON_AddStringToObject(o, "event", "non_finite_skipped");
            cJSON_AddNumberToObject(o, "in_a_row", (double)t->bad_in_row);
            log_json(t, o);
            if (!t->quiet) {
                progress_done(&t->prog);
                fprintf(stderr, "step %llu: non-finite loss or gradient, update skipped (%llu in a row)\n",
                        (unsigned long long)t->st.step, (unsigned long long)t->bad_in_row);
            }
            if (t->bad_in_row >= rc->train.max_bad_steps) {
                char last[1300];
                return err_set(err, "training diverged: %llu non-finite steps in a row at step %llu (limit train.max_bad_steps=%zu); %s",
                               (unsigned long long)t->bad_in_row, (unsigned long long)t->st.step, rc->train.max_bad_steps,
                               last_checkpoint(t, last, sizeof last));
            }
            /* a skipped step still consumes its data and counts, so the schedule moves on */
            t->st.step++;
            t->st.tokens += rc->train.batch_tokens;
            continue;
        }
        t->bad_in_row = 0;
        double gnorm = 0;
        if (!t->use_mezo && rc->train.grad_clip > 0) {
            gnorm = params_grad_norm(ps);
            if (gnorm > rc->train.grad_clip) {
                float s = (float)(rc->train.grad_clip / (gnorm + 1e-6));
                float *g = ps->grads;
                for (size_t i = 0; i < ps->total; i++) g[i] *= s;
            }
        }
        if (!t->use_mezo) optimizer_step(&t->opt, lr_mult);
        double balance = -1; /* MoE: the step's routing loads over all ranks move each layer's bias */
        if (ncounts) {
            dist_allreduce_sum_f32(&t->dist, counts, ncounts);
            balance = model_after_step(t->model);
        }
        t->st.step++;
        t->st.tokens += rc->train.batch_tokens;
        double now = now_seconds();
        elapsed = now - t_start;
        dist_allreduce_max_f64(&t->dist, &elapsed, 1);
        double progress_frac = t->total_steps ? (double)t->st.step / (double)t->total_steps : elapsed / rc->train.max_seconds;
        ema_update(&rc->ema, ps, progress_frac);
        loss_acc += step_loss;
        loss_n++;
        t->st.elapsed_seconds = elapsed;
        int last = budget_done(t, elapsed) || (stop_after && t->st.step >= stop_after);
        int log_now = rc->train.log_every && (t->st.step % rc->train.log_every == 0 || last || t->st.step == 1);
        double tps = (double)(t->st.tokens - tokens_log) / fmax(now - t_log, 1e-9);
        char eta[32] = "?", el[32];
        double frac = t->total_steps ? (double)t->st.step / (double)t->total_steps
                                     : fmin(1.0, elapsed / rc->train.max_seconds);
        if (frac > 0) format_duration(elapsed / frac - elapsed, eta, sizeof eta);
        format_duration(elapsed, el, sizeof el);
        char line[256];
        if (t->total_steps)
            snprintf(line, sizeof line, "step %llu/%llu  loss %.4f  lr_mult %.3f  %.0f tok/s  %s elapsed  ETA %s",
                     (unsigned long long)t->st.step, (unsigned long long)t->total_steps, step_loss, lr_mult, tps, el, eta);
        else
            snprintf(line, sizeof line, "step %llu  loss %.4f  lr_mult %.3f  %.0f tok/s  %s / %.0fs", (unsigned long long)t->st.step,
                     step_loss, lr_mult, tps, el, rc->train.max_seconds);
        if (!t->quiet) progress_update(&t->prog, frac, line, log_now && !t->prog.tty);
        if (log_now) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "step", (double)t->st.step);
            cJSON_AddNumberToObject(o, "train_loss", loss_acc / (double)loss_n);
            cJSON_AddNumberToObject(o, "lr_mult", lr_mult);
            cJSON_AddNumberToObject(o, "tokens", (double)t->st.tokens);
            cJSON_AddNumberToObject(o, "tok_per_s", tps);
            cJSON_AddNumberToObject(o, "elapsed_s", elapsed);
            if (!t->use_mezo && rc->train.grad_clip > 0) cJSON_AddNumberToObject(o, "grad_norm", gnorm);
            if (balance >= 0) cJSON_AddNumberToObject(o, "moe_load_max_mean", balance);
            if (t->use_mezo && t->mezo.codes) cJSON_AddNumberToObject(o, "mezo_perturbed_frac", (double)t->mezo_live / (double)t->mezo.nfloats);
            log_json(t, o);
            t->tokens_per_s = tps;
            t_log = now;
            tokens_log = t->st.tokens;
            loss_acc = 0;
            loss_n = 0;
        }
        if (rc->train.val_every && t->st.step % rc->train.val_every == 0 && !last) validate(t);
        if (rc->train.ckpt_every && t->st.step % rc->train.ckpt_every == 0 && !last)
            if (trainer_save(t, err)) return -1;
    }
    if (!t->quiet) progress_done(&t->prog);
    t->st.elapsed_seconds = now_seconds() - t_start;
    dist_allreduce_max_f64(&t->dist, &t->st.elapsed_seconds, 1);
    if (t->bad_in_row > 0) { /* parameters that give non-finite losses must not replace the last good checkpoint */
        char last[1300];
        return err_set(err, "training failed: its last %llu step(s) were non-finite, updates skipped (train.max_bad_steps=%zu "
                            "not reached); the parameters were not saved, %s", (unsigned long long)t->bad_in_row,
                       rc->train.max_bad_steps, last_checkpoint(t, last, sizeof last));
    }
    if (!stopped_by_signal && rc->train.eval_at_end) validate(t);
    if (trainer_save(t, err)) return -1;
    if (stopped_by_signal && !t->quiet)
        fprintf(stderr, "tern train: stopped by signal at step %llu; checkpoint written; continue with --resume %s\n",
                (unsigned long long)t->st.step, t->run_dir);
    return stopped_by_signal ? 1 : 0;
}

int trainer_summary(Trainer *t, int json, int outcome, const char *error, Err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", outcome < 0 ? "failed" : outcome == 1 ? "stopped" : "ok");
    if (outcome < 0) cJSON_AddStringToObject(o, "error", error);
    cJSON_AddStringToObject(o, "run_dir", t->run_dir);
    cJSON_AddStringToObject(o, "arch", t->model->arch);
    cJSON_AddNumberToObject(o, "params", (double)model_num_params(t->model));
    if (t->model->lora) {
        size_t n = 0;
        for (size_t i = 0; i < t->model->lora->ps.n; i++) n += t->model->lora->ps.t[i]->numel;
        cJSON_AddNumberToObject(o, "lora_params", (double)n);
    }
    cJSON_AddNumberToObject(o, "steps", (double)t->st.step);
    cJSON_AddNumberToObject(o, "tokens", (double)t->st.tokens);
    cJSON_AddNumberToObject(o, "elapsed_s", t->st.elapsed_seconds);
    cJSON_AddNumberToObject(o, "tok_per_s", t->st.elapsed_seconds > 0 ? (double)t->st.tokens / t->st.elapsed_seconds : 0);
    cJSON_AddNumberToObject(o, "threads", tern_get_threads());
    cJSON_AddNumberToObject(o, "ranks", t->dist.world);
    cJSON_AddStringToObject(o, "blas_core", blas_core_name());
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) cJSON_AddNumberToObject(o, "peak_rss_mb", (double)ru.ru_maxrss / 1024.0);
    cJSON_AddNumberToObject(o, "mem_estimate_mb", (double)t->mem.total / 1048576.0);
    if (t->use_mezo) cJSON_AddStringToObject(o, "method", "mezo");
    if (t->nteachers) cJSON_AddStringToObject(o, "method", "distill");
    if (t->model->lora) cJSON_AddStringToObject(o, "finetune", "lora");
    if (t->resyncs) cJSON_AddNumberToObject(o, "rank_resyncs", (double)t->resyncs);
    if (isfinite(t->last_val_loss)) cJSON_AddNumberToObject(o, "val_loss", t->last_val_loss);
    if (t->last_val_bpb >= 0) cJSON_AddNumberToObject(o, "val_bpb", t->last_val_bpb);
    if (t->qat_start_step >= 0) cJSON_AddNumberToObject(o, "qat_start_step", (double)t->qat_start_step);
    char path[1200];
    snprintf(path, sizeof path, "%s/ckpt/latest.h5", t->run_dir);
    cJSON_AddStringToObject(o, "checkpoint", path);
    snprintf(path, sizeof path, "%s/summary.json", t->run_dir);
    int rc = cfg_save_file(o, path, err);
    if (json) {
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(o);
    return rc;
}

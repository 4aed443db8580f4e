#include "train/run_dir.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* ---------------------------------------------------------------- names and places */
static int is_dot_name(const char *s) { return !strcmp(s, ".") || !strcmp(s, ".."); }

int run_name_check(const char *out_dir, const char *name, Err *err) {
    if (!out_dir[0]) return err_set(err, "config: out_dir is empty (it would put the run at /%s); use \".\" for the current folder", name);
    if (!name[0] || is_dot_name(name) || strchr(name, '/'))
        return err_set(err, "config: name \"%s\" must be one folder name inside out_dir (not empty, \".\" or \"..\", no '/')", name);
    if (strlen(name) > NAME_MAX) return err_set(err, "config: name is longer than %d bytes", NAME_MAX);
    return 0;
}

void run_dir_of(const RunConfig *rc, char *buf, size_t size) { snprintf(buf, size, "%s/%s", rc->out_dir, rc->name); }

/* Splits path (no trailing '/') at its last '/': parent ("." or "/" when there is none) and name. */
static void split_path(const char *path, char *parent, size_t psize, char *name, size_t nsize) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(parent, psize, ".");
        snprintf(name, nsize, "%s", path);
    } else {
        snprintf(parent, psize, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        snprintf(name, nsize, "%s", slash + 1);
    }
}

int run_dir_adopt(RunConfig *rc, const char *dir, Err *err) {
    char path[PATH_MAX], name[CFG_STR_MAX], parent[CFG_STR_MAX];
    if (!dir[0] || strlen(dir) >= sizeof path) return err_set(err, "--resume: \"%s\" is not a run folder path", dir);
    snprintf(path, sizeof path, "%s", dir);
    for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--) path[n - 1] = 0;
    split_path(path, parent, sizeof parent, name, sizeof name);
    if (is_dot_name(name) || !strcmp(path, "/")) { /* "runs/r/.", "..": name the folder itself */
        if (!realpath(dir, path)) return err_set(err, "%s: cannot resolve the run folder (%s)", dir, strerror(errno));
        split_path(path, parent, sizeof parent, name, sizeof name);
    }
    if (!name[0] || strlen(parent) + strlen(name) + 2 > CFG_STR_MAX)
        return err_set(err, "%s: not usable as a run folder (--resume wants runs/NAME)", dir);
    snprintf(rc->out_dir, sizeof rc->out_dir, "%s", parent);
    snprintf(rc->name, sizeof rc->name, "%s", name);
    return 0;
}

/* ---------------------------------------------------------------- the lock */
/* The pid holding an flock on the file open as fd, from /proc/locks (Linux), or 0. */
static long lock_holder_from_proc(int fd) {
    struct stat st;
    FILE *f = fopen("/proc/locks", "r");
    if (!f || fstat(fd, &st) != 0) {
        if (f) fclose(f);
        return 0;
    }
    char line[256], kind[32], mode[32];
    long pid = 0, found = 0;
    unsigned maj, min;
    unsigned long ino;
    while (!found && fgets(line, sizeof line, f))
        if (sscanf(line, "%*d: %31s %*s %31s %ld %x:%x:%lu", kind, mode, &pid, &maj, &min, &ino) == 6 && !strcmp(kind, "FLOCK") &&
            maj == major(st.st_dev) && min == minor(st.st_dev) && ino == (unsigned long)st.st_ino)
            found = pid;
    fclose(f);
    return found;
}

/* Who holds the lock: /proc/locks, else the pid the holder wrote into the file (a holder on
 * another host of a network file system). */
static long lock_holder(int fd) {
    long pid = lock_holder_from_proc(fd);
    if (pid > 0) return pid;
    char buf[64] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    return n > 0 ? strtol(buf, NULL, 10) : 0;
}

static int lock_refusal(int fd, const char *run_dir, Err *err) {
    long pid = lock_holder(fd);
    char who[64] = "another process";
    if (pid > 0) snprintf(who, sizeof who, "pid %ld", pid);
    return err_set(err, "%s is in use by another tern train (%s holds %s/lock); wait for it to finish or stop it, or pick another "
                        "name (--set name=...)", run_dir, who, run_dir);
}

int run_dir_lock(RunLock *lk, const char *run_dir, int refuse_existing, Err *err) {
    lk->fd = -1;
    lk->n_cleaned = 0;
    char path[PATH_MAX + 32];
    struct stat st;
    lk->made_dir = stat(run_dir, &st) != 0;
    if (make_dirs(run_dir, err)) return -1;
    snprintf(path, sizeof path, "%s/lock", run_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(err, "%s: cannot open the run folder's lock (%s)", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        int rc = e == EWOULDBLOCK ? lock_refusal(fd, run_dir, err) : err_set(err, "%s: cannot lock (%s)", path, strerror(e));
        close(fd);
        return rc;
    }
    snprintf(path, sizeof path, "%s/ckpt/latest.h5", run_dir);
    if (refuse_existing && stat(path, &st) == 0) {
        close(fd);
        return err_set(err, "%s already holds a run (ckpt/latest.h5): resume it with --resume %s, or pick another "
                            "name (--set name=...), or pass --overwrite", run_dir, run_dir);
    }
    lk->fd = fd;
    return 0;
}

int run_dir_claim(RunLock *lk, const char *run_dir, Err *err) {
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(lk->fd, 0) != 0 || pwrite(lk->fd, pid, (size_t)n, 0) != n)
        return err_set(err, "%s/lock: cannot write (%s)", run_dir, strerror(errno));
    lk->n_cleaned = run_dir_clean_temporaries(run_dir);
    return 0;
}

void run_dir_unlock(RunLock *lk) {
    if (lk->fd >= 0) close(lk->fd); /* closing drops the flock; the file stays (unlinking it would race a waiter) */
    lk->fd = -1;
}

void run_dir_abandon(RunLock *lk, const char *run_dir) {
    int held = lk->fd >= 0;
    if (held && lk->made_dir) {
        /* unlinked while still held: a process waiting on this lock would hold a file nobody else
         * sees, but a folder this process created a moment ago has no waiters worth keeping */
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/lock", run_dir);
        unlink(path);
        rmdir(run_dir); /* only when empty: anything written into it stays */
    }
    run_dir_unlock(lk);
}

/* ---------------------------------------------------------------- file names, temporaries */
static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* N of "step_N.h5", or -1. */
static int step_file(const char *name, uint64_t *step) {
    size_t n = strlen(name);
    if (n < 9 || strncmp(name, "step_", 5) || strcmp(name + n - 3, ".h5")) return -1;
    char digits[32];
    if (n - 8 > sizeof digits - 1) return -1;
    memcpy(digits, name + 5, n - 8);
    digits[n - 8] = 0;
    if (!all_digits(digits)) return -1;
    *step = strtoull(digits, NULL, 10);
    return 0;
}

/* NAME.tmp.SUFFIX, NAME one of the files a run writes, left by a dead writer? Checkpoints'
 * temporaries end in the writer's pid; config.json's and summary.json's in a mkstemp suffix
 * (only the lock holder writes those). */
static int stale_temporary(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    char base[256];
    uint64_t step;
    snprintf(base, sizeof base, "%.*s", (int)(t - name), name);
    int json = !strcmp(base, "config.json") || !strcmp(base, "summary.json");
    if (!json && strcmp(base, "latest.h5") && step_file(base, &step)) return 0;
    const char *suffix = t + 5;
    if (all_digits(suffix) && strlen(suffix) <= 9) {
        long pid = strtol(suffix, NULL, 10);
        return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    }
    return json;
}

static size_t clean_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    char path[PATH_MAX + 256];
    for (struct dirent *e; (e = readdir(d));) {
        if (!stale_temporary(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        n += unlink(path) == 0;
    }
    closedir(d);
    return n;
}

size_t run_dir_clean_temporaries(const char *run_dir) {
    char ckpt[PATH_MAX + 8];
    snprintf(ckpt, sizeof ckpt, "%s/ckpt", run_dir);
    return clean_folder(run_dir) + clean_folder(ckpt);
}

/* ---------------------------------------------------------------- retention */
static int u64_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

size_t run_dir_prune_checkpoints(const char *run_dir, size_t keep, uint64_t current) {
    if (keep == 0) return 0;
    char dir[PATH_MAX + 8], path[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0, cap = 64;
    uint64_t *steps = xmalloc(cap * sizeof *steps);
    for (struct dirent *e; (e = readdir(d));) {
        uint64_t s;
        if (step_file(e->d_name, &s) || s == current) continue;
        if (n == cap) steps = xrealloc(steps, (cap *= 2) * sizeof *steps);
        steps[n++] = s;
    }
    closedir(d);
    qsort(steps, n, sizeof *steps, u64_desc);
    size_t removed = 0;
    for (size_t i = keep - 1; i < n; i++) { /* `current` takes one of the `keep` places */
        snprintf(path, sizeof path, "%s/step_%llu.h5", dir, (unsigned long long)steps[i]);
        removed += unlink(path) == 0;
    }
    xfree(steps);
    return removed;
}

/* ---------------------------------------------------------------- metrics */
/* Byte length of the metrics that belong to steps up to checkpoint `step` (see run_metrics_open). */
static long metrics_keep_bytes(FILE *f, uint64_t step) {
    char *line = NULL;
    size_t cap = 0;
    long off = 0, after_marker = -1, before_later = -1;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        cJSON *o = line[len - 1] == '\n' ? cJSON_Parse(line) : NULL; /* a cut last line is dropped */
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "step"), *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
        int later = !cJSON_IsNumber(s) || s->valuedouble > (double)step;
        if (later && before_later < 0) before_later = off;
        off += (long)len;
        if (!later && before_later < 0 && s->valuedouble == (double)step && cJSON_IsString(ev) && !strcmp(ev->valuestring, RUN_METRICS_CHECKPOINT_EVENT))
            after_marker = off;
        cJSON_Delete(o);
    }
    free(line);
    if (after_marker >= 0) return after_marker;
    return before_later >= 0 ? before_later : off;
}

FILE *run_metrics_open(const char *path, int resume, uint64_t step, Err *err) {
    if (resume) {
        FILE *f = fopen(path, "r");
        if (f) {
            long keep = metrics_keep_bytes(f, step);
            fclose(f);
            if (truncate(path, (off_t)keep) != 0) {
                err_set(err, "%s: cannot cut back to step %llu (%s)", path, (unsigned long long)step, strerror(errno));
                return NULL;
            }
        }
    }
    FILE *f = fopen(path, resume ? "a" : "w");
    if (!f) err_set(err, "%s: cannot open (%s)", path, strerror(errno));
    return f;
}

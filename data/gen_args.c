#include "data/gen_args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of "--name V", "--name=V" or (shortc) "-n V" at argv[*i]; *missing is set when the
 * option is there without its value. NULL when argv[*i] is another option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, const char *shortc, int *missing) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    int is_short = shortc && !strcmp(a, shortc);
    if (!is_short) {
        if (a[0] != '-' || a[1] != '-' || strncmp(a + 2, name, n)) return NULL;
        if (a[2 + n] == '=') return a + 3 + n;
        if (a[2 + n] != 0) return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

/* Whole-string numbers: "12abc", "", " 5" and out-of-range values are refused, not truncated. */
static int parse_u64(const char *s, uint64_t *v) {
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno == ERANGE) return -1;
    *v = x;
    return 0;
}

static int parse_f64(const char *s, double *v) {
    if (!*s) return -1;
    char *end;
    double x = strtod(s, &end);
    if (*end || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

enum { OPT_N, OPT_TEMP, OPT_TOP_P, OPT_REP, OPT_SEED, OPT_PROMPT, OPT_PROMPT_FILE, OPT_COUNT };

static const struct {
    const char *name, *shortc, *rule;
} kOpts[OPT_COUNT] = {
    [OPT_N] = {"tokens", "-n", "an integer in [1, 1000000]"},
    [OPT_TEMP] = {"temp", NULL, "a finite number >= 0"},
    [OPT_TOP_P] = {"top-p", NULL, "a number in (0, 1]"},
    [OPT_REP] = {"rep-penalty", NULL, "a finite number > 0"},
    [OPT_SEED] = {"seed", NULL, "an integer in [0, 2^64)"},
    [OPT_PROMPT] = {"prompt", NULL, "text, or - for standard input"},
    [OPT_PROMPT_FILE] = {"prompt-file", NULL, "a file"},
};

/* Stores v into g for option k; -1 when v breaks the option's rule. */
static int set_value(GenArgs *g, int k, const char *v) {
    uint64_t u;
    double x;
    switch (k) {
    case OPT_N:
        if (parse_u64(v, &u) || u < 1 || u > GEN_MAX_TOKENS) return -1;
        g->n = (size_t)u;
        return 0;
    case OPT_SEED: return parse_u64(v, &g->seed);
    case OPT_TEMP:
        if (parse_f64(v, &x) || x < 0) return -1;
        g->temp = x;
        return 0;
    case OPT_TOP_P:
        if (parse_f64(v, &x) || !(x > 0 && x <= 1)) return -1;
        g->top_p = x;
        return 0;
    case OPT_REP:
        if (parse_f64(v, &x) || !(x > 0)) return -1;
        g->rep_penalty = x;
        return 0;
    case OPT_PROMPT: g->prompt_arg = v; return 0;
    default: g->prompt_file = v; return 0;
    }
}

int gen_args_parse(GenArgs *g, int argc, char **argv, int *i, char *msg, size_t msg_size) {
    for (int k = 0; k < OPT_COUNT; k++) {
        if (k == OPT_REP && !g->has_rep_penalty) continue;
        int missing = 0;
        char label[32]; /* the option as typed: -n or --tokens */
        if (kOpts[k].shortc && !strcmp(argv[*i], kOpts[k].shortc)) snprintf(label, sizeof label, "%s", kOpts[k].shortc);
        else snprintf(label, sizeof label, "--%s", kOpts[k].name);
        const char *v = opt_value(argc, argv, i, kOpts[k].name, kOpts[k].shortc, &missing);
        if (missing) {
            snprintf(msg, msg_size, "%s needs a value (%s)", label, kOpts[k].rule);
            return -1;
        }
        if (!v) continue;
        if ((k == OPT_PROMPT && g->prompt_file) || (k == OPT_PROMPT_FILE && g->prompt_arg)) {
            snprintf(msg, msg_size, "give the prompt once: --prompt or --prompt-file");
            return -1;
        }
        if (set_value(g, k, v)) {
            snprintf(msg, msg_size, "%s: \"%s\" is not %s", label, v, kOpts[k].rule);
            return -1;
        }
        return 1;
    }
    return 0;
}

/* All of f into a malloc'd NUL-terminated buffer. */
static int read_all(FILE *f, char **out, size_t *len) {
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *b = realloc(buf, cap *= 2);
        if (!b) free(buf);
        buf = b;
    }
    if (!buf || ferror(f)) {
        free(buf);
        return -1;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int gen_args_read_prompt(GenArgs *g, Err *err) {
    const char *path = g->prompt_file;
    if (!path && g->prompt_arg && !strcmp(g->prompt_arg, "-")) path = "-";
    if (!path) {
        const char *p = g->prompt_arg ? g->prompt_arg : "";
        g->prompt_len = strlen(p);
        g->prompt = malloc(g->prompt_len + 1);
        if (!g->prompt) return err_set(err, "out of memory for the prompt");
        memcpy(g->prompt, p, g->prompt_len + 1);
        return 0;
    }
    int from_stdin = !strcmp(path, "-");
    FILE *f = from_stdin ? stdin : fopen(path, "rb");
    if (!f) return err_set(err, "%s: cannot open the prompt file (%s)", path, strerror(errno));
    int rc = read_all(f, &g->prompt, &g->prompt_len);
    int e = errno;
    if (!from_stdin) fclose(f);
    if (rc) return err_set(err, "%s: cannot read the prompt (%s)", from_stdin ? "standard input" : path, strerror(e));
    return 0;
}

void gen_args_free(GenArgs *g) {
    free(g->prompt);
    g->prompt = NULL;
}

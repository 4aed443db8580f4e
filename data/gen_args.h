/* gen_args.h — the options of text generation, shared by `tern generate` and `tern-run generate`
 * so that both accept and refuse the same values with the same one-line messages:
 *
 *   -n, --tokens N     tokens to generate, an integer in [1, 1000000]
 *   --temp T           temperature, finite and >= 0 (0 = greedy)
 *   --top-p P          nucleus mass, in (0, 1]
 *   --rep-penalty R    repetition penalty, finite and > 0 (1 = off; only where the sampler has one)
 *   --seed S           an integer in [0, 2^64)
 *   --prompt TEXT      the prompt; `--prompt -` reads it from standard input
 *   --prompt-file F    the prompt is the bytes of file F
 *
 * Pure C on libc: the runtime compiles this very file (runtime/sources.cmake). */
#ifndef TERN_GEN_ARGS_H
#define TERN_GEN_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

#define GEN_MAX_TOKENS 1000000

typedef struct GenArgs {
    /* values: the caller sets its defaults before parsing */
    size_t n;
    double temp, top_p, rep_penalty;
    uint64_t seed;
    int has_rep_penalty;     /* the caller's sampler has a repetition penalty: accept --rep-penalty */
    const char *prompt_arg;  /* --prompt's value (NULL: none) */
    const char *prompt_file; /* --prompt-file's value (NULL: none) */
    /* after gen_args_read_prompt: the prompt's bytes (malloc'd, NUL-terminated) */
    char *prompt;
    size_t prompt_len;
} GenArgs;

/* When argv[*i] is one of the options above, parses it (moving *i past its value) and returns 1;
 * returns 0 when it is not one of them, and -1 with a one-line message in msg for a missing or
 * bad value, or a second prompt (a usage error: exit status 2). */
int gen_args_parse(GenArgs *g, int argc, char **argv, int *i, char *msg, size_t msg_size);
/* Reads the prompt (--prompt TEXT, standard input for --prompt -, the file of --prompt-file; ""
 * when none is given); an unreadable file is an error naming it. */
int gen_args_read_prompt(GenArgs *g, Err *err);
void gen_args_free(GenArgs *g);

#endif

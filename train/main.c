/* tern — training and distillation of small language models on CPUs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/blas_core.h"
#include "train/cli.h"

typedef struct Command {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} Command;

static const Command kCommands[] = {
    {"train", cmd_train, "train a model from a JSON config"},
    {"eval", cmd_eval, "val_loss / val_bpb of a checkpoint on a shard"},
    {"export", cmd_export, "write a packed, compressed artifact for tern-run"},
    {"prepare", cmd_prepare, "text / JSONL -> token shards (+ validation split)"},
    {"tokenizer", cmd_tokenizer, "train, encode, decode and inspect tokenizers"},
    {"logits", cmd_logits, "write a teacher's top-k logits for distillation"},
    {"info", cmd_info, "what a checkpoint, shard or artifact holds"},
    {"generate", cmd_generate, "sample text from a checkpoint (trained or imported)"},
    {"import", cmd_import, "a pretrained llama GGUF -> tern checkpoint + SentencePiece tokenizer"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: tern <command> [options]   (tern <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof kCommands / sizeof kCommands[0]; i++)
        fprintf(f, "  %-10s %s\n", kCommands[i].name, kCommands[i].help);
}

int main(int argc, char **argv) {
    /* OMP_WAIT_POLICY=passive and OpenBLAS kernels that match the CPU, unless the user set them:
     * both are read when the libraries load, so this may re-execute tern once */
    blas_core_setup(argv, 1);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tern 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof kCommands / sizeof kCommands[0]; i++)
        if (!strcmp(argv[1], kCommands[i].name)) return kCommands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tern: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

int cli_is_flag(const char *arg, const char *name) {
    return arg[0] == '-' && arg[1] == '-' && !strcmp(arg + 2, name);
}

const char *cli_value(int argc, char **argv, int *i, const char *name) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (a[0] != '-' || a[1] != '-' || strncmp(a + 2, name, n)) return NULL;
    if (a[2 + n] == '=') return a + 3 + n;
    if (a[2 + n] != 0) return NULL;
    if (*i + 1 >= argc) {
        /* a usage error found while parsing, before anything is opened: returning NULL would
         * make the caller report "unknown option" as well, contradicting this line */
        fprintf(stderr, "tern %s: --%s needs a value\n", argv[0], name);
        exit(2);
    }
    return argv[++*i];
}

#include <stdio.h>

#include "train/cli.h"

int cmd_logits(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tern logits: not implemented yet\n");
    return 2;
}

#include <stdio.h>

#include "train/cli.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tern eval: not implemented yet\n");
    return 2;
}

#include <stdio.h>

#include "train/cli.h"

int cmd_prepare(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tern prepare: not implemented yet\n");
    return 2;
}

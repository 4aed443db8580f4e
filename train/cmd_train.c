#include <stdio.h>

#include "train/cli.h"

int cmd_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tern train: not implemented yet\n");
    return 2;
}

#include <stdio.h>

#include "train/cli.h"

int cmd_export(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "tern export: not implemented yet\n");
    return 2;
}

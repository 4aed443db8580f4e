/* An LD_PRELOAD shim for e2e/blas_core.py: OpenBLAS "chose" the generic Prescott kernels, as
 * Debian's 0.3.21 does on Intel Emerald Rapids, until tern has re-executed itself (TERN_REEXEC
 * set); then the core really in use is reported. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char *openblas_get_corename(void) {
    char *(*real)(void) = (char *(*)(void))dlsym(RTLD_NEXT, "openblas_get_corename");
    return getenv("TERN_REEXEC") && real ? real() : "Prescott";
}

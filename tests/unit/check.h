/* check.h — the little assertion kit the unit tests share. Each check prints what it compared
 * on failure; tests print their comparisons and worst errors as they go. */
#ifndef TERN_TEST_CHECK_H
#define TERN_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int g_failures = 0; /* per test binary */

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            g_failures++;                                                  \
            printf("  FAIL %s:%d: %s — ", __FILE__, __LINE__, #cond);      \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
        }                                                                  \
    } while (0)

/* max |a-b| / (atol + rtol*|b|) style comparison; returns max abs error and prints a line */
static inline double compare_arrays(const char *what, const float *a, const float *b, size_t n,
                                    double atol, double rtol) {
    double worst = 0, worst_ratio = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double tol = atol + rtol * fabs((double)b[i]);
        if (d > worst) worst = d;
        if (d / tol > worst_ratio || isnan(d)) {
            worst_ratio = isnan(d) ? INFINITY : d / tol;
            wi = i;
        }
    }
    int ok = worst_ratio <= 1.0;
    printf("  %-44s n=%-8zu max abs err %.3e  %s\n", what, n, worst, ok ? "ok" : "FAIL");
    if (!ok) {
        printf("    worst at %zu: %.8g vs %.8g (atol %.1e rtol %.1e)\n", wi, a[wi], b[wi], atol, rtol);
        g_failures++;
    }
    return worst;
}

static inline int test_summary(const char *name) {
    if (g_failures) printf("%s: %d check(s) FAILED\n", name, g_failures);
    else printf("%s: all checks passed\n", name);
    return g_failures ? 1 : 0;
}

#endif

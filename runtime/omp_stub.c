/* omp_stub.c — compiled only when OpenMP is unavailable (runtime/CMakeLists.txt): the
 * single-threaded answers for the omp_* calls made by the shared tokenizer and util sources. */
#include <omp.h>

int omp_get_max_threads(void) { return 1; }
int omp_get_thread_num(void) { return 0; }
int omp_get_num_threads(void) { return 1; }
void omp_set_num_threads(int n) { (void)n; }

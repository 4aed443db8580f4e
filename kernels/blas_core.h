/* blas_core.h — OpenBLAS kernels that match the CPU, without the user knowing.
 *
 * A DYNAMIC_ARCH OpenBLAS picks its kernels ("core") from CPUID when it is loaded, and one older
 * than the CPU falls back: Debian 12's 0.3.21 runs Intel Emerald Rapids (family 6 model 207) on
 * the generic "Prescott" kernels (4.4x slower sgemm), and this AMD Zen 5 on "Haswell" (AVX2)
 * kernels although it has AVX-512. The choice can only be changed through OPENBLAS_CORETYPE,
 * which OpenBLAS reads in its constructor, before main(); so blas_core_setup checks the core
 * in use against what CPUID reports and, when it is below, sets the variable and re-executes
 * the program once (see experiments/bench/README.md for the measurements behind the rule).
 *
 * Every program that runs BLAS calls blas_core_setup first thing in main(): `tern`, the
 * benchmarks, the C unit tests. A variable the user set is never changed. */
#ifndef TERN_BLAS_CORE_H
#define TERN_BLAS_CORE_H

#include <stddef.h>

/* What the CPU runs (CPUID and what the OS saves in XCR0), in OpenBLAS's terms. */
typedef enum {
    ISA_OLD = 0,  /* below AVX2 + FMA (or not x86) */
    ISA_AVX2 = 2, /* AVX2 + FMA: OpenBLAS's Haswell kernels */
    ISA_AVX512 = 3 /* AVX-512 F/CD/BW/DQ/VL: OpenBLAS's SkylakeX kernels */
} CpuIsa;

typedef struct CpuInfo {
    CpuIsa isa;
    int avx512_bf16;
    unsigned family, model; /* display family / model, as /proc/cpuinfo shows them */
    char brand[49];         /* CPUID brand string, "" when the CPU has none */
} CpuInfo;

void cpu_info_detect(CpuInfo *ci);
const char *cpu_isa_name(CpuIsa isa); /* "AVX-512", "AVX2", "below AVX2" */

/* The core to ask OpenBLAS for instead of `current` on a CPU with `isa`, or NULL to keep it.
 * Any core below AVX2 (Prescott, Core2, Nehalem, Sandybridge, Barcelona, ...) is replaced on
 * an AVX2 or AVX-512 CPU; an AVX2 core (Haswell, Zen) on an AVX-512 CPU becomes SkylakeX,
 * measured 1.6-2x faster for sgemm on Zen 5. Names this table does not know are kept. */
const char *blas_core_upgrade(const char *current, CpuIsa isa);

/* First thing in main(): when the user left them unset, sets OPENBLAS_CORETYPE (if the core
 * in use is below the CPU) and, with passive_wait, OMP_WAIT_POLICY=passive, then re-executes
 * /proc/self/exe with argv once (TERN_REEXEC guards against a second time). Returns when
 * nothing needed changing or the exec failed (the program then runs as it is). */
void blas_core_setup(char **argv, int passive_wait);

/* The core OpenBLAS runs ("SkylakeX"), and its build line ("OpenBLAS 0.3.21 DYNAMIC_ARCH ..."). */
const char *blas_core_name(void);
const char *blas_config(void);

/* The core and who chose it, for run headers, summaries and `tern info`:
 * "SkylakeX (set by tern; OpenBLAS chose Haswell)", "Haswell (OPENBLAS_CORETYPE)",
 * "SkylakeX (OpenBLAS's choice)". */
void blas_core_describe(char *buf, size_t n);

#endif

#include "kernels/blas_core.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xcr0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void cpu_info_detect(CpuInfo *ci) {
    memset(ci, 0, sizeof *ci);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    ci->family = fam == 0xf ? fam + ((a >> 20) & 0xff) : fam;
    ci->model = fam == 0x6 || fam == 0xf ? mod | (((a >> 16) & 0xf) << 4) : mod;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1;
    /* the OS must save the registers: XMM|YMM for AVX2, plus opmask|ZMM_Hi256|Hi16_ZMM */
    unsigned long long xcr = osxsave ? xcr0() : 0;
    int ymm = (xcr & 0x6) == 0x6, zmm = (xcr & 0xe6) == 0xe6;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        int avx2 = (b >> 5) & 1;
        int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 28) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
        if (avx2 && fma && ymm) ci->isa = avx512 && zmm ? ISA_AVX512 : ISA_AVX2;
        if (ci->isa == ISA_AVX512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) ci->avx512_bf16 = (a >> 5) & 1;
    }
    unsigned *brand = (unsigned *)ci->brand;
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004)
        for (unsigned leaf = 0; leaf < 3; leaf++)
            __get_cpuid(0x80000002 + leaf, &brand[4 * leaf], &brand[4 * leaf + 1], &brand[4 * leaf + 2], &brand[4 * leaf + 3]);
    ci->brand[48] = 0;
    char *s = ci->brand; /* brand strings are padded with spaces */
    while (*s == ' ') s++;
    memmove(ci->brand, s, strlen(s) + 1);
    for (size_t n = strlen(ci->brand); n > 0 && ci->brand[n - 1] == ' ';) ci->brand[--n] = 0;
}
#else
void cpu_info_detect(CpuInfo *ci) { memset(ci, 0, sizeof *ci); }
#endif

const char *cpu_isa_name(CpuIsa isa) {
    return isa == ISA_AVX512 ? "AVX-512" : isa == ISA_AVX2 ? "AVX2" : "below AVX2";
}

/* OpenBLAS's x86-64 core names (driver/others/dynamic.c) by the instructions their kernels use. */
static const struct {
    const char *name;
    CpuIsa isa;
} kCores[] = {
    {"Katmai", ISA_OLD},      {"Coppermine", ISA_OLD},   {"Northwood", ISA_OLD},  {"Prescott", ISA_OLD},
    {"Banias", ISA_OLD},      {"Atom", ISA_OLD},         {"Core2", ISA_OLD},      {"Penryn", ISA_OLD},
    {"Dunnington", ISA_OLD},  {"Nehalem", ISA_OLD},      {"Athlon", ISA_OLD},     {"Opteron", ISA_OLD},
    {"Opteron_SSE3", ISA_OLD}, {"Barcelona", ISA_OLD},   {"Nano", ISA_OLD},       {"Bobcat", ISA_OLD},
    {"Sandybridge", ISA_OLD}, {"Bulldozer", ISA_OLD},    {"Piledriver", ISA_OLD}, {"Steamroller", ISA_OLD},
    {"Unknown", ISA_OLD},     {"generic", ISA_OLD},      {"Haswell", ISA_AVX2},   {"Zen", ISA_AVX2},
    {"Excavator", ISA_AVX2},  {"SkylakeX", ISA_AVX512},  {"Cooperlake", ISA_AVX512}, {"SapphireRapids", ISA_AVX512},
};

const char *blas_core_upgrade(const char *current, CpuIsa isa) {
    for (size_t i = 0; i < sizeof kCores / sizeof kCores[0]; i++) {
        if (strcasecmp(current, kCores[i].name)) continue;
        if (kCores[i].isa >= isa) return NULL;
        /* SkylakeX, not Cooperlake: the two share their float32 kernels (Cooperlake adds bf16
         * ones tern does not call), and 0.3.21 does not accept "Cooperlake" by name */
        return isa == ISA_AVX512 ? "SkylakeX" : "Haswell";
    }
    return NULL;
}

const char *blas_core_name(void) { return openblas_get_corename(); }

const char *blas_config(void) { return openblas_get_config(); }

void blas_core_setup(char **argv, int passive_wait) {
    if (getenv("TERN_REEXEC")) return;
    int changed = 0, set_core = 0;
    if (passive_wait && !getenv("OMP_WAIT_POLICY")) {
        /* spinning OpenMP waits turn another process on one core into a 15-50x slowdown;
         * sleeping waits cost nothing measurable on an idle machine (libgomp reads this when
         * it is loaded) */
        setenv("OMP_WAIT_POLICY", "passive", 1);
        changed = 1;
    }
    if (!getenv("OPENBLAS_CORETYPE")) {
        CpuInfo ci;
        cpu_info_detect(&ci);
        const char *now = blas_core_name(), *want = blas_core_upgrade(now, ci.isa);
        if (want) {
            setenv("OPENBLAS_CORETYPE", want, 1);
            setenv("TERN_BLAS_CORE_FROM", now, 1);
            changed = set_core = 1;
        }
    }
    if (!changed) return;
    setenv("TERN_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the kernels loaded, and do not claim others */
    if (set_core) {
        unsetenv("OPENBLAS_CORETYPE");
        unsetenv("TERN_BLAS_CORE_FROM");
    }
}

void blas_core_describe(char *buf, size_t n) {
    const char *user = getenv("OPENBLAS_CORETYPE"), *from = getenv("TERN_BLAS_CORE_FROM");
    if (!user) snprintf(buf, n, "%s (OpenBLAS's choice)", blas_core_name());
    else if (from) snprintf(buf, n, "%s (set by tern; OpenBLAS chose %s)", blas_core_name(), from);
    else snprintf(buf, n, "%s (OPENBLAS_CORETYPE=%s)", blas_core_name(), user);
}

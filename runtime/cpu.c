/* cpu.c — which kernels this CPU can run, from cpuid and the OS's saved register state (XCR0):
 * AVX2 needs AVX2 + FMA + F16C with YMM state enabled; the AVX-512 kernels need F, BW, VL, DQ
 * with ZMM/opmask state enabled, and use VNNI (vpdpbusd) and VBMI (vpmultishiftqb) where
 * present. Nothing is cached in globals: callers keep the answer (TrtModel does). */
#include <string.h>

#include "runtime/rt_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

static void features(int *avx2, int *avx512, int *vnni, int *vbmi) {
    unsigned a, b, c, d;
    *avx2 = *avx512 = *vnni = *vbmi = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return; /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    *avx2 = ((b >> 5) & 1) && fma && f16c;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    *avx512 = *avx2 && f && dq && bw && vl && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    *vnni = *avx512 && ((c >> 11) & 1);
    *vbmi = *avx512 && ((c >> 1) & 1);
}
#else
static void features(int *avx2, int *avx512, int *vnni, int *vbmi) { *avx2 = *avx512 = *vnni = *vbmi = 0; }
#endif

int rt_cpu_isa(void) {
    int avx2, avx512, vnni, vbmi;
    features(&avx2, &avx512, &vnni, &vbmi);
    if (vnni) return RT_ISA_AVX512VNNI;
    if (avx512) return RT_ISA_AVX512;
    if (avx2) return RT_ISA_AVX2;
    return RT_ISA_SCALAR;
}

int rt_isa_from_name(const char *s) {
    if (!s || !*s || !strcmp(s, "auto")) return RT_ISA_AVX512VNNI;
    if (!strcmp(s, "scalar")) return RT_ISA_SCALAR;
    if (!strcmp(s, "avx2")) return RT_ISA_AVX2;
    if (!strcmp(s, "avx512")) return RT_ISA_AVX512;
    if (!strcmp(s, "avx512vnni")) return RT_ISA_AVX512VNNI;
    return -1;
}

void rt_kernels_select(RtKernels *k, int isa) {
    int avx2, avx512, vnni, vbmi;
    features(&avx2, &avx512, &vnni, &vbmi);
    rt_kernels_scalar(k);
    if (isa >= RT_ISA_AVX512 && avx512) {
        rt_kernels_avx512(k, isa >= RT_ISA_AVX512VNNI && vnni, vbmi);
    } else if (isa >= RT_ISA_AVX2 && avx2) {
        rt_kernels_avx2(k);
    }
}

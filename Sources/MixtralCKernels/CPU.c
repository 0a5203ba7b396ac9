#include "MixtralCKernels.h"
#include <string.h>

// The CPU probe: which instructions the CPU executes and the OS supports. An instruction
// set counts only when cpuid reports it and XCR0 shows that the OS saves its registers
// (AVX: SSE and YMM state; AVX-512: also the opmask and both halves of ZMM state), as
// ggml-cpu's feature checks and the Intel SDM's "detection of AVX" describe.

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
    __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
}

// xgetbv without a target attribute: only called once OSXSAVE says the instruction exists.
static uint64_t xgetbv0(void) {
    uint32_t low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return ((uint64_t)high << 32) | low;
}

void mx_cpu_detect(mx_cpu_info *info) {
    memset(info, 0, sizeof *info);
    uint32_t r[4];
    cpuid(0, 0, r);
    const uint32_t max_leaf = r[0];
    uint32_t ecx1 = 0, ebx7 = 0, ecx7 = 0, eax71 = 0;
    if (max_leaf >= 1) { cpuid(1, 0, r); ecx1 = r[2]; }
    if (max_leaf >= 7) {
        cpuid(7, 0, r);
        ebx7 = r[1];
        ecx7 = r[2];
        if (r[0] >= 1) { cpuid(7, 1, r); eax71 = r[0]; }
    }
    const int osxsave = (ecx1 >> 27) & 1;
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const int avx_state = (xcr0 & 0x6) == 0x6;              // XMM and YMM
    const int avx512_state = avx_state && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM

    uint32_t f = 0;
    if ((ecx1 >> 20) & 1) f |= MX_CPU_SSE42;
    if (avx_state) {
        if ((ecx1 >> 28) & 1) f |= MX_CPU_AVX;
        if ((ebx7 >> 5) & 1) f |= MX_CPU_AVX2;
        if ((ecx1 >> 12) & 1) f |= MX_CPU_FMA;
        if ((ecx1 >> 29) & 1) f |= MX_CPU_F16C;
        if ((eax71 >> 4) & 1) f |= MX_CPU_AVX_VNNI;
    }
    if ((ebx7 >> 8) & 1) f |= MX_CPU_BMI2;
    if (avx512_state) {
        if ((ebx7 >> 16) & 1) f |= MX_CPU_AVX512F;
        if ((ebx7 >> 17) & 1) f |= MX_CPU_AVX512DQ;
        if ((ebx7 >> 30) & 1) f |= MX_CPU_AVX512BW;
        if ((ebx7 >> 31) & 1) f |= MX_CPU_AVX512VL;
        if ((ecx7 >> 1) & 1) f |= MX_CPU_AVX512VBMI;
        if ((ecx7 >> 11) & 1) f |= MX_CPU_AVX512VNNI;
        if ((eax71 >> 5) & 1) f |= MX_CPU_AVX512BF16;
    }
    info->features = f;

    const uint32_t avx2_level = MX_CPU_AVX | MX_CPU_AVX2 | MX_CPU_FMA | MX_CPU_F16C;
    const uint32_t avx512_level = avx2_level | MX_CPU_AVX512F | MX_CPU_AVX512BW | MX_CPU_AVX512DQ | MX_CPU_AVX512VL;
    info->level = (f & avx512_level) == avx512_level ? MX_LEVEL_AVX512
                : (f & avx2_level) == avx2_level ? MX_LEVEL_AVX2 : MX_LEVEL_GENERIC;

    cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        uint32_t words[12];
        for (uint32_t i = 0; i < 3; i++) cpuid(0x80000002u + i, 0, words + 4 * i);
        memcpy(info->brand, words, 48);
        info->brand[48] = 0;
        // Brand strings are padded with spaces on either side.
        size_t start = 0, end = strlen(info->brand);
        while (start < end && info->brand[start] == ' ') start++;
        while (end > start && info->brand[end - 1] == ' ') end--;
        memmove(info->brand, info->brand + start, end - start);
        info->brand[end - start] = 0;
    }
}

#else

void mx_cpu_detect(mx_cpu_info *info) {
    memset(info, 0, sizeof *info);
#if defined(__aarch64__)
    info->features = MX_CPU_NEON;  // every AArch64 CPU has Advanced SIMD
#endif
    info->level = MX_LEVEL_GENERIC;
}

#endif

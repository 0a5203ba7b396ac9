// The portable kernels compiled for AVX2 + FMA + F16C (reached only through a table of
// that level, KernelTable.c).
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include "KernelVariants.h"

#pragma clang attribute push(__attribute__((target("avx,avx2,fma,f16c"))), apply_to = function)
#define MX_SUFFIX avx2
#define MX_VW 8
#define MX_FUSED 1
#define MX_F16C 1
#include "Portable.h"
#pragma clang attribute pop
#endif

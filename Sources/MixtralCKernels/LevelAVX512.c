// The portable kernels compiled for AVX-512 F/BW/DQ/VL (reached only through a table of
// that level, KernelTable.c).
#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include "KernelVariants.h"

#pragma clang attribute push(__attribute__((target("avx,avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl"))), apply_to = function)
#define MX_SUFFIX avx512
#define MX_VW 16
#define MX_FUSED 1
#define MX_F16C 1
#include "Portable.h"
#pragma clang attribute pop
#endif

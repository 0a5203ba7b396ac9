// The portable kernels for any CPU (x86-64's baseline SSE2, or aarch64's NEON).
#include <math.h>
#include <string.h>
#include "KernelVariants.h"

#define MX_SUFFIX generic
#define MX_VW 4
#if defined(__aarch64__)
#define MX_FUSED 1
#else
#define MX_FUSED 0
#endif
#define MX_F16C 0
#include "Portable.h"

float mx_round_to_half(float x) { return round_to_half(x); }

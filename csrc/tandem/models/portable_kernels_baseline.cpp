// The portable kernels for the target's baseline instructions (x86-64: SSE2; aarch64: NEON).
#define TANDEM_PORTABLE_BUILD baseline
#include "tandem/models/portable_kernels_impl.h"

// The packed decode kernels for CPUs without AVX-512 (most laptops: AVX2-only x86, ARM with
// NEON): the same products as packed_matmul's AVX-512 kernels, written once against Eigen's
// fixed-size arrays so that Eigen's packets map them to whatever vector unit the build targets.
// The file is compiled twice on x86-64 (baseline SSE2, and AVX2 + FMA + F16C) and the build the
// CPU can run is picked at run time; elsewhere (aarch64: NEON is baseline) once.
#pragma once

#include <cstdint>
#include <string>

#include "tandem/core/formats/gguf_quants.h"

namespace tandem::portable {

/// y[m * ldy + r] = row r of the packed weight (rows of `row_bytes` from `base`) . x[m] for
/// r in [r0, r1) and the M activation rows of x ([M, cols], float32).
using RowsFn = void (*)(const uint8_t* base, int64_t row_bytes, const float* x, int64_t M, int64_t cols, float* y,
                        int64_t ldy, int64_t r0, int64_t r1);

/// The kernel for `type` from the widest build this CPU runs, or nullptr for a type without one.
RowsFn rows_for(gguf::GgmlType type);

/// Which build rows_for picks here and Eigen's instruction sets in it, e.g. "avx2 (AVX SSE, ...)".
std::string instruction_sets();

// The builds (one per compilation of portable_kernels_impl.h); a build this target cannot make
// returns nullptr.
namespace baseline {
RowsFn rows_for(gguf::GgmlType type);
const char* simd();
}  // namespace baseline
namespace avx2 {
RowsFn rows_for(gguf::GgmlType type);
const char* simd();
}  // namespace avx2

}  // namespace tandem::portable

// The body of the portable packed kernels, included once per build with TANDEM_PORTABLE_BUILD
// naming the namespace (portable_kernels_baseline.cpp, portable_kernels_avx2.cpp). Each block
// is expanded to 32 floats with plain C++ (blocks::code_block, which the compiler vectorises for
// the build's target) and multiplied into Eigen arrays of 32 lanes, one per activation row.
#include <Eigen/Core>

#include "tandem/models/block_codes.h"
#include "tandem/models/portable_kernels.h"

namespace tandem::portable::TANDEM_PORTABLE_BUILD {
namespace {

using Lanes = Eigen::Array<float, 32, 1>;
using gguf::GgmlType;

// The 32 weights of block b: scale * code + offset per half (the exact dequantized values),
// written straight into the caller's aligned buffer (a store of one width then a load of
// another would stall on store forwarding).
template <GgmlType T>
inline void expand(const uint8_t* row, int64_t b, float* __restrict w) {
  blocks::CodeBlock c;
  blocks::code_block<T>(row, b, c);
  for (int h = 0; h < 2; ++h) {  // per half: one scale and offset
    const float s = c.scale[h], o = c.offset[h];
#pragma omp simd
    for (int l = 16 * h; l < 16 * h + 16; ++l) w[l] = s * c.codes[l] + o;
  }
}

// One weight row times MT activation rows: each expanded block feeds MT multiply-adds.
template <GgmlType T, int MT>
void row_times(const uint8_t* row, const float* x, int64_t ldx, int64_t n_blocks, float* y, int64_t ldy) {
  Lanes acc[MT];
  for (auto& a : acc) a.setZero();
  alignas(64) float w[32];
  const Eigen::Map<const Lanes, Eigen::Aligned64> wv(w);
  for (int64_t b = 0; b < n_blocks; ++b) {
    expand<T>(row, b, w);
    for (int m = 0; m < MT; ++m) acc[m] += wv * Eigen::Map<const Lanes>(x + m * ldx + b * 32);
  }
  for (int m = 0; m < MT; ++m) y[m * ldy] = acc[m].sum();
}

template <GgmlType T>
void rows(const uint8_t* base, int64_t row_bytes, const float* x, int64_t M, int64_t cols, float* y, int64_t ldy,
          int64_t r0, int64_t r1) {
  const int64_t nb = cols / 32;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = base + r * row_bytes;
    int64_t m = 0;
    // Tiles of 4 rows: 4 accumulators of 32 lanes fill the 16 registers of AVX2 / NEON.
    for (; m + 4 <= M; m += 4) row_times<T, 4>(row, x + m * cols, cols, nb, y + m * ldy + r, ldy);
    switch (M - m) {
      case 3: row_times<T, 3>(row, x + m * cols, cols, nb, y + m * ldy + r, ldy); break;
      case 2: row_times<T, 2>(row, x + m * cols, cols, nb, y + m * ldy + r, ldy); break;
      case 1: row_times<T, 1>(row, x + m * cols, cols, nb, y + m * ldy + r, ldy); break;
      default: break;
    }
  }
}

}  // namespace

RowsFn rows_for(gguf::GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: return rows<GgmlType::Q4_0>;
    case GgmlType::Q4_1: return rows<GgmlType::Q4_1>;
    case GgmlType::Q5_0: return rows<GgmlType::Q5_0>;
    case GgmlType::Q8_0: return rows<GgmlType::Q8_0>;
    case GgmlType::Q4_K: return rows<GgmlType::Q4_K>;
    case GgmlType::Q6_K: return rows<GgmlType::Q6_K>;
    default: return nullptr;
  }
}

const char* simd() { return Eigen::SimdInstructionSetsInUse(); }

}  // namespace tandem::portable::TANDEM_PORTABLE_BUILD

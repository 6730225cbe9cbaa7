// The body of the portable packed kernels, included once per build with TANDEM_PORTABLE_BUILD
// naming the namespace (portable_kernels_baseline.cpp, portable_kernels_avx2.cpp). Each block
// is expanded to 32 floats through integer lanes (code_lanes.h: the build's instructions where
// written, else plain C++) and multiplied into Eigen arrays of 32 lanes, one per activation row.
#include <Eigen/Core>

#include "tandem/models/block_codes.h"
#include "tandem/models/code_lanes.h"
#include "tandem/models/portable_kernels.h"

namespace tandem::portable::TANDEM_PORTABLE_BUILD {
namespace {

using Lanes = Eigen::Array<float, 32, 1>;
using gguf::GgmlType;

// The 32 weights of block b, scale * code + offset per half (the exact dequantized values),
// written into the caller's aligned buffer: the codes in integer lanes (code_lanes.h, the same
// bit layouts as block_codes.h), one fused multiply-add per 8 weights.
template <GgmlType T>
inline void expand(const uint8_t* row, int64_t b, float* __restrict w) {
  using namespace lanes;
  using blocks::half_to_float;
  if constexpr (T == GgmlType::Q4_0 || T == GgmlType::Q4_1) {
    const uint8_t* p = row + b * blocks::kBlockBytes<T>;
    const uint8_t* qs = p + (T == GgmlType::Q4_0 ? 2 : 4);
    const float d = half_to_float(p), o = T == GgmlType::Q4_0 ? -8.f * d : half_to_float(p + 2);
    const Codes8 z0 = widen_u8(qs), z1 = widen_u8(qs + 8);  // byte j: codes j (low nibble), j + 16 (high)
    dequantize(mask(z0, 15), d, o, w);
    dequantize(mask(z1, 15), d, o, w + 8);
    dequantize(shr(z0, 4), d, o, w + 16);
    dequantize(shr(z1, 4), d, o, w + 24);
  } else if constexpr (T == GgmlType::Q8_0) {
    const uint8_t* p = row + b * blocks::kBlockBytes<T>;
    const float d = half_to_float(p);
    for (int k = 0; k < 4; ++k) dequantize(widen_s8(p + 2 + 8 * k), d, 0.f, w + 8 * k);
  } else if constexpr (T == GgmlType::Q5_0) {
    const uint8_t* p = row + b * blocks::kBlockBytes<T>;
    uint32_t qh;  // bit j: the fifth bit of code j
    std::memcpy(&qh, p + 2, 4);
    const float d = half_to_float(p), o = -16.f * d;
    const Codes8 z0 = widen_u8(p + 6), z1 = widen_u8(p + 14);
    dequantize(mask(z0, 15) | bit4_of(qh, 0), d, o, w);
    dequantize(mask(z1, 15) | bit4_of(qh, 8), d, o, w + 8);
    dequantize(shr(z0, 4) | bit4_of(qh, 16), d, o, w + 16);
    dequantize(shr(z1, 4) | bit4_of(qh, 24), d, o, w + 24);
  } else if constexpr (T == GgmlType::Q4_K) {
    const uint8_t* blk = row + (b >> 3) * blocks::kBlockBytes<T>;
    const int j = static_cast<int>(b & 7);
    uint8_t sc, mn;
    blocks::scale_min_k4(j, blk + 4, sc, mn);
    const float d = half_to_float(blk) * sc, o = -(half_to_float(blk + 2) * mn);
    const uint8_t* q = blk + 16 + (j >> 1) * 32;  // sub-blocks 2i and 2i+1 share 32 bytes: low, high nibbles
    for (int k = 0; k < 4; ++k) {
      const Codes8 z = widen_u8(q + 8 * k);
      dequantize((j & 1) ? shr(z, 4) : mask(z, 15), d, o, w + 8 * k);
    }
  } else {
    static_assert(T == GgmlType::Q6_K, "expand: no layout for this type");
    const uint8_t* blk = row + (b >> 3) * blocks::kBlockBytes<T>;
    const int sub = static_cast<int>(b & 7), h = sub >> 2, j = sub & 3;
    const uint8_t* ql = blk + 64 * h + (j & 1) * 32;
    const uint8_t* qh = blk + 128 + 32 * h;
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192) + 8 * h + 2 * j;
    const float d = half_to_float(blk + 208);
    for (int k = 0; k < 4; ++k) {
      const float s = d * static_cast<float>(sc[k / 2]);  // a scale per 16 weights
      const Codes8 c = mask(shr(widen_u8(ql + 8 * k), j >= 2 ? 4 : 0), 15) | shl(mask(shr(widen_u8(qh + 8 * k), 2 * j), 3), 4);
      dequantize(c, s, -32.f * s, w + 8 * k);
    }
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

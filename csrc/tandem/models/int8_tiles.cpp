#include "tandem/models/int8_tiles.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <cstdlib>  // posix_memalign

#include <immintrin.h>
#include <sys/mman.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "tandem/core/runtime.h"
#include "tandem/models/block_codes.h"
#include "tandem/models/packed_matmul.h"
#include "tandem/models/prefetch.h"

namespace tandem {

namespace {

// One block of quantize_q8. The rounding is the current mode's, round to nearest even by
// default, in both builds: std::nearbyint and VCVTPS2DQ.
void quantize_block_scalar(const float* xb, int8_t* q, float& d, int sum[2]) {
  float amax = 0.f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
  d = amax / 127.f;
  const float id = d > 0 ? 1.f / d : 0.f;
  sum[0] = sum[1] = 0;
  for (int j = 0; j < 32; ++j) {
    const int v = static_cast<int>(std::nearbyint(xb[j] * id));
    q[j] = static_cast<int8_t>(v);
    sum[j / 16] += v;
  }
}

// The same, 16 lanes at a time: the activations are quantized once per product, and a scalar
// loop over a 576-wide row cost ~1 us of a ~9 us product.
__attribute__((target("avx512f,avx512bw"))) void quantize_block_avx512(const float* xb, int8_t* q, float& d, int sum[2]) {
  const __m512 a = _mm512_loadu_ps(xb), b = _mm512_loadu_ps(xb + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  d = amax / 127.f;
  const __m512 id = _mm512_set1_ps(d > 0 ? 1.f / d : 0.f);
  const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, id)), qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, id));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtsepi32_epi8(qa));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtsepi32_epi8(qb));
  sum[0] = _mm512_reduce_add_epi32(qa);
  sum[1] = _mm512_reduce_add_epi32(qb);
}

bool cpu_has_avx512bw() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return ok;
}

}  // namespace

void quantize_q8(const float* x, int64_t n_blocks, Q8Activations& r) {
  r.q.resize(static_cast<size_t>(n_blocks * 32));
  r.d.resize(static_cast<size_t>(n_blocks));
  r.s.resize(static_cast<size_t>(n_blocks));
  r.s16.resize(static_cast<size_t>(2 * n_blocks));
  // cpu_kernels: portable stands for a CPU without AVX-512: the scalar loop (the same values).
  const auto block = cpu_has_avx512bw() && cpu_kernels() == CpuKernels::kAuto ? quantize_block_avx512 : quantize_block_scalar;
  for (int64_t b = 0; b < n_blocks; ++b) {
    float d;
    int sum[2];
    block(x + b * 32, r.q.data() + b * 32, d, sum);
    r.d[static_cast<size_t>(b)] = d;
    r.s[static_cast<size_t>(b)] = d * static_cast<float>(sum[0] + sum[1]);
    r.s16[static_cast<size_t>(2 * b)] = d * static_cast<float>(sum[0]);
    r.s16[static_cast<size_t>(2 * b + 1)] = d * static_cast<float>(sum[1]);
  }
}

namespace {

using gguf::GgmlType;

bool cpu_has_vnni() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c");
  return ok;
}

// The byte order of one record (a group of 16 rows; a block, or a K-quant's super-block).
//
// A block's codes: 4-byte group k (weights 4k..4k+3) of row r at byte 64k + 4r + j (Q8_0, one byte
// per code, plus 128: VPDPBUSD takes its weight operand unsigned), or in the 4-bit types group k
// (< 4) in the low nibble and group k+4 in the high nibble of byte 64k + 4r + j. Then:
//   Q5_0: the fifth bits, for group k a 64-bit mask (bit 4r + j) at 8k;
//   Q6_K: the top two bits, groups 0-3 in one 64-byte vector and 4-7 in the next, bits 2(k%4)
//         and up of byte 4r + j;
// then the scales, 16 rows each: Q4_0, Q5_0, Q8_0: float16 d (offset c * d, c = -8, -16, -128);
// Q4_1: float16 d, float16 m; Q4_K: the 6-bit sc, then the 6-bit min (w = d sc q - dmin mn);
// Q6_K: the signed 8-bit scale of each half of 16 weights (w = d sc (q - 32)). A K-quant's
// record opens with the super-block's float16 d (and Q4_K's dmin) for 16 rows.
template <GgmlType T>
struct TileLayout {
  static constexpr bool kK = T == GgmlType::Q4_K || T == GgmlType::Q6_K;
  static constexpr int64_t kBlocksPerUnit = kK ? 8 : 1;
  static constexpr int64_t kHeader = T == GgmlType::Q4_K ? 64 : T == GgmlType::Q6_K ? 32 : 0;
  static constexpr int64_t kCodes = T == GgmlType::Q8_0 ? 512 : 256;
  static constexpr int64_t kHigh = T == GgmlType::Q5_0 ? 64 : T == GgmlType::Q6_K ? 128 : 0;
  static constexpr int64_t kScales = T == GgmlType::Q4_1 ? 64 : 32;
  static constexpr int64_t kBlock = kCodes + kHigh + kScales;
  static constexpr int64_t kUnit = kHeader + kBlocksPerUnit * kBlock;
  static constexpr float kOffsetPerScale = T == GgmlType::Q4_0 ? -8.f : T == GgmlType::Q5_0 ? -16.f : T == GgmlType::Q8_0 ? -128.f : -32.f;
};

template <GgmlType T>
void fill_tiles(const PackedWeight& w, Int8Tiles& t) {
  using L = TileLayout<T>;
  const int64_t row_bytes = w.raw.size(1), stored = blocks::kBlockBytes<T>;
  const uint8_t* base = w.raw.data_ptr<uint8_t>();
  uint8_t* out = t.bytes.data_ptr<uint8_t>();
  at::parallel_for(0, t.groups, 16, [&](int64_t g0, int64_t g1) {
    blocks::CodeBlock c;
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t r = 0; r < 16 && g * 16 + r < t.rows; ++r) {
        const uint8_t* row = base + (g * 16 + r) * row_bytes;
        for (int64_t b = 0; b < t.blocks; ++b) {
          const int64_t u = b / L::kBlocksPerUnit, i = b % L::kBlocksPerUnit;
          uint8_t* unit = out + (g * t.units + u) * L::kUnit;
          uint8_t* rec = unit + L::kHeader + i * L::kBlock;
          uint8_t *high = rec + L::kCodes, *scales = high + L::kHigh;
          const uint8_t* src = row + (L::kK ? u : b) * stored;  // the stored block (super-block)
          blocks::code_block<T>(row, b, c);
          for (int l = 0; l < 32; ++l) {
            const int code = static_cast<int>(c.codes[l]) + (T == GgmlType::Q8_0 ? 128 : 0);
            const int k = l / 4, at = static_cast<int>(4 * r) + l % 4;
            if constexpr (T == GgmlType::Q8_0) {
              rec[64 * k + at] = static_cast<uint8_t>(code);
            } else {
              rec[64 * (k % 4) + at] |= static_cast<uint8_t>(k < 4 ? (code & 15) : (code & 15) << 4);
              if constexpr (T == GgmlType::Q5_0) high[8 * k + at / 8] |= static_cast<uint8_t>(((code >> 4) & 1) << (at % 8));
              if constexpr (T == GgmlType::Q6_K) high[64 * (k / 4) + at] |= static_cast<uint8_t>((code >> 4) << (2 * (k % 4)));
            }
          }
          auto put16 = [&](uint8_t* dst, const uint8_t* from) { std::memcpy(dst + 2 * r, from, 2); };
          if constexpr (T == GgmlType::Q4_0 || T == GgmlType::Q5_0 || T == GgmlType::Q8_0) {
            put16(scales, src);
          } else if constexpr (T == GgmlType::Q4_1) {
            put16(scales, src);
            put16(scales + 32, src + 2);
          } else if constexpr (T == GgmlType::Q4_K) {
            if (i == 0) put16(unit, src), put16(unit + 32, src + 2);
            blocks::scale_min_k4(static_cast<int>(i), src + 4, scales[r], scales[16 + r]);
          } else {
            static_assert(T == GgmlType::Q6_K, "fill_tiles: no layout for this type");
            if (i == 0) put16(unit, src + 208);
            const uint8_t* sc = src + 192 + 8 * (i >> 2) + 2 * (i & 3);  // as blocks::code_block
            scales[r] = sc[0];
            scales[16 + r] = sc[1];
          }
        }
      }
  });
}

// Four-byte group k of block b (codes of 16 rows in `v`) times that group of each activation row.
template <int MT>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void group_products(const Q8Activations* const* x, int64_t b,
                                                                                    int k, __m512i v, __m512i* dot) {
  for (int m = 0; m < MT; ++m) {
    int32_t xg;
    std::memcpy(&xg, x[m]->q.data() + b * 32 + 4 * k, 4);
    dot[m] = _mm512_dpbusd_epi32(dot[m], v, _mm512_set1_epi32(xg));
  }
}

// Q6_K's top two bits of group k (of 4 in `plane`) moved to bits 4-5 of each byte (16-bit shifts:
// the bits kept come from the same byte).
__attribute__((target("avx512f,avx512bw"))) inline __m512i top_bits(__m512i plane, int k) {
  const __m512i mask = _mm512_set1_epi8(0x30);
  switch (k) {
    case 0: return _mm512_and_si512(_mm512_slli_epi16(plane, 4), mask);
    case 1: return _mm512_and_si512(_mm512_slli_epi16(plane, 2), mask);
    case 2: return _mm512_and_si512(plane, mask);
    default: return _mm512_and_si512(_mm512_srli_epi16(plane, 2), mask);
  }
}

__attribute__((target("avx512f,avx512bw"))) inline __m512 bytes_as_floats(const uint8_t* p, bool is_signed) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm512_cvtepi32_ps(is_signed ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v));
}

__attribute__((target("avx512f"))) inline __m512 halves_as_floats(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// One group of 16 weight rows times MT activation rows, one record at a time.
template <GgmlType T, int MT>
__attribute__((target("avx512f,avx512bw,avx512vnni,fma"))) void tile(const Int8Tiles& t, int64_t g,
                                                                      const Q8Activations* const* x, float* y,
                                                                      int64_t ldy) {
  using L = TileLayout<T>;
  constexpr bool kHalves = T == GgmlType::Q6_K;
  // The plain 4-bit types take a byte's high code as it lies (code * 16, masked, no shift) into
  // their own integer sums, divided by 16 once per block (exact: every term is a multiple of 16):
  // three vector operations fewer per block than a shift per high code (Q5_0's and Q6_K's high
  // codes gain bits above the nibble, which would not fit a byte times 16).
  constexpr bool kHigh16 = T == GgmlType::Q4_0 || T == GgmlType::Q4_1 || T == GgmlType::Q4_K;
  constexpr bool kSecondSums = kHalves || kHigh16;
  constexpr int kChains = (MT == 1 ? 4 : MT == 2 ? 2 : 1) / (kHigh16 && MT <= 2 ? 2 : 1);
  // A second float accumulator per row where registers allow (the second multiply-add of a block
  // then does not wait on the first).
  constexpr int kFloatChains = MT <= 2 ? 2 : 1;
  __m512 acc[kFloatChains][MT];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi8(0x0F);
  const uint8_t* p = t.bytes.data_ptr<uint8_t>() + g * t.units * L::kUnit;
  for (int64_t u = 0; u < t.units; ++u) {
    __m512 d_super = _mm512_setzero_ps(), dmin_super = _mm512_setzero_ps();
    if constexpr (L::kK) d_super = halves_as_floats(p);
    if constexpr (T == GgmlType::Q4_K) dmin_super = halves_as_floats(p + 32);
    p += L::kHeader;
    for (int64_t i = 0; i < L::kBlocksPerUnit; ++i, p += L::kBlock) {
      prefetch_ahead(p, L::kBlock);  // a core alone keeps too few misses in flight (prefetch.h)
      const int64_t b = u * L::kBlocksPerUnit + i;
      const uint8_t *high = p + L::kCodes, *scales = high + L::kHigh;
      // Integer accumulators: dot2 holds Q6_K's second half. With few activation rows the
      // block's 8 products would form one dependent chain per row (VPDPBUSD's latency, not its
      // throughput, would set the pace), so groups go to kChains separate chains, summed after.
      __m512i dot[kChains][MT], dot2[kChains][MT];
      for (int c = 0; c < kChains; ++c)
        for (int m = 0; m < MT; ++m) dot[c][m] = dot2[c][m] = _mm512_setzero_si512();
      if constexpr (T == GgmlType::Q8_0) {
        for (int k = 0; k < 8; ++k) group_products<MT>(x, b, k, _mm512_loadu_si512(p + 64 * k), dot[k % kChains]);
      } else {
        __m512i plane0 = _mm512_setzero_si512(), plane1 = _mm512_setzero_si512();
        if constexpr (T == GgmlType::Q6_K) plane0 = _mm512_loadu_si512(high), plane1 = _mm512_loadu_si512(high + 64);
        for (int k = 0; k < 4; ++k) {
          const __m512i v = _mm512_loadu_si512(p + 64 * k);
          __m512i lo = _mm512_and_si512(v, low);
          __m512i hi = kHigh16 ? _mm512_andnot_si512(low, v) : _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
          if constexpr (T == GgmlType::Q5_0) {
            const __m512i five = _mm512_set1_epi8(0x10);
            uint64_t m0, m1;
            std::memcpy(&m0, high + 8 * k, 8);
            std::memcpy(&m1, high + 8 * (k + 4), 8);
            lo = _mm512_mask_add_epi8(lo, m0, lo, five);  // bit 4 is clear: adding 16 sets it
            hi = _mm512_mask_add_epi8(hi, m1, hi, five);
          }
          if constexpr (T == GgmlType::Q6_K) {
            lo = _mm512_or_si512(lo, top_bits(plane0, k));
            hi = _mm512_or_si512(hi, top_bits(plane1, k));
          }
          group_products<MT>(x, b, k, lo, dot[k % kChains]);
          group_products<MT>(x, b, k + 4, hi, kSecondSums ? dot2[k % kChains] : dot[k % kChains]);
        }
      }
      for (int c = 1; c < kChains; ++c)  // integer sums: exact in any order
        for (int m = 0; m < MT; ++m) {
          dot[0][m] = _mm512_add_epi32(dot[0][m], dot[c][m]);
          if constexpr (kSecondSums) dot2[0][m] = _mm512_add_epi32(dot2[0][m], dot2[c][m]);
        }
      if constexpr (kHigh16)
        for (int m = 0; m < MT; ++m) dot[0][m] = _mm512_add_epi32(dot[0][m], _mm512_srai_epi32(dot2[0][m], 4));
      if constexpr (T == GgmlType::Q4_0 || T == GgmlType::Q5_0 || T == GgmlType::Q8_0) {
        const __m512 sc = halves_as_floats(scales);  // w = sc * (code + c)
        for (int m = 0; m < MT; ++m) {
          const float d = x[m]->d[static_cast<size_t>(b)], s = x[m]->s[static_cast<size_t>(b)];
          acc[0][m] = _mm512_fmadd_ps(sc, _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[0][m]), _mm512_set1_ps(d), _mm512_set1_ps(L::kOffsetPerScale * s)), acc[0][m]);
        }
      } else if constexpr (T == GgmlType::Q4_1 || T == GgmlType::Q4_K) {
        __m512 sc, off;  // w = sc * code + off
        if constexpr (T == GgmlType::Q4_1) {
          sc = halves_as_floats(scales), off = halves_as_floats(scales + 32);
        } else {  // products of a float16 and a 6-bit integer: exact in float32
          sc = _mm512_mul_ps(d_super, bytes_as_floats(scales, false));
          off = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(dmin_super, bytes_as_floats(scales + 16, false)));
        }
        for (int m = 0; m < MT; ++m) {
          const float d = x[m]->d[static_cast<size_t>(b)], s = x[m]->s[static_cast<size_t>(b)];
          acc[0][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[0][m]), _mm512_mul_ps(sc, _mm512_set1_ps(d)), acc[0][m]);
          acc[kFloatChains - 1][m] = _mm512_fmadd_ps(off, _mm512_set1_ps(s), acc[kFloatChains - 1][m]);
        }
      } else {  // Q6_K: w = sc_half * (code - 32), sc_half = d * (8-bit scale), exact in float32
        const __m512 sc0 = _mm512_mul_ps(d_super, bytes_as_floats(scales, true));
        const __m512 sc1 = _mm512_mul_ps(d_super, bytes_as_floats(scales + 16, true));
        for (int m = 0; m < MT; ++m) {
          const __m512 d = _mm512_set1_ps(x[m]->d[static_cast<size_t>(b)]);
          const float* s16 = x[m]->s16.data() + 2 * b;
          acc[0][m] = _mm512_fmadd_ps(sc0, _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[0][m]), d, _mm512_set1_ps(L::kOffsetPerScale * s16[0])), acc[0][m]);
          acc[kFloatChains - 1][m] = _mm512_fmadd_ps(sc1, _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot2[0][m]), d, _mm512_set1_ps(L::kOffsetPerScale * s16[1])), acc[kFloatChains - 1][m]);
        }
      }
    }
  }
  const int64_t live = std::min<int64_t>(16, t.rows - g * 16);
  const auto mask = static_cast<__mmask16>(live == 16 ? 0xFFFF : (1u << live) - 1);
  for (int m = 0; m < MT; ++m) {
    if constexpr (kFloatChains == 2) acc[0][m] = _mm512_add_ps(acc[0][m], acc[1][m]);
    _mm512_mask_storeu_ps(y + m * ldy + g * 16, mask, acc[0][m]);
  }
}

template <GgmlType T>
void tiles_times(const Int8Tiles& t, const Q8Activations* const* xs, int64_t M, float* y, int64_t ldy, int64_t g0, int64_t g1) {
  for (int64_t g = g0; g < g1; ++g) {
    int64_t m = 0;
    // Tiles of up to 8 activation rows: 8 (or 16) integer and 8 float accumulators fit the 32 registers.
    for (; m + 8 <= M; m += 8) tile<T, 8>(t, g, xs + m, y + m * ldy, ldy);
    switch (M - m) {
      case 7: tile<T, 7>(t, g, xs + m, y + m * ldy, ldy); break;
      case 6: tile<T, 6>(t, g, xs + m, y + m * ldy, ldy); break;
      case 5: tile<T, 5>(t, g, xs + m, y + m * ldy, ldy); break;
      case 4: tile<T, 4>(t, g, xs + m, y + m * ldy, ldy); break;
      case 3: tile<T, 3>(t, g, xs + m, y + m * ldy, ldy); break;
      case 2: tile<T, 2>(t, g, xs + m, y + m * ldy, ldy); break;
      case 1: tile<T, 1>(t, g, xs + m, y + m * ldy, ldy); break;
      default: break;
    }
  }
}

// Per type: its record size, its filler and its kernel (one table, no string or type if-chains
// elsewhere in this file).
struct TileOps {
  int64_t unit_bytes, blocks_per_unit;
  void (*fill)(const PackedWeight&, Int8Tiles&);
  void (*times)(const Int8Tiles&, const Q8Activations* const*, int64_t, float*, int64_t, int64_t, int64_t);
};

template <GgmlType T>
constexpr TileOps ops_of() { return {TileLayout<T>::kUnit, TileLayout<T>::kBlocksPerUnit, fill_tiles<T>, tiles_times<T>}; }

const TileOps* tile_ops(GgmlType type) {
  static const TileOps q4_0 = ops_of<GgmlType::Q4_0>(), q4_1 = ops_of<GgmlType::Q4_1>(), q5_0 = ops_of<GgmlType::Q5_0>(),
                       q8_0 = ops_of<GgmlType::Q8_0>(), q4_k = ops_of<GgmlType::Q4_K>(), q6_k = ops_of<GgmlType::Q6_K>();
  switch (type) {
    case GgmlType::Q4_0: return &q4_0;
    case GgmlType::Q4_1: return &q4_1;
    case GgmlType::Q5_0: return &q5_0;
    case GgmlType::Q8_0: return &q8_0;
    case GgmlType::Q4_K: return &q4_k;
    case GgmlType::Q6_K: return &q6_k;
    default: return nullptr;
  }
}

// Zeroed bytes for the tiles, in 2 MiB pages where the kernel grants them (transparent huge
// pages in `madvise` mode, the usual default, only back memory that asks): a batch-1 step streams
// every tile once, and in 4 KiB pages Gemma 3's 178 MB head alone spans 45,000 of them (measured:
// the whole model's products 4.2 -> 3.8 ms per step). Only the whole 2 MiB pages inside the
// allocation are asked for: rounding each matrix up to one would add up to 2 MiB per matrix
// (+170 MB resident on SmolLM2's 121 small matrices, measured), so small matrices keep 4 KiB pages.
at::Tensor tile_storage(int64_t n) {
  constexpr size_t kHuge = size_t{2} << 20;
  void* p = nullptr;
  if (posix_memalign(&p, kHuge, static_cast<size_t>(n)) != 0) return torch::zeros({n}, torch::kUInt8);
  if (const size_t whole = static_cast<size_t>(n) / kHuge * kHuge) madvise(p, whole, MADV_HUGEPAGE);  // a hint only
  std::memset(p, 0, static_cast<size_t>(n));
  return torch::from_blob(p, {n}, [](void* q) { std::free(q); }, torch::kUInt8);
}

}  // namespace

bool int8_tiles_supported(gguf::GgmlType type) { return tile_ops(type) != nullptr && cpu_has_vnni(); }

std::shared_ptr<const Int8Tiles> make_int8_tiles(const PackedWeight& w) {
  TORCH_CHECK(int8_tiles_supported(w.type), "make_int8_tiles: no tiled 8-bit kernel for ",
              gguf::type_name(static_cast<uint32_t>(w.type)), " on this CPU");
  const TileOps& ops = *tile_ops(w.type);
  TORCH_CHECK(w.cols % (32 * ops.blocks_per_unit) == 0, "make_int8_tiles: rows of ", w.cols, " weights are not whole ",
              32 * ops.blocks_per_unit, "-weight blocks of ", gguf::type_name(static_cast<uint32_t>(w.type)));
  auto t = std::make_shared<Int8Tiles>();
  t->type = w.type;
  t->rows = w.rows;
  t->groups = (w.rows + 15) / 16;
  t->blocks = w.cols / 32;
  t->units = t->blocks / ops.blocks_per_unit;
  t->unit_bytes = ops.unit_bytes;
  t->bytes = tile_storage(t->groups * t->units * t->unit_bytes).view({t->groups, t->units, t->unit_bytes});  // zeroed: the fillers OR bits in
  ops.fill(w, *t);
  return t;
}

void int8_tiles_matmul(const Int8Tiles& t, const Q8Activations* x, int64_t M, float* y, int64_t ldy) {
  TORCH_CHECK(cpu_has_vnni(), "int8_tiles_matmul: this CPU has no AVX512-VNNI");
  std::vector<const Q8Activations*> xs(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) xs[static_cast<size_t>(i)] = x + i;
  const auto run = tile_ops(t.type)->times;
  at::parallel_for(0, t.groups, 4, [&](int64_t g0, int64_t g1) { run(t, xs.data(), M, y, ldy, g0, g1); });
}

void int8_tiles_groups(const Int8Tiles& t, const Q8Activations& x, float* y, int64_t g0, int64_t g1) {
  TORCH_CHECK(cpu_has_vnni(), "int8_tiles_groups: this CPU has no AVX512-VNNI");
  const Q8Activations* xs[1] = {&x};
  tile_ops(t.type)->times(t, xs, 1, y, 0, g0, g1);
}

const Int8Tiles& LazyInt8Tiles::get(const PackedWeight& w) {
  std::call_once(once_, [&] { tiles_ = make_int8_tiles(w); });
  return *tiles_;
}

}  // namespace tandem

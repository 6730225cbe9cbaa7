#include "tandem/models/int8_tiles.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <immintrin.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "tandem/models/block_codes.h"
#include "tandem/models/packed_matmul.h"

namespace tandem {

void quantize_q8(const float* x, int64_t n_blocks, Q8Activations& r) {
  r.q.resize(static_cast<size_t>(n_blocks * 32));
  r.d.resize(static_cast<size_t>(n_blocks));
  r.s.resize(static_cast<size_t>(n_blocks));
  r.s16.resize(static_cast<size_t>(2 * n_blocks));
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.f, id = d > 0 ? 1.f / d : 0.f;
    int sum[2] = {0, 0};
    for (int j = 0; j < 32; ++j) {
      const int q = static_cast<int>(std::nearbyint(xb[j] * id));
      r.q[static_cast<size_t>(b * 32 + j)] = static_cast<int8_t>(q);
      sum[j / 16] += q;
    }
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
                         __builtin_cpu_supports("avx512vnni");
  return ok;
}

constexpr bool nibble_type(GgmlType t) { return t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q4_K; }

// Row group g's block b: codes of row r, weights 4k..4k+3, at byte k*64 + r*4 (bytes layout) or,
// for 4-bit codes, group k (< 4) in the low nibble and group k+4 in the high nibble of byte k*64 + r*4.
template <GgmlType T>
void fill_tiles(const PackedWeight& w, Int8Tiles& t) {
  const int64_t block_bytes = t.nibbles ? 256 : 512, row_bytes = w.raw.size(1);
  const int64_t per_block = t.halves ? 32 : 16;
  // Q8_0's codes are signed; VPDPBUSD takes its weight operand unsigned: code + 128, and the
  // offset takes back 128 * scale.
  const float shift = T == GgmlType::Q8_0 ? 128.f : 0.f;
  const uint8_t* base = w.raw.data_ptr<uint8_t>();
  uint8_t* codes = t.codes.data_ptr<uint8_t>();
  at::parallel_for(0, t.groups, 16, [&](int64_t g0, int64_t g1) {
    blocks::CodeBlock c;
    for (int64_t g = g0; g < g1; ++g)
      for (int64_t r = 0; r < 16 && g * 16 + r < t.rows; ++r) {
        const uint8_t* row = base + (g * 16 + r) * row_bytes;
        for (int64_t b = 0; b < t.blocks; ++b) {
          blocks::code_block<T>(row, b, c);
          uint8_t* out = codes + (g * t.blocks + b) * block_bytes + r * 4;
          for (int l = 0; l < 32; ++l) {
            const auto code = static_cast<uint8_t>(static_cast<int>(c.codes[l] + shift));
            const int k = l / 4, j = l % 4;
            if (t.nibbles) out[(k % 4) * 64 + j] |= static_cast<uint8_t>(k < 4 ? code : code << 4);
            else out[k * 64 + j] = code;
          }
          const size_t at = static_cast<size_t>((g * t.blocks + b) * per_block + r);
          for (int h = 0; h < (t.halves ? 2 : 1); ++h) {
            t.scale[at + 16 * h] = c.scale[h];
            t.offset[at + 16 * h] = c.offset[h] - shift * c.scale[h];
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

// One group of 16 weight rows times MT activation rows. Per block: the integer products of its
// 8 four-byte groups (VPDPBUSD, the activation group broadcast), then per activation row one
// conversion, a multiply-add by scale * d and one by offset * s.
template <int MT, bool kNibbles, bool kHalves>
__attribute__((target("avx512f,avx512bw,avx512vnni,fma"))) void tile(const Int8Tiles& t, int64_t g,
                                                                      const Q8Activations* const* x, float* y,
                                                                      int64_t ldy) {
  constexpr int64_t kBlockBytes = kNibbles ? 256 : 512, kPerBlock = kHalves ? 32 : 16;
  __m512 acc[MT];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512i low = _mm512_set1_epi8(0x0F);
  const uint8_t* codes = t.codes.data_ptr<uint8_t>() + g * t.blocks * kBlockBytes;
  const float* scale = t.scale.data() + g * t.blocks * kPerBlock;
  const float* offset = t.offset.data() + g * t.blocks * kPerBlock;
  for (int64_t b = 0; b < t.blocks; ++b, codes += kBlockBytes, scale += kPerBlock, offset += kPerBlock) {
    __m512i dot[MT], dot2[MT];  // dot2: second half's products (kHalves)
    for (int m = 0; m < MT; ++m) dot[m] = dot2[m] = _mm512_setzero_si512();
    if constexpr (kNibbles) {
      for (int k = 0; k < 4; ++k) {
        const __m512i v = _mm512_loadu_si512(codes + 64 * k);
        group_products<MT>(x, b, k, _mm512_and_si512(v, low), dot);
        group_products<MT>(x, b, k + 4, _mm512_and_si512(_mm512_srli_epi16(v, 4), low), kHalves ? dot2 : dot);
      }
    } else {
      for (int k = 0; k < 8; ++k) group_products<MT>(x, b, k, _mm512_loadu_si512(codes + 64 * k), kHalves && k >= 4 ? dot2 : dot);
    }
    const __m512 sc = _mm512_loadu_ps(scale), off = _mm512_loadu_ps(offset);
    for (int m = 0; m < MT; ++m) {
      const float d = x[m]->d[static_cast<size_t>(b)];
      if constexpr (kHalves) {
        const __m512 sc2 = _mm512_loadu_ps(scale + 16), off2 = _mm512_loadu_ps(offset + 16);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[m]), _mm512_mul_ps(sc, _mm512_set1_ps(d)), acc[m]);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot2[m]), _mm512_mul_ps(sc2, _mm512_set1_ps(d)), acc[m]);
        acc[m] = _mm512_fmadd_ps(off, _mm512_set1_ps(x[m]->s16[static_cast<size_t>(2 * b)]), acc[m]);
        acc[m] = _mm512_fmadd_ps(off2, _mm512_set1_ps(x[m]->s16[static_cast<size_t>(2 * b + 1)]), acc[m]);
      } else {
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[m]), _mm512_mul_ps(sc, _mm512_set1_ps(d)), acc[m]);
        acc[m] = _mm512_fmadd_ps(off, _mm512_set1_ps(x[m]->s[static_cast<size_t>(b)]), acc[m]);
      }
    }
  }
  const int64_t live = std::min<int64_t>(16, t.rows - g * 16);
  const auto mask = static_cast<__mmask16>(live == 16 ? 0xFFFF : (1u << live) - 1);
  for (int m = 0; m < MT; ++m) _mm512_mask_storeu_ps(y + m * ldy + g * 16, mask, acc[m]);
}

template <bool kNibbles, bool kHalves>
void tiles_times(const Int8Tiles& t, const std::vector<Q8Activations>& x, float* y, int64_t ldy, int64_t g0, int64_t g1) {
  const auto M = static_cast<int64_t>(x.size());
  std::vector<const Q8Activations*> xs(x.size());
  for (size_t i = 0; i < x.size(); ++i) xs[i] = &x[i];
  for (int64_t g = g0; g < g1; ++g) {
    int64_t m = 0;
    // Tiles of up to 8 activation rows: 8 (or 16) integer and 8 float accumulators fit the 32 registers.
    for (; m + 8 <= M; m += 8) tile<8, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy);
    switch (M - m) {
      case 7: tile<7, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy); break;
      case 6: tile<6, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy); break;
      case 5: tile<5, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy); break;
      case 4: tile<4, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy); break;
      case 3: tile<3, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy); break;
      case 2: tile<2, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy); break;
      case 1: tile<1, kNibbles, kHalves>(t, g, xs.data() + m, y + m * ldy, ldy); break;
      default: break;
    }
  }
}

}  // namespace

bool int8_tiles_supported(gguf::GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q8_0: case GgmlType::Q4_K: case GgmlType::Q6_K:
      return cpu_has_vnni();
    default: return false;
  }
}

std::shared_ptr<const Int8Tiles> make_int8_tiles(const PackedWeight& w) {
  TORCH_CHECK(int8_tiles_supported(w.type), "make_int8_tiles: no tiled 8-bit kernel for ",
              gguf::type_name(static_cast<uint32_t>(w.type)), " on this CPU");
  TORCH_CHECK(w.cols % 32 == 0, "make_int8_tiles: rows of ", w.cols, " weights are not whole 32-weight blocks");
  auto t = std::make_shared<Int8Tiles>();
  t->rows = w.rows;
  t->groups = (w.rows + 15) / 16;
  t->blocks = w.cols / 32;
  t->nibbles = nibble_type(w.type);
  t->halves = w.type == GgmlType::Q6_K;
  t->codes = torch::zeros({t->groups, t->blocks, t->nibbles ? 256 : 512}, torch::kUInt8);
  const size_t n = static_cast<size_t>(t->groups * t->blocks * (t->halves ? 32 : 16));
  t->scale.assign(n, 0.f);
  t->offset.assign(n, 0.f);
  switch (w.type) {
    case GgmlType::Q4_0: fill_tiles<GgmlType::Q4_0>(w, *t); break;
    case GgmlType::Q4_1: fill_tiles<GgmlType::Q4_1>(w, *t); break;
    case GgmlType::Q5_0: fill_tiles<GgmlType::Q5_0>(w, *t); break;
    case GgmlType::Q8_0: fill_tiles<GgmlType::Q8_0>(w, *t); break;
    case GgmlType::Q4_K: fill_tiles<GgmlType::Q4_K>(w, *t); break;
    case GgmlType::Q6_K: fill_tiles<GgmlType::Q6_K>(w, *t); break;
    default: break;
  }
  return t;
}

void int8_tiles_matmul(const Int8Tiles& t, const std::vector<Q8Activations>& x, float* y, int64_t ldy) {
  TORCH_CHECK(cpu_has_vnni(), "int8_tiles_matmul: this CPU has no AVX512-VNNI");
  auto run = t.nibbles ? tiles_times<true, false> : t.halves ? tiles_times<false, true> : tiles_times<false, false>;
  at::parallel_for(0, t.groups, 4, [&](int64_t g0, int64_t g1) { run(t, x, y, ldy, g0, g1); });
}

const Int8Tiles& LazyInt8Tiles::get(const PackedWeight& w) {
  std::call_once(once_, [&] { tiles_ = make_int8_tiles(w); });
  return *tiles_;
}

}  // namespace tandem

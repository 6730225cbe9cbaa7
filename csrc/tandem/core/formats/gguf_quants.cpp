// Dequantization kernels. Each mirrors ggml's block layout; the arithmetic is done in float32
// in the same order as the gguf Python package (e.g. (d * sc) * q - (dmin * m)), and the file is
// compiled with floating-point contraction off so no fused multiply-add changes a rounding.
#include "tandem/core/formats/gguf_quants.h"

#include <cstring>
#include <stdexcept>

#pragma GCC optimize("fp-contract=off")

namespace tandem::gguf {
namespace {

constexpr int64_t QK_K = 256;

float fp16_to_fp32(uint16_t h) {
  // Exact IEEE half -> single conversion (normals, subnormals, inf, nan).
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
float rdh(const uint8_t* p) { return fp16_to_fp32(rd16(p)); }

void deq_q4_0(const uint8_t* b, float* y) {
  const float d = rdh(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(static_cast<int>(qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>(static_cast<int>(qs[j] >> 4) - 8);
  }
}

void deq_q4_1(const uint8_t* b, float* y) {
  const float d = rdh(b), m = rdh(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
    y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

void deq_q5_0(const uint8_t* b, float* y) {
  const float d = rdh(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(lo - 16);
    y[j + 16] = d * static_cast<float>(hi - 16);
  }
}

void deq_q5_1(const uint8_t* b, float* y) {
  const float d = rdh(b), m = rdh(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
    const int hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + 16] = d * static_cast<float>(hi) + m;
  }
}

void deq_q8_0(const uint8_t* b, float* y) {
  const float d = rdh(b);
  const auto* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

void deq_q2_k(const uint8_t* b, float* y) {
  const uint8_t* scales = b;        // 16
  const uint8_t* qs = b + 16;       // 64
  const float d = rdh(b + 80), dmin = rdh(b + 82);
  for (int v = 0; v < QK_K; ++v) {
    const int g = v / 32, l = v % 32, h = g / 4, k = g % 4;
    const int q = (qs[h * 32 + l] >> (2 * k)) & 3;
    const uint8_t sc = scales[v / 16];
    const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
    y[v] = dl * static_cast<float>(q) - ml;
  }
}

void deq_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;         // 32
  const uint8_t* qs = b + 32;       // 64
  const uint8_t* sc = b + 96;       // 12
  const float d = rdh(b + 108);
  float dl[16];
  for (int i = 0; i < 16; ++i) {
    const int low = (sc[i % 8] >> (4 * (i / 8))) & 0x0F;
    const int high = (sc[8 + i % 4] >> (2 * (i / 4))) & 0x03;
    dl[i] = d * static_cast<float>(static_cast<int8_t>((low | (high << 4))) - 32);
  }
  for (int v = 0; v < QK_K; ++v) {
    const int g = v / 32, l = v % 32, h = g / 4, k = g % 4;
    const int ql = (qs[h * 32 + l] >> (2 * k)) & 3;
    const int hbit = ((hmask[l] >> g) & 1) ^ 1;
    y[v] = dl[v / 16] * static_cast<float>(ql - (hbit << 2));
  }
}

void scale_min_k4(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 0x3F;
    mn[j] = s[j + 4] & 0x3F;
    sc[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 2) & 0x30);
    mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30);
  }
}

void deq_q4_k(const uint8_t* b, float* y) {
  const float d = rdh(b), dmin = rdh(b + 2);
  uint8_t sc[8], mn[8];
  scale_min_k4(b + 4, sc, mn);
  const uint8_t* qs = b + 16;  // 128
  for (int s = 0; s < 8; ++s) {
    const float ds = d * static_cast<float>(sc[s]), dm = dmin * static_cast<float>(mn[s]);
    const uint8_t* q = qs + (s / 2) * 32;
    const int shift = (s % 2) * 4;
    for (int l = 0; l < 32; ++l) y[s * 32 + l] = ds * static_cast<float>((q[l] >> shift) & 0x0F) - dm;
  }
}

void deq_q5_k(const uint8_t* b, float* y) {
  const float d = rdh(b), dmin = rdh(b + 2);
  uint8_t sc[8], mn[8];
  scale_min_k4(b + 4, sc, mn);
  const uint8_t* qh = b + 16;  // 32
  const uint8_t* qs = b + 48;  // 128
  for (int s = 0; s < 8; ++s) {
    const float ds = d * static_cast<float>(sc[s]), dm = dmin * static_cast<float>(mn[s]);
    const uint8_t* q = qs + (s / 2) * 32;
    const int shift = (s % 2) * 4;
    for (int l = 0; l < 32; ++l) {
      const int v = ((q[l] >> shift) & 0x0F) | (((qh[l] >> s) & 1) << 4);
      y[s * 32 + l] = ds * static_cast<float>(v) - dm;
    }
  }
}

void deq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;          // 128
  const uint8_t* qh = b + 128;    // 64
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);  // 16
  const float d = rdh(b + 208);
  for (int v = 0; v < QK_K; ++v) {
    const int g = v / 32, l = v % 32, h = g / 4, k = g % 4;
    const int low = (ql[h * 64 + (k % 2) * 32 + l] >> (4 * (k / 2))) & 0x0F;
    const int high = (qh[h * 32 + l] >> (2 * k)) & 0x03;
    const float ds = d * static_cast<float>(scales[v / 16]);
    y[v] = ds * static_cast<float>(static_cast<int8_t>(low | (high << 4)) - 32);
  }
}

using BlockFn = void (*)(const uint8_t*, float*);

const TypeTraits kTraits[] = {
    /* 0 F32  */ {"F32", 1, 4, true},      /* 1 F16 */ {"F16", 1, 2, true},
    /* 2 Q4_0 */ {"Q4_0", 32, 18, true},   /* 3 Q4_1 */ {"Q4_1", 32, 20, true},
    /* 4      */ {nullptr, 0, 0, false},   /* 5 */ {nullptr, 0, 0, false},
    /* 6 Q5_0 */ {"Q5_0", 32, 22, true},   /* 7 Q5_1 */ {"Q5_1", 32, 24, true},
    /* 8 Q8_0 */ {"Q8_0", 32, 34, true},   /* 9 Q8_1 */ {"Q8_1", 32, 36, false},
    /*10 Q2_K */ {"Q2_K", 256, 84, true},  /*11 Q3_K */ {"Q3_K", 256, 110, true},
    /*12 Q4_K */ {"Q4_K", 256, 144, true}, /*13 Q5_K */ {"Q5_K", 256, 176, true},
    /*14 Q6_K */ {"Q6_K", 256, 210, true}, /*15 Q8_K */ {"Q8_K", 256, 292, false},
    /*16-23 IQ types */ {"IQ2_XXS", 256, 66, false}, {"IQ2_XS", 256, 74, false}, {"IQ3_XXS", 256, 98, false},
    {"IQ1_S", 256, 50, false}, {"IQ4_NL", 32, 18, false}, {"IQ3_S", 256, 110, false}, {"IQ2_S", 256, 82, false},
    {"IQ4_XS", 256, 136, false},
    /*24 I8  */ {"I8", 1, 1, true},        /*25 I16 */ {"I16", 1, 2, true},
    /*26 I32 */ {"I32", 1, 4, true},       /*27 I64 */ {"I64", 1, 8, true},
    /*28 F64 */ {"F64", 1, 8, true},       /*29 IQ1_M */ {"IQ1_M", 256, 56, false},
    /*30 BF16 */ {"BF16", 1, 2, true},
};

BlockFn block_fn(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return deq_q4_0;
    case GgmlType::Q4_1: return deq_q4_1;
    case GgmlType::Q5_0: return deq_q5_0;
    case GgmlType::Q5_1: return deq_q5_1;
    case GgmlType::Q8_0: return deq_q8_0;
    case GgmlType::Q2_K: return deq_q2_k;
    case GgmlType::Q3_K: return deq_q3_k;
    case GgmlType::Q4_K: return deq_q4_k;
    case GgmlType::Q5_K: return deq_q5_k;
    case GgmlType::Q6_K: return deq_q6_k;
    default: return nullptr;
  }
}

template <class T>
void convert_plain(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

}  // namespace

const TypeTraits* type_traits(uint32_t type) {
  if (type >= sizeof(kTraits) / sizeof(kTraits[0]) || kTraits[type].name == nullptr) return nullptr;
  return &kTraits[type];
}

std::string type_name(uint32_t type) {
  const TypeTraits* t = type_traits(type);
  return t ? t->name : "type#" + std::to_string(type);
}

void dequantize(GgmlType type, const uint8_t* src, int64_t numel, float* dst) {
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, numel * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < numel; ++i) dst[i] = rdh(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < numel; ++i) {
        uint32_t bits = static_cast<uint32_t>(rd16(src + 2 * i)) << 16;
        std::memcpy(dst + i, &bits, 4);
      }
      return;
    case GgmlType::I8: convert_plain<int8_t>(src, numel, dst); return;
    case GgmlType::I16: convert_plain<int16_t>(src, numel, dst); return;
    case GgmlType::I32: convert_plain<int32_t>(src, numel, dst); return;
    case GgmlType::I64: convert_plain<int64_t>(src, numel, dst); return;
    case GgmlType::F64: convert_plain<double>(src, numel, dst); return;
    default: break;
  }
  const TypeTraits* tr = type_traits(static_cast<uint32_t>(type));
  BlockFn fn = block_fn(type);
  if (!tr || !fn) throw std::invalid_argument("tandem cannot dequantize GGML type " + type_name(static_cast<uint32_t>(type)));
  const int64_t blocks = numel / tr->block_size;
  for (int64_t i = 0; i < blocks; ++i) fn(src + i * tr->block_bytes, dst + i * tr->block_size);
}

void dequantize_rows(GgmlType type, const uint8_t* src, int64_t row_len, int64_t row_begin, int64_t row_end,
                     float* dst) {
  const TypeTraits* tr = type_traits(static_cast<uint32_t>(type));
  if (!tr) throw std::invalid_argument("unknown GGML type " + type_name(static_cast<uint32_t>(type)));
  const int64_t row_bytes = row_len / tr->block_size * tr->block_bytes;
  dequantize(type, src + row_begin * row_bytes, (row_end - row_begin) * row_len, dst + row_begin * row_len);
}

}  // namespace tandem::gguf

#include "benchmarks/read_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include <immintrin.h>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include "tandem/models/prefetch.h"
#include "tandem/models/step_team.h"

namespace tandem {

namespace {

// XOR of every 64-byte line in [p, p + n): four independent chains, the lines kPrefetchAhead
// ahead asked for as the decode kernels ask for theirs.
__attribute__((target("avx512f"))) uint64_t read_avx512(const uint8_t* p, int64_t n) {
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int64_t i = 0; i + 256 <= n; i += 256) {
    prefetch_ahead(p + i, 256);
    for (int j = 0; j < 4; ++j) acc[j] = _mm512_xor_si512(acc[j], _mm512_loadu_si512(p + i + 64 * j));
  }
  const __m512i all = _mm512_xor_si512(_mm512_xor_si512(acc[0], acc[1]), _mm512_xor_si512(acc[2], acc[3]));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(all));
}

uint64_t read_plain(const uint8_t* p, int64_t n) {
  uint64_t acc = 0;
  for (int64_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    acc ^= v;
  }
  return acc;
}

}  // namespace

double stream_read_gbs(const at::Tensor& buf, int64_t repeats) {
  TORCH_CHECK(buf.is_contiguous() && buf.is_cpu(), "stream_read_gbs: a contiguous CPU buffer");
  const auto* p = static_cast<const uint8_t*>(buf.data_ptr());
  const int64_t n = buf.numel() * buf.element_size();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  std::vector<uint64_t> sink(64);
  StepTeam team;
  auto once = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    team.run(at::get_num_threads(), [&](int tid) {
      const auto [b, e] = team.share(n, tid, 4096);
      sink[static_cast<size_t>(tid) % sink.size()] ^= avx512 ? read_avx512(p + b, e - b) : read_plain(p + b, e - b);
    });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  once();
  std::vector<double> gbs;
  for (int64_t r = 0; r < repeats; ++r) gbs.push_back(static_cast<double>(n) / once() / 1e9);
  std::nth_element(gbs.begin(), gbs.begin() + static_cast<int64_t>(gbs.size()) / 2, gbs.end());
  return gbs[gbs.size() / 2];
}

}  // namespace tandem

// Software prefetch for the decode kernels' weight streams.
//
// A batch-1 decode step reads every weight once, in order. One core on this machine keeps too few
// cache misses in flight for that stream to reach the memory's rate: SmolLM2-135M's layer
// products (66 MB of int8 tiles, both cores) ran at 20-39 GB/s without prefetch and 41-49 GB/s
// with the lines 4 KiB ahead asked for, in the same minutes (scratch timing, 2,048 to 8,192 bytes
// ahead alike). The hardware prefetchers do not cross 4 KiB pages, and the tiles of one thread's
// share are one straight run of pages.
#pragma once

#include <cstdint>

#include <immintrin.h>

namespace tandem {

/// How far ahead of the bytes being multiplied the kernels ask for lines.
constexpr int64_t kPrefetchAhead = 4096;

/// Asks for the cache lines of [p + kPrefetchAhead, p + kPrefetchAhead + n): a hint that never
/// faults, so reading past the end of a weight is harmless.
inline void prefetch_ahead(const void* p, int64_t n) {
  const char* c = static_cast<const char*>(p) + kPrefetchAhead;
  for (int64_t i = 0; i < n; i += 64) _mm_prefetch(c + i, _MM_HINT_T0);
}

}  // namespace tandem

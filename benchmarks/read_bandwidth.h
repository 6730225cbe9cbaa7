// The machine's read bandwidth as the decode benchmarks' bound: a streaming read of a buffer
// (64-byte vector loads, software prefetch as the decode kernels do it, every intra-op thread),
// for benchmarks/bench_decode_models.py. torch.sum, the earlier meter, reads with too few misses
// in flight per core here: its rate over a 96 MB buffer was below what the int8 decode step itself
// streamed, so shares of a bound measured with it passed 100%.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace tandem {

/// GB/s of one streaming read of `buf` (contiguous, bytes a multiple of 256), the median of
/// `repeats` reads after one unmeasured read.
double stream_read_gbs(const at::Tensor& buf, int64_t repeats);

}  // namespace tandem

// The greedy choice of a decode step: each row's index of its largest logit.
//
// torch's argmax walks a 262,144-wide row (Gemma 3's vocabulary) one element at a time on one
// thread: 0.5 ms of a 10.5 ms step (decode_profile.md, choose_token). The same answer comes from
// 16 lanes at once.
#pragma once

#include <ATen/core/Tensor.h>

namespace tandem {

/// logits [..., V] -> int64 [...]: exactly torch's `logits.argmax(-1)` (the first of equal
/// maxima; a NaN is the largest value, the first NaN wins). Float32 rows on a CPU with AVX-512
/// take a vector pass; anything else (another dtype or device, the portable kernels) is
/// torch's argmax itself.
at::Tensor greedy_argmax(const at::Tensor& logits);

}  // namespace tandem

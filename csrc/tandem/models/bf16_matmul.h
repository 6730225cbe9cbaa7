// bfloat16 products for decoding on CPUs with AVX512-BF16: y = x W^T (+ b) for a few activation
// rows, reading each bfloat16 weight once with VDPBF16PS (pairs of bfloat16 products summed into
// float32 lanes). A decode step of a bfloat16 model is weight streaming; torch's bfloat16 linear
// reached 59% of the bandwidth bound here for one row. Accumulation is float32 and the result is
// rounded to bfloat16 once, as torch's CPU bfloat16 linear does; only the summation order differs.
#pragma once

#include <ATen/core/Tensor.h>

namespace tandem {

/// Whether this CPU has AVX512-BF16 (and the build could make the kernel).
bool bf16_kernels_available();

/// x [..., K] bfloat16 (CPU), w [N, K] bfloat16 contiguous, b [N] or undefined: y [..., N]
/// bfloat16. Callers check bf16_kernels_available(); meant for few rows (decoding).
at::Tensor bf16_matmul(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {});

}  // namespace tandem

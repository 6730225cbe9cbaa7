// KVCache: the keys and values a decoder keeps between generation steps.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace tandem {

/// Keys and values of every layer, [batch, kv_heads, capacity, head_dim], grown by doubling.
class KVCache {
 public:
  /// Appends this step's k/v for `layer`; returns views of everything cached so far.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  /// Room for T more positions of `layer`, whose keys/values are [B, Hkv, T, D] of `options`:
  /// returns the whole buffers [B, Hkv, capacity >= length() + T, D]; positions [0, length())
  /// hold what was appended so far, the caller writes the next T (a fused decode step).
  std::pair<at::Tensor, at::Tensor> reserve(int64_t layer, at::IntArrayRef shape, const at::TensorOptions& options);
  int64_t length() const { return length_; }
  /// Called once per forward, after every layer appended.
  void advance(int64_t n) { length_ += n; }
  /// Keeps batch rows `index` (long, may repeat): row b of the result is row index[b] before.
  void select_rows(const at::Tensor& index);
  void reset();
  /// Bytes held by the cache tensors.
  int64_t bytes() const;

 private:
  std::vector<at::Tensor> k_, v_;
  int64_t length_ = 0;
};

}  // namespace tandem

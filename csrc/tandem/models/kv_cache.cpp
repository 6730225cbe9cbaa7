#include "tandem/models/kv_cache.h"

#include <algorithm>

#include <torch/torch.h>

namespace tandem {

std::pair<torch::Tensor, torch::Tensor> KVCache::reserve(int64_t layer, at::IntArrayRef shape, const at::TensorOptions& options) {
  if (static_cast<int64_t>(k_.size()) <= layer) {
    k_.resize(layer + 1);
    v_.resize(layer + 1);
  }
  const int64_t T = shape[2], need = length_ + T;
  auto& K = k_[layer];
  auto& V = v_[layer];
  if (!K.defined() || K.size(2) < need) {
    const int64_t cap = std::max<int64_t>(need, K.defined() ? 2 * K.size(2) : need + 64);
    auto nk = torch::empty({shape[0], shape[1], cap, shape[3]}, options);
    auto nv = torch::empty({shape[0], shape[1], cap, shape[3]}, options);
    if (K.defined() && length_ > 0) {
      nk.narrow(2, 0, length_).copy_(K.narrow(2, 0, length_));
      nv.narrow(2, 0, length_).copy_(V.narrow(2, 0, length_));
    }
    K = nk;
    V = nv;
  }
  return {K, V};
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
  TORCH_CHECK(k.sizes() == v.sizes(), "KVCache::append: keys ", k.sizes(), " and values ", v.sizes(), " differ in shape");
  const int64_t T = k.size(2), need = length_ + T;
  auto [K, V] = reserve(layer, k.sizes(), k.options());
  K.narrow(2, length_, T).copy_(k);
  V.narrow(2, length_, T).copy_(v);
  return {K.narrow(2, 0, need), V.narrow(2, 0, need)};
}

void KVCache::select_rows(const torch::Tensor& index) {
  for (auto* store : {&k_, &v_})
    for (auto& t : *store)
      if (t.defined()) t = t.narrow(2, 0, length_).index_select(0, index.to(t.device()));
}

void KVCache::reset() {
  k_.clear();
  v_.clear();
  length_ = 0;
}

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (const auto& t : k_)
    if (t.defined()) n += t.numel() * t.element_size();
  for (const auto& t : v_)
    if (t.defined()) n += t.numel() * t.element_size();
  return n;
}

}  // namespace tandem

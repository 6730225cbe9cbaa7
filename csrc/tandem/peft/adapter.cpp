#include "tandem/peft/adapter.h"

#include <algorithm>

namespace tandem {

TANDEM_DEFINE_REGISTRY(DeviceAdapter);

std::vector<std::pair<std::string, torch::Tensor>> DeviceAdapter::trainable() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : named_parameters(/*recurse=*/true))
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

int64_t DeviceAdapter::num_trainable() const {
  int64_t n = 0;
  for (const auto& [k, t] : trainable()) n += t.numel();
  return n;
}

std::vector<int64_t> LayerChoice::resolve(int64_t num_layers, const Config& c) const {
  std::vector<int64_t> out;
  if (layers.all) {
    for (int64_t i = 1; i <= num_layers; ++i) out.push_back(i);
  } else if (!layers.values.empty()) {
    if (c.has("every")) c.fail("every", "no every: together with layers: (layers names them)");
    for (int64_t v : layers.values) {
      if (v < 0 || v > num_layers) c.fail("layers", "layer indices in [0, " + std::to_string(num_layers) + "]");
      out.push_back(v);
    }
  } else {
    for (int64_t i = num_layers; i >= 1; i -= every) out.push_back(i);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty()) c.fail("layers", "at least one layer");
  return out;
}

}  // namespace tandem

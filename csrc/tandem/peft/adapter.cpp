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

std::vector<int64_t> parse_layer_choice(const Config& c, int64_t num_layers, const std::string& fallback_every) {
  std::vector<int64_t> out;
  if (c.has("layers")) {
    const Config l = c.at("layers");
    if (l.node().IsSequence()) {
      for (size_t i = 0; i < l.node().size(); ++i) {
        const int64_t v = l.node()[i].as<int64_t>();
        if (v < 0 || v > num_layers) c.fail("layers", "layer indices in [0, " + std::to_string(num_layers) + "]");
        out.push_back(v);
      }
      c.mark_used("layers");
    } else {
      const std::string s = c.get<std::string>("layers");
      if (s != "all") c.fail("layers", "a list of layer indices or \"all\"");
      for (int64_t i = 1; i <= num_layers; ++i) out.push_back(i);
    }
  } else {
    const int64_t every = c.get_positive_int("every", std::stoll(fallback_every));
    for (int64_t i = num_layers; i >= 1; i -= every) out.push_back(i);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty()) c.fail("layers", "at least one layer");
  return out;
}

}  // namespace tandem

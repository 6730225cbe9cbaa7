#include "tandem/spa/routed_decoding.h"

#include <algorithm>

#include <torch/torch.h>

namespace tandem::spa {

RoutedDecoding::RoutedDecoding(CausalLM& model, DeviceAdapter* adapter, Router* router, std::vector<int64_t> stop_ids,
                               int64_t rows)
    : model_(model), adapter_(adapter), router_(router), stop_ids_(std::move(stop_ids)),
      tokens_(static_cast<size_t>(rows)), routes_(static_cast<size_t>(rows)) {}

void RoutedDecoding::choose(const DecodeStep& step, std::vector<TokenChoice>& choices) {
  const auto& o = step.out;
  const int64_t B = static_cast<int64_t>(choices.size());
  torch::Tensor next_logits, chose;
  if (!adapter_) {
    next_logits = o.logits.select(1, -1);
  } else {
    // 1. The plugin reads the backbone layers it was trained on (every new position for LST).
    const bool seq = adapter_->needs_all_positions();
    std::vector<torch::Tensor> inputs;
    for (int64_t l : adapter_->layers_read()) inputs.push_back(seq ? o.hidden_states[l] : o.hidden_states[l].narrow(1, -1, 1));
    auto fin = model_.final_norm(o.hidden_states[model_.config().num_layers].narrow(1, -1, 1));
    auto ao = adapter_->forward(inputs, fin, step.fed_mask.to(torch::kBool), seq ? &state_ : nullptr);
    auto hid = ao.hidden.narrow(1, -1, 1).to(fin.scalar_type());
    if (router_) {
      // 2. Both distributions through the frozen projection in one call; the router picks.
      auto both = model_.cap_logits(model_.project_vocab(torch::cat({fin, hid}, 0)));
      auto lb = both.narrow(0, 0, B).select(1, 0), la = both.narrow(0, B, B).select(1, 0);
      auto feats = ao.features.narrow(1, -1, 1);
      auto p = router_->prob(fin.select(1, 0), feats.select(1, 0), distribution_features(lb, la));
      chose = (p >= router_->threshold).to(torch::kCPU);
      next_logits = torch::where(chose.to(lb.device()).unsqueeze(1), la, lb);
    } else {
      next_logits = model_.cap_logits(model_.project_vocab(hid)).select(1, 0);
      chose = torch::ones({B}, torch::kBool);
    }
  }
  // 3. Greedy; a stop token ends the row.
  auto next = next_logits.argmax(-1).to(torch::kCPU);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t t = next[b].item<int64_t>();
    choices[static_cast<size_t>(b)].feed = t;
    if (!step.live[static_cast<size_t>(b)]) continue;
    ++steps_;
    const bool adapted = chose.defined() && chose[b].item<bool>();
    if (adapted) ++adapter_steps_;
    if (std::find(stop_ids_.begin(), stop_ids_.end(), t) != stop_ids_.end()) {
      choices[static_cast<size_t>(b)].finish = true;
    } else {
      tokens_[static_cast<size_t>(b)].push_back(t);
      routes_[static_cast<size_t>(b)] += adapted ? 'A' : 'B';
    }
  }
}

}  // namespace tandem::spa

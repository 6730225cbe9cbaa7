// SPA's decoding step as a generate() policy: per step and sequence, the next token comes from
// the backbone's distribution or from the adapted one (backbone states through the device
// plugin and the frozen vocabulary projection), as the router decides. Greedy, as in the paper.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/models/generation.h"
#include "tandem/peft/adapter.h"
#include "tandem/spa/router.h"

namespace tandem::spa {

class RoutedDecoding : public NextTokenPolicy {
 public:
  /// `adapter` null: the backbone alone. `router` null: the adapted logits at every step
  /// (LST, and SPA without its router).
  RoutedDecoding(CausalLM& model, DeviceAdapter* adapter, Router* router, std::vector<int64_t> stop_ids, int64_t rows);

  bool wants_hidden_states() const override { return adapter_ != nullptr; }
  int64_t logits_to_keep() const override { return adapter_ ? -1 : 1; }
  void choose(const DecodeStep& step, std::vector<TokenChoice>& choices) override;

  /// New tokens per row (stop token excluded) and who produced each: 'A' adapted, 'B' backbone.
  const std::vector<std::vector<int64_t>>& tokens() const { return tokens_; }
  const std::vector<std::string>& routes() const { return routes_; }
  /// Steps taken by live rows (stop steps included), and those that used the adapted logits.
  int64_t steps() const { return steps_; }
  int64_t adapter_steps() const { return adapter_steps_; }

 private:
  CausalLM& model_;
  DeviceAdapter* adapter_;
  Router* router_;
  std::vector<int64_t> stop_ids_;
  AdapterState state_;  // LST's attention keys and values across steps
  std::vector<std::vector<int64_t>> tokens_;
  std::vector<std::string> routes_;
  int64_t steps_ = 0, adapter_steps_ = 0;
};

}  // namespace tandem::spa

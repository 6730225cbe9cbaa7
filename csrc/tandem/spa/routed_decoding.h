// SPA's decoding as a generate() policy: per step and sequence, the next token comes from the
// backbone's distribution or from the adapted one (SideAdaptedLM::next_token), as the router
// decides. Greedy, as in the paper. Without a plugin it is the backbone's greedy decoding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/models/generation.h"
#include "tandem/spa/side_adapted_lm.h"

namespace tandem::spa {

class RoutedDecoding : public NextTokenPolicy {
 public:
  /// `lm` null: the backbone alone (frozen baselines). A SideAdaptedLM without a router uses the
  /// adapted logits at every step (LST, and SPA without its router).
  RoutedDecoding(SideAdaptedLM* lm, std::vector<int64_t> stop_ids, int64_t rows);

  bool wants_hidden_states() const override { return lm_ != nullptr; }
  int64_t logits_to_keep() const override { return lm_ ? -1 : 1; }
  void choose(const DecodeStep& step, std::vector<TokenChoice>& choices) override;

  /// New tokens per row (stop token excluded) and who produced each: 'A' adapted, 'B' backbone.
  const std::vector<std::vector<int64_t>>& tokens() const { return tokens_; }
  const std::vector<std::string>& routes() const { return routes_; }
  /// Steps taken by live rows (stop steps included), and those that used the adapted logits.
  int64_t steps() const { return steps_; }
  int64_t adapter_steps() const { return adapter_steps_; }

 private:
  SideAdaptedLM* lm_;
  std::vector<int64_t> stop_ids_;
  AdapterState state_;  // LST's attention keys and values across steps
  std::vector<std::vector<int64_t>> tokens_;
  std::vector<std::string> routes_;
  int64_t steps_ = 0, adapter_steps_ = 0;
};

/// What decode_all returns: per prompt its new tokens and routes ('A' adapted, 'B' backbone),
/// with the step counts and timings of all batches.
struct DecodeReport {
  std::vector<std::vector<int64_t>> tokens;
  std::vector<std::string> routes;
  int64_t steps = 0, adapter_steps = 0, forwards = 0;
  double decode_seconds = 0, seconds = 0;
  /// generation: tokens, rates and per-step timings; adapter_use_fraction.
  nlohmann::json metrics() const;
};

/// Greedy routed decoding of `prompts` in batches of `batch` through the one generate() loop
/// (`lm` null: the backbone alone), with a progress line labelled `label`.
DecodeReport decode_all(CausalLM& backbone, SideAdaptedLM* lm, const std::vector<std::vector<int64_t>>& prompts,
                        const std::vector<int64_t>& stop_ids, const DecodeOptions& d, int64_t batch, const std::string& label);

}  // namespace tandem::spa

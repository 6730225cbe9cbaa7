// NextTokenPolicy: what generate() asks at every step. The loop (prefill, KV cache, feeding,
// stopping, cancellation) is written once, in models/generation.cpp; a policy sees the step's
// logits, and hidden states when it asks for them, and says per row which token to feed next
// and whether the row is finished. Sampling (temperature / top-k / top-p), the JSON-schema
// constraint (collab/) and SPA's per-token routing (spa/) are policies, like the links of
// llama.cpp's sampler chain.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "tandem/models/causal_lm.h"

namespace tandem {

/// One decoding step as a policy sees it.
struct DecodeStep {
  int64_t index = 0;              ///< 0: right after the prompt pass
  const LMOutput& out;            ///< the last forward: logits [B, 1, V] (when the policy keeps
                                  ///< logits), every layer's hidden states when it asked for them
  const torch::Tensor& fed_mask;  ///< [B, n] mask of the positions that forward ran (1 = token)
  const std::vector<bool>& live;  ///< rows still generating
  at::Generator& gen;             ///< the generation's random stream (seeded once)
};

/// A policy's answer for one row.
struct TokenChoice {
  int64_t feed = -1;            ///< token the model reads next; -1: the padding token
  bool finish = false;          ///< the row ends now (its feed is then ignored)
  std::string reason = "stop";  ///< finish reason when `finish`
};

class NextTokenPolicy {
 public:
  virtual ~NextTokenPolicy() = default;
  /// Every layer's hidden states at every position fed, prompt included. The prompt then runs
  /// as one left-padded pass (shared-prefix prefill would split it).
  virtual bool wants_hidden_states() const { return false; }
  /// Positions whose logits each forward computes: 1 (the last), or -1 (none: the policy
  /// projects hidden states itself).
  virtual int64_t logits_to_keep() const { return 1; }
  /// Fills `choices[b]` for every row (rows not live may be given a feed; it is harmless).
  virtual void choose(const DecodeStep& step, std::vector<TokenChoice>& choices) = 0;
  /// Row `row` ended from outside the policy ("cancelled", or "length": out of steps).
  virtual void on_end(int64_t row, const std::string& reason) {}
};

}  // namespace tandem

// generate(): the one decoding loop of tandem. Batched over prompts with a shared-prefix
// prefill, a KV cache, per-row stopping and cancellation; what happens at each step is a
// NextTokenPolicy's call (sampling, a JSON-schema constraint, SPA's routing). Also the
// teacher-forced scorer of continuations.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tandem/models/batching.h"
#include "tandem/models/causal_lm.h"
#include "tandem/models/next_token_policy.h"

namespace tandem {

/// Settings of the loop itself (the policy holds its own).
struct DecodeOptions {
  int64_t max_new_tokens = 64;
  int64_t pad_id = 0;  ///< fills the left of short prompts, and rows with nothing to feed
  uint64_t seed = 0;   ///< seeds the step's random stream (DecodeStep::gen)
  /// Asked before every step for each live row: true ends that row now, with finish reason
  /// "cancelled" (a server's client went away, or the server is shutting down).
  std::function<bool(int64_t row)> cancelled;
  /// Rows whose prompts share at least this many leading tokens compute them once (0: never).
  int64_t min_shared_prefix = 32;
};

/// What the loop measured; the policy holds what was generated.
struct DecodeStats {
  std::vector<std::string> finish_reasons;  ///< per row: the policy's reason, "cancelled" or "length"
  int64_t prompt_tokens = 0;
  int64_t forwards = 0;           ///< model calls after the prompt pass
  int64_t prefill_positions = 0;  ///< positions the prompt pass computed (shared prefixes count once)
  double prefill_seconds = 0, decode_seconds = 0;
};

/// Runs `policy` over `prompts` (token ids, each non-empty) until every row finishes or
/// `opts.max_new_tokens` steps have been taken.
DecodeStats generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts, NextTokenPolicy& policy,
                     const DecodeOptions& opts);

// ---- sampling: the default policy ----

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  ///< 0 = greedy
  int64_t top_k = 0;         ///< 0 = off
  double top_p = 1.0;        ///< 1 = off
  std::vector<int64_t> stop_token_ids;
  uint64_t seed = 0;
  /// As DecodeOptions::cancelled.
  std::function<bool(int64_t row)> cancelled;
};

/// Temperatures below this sample as greedy (their limit): dividing logits by 1e-300 would
/// overflow to inf and turn the softmax into NaN.
constexpr double kGreedyBelowTemperature = 1e-4;
inline bool is_greedy(double temperature) { return temperature < kGreedyBelowTemperature; }

/// Picks the next token from last-position logits [B, V] according to `opts`.
torch::Tensor sample_next(const torch::Tensor& logits, const SamplingOptions& opts, at::Generator& gen);

/// Greedy or temperature / top-k / top-p sampling with stop tokens; keeps each row's tokens.
class SamplingPolicy : public NextTokenPolicy {
 public:
  SamplingPolicy(SamplingOptions opts, int64_t rows) : opts_(std::move(opts)), tokens_(static_cast<size_t>(rows)) {}
  void choose(const DecodeStep& step, std::vector<TokenChoice>& choices) override;
  /// New tokens per row (stop token excluded).
  std::vector<std::vector<int64_t>>& tokens() { return tokens_; }

 private:
  SamplingOptions opts_;
  std::vector<std::vector<int64_t>> tokens_;
};

struct GenerationResult {
  std::vector<std::vector<int64_t>> tokens;  ///< new tokens per prompt (stop token excluded)
  std::vector<std::string> finish_reasons;   ///< "stop", "length" or "cancelled"
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prefill_positions = 0;  ///< positions the prompt pass computed (shared prefixes count once)
};

/// generate() with a SamplingPolicy: continuations of `prompts`; `pad_id` fills the left.
GenerationResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                          const SamplingOptions& opts, int64_t pad_id);

// ---- the prompt pass and scoring ----

/// The prompt pass of generate().
struct PrefillResult {
  LMOutput out;           ///< the forward's output: last-position logits [B, 1, V] unless asked otherwise
  torch::Tensor mask;     ///< [B, cache length] (1 = token): extend it by one column per step
  int64_t positions = 0;  ///< token positions computed, padding included (the cost)
};

/// Fills `cache` with `prompts` (token ids, each non-empty). Rows whose prompts share a long
/// prefix (MinionS runs several jobs over one document chunk) compute that prefix once: the
/// distinct prefixes run as one left-padded batch, their keys and values are copied to every
/// row that shares them, then each row's own suffix runs on top (padding in the middle is
/// masked, positions come from the mask). Used only when it computes fewer positions than one
/// left-padded pass; `min_shared` is the shortest prefix worth sharing (0: never share).
PrefillResult prefill(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts, int64_t pad_id,
                      KVCache& cache, int64_t min_shared = 32);

/// Sum of log-probabilities of each continuation given its prompt (teacher forcing), batched.
std::vector<double> score_continuations(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                        const std::vector<std::vector<int64_t>>& continuations, int64_t pad_id);

/// The same for several continuations of each prompt (a multiple-choice question's options):
/// result[p][k] scores continuations[p][k] after prompts[p]. Each prompt runs once; its keys and
/// values are copied to its continuations' rows, which then run on top (the prefill's shared
/// prefix), so a 10-option question costs one prompt pass, not ten.
std::vector<std::vector<double>> score_continuation_sets(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                         const std::vector<std::vector<std::vector<int64_t>>>& continuations,
                                                         int64_t pad_id);

}  // namespace tandem

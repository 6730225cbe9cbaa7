// Batched generation and scoring over a CausalLM: left padding, KV cache, greedy or
// temperature / top-k / top-p sampling, stop tokens, per-sequence early stop.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tandem/models/causal_lm.h"

namespace tandem {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  ///< 0 = greedy
  int64_t top_k = 0;         ///< 0 = off
  double top_p = 1.0;        ///< 1 = off
  std::vector<int64_t> stop_token_ids;
  uint64_t seed = 0;
  /// Asked before every step for each unfinished row: true ends that row now, with finish
  /// reason "cancelled" (a server's client went away, or the server is shutting down).
  std::function<bool(int64_t row)> cancelled;
};

/// Temperatures below this sample as greedy (their limit): dividing logits by 1e-300 would
/// overflow to inf and turn the softmax into NaN.
constexpr double kGreedyBelowTemperature = 1e-4;
inline bool is_greedy(double temperature) { return temperature < kGreedyBelowTemperature; }

struct GenerationResult {
  std::vector<std::vector<int64_t>> tokens;  ///< new tokens per prompt (stop token excluded)
  std::vector<std::string> finish_reasons;   ///< "stop", "length" or "cancelled"
  int64_t prompt_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prefill_positions = 0;  ///< positions the prompt pass computed (shared prefixes count once)
};

/// The prompt pass of generation, as run by generate() and the constrained decoder.
struct PrefillResult {
  LMOutput out;           ///< logits of each row's last prompt position, [B, 1, V]
  torch::Tensor mask;     ///< [B, cache length] (1 = token): extend it by one column per step
  int64_t positions = 0;  ///< token positions computed, padding included (the cost)
};

/// Fills `cache` with `prompts` (token ids, each non-empty). Rows whose prompts share a long
/// prefix (MinionS runs several jobs over one document chunk) compute that prefix once: the
/// distinct prefixes run as one left-padded batch, their keys and values are copied to every
/// row that shares them, then each row's own suffix runs on top (padding in the middle is
/// masked, positions come from the mask). Used only when it computes fewer positions than one
/// left-padded pass; `min_shared` is the shortest prefix worth sharing.
PrefillResult prefill(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts, int64_t pad_id,
                      KVCache& cache, int64_t min_shared = 32);

/// Generates continuations of `prompts` (token ids) in one batch; `pad_id` fills the left.
GenerationResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                          const SamplingOptions& opts, int64_t pad_id);

/// Sum of log-probabilities of each continuation given its prompt (teacher forcing), batched.
std::vector<double> score_continuations(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                        const std::vector<std::vector<int64_t>>& continuations, int64_t pad_id);

/// Left-pads `seqs` with `pad_id`: ids [B, T] and attention mask [B, T] (1 = token).
std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id);

/// Picks the next token from last-position logits [B, V] according to `opts`.
torch::Tensor sample_next(const torch::Tensor& logits, const SamplingOptions& opts, at::Generator& gen);

}  // namespace tandem

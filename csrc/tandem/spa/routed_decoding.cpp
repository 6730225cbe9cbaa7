#include "tandem/spa/routed_decoding.h"

#include <algorithm>
#include <chrono>

#include <torch/torch.h>

#include "tandem/core/progress.h"
#include "tandem/models/greedy_argmax.h"

namespace tandem::spa {

RoutedDecoding::RoutedDecoding(SideAdaptedLM* lm, std::vector<int64_t> stop_ids, int64_t rows)
    : lm_(lm), stop_ids_(std::move(stop_ids)), tokens_(static_cast<size_t>(rows)), routes_(static_cast<size_t>(rows)) {}

void RoutedDecoding::choose(const DecodeStep& step, std::vector<TokenChoice>& choices) {
  const auto& o = step.out;
  const int64_t B = static_cast<int64_t>(choices.size());
  // 1-2. The backbone's logits, or SideAdaptedLM's routed choice between them and the plugin's.
  torch::Tensor chose;
  const torch::Tensor next_logits = lm_ ? lm_->next_token(o.hidden_states, step.fed_mask, &state_, &chose)
                                        : o.logits.select(1, -1);
  // 3. Greedy; a stop token ends the row.
  auto next = greedy_argmax(next_logits).to(torch::kCPU);
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

DecodeReport decode_all(CausalLM& backbone, SideAdaptedLM* lm, const std::vector<std::vector<int64_t>>& prompts,
                        const std::vector<int64_t>& stop_ids, const DecodeOptions& d, int64_t batch, const std::string& label) {
  torch::NoGradGuard ng;
  DecodeReport r;
  const auto t0 = std::chrono::steady_clock::now();
  Progress bar(label, static_cast<int64_t>(prompts.size()), "ex");
  for (size_t s = 0; s < prompts.size(); s += static_cast<size_t>(batch)) {
    const size_t e = std::min(prompts.size(), s + static_cast<size_t>(batch));
    const std::vector<std::vector<int64_t>> chunk(prompts.begin() + s, prompts.begin() + e);
    RoutedDecoding policy(lm, stop_ids, static_cast<int64_t>(chunk.size()));
    const DecodeStats st = generate(backbone, chunk, policy, d);
    r.steps += policy.steps();
    r.adapter_steps += policy.adapter_steps();
    r.decode_seconds += st.decode_seconds;
    r.forwards += st.forwards;
    r.tokens.insert(r.tokens.end(), policy.tokens().begin(), policy.tokens().end());
    r.routes.insert(r.routes.end(), policy.routes().begin(), policy.routes().end());
    bar.update(static_cast<int64_t>(e - s));
  }
  bar.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::json DecodeReport::metrics() const {
  int64_t n = 0;
  for (const auto& t : tokens) n += static_cast<int64_t>(t.size());
  return {{"generation", {{"tokens", n}, {"seconds", seconds}, {"tokens_per_second", n / std::max(seconds, 1e-9)},
                          {"decode_steps", steps}, {"decode_seconds", decode_seconds}, {"decode_batch_steps", forwards},
                          {"decode_ms_per_batch_step", forwards ? 1000 * decode_seconds / forwards : 0.0}}},
          {"generate_seconds", seconds},
          {"adapter_use_fraction", steps ? static_cast<double>(adapter_steps) / steps : 0.0}};
}

}  // namespace tandem::spa

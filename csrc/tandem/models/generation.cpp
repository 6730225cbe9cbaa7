#include "tandem/models/generation.h"

#include <chrono>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

std::pair<torch::Tensor, torch::Tensor> left_pad(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id) {
  size_t L = 0;
  for (const auto& s : seqs) L = std::max(L, s.size());
  const int64_t B = static_cast<int64_t>(seqs.size());
  auto ids = torch::full({B, static_cast<int64_t>(L)}, pad_id, torch::kLong);
  auto mask = torch::zeros({B, static_cast<int64_t>(L)}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[b];
    const int64_t off = static_cast<int64_t>(L - s.size());
    for (size_t i = 0; i < s.size(); ++i) ids[b][off + i] = s[i];
    if (!s.empty()) mask[b].narrow(0, off, static_cast<int64_t>(s.size())).fill_(1);
  }
  return {ids, mask};
}


torch::Tensor sample_next(const torch::Tensor& logits, const SamplingOptions& o, at::Generator& gen) {
  if (o.temperature <= 0) return logits.argmax(-1);
  auto l = logits.to(torch::kFloat) / o.temperature;
  if (o.top_k > 0 && o.top_k < l.size(-1)) {
    auto kth = std::get<0>(l.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    l = l.masked_fill(l < kth, -std::numeric_limits<float>::infinity());
  }
  if (o.top_p < 1.0) {
    auto [sorted, idx] = l.sort(-1, /*descending=*/true);
    auto cum = sorted.softmax(-1).cumsum(-1);
    // Drop tokens once the mass before them already reaches top_p (the first is always kept).
    auto drop = (cum - sorted.softmax(-1)) >= o.top_p;
    sorted = sorted.masked_fill(drop, -std::numeric_limits<float>::infinity());
    l = torch::full_like(l, -std::numeric_limits<float>::infinity()).scatter(-1, idx, sorted);
  }
  auto probs = l.softmax(-1).cpu();
  return torch::multinomial(probs, 1, false, gen).squeeze(-1).to(logits.device());
}

GenerationResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                          const SamplingOptions& opts, int64_t pad_id) {
  torch::NoGradGuard ng;
  GenerationResult r;
  const int64_t B = static_cast<int64_t>(prompts.size());
  r.tokens.assign(B, {});
  r.finish_reasons.assign(B, "length");
  if (B == 0) return r;
  for (const auto& p : prompts) {
    if (p.empty()) throw std::invalid_argument("generate: every prompt needs at least one token");
    r.prompt_tokens += static_cast<int64_t>(p.size());
  }
  const auto dev = model.parameters().front().device();
  auto [ids, mask] = left_pad(prompts, pad_id);
  ids = ids.to(dev);
  mask = mask.to(dev);
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  KVCache cache;
  std::vector<bool> done(B, false);
  int64_t live = B;

  auto t0 = Clock::now();
  LMOutput out = model.forward(ids, mask, {}, &cache, false, /*logits_to_keep=*/1);
  r.prefill_seconds = since(t0);
  t0 = Clock::now();
  for (int64_t step = 0; step < opts.max_new_tokens && live > 0; ++step) {
    auto next = sample_next(out.logits.select(1, -1), opts, gen).cpu();
    const int64_t* nx = next.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      const int64_t tok = nx[b];
      if (std::find(opts.stop_token_ids.begin(), opts.stop_token_ids.end(), tok) != opts.stop_token_ids.end()) {
        done[b] = true;
        r.finish_reasons[b] = "stop";
        --live;
        continue;
      }
      r.tokens[b].push_back(tok);
      ++r.generated_tokens;
    }
    if (live == 0 || step + 1 == opts.max_new_tokens) break;
    mask = torch::cat({mask, torch::ones({B, 1}, mask.options())}, 1);
    out = model.forward(next.view({B, 1}).to(dev), mask, {}, &cache, false, 1);
  }
  r.decode_seconds = since(t0);
  return r;
}

std::vector<double> score_continuations(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                        const std::vector<std::vector<int64_t>>& continuations, int64_t pad_id) {
  torch::NoGradGuard ng;
  if (prompts.size() != continuations.size())
    throw std::invalid_argument("score_continuations: " + std::to_string(prompts.size()) + " prompts but " +
                                std::to_string(continuations.size()) + " continuations");
  std::vector<std::vector<int64_t>> full(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].empty()) throw std::invalid_argument("score_continuations: prompt " + std::to_string(i) + " is empty");
    full[i] = prompts[i];
    full[i].insert(full[i].end(), continuations[i].begin(), continuations[i].end());
  }
  auto [ids, mask] = left_pad(full, pad_id);
  const auto dev = model.parameters().front().device();
  int64_t longest = 0;
  for (const auto& c : continuations) longest = std::max<int64_t>(longest, static_cast<int64_t>(c.size()));
  // Continuations end at the right edge (left padding): the last longest+1 positions suffice.
  const int64_t keep = std::min<int64_t>(ids.size(1), longest + 1);
  const auto logits = model.forward(ids.to(dev), mask.to(dev), {}, nullptr, false, keep).logits;
  std::vector<double> out(prompts.size(), 0.0);
  const int64_t L = keep;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int64_t n = static_cast<int64_t>(continuations[i].size());
    if (n == 0) continue;
    // Only the n positions that predict the continuation need a softmax over the vocabulary.
    auto logp = logits[static_cast<int64_t>(i)].narrow(0, L - n - 1, n).log_softmax(-1);
    auto tgt = torch::tensor(continuations[i], torch::kLong).to(logp.device()).view({n, 1});
    out[i] = logp.gather(1, tgt).sum().item<double>();
  }
  return out;
}

}  // namespace tandem

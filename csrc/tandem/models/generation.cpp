#include "tandem/models/generation.h"

#include <algorithm>
#include <chrono>
#include <numeric>

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
  int64_t* ip = ids.data_ptr<int64_t>();
  int64_t* mp = mask.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[b];
    const size_t off = L - s.size();
    std::copy(s.begin(), s.end(), ip + b * L + off);
    std::fill(mp + b * L + off, mp + (b + 1) * L, 1);
  }
  return {ids, mask};
}

PrefillResult prefill(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts, int64_t pad_id,
                      KVCache& cache, int64_t min_shared) {
  const int64_t B = static_cast<int64_t>(prompts.size());
  const auto dev = model.parameters().front().device();
  PrefillResult r;
  size_t max_len = 0;
  for (const auto& p : prompts) max_len = std::max(max_len, p.size());
  // Sorted, rows with a common prefix are neighbours; a row joins its predecessor's group while
  // the group's common prefix stays at least min_shared long.
  std::vector<int64_t> order(static_cast<size_t>(B));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return prompts[a] < prompts[b]; });
  auto lcp = [&](int64_t a, int64_t b) {
    const auto &x = prompts[a], &y = prompts[b];
    size_t n = 0;
    while (n < x.size() && n < y.size() && x[n] == y[n]) ++n;
    return static_cast<int64_t>(n);
  };
  std::vector<int64_t> group_of(static_cast<size_t>(B)), prefix_len;
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t b = order[i];
    const int64_t own = static_cast<int64_t>(prompts[b].size()) - 1;  // every row keeps one token to run
    const int64_t shared = i ? lcp(order[i - 1], b) : 0;
    if (i == 0 || shared < min_shared) {
      prefix_len.push_back(own);
    } else {
      prefix_len.back() = std::min({prefix_len.back(), shared, own});
    }
    group_of[b] = static_cast<int64_t>(prefix_len.size()) - 1;
  }
  const int64_t G = static_cast<int64_t>(prefix_len.size());
  int64_t max_prefix = 0, max_suffix = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t p = prefix_len[group_of[b]];
    max_prefix = std::max(max_prefix, p);
    max_suffix = std::max(max_suffix, static_cast<int64_t>(prompts[b].size()) - p);
  }
  const int64_t plain = B * static_cast<int64_t>(max_len), split = G * max_prefix + B * max_suffix;
  if (G == B || split >= plain) {
    auto [ids, mask] = left_pad(prompts, pad_id);
    r.mask = mask.to(dev);
    r.out = model.forward(ids.to(dev), r.mask, {}, &cache, false, /*logits_to_keep=*/1);
    r.positions = plain;
    return r;
  }
  std::vector<std::vector<int64_t>> prefixes(static_cast<size_t>(G)), suffixes(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t g = group_of[b], p = prefix_len[g];
    if (prefixes[g].empty()) prefixes[g].assign(prompts[b].begin(), prompts[b].begin() + p);
    suffixes[b].assign(prompts[b].begin() + p, prompts[b].end());
  }
  auto [pid, pmask] = left_pad(prefixes, pad_id);
  model.forward(pid.to(dev), pmask.to(dev), {}, &cache, false, /*logits_to_keep=*/-1);
  const auto rows = torch::tensor(group_of, torch::kLong);
  cache.select_rows(rows);
  auto [sid, smask] = left_pad(suffixes, pad_id);
  r.mask = torch::cat({pmask.index_select(0, rows), smask}, 1).to(dev);
  r.out = model.forward(sid.to(dev), r.mask, {}, &cache, false, 1);
  r.positions = split;
  return r;
}

torch::Tensor sample_next(const torch::Tensor& logits, const SamplingOptions& o, at::Generator& gen) {
  if (is_greedy(o.temperature)) return logits.argmax(-1);
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
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  KVCache cache;
  std::vector<bool> done(B, false);
  int64_t live = B;

  auto t0 = Clock::now();
  PrefillResult pre = prefill(model, prompts, pad_id, cache);
  LMOutput out = std::move(pre.out);
  torch::Tensor mask = pre.mask;
  r.prefill_positions = pre.positions;
  r.prefill_seconds = since(t0);
  t0 = Clock::now();
  for (int64_t step = 0; step < opts.max_new_tokens && live > 0; ++step) {
    auto next = sample_next(out.logits.select(1, -1), opts, gen).cpu();
    const int64_t* nx = next.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      if (opts.cancelled && opts.cancelled(b)) {
        done[b] = true;
        r.finish_reasons[b] = "cancelled";
        --live;
        continue;
      }
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

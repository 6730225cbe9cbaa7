#include "tandem/models/generation.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "tandem/models/greedy_argmax.h"

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

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
  if (min_shared <= 0 || G == B || split >= plain) {
    auto [ids, mask] = pad_batch(prompts, pad_id, PadSide::kLeft);
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
  auto [pid, pmask] = pad_batch(prefixes, pad_id, PadSide::kLeft);
  model.forward(pid.to(dev), pmask.to(dev), {}, &cache, false, /*logits_to_keep=*/-1);
  const auto rows = torch::tensor(group_of, torch::kLong);
  cache.select_rows(rows);
  auto [sid, smask] = pad_batch(suffixes, pad_id, PadSide::kLeft);
  r.mask = torch::cat({pmask.index_select(0, rows), smask}, 1).to(dev);
  r.out = model.forward(sid.to(dev), r.mask, {}, &cache, false, 1);
  r.positions = split;
  return r;
}

torch::Tensor sample_next(const torch::Tensor& logits, const SamplingOptions& o, at::Generator& gen) {
  if (is_greedy(o.temperature)) return greedy_argmax(logits);
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

DecodeStats generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts, NextTokenPolicy& policy,
                     const DecodeOptions& opts) {
  torch::NoGradGuard ng;
  DecodeStats st;
  const int64_t B = static_cast<int64_t>(prompts.size());
  st.finish_reasons.assign(static_cast<size_t>(B), "length");
  if (B == 0) return st;
  for (const auto& p : prompts) {
    if (p.empty()) throw std::invalid_argument("generate: every prompt needs at least one token");
    st.prompt_tokens += static_cast<int64_t>(p.size());
  }
  const auto dev = model.parameters().front().device();
  const bool hidden = policy.wants_hidden_states();
  const int64_t keep = policy.logits_to_keep();
  at::Generator gen = at::detail::createCPUGenerator(opts.seed);
  KVCache cache;
  std::vector<bool> live(static_cast<size_t>(B), true);
  int64_t n_live = B;
  auto end_row = [&](int64_t b, const std::string& reason) {
    live[static_cast<size_t>(b)] = false;
    st.finish_reasons[static_cast<size_t>(b)] = reason;
    --n_live;
  };

  // 1. The prompt pass: shared prefixes once, unless the policy reads every position's states.
  auto t0 = Clock::now();
  LMOutput out;
  torch::Tensor mask, fed_mask;
  if (hidden || keep != 1) {
    auto [ids, m] = pad_batch(prompts, opts.pad_id, PadSide::kLeft);
    mask = m.to(dev);
    out = model.forward(ids.to(dev), mask, {}, &cache, hidden, keep);
    st.prefill_positions = ids.numel();
  } else {
    PrefillResult pre = prefill(model, prompts, opts.pad_id, cache, opts.min_shared_prefix);
    out = std::move(pre.out);
    mask = pre.mask;
    st.prefill_positions = pre.positions;
  }
  fed_mask = mask;
  st.prefill_seconds = since(t0);

  t0 = Clock::now();
  std::vector<TokenChoice> choices(static_cast<size_t>(B));
  std::vector<int64_t> feed(static_cast<size_t>(B));
  for (int64_t step = 0; step < opts.max_new_tokens; ++step) {
    // 2. Rows whose caller went away end before the policy spends work on them.
    if (opts.cancelled)
      for (int64_t b = 0; b < B; ++b)
        if (live[static_cast<size_t>(b)] && opts.cancelled(b)) {
          end_row(b, "cancelled");
          policy.on_end(b, "cancelled");
        }
    if (n_live == 0) break;
    // 3. The policy chooses each row's next token (or ends the row).
    std::fill(choices.begin(), choices.end(), TokenChoice{});
    {
      RECORD_FUNCTION("tandem::choose_token", c10::ArrayRef<const c10::IValue>{});
      policy.choose(DecodeStep{step, out, fed_mask, live, gen}, choices);
    }
    for (int64_t b = 0; b < B; ++b) {
      const auto& c = choices[static_cast<size_t>(b)];
      if (live[static_cast<size_t>(b)] && c.finish) end_row(b, c.reason);
      feed[static_cast<size_t>(b)] = c.feed >= 0 ? c.feed : opts.pad_id;
    }
    if (n_live == 0 || step + 1 == opts.max_new_tokens) break;
    // 4. Every row reads its token (ended rows theirs or padding: rows do not interact).
    mask = torch::cat({mask, torch::ones({B, 1}, mask.options())}, 1);
    fed_mask = torch::ones({B, 1}, mask.options());
    out = model.forward(torch::tensor(feed, torch::kLong).view({B, 1}).to(dev), mask, {}, &cache, hidden, keep);
    ++st.forwards;
  }
  // 5. Rows still live ran out of steps.
  for (int64_t b = 0; b < B; ++b)
    if (live[static_cast<size_t>(b)]) {
      end_row(b, "length");
      policy.on_end(b, "length");
    }
  st.decode_seconds = since(t0);
  return st;
}

void SamplingPolicy::choose(const DecodeStep& step, std::vector<TokenChoice>& choices) {
  auto next = sample_next(step.out.logits.select(1, -1), opts_, step.gen).cpu();
  const int64_t* nx = next.data_ptr<int64_t>();
  for (size_t b = 0; b < choices.size(); ++b) {
    const int64_t tok = nx[b];
    choices[b].feed = tok;
    if (!step.live[b]) continue;
    if (std::find(opts_.stop_token_ids.begin(), opts_.stop_token_ids.end(), tok) != opts_.stop_token_ids.end())
      choices[b].finish = true;
    else
      tokens_[b].push_back(tok);
  }
}

GenerationResult generate(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                          const SamplingOptions& opts, int64_t pad_id) {
  SamplingPolicy policy(opts, static_cast<int64_t>(prompts.size()));
  DecodeOptions d;
  d.max_new_tokens = opts.max_new_tokens;
  d.pad_id = pad_id;
  d.seed = opts.seed;
  d.cancelled = opts.cancelled;
  const DecodeStats st = generate(model, prompts, policy, d);
  GenerationResult r;
  r.tokens = std::move(policy.tokens());
  r.finish_reasons = st.finish_reasons;
  r.prompt_tokens = st.prompt_tokens;
  for (const auto& t : r.tokens) r.generated_tokens += static_cast<int64_t>(t.size());
  r.prefill_seconds = st.prefill_seconds;
  r.decode_seconds = st.decode_seconds;
  r.prefill_positions = st.prefill_positions;
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
  auto [ids, mask] = pad_batch(full, pad_id, PadSide::kLeft);
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

std::vector<std::vector<double>> score_continuation_sets(CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                                         const std::vector<std::vector<std::vector<int64_t>>>& continuations,
                                                         int64_t pad_id) {
  torch::NoGradGuard ng;
  if (prompts.size() != continuations.size())
    throw std::invalid_argument("score_continuation_sets: " + std::to_string(prompts.size()) + " prompts but " +
                                std::to_string(continuations.size()) + " continuation sets");
  const auto dev = model.parameters().front().device();
  // 1. Every prompt but its last token, once, into the cache. The last token starts each row's
  //    suffix, so the logits that predict a continuation's first token come from the suffix pass.
  std::vector<std::vector<int64_t>> prefixes, suffixes;
  std::vector<int64_t> group_of;
  int64_t longest = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    if (prompts[p].size() < 2) throw std::invalid_argument("score_continuation_sets: prompt " + std::to_string(p) + " has under 2 tokens");
    prefixes.emplace_back(prompts[p].begin(), prompts[p].end() - 1);
    for (const auto& c : continuations[p]) {
      std::vector<int64_t> s{prompts[p].back()};
      s.insert(s.end(), c.begin(), c.end());
      longest = std::max<int64_t>(longest, static_cast<int64_t>(c.size()));
      suffixes.push_back(std::move(s));
      group_of.push_back(static_cast<int64_t>(p));
    }
  }
  std::vector<std::vector<double>> out(prompts.size());
  if (suffixes.empty()) return out;
  KVCache cache;
  auto [pid, pmask] = pad_batch(prefixes, pad_id, PadSide::kLeft);
  model.forward(pid.to(dev), pmask.to(dev), {}, &cache, false, /*logits_to_keep=*/-1);
  // 2. Copy each prompt's keys and values to its continuations' rows; run the suffixes on top
  //    (padding between prompt and suffix is masked; positions come from the mask).
  const auto rows = torch::tensor(group_of, torch::kLong);
  cache.select_rows(rows.to(dev));
  auto [sid, smask] = pad_batch(suffixes, pad_id, PadSide::kLeft);
  const auto mask = torch::cat({pmask.index_select(0, rows), smask}, 1).to(dev);
  const int64_t keep = longest + 1;
  const auto logits = model.forward(sid.to(dev), mask, {}, &cache, false, keep).logits;
  // 3. Sum the log-probabilities of each continuation's tokens (right-aligned in the suffix).
  size_t row = 0;
  for (size_t p = 0; p < prompts.size(); ++p)
    for (const auto& c : continuations[p]) {
      const int64_t n = static_cast<int64_t>(c.size());
      double total = 0;
      if (n) {
        auto logp = logits[static_cast<int64_t>(row)].narrow(0, keep - n - 1, n).log_softmax(-1);
        auto tgt = torch::tensor(c, torch::kLong).to(logp.device()).view({n, 1});
        total = logp.gather(1, tgt).sum().item<double>();
      }
      out[p].push_back(total);
      ++row;
    }
  return out;
}

}  // namespace tandem

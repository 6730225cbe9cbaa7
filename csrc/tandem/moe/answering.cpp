#include "tandem/moe/answering.h"

#include <algorithm>
#include <map>

#include "tandem/core/formats/safetensors.h"
#include "tandem/models/batching.h"
#include "tandem/models/generation.h"
#include "tandem/spa/side_adapted_lm.h"

namespace tandem::moe {

namespace {
torch::Device fin_device(const CausalLM& m) {
  for (const auto& p : m.parameters()) return p.device();
  return torch::Device(torch::kCPU);
}
}  // namespace

std::shared_ptr<DeviceAdapter> load_trained_adapter(const std::string& run_dir, const CausalLM& model) {
  const std::string cfg_path = run_dir + "/config.yaml", w_path = run_dir + "/adapter.safetensors";
  const Config root = Config::load_file(cfg_path);
  // `adapter:` (runs written before the one config shape kept it under `experiment:`).
  const bool old_shape = !root.has("adapter") && root.has("experiment") && root.at("experiment").has("adapter");
  if (!root.has("adapter") && !old_shape) throw std::runtime_error(cfg_path + ": not an SPA/LST run (no adapter)");
  const Config node = old_shape ? root.at("experiment").at("adapter") : root.at("adapter");
  std::shared_ptr<DeviceAdapter> a(create<DeviceAdapter>(node, model.config()));
  spa::load_weights_into(w_path, a->trainable());
  a->to(fin_device(model));
  a->eval();
  return a;
}

std::string question_prompt(const McInstance& inst) {
  return inst.question + "\nAnswer with the letter of the correct option.";
}

std::string aggregation_prompt(const McInstance& inst, const std::vector<std::pair<std::string, int64_t>>& expert_choices) {
  std::string t = inst.question + "\n\nProposed answers:";
  for (size_t i = 0; i < expert_choices.size(); ++i)
    t += std::string(i ? "," : "") + " expert " + std::to_string(i + 1) + ": (" + static_cast<char>('A' + expert_choices[i].second) + ")";
  return t + ".\nWeigh the proposals and answer with the letter of the correct option.";
}

namespace {

// The prompt a question renders to (system, user text, then the cue the answer follows).
std::string render_prompt(const text::ChatTemplate& tmpl, const std::string& system, const std::string& user, const std::string& cue) {
  std::vector<text::ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system});
  msgs.push_back({"user", user});
  return tmpl.render(msgs) + cue;
}

// Option scores -> Answer: the best allowed option, and the scores normalised over the options.
Answer pick(const torch::Tensor& scores, const std::vector<int64_t>& allowed) {
  auto lp = torch::log_softmax(scores.to(torch::kDouble), 0).contiguous();
  Answer a;
  a.logprobs.assign(lp.data_ptr<double>(), lp.data_ptr<double>() + lp.numel());
  if (allowed.empty()) {
    a.choice = lp.argmax().item<int64_t>();
  } else {
    for (int64_t k : allowed)
      if (a.choice < 0 || a.logprobs[static_cast<size_t>(k)] > a.logprobs[static_cast<size_t>(a.choice)]) a.choice = k;
  }
  return a;
}

}  // namespace

std::vector<Answer> answer_letters(CausalLM& model, const text::Tokenizer& tok, const text::ChatTemplate& tmpl,
                                   const std::vector<Question>& questions, int64_t batch) {
  torch::NoGradGuard ng;
  // Letter candidates: " A" .. " J" after "Answer:" when each is one token (real BPE and
  // SentencePiece vocabularies); else "A" .. "J" after "Answer: (" (a punctuation pre-token
  // boundary, so the prompt's tokens do not change); else an error.
  auto single_tokens = [&](const std::string& prefix) {
    std::vector<int64_t> ids;
    for (char c = 'A'; c <= 'J'; ++c) {
      const auto t = tok.encode(prefix + c);
      if (t.size() != 1) return std::vector<int64_t>{};
      ids.push_back(t[0]);
    }
    return ids;
  };
  std::vector<int64_t> letter_ids = single_tokens(" ");
  std::string cue = "Answer:";
  if (letter_ids.empty()) {
    letter_ids = single_tokens("");
    cue = "Answer: (";
  }
  if (letter_ids.empty()) throw std::runtime_error("answer letters A-J are not single tokens in this vocabulary");
  const auto letters = torch::tensor(letter_ids, torch::kLong);
  // Unique prompts, in first-seen order; each question points at its prompt.
  std::vector<std::string> prompts;
  std::map<std::string, size_t> index;
  std::vector<size_t> prompt_of;
  for (const auto& q : questions) {
    auto text = render_prompt(tmpl, q.system, q.user_text, cue);
    auto [it, fresh] = index.emplace(std::move(text), prompts.size());
    if (fresh) prompts.push_back(it->first);
    prompt_of.push_back(it->second);
  }
  std::vector<std::vector<size_t>> askers(prompts.size());
  for (size_t i = 0; i < questions.size(); ++i) askers[prompt_of[i]].push_back(i);
  const auto dev = fin_device(model);
  std::vector<Answer> out(questions.size());
  for (size_t s = 0; s < prompts.size(); s += static_cast<size_t>(batch)) {
    const size_t e = std::min(prompts.size(), s + static_cast<size_t>(batch));
    std::vector<std::vector<int64_t>> ids_list;
    bool any_adapter = false;
    for (size_t p = s; p < e; ++p) {
      ids_list.push_back(tok.encode_for_model(prompts[p]));
      for (size_t i : askers[p]) any_adapter |= questions[i].adapter != nullptr;
    }
    auto [cpu_ids, cpu_mask] = pad_batch(ids_list, std::max<int64_t>(tok.pad_id, 0), PadSide::kLeft);
    const auto ids = cpu_ids.to(dev), mask = cpu_mask.to(dev);
    // 1. One backbone forward for the batch's prompts (every layer's states when a plugin reads them).
    const auto o = model.forward(ids, mask, {}, nullptr, any_adapter, 1);
    const auto backbone_logits = o.logits.select(1, 0).to(torch::kCPU);
    // 2. Per plugin among the askers, its adapted logits on the rows of the prompts it was asked.
    std::map<DeviceAdapter*, std::vector<int64_t>> rows_of;
    for (size_t p = s; p < e; ++p)
      for (size_t i : askers[p])
        if (questions[i].adapter) rows_of[questions[i].adapter].push_back(static_cast<int64_t>(p - s));
    std::map<DeviceAdapter*, std::pair<std::vector<int64_t>, torch::Tensor>> adapted;
    for (auto& [adapter, rows] : rows_of) {
      std::sort(rows.begin(), rows.end());
      rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
      const auto idx = torch::tensor(rows, torch::kLong).to(dev);
      std::vector<torch::Tensor> hs;
      for (const auto& h : o.hidden_states) hs.push_back(h.index_select(0, idx));
      // Non-owning handles on the caller's model and plugin (aliasing constructor, empty owner);
      // no router: a plugin expert always answers from its adapted logits.
      spa::SideAdaptedLM side(std::shared_ptr<CausalLM>(std::shared_ptr<CausalLM>(), &model),
                              std::shared_ptr<DeviceAdapter>(std::shared_ptr<DeviceAdapter>(), adapter), nullptr, torch::kFloat);
      adapted[adapter] = {rows, side.next_token(hs, mask.index_select(0, idx), nullptr, nullptr).to(torch::kCPU)};
    }
    // 3. Each question's letters from its own logits row.
    for (size_t p = s; p < e; ++p)
      for (size_t i : askers[p]) {
        const auto& q = questions[i];
        torch::Tensor row = backbone_logits[static_cast<int64_t>(p - s)];
        if (q.adapter) {
          const auto& [rows, logits] = adapted.at(q.adapter);
          row = logits[std::lower_bound(rows.begin(), rows.end(), static_cast<int64_t>(p - s)) - rows.begin()];
        }
        out[i] = pick(row.index_select(0, letters).narrow(0, 0, q.n_options), {});
      }
  }
  return out;
}

std::vector<Answer> answer_loglik(CausalLM& model, const text::Tokenizer& tok, const text::ChatTemplate& tmpl,
                                  const std::vector<Question>& questions, int64_t batch) {
  torch::NoGradGuard ng;
  // Each question's prompt runs once; its options (" <option text>") are scored on top of it.
  std::vector<std::vector<int64_t>> prompts;
  std::vector<std::vector<std::vector<int64_t>>> conts;
  for (const auto& q : questions) {
    if (q.adapter) throw std::invalid_argument("answer: loglik is not available for plugin experts (their plugins are trained to answer letters); use answer: letter");
    if (!q.instance || q.instance->options.size() != static_cast<size_t>(q.n_options))
      throw std::invalid_argument("answer: loglik needs the option texts of every question (instance " +
                                  (q.instance ? q.instance->id : std::string("?")) + " has none)");
    auto prompt = tok.encode_for_model(render_prompt(tmpl, q.system, q.instance->stem, "Answer:"));
    prompt.resize(prompt.size() - tok.suffix_ids.size());
    prompts.push_back(std::move(prompt));
    conts.emplace_back();
    for (const auto& opt : q.instance->options) conts.back().push_back(tok.encode(" " + opt));
  }
  // Chunks of whole questions holding about `batch` scored options each.
  std::vector<Answer> out;
  for (size_t s = 0; s < questions.size();) {
    size_t e = s, rows = 0;
    while (e < questions.size() && (e == s || rows + conts[e].size() <= static_cast<size_t>(batch))) rows += conts[e++].size();
    const auto scores = score_continuation_sets(model, {prompts.begin() + s, prompts.begin() + e}, {conts.begin() + s, conts.begin() + e},
                                                std::max<int64_t>(tok.pad_id, 0));
    for (size_t i = s; i < e; ++i) {
      const auto& q = questions[i];
      auto t = torch::empty({q.n_options}, torch::kDouble);
      for (int64_t j = 0; j < q.n_options; ++j)
        t[j] = scores[i - s][static_cast<size_t>(j)] / static_cast<double>(std::max<size_t>(1, q.instance->options[static_cast<size_t>(j)].size()));
      out.push_back(pick(t, q.allowed));
    }
    s = e;
  }
  return out;
}

}  // namespace tandem::moe

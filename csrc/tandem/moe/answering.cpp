#include "tandem/moe/answering.h"

#include <algorithm>

#include "tandem/core/formats/safetensors.h"
#include "tandem/models/batching.h"
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

std::vector<Answer> answer_letters(CausalLM& model, const text::Tokenizer& tok, const text::ChatTemplate& tmpl,
                                   const std::string& system, const std::vector<std::string>& user_texts,
                                   const std::vector<int64_t>& n_options, int64_t batch, DeviceAdapter* adapter) {
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
  std::unique_ptr<spa::SideAdaptedLM> side;
  if (adapter)  // non-owning handles on the caller's model and plugin (aliasing constructor, empty owner)
    side = std::make_unique<spa::SideAdaptedLM>(std::shared_ptr<CausalLM>(std::shared_ptr<CausalLM>(), &model),
                                                std::shared_ptr<DeviceAdapter>(std::shared_ptr<DeviceAdapter>(), adapter),
                                                nullptr, torch::kFloat);
  std::vector<Answer> out(user_texts.size());
  for (size_t s = 0; s < user_texts.size(); s += batch) {
    const size_t e = std::min(user_texts.size(), s + static_cast<size_t>(batch));
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i = s; i < e; ++i) {
      std::vector<text::ChatMessage> msgs;
      if (!system.empty()) msgs.push_back({"system", system});
      msgs.push_back({"user", user_texts[i]});
      prompts.push_back(tok.encode_for_model(tmpl.render(msgs) + cue));
    }
    const int64_t B = static_cast<int64_t>(prompts.size());
    auto [cpu_ids, cpu_mask] = pad_batch(prompts, std::max<int64_t>(tok.pad_id, 0), PadSide::kLeft);
    const auto ids = cpu_ids.to(fin_device(model)), mask = cpu_mask.to(fin_device(model));
    torch::Tensor logits;
    if (!adapter) {
      logits = model.forward(ids, mask, {}, nullptr, false, 1).logits.select(1, 0).to(torch::kCPU);
    } else {
      // A plugin expert: SideAdaptedLM's adapted next-token logits (no router: always adapted).
      auto o = model.forward(ids, mask, {}, nullptr, true, -1);
      logits = side->next_token(o.hidden_states, mask, nullptr, nullptr).to(torch::kCPU);
    }
    auto picked = logits.index_select(1, letters);  // [B, 10]
    for (int64_t j = 0; j < B; ++j) {
      const int64_t n = n_options[s + j];
      auto lp = torch::log_softmax(picked[j].narrow(0, 0, n).to(torch::kDouble), 0);
      Answer a;
      a.logprobs.assign(lp.data_ptr<double>(), lp.data_ptr<double>() + n);
      a.choice = lp.argmax().item<int64_t>();
      out[s + j] = std::move(a);
    }
  }
  return out;
}

}  // namespace tandem::moe

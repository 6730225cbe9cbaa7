// A tiny random Llama and a character tokenizer for tests that decode: small enough to run in
// milliseconds, random enough that greedy choices are not ties.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/registry.h"
#include "tandem/models/causal_lm.h"
#include "tandem/text/tokenizer.h"

namespace tandem::testing {

/// Characters of the test vocabulary; id 47 is the end-of-sequence token.
inline const std::string kChars = " {}[]\":,0123456789abcdefghijklmnopqrstuvwxyz\n.-";
constexpr int64_t kEos = 47;

inline ModelConfig tiny_llama_config() {
  ModelConfig c;
  c.architecture = "llama";
  c.vocab_size = 48;
  c.hidden_size = 32;
  c.num_layers = 3;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 64;
  c.max_positions = 256;
  c.eos_token_id = kEos;
  c.source = "<tiny llama>";
  return c;
}

inline std::shared_ptr<CausalLM> tiny_llama(uint64_t seed = 7) {
  std::shared_ptr<CausalLM> m(create_named<CausalLM>("llama", tiny_llama_config()).release());
  torch::manual_seed(static_cast<int64_t>(seed));
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.normal_(0.0, 0.5);
  m->eval();
  return m;
}

/// One token per character of kChars; the last id is a special end-of-sequence token.
class CharTokenizer : public text::Tokenizer {
 public:
  CharTokenizer() {
    eos_id = kEos;
    pad_id = kEos;
  }
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> out;
    for (char ch : text) {
      const auto p = kChars.find(ch);
      if (p == std::string::npos) throw std::invalid_argument(std::string("CharTokenizer: no token for '") + ch + "'");
      out.push_back(static_cast<int64_t>(p));
    }
    return out;
  }
  std::string decode(const std::vector<int64_t>& ids, bool) const override {
    std::string s;
    for (auto i : ids)
      if (i >= 0 && i < static_cast<int64_t>(kChars.size())) s += kChars[static_cast<size_t>(i)];
    return s;
  }
  int64_t vocab_size() const override { return 48; }
  int64_t token_to_id(const std::string& t) const override {
    return t.size() == 1 && kChars.find(t[0]) != std::string::npos ? static_cast<int64_t>(kChars.find(t[0])) : -1;
  }
  std::string id_to_token(int64_t id) const override { return decode({id}, false); }
};

/// Greedy decoding written out without a cache or padding: the whole sequence every step.
inline std::vector<int64_t> greedy_by_hand(CausalLM& m, std::vector<int64_t> ids, int64_t steps, int64_t stop = -1) {
  torch::NoGradGuard ng;
  std::vector<int64_t> out;
  for (int64_t s = 0; s < steps; ++s) {
    auto x = torch::tensor(ids, torch::kLong).view({1, -1});
    const int64_t next = m.forward(x, torch::ones_like(x), {}, nullptr, false, 1).logits[0][-1].argmax().item<int64_t>();
    if (next == stop) break;
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

}  // namespace tandem::testing

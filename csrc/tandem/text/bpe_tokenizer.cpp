// Byte-level BPE (GPT-2, SmolLM2, and later Llama-3/Qwen2 styles): added tokens are split out
// first, the rest is pre-tokenized (optional single-digit split, then the GPT-2 pattern), each
// piece is mapped byte -> printable code point, and BPE merges are applied lowest rank first.
#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "tandem/core/files.h"
#include "tandem/core/formats/gguf.h"
#include "tandem/core/utf8.h"
#include "tandem/text/tokenizer.h"
#include "tandem/text/vocab_ids.h"
#include "tandem/text/unicode.h"

namespace tandem::text {
namespace {

// GPT-2's reversible byte <-> code point table: printable bytes map to themselves, the rest to
// code points from 256 up, so every byte string becomes printable text.
struct ByteTable {
  uint32_t to_cp[256];
  std::unordered_map<uint32_t, uint8_t> to_byte;
  ByteTable() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      to_byte[to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteTable& bytes() {
  static const ByteTable t;
  return t;
}

// The GPT-2 pre-tokenization pattern, hand-compiled:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const std::vector<uint32_t>& c, size_t b, size_t e, std::vector<std::pair<size_t, size_t>>& out) {
  auto other = [](uint32_t x) { return !is_whitespace(x) && !is_letter(x) && !is_number(x); };
  size_t i = b;
  while (i < e) {
    // Contractions.
    if (c[i] == '\'' && i + 1 < e) {
      const uint32_t n1 = c[i + 1], n2 = i + 2 < e ? c[i + 2] : 0;
      if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
        out.emplace_back(i, i + 2);
        i += 2;
        continue;
      }
      if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) {
        out.emplace_back(i, i + 3);
        i += 3;
        continue;
      }
    }
    // ` ?` followed by a run of one class.
    const size_t s = (c[i] == ' ' && i + 1 < e) ? i + 1 : i;
    bool (*cls)(uint32_t) = nullptr;
    if (is_letter(c[s])) cls = is_letter;
    else if (is_number(c[s])) cls = is_number;
    if (cls || other(c[s])) {
      size_t j = s + 1;
      if (cls)
        while (j < e && cls(c[j])) ++j;
      else
        while (j < e && other(c[j])) ++j;
      if (!(s == i + 1 && (is_whitespace(c[s]))))  // " " + whitespace is not a ` ?X+` match
      {
        out.emplace_back(i, j);
        i = j;
        continue;
      }
    }
    // Whitespace: \s+(?!\S), else \s+.
    size_t j = i;
    while (j < e && is_whitespace(c[j])) ++j;
    if (j < e && j - i > 1) --j;  // leave the last space to prefix the next word
    out.emplace_back(i, j);
    i = j;
  }
}

class ByteLevelBpe : public Tokenizer {
 public:
  struct Options {
    bool split_digits = false;  // Digits(individual_digits=true) before the pattern
  };

  ByteLevelBpe(std::vector<std::string> id_to_token, const std::vector<std::pair<std::string, std::string>>& merges,
               std::vector<std::pair<std::string, bool>> added, Options opt, const std::string& source)
      : id_to_token_(std::move(id_to_token)), opt_(opt), source_(source) {
    for (size_t i = 0; i < id_to_token_.size(); ++i)
      if (!id_to_token_[i].empty() || i == 0) token_to_id_.emplace(id_to_token_[i], static_cast<int64_t>(i));
    // Every merge joins two tokens into a third, all in the vocabulary (HF tokenizers refuses to
    // load otherwise). Single bytes may be missing (SmolLM2 has no token for some control bytes):
    // encoding a text with one is an error naming the file, never a silent drop.
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& [a, b] = merges[r];
      if (!token_to_id_.count(a) || !token_to_id_.count(b) || !token_to_id_.count(a + b))
        throw std::runtime_error(source + ": merge " + std::to_string(r) + " ('" + a + "' + '" + b +
                                 "') uses or makes a token that is not in the vocabulary");
      merge_rank_.emplace(a + '\x01' + b, static_cast<int>(r));
    }
    for (auto& [content, special] : added) {
      auto it = token_to_id_.find(content);
      if (it == token_to_id_.end())
        throw std::runtime_error(source + ": added token '" + content + "' is not in the vocabulary");
      added_.push_back({content, it->second, special});
      special_ids_.insert({it->second, special});
    }
    // Longest first, so "<|im_start|>" wins over a shorter prefix.
    std::sort(added_.begin(), added_.end(), [](const Added& a, const Added& b) { return a.content.size() > b.content.size(); });
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> out;
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      const Added* hit = nullptr;
      for (const auto& a : added_)
        if (text.compare(i, a.content.size(), a.content) == 0) {
          hit = &a;
          break;
        }
      if (!hit) {
        ++i;
        continue;
      }
      encode_plain(text.substr(start, i - start), out);
      out.push_back(hit->id);
      i += hit->content.size();
      start = i;
    }
    encode_plain(text.substr(start), out);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string out;
    const auto& bt = bytes();
    for (int64_t id : ids) {
      if (id < 0 || id >= static_cast<int64_t>(id_to_token_.size()))
        throw std::out_of_range("decode: token id " + std::to_string(id) + " outside the vocabulary of " +
                                std::to_string(id_to_token_.size()));
      auto sp = special_ids_.find(id);
      if (sp != special_ids_.end()) {
        if (!(skip_special && sp->second)) out += id_to_token_[id];  // added tokens are literal text
        continue;
      }
      for (uint32_t cp : utf8_decode(id_to_token_[id])) {
        auto it = bt.to_byte.find(cp);
        if (it != bt.to_byte.end()) out += static_cast<char>(it->second);
        else utf8_append(out, cp);
      }
    }
    return out;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t token_to_id(const std::string& t) const override {
    auto it = token_to_id_.find(t);
    return it == token_to_id_.end() ? -1 : it->second;
  }
  std::string id_to_token(int64_t id) const override {
    return id >= 0 && id < vocab_size() ? id_to_token_[id] : std::string();
  }

 private:
  struct Added {
    std::string content;
    int64_t id;
    bool special;
  };

  void encode_plain(const std::string& text, std::vector<int64_t>& out) const {
    if (text.empty()) return;
    const std::vector<uint32_t> cps = utf8_decode(text);
    std::vector<std::pair<size_t, size_t>> pieces;
    if (opt_.split_digits) {
      size_t i = 0;
      while (i < cps.size()) {
        if (is_number(cps[i])) {  // Digits uses Rust's char::is_numeric, i.e. \p{N}
          pieces.emplace_back(i, i + 1);
          ++i;
          continue;
        }
        size_t j = i;
        while (j < cps.size() && !is_number(cps[j])) ++j;
        split_gpt2(cps, i, j, pieces);
        i = j;
      }
    } else {
      split_gpt2(cps, 0, cps.size(), pieces);
    }
    const auto& bt = bytes();
    for (const auto& [b, e] : pieces) {
      std::string raw = utf8_encode(cps, b, e), mapped;
      for (unsigned char ch : raw) utf8_append(mapped, bt.to_cp[ch]);
      bpe(mapped, out);
    }
  }

  // Applies merges to one pre-token (already byte-mapped), lowest rank first, leftmost on ties.
  void bpe(const std::string& word, std::vector<int64_t>& out) const {
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<std::string> sym;
    for (uint32_t cp : utf8_decode(word)) {
      std::string s;
      utf8_append(s, cp);
      sym.push_back(std::move(s));
    }
    while (sym.size() > 1) {
      int best = -1;
      size_t at = 0;
      for (size_t k = 0; k + 1 < sym.size(); ++k) {
        auto it = merge_rank_.find(sym[k] + '\x01' + sym[k + 1]);
        if (it != merge_rank_.end() && (best < 0 || it->second < best)) best = it->second, at = k;
      }
      if (best < 0) break;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + static_cast<long>(at) + 1);
    }
    std::vector<int64_t> ids;
    for (const auto& s : sym) {
      auto it = token_to_id_.find(s);
      if (it == token_to_id_.end()) {
        // Byte-level vocabularies hold every single byte symbol; this means a broken vocab.
        throw std::runtime_error(source_ + ": the text has a symbol ('" + escape_invalid_utf8(s) + "') that is not in the vocabulary");
      }
      ids.push_back(it->second);
    }
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() < 200000) cache_.emplace(word, std::move(ids));
  }

  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  std::unordered_map<std::string, int> merge_rank_;
  std::vector<Added> added_;
  std::map<int64_t, bool> special_ids_;
  Options opt_;
  std::string source_;  // the file, for messages
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
  mutable std::mutex cache_mu_;
};

std::pair<std::string, std::string> split_merge(const std::string& m, const std::string& source) {
  auto sp = m.find(' ');
  if (sp == std::string::npos) throw std::runtime_error(source + ": malformed merge '" + m + "' (expected \"a b\")");
  return {m.substr(0, sp), m.substr(sp + 1)};
}

// tokenizer.json with model.type "BPE": byte-level pre-tokenization is required.
std::unique_ptr<Tokenizer> bpe_from_json(const TokenizerSource& src) {
  const nlohmann::json& j = *src.json;
  const std::string& path = src.path;
  const auto& model = j.at("model");
  ByteLevelBpe::Options opt;
  bool byte_level = false;
  std::function<void(const nlohmann::json&)> scan = [&](const nlohmann::json& pt) {
    if (pt.is_null()) return;
    const std::string t = pt.value("type", std::string());
    if (t == "Sequence") {
      for (const auto& p : pt.at("pretokenizers")) scan(p);
    } else if (t == "ByteLevel") {
      if (pt.value("add_prefix_space", false))
        throw std::runtime_error(path + ": ByteLevel add_prefix_space=true is not supported yet");
      byte_level = true;
    } else if (t == "Digits") {
      opt.split_digits = pt.value("individual_digits", false);
      if (!opt.split_digits) throw std::runtime_error(path + ": Digits without individual_digits is not supported yet");
    } else {
      throw std::runtime_error(path + ": pre-tokenizer \"" + t + "\" is not supported yet (expected ByteLevel, Digits, Sequence)");
    }
  };
  scan(j.value("pre_tokenizer", nlohmann::json()));
  if (!byte_level) throw std::runtime_error(path + ": expected a ByteLevel pre-tokenizer for a BPE model");
  std::vector<std::string> vocab;
  const auto& vocab_j = model.at("vocab");
  if (!vocab_j.is_object()) throw std::runtime_error(path + ": model.vocab must be an object of token -> id");
  for (auto it = vocab_j.begin(); it != vocab_j.end(); ++it) {
    const int64_t id = json_token_id(it.value(), path, it.key());
    if (static_cast<size_t>(id) >= vocab.size()) vocab.resize(id + 1);
    vocab[id] = it.key();
  }
  std::vector<std::pair<std::string, bool>> added;
  for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
    const int64_t id = json_token_id(a.at("id"), path, "added_tokens");
    if (static_cast<size_t>(id) >= vocab.size()) vocab.resize(id + 1);
    vocab[id] = a.at("content").get<std::string>();
    added.emplace_back(a.at("content").get<std::string>(), a.value("special", false));
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (const auto& m : model.value("merges", nlohmann::json::array())) {
    if (m.is_string()) merges.push_back(split_merge(m.get<std::string>(), path));
    else if (m.is_array() && m.size() == 2) merges.emplace_back(m.at(0).get<std::string>(), m.at(1).get<std::string>());
    else throw std::runtime_error(path + ": a merge must be \"a b\" or [\"a\", \"b\"], got " + m.dump());
  }
  return std::make_unique<ByteLevelBpe>(std::move(vocab), merges, std::move(added), opt, path);
}

// GGUF with tokenizer.ggml.model "gpt2": byte-level BPE; the pre-tokenizer name picks the split.
std::unique_ptr<Tokenizer> bpe_from_gguf(const TokenizerSource& src) {
  const gguf::GgufFile& f = *src.gguf;
  const std::string& path = src.path;
  const std::string pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  ByteLevelBpe::Options opt;
  if (pre == "smollm") opt.split_digits = true;  // SmolLM's tokenizer.json: Digits(individual) + ByteLevel
  else if (pre != "gpt2" && pre != "default")
    throw std::runtime_error(path + ": GGUF pre-tokenizer \"" + pre + "\" is not supported yet (expected gpt2, smollm)");
  auto tokens = f.get_strings("tokenizer.ggml.tokens");
  std::vector<std::pair<std::string, std::string>> merges;
  for (const auto& m : f.get_strings("tokenizer.ggml.merges")) merges.push_back(split_merge(m, path));
  std::vector<std::pair<std::string, bool>> added;
  if (f.has("tokenizer.ggml.token_type")) {
    auto types = f.get_ints("tokenizer.ggml.token_type");
    for (size_t i = 0; i < types.size() && i < tokens.size(); ++i)
      if (types[i] == 3 || types[i] == 4) added.emplace_back(tokens[i], types[i] == 3);  // CONTROL, USER_DEFINED
  }
  auto tok = std::make_unique<ByteLevelBpe>(std::move(tokens), merges, std::move(added), opt, path);
  tok->bos_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  tok->eos_id = f.get_int("tokenizer.ggml.eos_token_id", -1);
  tok->pad_id = f.get_int("tokenizer.ggml.padding_token_id", tok->eos_id);
  tok->add_bos = f.has("tokenizer.ggml.add_bos_token") && f.get_bool("tokenizer.ggml.add_bos_token");
  return tok;
}

}  // namespace

TANDEM_REGISTER_FUNCTION(Tokenizer, "json/BPE", bpe_from_json);
TANDEM_REGISTER_FUNCTION(Tokenizer, "gguf/gpt2", bpe_from_gguf);

}  // namespace tandem::text

// WordPiece (BERT, MiniLM, BGE) from tokenizer.json: BertNormalizer (clean text, spaces around
// CJK characters, accents stripped by NFD, lowercase), BertPreTokenizer (whitespace, then each
// punctuation character alone), greedy longest-match-first pieces with a "##" continuation
// prefix, and [CLS] ... [SEP] around the result.
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "tandem/text/tokenizer.h"
#include "tandem/text/unicode.h"
#include "tandem/text/tokenizer.h"
#include "tandem/text/vocab_ids.h"

namespace tandem::text {
namespace {

bool is_cjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// BERT's notion of punctuation: every non-alphanumeric ASCII symbol, plus Unicode P*.
bool bert_punct(uint32_t cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126) ||
         is_punctuation(cp);
}

bool bert_space(uint32_t cp) { return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || is_space_separator(cp); }

class WordPiece : public Tokenizer {
 public:
  struct Options {
    bool clean_text = true, chinese = true, strip_accents = true, lowercase = true;
    std::string prefix = "##";
    size_t max_chars = 100;
    int64_t max_length = 512;
  };

  WordPiece(std::vector<std::string> vocab, Options o, const std::string& source) : vocab_(std::move(vocab)), o_(o) {
    for (size_t i = 0; i < vocab_.size(); ++i) ids_.emplace(vocab_[i], static_cast<int64_t>(i));
    auto need = [&](const char* t) {
      auto it = ids_.find(t);
      if (it == ids_.end()) throw std::runtime_error(source + ": the WordPiece vocabulary has no " + t + " token");
      return it->second;
    };
    unk_ = need("[UNK]");
    cls_ = need("[CLS]");
    sep_ = need("[SEP]");
    pad_id = ids_.count("[PAD]") ? ids_.at("[PAD]") : 0;
    for (const char* s : {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"})
      if (ids_.count(s)) special_.emplace(ids_.at(s));
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    // Normalise.
    std::vector<uint32_t> cps;
    for (uint32_t cp : utf8_decode(text)) {
      if (o_.clean_text) {
        if (cp == 0 || cp == 0xFFFD || (is_control_or_format(cp) && cp != '\t' && cp != '\n' && cp != '\r')) continue;
        if (bert_space(cp)) cp = ' ';
      }
      if (o_.chinese && is_cjk(cp)) {
        cps.push_back(' ');
        cps.push_back(cp);
        cps.push_back(' ');
        continue;
      }
      cps.push_back(cp);
    }
    if (o_.strip_accents) {
      std::vector<uint32_t> s;
      for (uint32_t cp : cps) append_stripped(cp, s);
      cps.swap(s);
    }
    if (o_.lowercase) {
      std::vector<uint32_t> s;
      for (uint32_t cp : cps) append_lower(cp, s);
      cps.swap(s);
    }
    // Pre-tokenize and split into pieces.
    std::vector<int64_t> out{cls_};
    std::vector<uint32_t> word;
    auto flush = [&] {
      if (!word.empty()) pieces(word, out);
      word.clear();
    };
    for (uint32_t cp : cps) {
      if (bert_space(cp)) {
        flush();
      } else if (bert_punct(cp)) {
        flush();
        word.push_back(cp);
        flush();
      } else {
        word.push_back(cp);
      }
    }
    flush();
    if (static_cast<int64_t>(out.size()) + 1 > o_.max_length) out.resize(o_.max_length - 1);
    out.push_back(sep_);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string out;
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab_size()) throw std::out_of_range("decode: token id " + std::to_string(id) + " outside the vocabulary");
      if (skip_special && special_.count(id)) continue;
      const std::string& t = vocab_[id];
      if (t.compare(0, o_.prefix.size(), o_.prefix) == 0) {
        out += t.substr(o_.prefix.size());
      } else {
        if (!out.empty()) out += ' ';
        out += t;
      }
    }
    return out;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  int64_t token_to_id(const std::string& t) const override {
    auto it = ids_.find(t);
    return it == ids_.end() ? -1 : it->second;
  }
  std::string id_to_token(int64_t id) const override { return id >= 0 && id < vocab_size() ? vocab_[id] : ""; }

 private:
  void pieces(const std::vector<uint32_t>& w, std::vector<int64_t>& out) const {
    if (w.size() > o_.max_chars) {
      out.push_back(unk_);
      return;
    }
    std::vector<int64_t> got;
    size_t start = 0;
    while (start < w.size()) {
      size_t end = w.size();
      int64_t found = -1;
      while (end > start) {
        std::string s = (start > 0 ? o_.prefix : std::string()) + utf8_encode(w, start, end);
        auto it = ids_.find(s);
        if (it != ids_.end()) {
          found = it->second;
          break;
        }
        --end;
      }
      if (found < 0) {
        out.push_back(unk_);  // one unknown piece makes the whole word [UNK]
        return;
      }
      got.push_back(found);
      start = end;
    }
    out.insert(out.end(), got.begin(), got.end());
  }

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  Options o_;
  int64_t unk_, cls_, sep_;
  std::unordered_set<int64_t> special_;
};

// tokenizer.json with model.type "WordPiece" (BERT family).
std::unique_ptr<Tokenizer> wordpiece_from_json(const TokenizerSource& src) {
  const nlohmann::json& j = *src.json;
  const std::string& path = src.path;
  const auto& model = j.at("model");
  WordPiece::Options o;
  o.prefix = model.value("continuing_subword_prefix", std::string("##"));
  o.max_chars = model.value("max_input_chars_per_word", 100);
  const auto& norm = j.value("normalizer", nlohmann::json());
  if (!norm.is_null()) {
    if (norm.value("type", std::string()) != "BertNormalizer")
      throw std::runtime_error(path + ": WordPiece normalizer \"" + norm.value("type", std::string()) +
                               "\" is not supported (expected BertNormalizer)");
    o.clean_text = norm.value("clean_text", true);
    o.chinese = norm.value("handle_chinese_chars", true);
    o.lowercase = norm.value("lowercase", true);
    // strip_accents: null means "follow lowercase", as in HF tokenizers.
    o.strip_accents = norm.contains("strip_accents") && !norm["strip_accents"].is_null() ? norm["strip_accents"].get<bool>()
                                                                                          : o.lowercase;
  }
  const auto& pre = j.value("pre_tokenizer", nlohmann::json());
  if (!pre.is_null() && pre.value("type", std::string()) != "BertPreTokenizer")
    throw std::runtime_error(path + ": WordPiece pre-tokenizer \"" + pre.value("type", std::string()) +
                             "\" is not supported (expected BertPreTokenizer)");
  if (j.contains("truncation") && j["truncation"].is_object()) o.max_length = j["truncation"].value("max_length", 512);
  std::vector<std::string> vocab;
  const auto& vocab_j = model.at("vocab");
  if (!vocab_j.is_object()) throw std::runtime_error(path + ": model.vocab must be an object of token -> id");
  for (auto it = vocab_j.begin(); it != vocab_j.end(); ++it) {
    const int64_t id = json_token_id(it.value(), path, it.key());
    if (static_cast<size_t>(id) >= vocab.size()) vocab.resize(id + 1);
    vocab[id] = it.key();
  }
  return std::make_unique<WordPiece>(std::move(vocab), o, path);
}

}  // namespace

TANDEM_REGISTER_FUNCTION(Tokenizer, "json/WordPiece", wordpiece_from_json);

}  // namespace tandem::text

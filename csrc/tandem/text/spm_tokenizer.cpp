// SentencePiece-style BPE (Gemma, Llama 2), from a GGUF vocabulary with scores: spaces become
// U+2581, added tokens (control, and user-defined ones written without U+2581) are split out
// of the raw text first, then adjacent pieces merge best-score-first (a heap over candidate
// pairs, leftmost on ties), and pieces missing from the vocabulary fall back to <0xXX> bytes.
// Equivalent to HF `tokenizers` BPE with merges ranked by score and byte_fallback.
#include <algorithm>
#include <cstring>
#include <queue>
#include <map>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "tandem/core/formats/gguf.h"
#include "tandem/text/tokenizer.h"
#include "tandem/text/unicode.h"

namespace tandem::text {
namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

enum TokenType : int64_t { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 };

class SpmTokenizer : public Tokenizer {
 public:
  SpmTokenizer(std::vector<std::string> tokens, std::vector<double> scores, std::vector<int64_t> types,
               bool add_space_prefix, const std::string& source)
      : tokens_(std::move(tokens)), scores_(std::move(scores)), types_(std::move(types)), add_space_prefix_(add_space_prefix) {
    if (scores_.size() != tokens_.size() || types_.size() != tokens_.size())
      throw std::runtime_error(source + ": tokenizer.ggml.scores/token_type do not match tokenizer.ggml.tokens in length");
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const int64_t t = types_[i];
      // Views into tokens_, which never changes after construction: lookups allocate nothing.
      if (t == NORMAL || t == USER_DEFINED) merge_target_.emplace(std::string_view(tokens_[i]), static_cast<int64_t>(i));
      if (t == BYTE && tokens_[i].size() == 6 && tokens_[i].compare(0, 3, "<0x") == 0)
        byte_id_[std::stoi(tokens_[i].substr(3, 2), nullptr, 16)] = static_cast<int64_t>(i);
      if (t == CONTROL || (t == USER_DEFINED && tokens_[i].find(kSpace) == std::string::npos && !tokens_[i].empty())) {
        added_by_len_[tokens_[i].size()].emplace(std::string_view(tokens_[i]), static_cast<int64_t>(i));
        first_bytes_[static_cast<unsigned char>(tokens_[i][0])] = true;
      }
      lookup_.emplace(std::string_view(tokens_[i]), static_cast<int64_t>(i));
    }
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> out;
    size_t start = 0;
    bool first = true;
    const std::string_view view(text);
    for (size_t i = 0; i < text.size();) {
      int64_t hit = -1;
      size_t hit_len = 0;
      if (first_bytes_[static_cast<unsigned char>(text[i])])
        for (const auto& [len, table] : added_by_len_) {  // longest first
          if (len > text.size() - i) continue;
          auto it = table.find(view.substr(i, len));
          if (it != table.end()) {
            hit = it->second;
            hit_len = len;
            break;
          }
        }
      if (hit < 0) {
        ++i;
        continue;
      }
      encode_segment(text.substr(start, i - start), first, out);
      first = false;
      out.push_back(hit);
      i += hit_len;
      start = i;
    }
    encode_segment(text.substr(start), first, out);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string out;
    // SentencePiece (and llama.cpp) drop the space that add_space_prefix put before the text:
    // the first piece's leading U+2581, when the text starts with one.
    bool strip_next = add_space_prefix_;
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab_size())
        throw std::out_of_range("decode: token id " + std::to_string(id) + " outside the vocabulary of " +
                                std::to_string(vocab_size()));
      const int64_t t = types_[id];
      if (t == BYTE) {
        out += static_cast<char>(std::stoi(tokens_[id].substr(3, 2), nullptr, 16));
        strip_next = false;
        continue;
      }
      if ((t == CONTROL || t == UNKNOWN) && skip_special) continue;
      const std::string& s = tokens_[id];
      size_t p = 0;
      if (strip_next && s.compare(0, 3, kSpace) == 0) p = 3;
      if (t != CONTROL) strip_next = false;  // "<s>" before the text keeps the strip for the text
      for (; p < s.size();) {
        if (s.compare(p, 3, kSpace) == 0) {
          out += ' ';
          p += 3;
        } else {
          out += s[p++];
        }
      }
    }
    return out;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  int64_t token_to_id(const std::string& t) const override {
    auto it = lookup_.find(std::string_view(t));
    return it == lookup_.end() ? -1 : it->second;
  }
  std::string id_to_token(int64_t id) const override { return id >= 0 && id < vocab_size() ? tokens_[id] : ""; }

 private:
  struct Symbol {
    size_t begin, len;
    int prev, next;
  };
  struct Candidate {
    double score;
    int left;
    size_t len;  // total byte length when queued, to detect stale entries
    bool operator<(const Candidate& o) const { return score < o.score || (score == o.score && left > o.left); }
  };

  void encode_segment(const std::string& raw, bool first, std::vector<int64_t>& out) const {
    if (raw.empty()) return;
    std::string text = add_space_prefix_ && first ? kSpace : "";
    for (char c : raw) text += c == ' ' ? kSpace : std::string(1, c);
    // One symbol per UTF-8 character, linked so merges are O(1).
    std::vector<Symbol> sym;
    for (size_t i = 0; i < text.size();) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
      n = std::min(n, text.size() - i);
      sym.push_back({i, n, static_cast<int>(sym.size()) - 1, static_cast<int>(sym.size()) + 1});
      i += n;
    }
    sym.back().next = -1;
    std::priority_queue<Candidate> heap;
    auto consider = [&](int l) {
      if (l < 0 || sym[l].next < 0) return;
      const Symbol &a = sym[l], &b = sym[sym[l].next];
      auto it = merge_target_.find(std::string_view(text).substr(a.begin, a.len + b.len));
      if (it != merge_target_.end()) heap.push({scores_[it->second], l, a.len + b.len});
    };
    for (int i = 0; i + 1 < static_cast<int>(sym.size()); ++i) consider(i);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      Symbol& a = sym[c.left];
      if (a.len == 0 || a.next < 0 || a.len + sym[a.next].len != c.len) continue;  // stale
      Symbol& b = sym[a.next];
      a.len += b.len;
      b.len = 0;
      a.next = b.next;
      if (b.next >= 0) sym[b.next].prev = c.left;
      consider(a.prev);
      consider(c.left);
    }
    for (int i = 0; i >= 0 && i < static_cast<int>(sym.size()); i = sym[i].next) {
      const std::string_view piece = std::string_view(text).substr(sym[i].begin, sym[i].len);
      auto it = lookup_.find(piece);
      if (it != lookup_.end() && (types_[it->second] == NORMAL || types_[it->second] == USER_DEFINED)) {
        out.push_back(it->second);
        continue;
      }
      for (unsigned char ch : piece) {
        auto bt = byte_id_.find(ch);
        if (bt == byte_id_.end()) throw std::runtime_error("tokenizer: no <0x" + std::to_string(ch) + "> byte token");
        out.push_back(bt->second);
      }
    }
  }

  std::vector<std::string> tokens_;
  std::vector<double> scores_;
  std::vector<int64_t> types_;
  bool add_space_prefix_;
  std::unordered_map<std::string_view, int64_t> merge_target_, lookup_;
  std::unordered_map<int, int64_t> byte_id_;
  std::map<size_t, std::unordered_map<std::string_view, int64_t>, std::greater<size_t>> added_by_len_;
  bool first_bytes_[256] = {};
};

// GGUF with tokenizer.ggml.model "llama": SentencePiece pieces with scores.
std::unique_ptr<Tokenizer> spm_from_gguf(const TokenizerSource& src) {
  const gguf::GgufFile& f = *src.gguf;
  const bool prefix = f.has("tokenizer.ggml.add_space_prefix") ? f.get_bool("tokenizer.ggml.add_space_prefix") : true;
  auto tok = std::make_unique<SpmTokenizer>(f.get_strings("tokenizer.ggml.tokens"), f.get_floats("tokenizer.ggml.scores"),
                                            f.get_ints("tokenizer.ggml.token_type"), prefix, f.path());
  tok->bos_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  tok->eos_id = f.get_int("tokenizer.ggml.eos_token_id", -1);
  tok->pad_id = f.get_int("tokenizer.ggml.padding_token_id", -1);
  const bool add_bos = f.has("tokenizer.ggml.add_bos_token") ? f.get_bool("tokenizer.ggml.add_bos_token") : true;
  if (add_bos && tok->bos_id >= 0) tok->prefix_ids = {tok->bos_id};
  if (f.has("tokenizer.ggml.add_eos_token") && f.get_bool("tokenizer.ggml.add_eos_token") && tok->eos_id >= 0)
    tok->suffix_ids = {tok->eos_id};
  if (f.has("tokenizer.chat_template")) tok->chat_template = f.get_string("tokenizer.chat_template");
  return tok;
}

}  // namespace

TANDEM_REGISTER_FUNCTION(Tokenizer, "gguf/llama", spm_from_gguf);

}  // namespace tandem::text

// BPE tokenizers as HF `tokenizers` runs them: added tokens are split out of the raw text
// (leftmost-longest, with their lstrip/rstrip), each remaining segment is normalized,
// pre-tokenized into pieces, and every piece is merged pair by pair, lowest merge rank first
// (leftmost on ties). Characters missing from the vocabulary fall back to <0xXX> byte tokens
// (byte_fallback) or the unknown token; a text that would lose a character is an error.
// Byte-level families (GPT-2, SmolLM2, Llama 3, Qwen2) and SentencePiece-converted ones
// (Llama 2, Mistral, Gemma) differ only in the pipeline read from the file.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "tandem/core/files.h"
#include "tandem/core/formats/gguf.h"
#include "tandem/core/utf8.h"
#include "tandem/text/json_fields.h"
#include "tandem/text/tokenizer.h"
#include "tandem/text/tokenizer_pipeline.h"
#include "tandem/text/unicode.h"
#include "tandem/text/vocab_ids.h"

namespace fs = std::filesystem;

namespace tandem::text {
namespace {

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool special = false, lstrip = false, rstrip = false;
};

struct BpeModel {
  std::vector<std::string> vocab;  // id -> token
  std::vector<std::pair<std::string, std::string>> merges;
  bool byte_fallback = false, ignore_merges = false, fuse_unk = false;
  std::string unk_token;
};

class BpeTokenizer : public Tokenizer {
 public:
  BpeTokenizer(BpeModel m, std::vector<AddedToken> added, Normalizer norm, PreTokenizer pre, TokenDecoder dec,
               const std::string& source)
      : id_to_token_(std::move(m.vocab)), norm_(std::move(norm)), pre_(std::move(pre)), dec_(std::move(dec)),
        byte_fallback_(m.byte_fallback), ignore_merges_(m.ignore_merges), fuse_unk_(m.fuse_unk), source_(source) {
    for (size_t i = 0; i < id_to_token_.size(); ++i)
      if (!id_to_token_[i].empty() || i == 0) token_to_id_.emplace(id_to_token_[i], static_cast<int64_t>(i));
    // Every merge joins two tokens into a third, all in the vocabulary (HF refuses the file otherwise).
    for (size_t r = 0; r < m.merges.size(); ++r) {
      const auto& [a, b] = m.merges[r];
      const int64_t ia = token_to_id(a), ib = token_to_id(b), iab = token_to_id(a + b);
      if (ia < 0 || ib < 0 || iab < 0)
        throw std::runtime_error(source + ": merge " + std::to_string(r) + " ('" + a + "' + '" + b +
                                 "') uses or makes a token that is not in the vocabulary");
      merges_.emplace(key(ia, ib), std::make_pair(static_cast<int>(r), iab));  // the first rank wins, as in HF
    }
    unk_id_ = m.unk_token.empty() ? -1 : token_to_id(m.unk_token);
    if (!m.unk_token.empty() && unk_id_ < 0) throw std::runtime_error(source + ": unk_token '" + m.unk_token + "' is not in the vocabulary");
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      byte_id_[b] = token_to_id(name);
    }
    for (auto& a : added) {
      special_ids_[a.id] = a.special;
      first_bytes_[static_cast<unsigned char>(a.content[0])] = true;
      added_.push_back(std::move(a));
    }
    std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> out;
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
      const AddedToken* hit = first_bytes_[static_cast<unsigned char>(text[i])] ? match_added(text, i) : nullptr;
      if (!hit) {
        ++i;
        continue;
      }
      size_t b = i, e = i + hit->content.size();
      if (hit->lstrip)
        while (b > start && is_ascii_or_unicode_space(text, b - 1)) --b;
      if (hit->rstrip)
        while (e < text.size() && is_ascii_or_unicode_space(text, e)) ++e;
      encode_segment(text, start, b, out);
      out.push_back(hit->id);
      i = start = e;
    }
    encode_segment(text, start, text.size(), out);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids, bool skip_special) const override {
    std::string out;
    std::vector<std::string> run;
    for (int64_t id : ids) {
      if (id < 0 || id >= vocab_size())
        throw std::out_of_range("decode: token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(vocab_size()));
      auto sp = special_ids_.find(id);
      if (sp == special_ids_.end()) {
        run.push_back(id_to_token_[id]);
        continue;
      }
      // An added token is its own text; the decoder runs on the tokens between them (HF's rule).
      if (skip_special && sp->second) continue;
      if (!run.empty()) out += dec_.apply(std::move(run)), run.clear();
      out += id_to_token_[id];
    }
    if (!run.empty()) out += dec_.apply(std::move(run));
    return out;
  }

  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t token_to_id(const std::string& t) const override {
    auto it = token_to_id_.find(t);
    return it == token_to_id_.end() ? -1 : it->second;
  }
  std::string id_to_token(int64_t id) const override { return id >= 0 && id < vocab_size() ? id_to_token_[id] : std::string(); }

 private:
  static uint64_t key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b); }

  static bool is_ascii_or_unicode_space(const std::string& s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  }

  const AddedToken* match_added(const std::string& text, size_t i) const {
    for (const auto& a : added_)  // longest first: leftmost-longest as HF's Aho-Corasick
      if (text.compare(i, a.content.size(), a.content) == 0) return &a;
    return nullptr;
  }

  void encode_segment(const std::string& text, size_t b, size_t e, std::vector<int64_t>& out) const {
    if (e <= b) return;
    const std::string normalized = norm_.apply(text.substr(b, e - b));
    if (normalized.empty()) return;
    for (const auto& piece : pre_.apply({Piece{normalized, b == 0}})) bpe(piece.text, out);
  }

  struct Sym {
    int64_t id;
    int prev, next;
  };
  struct Cand {
    int rank, left;
    int64_t a, b;  // the pair when queued, to skip stale entries
    bool operator<(const Cand& o) const { return rank > o.rank || (rank == o.rank && left > o.left); }
  };

  // Merges one piece (HF's BPE::merge_word + Word::merge_all).
  void bpe(const std::string& word, std::vector<int64_t>& out) const {
    if (word.empty()) return;
    const bool cacheable = word.size() <= 256;
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int64_t> ids;
    if (ignore_merges_) {
      const int64_t whole = token_to_id(word);
      if (whole >= 0) ids.push_back(whole);
    }
    if (ids.empty()) {
      std::vector<Sym> sym;
      bool last_unk = false;
      for (size_t i = 0; i < word.size();) {
        const unsigned char c = static_cast<unsigned char>(word[i]);
        const size_t n = std::min(word.size() - i, size_t(c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4));
        const std::string ch = word.substr(i, n);
        i += n;
        const int64_t id = token_to_id(ch);
        if (id >= 0) {
          sym.push_back({id, 0, 0});
          last_unk = false;
          continue;
        }
        if (byte_fallback_) {
          bool all = true;
          for (unsigned char x : ch) all = all && byte_id_[x] >= 0;
          if (all) {
            for (unsigned char x : ch) sym.push_back({byte_id_[x], 0, 0});
            last_unk = false;
            continue;
          }
        }
        if (unk_id_ < 0)
          throw std::runtime_error(source_ + ": the text has a character ('" + escape_invalid_utf8(ch) +
                                   "') that is not in the vocabulary, and the tokenizer has no unk_token");
        if (!(fuse_unk_ && last_unk)) sym.push_back({unk_id_, 0, 0});
        last_unk = true;
      }
      merge_all(sym);
      for (int k = 0; k >= 0; k = sym[k].next) {
        ids.push_back(sym[k].id);
        if (sym[k].next < 0) break;
      }
    }
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (cache_.size() < 200000) cache_.emplace(word, std::move(ids));
    }
  }

  void merge_all(std::vector<Sym>& sym) const {
    const int n = static_cast<int>(sym.size());
    for (int k = 0; k < n; ++k) sym[k].prev = k - 1, sym[k].next = k + 1 < n ? k + 1 : -1;
    std::priority_queue<Cand> heap;
    auto consider = [&](int l) {
      if (l < 0 || sym[l].next < 0) return;
      auto it = merges_.find(key(sym[l].id, sym[sym[l].next].id));
      if (it != merges_.end()) heap.push({it->second.first, l, sym[l].id, sym[sym[l].next].id});
    };
    for (int k = 0; k + 1 < n; ++k) consider(k);
    std::vector<bool> gone(n, false);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      if (gone[c.left] || sym[c.left].id != c.a || sym[c.left].next < 0 || sym[sym[c.left].next].id != c.b) continue;
      const int r = sym[c.left].next;
      sym[c.left].id = merges_.at(key(c.a, c.b)).second;
      sym[c.left].next = sym[r].next;
      if (sym[r].next >= 0) sym[sym[r].next].prev = c.left;
      gone[r] = true;
      consider(sym[c.left].prev);
      consider(c.left);
    }
  }

  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  std::unordered_map<uint64_t, std::pair<int, int64_t>> merges_;
  std::vector<AddedToken> added_;
  std::map<int64_t, bool> special_ids_;
  bool first_bytes_[256] = {};
  int64_t byte_id_[256];
  int64_t unk_id_ = -1;
  Normalizer norm_;
  PreTokenizer pre_;
  TokenDecoder dec_;
  bool byte_fallback_, ignore_merges_, fuse_unk_;
  std::string source_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
  mutable std::mutex cache_mu_;
};

std::pair<std::string, std::string> split_merge(const std::string& m, const std::string& source) {
  auto sp = m.find(' ');
  if (sp == std::string::npos) throw std::runtime_error(source + ": malformed merge '" + m + "' (expected \"a b\")");
  return {m.substr(0, sp), m.substr(sp + 1)};
}

// post_processor -> the ids the model expects around every text (HF's add_special_tokens=True).
void read_post_processor(const nlohmann::json& j, const std::string& file, const std::string& where,
                         const std::map<std::string, int64_t>& ids, std::vector<int64_t>& prefix, std::vector<int64_t>& suffix) {
  if (j.is_null()) return;
  JsonFields f(j, file, where);
  const std::string type = f.required<std::string>("type");
  if (type == "Sequence") {
    const auto& list = f.node("processors");
    if (!list.is_array()) f.fail("processors must be a list");
    for (size_t i = 0; i < list.size(); ++i)
      read_post_processor(list[i], file, where + ".processors[" + std::to_string(i) + "]", ids, prefix, suffix);
  } else if (type == "ByteLevel") {
    for (const char* k : {"add_prefix_space", "trim_offsets", "use_regex"}) f.ignore(k);  // offsets only
  } else if (type == "TemplateProcessing") {
    f.ignore("pair");  // tandem encodes single texts; pairs never reach the model
    const auto& single = f.node("single");
    const auto& specials = f.node("special_tokens");
    if (!single.is_array()) f.fail("single must be a list");
    bool seen_a = false;
    for (const auto& item : single) {
      if (item.contains("Sequence")) {
        if (item["Sequence"].value("id", "") != "A" || seen_a) f.fail("single must hold the sequence $A once, got " + single.dump());
        seen_a = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", "");
        std::vector<int64_t> tok_ids;
        if (specials.contains(name) && specials[name].contains("ids"))
          for (const auto& v : specials[name]["ids"]) tok_ids.push_back(json_token_id(v, file, name));
        else if (ids.count(name))
          tok_ids.push_back(ids.at(name));
        else
          f.fail("special token \"" + name + "\" has no id");
        auto& dst = seen_a ? suffix : prefix;
        dst.insert(dst.end(), tok_ids.begin(), tok_ids.end());
      } else {
        f.fail("single holds an item that is neither SpecialToken nor Sequence: " + item.dump());
      }
    }
  } else {
    f.fail("post-processor \"" + type + "\" is not supported (supported: ByteLevel, TemplateProcessing, Sequence)");
  }
  f.finish();
}

std::string token_name(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// tokenizer_config.json beside the tokenizer.json: the special tokens by name and whether BOS /
// EOS are added (transformers rebuilds the post-processor from add_bos_token / add_eos_token).
void apply_tokenizer_config(const std::string& tokenizer_json, Tokenizer& tok) {
  const fs::path p = fs::path(tokenizer_json).parent_path() / "tokenizer_config.json";
  if (!fs::exists(p)) return;
  nlohmann::json c;
  try {
    c = nlohmann::json::parse(read_file(p.string()));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(p.string() + ": not valid JSON (" + e.what() + ")");
  }
  auto id_of = [&](const char* key, int64_t& dst) {
    if (!c.contains(key) || c[key].is_null()) return;
    const std::string name = token_name(c[key]);
    const int64_t id = tok.token_to_id(name);
    if (id < 0) throw std::runtime_error(p.string() + ": " + key + " \"" + name + "\" is not a token of " + tokenizer_json);
    dst = id;
  };
  id_of("bos_token", tok.bos_id);
  id_of("eos_token", tok.eos_id);
  id_of("pad_token", tok.pad_id);
  for (const char* key : {"add_bos_token", "add_eos_token"}) {
    if (!c.contains(key) || c[key].is_null()) continue;
    if (!c[key].is_boolean()) throw std::runtime_error(p.string() + ": " + key + " must be true or false");
    const bool on = c[key].get<bool>();
    const int64_t id = std::string(key) == "add_bos_token" ? tok.bos_id : tok.eos_id;
    if (on && id < 0) throw std::runtime_error(p.string() + ": " + key + " is true but the tokenizer has no such token");
    auto& list = std::string(key) == "add_bos_token" ? tok.prefix_ids : tok.suffix_ids;
    list = on ? std::vector<int64_t>{id} : std::vector<int64_t>{};
  }
  if (c.contains("chat_template") && c["chat_template"].is_string()) tok.chat_template = c["chat_template"].get<std::string>();
}

std::unique_ptr<Tokenizer> bpe_from_json(const TokenizerSource& src) {
  const nlohmann::json& j = *src.json;
  const std::string& path = src.path;
  BpeModel m;
  {
    JsonFields f(j.at("model"), path, "model");
    const double dropout = f.get<double>("dropout", 0.0);
    if (dropout != 0.0) f.fail("dropout " + std::to_string(dropout) + " is not supported (tandem encodes deterministically)");
    if (!f.get<std::string>("continuing_subword_prefix", "").empty()) f.fail("continuing_subword_prefix is not supported");
    if (!f.get<std::string>("end_of_word_suffix", "").empty()) f.fail("end_of_word_suffix is not supported");
    m.unk_token = f.get<std::string>("unk_token", "");
    m.fuse_unk = f.get<bool>("fuse_unk", false);
    m.byte_fallback = f.get<bool>("byte_fallback", false);
    m.ignore_merges = f.get<bool>("ignore_merges", false);
    const auto& vocab = f.node("vocab");
    if (!vocab.is_object()) f.fail("vocab must be an object of token -> id");
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const int64_t id = json_token_id(it.value(), path, it.key());
      if (static_cast<size_t>(id) >= m.vocab.size()) m.vocab.resize(id + 1);
      m.vocab[id] = it.key();
    }
    for (const auto& mg : f.node("merges")) {
      if (mg.is_string()) m.merges.push_back(split_merge(mg.get<std::string>(), path));
      else if (mg.is_array() && mg.size() == 2) m.merges.emplace_back(mg.at(0).get<std::string>(), mg.at(1).get<std::string>());
      else f.fail("a merge must be \"a b\" or [\"a\", \"b\"], got " + mg.dump());
    }
    f.finish();
  }
  Normalizer norm = make_normalizer(j.value("normalizer", nlohmann::json()), path);
  std::vector<AddedToken> added;
  std::map<std::string, int64_t> by_name;
  const auto& added_j = j.value("added_tokens", nlohmann::json::array());
  for (size_t i = 0; i < added_j.size(); ++i) {
    JsonFields f(added_j[i], path, "added_tokens[" + std::to_string(i) + "]");
    AddedToken a;
    a.id = json_token_id(added_j[i].at("id"), path, "added_tokens");
    f.ignore("id");
    a.content = f.required<std::string>("content");
    a.special = f.get<bool>("special", false);
    a.lstrip = f.get<bool>("lstrip", false);
    a.rstrip = f.get<bool>("rstrip", false);
    if (f.get<bool>("single_word", false)) f.fail("single_word = true is not supported (token '" + a.content + "')");
    // A normalized added token is matched after normalization; tandem matches on the raw text,
    // which is the same thing only when there is no normalizer.
    if (f.get<bool>("normalized", !a.special) && !norm.steps.empty())
      f.fail("normalized = true with a normalizer is not supported (token '" + a.content + "')");
    f.finish();
    if (a.content.empty()) f.fail("content is empty");
    if (static_cast<size_t>(a.id) >= m.vocab.size()) m.vocab.resize(a.id + 1);
    m.vocab[a.id] = a.content;
    by_name[a.content] = a.id;
    added.push_back(a);
  }
  PreTokenizer pre = make_pre_tokenizer(j.value("pre_tokenizer", nlohmann::json()), path);
  TokenDecoder dec = make_token_decoder(j.value("decoder", nlohmann::json()), path);
  for (const char* key : {"truncation", "padding"})
    if (j.contains(key) && !j[key].is_null())
      throw std::runtime_error(path + ": " + key + " is set in the file; tandem pads and truncates by its own settings, so it must be null");
  auto tok = std::make_unique<BpeTokenizer>(std::move(m), std::move(added), std::move(norm), std::move(pre), std::move(dec), path);
  read_post_processor(j.value("post_processor", nlohmann::json()), path, "post_processor", by_name, tok->prefix_ids, tok->suffix_ids);
  if (tok->prefix_ids.size() == 1) tok->bos_id = tok->prefix_ids[0];
  if (tok->suffix_ids.size() == 1) tok->eos_id = tok->suffix_ids[0];
  apply_tokenizer_config(path, *tok);
  return tok;
}

// GGUF with tokenizer.ggml.model "gpt2": byte-level BPE whose pre-tokenizer the file names in
// tokenizer.ggml.pre; built through the same JSON pipeline as that family's tokenizer.json.
std::unique_ptr<Tokenizer> bpe_from_gguf(const TokenizerSource& src) {
  const gguf::GgufFile& f = *src.gguf;
  const std::string& path = src.path;
  if (!f.has("tokenizer.ggml.pre"))
    throw std::runtime_error(path + ": tokenizer.ggml.pre is missing; a byte-level BPE vocabulary needs it to say how text is split "
                                    "(re-convert the file with a current llama.cpp)");
  const std::string pre = f.get_string("tokenizer.ggml.pre");
  nlohmann::json pre_j, norm_j;
  const nlohmann::json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  if (pre == "gpt2" || pre == "default") {
    pre_j = byte_level;
  } else if (pre == "smollm") {  // SmolLM's tokenizer.json: Digits(individual) + ByteLevel
    pre_j = {{"type", "Sequence"},
             {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level}}};
  } else if (!byte_level_family_pattern(pre).empty()) {  // llama-bpe, qwen2: Split + ByteLevel without its pattern
    pre_j = {{"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"Regex", byte_level_family_pattern(pre)}}}, {"behavior", "Isolated"}, {"invert", false}},
               {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
    if (pre == "qwen2") norm_j = {{"type", "NFC"}};  // as Qwen2's tokenizer.json
  } else {
    throw std::runtime_error(path + ": GGUF pre-tokenizer \"" + pre + "\" is not supported (supported: default, gpt2, llama-bpe, qwen2, smollm)");
  }
  BpeModel m;
  m.vocab = f.get_strings("tokenizer.ggml.tokens");
  for (const auto& s : f.get_strings("tokenizer.ggml.merges")) m.merges.push_back(split_merge(s, path));
  std::vector<AddedToken> added;
  if (f.has("tokenizer.ggml.token_type")) {
    auto types = f.get_ints("tokenizer.ggml.token_type");
    for (size_t i = 0; i < types.size() && i < m.vocab.size(); ++i)
      if ((types[i] == 3 || types[i] == 4) && !m.vocab[i].empty())  // CONTROL, USER_DEFINED
        added.push_back({m.vocab[i], static_cast<int64_t>(i), types[i] == 3, false, false});
  }
  auto tok = std::make_unique<BpeTokenizer>(std::move(m), std::move(added), make_normalizer(norm_j, path),
                                            make_pre_tokenizer(pre_j, path),
                                            make_token_decoder(nlohmann::json{{"type", "ByteLevel"}}, path), path);
  tok->bos_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  tok->eos_id = f.get_int("tokenizer.ggml.eos_token_id", -1);
  tok->pad_id = f.get_int("tokenizer.ggml.padding_token_id", tok->eos_id);
  if (f.has("tokenizer.ggml.add_bos_token") && f.get_bool("tokenizer.ggml.add_bos_token") && tok->bos_id >= 0) tok->prefix_ids = {tok->bos_id};
  if (f.has("tokenizer.ggml.add_eos_token") && f.get_bool("tokenizer.ggml.add_eos_token") && tok->eos_id >= 0) tok->suffix_ids = {tok->eos_id};
  if (f.has("tokenizer.chat_template")) tok->chat_template = f.get_string("tokenizer.chat_template");
  return tok;
}

}  // namespace

TANDEM_REGISTER_FUNCTION(Tokenizer, "json/BPE", bpe_from_json);
TANDEM_REGISTER_FUNCTION(Tokenizer, "gguf/gpt2", bpe_from_gguf);

}  // namespace tandem::text

// tokenizer.json pre-tokenizers: Split (Oniguruma patterns, all five behaviours, invert),
// ByteLevel (prefix space, the GPT-2 pattern, the byte -> code point map), Digits, Metaspace,
// Sequence; and the families GGUF files name in tokenizer.ggml.pre, as the same JSON.
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "tandem/text/json_fields.h"
#include "tandem/text/regex.h"
#include "tandem/text/tokenizer_pipeline.h"
#include "tandem/text/unicode.h"

namespace tandem::text {
namespace {

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct ByteTable {
  uint32_t to_cp[256];
  std::map<uint32_t, uint8_t> to_byte;
  ByteTable() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      to_byte[to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};
const ByteTable& table() {
  static const ByteTable t;
  return t;
}

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
const std::map<std::string, Behavior>& behaviors() {
  static const std::map<std::string, Behavior> m = {{"Removed", Behavior::Removed},
                                                    {"Isolated", Behavior::Isolated},
                                                    {"MergedWithPrevious", Behavior::MergedWithPrevious},
                                                    {"MergedWithNext", Behavior::MergedWithNext},
                                                    {"Contiguous", Behavior::Contiguous}};
  return m;
}

using Span = std::pair<std::pair<size_t, size_t>, bool>;  // byte range, is a match

// Matches and the gaps between them, covering the text (HF's Pattern::find_matches).
std::vector<Span> cover(const std::string& s, const std::vector<std::pair<size_t, size_t>>& matches) {
  std::vector<Span> out;
  size_t prev = 0;
  for (const auto& m : matches) {
    if (prev != m.first) out.push_back({{prev, m.first}, false});
    out.push_back({m, true});
    prev = m.second;
  }
  if (prev != s.size()) out.push_back({{prev, s.size()}, false});
  return out;
}

// HF's NormalizedString::split: the spans grouped by `b`, empty pieces dropped.
void split_piece(const Piece& p, std::vector<Span> spans, Behavior b, bool invert, std::vector<Piece>& out) {
  if (invert)
    for (auto& s : spans) s.second = !s.second;
  std::vector<Span> kept;
  bool previous_match = false;
  switch (b) {
    case Behavior::Isolated: kept = spans; break;
    case Behavior::Removed:
      for (const auto& s : spans)
        if (!s.second) kept.push_back(s);
      break;
    case Behavior::MergedWithPrevious:
      for (const auto& s : spans) {
        if (s.second && !previous_match && !kept.empty()) kept.back().first.second = s.first.second;
        else kept.push_back({s.first, false});
        previous_match = s.second;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->second && !previous_match && !kept.empty()) kept.back().first.first = it->first.first;
        else kept.push_back({it->first, false});
        previous_match = it->second;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    case Behavior::Contiguous:
      for (const auto& s : spans) {
        if (s.second == previous_match && !kept.empty()) kept.back().first.second = s.first.second;
        else kept.push_back({s.first, false});
        previous_match = s.second;
      }
      break;
  }
  for (const auto& s : kept)
    if (s.first.second > s.first.first)
      out.push_back({p.text.substr(s.first.first, s.first.second - s.first.first), p.at_input_start && s.first.first == 0});
}

// Every character satisfying `pred` is a match of its own (HF's `Fn(char) -> bool` pattern).
std::vector<std::pair<size_t, size_t>> char_matches(const std::string& s, bool (*pred)(uint32_t)) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = std::min(s.size() - i, size_t(c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4));
    const auto cps = utf8_decode(s.substr(i, n));
    if (!cps.empty() && pred(cps[0])) out.emplace_back(i, i + n);
    i += n;
  }
  return out;
}

using Builder = std::function<void(JsonFields&, PreTokenizer&)>;
void build(const nlohmann::json& j, const std::string& file, const std::string& where, PreTokenizer& p);

void split(JsonFields& f, PreTokenizer& p) {
  const auto& pat = f.node("pattern");
  std::shared_ptr<Regex> re;
  if (pat.is_object() && pat.size() == 1 && pat.contains("String") && pat["String"].is_string())
    re = std::make_shared<Regex>(Regex::literal(pat["String"].get<std::string>(), f.file()));
  else if (pat.is_object() && pat.size() == 1 && pat.contains("Regex") && pat["Regex"].is_string())
    re = std::make_shared<Regex>(pat["Regex"].get<std::string>(), f.file() + ": " + f.where());
  else
    f.fail("pattern must be {\"String\": ...} or {\"Regex\": ...}, got " + pat.dump());
  const std::string bname = f.required<std::string>("behavior");
  auto b = behaviors().find(bname);
  if (b == behaviors().end()) f.fail("behavior \"" + bname + "\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
  const Behavior behavior = b->second;
  const bool invert = f.get<bool>("invert", false);
  p.steps.push_back([re, behavior, invert](std::vector<Piece>& pieces) {
    std::vector<Piece> out;
    for (const auto& piece : pieces) split_piece(piece, cover(piece.text, re->find_all(piece.text)), behavior, invert, out);
    pieces.swap(out);
  });
}

void byte_level(JsonFields& f, PreTokenizer& p) {
  const bool prefix = f.get<bool>("add_prefix_space", true);
  const bool use_regex = f.get<bool>("use_regex", true);
  f.ignore("trim_offsets");  // moves offsets only
  if (p.byte_level) f.fail("a second ByteLevel step would map bytes twice");
  p.byte_level = true;
  auto re = std::make_shared<Regex>(kGpt2Pattern, f.file());
  p.steps.push_back([prefix, use_regex, re](std::vector<Piece>& pieces) {
    std::vector<Piece> split;
    for (auto piece : pieces) {
      if (prefix && piece.text.compare(0, 1, " ") != 0) piece.text = " " + piece.text;
      if (use_regex) split_piece(piece, cover(piece.text, re->find_all(piece.text)), Behavior::Isolated, false, split);
      else split.push_back(piece);
    }
    const auto& t = table();
    for (auto& piece : split) {
      std::string mapped;
      for (unsigned char ch : piece.text) utf8_append(mapped, t.to_cp[ch]);
      piece.text = std::move(mapped);
    }
    pieces.swap(split);
  });
}

void digits(JsonFields& f, PreTokenizer& p) {
  const Behavior b = f.get<bool>("individual_digits", false) ? Behavior::Isolated : Behavior::Contiguous;
  p.steps.push_back([b](std::vector<Piece>& pieces) {
    std::vector<Piece> out;
    for (const auto& piece : pieces) split_piece(piece, cover(piece.text, char_matches(piece.text, is_number)), b, false, out);
    pieces.swap(out);
  });
}

void metaspace(JsonFields& f, PreTokenizer& p) {
  const std::string rep = f.get<std::string>("replacement", "\xE2\x96\x81");
  if (utf8_decode(rep).size() != 1) f.fail("replacement must be one character, got \"" + rep + "\"");
  if (f.get<std::string>("str_rep", rep) != rep) f.fail("str_rep differs from replacement");
  // Older files say add_prefix_space (true = always); newer ones prepend_scheme.
  std::string scheme = f.get<bool>("add_prefix_space", true) ? "always" : "never";
  scheme = f.get<std::string>("prepend_scheme", scheme);
  if (scheme != "always" && scheme != "first" && scheme != "never") f.fail("prepend_scheme \"" + scheme + "\" is not one of always, first, never");
  const bool do_split = f.get<bool>("split", true);
  auto space = std::make_shared<Regex>(Regex::literal(" ", f.file()));
  auto marker = std::make_shared<Regex>(Regex::literal(rep, f.file()));
  p.steps.push_back([rep, scheme, do_split, space, marker](std::vector<Piece>& pieces) {
    std::vector<Piece> out;
    for (auto piece : pieces) {
      piece.text = space->replace_all(piece.text, rep);
      const bool starts = piece.text.compare(0, rep.size(), rep) == 0;
      if (!starts && (scheme == "always" || (scheme == "first" && piece.at_input_start))) piece.text = rep + piece.text;
      if (do_split) split_piece(piece, cover(piece.text, marker->find_all(piece.text)), Behavior::MergedWithNext, false, out);
      else out.push_back(piece);
    }
    pieces.swap(out);
  });
}

void sequence(JsonFields& f, PreTokenizer& p) {
  const auto& list = f.node("pretokenizers");
  if (!list.is_array()) f.fail("pretokenizers must be a list");
  for (size_t i = 0; i < list.size(); ++i) build(list[i], f.file(), f.where() + ".pretokenizers[" + std::to_string(i) + "]", p);
}

const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> m = {
      {"Split", split}, {"ByteLevel", byte_level}, {"Digits", digits}, {"Metaspace", metaspace}, {"Sequence", sequence}};
  return m;
}

void build(const nlohmann::json& j, const std::string& file, const std::string& where, PreTokenizer& p) {
  build_stage(builders(), "pre-tokenizer", j, file, where, p);
}

}  // namespace

PreTokenizer make_pre_tokenizer(const nlohmann::json& j, const std::string& file) {
  PreTokenizer p;
  if (!j.is_null()) build(j, file, "pre_tokenizer", p);
  return p;
}

uint32_t byte_to_char(uint8_t b) { return table().to_cp[b]; }
int char_to_byte(uint32_t cp) {
  auto it = table().to_byte.find(cp);
  return it == table().to_byte.end() ? -1 : it->second;
}

std::string byte_level_family_pattern(const std::string& pre) {
  // As each family's own tokenizer.json writes its Split pattern.
  static const std::map<std::string, std::string> m = {
      {"gpt2", kGpt2Pattern},
      {"llama-bpe", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
      {"qwen2", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
  };
  auto it = m.find(pre);
  return it == m.end() ? std::string() : it->second;
}

}  // namespace tandem::text

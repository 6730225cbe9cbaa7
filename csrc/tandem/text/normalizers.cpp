// tokenizer.json normalizers: Unicode normal forms (utf8proc), Lowercase, StripAccents, Strip,
// Replace (literal or Oniguruma regex), Prepend, Sequence. BertNormalizer belongs to WordPiece
// and Precompiled (SentencePiece charsmaps) is refused by name.
#include <functional>
#include <map>

#include <utf8proc.h>

#include "tandem/text/json_fields.h"
#include "tandem/text/regex.h"
#include "tandem/text/tokenizer_pipeline.h"
#include "tandem/text/unicode.h"

namespace tandem::text {
namespace {

using Step = std::function<std::string(const std::string&)>;
using Builder = std::function<void(JsonFields&, Normalizer&)>;

std::string unicode_form(const std::string& s, int options, const std::string& file) {
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()), &out,
                              static_cast<utf8proc_option_t>(options));
  if (n < 0) throw std::runtime_error(file + ": normalizer: " + utf8proc_errmsg(n));
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  free(out);
  return r;
}

Builder form(int options) {
  return [options](JsonFields& f, Normalizer& n) {
    const std::string file = f.file();
    n.steps.push_back([options, file](const std::string& s) { return unicode_form(s, options, file); });
  };
}

// A pattern object {"String": "..."} or {"Regex": "..."}.
Regex pattern_of(JsonFields& f, const std::string& key) {
  const auto& p = f.node(key);
  if (p.is_object() && p.size() == 1 && p.contains("String") && p["String"].is_string())
    return Regex::literal(p["String"].get<std::string>(), f.file());
  if (p.is_object() && p.size() == 1 && p.contains("Regex") && p["Regex"].is_string())
    return Regex(p["Regex"].get<std::string>(), f.file() + ": " + f.where());
  f.fail(key + " must be {\"String\": ...} or {\"Regex\": ...}, got " + p.dump());
}

void sequence(JsonFields& f, Normalizer& n);

const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> m = {
      {"NFC", form(UTF8PROC_STABLE | UTF8PROC_COMPOSE)},
      {"NFD", form(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE)},
      {"NFKC", form(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT)},
      {"NFKD", form(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT)},
      {"Lowercase",
       [](JsonFields&, Normalizer& n) {
         n.steps.push_back([](const std::string& s) {
           std::vector<uint32_t> out;
           for (uint32_t cp : utf8_decode(s)) append_lower(cp, out);
           return utf8_encode(out, 0, out.size());
         });
       }},
      {"StripAccents",
       [](JsonFields&, Normalizer& n) {
         // HF removes nonspacing marks from already-decomposed text (it is paired with NFD).
         n.steps.push_back([](const std::string& s) {
           std::vector<uint32_t> out;
           for (uint32_t cp : utf8_decode(s))
             if (!is_mark_nonspacing(cp)) out.push_back(cp);
           return utf8_encode(out, 0, out.size());
         });
       }},
      {"Strip",
       [](JsonFields& f, Normalizer& n) {
         const bool left = f.get<bool>("strip_left", true), right = f.get<bool>("strip_right", true);
         n.steps.push_back([left, right](const std::string& s) {
           auto cps = utf8_decode(s);
           size_t b = 0, e = cps.size();
           while (left && b < e && is_whitespace(cps[b])) ++b;
           while (right && e > b && is_whitespace(cps[e - 1])) --e;
           return utf8_encode(cps, b, e);
         });
       }},
      {"Replace",
       [](JsonFields& f, Normalizer& n) {
         Regex re = pattern_of(f, "pattern");
         const std::string with = f.required<std::string>("content");
         n.steps.push_back([re, with](const std::string& s) { return re.replace_all(s, with); });
       }},
      {"Prepend",
       [](JsonFields& f, Normalizer& n) {
         const std::string p = f.required<std::string>("prepend");
         n.steps.push_back([p](const std::string& s) { return s.empty() ? s : p + s; });
       }},
      {"Sequence", sequence},
  };
  return m;
}

void build(const nlohmann::json& j, const std::string& file, const std::string& where, Normalizer& n) {
  build_stage(builders(), "normalizer", j, file, where, n);
}

void sequence(JsonFields& f, Normalizer& n) {
  const auto& list = f.node("normalizers");
  if (!list.is_array()) f.fail("normalizers must be a list");
  for (size_t i = 0; i < list.size(); ++i) build(list[i], f.file(), f.where() + ".normalizers[" + std::to_string(i) + "]", n);
}

}  // namespace

Normalizer make_normalizer(const nlohmann::json& j, const std::string& file) {
  Normalizer n;
  if (!j.is_null()) build(j, file, "normalizer", n);
  return n;
}

}  // namespace tandem::text

// tokenizer.json decoders: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence.
// Bytes are joined as they are, never replaced: a run decoded token by token (streaming)
// concatenates to the same bytes as the whole run; on valid UTF-8 this equals HF's output.
#include <functional>
#include <map>

#include <nlohmann/json.hpp>

#include "tandem/text/json_fields.h"
#include "tandem/text/regex.h"
#include "tandem/text/tokenizer_pipeline.h"
#include "tandem/text/unicode.h"

namespace tandem::text {
namespace {

using Tokens = std::vector<std::string>;
using Builder = std::function<void(JsonFields&, TokenDecoder&)>;
void build(const nlohmann::json& j, const std::string& file, const std::string& where, TokenDecoder& d);

// "<0x41>" -> 0x41, or -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  try {
    size_t used = 0;
    const int v = std::stoi(t.substr(3, 2), &used, 16);
    return used == 2 ? v : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

void byte_level(JsonFields& f, TokenDecoder& d) {
  f.ignore("add_prefix_space");  // the decoder reads none of its three options (HF neither)
  f.ignore("trim_offsets");
  f.ignore("use_regex");
  d.steps.push_back([](Tokens& ts) {
    std::string bytes;
    for (const auto& t : ts) {
      // A token with a character outside the byte table is kept as its own UTF-8 (as HF does).
      std::string mapped;
      bool all = true;
      for (uint32_t cp : utf8_decode(t)) {
        const int b = char_to_byte(cp);
        if (b < 0) {
          all = false;
          break;
        }
        mapped += static_cast<char>(b);
      }
      bytes += all ? mapped : t;
    }
    ts = {bytes};
  });
}

void byte_fallback(JsonFields&, TokenDecoder& d) {
  d.steps.push_back([](Tokens& ts) {
    Tokens out;
    std::string run;
    bool in_run = false;
    for (const auto& t : ts) {
      const int b = byte_token(t);
      if (b >= 0) {
        run += static_cast<char>(b);
        in_run = true;
        continue;
      }
      if (in_run) out.push_back(run), run.clear(), in_run = false;
      out.push_back(t);
    }
    if (in_run) out.push_back(run);
    ts.swap(out);
  });
}

void fuse(JsonFields&, TokenDecoder& d) {
  d.steps.push_back([](Tokens& ts) {
    std::string all;
    for (const auto& t : ts) all += t;
    ts = {all};
  });
}

void strip(JsonFields& f, TokenDecoder& d) {
  const std::string content = f.required<std::string>("content");
  if (utf8_decode(content).size() != 1) f.fail("content must be one character");
  const int64_t start = f.get<int64_t>("start", 0), stop = f.get<int64_t>("stop", 0);
  if (start < 0 || stop < 0) f.fail("start and stop must be >= 0");
  const uint32_t c = utf8_decode(content)[0];
  d.steps.push_back([c, start, stop](Tokens& ts) {
    for (auto& t : ts) {
      auto cps = utf8_decode(t);
      size_t b = 0, e = cps.size();
      for (int64_t k = 0; k < start && b < e && cps[b] == c; ++k) ++b;
      for (int64_t k = 0; k < stop && e > b && cps[e - 1] == c; ++k) --e;
      t = utf8_encode(cps, b, e);
    }
  });
}

void replace(JsonFields& f, TokenDecoder& d) {
  const auto& p = f.node("pattern");
  std::shared_ptr<Regex> re;
  if (p.is_object() && p.size() == 1 && p.contains("String") && p["String"].is_string())
    re = std::make_shared<Regex>(Regex::literal(p["String"].get<std::string>(), f.file()));
  else if (p.is_object() && p.size() == 1 && p.contains("Regex") && p["Regex"].is_string())
    re = std::make_shared<Regex>(p["Regex"].get<std::string>(), f.file() + ": " + f.where());
  else
    f.fail("pattern must be {\"String\": ...} or {\"Regex\": ...}, got " + p.dump());
  const std::string with = f.required<std::string>("content");
  d.steps.push_back([re, with](Tokens& ts) {
    for (auto& t : ts) t = re->replace_all(t, with);
  });
}

void metaspace(JsonFields& f, TokenDecoder& d) {
  const std::string rep = f.get<std::string>("replacement", "\xE2\x96\x81");
  if (utf8_decode(rep).size() != 1) f.fail("replacement must be one character");
  if (f.get<std::string>("str_rep", rep) != rep) f.fail("str_rep differs from replacement");
  std::string scheme = f.get<bool>("add_prefix_space", true) ? "always" : "never";
  scheme = f.get<std::string>("prepend_scheme", scheme);
  if (scheme != "always" && scheme != "first" && scheme != "never") f.fail("prepend_scheme \"" + scheme + "\" is not one of always, first, never");
  f.ignore("split");  // splitting is an encoding matter
  const uint32_t r = utf8_decode(rep)[0];
  const bool drop_first = scheme != "never";
  d.steps.push_back([r, drop_first](Tokens& ts) {
    for (size_t i = 0; i < ts.size(); ++i) {
      std::vector<uint32_t> out;
      for (uint32_t cp : utf8_decode(ts[i])) {
        if (cp != r) out.push_back(cp);
        else if (!(i == 0 && drop_first)) out.push_back(' ');
      }
      ts[i] = utf8_encode(out, 0, out.size());
    }
  });
}

void sequence(JsonFields& f, TokenDecoder& d) {
  const auto& list = f.node("decoders");
  if (!list.is_array()) f.fail("decoders must be a list");
  for (size_t i = 0; i < list.size(); ++i) build(list[i], f.file(), f.where() + ".decoders[" + std::to_string(i) + "]", d);
}

const std::map<std::string, Builder>& builders() {
  static const std::map<std::string, Builder> m = {{"ByteLevel", byte_level}, {"ByteFallback", byte_fallback},
                                                   {"Fuse", fuse},            {"Strip", strip},
                                                   {"Replace", replace},      {"Metaspace", metaspace},
                                                   {"Sequence", sequence}};
  return m;
}

void build(const nlohmann::json& j, const std::string& file, const std::string& where, TokenDecoder& d) {
  build_stage(builders(), "decoder", j, file, where, d);
}

}  // namespace

TokenDecoder make_token_decoder(const nlohmann::json& j, const std::string& file) {
  TokenDecoder d;
  if (!j.is_null()) {
    build(j, file, "decoder", d);
    d.any = true;
  }
  return d;
}

std::string TokenDecoder::apply(std::vector<std::string> tokens) const {
  if (!any) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
    return out;
  }
  for (const auto& f : steps) f(tokens);
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace tandem::text

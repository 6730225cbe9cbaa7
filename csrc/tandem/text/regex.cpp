#include "tandem/text/regex.h"

#include <mutex>
#include <stdexcept>

#include <oniguruma.h>

namespace tandem::text {

struct Regex::Compiled {
  OnigRegex re = nullptr;
  ~Compiled() {
    if (re) onig_free(re);
  }
};

namespace {

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding enc[] = {ONIG_ENCODING_UTF8};
    onig_initialize(enc, 1);
  });
}

// Oniguruma's escape set: every other character stands for itself.
std::string escape(const std::string& s) {
  static const std::string special = "\\^$.|?*+()[]{}";
  std::string out;
  for (char c : s) {
    if (special.find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& source) : pattern_(pattern) {
  init_once();
  auto c = std::make_shared<Compiled>();
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int rc = onig_new(&c->re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
  if (rc != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, rc, &info);
    throw std::runtime_error(source + ": regex " + pattern + " does not compile (" + reinterpret_cast<char*>(msg) + ")");
  }
  re_ = std::move(c);
}

Regex Regex::literal(const std::string& literal, const std::string& source) { return Regex(escape(literal), source); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(const std::string& text) const {
  std::vector<std::pair<size_t, size_t>> out;
  const auto* s = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = s + text.size();
  OnigRegion* region = onig_region_new();
  size_t at = 0;
  while (at <= text.size()) {
    const int r = onig_search(re_->re, s, end, s + at, end, region, ONIG_OPTION_NONE);
    if (r < 0) break;  // ONIG_MISMATCH (or an engine error, which HF would also stop at)
    const size_t b = static_cast<size_t>(region->beg[0]), e = static_cast<size_t>(region->end[0]);
    out.emplace_back(b, e);
    if (e > b) {
      at = e;
    } else {  // empty match: step over one UTF-8 character
      if (e >= text.size()) break;
      at = e + 1;
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
    }
  }
  onig_region_free(region, 1);
  return out;
}

std::string Regex::replace_all(const std::string& text, const std::string& with) const {
  std::string out;
  size_t prev = 0;
  for (const auto& [b, e] : find_all(text)) {
    out.append(text, prev, b - prev);
    out += with;
    prev = e;
  }
  out.append(text, prev, std::string::npos);
  return out;
}

}  // namespace tandem::text

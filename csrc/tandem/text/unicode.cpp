#include "tandem/text/unicode.h"

#include <algorithm>

namespace tandem::text {
namespace {
struct CodeRange {
  uint32_t lo, hi;
};
#include "tandem/text/unicode_tables.inc"

template <size_t N>
bool in(const CodeRange (&table)[N], uint32_t cp) {
  auto it = std::upper_bound(table, table + N, cp, [](uint32_t v, const CodeRange& r) { return v < r.lo; });
  return it != table && cp <= (it - 1)->hi;
}
}  // namespace

bool is_letter(uint32_t cp) { return cp < 0x80 ? ((cp | 32) - 'a' < 26) : in(kLetters, cp); }
bool is_number(uint32_t cp) { return cp < 0x80 ? (cp - '0' < 10) : in(kNumbers, cp); }
bool is_whitespace(uint32_t cp) { return in(kWhiteSpace, cp); }

std::vector<uint32_t> utf8_decode(const std::string& s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_encode(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) utf8_append(out, cps[i]);
  return out;
}

}  // namespace tandem::text

namespace tandem::text {
namespace {

// Looks `cp` up in a flat (cp, n, replacement...) table sorted by cp.
const uint32_t* find_mapping(const uint32_t* table, size_t size, uint32_t cp) {
  // The table is small enough per lookup to index once into a sorted vector of offsets.
  static thread_local std::vector<std::pair<const uint32_t*, std::vector<size_t>>> index;
  std::vector<size_t>* offs = nullptr;
  for (auto& e : index)
    if (e.first == table) offs = &e.second;
  if (!offs) {
    index.emplace_back(table, std::vector<size_t>{});
    offs = &index.back().second;
    for (size_t i = 0; i < size; i += 2 + table[i + 1]) offs->push_back(i);
  }
  auto it = std::lower_bound(offs->begin(), offs->end(), cp, [&](size_t o, uint32_t v) { return table[o] < v; });
  return it != offs->end() && table[*it] == cp ? table + *it : nullptr;
}

}  // namespace

bool is_mark_nonspacing(uint32_t cp) { return in(kMarkNonspacing, cp); }
bool is_control_or_format(uint32_t cp) { return in(kControlFormat, cp); }
bool is_punctuation(uint32_t cp) { return in(kPunctuation, cp); }
bool is_space_separator(uint32_t cp) { return in(kSpaceSeparator, cp); }

void append_stripped(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= 0xAC00 && cp <= 0xD7A3) {  // Hangul syllable -> L V (T) jamo, the Unicode formula
    const uint32_t s = cp - 0xAC00;
    out.push_back(0x1100 + s / (21 * 28));
    out.push_back(0x1161 + (s % (21 * 28)) / 28);
    if (s % 28) out.push_back(0x11A7 + s % 28);
    return;
  }
  if (const uint32_t* m = find_mapping(kStripAccents, sizeof(kStripAccents) / 4, cp)) {
    out.insert(out.end(), m + 2, m + 2 + m[1]);
    return;
  }
  if (!is_mark_nonspacing(cp)) out.push_back(cp);
}

void append_lower(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  if (const uint32_t* m = find_mapping(kLowercase, sizeof(kLowercase) / 4, cp)) {
    out.insert(out.end(), m + 2, m + 2 + m[1]);
    return;
  }
  out.push_back(cp);
}

}  // namespace tandem::text

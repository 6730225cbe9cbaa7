#include "tandem/eval/rouge.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "tandem/eval/porter_stemmer.h"

namespace tandem {
namespace {

RougeScore make_score(double p, double r) {
  RougeScore s{p, r, 0.0};
  s.fmeasure = (p + r > 0) ? 2 * p * r / (p + r) : 0.0;
  return s;
}

using Table2D = std::vector<std::vector<int>>;

Table2D lcs_table(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  Table2D t(a.size() + 1, std::vector<int>(b.size() + 1, 0));
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j)
      t[i][j] = a[i - 1] == b[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  return t;
}

// Indices into `ref` of one LCS, read back the way rouge-score does (ties move up in ref).
std::vector<size_t> lcs_indices(const std::vector<std::string>& ref, const std::vector<std::string>& can) {
  const Table2D t = lcs_table(ref, can);
  std::vector<size_t> out;
  size_t i = ref.size(), j = can.size();
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      out.push_back(i - 1);
      --i;
      --j;
    } else if (t[i][j - 1] > t[i - 1][j]) {
      --j;
    } else {
      --i;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    if (nl > start) out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace

std::vector<std::string> rouge_tokenize(const std::string& text, bool stem) {
  std::vector<std::string> tokens;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    tokens.push_back(stem && cur.size() > 3 ? porter_stem(cur) : cur);
    cur.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 'A' && c <= 'Z') {
      cur += static_cast<char>(c - 'A' + 'a');
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur += static_cast<char>(c);
    } else if (c == 0xC4 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xB0) {
      // U+0130 (dotted capital I) lowercases in Python to "i" + a combining dot.
      cur += 'i';
      flush();
      ++i;
    } else if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x84 &&
               static_cast<unsigned char>(text[i + 2]) == 0xAA) {
      cur += 'k';  // U+212A KELVIN SIGN lowercases to ASCII 'k'
      i += 2;
    } else {
      flush();
    }
  }
  flush();
  // A stem is always [a-z0-9]+ here, so rouge-score's final validity filter drops nothing.
  return tokens;
}

RougeScore rouge_n(const std::vector<std::string>& target, const std::vector<std::string>& prediction, int n) {
  auto grams = [n](const std::vector<std::string>& toks) {
    std::map<std::vector<std::string>, int> g;
    for (size_t i = 0; i + n <= toks.size(); ++i) ++g[std::vector<std::string>(toks.begin() + i, toks.begin() + i + n)];
    return g;
  };
  const auto tg = grams(target), pg = grams(prediction);
  int overlap = 0, tcount = 0, pcount = 0;
  for (const auto& [k, c] : tg) {
    tcount += c;
    if (auto it = pg.find(k); it != pg.end()) overlap += std::min(c, it->second);
  }
  for (const auto& [k, c] : pg) pcount += c;
  return make_score(static_cast<double>(overlap) / std::max(pcount, 1), static_cast<double>(overlap) / std::max(tcount, 1));
}

RougeScore rouge_l(const std::vector<std::string>& target, const std::vector<std::string>& prediction) {
  if (target.empty() || prediction.empty()) return {};
  const int lcs = lcs_table(target, prediction).back().back();
  return make_score(static_cast<double>(lcs) / prediction.size(), static_cast<double>(lcs) / target.size());
}

RougeScore rouge_lsum(const std::string& target, const std::string& prediction, bool stem) {
  std::vector<std::vector<std::string>> ref, can;
  for (const auto& s : split_lines(target)) ref.push_back(rouge_tokenize(s, stem));
  for (const auto& s : split_lines(prediction)) can.push_back(rouge_tokenize(s, stem));
  if (ref.empty() || can.empty()) return {};
  std::unordered_map<std::string, int> cnt_r, cnt_c;
  size_t m = 0, n = 0;
  for (const auto& s : ref) {
    m += s.size();
    for (const auto& t : s) ++cnt_r[t];
  }
  for (const auto& s : can) {
    n += s.size();
    for (const auto& t : s) ++cnt_c[t];
  }
  if (m == 0 || n == 0) return {};
  int hits = 0;
  for (const auto& r : ref) {
    std::set<size_t> uni;  // union of one LCS with each candidate sentence, in ref order
    for (const auto& c : can)
      for (size_t i : lcs_indices(r, c)) uni.insert(i);
    for (size_t i : uni) {
      const std::string& t = r[i];
      int& cc = cnt_c[t];
      int& cr = cnt_r[t];
      if (cc > 0 && cr > 0) {  // each token counts at most as often as it occurs on both sides
        ++hits;
        --cc;
        --cr;
      }
    }
  }
  return make_score(static_cast<double>(hits) / n, static_cast<double>(hits) / m);
}

RougeSet rouge_all(const std::string& target, const std::string& prediction, bool stem) {
  const auto t = rouge_tokenize(target, stem), p = rouge_tokenize(prediction, stem);
  return {rouge_n(t, p, 1), rouge_n(t, p, 2), rouge_l(t, p), rouge_lsum(target, prediction, stem)};
}

}  // namespace tandem

#include "tandem/eval/coqa_metric.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <unordered_map>

namespace tandem {
namespace {

bool is_punct(unsigned char c) { return c < 128 && std::strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) && c != 0; }

std::vector<std::string> split_ws(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  std::string w;
  while (is >> w) out.push_back(w);
  return out;
}

}  // namespace

std::string coqa_normalize(const std::string& s) {
  std::string t;
  for (unsigned char c : s) {
    if (is_punct(c)) continue;
    t += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
  }
  // The script removes \b(a|an|the)\b after punctuation is gone; on whitespace-split words
  // that is dropping words equal to an article (word boundaries there are spaces).
  std::string out;
  for (const auto& w : split_ws(t)) {
    if (w == "a" || w == "an" || w == "the") continue;
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

double coqa_exact(const std::string& gold, const std::string& pred) {
  return coqa_normalize(gold) == coqa_normalize(pred) ? 1.0 : 0.0;
}

double coqa_f1(const std::string& gold, const std::string& pred) {
  const auto g = split_ws(coqa_normalize(gold)), p = split_ws(coqa_normalize(pred));
  if (g.empty() || p.empty()) return g == p ? 1.0 : 0.0;
  std::unordered_map<std::string, int> cg;
  for (const auto& w : g) ++cg[w];
  int same = 0;
  for (const auto& w : p)
    if (auto it = cg.find(w); it != cg.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  if (same == 0) return 0.0;
  const double prec = static_cast<double>(same) / p.size(), rec = static_cast<double>(same) / g.size();
  return 2 * prec * rec / (prec + rec);
}

CoqaScore coqa_turn_score(const std::vector<std::string>& golds, const std::string& pred) {
  CoqaScore s;
  if (golds.empty()) return s;
  if (golds.size() == 1) return {coqa_f1(golds[0], pred), coqa_exact(golds[0], pred)};
  for (size_t i = 0; i < golds.size(); ++i) {
    double best_f1 = 0, best_em = 0;
    for (size_t j = 0; j < golds.size(); ++j) {
      if (j == i) continue;
      best_f1 = std::max(best_f1, coqa_f1(golds[j], pred));
      best_em = std::max(best_em, coqa_exact(golds[j], pred));
    }
    s.f1 += best_f1;
    s.em += best_em;
  }
  s.f1 /= golds.size();
  s.em /= golds.size();
  return s;
}

}  // namespace tandem

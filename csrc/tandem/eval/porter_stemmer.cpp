// Written from M. F. Porter, "An algorithm for suffix stripping" (1980), with the deviations
// NLTK documents for its default NLTK_EXTENSIONS mode (irregular-form table, 'ies'/'ied' on
// four-letter words, 'y' -> 'i' only after a consonant, 'bli' -> 'ble', 'fulli', 'logi',
// two-letter cvc). Each step applies the first rule whose suffix matches, whether or not its
// condition then holds: that is the paper's rule and rouge-score parity depends on it.
#include "tandem/eval/porter_stemmer.h"

#include <functional>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tandem {
namespace {

bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

// A 'y' is a consonant at the start or after a vowel: walk back over a run of y's.
bool is_consonant(std::string_view w, size_t i) {
  if (is_vowel(w[i])) return false;
  if (w[i] != 'y') return true;
  bool negate = false;
  while (i > 0 && w[i] == 'y') {
    negate = !negate;
    --i;
  }
  return (!is_vowel(w[i])) != negate;
}

// m in [C](VC)^m[V]: the number of vowel-to-consonant transitions.
int measure(std::string_view s) {
  int m = 0;
  bool prev_vowel = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool cons = is_consonant(s, i);
    if (cons && prev_vowel) ++m;
    prev_vowel = !cons;
  }
  return m;
}

bool contains_vowel(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i)
    if (!is_consonant(s, i)) return true;
  return false;
}

bool ends_double_consonant(std::string_view w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

bool ends_cvc(std::string_view w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

bool ends_with(std::string_view w, std::string_view s) {
  return w.size() >= s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0;
}

using Cond = std::function<bool(std::string_view stem)>;
struct Rule {
  std::string_view suffix, replacement;
  Cond cond;  // empty: always
};

// "*d" as a suffix means "ends in a double consonant" (step 1b).
std::string apply_rules(const std::string& w, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    if (r.suffix == "*d") {
      if (!ends_double_consonant(w)) continue;
      std::string_view stem(w.data(), w.size() - 2);
      if (!r.cond || r.cond(stem)) return std::string(stem) + std::string(r.replacement);
      return w;
    }
    if (ends_with(w, r.suffix)) {
      std::string_view stem(w.data(), w.size() - r.suffix.size());
      if (!r.cond || r.cond(stem)) return std::string(stem) + std::string(r.replacement);
      return w;
    }
  }
  return w;
}

bool m_pos(std::string_view s) { return measure(s) > 0; }
bool m_gt1(std::string_view s) { return measure(s) > 1; }

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return w.substr(0, 1) + "ie";
  return apply_rules(w, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return w.substr(0, w.size() - 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    std::string stem = w.substr(0, w.size() - 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string inter;
  bool ok = false;
  for (std::string_view suf : {std::string_view("ed"), std::string_view("ing")}) {
    if (ends_with(w, suf)) {
      inter = w.substr(0, w.size() - suf.size());
      if (contains_vowel(inter)) {
        ok = true;
        break;
      }
    }
  }
  if (!ok) return w;
  const char last = inter.empty() ? '\0' : inter.back();
  const std::string last_s(1, last);
  return apply_rules(inter, {{"at", "ate", {}},
                             {"bl", "ble", {}},
                             {"iz", "ize", {}},
                             {"*d", last_s, [last](std::string_view) { return last != 'l' && last != 's' && last != 'z'; }},
                             {"", "e", [](std::string_view s) { return measure(s) == 1 && ends_cvc(s); }}});
}

std::string step1c(const std::string& w) {
  return apply_rules(w, {{"y", "i", [](std::string_view s) { return s.size() > 1 && is_consonant(s, s.size() - 1); }}});
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && m_pos(std::string_view(w).substr(0, w.size() - 4)))
    return step2(w.substr(0, w.size() - 4) + "al");
  const std::string word = w;
  return apply_rules(w, {{"ational", "ate", m_pos},
                         {"tional", "tion", m_pos},
                         {"enci", "ence", m_pos},
                         {"anci", "ance", m_pos},
                         {"izer", "ize", m_pos},
                         {"bli", "ble", m_pos},
                         {"alli", "al", m_pos},
                         {"entli", "ent", m_pos},
                         {"eli", "e", m_pos},
                         {"ousli", "ous", m_pos},
                         {"ization", "ize", m_pos},
                         {"ation", "ate", m_pos},
                         {"ator", "ate", m_pos},
                         {"alism", "al", m_pos},
                         {"iveness", "ive", m_pos},
                         {"fulness", "ful", m_pos},
                         {"ousness", "ous", m_pos},
                         {"aliti", "al", m_pos},
                         {"iviti", "ive", m_pos},
                         {"biliti", "ble", m_pos},
                         {"fulli", "ful", m_pos},
                         // NLTK measures the word less "ogi", i.e. the stem keeps its 'l'.
                         {"logi", "log", [word](std::string_view) { return m_pos(std::string_view(word).substr(0, word.size() - 3)); }}});
}

std::string step3(const std::string& w) {
  return apply_rules(w, {{"icate", "ic", m_pos},
                         {"ative", "", m_pos},
                         {"alize", "al", m_pos},
                         {"iciti", "ic", m_pos},
                         {"ical", "ic", m_pos},
                         {"ful", "", m_pos},
                         {"ness", "", m_pos}});
}

std::string step4(const std::string& w) {
  return apply_rules(w, {{"al", "", m_gt1},     {"ance", "", m_gt1}, {"ence", "", m_gt1}, {"er", "", m_gt1},
                         {"ic", "", m_gt1},     {"able", "", m_gt1}, {"ible", "", m_gt1}, {"ant", "", m_gt1},
                         {"ement", "", m_gt1},  {"ment", "", m_gt1}, {"ent", "", m_gt1},
                         {"ion", "", [](std::string_view s) { return measure(s) > 1 && !s.empty() && (s.back() == 's' || s.back() == 't'); }},
                         {"ou", "", m_gt1},     {"ism", "", m_gt1},  {"ate", "", m_gt1},  {"iti", "", m_gt1},
                         {"ous", "", m_gt1},    {"ive", "", m_gt1},  {"ize", "", m_gt1}});
}

std::string step5a(const std::string& w) {
  if (!ends_with(w, "e")) return w;
  std::string stem = w.substr(0, w.size() - 1);
  const int m = measure(stem);
  if (m > 1 || (m == 1 && !ends_cvc(stem))) return stem;
  return w;
}

std::string step5b(const std::string& w) {
  const std::string word = w;
  return apply_rules(w, {{"ll", "l", [word](std::string_view) { return measure(std::string_view(word).substr(0, word.size() - 1)) > 1; }}});
}

const std::unordered_map<std::string, std::string>& irregular_forms() {
  static const std::unordered_map<std::string, std::string> pool = {
      {"sky", "sky"},         {"skies", "sky"},     {"dying", "die"},     {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},     {"innings", "inning"}, {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"}, {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"}};
  return pool;
}

}  // namespace

std::string porter_stem(const std::string& word) {
  const auto& pool = irregular_forms();
  if (auto it = pool.find(word); it != pool.end()) return it->second;
  if (word.size() <= 2) return word;
  std::string s = step1a(word);
  s = step1b(s);
  s = step1c(s);
  s = step2(s);
  s = step3(s);
  s = step4(s);
  s = step5a(s);
  return step5b(s);
}

}  // namespace tandem

// ROUGE-N, ROUGE-L and ROUGE-Lsum as the rouge-score package computes them (Google's
// reimplementation of Lin's ROUGE-1.5.5): lowercase, non-alphanumerics to spaces, Porter
// stemming of tokens longer than 3 characters, F-measure with beta = 1.
#pragma once

#include <string>
#include <vector>

namespace tandem {

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};

/// rouge-score's tokenizer: lowercase ASCII words and digits, optionally Porter-stemmed.
std::vector<std::string> rouge_tokenize(const std::string& text, bool stem = true);

/// ROUGE-n of `prediction` against `target`.
RougeScore rouge_n(const std::vector<std::string>& target, const std::vector<std::string>& prediction, int n);
/// ROUGE-L (longest common subsequence over the whole text).
RougeScore rouge_l(const std::vector<std::string>& target, const std::vector<std::string>& prediction);
/// ROUGE-Lsum: summary-level union LCS over sentences separated by newlines.
RougeScore rouge_lsum(const std::string& target, const std::string& prediction, bool stem = true);

/// The four scores summarisation papers report, each an F-measure in [0, 1].
struct RougeSet {
  RougeScore rouge1, rouge2, rougeL, rougeLsum;
};
RougeSet rouge_all(const std::string& target, const std::string& prediction, bool stem = true);

}  // namespace tandem

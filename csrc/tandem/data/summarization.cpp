#include "tandem/data/summarization.h"

#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace tandem {

std::vector<SummaryRecord> read_xsum(const std::string& path, const JsonlOptions& opts) {
  std::vector<SummaryRecord> out;
  read_jsonl(path, [&](const nlohmann::json& r, size_t) {
    out.push_back({json_id(r, "id"), json_string(r, "document"), json_string(r, "summary")});
  }, opts);
  return out;
}

std::vector<SummaryRecord> read_cnn_dailymail(const std::string& path, const JsonlOptions& opts) {
  std::vector<SummaryRecord> out;
  read_jsonl(path, [&](const nlohmann::json& r, size_t) {
    SummaryRecord rec{json_id(r, "id"), json_string(r, "article"), ""};
    int fields = 0;
    for (const char* f : {"highlights", "highlights_tokenized", "highlights_cleaned"}) fields += r.contains(f);
    if (fields != 1)
      throw std::invalid_argument("expected exactly one of highlights, highlights_tokenized, highlights_cleaned (found " +
                                  std::to_string(fields) + ")");
    if (r.contains("highlights_tokenized")) {
      rec.summary = detokenize_ptb(json_string(r, "highlights_tokenized"));
    } else if (r.contains("highlights_cleaned")) {
      // One highlight per line, final periods stripped by the file's host: restore them.
      std::string line;
      std::istringstream in(json_string(r, "highlights_cleaned"));
      while (std::getline(in, line)) {
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
        if (line.empty()) continue;
        if (line.back() != '.' && line.back() != '!' && line.back() != '?') line += '.';
        rec.summary += (rec.summary.empty() ? "" : "\n") + line;
      }
    } else {
      // " .\n" -> ".\n": the pool's sentences end with a detached period.
      const std::string hl = json_string(r, "highlights");
      for (size_t i = 0; i < hl.size(); ++i) {
        if (hl[i] == ' ' && i + 1 < hl.size() && hl[i + 1] == '.' && (i + 2 == hl.size() || hl[i + 2] == '\n')) continue;
        rec.summary += hl[i];
      }
    }
    out.push_back(std::move(rec));
  }, opts);
  return out;
}

std::string detokenize_ptb(const std::string& text) {
  std::string s = " " + text + " ";
  auto replace_all = [&s](const std::string& from, const std::string& to) {
    for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  };
  replace_all(" . ", ".\n");
  for (const char* clitic : {"'s", "'re", "'ve", "'ll", "'d", "'m", "n't"}) replace_all(std::string(" ") + clitic + " ", std::string(clitic) + " ");
  replace_all(" , ", ", ");
  replace_all(" ; ", "; ");
  replace_all(" : ", ": ");
  replace_all(" ? ", "? ");
  replace_all(" ! ", "! ");
  replace_all("` ", "'");
  replace_all(" ' ", "' ");
  replace_all("-LRB- ", "(");
  replace_all(" -RRB-", ")");
  // Trim and strip spaces around line breaks.
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ' ' && (out.empty() || out.back() == '\n' || i + 1 == s.size() || s[i + 1] == '\n')) continue;
    out += s[i];
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  if (!out.empty() && out.back() != '.' && out.back() != '!' && out.back() != '?') out += '.';
  return out;
}

}  // namespace tandem

#include "tandem/data/symbolic_moe.h"

#include <cctype>
#include <regex>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tandem/data/jsonl.h"

namespace tandem {

std::vector<McInstance> read_mc_instances(const std::string& path, const std::string& dataset, size_t limit,
                                          bool skip_bad_lines) {
  std::vector<McInstance> out;
  JsonlOptions o;
  o.limit = limit;
  o.skip_bad_lines = skip_bad_lines;
  static const std::regex letter_re(R"(\(([A-J])\) )");
  read_jsonl(path, [&](const nlohmann::json& r, size_t) {
    McInstance m;
    if (!r.contains("id") || !r.contains("question") || !r["question"].is_string() || !r.contains("gold_answer") ||
        !r["gold_answer"].is_string())
      throw std::invalid_argument("expected fields id, question (string) and gold_answer (a letter)");
    m.id = r["id"].is_string() ? r["id"].get<std::string>() : r["id"].dump();
    m.dataset = dataset;
    m.question = r["question"].get<std::string>();
    const std::string g = r["gold_answer"].get<std::string>();
    if (g.size() != 1 || g[0] < 'A' || g[0] > 'J') throw std::invalid_argument("gold_answer '" + g + "' is not a letter A-J");
    m.gold = g[0] - 'A';
    std::vector<std::pair<size_t, size_t>> marks;  // where each "(X) " marker starts and ends
    for (auto it = std::sregex_iterator(m.question.begin(), m.question.end(), letter_re); it != std::sregex_iterator(); ++it)
      if ((*it)[1].str()[0] - 'A' == static_cast<int>(marks.size()))
        marks.emplace_back(static_cast<size_t>(it->position()), static_cast<size_t>(it->position() + it->length()));
    if (r.contains("options") && r["options"].is_array()) {
      for (const auto& opt : r["options"]) {
        if (!opt.is_string()) throw std::invalid_argument("options must be strings");
        m.options.push_back(opt.get<std::string>());
      }
    } else {  // the texts between the "(X) " markers embedded in the question
      for (size_t k = 0; k < marks.size(); ++k) {
        const size_t end = k + 1 < marks.size() ? marks[k + 1].first : m.question.size();
        auto text = m.question.substr(marks[k].second, end - marks[k].second);
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
        m.options.push_back(text);
      }
    }
    m.n_options = static_cast<int64_t>(m.options.size());
    if (r.contains("stem") && r["stem"].is_string()) {
      m.stem = r["stem"].get<std::string>();
    } else {  // the question up to " The options are:" or its first option marker
      const size_t cut = m.question.find("The options are:");
      m.stem = m.question.substr(0, cut != std::string::npos ? cut : marks.empty() ? m.question.size() : marks[0].first);
      while (!m.stem.empty() && std::isspace(static_cast<unsigned char>(m.stem.back()))) m.stem.pop_back();
    }
    if (m.n_options < 2 || m.gold >= m.n_options)
      throw std::invalid_argument("gold letter " + g + " outside the " + std::to_string(m.n_options) + " options");
    if (r.contains("category") && r["category"].is_string()) m.category = r["category"].get<std::string>();
    out.push_back(std::move(m));
  }, o);
  return out;
}

}  // namespace tandem

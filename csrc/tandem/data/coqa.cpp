#include "tandem/data/coqa.h"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tandem/data/jsonl.h"

namespace tandem {

std::vector<CoqaStory> read_coqa(const std::string& path, bool skip_bad_stories) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the CoQA file (expected the official JSON format)");
  nlohmann::json doc;
  try {
    in >> doc;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  if (!doc.contains("data") || !doc["data"].is_array())
    throw std::runtime_error(path + ": expected a top-level \"data\" list of stories");
  std::vector<CoqaStory> out;
  for (size_t s = 0; s < doc["data"].size(); ++s) {
    const auto& story = doc["data"][s];
    try {
      CoqaStory cs;
      cs.id = json_id(story, "id");
      cs.story = json_string(story, "story");
      const auto& qs = story.at("questions");
      const auto& as = story.at("answers");
      if (qs.size() != as.size()) throw std::invalid_argument("questions and answers differ in length");
      for (size_t t = 0; t < qs.size(); ++t) {
        CoqaTurn turn{json_string(qs[t], "input_text"), json_string(as[t], "input_text"), {}};
        if (story.contains("additional_answers"))
          for (const auto& [k, extra] : story["additional_answers"].items())
            if (t < extra.size()) turn.other_answers.push_back(json_string(extra[t], "input_text"));
        cs.turns.push_back(std::move(turn));
      }
      out.push_back(std::move(cs));
    } catch (const std::exception& e) {
      if (skip_bad_stories) continue;
      throw std::runtime_error(path + ": data[" + std::to_string(s) + "]: " + e.what());
    }
  }
  return out;
}

}  // namespace tandem

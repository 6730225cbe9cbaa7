#include "tandem/data/coqa.h"

#include <fstream>
#include <iterator>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tandem/data/jsonl.h"

namespace tandem {

namespace {

CoqaStory parse_story(const nlohmann::json& story) {
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
  return cs;
}

}  // namespace

std::vector<CoqaStory> read_coqa(const std::string& path, bool skip_bad_stories) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the CoQA file (official JSON or one story per line)");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<CoqaStory> out;
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_discarded() && doc.is_object() && doc.contains("data")) {
    if (!doc["data"].is_array()) throw std::runtime_error(path + ": expected a top-level \"data\" list of stories");
    for (size_t s = 0; s < doc["data"].size(); ++s) {
      try {
        out.push_back(parse_story(doc["data"][s]));
      } catch (const std::exception& e) {
        if (skip_bad_stories) continue;
        throw std::runtime_error(path + ": data[" + std::to_string(s) + "]: " + e.what());
      }
    }
    return out;
  }
  // One story per line (a single-story file parses as an object without "data": same path).
  JsonlOptions o;
  o.skip_bad_lines = skip_bad_stories;
  read_jsonl(path, [&](const nlohmann::json& r, size_t) { out.push_back(parse_story(r)); }, o);
  return out;
}

}  // namespace tandem

// Reader of CoQA (Reddy et al. 2019) in its official JSON format: stories, each with its
// conversation of question/answer turns and the additional annotators' answers.
#pragma once

#include <string>
#include <vector>

namespace tandem {

struct CoqaTurn {
  std::string question, answer;
  std::vector<std::string> other_answers;  ///< additional annotators' answers for this turn
};

struct CoqaStory {
  std::string id, story;
  std::vector<CoqaTurn> turns;
};

/// Either the official JSON ({"data": [story, ...]}) or JSONL with one story per line (the
/// shared data's coqa/{train,dev}.jsonl); a story is {"id", "story", "questions":
/// [{"input_text"}], "answers": [{"input_text"}], "additional_answers": {"0": [...], ...}}.
/// Chosen by the file's first non-blank character ('{' then "data" key vs. one object per line).
/// Errors name the file and the story (index or line); `skip_bad_stories` drops a malformed
/// story instead.
std::vector<CoqaStory> read_coqa(const std::string& path, bool skip_bad_stories = false);

}  // namespace tandem

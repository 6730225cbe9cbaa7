#include "tandem/data/generation_tasks.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tandem/core/runtime.h"
#include "tandem/data/jsonl.h"
#include "tandem/core/hash.h"
#include "tandem/eval/coqa_metric.h"
#include "tandem/eval/rouge.h"

namespace tandem {

TANDEM_DEFINE_REGISTRY(GenerationTask);

const char* split_name(Split s) { return s == Split::kTrain ? "train" : s == Split::kDev ? "dev" : "test"; }

GenerationTask::GenerationTask(const Config& c, int64_t default_new_tokens, int64_t default_words)
    : n_train_(static_cast<size_t>(c.get_nonnegative_int("train", 200))),
      n_dev_(static_cast<size_t>(c.get_nonnegative_int("dev", 40))),
      n_test_(static_cast<size_t>(c.get_positive_int("test", 50))),
      max_new_tokens_(c.get_positive_int("max_new_tokens", default_new_tokens)),
      max_context_words_(c.get_positive_int("max_context_words", default_words)),
      skip_bad_lines_(c.get<bool>("skip_bad_lines", false)) {}

std::string GenerationTask::cut(const std::string& text) const {
  // Keeps line breaks (paragraphs help small models) while counting words.
  std::string out;
  int64_t words = 0;
  bool in_word = false;
  for (char ch : text) {
    const bool space = ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
    if (!space && !in_word && ++words > max_context_words_) break;
    in_word = !space;
    out += ch;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  return out;
}

std::map<std::string, double> rouge_metrics(const std::vector<std::string>& references, const std::string& prediction) {
  std::map<std::string, double> best{{"rouge1", 0}, {"rouge2", 0}, {"rougeL", 0}, {"rougeLsum", 0}};
  for (const auto& ref : references) {
    const RougeSet r = rouge_all(ref, prediction);
    best["rouge1"] = std::max(best["rouge1"], 100 * r.rouge1.fmeasure);
    best["rouge2"] = std::max(best["rouge2"], 100 * r.rouge2.fmeasure);
    best["rougeL"] = std::max(best["rougeL"], 100 * r.rougeL.fmeasure);
    best["rougeLsum"] = std::max(best["rougeLsum"], 100 * r.rougeLsum.fmeasure);
  }
  return best;
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

namespace {

std::string str_field(const nlohmann::json& r, const char* k) {
  if (!r.contains(k) || !r[k].is_string()) throw std::invalid_argument(std::string("expected a string field '") + k + "'");
  return r[k].get<std::string>();
}

std::string id_field(const nlohmann::json& r, const char* k) {
  if (!r.contains(k)) throw std::invalid_argument(std::string("expected an id field '") + k + "'");
  return r[k].is_string() ? r[k].get<std::string>() : r[k].dump();
}

// Orders a pool by a fixed hash of the id and keeps the examples whose hash falls in `which`
// (a residue mod `parts`): the same split on every machine and every run.
std::vector<GenExample> hash_split(std::vector<GenExample> all, uint64_t parts, std::vector<uint64_t> which, size_t n) {
  std::vector<std::pair<uint64_t, GenExample>> keyed;
  for (auto& ex : all) {
    const uint64_t h = fnv1a(ex.group.empty() ? ex.id : ex.group, 0x7a17);
    if (std::find(which.begin(), which.end(), h % parts) != which.end()) keyed.emplace_back(fnv1a(ex.id, 0x7a18), std::move(ex));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<GenExample> out;
  for (auto& kv : keyed) {
    if (out.size() >= n) break;
    out.push_back(std::move(kv.second));
  }
  return out;
}

std::vector<GenExample> first_n(std::vector<GenExample> all, size_t n) {
  if (all.size() > n) all.resize(n);
  return all;
}

// Summarisation from JSONL: train/dev from a pool file (1 in 5 to dev), test from a disjoint file.
class SummarizationTask : public GenerationTask {
 public:
  SummarizationTask(const Config& c, const std::string& pool, const std::string& test, int64_t new_tokens, int64_t words)
      : GenerationTask(c, new_tokens, words),
        pool_(resolve_data_path(c.get<std::string>("path", pool))),
        test_(resolve_data_path(c.get<std::string>("test_path", test))) {}

  std::vector<GenExample> load(Split split) const override {
    if (split == Split::kTest) return first_n(read(test_, true), count(split));
    // The final test file must stay unseen: an id it holds never enters train or dev, even if
    // the pool file repeats it (34 of xsum/test_extra.jsonl's ids also occur in xsum/test.jsonl).
    std::set<std::string> test_ids;
    for (const auto& ex : read(test_, true)) test_ids.insert(ex.id);
    std::vector<GenExample> pool;
    for (auto& ex : read(pool_, false))
      if (!test_ids.count(ex.id)) pool.push_back(std::move(ex));
    return hash_split(std::move(pool), 5, split == Split::kDev ? std::vector<uint64_t>{0} : std::vector<uint64_t>{1, 2, 3, 4},
                      count(split));
  }
  std::string user_text(const GenExample& ex) const override { return instruction() + "\n\n" + cut(ex.context); }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    return rouge_metrics(ex.references, prediction);
  }
  std::string primary_metric() const override { return "rougeL"; }

 protected:
  virtual GenExample parse(const nlohmann::json& r, bool test_file) const = 0;
  std::vector<GenExample> read(const std::string& path, bool test_file) const {
    std::vector<GenExample> out;
    JsonlOptions o;
    o.skip_bad_lines = skip_bad_lines_;
    read_jsonl(path, [&](const nlohmann::json& r, size_t) { out.push_back(parse(r, test_file)); }, o);
    return out;
  }
  std::string pool_, test_;
};

// XSum: one-sentence BBC summaries. Fields: id, document, summary.
class XSum : public SummarizationTask {
 public:
  explicit XSum(const Config& c) : SummarizationTask(c, "xsum/test.jsonl", "xsum/test_extra.jsonl", 48, 300) {}
  std::string instruction() const override { return "Summarize the following BBC article in one sentence."; }
  std::string display_name() const override { return "XSum"; }

 protected:
  GenExample parse(const nlohmann::json& r, bool) const override {
    GenExample ex;
    ex.id = id_field(r, "id");
    ex.context = str_field(r, "document");
    ex.target = str_field(r, "summary");
    ex.references = {ex.target};
    return ex;
  }
};

// CNN/DailyMail: highlights as a few sentences. The pool file has `highlights` (" .\n" between
// sentences); the test file has PTB-tokenized `highlights_tokenized`, detokenized here.
class CnnDailyMail : public SummarizationTask {
 public:
  explicit CnnDailyMail(const Config& c)
      : SummarizationTask(c, "cnn_dailymail/validation.jsonl", "cnn_dailymail/test.jsonl", 80, 300) {}
  std::string instruction() const override {
    return "Write the highlights of the following news article as three or four short sentences, one per line.";
  }
  std::string display_name() const override { return "CNN-DM"; }

 protected:
  GenExample parse(const nlohmann::json& r, bool test_file) const override {
    GenExample ex;
    ex.id = id_field(r, "id");
    ex.context = str_field(r, "article");
    std::string hl = test_file ? str_field(r, "highlights_tokenized") : str_field(r, "highlights");
    if (!test_file) {
      // " .\n" -> ".\n": the pool's sentences end with a detached period.
      std::string flat;
      for (size_t i = 0; i < hl.size(); ++i) {
        if (hl[i] == ' ' && i + 1 < hl.size() && hl[i + 1] == '.' && (i + 2 == hl.size() || hl[i + 2] == '\n')) continue;
        flat += hl[i];
      }
      hl = flat;
    } else {
      hl = detokenize_ptb(hl);
    }
    ex.target = hl;
    ex.references = {hl};
    return ex;
  }
};

// SciQ: a science question with a support paragraph; the answer is generated (ROUGE-L, exact
// match) and the four options are kept for log-likelihood accuracy. One file, split 1/4 test,
// 1/4 dev, 1/2 train by a hash of the id.
class SciQTask : public GenerationTask {
 public:
  explicit SciQTask(const Config& c)
      : GenerationTask(c, 16, 120), path_(resolve_data_path(c.get<std::string>("path", "sciq/test.jsonl"))) {}

  std::vector<GenExample> load(Split split) const override {
    std::vector<GenExample> all;
    JsonlOptions o;
    o.skip_bad_lines = skip_bad_lines_;
    read_jsonl(path_, [&](const nlohmann::json& r, size_t) {
      GenExample ex;
      ex.id = id_field(r, "id");
      ex.question = str_field(r, "question");
      ex.context = r.contains("support") && r["support"].is_string() ? r["support"].get<std::string>() : "";
      ex.target = str_field(r, "correct_answer");
      ex.references = {ex.target};
      ex.options = {ex.target, str_field(r, "distractor1"), str_field(r, "distractor2"), str_field(r, "distractor3")};
      // Option order from the id's hash, so the gold answer is not always first.
      const size_t rot = fnv1a(ex.id, 0x5c1) % 4;
      std::rotate(ex.options.begin(), ex.options.begin() + rot, ex.options.end());
      ex.answer_index = static_cast<int64_t>((4 - rot) % 4);
      all.push_back(std::move(ex));
    }, o);
    const std::vector<uint64_t> which = split == Split::kTest ? std::vector<uint64_t>{0}
                                        : split == Split::kDev ? std::vector<uint64_t>{1}
                                                               : std::vector<uint64_t>{2, 3};
    return hash_split(std::move(all), 4, which, count(split));
  }
  std::string instruction() const override { return "Answer the science question with a short phrase."; }
  std::string user_text(const GenExample& ex) const override {
    std::string t = instruction() + "\n\n";
    if (!ex.context.empty()) t += "Background: " + cut(ex.context) + "\n\n";
    return t + "Question: " + ex.question;
  }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    auto m = rouge_metrics(ex.references, prediction);
    m["exact_match"] = 100 * coqa_exact(ex.target, prediction);
    return m;
  }
  std::string primary_metric() const override { return "rougeL"; }
  std::string display_name() const override { return "SciQ"; }

 private:
  std::string path_;
};

// CoQA, official JSON format ({"data": [{"id", "story", "questions": [{"input_text", "turn_id"}],
// "answers": [...], "additional_answers": {"0": [...], ...}}]}). One example per turn; earlier
// turns' gold answers form the history. Train/dev from `path` by story id, test from `test_path`.
class CoQA : public GenerationTask {
 public:
  explicit CoQA(const Config& c)
      : GenerationTask(c, 24, 250),
        path_(resolve_data_path(c.get<std::string>("path", "coqa/coqa-train-v1.0.json"))),
        test_path_(resolve_data_path(c.get<std::string>("test_path", "coqa/coqa-dev-v1.0.json"))),
        history_turns_(c.get_nonnegative_int("history_turns", 3)) {}

  std::vector<GenExample> load(Split split) const override {
    if (split == Split::kTest) return first_n(read(test_path_), count(split));
    return hash_split(read(path_), 5, split == Split::kDev ? std::vector<uint64_t>{0} : std::vector<uint64_t>{1, 2, 3, 4},
                      count(split));
  }
  std::string instruction() const override { return "Answer the question about the story in a few words."; }
  std::string user_text(const GenExample& ex) const override {
    std::string t = instruction() + "\n\nStory: " + cut(ex.context) + "\n\n";
    const size_t start = ex.history.size() > static_cast<size_t>(history_turns_) ? ex.history.size() - history_turns_ : 0;
    for (size_t i = start; i < ex.history.size(); ++i) t += "Q: " + ex.history[i].first + "\nA: " + ex.history[i].second + "\n";
    return t + "Q: " + ex.question;
  }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    const CoqaScore s = coqa_turn_score(ex.references, prediction);
    return {{"f1", 100 * s.f1}, {"exact_match", 100 * s.em}};
  }
  std::string primary_metric() const override { return "f1"; }
  std::string display_name() const override { return "CoQA"; }

  /// Parses one official-format file; errors name the file and the story/turn.
  std::vector<GenExample> read(const std::string& path) const {
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
    std::vector<GenExample> out;
    for (size_t s = 0; s < doc["data"].size(); ++s) {
      const auto& story = doc["data"][s];
      const std::string where = path + ": data[" + std::to_string(s) + "]";
      try {
        const std::string sid = id_field(story, "id");
        const std::string text = str_field(story, "story");
        const auto& qs = story.at("questions");
        const auto& as = story.at("answers");
        if (qs.size() != as.size()) throw std::invalid_argument("questions and answers differ in length");
        std::vector<std::pair<std::string, std::string>> history;
        for (size_t t = 0; t < qs.size(); ++t) {
          GenExample ex;
          ex.id = sid + "_" + std::to_string(t + 1);
          ex.group = sid;
          ex.context = text;
          ex.history = history;
          ex.question = str_field(qs[t], "input_text");
          ex.target = str_field(as[t], "input_text");
          ex.references = {ex.target};
          if (story.contains("additional_answers"))
            for (const auto& [k, extra] : story["additional_answers"].items())
              if (t < extra.size()) ex.references.push_back(str_field(extra[t], "input_text"));
          history.emplace_back(ex.question, ex.target);
          out.push_back(std::move(ex));
        }
      } catch (const std::exception& e) {
        if (skip_bad_lines_) continue;
        throw std::runtime_error(where + ": " + e.what());
      }
    }
    return out;
  }

 private:
  std::string path_, test_path_;
  int64_t history_turns_;
};

// MMLU-Pro as letter answering, for training domain experts (Symbolic-MoE's tandem-made
// experts). The prompt is the Symbolic-MoE question format ("<question> The options are: (A) ..
// (B) .." + the answer instruction) and the target "Answer: <letter>", so an adapter trained here
// answers exactly the prompts the MoE experts see. `categories` picks the domain; questions also
// in `exclude_paths` (the Symbolic-MoE validation/test files) are left out by their stem text.
class MmluProLetters : public GenerationTask {
 public:
  explicit MmluProLetters(const Config& c)
      : GenerationTask(c, 4, 400), path_(resolve_data_path(c.get<std::string>("path", "mmlu_pro/test.jsonl"))) {
    for (const Config& i : c.items("categories")) categories_.insert(i.node().as<std::string>());
    c.mark_used("categories");
    for (const Config& i : c.items("exclude_paths")) exclude_paths_.push_back(resolve_data_path(i.node().as<std::string>()));
    c.mark_used("exclude_paths");
  }
  std::vector<GenExample> load(Split split) const override {
    std::set<std::string> excluded;
    for (const auto& p : exclude_paths_)
      read_jsonl(p, [&](const nlohmann::json& r, size_t) {
        if (r.contains("stem") && r["stem"].is_string()) excluded.insert(key(r["stem"].get<std::string>()));
        else if (r.contains("question") && r["question"].is_string()) excluded.insert(key(r["question"].get<std::string>()));
      });
    std::vector<GenExample> all;
    JsonlOptions o;
    o.skip_bad_lines = skip_bad_lines_;
    read_jsonl(path_, [&](const nlohmann::json& r, size_t) {
      const std::string cat = str_field(r, "category");
      if (!categories_.empty() && !categories_.count(cat)) return;
      const std::string q = str_field(r, "question");
      if (excluded.count(key(q))) return;
      GenExample ex;
      ex.id = id_field(r, "question_id");
      ex.question = q + " The options are:";
      const auto& opts = r.at("options");
      for (size_t i = 0; i < opts.size(); ++i) {
        ex.options.push_back(opts[i].get<std::string>());
        ex.question += std::string(" (") + static_cast<char>('A' + i) + ") " + ex.options.back();
      }
      ex.question += ".";
      ex.answer_index = r.at("answer_index").get<int64_t>();
      ex.target = std::string("Answer: ") + static_cast<char>('A' + ex.answer_index);
      ex.references = {ex.target};
      all.push_back(std::move(ex));
    }, o);
    const std::vector<uint64_t> which = split == Split::kTest ? std::vector<uint64_t>{0}
                                        : split == Split::kDev ? std::vector<uint64_t>{1}
                                                               : std::vector<uint64_t>{2, 3, 4, 5, 6, 7, 8, 9};
    return hash_split(std::move(all), 10, which, count(split));
  }
  std::string instruction() const override { return "Answer with the letter of the correct option."; }
  // Same text as moe::question_prompt for a Symbolic-MoE instance.
  std::string user_text(const GenExample& ex) const override { return ex.question + "\n" + instruction(); }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    const auto p = prediction.find_first_of("ABCDEFGHIJ", prediction.find(':') == std::string::npos ? 0 : prediction.find(':'));
    const bool right = p != std::string::npos && prediction[p] - 'A' == ex.answer_index;
    return {{"accuracy", right ? 100.0 : 0.0}};
  }
  std::string primary_metric() const override { return "accuracy"; }
  std::string display_name() const override { return "MMLU-Pro letters"; }

 private:
  static std::string key(const std::string& q) {  // a question's identity: its first 160 letters/digits
    std::string k;
    for (char ch : q) {
      if (std::isalnum(static_cast<unsigned char>(ch))) k += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (k.size() >= 160) break;
    }
    return k;
  }
  std::string path_;
  std::set<std::string> categories_;
  std::vector<std::string> exclude_paths_;
};

TANDEM_REGISTER(GenerationTask, "mmlu_pro_letters", MmluProLetters);
TANDEM_REGISTER(GenerationTask, "xsum", XSum);
TANDEM_REGISTER(GenerationTask, "cnn_dailymail", CnnDailyMail);
TANDEM_REGISTER(GenerationTask, "sciq", SciQTask);
TANDEM_REGISTER(GenerationTask, "coqa", CoQA);

}  // namespace

}  // namespace tandem

#include "tandem/data/long_doc_qa.h"

#include <algorithm>
#include <map>

#include "tandem/core/runtime.h"
#include "tandem/data/jsonl.h"
#include "tandem/eval/coqa_metric.h"

namespace tandem {
TANDEM_DEFINE_REGISTRY(LongDocDataset);

double answer_f1(const std::vector<std::string>& refs, const std::string& pred) {
  double best = 0;
  for (const auto& r : refs) best = std::max(best, coqa_f1(r, pred));
  return best;
}

std::vector<std::string> chunk_text(const std::string& text, int64_t chunk_chars) {
  std::vector<std::string> out;
  std::string cur;
  size_t pos = 0;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos + 1);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    while (static_cast<int64_t>(line.size()) > chunk_chars) {  // an over-long line: cut it
      flush();
      out.push_back(line.substr(0, static_cast<size_t>(chunk_chars)));
      line.erase(0, static_cast<size_t>(chunk_chars));
    }
    if (static_cast<int64_t>(cur.size() + line.size()) > chunk_chars) flush();
    cur += line;
  }
  flush();
  return out;
}

namespace {

// Keeps the first `limit` examples after `per_group` per document (0 = all).
void trim(std::vector<LongDocExample>& v, int64_t limit) {
  if (limit > 0 && static_cast<int64_t>(v.size()) > limit) v.resize(static_cast<size_t>(limit));
}

// QASPER as packaged in L-Eval: one line per paper, `qas` = [{question, answers}].
class Qasper : public LongDocDataset {
 public:
  using Options = QasperOptions;
  explicit Qasper(const Config& c) : Qasper(Options::from_config(c)) {}
  explicit Qasper(const Options& o)
      : path_(resolve_data_path(o.path)), per_paper_(o.questions_per_paper), limit_(o.limit) {}
  std::vector<LongDocExample> load() override {
    std::vector<LongDocExample> out;
    read_jsonl(path_, [&](const nlohmann::json& rec, size_t) {
      const std::string doc = rec.at("document"), id = rec.at("id");
      int64_t k = 0;
      for (const auto& qa : rec.at("qas")) {
        if (per_paper_ > 0 && k >= per_paper_) break;
        LongDocExample e;
        e.id = id + "_q" + std::to_string(k++);
        e.document = doc;
        e.question = qa.at("question");
        e.answers = qa.at("answers").get<std::vector<std::string>>();
        if (e.answers.empty()) throw std::invalid_argument("question \"" + e.question + "\" has no reference answers");
        out.push_back(std::move(e));
      }
    });
    trim(out, limit_);
    return out;
  }

 private:
  std::string path_;
  int64_t per_paper_, limit_;
};
TANDEM_REGISTER(LongDocDataset, "qasper", Qasper);

// FinanceBench: questions whose filing text is present. `pages: all` gives the whole filing;
// `pages: evidence_window` keeps the evidence pages +- `window` (a retrieval-narrowed setting
// that keeps 100+-page filings within small models' reach; it tells every method where to look).
class FinanceBench : public LongDocDataset {
 public:
  using Options = FinanceBenchOptions;
  explicit FinanceBench(const Config& c) : FinanceBench(Options::from_config(c)) {}
  explicit FinanceBench(const Options& o)
      : questions_(resolve_data_path(o.questions)),
        documents_(resolve_data_path(o.documents)),
        pages_(o.pages),
        window_(o.window),
        limit_(o.limit) {}
  std::vector<LongDocExample> load() override {
    std::vector<nlohmann::json> qs;
    std::map<std::string, bool> wanted;
    read_jsonl(questions_, [&](const nlohmann::json& rec, size_t) {
      if (!rec.value("document_available", false)) return;
      qs.push_back(rec);
      wanted[rec.at("doc_name")] = true;
    });
    if (limit_ > 0 && static_cast<int64_t>(qs.size()) > limit_) qs.resize(static_cast<size_t>(limit_));
    std::map<std::string, std::vector<std::string>> docs;
    read_jsonl(documents_, [&](const nlohmann::json& rec, size_t) {
      const std::string name = rec.at("doc_name");
      if (wanted.count(name)) docs[name] = rec.at("pages").get<std::vector<std::string>>();
    });
    std::vector<LongDocExample> out;
    for (const auto& q : qs) {
      const std::string name = q.at("doc_name");
      if (!docs.count(name)) throw std::invalid_argument(documents_ + ": no document \"" + name + "\" for " + q.at("financebench_id").get<std::string>());
      const auto& pages = docs[name];
      int64_t lo = 0, hi = static_cast<int64_t>(pages.size()) - 1;
      if (pages_ == "evidence_window") {
        lo = hi;
        hi = 0;
        for (const auto& ev : q.at("evidence")) {
          const int64_t p = ev.at("evidence_page_num");
          lo = std::min(lo, p - window_);
          hi = std::max(hi, p + window_);
        }
        lo = std::max<int64_t>(lo, 0);
        hi = std::min<int64_t>(hi, static_cast<int64_t>(pages.size()) - 1);
      }
      LongDocExample e;
      e.id = q.at("financebench_id");
      for (int64_t p = lo; p <= hi; ++p) e.document += "[page " + std::to_string(p + 1) + "]\n" + pages[static_cast<size_t>(p)] + "\n";
      e.question = q.at("question");
      e.answers = {q.at("answer").get<std::string>()};
      e.meta = {{"doc_name", name}, {"pages", {lo + 1, hi + 1}}, {"question_type", q.value("question_type", "")}};
      out.push_back(std::move(e));
    }
    return out;
  }

 private:
  std::string questions_, documents_, pages_;
  int64_t window_, limit_;
};
TANDEM_REGISTER(LongDocDataset, "financebench", FinanceBench);

// Any JSONL with document, question and answers (a string or a list) fields; e.g. LongHealth.
class JsonlLongDoc : public LongDocDataset {
 public:
  using Options = JsonlLongDocOptions;
  explicit JsonlLongDoc(const Config& c) : JsonlLongDoc(Options::from_config(c)) {}
  explicit JsonlLongDoc(const Options& o)
      : path_(resolve_data_path(o.path)),
        doc_(o.document_field),
        q_(o.question_field),
        a_(o.answers_field),
        id_(o.id_field),
        limit_(o.limit) {}
  std::vector<LongDocExample> load() override {
    std::vector<LongDocExample> out;
    read_jsonl(path_, [&](const nlohmann::json& rec, size_t line) {
      LongDocExample e;
      e.id = rec.contains(id_) ? rec[id_].dump() : std::to_string(line);
      if (rec.contains(id_) && rec[id_].is_string()) e.id = rec[id_];
      e.document = rec.at(doc_);
      e.question = rec.at(q_);
      const auto& a = rec.at(a_);
      e.answers = a.is_string() ? std::vector<std::string>{a.get<std::string>()} : a.get<std::vector<std::string>>();
      out.push_back(std::move(e));
    });
    trim(out, limit_);
    return out;
  }

 private:
  std::string path_, doc_, q_, a_, id_;
  int64_t limit_;
};
TANDEM_REGISTER(LongDocDataset, "jsonl", JsonlLongDoc);

}  // namespace
}  // namespace tandem

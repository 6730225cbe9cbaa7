// The "collab_qa" experiment (Minions): one protocol over long-document questions.
// Per example it appends a line to predictions.jsonl (flushed, so a crash or kill keeps every
// finished example and a rerun of the same config resumes after them) and writes
// transcripts/<id>.json and .md. A failed example (remote errors after retries) is recorded
// with its error and the run goes on to the others; but a run with failures is not finished:
// it ends with an error listing them and no metrics.json, and rerunning the same command
// retries just those (the latest line of an id in predictions.jsonl is the one that counts).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "tandem/collab/protocol.h"
#include "tandem/core/progress.h"
#include "tandem/data/jsonl.h"
#include "tandem/experiments/experiment.h"
#include "tandem/experiments/collab_qa.h"

namespace fs = std::filesystem;

namespace tandem {
namespace {

std::string safe_name(std::string s) {
  for (auto& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  return s;
}

class CollabQa : public Experiment {
 public:
  using Options = CollabQaOptions;

  CollabQa(const Config& root, const RuntimeOptions& rt) : rt_(rt) {
    const Options o = Options::from_config(root);
    name_ = root.at("experiment").get<std::string>("name", "collab_qa");
    data_ = create<LongDocDataset>(root.at("data"));
    protocol_ = create<collab::Protocol>(root.at("protocol"));
    prices_ = o.prices;
    if (protocol_->uses_local()) local_ = create<collab::LMClient>(root.at("local"), rt);
    else root.set_aside("local", "this protocol never calls the local model");
    if (protocol_->uses_remote()) remote_ = create<collab::LMClient>(root.at("remote"), rt);
    else root.set_aside("remote", "this protocol never calls the remote model");
  }

  ExperimentResult run(RunContext& ctx) override {
    auto examples = data_->load();
    const std::string pred_path = ctx.path("predictions.jsonl");
    std::map<std::string, nlohmann::json> latest;  // id -> its last recorded row
    if (fs::exists(pred_path))
      read_jsonl(pred_path, [&](const nlohmann::json& r, size_t) { latest[r.at("id").get<std::string>()] = r; },
                 JsonlOptions{true, 0});  // a line cut by a kill is skipped, its example redone
    std::set<std::string> done, retry;
    for (const auto& [id, r] : latest) (r.value("failed", false) ? retry : done).insert(id);
    if (!done.empty()) ctx.info("resuming: " + std::to_string(done.size()) + " examples already finished");
    if (!retry.empty()) ctx.info("retrying " + std::to_string(retry.size()) + " examples that failed last time");
    fs::create_directories(ctx.path("transcripts"));
    collab::ProtocolClients clients{local_.get(), remote_.get()};
    Progress bar("examples", static_cast<int64_t>(examples.size()), "ex");
    bar.update(static_cast<int64_t>(done.size()));
    std::ofstream preds(pred_path, std::ios::app);
    for (const auto& ex : examples) {
      if (done.count(ex.id)) continue;
      collab::Transcript t;
      collab::CostMeter m;
      std::string pred, error;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        pred = protocol_->answer(ex, clients, t, m);
      } catch (const std::exception& e) {
        error = e.what();
        t.add("system", "error", error);
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double f1 = error.empty() ? answer_f1(ex.answers, pred) : 0.0;
      nlohmann::json tj = {{"id", ex.id},        {"protocol", name_},   {"question", ex.question}, {"references", ex.answers},
                           {"prediction", pred}, {"f1", f1},            {"error", error.empty() ? nlohmann::json() : nlohmann::json(error)},
                           {"seconds", secs},    {"cost", m.to_json(prices_)}, {"meta", ex.meta}, {"events", t.events}};
      const std::string stem = "transcripts/" + safe_name(ex.id);
      ctx.write_artifact(stem + ".json", tj.dump(1, ' ', false, nlohmann::json::error_handler_t::replace));
      ctx.write_artifact(stem + ".md", collab::transcript_markdown(tj));
      nlohmann::json row = {{"id", ex.id}, {"prediction", pred}, {"f1", f1}, {"failed", !error.empty()}, {"error", error},
                            {"seconds", secs}, {"cost", m.to_json(prices_)}};
      preds << row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      preds.flush();
      if (!preds) throw std::runtime_error(pred_path + ": cannot append a prediction (disk full?)");
      latest[ex.id] = row;
      char post[64];
      std::snprintf(post, sizeof post, "f1=%.3f%s", f1, error.empty() ? "" : " FAILED");
      bar.update(1, post);
    }
    bar.finish();
    std::vector<nlohmann::json> rows;
    std::vector<std::string> failed_ids;
    for (const auto& ex : examples) {
      const auto& r = latest.at(ex.id);
      rows.push_back(r);
      if (r.value("failed", false)) failed_ids.push_back(ex.id);
    }
    if (!failed_ids.empty()) {
      std::string ids;
      for (size_t i = 0; i < failed_ids.size() && i < 10; ++i) ids += (i ? ", " : "") + failed_ids[i];
      if (failed_ids.size() > 10) ids += ", ...";
      const std::string first_error = latest.at(failed_ids.front()).value("error", std::string());
      throw std::runtime_error(std::to_string(failed_ids.size()) + " of " + std::to_string(examples.size()) +
                               " examples failed (" + ids + "; first error: " + first_error.substr(0, 300) +
                               "). The others are kept in " + pred_path + "; rerun the same command to retry the failed ones");
    }

    double f1 = 0, secs = 0, dollars = 0;
    int64_t failed = 0, rp = 0, rc = 0, lp = 0, lc = 0, calls = 0;
    for (const auto& r : rows) {
      f1 += r.at("f1").get<double>();
      secs += r.at("seconds").get<double>();
      failed += r.at("failed").get<bool>() ? 1 : 0;
      const auto& c = r.at("cost");
      rp += c.at("remote_prompt_tokens").get<int64_t>();
      rc += c.at("remote_completion_tokens").get<int64_t>();
      lp += c.at("local_prompt_tokens").get<int64_t>();
      lc += c.at("local_completion_tokens").get<int64_t>();
      calls += c.at("remote_calls").get<int64_t>();
      dollars += c.at("dollars").get<double>();
    }
    const double n = rows.empty() ? 1.0 : static_cast<double>(rows.size());
    ExperimentResult res;
    res.metrics = {{"examples", rows.size()},
                   {"failed", failed},
                   {"f1", f1 / n},
                   {"remote_prompt_tokens", rp},
                   {"remote_completion_tokens", rc},
                   {"remote_tokens_per_example", static_cast<double>(rp + rc) / n},
                   {"remote_calls", calls},
                   {"local_prompt_tokens", lp},
                   {"local_completion_tokens", lc},
                   {"dollars", dollars},
                   {"dollars_per_example", dollars / n},
                   {"seconds_per_example", secs / n},
                   {"local", local_ ? local_->describe() : ""},
                   {"remote", remote_ ? remote_->describe() : ""}};
    res.table = Table({"protocol", "examples", "failed", "f1", "remote_tokens", "remote_calls", "local_tokens", "dollars", "s_per_example"});
    res.table.add_row({name_, static_cast<int64_t>(rows.size()), failed, f1 / n, rp + rc, calls, lp + lc, dollars, secs / n});
    return res;
  }

 private:
  RuntimeOptions rt_;
  std::string name_;
  std::unique_ptr<LongDocDataset> data_;
  std::unique_ptr<collab::Protocol> protocol_;
  std::unique_ptr<collab::LMClient> local_, remote_;
  collab::PriceTable prices_;
};
TANDEM_REGISTER(Experiment, "collab_qa", CollabQa);

}  // namespace
}  // namespace tandem

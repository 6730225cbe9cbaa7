// Symbolic-MoE experiment: skill-based recruiting of expert LMs per instance, an aggregator chosen
// on validation, and batched-by-expert execution measured against naive per-instance loading.
//
//   1. skills: tag validation and test questions with vocabulary skills (skills: {type: ...});
//   2. profiles: every expert answers the validation pool; per-skill +1/-1, smoothed; strength;
//   3. recruit: per test instance, score experts on its skills and take k (top-k or sampled);
//   4. aggregator: the candidate whose synthesis of recruited answers is best on validation;
//   5. execution: the recruited jobs run batched-by-expert (and, for comparison, naively on the
//      first `compare_instances` test instances): loads, wall time, peak memory, same answers;
//   6. baselines: best single expert, majority vote of all experts, a task-level router.
// Per-instance answers of every expert and of the aggregator go to per_instance.jsonl (ids,
// skills and letters only: no question text, as GPQA's authors ask).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include "tandem/experiments/experiment.h"
#include "tandem/experiments/symbolic_moe.h"
#include "tandem/models/model_paths.h"
#include "tandem/moe/model_pool.h"
#include "tandem/moe/executor.h"
#include "tandem/moe/baselines.h"
#include "tandem/moe/pipeline.h"
#include "tandem/moe/profiles.h"

namespace tandem {
namespace {

using namespace moe;

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

class SymbolicMoe : public Experiment {
 public:
  using Options = SymbolicMoeOptions;

  SymbolicMoe(const Config& root, const RuntimeOptions& rt) : rt_(rt) {
    const Options o = Options::from_config(root);
    const Config d = root.at("data");
    datasets_ = o.data.datasets;
    if (datasets_.empty()) d.fail("datasets", "a non-empty list such as [mmlu_pro, gpqa, medmcqa]");
    dir_ = o.data.dir;
    n_val_ = static_cast<size_t>(o.data.validation_per_dataset);
    n_test_ = static_cast<size_t>(o.data.test_per_dataset);
    skip_bad_ = o.data.skip_bad_lines;
    const auto expert_nodes = root.items("experts");
    for (size_t i = 0; i < o.experts.size(); ++i) {
      const auto& x = o.experts[i];
      const Config& e = expert_nodes[i];
      ExpertSpec s{x.name, resolve_model_path(x.model), x.system, x.adapter_run, x.answer.empty() ? o.recipe.answer : x.answer};
      if (!s.adapter_run.empty() && !std::filesystem::exists(s.adapter_run + "/adapter.safetensors"))
        e.fail("adapter_run", "a finished SPA run directory holding adapter.safetensors (run its config first)");
      if (!s.adapter_run.empty() && s.answer == "loglik")
        e.fail(x.answer.empty() ? "adapter_run" : "answer",
               "answer: letter for a plugin expert (its plugin is trained to answer letters; set the expert's answer: letter)");
      for (const auto& other : experts_)
        if (other.name == s.name) e.fail("name", "a unique expert name ('" + s.name + "' repeats)");
      experts_.push_back(s);
    }
    if (experts_.size() < 2) root.fail("experts", "at least two experts");
    const Config c = root.at("experiment");
    for (const auto& n : o.recipe.aggregators) {
      auto it = std::find_if(experts_.begin(), experts_.end(), [&](const ExpertSpec& e) { return e.name == n; });
      if (it == experts_.end()) c.fail("aggregators", "names of experts (unknown '" + n + "')");
      aggregators_.push_back(static_cast<int64_t>(it - experts_.begin()));
    }
    if (aggregators_.empty()) c.fail("aggregators", "at least one expert name");
    ro_ = o.recruit;
    ro_.seed = rt_.seed;
    smoothing_ = o.profile.smoothing;
    executor_ = o.executor;
    if (!Registry<Executor>::instance().contains(executor_.type))
      root.at("executor").fail("type", "an executor (" + Registry<Executor>::instance().known() +
                                           (executor_.type == "distributed" ? "; distributed exists under tandem moe launch" : "") + ")");
    batch_ = o.executor.batch_size;
    compare_executors_ = o.recipe.compare_executors;
    for (const auto& t : compare_executors_)
      if (!Registry<Executor>::instance().contains(t)) c.fail("compare_executors", "executor names (unknown '" + t + "')");
    compare_ = static_cast<size_t>(o.recipe.compare_instances);
    compare_dataset_ = o.recipe.compare_dataset;
    budget_ = static_cast<int64_t>(o.pool.memory_budget_gb * (1LL << 30));
    // Build the skill extractor now so its config keys are checked before any work.
    skills_ = create<SkillExtractor>(root.at("skills"), static_cast<const RuntimeOptions&>(rt_));
  }

  ExperimentResult run(RunContext& ctx) override {
    ExperimentResult res;
    nlohmann::json& m = res.metrics;
    std::vector<McInstance> val, test;
    for (const auto& ds : datasets_) {
      auto v = read_mc_instances(resolve_data_path(dir_ + "/" + ds + "_train.jsonl"), ds, n_val_, skip_bad_);
      auto t = read_mc_instances(resolve_data_path(dir_ + "/" + ds + "_test.jsonl"), ds, n_test_, skip_bad_);
      val.insert(val.end(), v.begin(), v.end());
      test.insert(test.end(), t.begin(), t.end());
    }
    ctx.info("symbolic-moe: " + std::to_string(val.size()) + " validation and " + std::to_string(test.size()) +
             " test instances, " + std::to_string(experts_.size()) + " experts");
    // The method, step by step (moe/pipeline.h).
    ModelPool pool(budget_, rt_.device, rt_.dtype);
    moe::Pipeline pipe(experts_, *skills_, pool, ro_, smoothing_, executor_);
    const double t0 = now_s();
    const auto val_tags = pipe.tag(val);
    const auto test_tags = pipe.tag(test);
    m["skills_seconds"] = now_s() - t0;
    // Every expert on every validation and test instance: profiles and baselines need them.
    const auto va = pipe.answer_all(val);
    const auto ta = pipe.answer_all(test);
    const size_t E = experts_.size();
    const auto profiles = pipe.build_profiles(val, val_tags, va);
    ctx.write_artifact("profiles.json", profiles_to_json(profiles, skills_->vocabulary()).dump(2) + "\n");
    const auto val_rec = pipe.recruit(val, val_tags, profiles), test_rec = pipe.recruit(test, test_tags, profiles);
    const auto agg = pipe.choose_aggregator(aggregators_, val, val_rec, va);
    const int64_t best_agg = agg.expert;
    nlohmann::json agg_val = nlohmann::json::object();
    for (size_t c = 0; c < aggregators_.size(); ++c) agg_val[experts_[aggregators_[c]].name] = agg.validation[c];
    m["aggregator"] = {{"chosen", experts_[best_agg].name}, {"validation_accuracy", agg_val}};
    const auto final_ans = pipe.aggregate(best_agg, test, test_rec, ta);

    // Batched vs naive on the same recruited jobs: `compare_instances` test instances of
    // `compare_dataset` (its own test file, read further than the accuracy table's share).
    std::vector<McInstance> ci = test;
    std::vector<SkillTags> ct = test_tags;
    if (compare_ == 0) {  // no comparison: a limit of 0 would read (and tag) the whole file
      ci.clear();
      ct.clear();
    } else if (!compare_dataset_.empty()) {
      ci = read_mc_instances(resolve_data_path(dir_ + "/" + compare_dataset_ + "_test.jsonl"), compare_dataset_, compare_, skip_bad_);
      ct = pipe.tag(ci);
    }
    const size_t nc = std::min(compare_, ci.size());
    std::vector<Job> rj;
    for (size_t i = 0; i < nc; ++i)
      for (int64_t e : recruit(expert_scores(profiles, ct[i]), ro_, ci[i].id)) rj.push_back({i, e, question_prompt(ci[i]), ci[i].n_options, &ci[i], {}});
    nlohmann::json cmp = nlohmann::json::object();
    std::vector<std::vector<Answer>> cmp_ans;
    Table et({"executor", "instances", "jobs", "model loads", "wall seconds", "load seconds", "peak tensor MB", "max models resident"});
    for (const std::string& type : compare_executors_) {
      ModelPool p(budget_, rt_.device, rt_.dtype);
      auto ex = create_named<Executor>(type, ExecutorOptions{batch_});
      const double s = now_s();
      cmp_ans.push_back(ex->run(rj, experts_, p));
      const double w = now_s() - s;
      cmp[type] = {{"instances", nc}, {"jobs", rj.size()}, {"loads", p.loads()}, {"seconds", w}, {"load_seconds", p.load_seconds()},
                   {"peak_tensor_bytes", p.peak_resident_bytes()}, {"max_resident_models", p.max_resident_models()}};
      et.add_row({type, static_cast<int64_t>(nc), static_cast<int64_t>(rj.size()), p.loads(), w, p.load_seconds(),
                  p.peak_resident_bytes() / 1048576.0, p.max_resident_models()});
    }
    // Every executor against the first: the same answers, and the wall-time ratio.
    bool all_same = true;
    for (size_t x = 1; x < compare_executors_.size(); ++x) {
      size_t same = 0;
      for (size_t j = 0; j < rj.size(); ++j) same += cmp_ans[0][j].choice == cmp_ans[x][j].choice;
      auto& c = cmp[compare_executors_[x]];
      c["identical_answer_count"] = same;
      c["identical_answers"] = same == rj.size();
      c["wall_ratio_vs_" + compare_executors_[0]] = c["seconds"].get<double>() / std::max(1e-9, cmp[compare_executors_[0]]["seconds"].get<double>());
      all_same &= same == rj.size();
    }
    cmp["identical_answers"] = all_same;
    cmp["reference"] = compare_executors_.empty() ? std::string() : compare_executors_[0];
    cmp["dataset"] = compare_dataset_.empty() ? std::string("test mix") : compare_dataset_;
    m["execution"] = cmp;
    ctx.write_table("execution", et);

    // Accuracy per method and dataset: the baselines, then the method.
    auto base = moe::baselines(experts_, datasets_, val, va, test, ta);
    std::vector<std::string> methods = base.methods;
    auto& pred = base.predictions;
    const size_t best_single = base.best_single;
    {
      std::vector<int64_t> p;
      for (size_t i = 0; i < test.size(); ++i) p.push_back(final_ans[i].choice);
      pred["Symbolic-MoE"] = p;
      methods.push_back("Symbolic-MoE");
    }
    std::vector<std::string> cols = {"method"};
    for (const auto& ds : datasets_) cols.push_back(ds);
    cols.push_back("all");
    Table t(cols);
    for (const auto& meth : methods) {
      std::vector<Cell> row{meth};
      double all = 0;
      for (const auto& ds : datasets_) {
        double right = 0, n = 0;
        for (size_t i = 0; i < test.size(); ++i)
          if (test[i].dataset == ds) {
            n += 1;
            right += pred[meth][i] == test[i].gold;
          }
        row.push_back(n ? right / n : 0.0);
        m["accuracy"][meth][ds] = n ? right / n : 0.0;
      }
      for (size_t i = 0; i < test.size(); ++i) all += pred[meth][i] == test[i].gold;
      row.push_back(all / std::max<size_t>(1, test.size()));
      m["accuracy"][meth]["all"] = all / std::max<size_t>(1, test.size());
      t.add_row(row);
    }
    {  // chance: the mean of 1 / options
      std::vector<Cell> row{std::string("chance")};
      double all = 0;
      for (const auto& ds : datasets_) {
        double c = 0, n = 0;
        for (const auto& x : test)
          if (x.dataset == ds) {
            c += 1.0 / x.n_options;
            n += 1;
          }
        row.push_back(n ? c / n : 0.0);
      }
      for (const auto& x : test) all += 1.0 / x.n_options;
      row.push_back(all / std::max<size_t>(1, test.size()));
      t.add_row(row);
    }
    res.table = t;

    std::string jsonl;
    for (size_t i = 0; i < test.size(); ++i) {
      nlohmann::json r{{"id", test[i].id}, {"dataset", test[i].dataset}, {"gold", std::string(1, static_cast<char>('A' + test[i].gold))}};
      for (int64_t s : test_tags[i].skills) r["skills"].push_back(skills_->vocabulary()[s]);
      if (!test_tags[i].keywords.empty()) r["keywords"] = test_tags[i].keywords;
      for (int64_t e : test_rec[i]) r["recruited"].push_back(experts_[e].name);
      for (size_t e = 0; e < E; ++e) r["expert_answers"][experts_[e].name] = std::string(1, static_cast<char>('A' + ta[e][i].choice));
      r["aggregator"] = experts_[best_agg].name;
      r["final"] = std::string(1, static_cast<char>('A' + final_ans[i].choice));
      for (const auto& meth : methods) r["methods"][meth] = std::string(1, static_cast<char>('A' + pred[meth][i]));
      jsonl += r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    ctx.write_artifact("per_instance.jsonl", jsonl);
    std::map<std::string, int64_t> rec_count;
    for (const auto& r : test_rec)
      for (int64_t e : r) ++rec_count[experts_[e].name];
    m["recruited_counts"] = rec_count;
    m["best_single_expert"] = experts_[best_single].name;
    m["test_instances"] = test.size();
    m["validation_instances"] = val.size();
    m["pool_peak_tensor_bytes"] = pool.peak_resident_bytes();
    return res;
  }

 private:
  RuntimeOptions rt_;
  std::vector<std::string> datasets_;
  std::string dir_, compare_dataset_;
  size_t n_val_ = 40, n_test_ = 60, compare_ = 200;
  bool skip_bad_ = false;
  std::vector<ExpertSpec> experts_;
  std::vector<int64_t> aggregators_;
  std::unique_ptr<SkillExtractor> skills_;
  RecruitOptions ro_;
  double smoothing_ = 1.0;
  int64_t batch_ = 8, budget_ = 0;
  ExecutorOptions executor_;
  std::vector<std::string> compare_executors_;
};

TANDEM_REGISTER(Experiment, "symbolic_moe", SymbolicMoe);

}  // namespace
}  // namespace tandem

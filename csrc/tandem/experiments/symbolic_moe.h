// The `symbolic_moe` recipe's options.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/core/options.h"
#include "tandem/moe/executor.h"
#include "tandem/moe/profiles.h"
#include "tandem/moe/skills.h"

namespace tandem {

struct MoeRecipeOptions {
  std::vector<std::string> aggregators;
  int64_t compare_instances = 200;
  std::string compare_dataset;
  std::vector<std::string> compare_executors{"batched_by_expert", "batched_by_model", "naive"};
  std::string answer = "letter";
  template <class V>
  void visit(V& v) {
    v.required("aggregators", aggregators, "candidate aggregators (expert names); the best on validation aggregates");
    v.field("answer", answer, "how experts answer unless they say: letter (next-token letter log-probs) or loglik "
            "(each option's log-likelihood per byte; the aggregator then picks among the proposed options)",
            OneOf{{"letter", "loglik"}});
    v.field("compare_executors", compare_executors, "executors timed on the same recruited jobs (the first is the reference)");
    v.field("compare_instances", compare_instances, "recruited test jobs run both batched-by-expert and naively",
            NonNegative{});
    v.field("compare_dataset", compare_dataset, "... from this test set (\"\" = all)");
  }
};

struct MoeDataOptions {
  std::vector<std::string> datasets;
  std::string dir = "symbolic_moe";
  int64_t validation_per_dataset = 40, test_per_dataset = 60;
  bool skip_bad_lines = false;
  template <class V>
  void visit(V& v) {
    v.required("datasets", datasets, "the paper's splits: <dir>/<name>_{train,test}.jsonl (e.g. mmlu_pro, gpqa, medmcqa)");
    v.field("dir", dir, "folder of the splits under $TANDEM_DATA");
    v.field("validation_per_dataset", validation_per_dataset, "profile pool size per dataset (its train split)", Positive{});
    v.field("test_per_dataset", test_per_dataset, "test instances per dataset", Positive{});
    v.field("skip_bad_lines", skip_bad_lines, "skip (and count) malformed records instead of failing");
  }
};

struct MoeExpertOptions {
  std::string name, model, system, adapter_run, answer;
  template <class V>
  void visit(V& v) {
    v.field("answer", answer, "letter or loglik (\"\" = experiment.answer)", OneOf{{"", "letter", "loglik"}});
    v.required("name", name, "unique expert name");
    v.required("model", model, "a short name under $TANDEM_MODELS, a .gguf file or an HF directory");
    v.field("system", system, "persona system prompt (\"\" = none)");
    v.field("adapter_run", adapter_run, "a finished SPA run whose trained plugin this expert adds (\"\" = none)");
  }
};

struct MoeProfileOptions {
  double smoothing = 1.0;
  template <class V>
  void visit(V& v) {
    v.field("smoothing", smoothing, "added to every skill count of an expert's profile", Range{0.0, 1e6});
  }
};

struct MoePoolOptions {
  double memory_budget_gb = 0.0;
  template <class V>
  void visit(V& v) {
    v.field("memory_budget_gb", memory_budget_gb, "models resident at once fit this budget (0 = no limit)", Range{0.0, 1e6});
  }
};

struct SymbolicMoeOptions {
  MoeRecipeOptions recipe;
  MoeDataOptions data;
  std::vector<MoeExpertOptions> experts;
  moe::RecruitOptions recruit;
  MoeProfileOptions profile;
  moe::ExecutorOptions executor;
  MoePoolOptions pool;
  template <class V>
  void visit(V& v) {
    v.section("experiment", recipe, "the recipe");
    v.section("data", data, "validation and test instances");
    v.list("experts", experts, "the expert pool");
    v.template component<moe::SkillExtractor>("skills", "how instances are tagged with skills");
    v.section("recruit", recruit, "recruiting per instance");
    v.section("profile", profile, "expert profiles on validation");
    v.section("executor", executor, "running the recruited jobs");
    v.section("pool", pool, "the model pool");
  }
  TANDEM_OPTIONS(SymbolicMoeOptions)
};

}  // namespace tandem

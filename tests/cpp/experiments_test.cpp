// experiments: the runner end to end, and the config errors it raises before writing anything.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tandem/core/config.h"
#include "tandem/core/files.h"
#include "tandem/core/runtime.h"
#include "tandem/experiments/experiment.h"
#include "tandem/experiments/runner.h"
#include "test_helpers.h"

using tandem::Config;
using tandem::ConfigError;
using tandem::testing::expect_error;
using tandem::testing::TempDir;
using namespace tandem;

namespace {

std::string keyword_dataset(const TempDir& d, int n) {
  const char* topics[3][2] = {{"sport", "match"}, {"music", "album"}, {"science", "atom"}};
  const char* filler[] = {"the", "a", "today", "new", "report", "people", "city", "said"};
  std::string out;
  for (int i = 0; i < n; ++i) {
    int t = i % 3;
    std::string text = std::string(filler[i % 8]) + " " + topics[t][i % 2] + " " + filler[(i * 7) % 8] + " " +
                       filler[(i * 3) % 8];
    out += nlohmann::json{{"id", i}, {"text", text}, {"label", topics[t][0]}}.dump() + "\n";
  }
  return d.write("data.jsonl", out);
}

TEST(ConfigErrors, UnknownType) {
  Config c = Config::load_string("experiment:\n  type: nope\n", "r.yaml");
  expect_error<ConfigError>(
      [&] {
        tandem::create_by_type<tandem::Experiment>(c.at("experiment"), c, tandem::RuntimeOptions{});
      },
      {"r.yaml:2: experiment.type: unknown experiments.experiment 'nope' (known: ", "text_classification"});
}

TEST(ConfigErrors, RunnerRejectsUnknownKeyBeforeWritingAnything) {
  TempDir d;
  d.write("data.jsonl", "{\"text\": \"a b\", \"label\": \"x\"}\n");
  const std::string yaml = "experiment: {type: text_classification, name: t}\n"
                           "device: cpu\n"
                           "run: {results_dir: " + d.file("results") + "}\n"
                           "data: {type: jsonl_text_classification, path: " + d.file("data.jsonl") + "}\n"
                           "features: {type: hashed_ngrams, buckets: 16}\n"
                           "classifier: {type: bag_linear}\n"
                           "train: {epochs: 1, lr_schedule: cosine}\n";
  Config c = Config::load_string(yaml, "run.yaml");
  expect_error<ConfigError>([&] { tandem::run_experiment(c, {d.file("results"), false}); },
                            {"run.yaml:7: train.lr_schedule: unknown key"});
  EXPECT_FALSE(std::filesystem::exists(d.file("results")));
}

TEST(Runner, TrainsAndWritesEveryArtifact) {
  TempDir d;
  const std::string data = keyword_dataset(d, 300);
  const std::string yaml = "experiment: {type: text_classification, name: kw}\n"
                           "device: cpu\nthreads: 1\nseed: 3\n"
                           "run: {id: r1}\n"
                           "data: {type: jsonl_text_classification, path: " + data + ", id_field: id}\n"
                           "features: {type: hashed_ngrams, buckets: 512, ngram: 1}\n"
                           "classifier: {type: bag_linear}\n"
                           "train: {epochs: 8, batch_size: 16, lr: 0.05}\n";
  Config cfg = Config::load_string(yaml, "kw.yaml");
  RunSummary s = run_experiment(cfg, {d.file("results"), false});
  EXPECT_EQ(s.run_dir, d.file("results/kw/r1"));
  EXPECT_GE(s.metrics["accuracy"].get<double>(), 0.95);
  EXPECT_NEAR(s.metrics["majority_baseline_accuracy"].get<double>(), 1.0 / 3.0, 0.1);
  for (const char* f : {"config.yaml", "metrics.json", "table.csv", "table.md", "curve.csv", "curve.md",
                        "checkpoint.safetensors", "log.txt"})
    EXPECT_TRUE(std::filesystem::exists(s.run_dir + "/" + f)) << f;
  auto m = nlohmann::json::parse(read_file(s.run_dir + "/metrics.json"));
  EXPECT_EQ(m["run"]["experiment"], "kw");
  EXPECT_EQ(m["run"]["threads"], 1);
  // The table has one row per label plus "all", whose count is the test size.
  const std::string csv = read_file(s.run_dir + "/table.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 + 1);
  // Same seed, same config: same result.
  Config cfg2 = Config::load_string(yaml, "kw.yaml", {"run.id=r2"});
  RunSummary s2 = run_experiment(cfg2, {d.file("results"), false});
  EXPECT_EQ(s2.metrics["final_train_loss"].get<double>(), s.metrics["final_train_loss"].get<double>());
}

}  // namespace

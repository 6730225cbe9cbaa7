// The experiment runner end to end on a fixture dataset this test writes: a learnable
// problem (label given by a keyword) must reach high accuracy, and every artifact must exist.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tandem/core/files.h"
#include "tandem/experiments/runner.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::TempDir;

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

TEST(Runner, TrainsAndWritesEveryArtifact) {
  TempDir d;
  const std::string data = keyword_dataset(d, 300);
  const std::string yaml = "experiment: {type: text_classification, name: kw}\n"
                           "device: cpu\nthreads: 1\nseed: 3\n"
                           "run: {id: r1}\n"
                           "data: {type: jsonl_text_classification, path: " + data + ", id_field: id}\n"
                           "features: {type: hashed_ngrams, buckets: 512, ngram: 1}\n"
                           "model: {type: bag_linear}\n"
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

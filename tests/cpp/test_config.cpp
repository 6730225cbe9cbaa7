// Config: typed access, extends, overrides, and one test per kind of bad config, each
// asserting the message names the file, the line, the key path and what was expected.
#include <gtest/gtest.h>

#include "tandem/core/config.h"
#include "tandem/core/runtime.h"
#include "tandem/experiments/experiment.h"
#include "tandem/experiments/runner.h"
#include "test_helpers.h"

using tandem::Config;
using tandem::ConfigError;
using tandem::testing::expect_error;
using tandem::testing::TempDir;

namespace {

const char* kGood = R"(experiment:
  type: text_classification
train:
  epochs: 3
  lr: 3e-4
  flags: [1, 2, 3]
  names: [a, b]
  verbose: true
)";

TEST(Config, TypedGettersReadValues) {
  Config c = Config::load_string(kGood, "good.yaml");
  Config t = c.at("train");
  EXPECT_EQ(t.get<int64_t>("epochs"), 3);
  EXPECT_DOUBLE_EQ(t.get<double>("lr"), 3e-4);
  EXPECT_EQ(t.get<std::vector<int64_t>>("flags"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(t.get<std::vector<std::string>>("names"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(t.get<bool>("verbose"));
  EXPECT_EQ(t.get<int64_t>("absent", 7), 7);
  EXPECT_EQ(t.path(), "train");
  EXPECT_EQ(c.at("experiment").type(), "text_classification");
}

TEST(Config, WhereNamesFileAndLine) {
  Config c = Config::load_string(kGood, "good.yaml");
  EXPECT_EQ(c.at("train").where("lr"), "good.yaml:5");
}

TEST(Config, OverridesReplaceAndCreate) {
  Config c = Config::load_string(kGood, "good.yaml", {"train.lr=0.01", "train.new.deep=5", "seed=3"});
  EXPECT_DOUBLE_EQ(c.at("train").get<double>("lr"), 0.01);
  EXPECT_EQ(c.at("train").at("new").get<int64_t>("deep"), 5);
  EXPECT_EQ(c.get<int64_t>("seed"), 3);
  EXPECT_EQ(c.at("train").where("lr"), "command-line override 'train.lr=0.01'");
}

TEST(Config, ExtendsMergesDeeplyAndTracksFiles) {
  TempDir d;
  d.write("base.yaml", "seed: 1\ntrain:\n  epochs: 2\n  lr: 0.5\nmodel:\n  type: m\n");
  d.write("child.yaml", "extends: base.yaml\ntrain:\n  lr: 0.1\n");
  Config c = Config::load_file(d.file("child.yaml"));
  EXPECT_EQ(c.get<int64_t>("seed"), 1);
  EXPECT_EQ(c.at("train").get<int64_t>("epochs"), 2);
  EXPECT_DOUBLE_EQ(c.at("train").get<double>("lr"), 0.1);
  EXPECT_EQ(c.at("train").where("epochs"), (d.path() / "base.yaml").string() + ":3");
  EXPECT_EQ(c.at("train").where("lr"), d.file("child.yaml") + ":3");
  EXPECT_EQ(c.dump().find("extends"), std::string::npos);
}

TEST(Config, UnusedCheckPassesWhenEverythingWasRead) {
  Config c = Config::load_string("a: 1\nb:\n  c: 2\n", "x.yaml");
  c.get<int64_t>("a");
  c.at("b").get<int64_t>("c");
  EXPECT_NO_THROW(c.check_unused());
}

// ---- bad configs: each message names file, line, key path, expectation ----

TEST(ConfigErrors, WrongType) {
  expect_error<ConfigError>([] { Config::load_string("train:\n  epochs: abc\n", "w.yaml").at("train").get_positive_int("epochs"); },
                            {"w.yaml:2: train.epochs: expected a positive integer, got \"abc\""});
}

TEST(ConfigErrors, WrongTypeFloatForInteger) {
  expect_error<ConfigError>([] { Config::load_string("n: 2.5\n", "f.yaml").get<int64_t>("n"); },
                            {"f.yaml:1: n: expected an integer, got \"2.5\""});
}

TEST(ConfigErrors, MissingKey) {
  expect_error<ConfigError>([] { Config::load_string("train:\n  lr: 1\n", "m.yaml").at("train").get<int64_t>("epochs"); },
                            {"m.yaml:2: train.epochs: missing required key (expected an integer)"});
}

TEST(ConfigErrors, MissingSection) {
  expect_error<ConfigError>([] { Config::load_string("seed: 1\n", "s.yaml").at("model"); },
                            {"s.yaml", "model: missing required section (expected a mapping)"});
}

TEST(ConfigErrors, UnknownKeyWithSuggestion) {
  Config c = Config::load_string("model:\n  type: x\n  hiden: 3\n", "u.yaml");
  c.at("model").type();
  c.at("model").get<int64_t>("hidden", 1);
  expect_error<ConfigError>([&] { c.check_unused(); },
                            {"u.yaml:3: model.hiden: unknown key", "expected one of: hidden, type",
                             "did you mean 'hidden'?"});
}

TEST(ConfigErrors, UnknownTopLevelSection) {
  Config c = Config::load_string("seed: 1\ntrian:\n  lr: 1\n", "t.yaml");
  c.get<int64_t>("seed");
  c.has("train");
  expect_error<ConfigError>([&] { c.check_unused(); }, {"t.yaml:2: trian: unknown key", "did you mean 'train'?"});
}

TEST(ConfigErrors, UnknownKeyInBaseFileNamesBaseFile) {
  TempDir d;
  d.write("base.yaml", "seed: 1\nbogus: 2\n");
  d.write("child.yaml", "extends: base.yaml\n");
  Config c = Config::load_file(d.file("child.yaml"));
  c.get<int64_t>("seed");
  expect_error<ConfigError>([&] { c.check_unused(); }, {"base.yaml:2: bogus: unknown key"});
}

TEST(ConfigErrors, UnknownType) {
  Config c = Config::load_string("experiment:\n  type: nope\n", "r.yaml");
  expect_error<ConfigError>(
      [&] {
        tandem::create_by_type<tandem::Experiment>(c.at("experiment"), c, tandem::RuntimeOptions{});
      },
      {"r.yaml:2: experiment.type: unknown experiments.experiment 'nope' (known: ", "text_classification"});
}

TEST(ConfigErrors, BadDevice) {
  Config c = Config::load_string("seed: 0\ndevice: gpu0\n", "d.yaml");
  expect_error<ConfigError>([&] { tandem::RuntimeOptions::from_config(c); },
                            {"d.yaml:2: device: expected one of cpu, cuda, cuda:N, mps, auto, got \"gpu0\""});
}

TEST(ConfigErrors, CudaDeviceWithoutCuda) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "this machine has CUDA; the error path needs a CPU-only build";
  Config c = Config::load_string("device: cuda:0\n", "c.yaml");
  expect_error<ConfigError>([&] { tandem::RuntimeOptions::from_config(c); },
                            {"c.yaml:1: device: expected a device this machine has", "got \"cuda:0\""});
}

TEST(ConfigErrors, BadDtype) {
  Config c = Config::load_string("dtype: float8\n", "t.yaml");
  expect_error<ConfigError>([&] { tandem::RuntimeOptions::from_config(c); },
                            {"t.yaml:1: dtype: expected one of float32, bfloat16, float16, float64, got \"float8\""});
}

TEST(ConfigErrors, MalformedYaml) {
  expect_error<ConfigError>([] { Config::load_string("train:\n  lr: [1, 2\n  x: 3\n", "bad.yaml"); },
                            {"bad.yaml:", "malformed YAML"});
}

TEST(ConfigErrors, TopLevelNotAMapping) {
  expect_error<ConfigError>([] { Config::load_string("- a\n- b\n", "list.yaml"); },
                            {"list.yaml:1: expected a mapping of keys to values at the top level, got a list"});
}

TEST(ConfigErrors, OverrideWithoutEquals) {
  expect_error<ConfigError>([] { Config::load_string(kGood, "g.yaml", {"train.lr"}); },
                            {"command-line override 'train.lr': expected KEY.PATH=VALUE"});
}

TEST(ConfigErrors, OverrideMalformedValue) {
  expect_error<ConfigError>([] { Config::load_string(kGood, "g.yaml", {"train.flags=[1,"}); },
                            {"command-line override 'train.flags=[1,': malformed value '[1,'"});
}

TEST(ConfigErrors, OverrideThroughScalar) {
  expect_error<ConfigError>([] { Config::load_string(kGood, "g.yaml", {"train.lr.x=1"}); },
                            {"command-line override 'train.lr.x=1': 'train.lr' holds \"3e-4\", not a mapping"});
}

TEST(ConfigErrors, OverrideValueOfWrongTypeNamesOverride) {
  Config c = Config::load_string(kGood, "g.yaml", {"train.epochs=many"});
  expect_error<ConfigError>([&] { c.at("train").get_positive_int("epochs"); },
                            {"command-line override 'train.epochs=many': train.epochs: expected a positive integer, got \"many\""});
}

TEST(ConfigErrors, ExtendsMissingFile) {
  TempDir d;
  d.write("child.yaml", "seed: 1\nextends: nothere.yaml\n");
  expect_error<ConfigError>([&] { Config::load_file(d.file("child.yaml")); },
                            {"child.yaml:2: extends: cannot read base config 'nothere.yaml'"});
}

TEST(ConfigErrors, ExtendsCycle) {
  TempDir d;
  d.write("a.yaml", "extends: b.yaml\n");
  d.write("b.yaml", "extends: a.yaml\n");
  expect_error<ConfigError>([&] { Config::load_file(d.file("a.yaml")); }, {"b.yaml:1: extends: cycle:", "a.yaml"});
}

TEST(ConfigErrors, OutOfRange) {
  Config c = Config::load_string("data:\n  test_fraction: 1.5\n", "o.yaml");
  expect_error<ConfigError>([&] { c.at("data").get_in_range("test_fraction", 0, 1, 0.2); },
                            {"o.yaml:2: data.test_fraction: expected a number in [0, 1], got \"1.5\""});
}

TEST(ConfigErrors, ListExpected) {
  Config c = Config::load_string("names: a\n", "l.yaml");
  expect_error<ConfigError>([&] { c.get<std::vector<std::string>>("names"); },
                            {"l.yaml:1: names: expected a list of strings, got \"a\""});
}

TEST(ConfigErrors, SectionIsScalar) {
  Config c = Config::load_string("model: big\n", "s.yaml");
  expect_error<ConfigError>([&] { c.at("model"); }, {"s.yaml:1: model: expected a mapping, got \"big\""});
}

TEST(ConfigErrors, MissingFile) {
  expect_error<ConfigError>([] { Config::load_file("/nonexistent/dir/x.yaml"); },
                            {"cannot read config file '/nonexistent/dir/x.yaml'"});
}

TEST(ConfigErrors, RunnerRejectsUnknownKeyBeforeWritingAnything) {
  TempDir d;
  d.write("data.jsonl", "{\"text\": \"a b\", \"label\": \"x\"}\n");
  const std::string yaml = "experiment: {type: text_classification, name: t}\n"
                           "device: cpu\n"
                           "run: {results_dir: " + d.file("results") + "}\n"
                           "data: {type: jsonl_text_classification, path: " + d.file("data.jsonl") + "}\n"
                           "features: {type: hashed_ngrams, buckets: 16}\n"
                           "model: {type: bag_linear}\n"
                           "train: {epochs: 1, lr_schedule: cosine}\n";
  Config c = Config::load_string(yaml, "run.yaml");
  expect_error<ConfigError>([&] { tandem::run_experiment(c, {d.file("results"), false}); },
                            {"run.yaml:7: train.lr_schedule: unknown key"});
  EXPECT_FALSE(std::filesystem::exists(d.file("results")));
}

}  // namespace

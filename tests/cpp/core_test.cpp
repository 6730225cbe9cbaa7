// Core services: config (path-aware errors), registry, runtime, progress, atomic files, run log, hashing.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/files.h"
#include "tandem/core/hash.h"
#include "tandem/core/progress.h"
#include "tandem/core/registry.h"
#include "tandem/core/runtime.h"
#include "tandem/data/jsonl.h"
#include "tandem/data/text_classification.h"
#include "tandem/eval/table.h"
#include "tandem/experiments/experiment.h"
#include "tandem/experiments/runner.h"
#include "test_helpers.h"

using tandem::Config;
using tandem::ConfigError;
using tandem::testing::expect_error;
using tandem::testing::TempDir;
using namespace tandem;

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

TEST(Registry, ListsKindsAndNames) {
  auto kinds = RegistryBase::kinds();
  for (const char* k : {"experiments.experiment", "data.text_classification", "data.featurizer", "text.tokenizer"})
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << k;
  // Kinds are named "<folder>.<role>", the folder being where the base type lives.
  for (const auto& k : kinds) EXPECT_NE(k.find('.'), std::string::npos) << k;
  auto names = RegistryBase::names_of("data.featurizer");
  EXPECT_EQ(names, std::vector<std::string>{"hashed_ngrams"});
  expect_error<std::invalid_argument>([] { RegistryBase::names_of("nope"); },
                                      {"unknown registry kind 'nope'", "experiments.experiment"});
}

TEST(Registry, DuplicateRegistrationIsRefused) {
  auto& reg = Registry<TextFeaturizer>::instance();
  expect_error<std::logic_error>([&] { reg.add("hashed_ngrams", nullptr, "elsewhere.cpp"); },
                                 {"duplicate data.featurizer registration 'hashed_ngrams'", "elsewhere.cpp"});
}

TEST(Registry, CreatesFromConfigType) {
  Config c = Config::load_string("type: hashed_ngrams\nbuckets: 8\n", "f.yaml");
  auto f = create<TextFeaturizer>(c);
  EXPECT_EQ(f->dim(), 8);
  expect_error<ConfigError>([] { create<TextFeaturizer>(Config::load_string("type: nope\n", "g.yaml")); },
                            {"g.yaml:1: type: unknown data.featurizer 'nope' (known: hashed_ngrams)"});
  expect_error<std::invalid_argument>([] { create_named<TextFeaturizer>("nope", Config::load_string("{}", "h.yaml")); },
                                      {"unknown data.featurizer 'nope' (known: hashed_ngrams)"});
}

// The usage example at the top of core/registry.h, verbatim but for the names.
namespace registry_example {
class Experiment {
 public:
  static constexpr const char* kRegistryKind = "test.example_experiment";
  using Factory = std::unique_ptr<Experiment>(const Config&, const RuntimeOptions&);
  virtual ~Experiment() = default;
  virtual std::string name() const = 0;
};
}  // namespace registry_example
}  // namespace
TANDEM_DECLARE_REGISTRY(registry_example::Experiment);
TANDEM_DEFINE_REGISTRY(registry_example::Experiment);
namespace {
namespace registry_example {
struct SpaExperiment : Experiment {
  SpaExperiment(const Config& c, const RuntimeOptions&) : n(c.get<std::string>("label", "spa")) {}
  std::string name() const override { return n; }
  std::string n;
};
TANDEM_REGISTER(Experiment, "spa", SpaExperiment);
}  // namespace registry_example

TEST(Registry, HeaderExampleCompilesAndRuns) {
  using registry_example::Experiment;
  const Config cfg = Config::load_string("type: spa\nlabel: from-config\n", "e.yaml");
  const RuntimeOptions runtime;
  auto e = create<Experiment>(cfg, runtime);
  auto f = create_named<Experiment>("spa", Config::load_string("{}", "n.yaml"), runtime);
  const Config root = Config::load_string("experiment: {type: spa}\nlabel: root\n", "r.yaml");
  auto g = create_by_type<Experiment>(root.at("experiment"), root, runtime);
  EXPECT_EQ(e->name(), "from-config");
  EXPECT_EQ(f->name(), "spa");
  EXPECT_EQ(g->name(), "root");
}

TEST(Progress, RendersRateAndEta) {
  Progress p("train", 10, "step");
  p.update(5, "loss=1.0");
  const std::string line = p.render();
  EXPECT_NE(line.find("train  50% |############            | 5/10 ["), std::string::npos) << line;
  EXPECT_NE(line.find("step/s]"), std::string::npos) << line;
  EXPECT_NE(line.find("loss=1.0"), std::string::npos) << line;
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(65), "01:05");
}

TEST(AtomicFile, CommitReplacesAndAbortKeepsOld) {
  TempDir d;
  const std::string p = d.file("sub/out.txt");
  write_file_atomic(p, "first");
  EXPECT_EQ(read_file(p), "first");
  {
    AtomicFile f(p);
    f.write("second, never committed");
    EXPECT_TRUE(std::filesystem::exists(f.temp_path()));
  }
  EXPECT_EQ(read_file(p), "first");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(d.file("sub"))) files += e.is_regular_file();
  EXPECT_EQ(files, 1);  // the temporary is gone
}

TEST(AtomicFile, StaleTemporariesAreRemoved) {
  TempDir d;
  d.write(".out.txt.tmp-12345", "partial");
  d.write("keep.txt", "whole");
  EXPECT_EQ(remove_stale_temporaries(d.path().string()), 1);
  EXPECT_TRUE(std::filesystem::exists(d.file("keep.txt")));
}

TEST(RunLog, AppendsWholeLines) {
  TempDir d;
  {
    RunLog log(d.file("log.txt"), false);
    log.line("one");
    log.line("two");
  }
  const std::string s = read_file(d.file("log.txt"));
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 2);
  EXPECT_NE(s.find(" one\n"), std::string::npos);
  EXPECT_EQ(s.back(), '\n');
}

TEST(Runtime, ParsesDevicesAndDtypes) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  EXPECT_EQ(parse_device("auto").is_cuda(), torch::cuda::is_available());
  EXPECT_EQ(parse_dtype("bf16"), c10::kBFloat16);
  EXPECT_EQ(parse_dtype("float32"), c10::kFloat);
  EXPECT_EQ(parse_dtype("half"), c10::kHalf);
  EXPECT_THROW(parse_device("tpu"), std::invalid_argument);
  EXPECT_THROW(parse_dtype("int8"), std::invalid_argument);
}

TEST(Runtime, ThreadsDefaultToAllCores) {
  const int before = torch::get_num_threads();
  EXPECT_EQ(set_threads(0), available_cores());
  EXPECT_EQ(torch::get_num_threads(), available_cores());
  EXPECT_EQ(set_threads(1), 1);
  set_threads(before);
}

TEST(Runtime, SeedingIsReproducible) {
  seed_everything(42);
  auto a = torch::randn({4});
  seed_everything(42);
  auto b = torch::randn({4});
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(Hashing, Fnv1aMatchesPublishedVectors) {
  // FNV-1a 64-bit test vectors (Fowler/Noll/Vo reference): "" and "a".
  EXPECT_EQ(fnv1a(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a("foobar"), 0x85944171f73967e8ULL);
}

}  // namespace

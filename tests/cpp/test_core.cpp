// Core services: registry, tables, progress, atomic files, run log, devices, hashing, features.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "tandem/core/hash.h"
#include "tandem/core/files.h"
#include "tandem/core/progress.h"
#include "tandem/core/registry.h"
#include "tandem/core/runtime.h"
#include "tandem/data/jsonl.h"
#include "tandem/data/text_classification.h"
#include "tandem/eval/table.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::expect_error;
using tandem::testing::TempDir;

namespace {

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

TEST(Table, CsvQuotesAndMarkdownAligns) {
  Table t({"name", "n", "score"});
  t.add_row({std::string("a,b"), int64_t{3}, 0.5});
  t.add_row({std::string("say \"hi\""), int64_t{-1}, 1.0 / 3.0});
  EXPECT_EQ(t.to_csv(), "name,n,score\n\"a,b\",3,0.5\n\"say \"\"hi\"\"\",-1,0.3333333333\n");
  EXPECT_EQ(t.to_markdown(2),
            "| name | n | score |\n| --- | ---: | ---: |\n| a,b | 3 | 0.50 |\n| say \"hi\" | -1 | 0.33 |\n");
  expect_error<std::invalid_argument>([&] { t.add_row({int64_t{1}}); }, {"1 cells, expected 3"});
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

TEST(Split, HashSplitIsOrderIndependent) {
  std::vector<TextExample> all;
  for (int i = 0; i < 1000; ++i) all.push_back({std::to_string(i), "t", "l"});
  std::vector<TextExample> tr1, te1, tr2, te2;
  split_by_hash(all, 0.2, tr1, te1);
  std::reverse(all.begin(), all.end());
  split_by_hash(all, 0.2, tr2, te2);
  EXPECT_EQ(tr1.size() + te1.size(), 1000u);
  EXPECT_EQ(te1.size(), te2.size());
  EXPECT_NEAR(static_cast<double>(te1.size()) / 1000.0, 0.2, 0.04);
}

TEST(Features, HashedUnigramsAreSublinearAndNormalised) {
  Config c = Config::load_string("type: hashed_ngrams\nbuckets: 1000003\nngram: 1\n", "f.yaml");
  auto f = create<TextFeaturizer>(c);
  // "a a b": tf(a)=2 -> 1+ln2, tf(b)=1 -> 1; then L2-normalised.
  Bags b = f->encode({"A a, b!", ""});
  ASSERT_EQ(b.indices.numel(), 2);
  EXPECT_EQ(b.offsets[0].item<int64_t>(), 0);
  EXPECT_EQ(b.offsets[1].item<int64_t>(), 2);  // the empty text is an empty bag
  const double wa = 1 + std::log(2.0), wb = 1.0, norm = std::sqrt(wa * wa + wb * wb);
  std::map<int64_t, float> got;
  for (int i = 0; i < 2; ++i) got[b.indices[i].item<int64_t>()] = b.weights[i].item<float>();
  const int64_t ia = static_cast<int64_t>(fnv1a("a", 0) % 1000003), ib = static_cast<int64_t>(fnv1a("b", 0) % 1000003);
  EXPECT_NEAR(got.at(ia), wa / norm, 1e-6);
  EXPECT_NEAR(got.at(ib), wb / norm, 1e-6);
}

TEST(Jsonl, BadLineNamesFileAndLine) {
  TempDir d;
  const std::string p = d.write("x.jsonl", "{\"a\": 1}\n\n{\"a\": 2\n{\"a\": 3}\n");
  size_t n = 0;
  expect_error<std::runtime_error>([&] { read_jsonl(p, [&](const nlohmann::json&, size_t) { ++n; }); },
                                   {p + ":3: malformed JSON"});
  JsonlOptions skip;
  skip.skip_bad_lines = true;
  std::vector<size_t> lines;
  auto st = read_jsonl(p, [&](const nlohmann::json&, size_t l) { lines.push_back(l); }, skip);
  EXPECT_EQ(st.records, 2u);
  EXPECT_EQ(st.skipped, 1u);
  EXPECT_EQ(lines, (std::vector<size_t>{1, 4}));
}

}  // namespace

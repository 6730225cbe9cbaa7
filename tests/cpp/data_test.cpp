// data: hash splits, JSONL errors, hashed n-gram features.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "tandem/core/files.h"
#include "tandem/core/hash.h"
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

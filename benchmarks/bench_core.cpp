// Google Benchmark: tandem's core I/O and featurization paths, with the plain alternative
// measured in the same binary where one exists (torch::save/load vs safetensors mmap).
#include <benchmark/benchmark.h>

#include <filesystem>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/registry.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/data/text_classification.h"

namespace {

std::string tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tandem-bench-" + name)).string();
}

std::vector<std::pair<std::string, at::Tensor>> make_state(int64_t mb) {
  std::vector<std::pair<std::string, at::Tensor>> ts;
  const int64_t per = 1 << 18;  // 1 MiB of float32 per tensor
  for (int64_t i = 0; i < mb; ++i) ts.emplace_back("layer." + std::to_string(i) + ".weight", torch::randn({per}));
  return ts;
}

void BM_SafetensorsLoadMmap(benchmark::State& st) {
  const std::string p = tmp_path("load.safetensors");
  tandem::save_safetensors(p, make_state(st.range(0)));
  for (auto _ : st) {
    auto f = tandem::load_safetensors(p, true);
    benchmark::DoNotOptimize(f.tensors.size());
  }
  st.SetBytesProcessed(st.iterations() * st.range(0) * (1 << 20));
}
BENCHMARK(BM_SafetensorsLoadMmap)->Arg(64);

void BM_SafetensorsLoadCopy(benchmark::State& st) {
  const std::string p = tmp_path("load.safetensors");
  tandem::save_safetensors(p, make_state(st.range(0)));
  for (auto _ : st) {
    auto f = tandem::load_safetensors(p, false);
    benchmark::DoNotOptimize(f.tensors.size());
  }
  st.SetBytesProcessed(st.iterations() * st.range(0) * (1 << 20));
}
BENCHMARK(BM_SafetensorsLoadCopy)->Arg(64);

// The plain LibTorch alternative: torch::save / torch::load of the same tensors.
void BM_TorchLoad(benchmark::State& st) {
  const std::string p = tmp_path("load.pt");
  std::vector<at::Tensor> ts;
  for (auto& kv : make_state(st.range(0))) ts.push_back(kv.second);
  torch::save(ts, p);
  for (auto _ : st) {
    std::vector<at::Tensor> back;
    torch::load(back, p);
    benchmark::DoNotOptimize(back.size());
  }
  st.SetBytesProcessed(st.iterations() * st.range(0) * (1 << 20));
}
BENCHMARK(BM_TorchLoad)->Arg(64);

void BM_SafetensorsSave(benchmark::State& st) {
  const std::string p = tmp_path("save.safetensors");
  auto state = make_state(st.range(0));
  for (auto _ : st) tandem::save_safetensors(p, state);
  st.SetBytesProcessed(st.iterations() * st.range(0) * (1 << 20));
}
BENCHMARK(BM_SafetensorsSave)->Arg(64);

void BM_HashedNgrams(benchmark::State& st) {
  auto cfg = tandem::Config::load_string("type: hashed_ngrams\nbuckets: 16384\nngram: 2\n", "bench.yaml");
  auto f = tandem::create<tandem::TextFeaturizer>(cfg);
  std::vector<std::string> texts(st.range(0),
                                 "Which of the following best describes the role of enzymes in chemical reactions "
                                 "within living cells, considering activation energy?");
  for (auto _ : st) benchmark::DoNotOptimize(f->encode(texts).indices.numel());
  st.SetItemsProcessed(st.iterations() * st.range(0));
}
BENCHMARK(BM_HashedNgrams)->Arg(128);

}  // namespace

#include "tandem/core/runtime.h"

#include <atomic>

#include <sched.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include <torch/torch.h>

#include "tandem/core/config.h"

namespace tandem {

c10::Device parse_device(const std::string& text) {
  if (text == "auto") return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  c10::Device dev(c10::kCPU);
  try {
    dev = c10::Device(text);
  } catch (const std::exception&) {
    throw std::invalid_argument("expected one of cpu, cuda, cuda:N, mps, auto");
  }
  if (dev.is_cuda()) {
    if (!torch::cuda::is_available())
      throw std::invalid_argument("a device this machine has (cpu or auto); CUDA was requested but this torch "
                                  "build sees no CUDA device");
    if (dev.has_index() && dev.index() >= static_cast<int>(torch::cuda::device_count()))
      throw std::invalid_argument("a CUDA index below " + std::to_string(torch::cuda::device_count()) +
                                  " (the number of CUDA devices here)");
  } else if (dev.is_mps()) {
    if (!at::hasMPS())
      throw std::invalid_argument("a device this machine has (cpu or auto); mps was requested but this torch build "
                                  "or machine has no Apple MPS device");
  } else if (!dev.is_cpu()) {
    throw std::invalid_argument("expected one of cpu, cuda, cuda:N, mps, auto");
  }
  return dev;
}

c10::ScalarType parse_dtype(const std::string& text) {
  static const std::map<std::string, c10::ScalarType> table = {
      {"float32", c10::kFloat},   {"fp32", c10::kFloat},    {"float", c10::kFloat},
      {"bfloat16", c10::kBFloat16}, {"bf16", c10::kBFloat16},
      {"float16", c10::kHalf},    {"fp16", c10::kHalf},     {"half", c10::kHalf},
      {"float64", c10::kDouble},  {"fp64", c10::kDouble},
  };
  auto it = table.find(text);
  if (it == table.end()) throw std::invalid_argument("expected one of float32, bfloat16, float16, float64");
  return it->second;
}

std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return "float32";
    case c10::kBFloat16: return "bfloat16";
    case c10::kHalf: return "float16";
    case c10::kDouble: return "float64";
    default: return c10::toString(t);
  }
}

void seed_everything(uint64_t seed) {
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

int set_threads(int requested) {
  // torch's cpuinfo can undercount cores on some VMs; we decide the count ourselves.
  int n = requested > 0 ? requested : available_cores();
  torch::set_num_threads(n);
  return n;
}

std::string data_root() {
  if (const char* env = std::getenv("TANDEM_DATA"); env && *env) return env;
  return "../shared/data";
}

namespace {
std::mutex inputs_mu;
std::vector<std::string> inputs;
}  // namespace

void note_input(const std::string& kind, const std::string& path) {
  std::error_code ec;
  const std::string line = kind + ": " + std::filesystem::absolute(path, ec).lexically_normal().string();
  std::lock_guard<std::mutex> lock(inputs_mu);
  if (std::find(inputs.begin(), inputs.end(), line) == inputs.end()) inputs.push_back(line);
}

std::vector<std::string> inputs_read() {
  std::lock_guard<std::mutex> lock(inputs_mu);
  return inputs;
}

void clear_inputs_read() {
  std::lock_guard<std::mutex> lock(inputs_mu);
  inputs.clear();
}

std::string resolve_data_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string chosen;
  if (fs::path(path).is_absolute() || path.rfind("./", 0) == 0 || path.rfind("../", 0) == 0) {
    chosen = path;
  } else {
    const fs::path under_root = fs::path(data_root()) / path;
    const bool here = fs::exists(path, ec), there = fs::exists(under_root, ec);
    if (here && there && !fs::equivalent(path, under_root, ec))
      throw std::invalid_argument("data path '" + path + "' names two files: " + fs::absolute(path, ec).string() +
                                  " (working directory) and " + fs::absolute(under_root, ec).string() +
                                  " (data root, $TANDEM_DATA); write './" + path + "' or an absolute path");
    chosen = here && !there ? path : under_root.string();
  }
  note_input("data", chosen);
  return fs::absolute(chosen, ec).lexically_normal().string();
}

namespace {
// parse_* messages read "expected X"; Config::fail adds its own "expected".
std::string strip_expected(const std::string& msg) {
  const std::string prefix = "expected ";
  return msg.rfind(prefix, 0) == 0 ? msg.substr(prefix.size()) : msg;
}
}  // namespace

RuntimeOptions RuntimeOptions::from_config(const Config& cfg) {
  RuntimeOptions o;
  const RuntimeKeys keys = RuntimeKeys::from_config(cfg);
  try {
    o.device = parse_device(keys.device);
  } catch (const std::invalid_argument& e) {
    cfg.fail("device", strip_expected(e.what()));
  }
  try {
    o.dtype = parse_dtype(keys.dtype);
  } catch (const std::invalid_argument& e) {
    cfg.fail("dtype", strip_expected(e.what()));
  }
  o.seed = static_cast<uint64_t>(keys.seed);
  o.threads = static_cast<int>(keys.threads);
  o.decode_kernels = parse_decode_kernels(keys.decode_kernels);
  o.cpu_kernels = parse_cpu_kernels(keys.cpu_kernels);
  return o;
}

void RuntimeOptions::apply() const {
  seed_everything(seed);
  set_threads(threads);
  set_decode_kernels(decode_kernels);
  set_cpu_kernels(cpu_kernels);
}

namespace {
std::atomic<int> g_decode_kernels{0};
std::atomic<int> g_cpu_kernels{0};
}

DecodeKernels decode_kernels() { return static_cast<DecodeKernels>(g_decode_kernels.load(std::memory_order_relaxed)); }
void set_decode_kernels(DecodeKernels k) { g_decode_kernels.store(static_cast<int>(k), std::memory_order_relaxed); }
DecodeKernels parse_decode_kernels(const std::string& text) {
  if (text == "exact") return DecodeKernels::kExact;
  if (text == "int8_activations") return DecodeKernels::kInt8Activations;
  throw std::invalid_argument("decode_kernels: expected exact or int8_activations, got \"" + text + "\"");
}

CpuKernels cpu_kernels() { return static_cast<CpuKernels>(g_cpu_kernels.load(std::memory_order_relaxed)); }
void set_cpu_kernels(CpuKernels k) { g_cpu_kernels.store(static_cast<int>(k), std::memory_order_relaxed); }
CpuKernels parse_cpu_kernels(const std::string& text) {
  if (text == "auto") return CpuKernels::kAuto;
  if (text == "portable") return CpuKernels::kPortable;
  throw std::invalid_argument("cpu_kernels: expected auto or portable, got \"" + text + "\"");
}

}  // namespace tandem

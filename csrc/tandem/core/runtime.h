// Runtime settings every run shares: device, dtype, seed, threads, data and model roots.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "tandem/core/options.h"

namespace tandem {

/// Parses "cpu", "cuda", "cuda:N", "mps" or "auto" (CUDA when available, else CPU).
/// Throws std::invalid_argument saying what was expected, or that the device is absent.
c10::Device parse_device(const std::string& text);
/// Parses float32/fp32/float, bfloat16/bf16, float16/fp16/half, float64.
c10::ScalarType parse_dtype(const std::string& text);
std::string dtype_name(c10::ScalarType t);

/// Seeds torch (CPU and CUDA) and tandem's own generators; same seed -> same run.
void seed_everything(uint64_t seed);
/// Sets torch's intra-op threads; 0 means every core this process may use.
int set_threads(int requested);
/// Cores this process may run on (sched_getaffinity), at least 1.
int available_cores();

/// Root of the datasets: $TANDEM_DATA, else ../shared/data (relative to the working directory).
std::string data_root();
/// The absolute path of a data file named in a config: absolute paths and ones starting with
/// "./" or "../" as written; any other relative path under data_root(), or relative to the
/// working directory when only there. A name found in both places is an error naming both
/// (which one was meant cannot be guessed). Every resolved path is recorded (inputs_read()).
std::string resolve_data_path(const std::string& path);

/// Records that this process read `path` as `kind` ("data", "model"); the runner logs them all.
void note_input(const std::string& kind, const std::string& path);
/// "kind: absolute path" for every input noted since the last clear, in first-seen order.
std::vector<std::string> inputs_read();
void clear_inputs_read();

/// How quantized weights multiply activations when decoding on the CPU: "exact" (float32 math on
/// the exact dequantized weights, the default) or "int8_activations" (activations quantized per
/// 32 values to int8 and integer dot products, as llama.cpp runs them; for Q4_0, Q4_1 and Q8_0
/// weights, other types stay exact). Process-wide, set from the config by RuntimeOptions::apply.
enum class DecodeKernels { kExact, kInt8Activations };
DecodeKernels decode_kernels();
void set_decode_kernels(DecodeKernels k);
DecodeKernels parse_decode_kernels(const std::string& text);

/// Which instructions the packed CPU kernels use: "auto" (AVX-512 where the CPU has it, else the
/// portable Eigen kernels: AVX2, SSE2 or NEON) or "portable" (the Eigen kernels even on an
/// AVX-512 CPU: what a laptop without AVX-512 runs, measurable here). Process-wide, like
/// decode_kernels.
enum class CpuKernels { kAuto, kPortable };
CpuKernels cpu_kernels();
void set_cpu_kernels(CpuKernels k);
CpuKernels parse_cpu_kernels(const std::string& text);

/// Settings read from the top level of a run config (device, dtype, seed, threads).
/// The runtime keys at the root of every config, as written.
struct RuntimeKeys {
  std::string device = "auto";
  std::string dtype = "float32";
  int64_t seed = 0;
  int64_t threads = 0;
  std::string decode_kernels = "exact";
  std::string cpu_kernels = "auto";
  template <class V>
  void visit(V& v) {
    v.field("device", device, "cpu, cuda, cuda:N, mps or auto (the best available)");
    v.field("dtype", dtype, "float32, bfloat16 or float16: the models' parameters and activations");
    v.field("seed", seed, "seeds every random stream (data order, initialisation, sampling)", NonNegative{});
    v.field("threads", threads, "CPU threads (0 = all cores)", NonNegative{});
    v.field("decode_kernels", decode_kernels,
            "exact (float32 math on the dequantized weights) or int8_activations (llama.cpp's 8-bit activations, "
            "Q4_0/Q4_1/Q8_0 weights): how CPU decoding multiplies quantized weights",
            OneOf{{"exact", "int8_activations"}});
    v.field("cpu_kernels", cpu_kernels,
            "auto (AVX-512 where the CPU has it, else the portable Eigen kernels) or portable (the Eigen kernels "
            "everywhere): the instructions of CPU decoding's packed kernels",
            OneOf{{"auto", "portable"}});
  }
  TANDEM_OPTIONS(RuntimeKeys)
};

struct RuntimeOptions {
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype{c10::kFloat};
  uint64_t seed{0};
  int threads{0};
  DecodeKernels decode_kernels{DecodeKernels::kExact};
  CpuKernels cpu_kernels{CpuKernels::kAuto};
  /// Reads `device`, `dtype`, `seed`, `threads`, `decode_kernels`, `cpu_kernels` from `cfg`; errors name the key and line.
  static RuntimeOptions from_config(const Config& cfg);
  /// Applies seed, threads and decode kernels to this process.
  void apply() const;
};

}  // namespace tandem

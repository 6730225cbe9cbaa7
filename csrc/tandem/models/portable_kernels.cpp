#include "tandem/models/portable_kernels.h"

namespace tandem::portable {
namespace {

// The AVX2 build needs AVX2, FMA and F16C (the compiler may use any of them anywhere in it).
bool cpu_runs_avx2_build() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return ok && avx2::rows_for(gguf::GgmlType::Q4_0) != nullptr;
#else
  return false;
#endif
}

}  // namespace

RowsFn rows_for(gguf::GgmlType type) { return cpu_runs_avx2_build() ? avx2::rows_for(type) : baseline::rows_for(type); }

std::string instruction_sets() {
  return cpu_runs_avx2_build() ? std::string("avx2 build (") + avx2::simd() + ")" : std::string("baseline build (") + baseline::simd() + ")";
}

}  // namespace tandem::portable

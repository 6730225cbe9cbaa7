// The portable kernels built for AVX2 + FMA + F16C (CMake adds those flags to this file on
// x86-64 only); on other targets this build is absent and rows_for returns nullptr.
#include "tandem/models/portable_kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#define TANDEM_PORTABLE_BUILD avx2
#include "tandem/models/portable_kernels_impl.h"
#else
namespace tandem::portable::avx2 {
RowsFn rows_for(gguf::GgmlType) { return nullptr; }
const char* simd() { return ""; }
}  // namespace tandem::portable::avx2
#endif

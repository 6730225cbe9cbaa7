// The CausalLM registry (one per process, shared by the library and the Python module) and
// the members every architecture inherits.
#include "tandem/models/causal_lm.h"

namespace tandem {

TANDEM_DEFINE_REGISTRY(CausalLM);

int64_t CausalLM::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace tandem

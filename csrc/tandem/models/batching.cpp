#include "tandem/models/batching.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace tandem {

PaddedBatch pad_batch(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id, PadSide side, int64_t width) {
  int64_t L = width;
  for (const auto& s : seqs) {
    const int64_t n = static_cast<int64_t>(s.size());
    if (width > 0 && n > width)
      throw std::invalid_argument("pad_batch: a sequence of " + std::to_string(n) + " tokens exceeds the width " +
                                  std::to_string(width));
    L = std::max(L, n);
  }
  const int64_t B = static_cast<int64_t>(seqs.size());
  PaddedBatch out{torch::full({B, L}, pad_id, torch::kLong), torch::zeros({B, L}, torch::kLong)};
  int64_t* ip = out.ids.data_ptr<int64_t>();
  int64_t* mp = out.mask.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[static_cast<size_t>(b)];
    const int64_t off = side == PadSide::kLeft ? L - static_cast<int64_t>(s.size()) : 0;
    std::copy(s.begin(), s.end(), ip + b * L + off);
    std::fill(mp + b * L + off, mp + b * L + off + static_cast<int64_t>(s.size()), 1);
  }
  return out;
}

void truncate_keeping_last(std::vector<int64_t>& ids, int64_t max_tokens) {
  if (static_cast<int64_t>(ids.size()) <= max_tokens || max_tokens <= 0) return;
  const int64_t last = ids.back();
  ids.resize(static_cast<size_t>(max_tokens - 1));
  ids.push_back(last);
}

}  // namespace tandem

// Padding token sequences into one batch: the one place tandem pads (generation, scoring,
// backbone states, encoder features).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace tandem {

/// Left padding lines every sequence up at the right edge (generation and scoring read the last
/// positions); right padding keeps each sequence's positions 0..n-1 (training states, encoders).
enum class PadSide { kLeft, kRight };

struct PaddedBatch {
  at::Tensor ids;   ///< [B, T] long, `pad_id` where no token
  at::Tensor mask;  ///< [B, T] long, 1 = token
};

/// Pads `seqs` to width `width` (0 = the longest sequence); a sequence longer than `width` is an
/// error. CPU tensors; callers move them to the model's device.
PaddedBatch pad_batch(const std::vector<std::vector<int64_t>>& seqs, int64_t pad_id, PadSide side, int64_t width = 0);

/// Cuts `ids` to `max_tokens` keeping its last token (an encoder's closing [SEP]).
void truncate_keeping_last(std::vector<int64_t>& ids, int64_t max_tokens);

}  // namespace tandem

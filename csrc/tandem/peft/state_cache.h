// StateCache: backbone hidden states on disk, keyed by content, under a byte budget.
// The backbone is frozen, so the states it computes for a training example never change: they
// are exactly what the cloud would send the device, computed once and reused by every epoch and
// every method (SPA, LST, routers) that trains on the same examples. Entries are safetensors
// files, written atomically; beyond the budget the least recently used entries are evicted,
// and an entry larger than the whole budget is simply not stored (callers recompute it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace tandem {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class StateCache {
 public:
  /// `dir` is created when missing; `budget_bytes` <= 0 disables storing (lookups still work).
  StateCache(std::string dir, int64_t budget_bytes);

  /// Whether an entry exists under `key` (no file is read).
  bool contains(const std::string& key) const;
  /// The tensors stored under `key` (memory-mapped), or nothing.
  std::optional<NamedTensors> lookup(const std::string& key);
  /// Stores `tensors` under `key`; returns false when the entry alone exceeds the budget.
  bool put(const std::string& key, const NamedTensors& tensors);

  int64_t bytes() const { return bytes_; }
  int64_t budget() const { return budget_; }
  int64_t hits = 0, misses = 0, evictions = 0;
  const std::string& dir() const { return dir_; }

 private:
  std::string path_of(const std::string& key) const;
  void evict_to(int64_t target);

  std::string dir_;
  int64_t budget_, bytes_ = 0;
};

}  // namespace tandem

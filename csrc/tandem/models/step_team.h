// The threads of one decode step, held together for the whole step.
//
// A batch-1 decode step of a small model is ~150 short parallel products, attentions and
// elementwise passes. Run one parallel region each, every region's fork and join costs a
// wake-up, and each serial piece between them (norms, the activations' quantization, the torch
// dispatches of a product) leaves the other core spinning: a profile of SmolLM2-135M's int8 step
// (perf, 2 threads) found the second thread waiting for a third of the step. A team instead
// enters one region per step; its threads each compute their share of every product, the cheap
// per-token work twice (each thread its own normed and quantized input), and meet at a spinning
// barrier where one thread's results feed all of them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <utility>

namespace tandem {

class StepTeam {
 public:
  /// Runs body(tid) on up to `threads` threads (an OpenMP region: the pool torch's own
  /// parallel_for uses), tid 0 the calling thread; returns when all have returned. An exception
  /// in any thread releases the others from their barriers and is rethrown here.
  void run(int threads, const std::function<void(int tid)>& body);

  /// Threads in the running team.
  int size() const { return size_; }
  /// Waits until every thread of the team arrived; what each wrote before is then visible to all.
  void sync();
  /// Thread `tid`'s share [begin, end) of n items, split in whole units of `unit` (the last
  /// share ends at n).
  std::pair<int64_t, int64_t> share(int64_t n, int tid, int64_t unit = 1) const;

 private:
  int size_ = 1;
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<int> generation_{0};
  alignas(64) std::atomic<bool> aborted_{false};
};

}  // namespace tandem

#include "tandem/models/step_team.h"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>

#include <immintrin.h>
#include <omp.h>

namespace tandem {

namespace {
constexpr int kSpins = 256;  // ~10 us of PAUSE on this CPU before the first yield
struct Aborted {};  // thrown in the threads a failed thread left waiting
}  // namespace

void StepTeam::run(int threads, const std::function<void(int tid)>& body) {
  std::exception_ptr error;
  std::mutex m;
  arrived_ = 0;
  aborted_ = false;
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
  {
#pragma omp single
    size_ = omp_get_num_threads();  // fewer than asked inside another region; single ends in a barrier
    try {
      body(omp_get_thread_num());
    } catch (const Aborted&) {
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!error) error = std::current_exception();
      aborted_ = true;
    }
  }
  size_ = 1;
  if (error) std::rethrow_exception(error);
}

void StepTeam::sync() {
  if (size_ == 1) return;
  const int gen = generation_.load(std::memory_order_acquire);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) == size_ - 1) {
    arrived_.store(0, std::memory_order_relaxed);
    generation_.store(gen + 1, std::memory_order_release);
    return;
  }
  // Spin first (the other threads are usually microseconds away), then yield the core between
  // looks: with more threads than free cores a pure spin keeps the thread being waited for off
  // its core for a whole time slice (the team test, whose cases include 3 threads on this
  // machine's 2 cores: 13.6 s with a pure spin, 0.2 s with the yield).
  for (int spins = 0; generation_.load(std::memory_order_acquire) == gen; ++spins) {
    if (aborted_.load(std::memory_order_relaxed)) throw Aborted{};
    if (spins < kSpins) _mm_pause();
    else std::this_thread::yield();
  }
}

std::pair<int64_t, int64_t> StepTeam::share(int64_t n, int tid, int64_t unit) const {
  const int64_t units = (n + unit - 1) / unit;
  const int64_t u0 = units * tid / size_, u1 = units * (tid + 1) / size_;
  return {std::min(n, u0 * unit), std::min(n, u1 * unit)};
}

}  // namespace tandem

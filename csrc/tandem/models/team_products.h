// The products of a team step (step_team.h): each thread computes its share of every weight's
// rows from its own copy of the input, then the team meets at a barrier.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/record_function.h>

#include "tandem/models/decode_step_ops.h"
#include "tandem/models/int8_tiles.h"
#include "tandem/models/packed_matmul.h"
#include "tandem/models/step_team.h"

namespace tandem::decoder {

/// One thread's input row of the next products: a row it normed itself, or a shared buffer;
/// quantized (quantize_q8) on the first product that reads it so.
class TeamInput {
 public:
  void set(const float* x, int64_t n) {
    x_ = x;
    n_ = n;
    quantized_ = false;
  }
  void norm_of(const float* x, const float* w, int64_t n, float eps) {
    own_.resize(static_cast<size_t>(n));
    rms_norm_row(x, w, n, eps, own_.data());
    set(own_.data(), n);
  }
  const float* row() const { return x_; }
  const Q8Activations& q8() {
    if (!quantized_) quantize_q8(x_, n_ / 32, q_);
    quantized_ = true;
    return q_;
  }

 private:
  const float* x_ = nullptr;
  int64_t n_ = 0;
  bool quantized_ = false;
  std::vector<float> own_;
  Q8Activations q_;
};

/// A packed weight and its bias (w->rows values, or null) in a team product.
struct TeamPart {
  const PackedWeight* w;
  const float* bias;
};

/// Thread `tid`'s share of the rows of each part (groups of 16: the int8 tiles' unit), written
/// to y, the parts' outputs one after another: row r of a part becomes y[r] (+ bias[r], the one
/// rounding of `y + b`).
inline void team_rows(const StepTeam& team, int tid, const std::vector<TeamPart>& parts, TeamInput& in, float* y) {
  static const Q8Activations unused;
  for (const auto& p : parts) {
    const auto [r0, r1] = team.share(p.w->rows, tid, 16);
    if (r0 < r1) {
      packed_row_range(*p.w, in.row(), packed_reads_q8(*p.w) ? in.q8() : unused, y, r0, r1);
      if (p.bias)
        for (int64_t r = r0; r < r1; ++r) y[r] = y[r] + p.bias[r];
    }
    y += p.w->rows;
  }
}

/// team_rows for one weight whose output is added to the residual stream: x[r] = x[r] + y[r]
/// for this thread's rows (the rounding of the layer loop's `x + proj(...)`).
inline void team_rows_into_stream(const StepTeam& team, int tid, const TeamPart& part, TeamInput& in, float* y, float* x) {
  team_rows(team, tid, {part}, in, y);
  const auto [r0, r1] = team.share(part.w->rows, tid, 16);
  for (int64_t r = r0; r < r1; ++r) x[r] = x[r] + y[r];
}

/// A profiler span (as TANDEM_SPAN) that only the team's first thread opens: a profile then
/// times each phase once, its barrier waits included.
class TeamSpan {
 public:
  TeamSpan(int tid, const char* name) {
    if (tid != 0) return;
    span_.emplace(at::RecordScope::FUNCTION);
    if (span_->isActive()) span_->before(name, c10::ArrayRef<const c10::IValue>{});
  }

 private:
  std::optional<at::RecordFunction> span_;
};

}  // namespace tandem::decoder

#include "tandem/models/team_step.h"

#include <optional>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include "tandem/models/decode_step_ops.h"
#include "tandem/models/int8_tiles.h"
#include "tandem/models/kv_cache.h"
#include "tandem/models/step_team.h"

namespace tandem::decoder {

namespace {

// One thread's input row of the next products: a row it normed itself, or a shared buffer;
// quantized (quantize_q8) on the first product that reads it so.
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

// Thread `tid`'s rows of one weight: groups of 16 (the int8 tiles' unit).
std::pair<int64_t, int64_t> rows_of(const StepTeam& team, int tid, const TeamPart& p) { return team.share(p.w->rows, tid, 16); }

// Thread `tid`'s share of the rows of each part, into y (the parts' outputs one after another):
// row r of a part becomes y[r] (+ bias[r], the one rounding of the layer loop's `y + b`).
void team_rows(const StepTeam& team, int tid, const std::vector<TeamPart>& parts, TeamInput& in, float* y) {
  static const Q8Activations unused;
  for (const auto& p : parts) {
    const auto [r0, r1] = rows_of(team, tid, p);
    if (r0 < r1) {
      packed_row_range(*p.w, in.row(), packed_reads_q8(*p.w) ? in.q8() : unused, y, r0, r1);
      if (p.bias)
        for (int64_t r = r0; r < r1; ++r) y[r] = y[r] + p.bias[r];
    }
    y += p.w->rows;
  }
}

// A profiler span (as TANDEM_SPAN) that only the team's first thread opens: a profile then times
// each phase once, its barrier waits included.
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

}  // namespace

TeamModel team_model(const ModelConfig& cf, double scale) {
  TeamModel m;
  m.hidden = cf.hidden_size;
  m.intermediate = cf.intermediate_size;
  m.heads = cf.num_heads;
  m.kv_heads = cf.num_kv_heads;
  m.head_dim = cf.head_dim;
  m.eps = static_cast<float>(cf.rms_norm_eps);
  m.scale = static_cast<float>(scale);
  return m;
}

void team_step(float* x, const TeamModel& m, const std::vector<TeamLayer>& layers, KVCache& cache) {
  const int64_t H = m.hidden, I = m.intermediate, D = m.head_dim, nh = m.heads, nkv = m.kv_heads;
  std::vector<float> qkv(static_cast<size_t>((nh + 2 * nkv) * D)), a(static_cast<size_t>(nh * D)), gu(static_cast<size_t>(2 * I)),
      act(static_cast<size_t>(I)), y(static_cast<size_t>(H));
  float *q = qkv.data(), *k = q + nh * D, *v = k + nkv * D;
  TokenAttention attn{nh, nkv, D};
  attn.eps = m.eps;
  attn.scale = m.scale;
  NewTokenKeys keys{};
  const int threads = at::get_num_threads();
  std::vector<TeamInput> inputs(static_cast<size_t>(threads));
  std::vector<std::vector<float>> normed(static_cast<size_t>(threads));
  StepTeam team;

  // A product's output into the residual stream, each thread its rows: x[r] = x[r] + y[r], or
  // with Gemma's norm of the whole output first (every thread norms it, after a barrier).
  const auto into_stream = [&](int tid, const TeamPart& part, const float* post_norm) {
    const auto [r0, r1] = rows_of(team, tid, part);
    const float* add = y.data();
    if (post_norm) {
      team.sync();
      auto& z = normed[static_cast<size_t>(tid)];
      z.resize(static_cast<size_t>(H));
      rms_norm_row(y.data(), post_norm, H, m.eps, z.data());
      add = z.data();
    }
    for (int64_t r = r0; r < r1; ++r) x[r] = x[r] + add[r];
  };

  team.run(threads, [&](int tid) {
    TeamInput& in = inputs[static_cast<size_t>(tid)];
    for (size_t i = 0; i < layers.size(); ++i) {
      const TeamLayer& L = layers[i];
      // 1. Attention: each thread norms the stream and computes its rows of q|k|v; one thread
      // applies the per-head norms and RoPE and writes the cache; each attends with its heads.
      {
        TeamSpan span(tid, "tandem::norm");
        in.norm_of(x, L.ln_in, H, m.eps);
      }
      {
        TeamSpan span(tid, "tandem::qkv_proj");
        team_rows(team, tid, L.qkv, in, qkv.data());
        team.sync();
      }
      {
        TeamSpan span(tid, "tandem::attention");
        if (tid == 0) {
          attn.q_norm = L.q_norm;
          attn.k_norm = L.k_norm;
          const bool local = L.local_rope && m.cos_local;
          attn.cos = local ? m.cos_local : m.cos;
          attn.sin = local ? m.sin_local : m.sin;
          attn.rd = local ? m.rd_local : m.rd;
          keys = store_new_token(attn, q, k, v, cache, static_cast<int64_t>(i));
        }
        team.sync();
        const auto [h0, h1] = team.share(nh, tid);
        attend_heads(attn, q, keys, a.data(), h0, h1);
        team.sync();
      }
      // 2. o (and Gemma's norm of it) and the residual add, each thread its rows.
      {
        TeamSpan span(tid, "tandem::o_proj");
        in.set(a.data(), nh * D);
        team_rows(team, tid, {L.o}, in, y.data());
        into_stream(tid, L.o, L.ln_post_attn);
        team.sync();
      }
      // 3. MLP: norm, gate|up rows, the activation times up (each thread its share), down rows
      // (and Gemma's norm of them) and the residual add.
      {
        TeamSpan span(tid, "tandem::norm");
        in.norm_of(x, L.ln_pre_ff, H, m.eps);
      }
      TeamSpan span(tid, "tandem::mlp");
      team_rows(team, tid, L.gate_up, in, gu.data());
      team.sync();
      // Shares in units of 64: torch's elementwise loops take 32 values per vector step and the
      // remainder through a scalar formula that may round differently; shares aligned so keep
      // every value on the path the whole-row call puts it on.
      const auto [j0, j1] = team.share(I, tid, 64);
      if (j0 < j1) {
        const auto opts = torch::TensorOptions().dtype(torch::kFloat);
        auto out = torch::from_blob(act.data() + j0, {j1 - j0}, opts);
        torch::mul_out(out, m.act(torch::from_blob(gu.data() + j0, {j1 - j0}, opts)),
                       torch::from_blob(gu.data() + I + j0, {j1 - j0}, opts));
      }
      team.sync();
      in.set(act.data(), I);
      team_rows(team, tid, {L.down}, in, y.data());
      into_stream(tid, L.down, L.ln_post_ff);
      team.sync();
    }
  });
}

}  // namespace tandem::decoder

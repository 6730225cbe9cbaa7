#include "tandem/models/rope.h"

#include "tandem/models/decode_step_ops.h"

#include <cmath>

namespace tandem::decoder {
namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

double yarn_mscale(double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; }

}  // namespace

torch::Tensor RotaryEmbedding::base_freq(double theta) const {
  return 1.0 / torch::pow(theta, torch::arange(0, dim_, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim_));
}

RotaryEmbedding::RotaryEmbedding(const ModelConfig& c, const RopeScaling& scaling, double theta, int64_t head_dim)
    : s_(scaling), theta_(theta), max_positions_(c.max_positions) {
  dim_ = static_cast<int64_t>(static_cast<double>(head_dim) * c.partial_rotary_factor);
  if (dim_ < 2 || dim_ % 2 != 0 || dim_ > head_dim)
    throw std::runtime_error(c.source + ": partial_rotary_factor " + std::to_string(c.partial_rotary_factor) +
                             " gives a rotary size of " + std::to_string(dim_) + " for head size " + std::to_string(head_dim));
  const int64_t orig = s_.original_max_positions > 0 ? s_.original_max_positions : c.max_positions;
  inv_freq_ = base_freq(theta);
  const std::string& t = s_.type;
  if (t == "default") {
  } else if (t == "linear") {
    inv_freq_ = inv_freq_ / s_.factor;
  } else if (t == "dynamic") {
    cached_len_ = max_positions_;  // grown in tables() once a sequence is longer
  } else if (t == "llama3") {
    const double low_wavelen = static_cast<double>(orig) / s_.low_freq_factor;
    const double high_wavelen = static_cast<double>(orig) / s_.high_freq_factor;
    auto wavelen = 2 * M_PI / inv_freq_;
    auto scaled = torch::where(wavelen > low_wavelen, inv_freq_ / s_.factor, inv_freq_);
    auto smooth = (static_cast<double>(orig) / wavelen - s_.low_freq_factor) / (s_.high_freq_factor - s_.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / s_.factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen);
    inv_freq_ = torch::where(medium, smoothed, scaled);
  } else if (t == "yarn") {
    // HF: without a factor in the file, the ratio of the context lengths.
    if (!s_.factor_set) s_.factor = static_cast<double>(max_positions_) / static_cast<double>(orig);
    attention_factor_ = s_.attention_factor > 0 ? s_.attention_factor
                        : (s_.mscale != 0 && s_.mscale_all_dim != 0)
                            ? yarn_mscale(s_.factor, s_.mscale) / yarn_mscale(s_.factor, s_.mscale_all_dim)
                            : yarn_mscale(s_.factor, 1.0);
    auto correction = [&](double rotations) {
      return (static_cast<double>(dim_) * std::log(static_cast<double>(orig) / (rotations * 2 * M_PI))) / (2 * std::log(theta));
    };
    double low = correction(s_.beta_fast), high = correction(s_.beta_slow);
    if (s_.truncate) low = std::floor(low), high = std::ceil(high);
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim_ - 1));
    if (low == high) high += 0.001;
    auto ramp = ((torch::arange(dim_ / 2, torch::kFloat) - low) / (high - low)).clamp(0, 1);
    auto extrapolation = 1 - ramp;
    auto pos_freqs = torch::pow(theta, torch::arange(0, dim_, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim_));
    inv_freq_ = (1.0 / (s_.factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation;
  } else if (t == "longrope") {
    const double factor = s_.factor_set ? s_.factor : static_cast<double>(max_positions_) / static_cast<double>(orig);
    attention_factor_ = s_.attention_factor > 0 ? s_.attention_factor
                        : factor <= 1.0         ? 1.0
                                                : std::sqrt(1 + std::log(factor) / std::log(static_cast<double>(orig)));
    const auto half = static_cast<size_t>(dim_ / 2);
    if (s_.short_factor.size() != half || s_.long_factor.size() != half)
      throw std::runtime_error(c.source + ": longrope short_factor and long_factor need " + std::to_string(half) + " entries each");
    auto shape = torch::arange(0, dim_, 2, torch::kLong).to(torch::kFloat) / static_cast<double>(dim_);
    auto as_tensor = [](const std::vector<double>& v) { return torch::tensor(v, torch::kDouble).to(torch::kFloat); };
    inv_freq_ = 1.0 / (as_tensor(s_.short_factor) * torch::pow(theta, shape));
    long_inv_freq_ = 1.0 / (as_tensor(s_.long_factor) * torch::pow(theta, shape));
    cached_len_ = orig;
  } else {
    throw std::runtime_error(c.source + ": RoPE scaling type \"" + t + "\" is not supported (supported: default, linear, dynamic, llama3, yarn, longrope)");
  }
  if (!s_.freq_factors.empty()) {
    if (static_cast<int64_t>(s_.freq_factors.size()) != dim_ / 2)
      throw std::runtime_error(c.source + ": rope_freqs has " + std::to_string(s_.freq_factors.size()) + " entries for " +
                               std::to_string(dim_ / 2) + " rotary frequencies");
    inv_freq_ = inv_freq_ / torch::tensor(s_.freq_factors, torch::kDouble).to(torch::kFloat);
  }
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::tables(const torch::Tensor& pos, c10::ScalarType dtype) {
  torch::Tensor inv = inv_freq_;
  if (s_.type == "dynamic" || s_.type == "longrope") {
    const int64_t len = pos.numel() ? pos.max().item<int64_t>() + 1 : 0;
    if (s_.type == "longrope") {
      if (len > cached_len_) inv = long_inv_freq_;
    } else if (len > cached_len_) {  // grow (HF's dynamic_frequency_update)
      const double f = s_.factor, d = static_cast<double>(dim_);
      const double base = theta_ * std::pow(f * static_cast<double>(len) / static_cast<double>(max_positions_) - (f - 1), d / (d - 2));
      inv_freq_ = base_freq(base);
      cached_len_ = len;
      inv = inv_freq_;
    } else if (len < max_positions_ && cached_len_ > max_positions_) {  // back to the original scale
      inv_freq_ = base_freq(theta_);
      cached_len_ = max_positions_;
      inv = inv_freq_;
    }
  }
  auto freqs = pos.to(torch::kFloat).unsqueeze(-1) * inv.to(pos.device()).view({1, 1, -1});
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  if (attention_factor_ != 1.0) cos = cos * attention_factor_, sin = sin * attention_factor_;
  return {cos.to(dtype).unsqueeze(1), sin.to(dtype).unsqueeze(1)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const std::pair<torch::Tensor, torch::Tensor>& cs) {
  const int64_t rd = cs.first.size(-1), D = x.size(-1);
  // A decode step's few rows: one loop, the same roundings (decode_step_ops.h).
  if (x.dim() == 4 && decode_sized(x, 16 * x.size(1)) && cs.first.scalar_type() == torch::kFloat) return rotary_rows(x, cs.first, cs.second);
  if (rd == D) return x * cs.first + rotate_half(x) * cs.second;
  auto r = x.narrow(-1, 0, rd);
  return torch::cat({r * cs.first + rotate_half(r) * cs.second, x.narrow(-1, rd, D - rd)}, -1);
}

}  // namespace tandem::decoder

// SSF (scale and shift features): y = gamma * x + beta with per-channel gamma, beta, inserted
// after chosen operations of a frozen encoder; gamma = 1, beta = 0 at the start (identity).
//
// All SSF parameters of a model live in one flat vector laid out by SsfLayout, so that a pool
// of M parameter sets is one [M, P] tensor, an instance-specific set is one [B, P] row per
// example, and aggregation across clients is plain tensor arithmetic.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/models/encoder.h"

namespace tandem {

struct SsfLayout {
  struct Site {
    int64_t layer;
    EncoderSite site;
    int64_t channels;
    int64_t offset;  ///< gamma at [offset, offset + channels), beta right after
  };
  std::vector<Site> sites;
  int64_t size = 0;         ///< P: total parameters (2 * channels summed over sites)
  int64_t first_layer = 0;  ///< lowest layer that carries SSF; layers below it stay untouched

  /// From config keys `layers` (how many of the top layers carry SSF, default 2) and `sites`
  /// (any of attn_out, ffn_hidden, ffn_out, block_out; default all four).
  static SsfLayout for_encoder(const EncoderConfig& enc, const Config& cfg);
  /// The identity parameter vector [P]: gamma = 1, beta = 0.
  torch::Tensor identity(const torch::TensorOptions& opts = {}) const;
  /// A hook applying `params`: [P] (one set for the batch) or [B, P] (one set per instance).
  EncoderHook hook(const torch::Tensor& params) const;
};

/// Site name <-> enum ("attn_out", "ffn_hidden", "ffn_out", "block_out").
EncoderSite encoder_site_from_name(const std::string& name, const std::string& where);
const char* encoder_site_name(EncoderSite s);

}  // namespace tandem

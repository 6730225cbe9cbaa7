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
#include "tandem/core/options.h"
#include "tandem/models/encoder.h"

namespace tandem {

/// `ssf:` where the scale-and-shift parameters sit in the encoder.
struct SsfOptions {
  int64_t layers = 2;
  std::vector<std::string> sites{"attn_out", "ffn_hidden", "ffn_out", "block_out"};
  template <class V>
  void visit(V& v) {
    v.field("layers", layers, "how many of the top encoder layers carry SSF", Positive{});
    v.field("sites", sites, "where in each layer: any of attn_out, ffn_hidden, ffn_out, block_out");
  }
  TANDEM_OPTIONS(SsfOptions)
};

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

  /// The layout `o` describes for `enc`; errors name `cfg` (the `ssf:` node) and the key.
  static SsfLayout for_encoder(const EncoderConfig& enc, const SsfOptions& o, const Config& cfg);
  /// The same, reading the options from `cfg`.
  static SsfLayout for_encoder(const EncoderConfig& enc, const Config& cfg) {
    return for_encoder(enc, SsfOptions::from_config(cfg), cfg);
  }
  /// The identity parameter vector [P]: gamma = 1, beta = 0.
  torch::Tensor identity(const torch::TensorOptions& opts = {}) const;
  /// A hook applying `params`: [P] (one set for the batch) or [B, P] (one set per instance).
  EncoderHook hook(const torch::Tensor& params) const;
};

/// Site name <-> enum ("attn_out", "ffn_hidden", "ffn_out", "block_out").
EncoderSite encoder_site_from_name(const std::string& name, const std::string& where);
const char* encoder_site_name(EncoderSite s);

}  // namespace tandem

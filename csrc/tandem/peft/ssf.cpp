#include "tandem/peft/ssf.h"

#include <array>
#include <stdexcept>

namespace tandem {

namespace {
constexpr std::array<const char*, kNumEncoderSites> kSiteNames = {"attn_out", "ffn_hidden", "ffn_out", "block_out"};
}

const char* encoder_site_name(EncoderSite s) { return kSiteNames.at(static_cast<int>(s)); }

EncoderSite encoder_site_from_name(const std::string& name, const std::string& where) {
  for (int i = 0; i < kNumEncoderSites; ++i)
    if (name == kSiteNames[i]) return static_cast<EncoderSite>(i);
  throw std::invalid_argument(where + ": unknown SSF site \"" + name +
                              "\" (expected attn_out, ffn_hidden, ffn_out or block_out)");
}

SsfLayout SsfLayout::for_encoder(const EncoderConfig& enc, const SsfOptions& o, const Config& cfg) {
  SsfLayout L;
  const int64_t n = o.layers;
  if (n > enc.num_layers)
    throw std::invalid_argument(cfg.where("layers") + ": " + std::to_string(n) + " SSF layers but the encoder has " +
                                std::to_string(enc.num_layers));
  std::vector<EncoderSite> sites;
  for (size_t i = 0; i < o.sites.size(); ++i)
    sites.push_back(encoder_site_from_name(
        o.sites[i], cfg.where("sites") + ": " + (cfg.path().empty() ? "" : cfg.path() + ".") + "sites[" + std::to_string(i) + "]"));
  if (sites.empty()) throw std::invalid_argument(cfg.where("sites") + ": needs at least one site");
  L.first_layer = enc.num_layers - n;
  for (int64_t l = L.first_layer; l < enc.num_layers; ++l)
    for (EncoderSite s : sites) {
      const int64_t c = s == EncoderSite::kFfnHidden ? enc.intermediate_size : enc.hidden_size;
      L.sites.push_back({l, s, c, L.size});
      L.size += 2 * c;
    }
  return L;
}

torch::Tensor SsfLayout::identity(const torch::TensorOptions& opts) const {
  auto p = torch::zeros({size}, opts);
  for (const auto& s : sites) p.narrow(0, s.offset, s.channels).fill_(1.0);
  return p;
}

EncoderHook SsfLayout::hook(const torch::Tensor& params) const {
  TORCH_CHECK(params.size(-1) == size, "SSF parameters have ", params.size(-1), " entries, the layout needs ", size);
  // Index of each (layer, site) into `sites`, or -1: a flat table beats a map on the hot path.
  std::vector<int> index;
  const int64_t layers = sites.empty() ? 0 : sites.back().layer + 1;
  index.assign(static_cast<size_t>(layers * kNumEncoderSites), -1);
  for (size_t i = 0; i < sites.size(); ++i)
    index[static_cast<size_t>(sites[i].layer * kNumEncoderSites + static_cast<int>(sites[i].site))] = static_cast<int>(i);
  return [this, params, index = std::move(index), layers](int64_t layer, EncoderSite site, const torch::Tensor& x) {
    if (layer >= layers) return x;
    const int i = index[static_cast<size_t>(layer * kNumEncoderSites + static_cast<int>(site))];
    if (i < 0) return x;
    const Site& s = sites[static_cast<size_t>(i)];
    auto gamma = params.narrow(-1, s.offset, s.channels);
    auto beta = params.narrow(-1, s.offset + s.channels, s.channels);
    if (params.dim() == 2) {  // per instance: [B, C] -> [B, 1, C] broadcast over tokens
      gamma = gamma.unsqueeze(1);
      beta = beta.unsqueeze(1);
    }
    return torch::addcmul(beta.to(x.scalar_type()), x, gamma.to(x.scalar_type()));
  };
}

}  // namespace tandem

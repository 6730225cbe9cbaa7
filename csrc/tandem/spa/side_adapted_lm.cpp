#include "tandem/spa/side_adapted_lm.h"

#include "tandem/core/formats/safetensors.h"

namespace tandem::spa {

SideAdaptedLM::SideAdaptedLM(std::shared_ptr<CausalLM> backbone, std::shared_ptr<DeviceAdapter> plugin,
                             std::shared_ptr<Router> router, c10::ScalarType dtype)
    : backbone_(std::move(backbone)), plugin_(std::move(plugin)), router_(std::move(router)), dtype_(dtype) {}

std::unique_ptr<SideAdaptedLM> SideAdaptedLM::from_config(std::shared_ptr<CausalLM> backbone, const Config& adapter,
                                                         const Config* router, c10::Device device, c10::ScalarType dtype,
                                                         std::string* router_type) {
  std::shared_ptr<DeviceAdapter> plugin(create<DeviceAdapter>(adapter, backbone->config()));
  plugin->init_from_backbone(*backbone);
  plugin->to(device);
  std::shared_ptr<Router> r;
  if (router) {
    // The router reads the plugin's state: one probe forward gives its width.
    torch::NoGradGuard ng;
    const auto z = torch::zeros({1, 1, backbone->config().hidden_size}, torch::TensorOptions().device(device));
    const auto probe = plugin->forward(std::vector<torch::Tensor>(plugin->layers_read().size(), z), z, {}, nullptr);
    const RouterDims dims{z.size(-1), probe.features.size(-1)};
    const std::string type = router->has("type") ? router->type() : "mlp";
    if (router_type) *router_type = type;
    if (type != "always") r = std::shared_ptr<Router>(create_named<Router>(type, *router, dims));
    if (r) r->to(device);
  }
  return std::make_unique<SideAdaptedLM>(std::move(backbone), std::move(plugin), std::move(r), dtype);
}

void load_weights_into(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& params) {
  const SafetensorsFile w = load_safetensors(path);
  torch::NoGradGuard ng;
  for (const auto& [name, p] : params) {
    if (!w.contains(name)) throw std::runtime_error(path + ": no tensor '" + name + "' for this run's config");
    const auto& t = w.at(name);
    if (t.sizes() != p.sizes())
      throw std::runtime_error(path + ": '" + name + "' has shape " + c10::str(t.sizes()) + ", the config builds " +
                               c10::str(p.sizes()) + " (a different backbone?)");
    p.copy_(t);
  }
}

std::unique_ptr<SideAdaptedLM> SideAdaptedLM::load_run(const std::string& run_dir, std::shared_ptr<CausalLM> backbone,
                                                      c10::Device device, c10::ScalarType dtype) {
  const std::string cfg = run_dir + "/config.yaml";
  const Config root = Config::load_file(cfg);
  if (!root.has("adapter")) throw std::runtime_error(cfg + ": not an SPA/LST run (no adapter section)");
  const bool routed = root.at("experiment").get<std::string>("method") == "spa";
  const Config rc = root.at_or_empty("router");
  auto lm = from_config(std::move(backbone), root.at("adapter"), routed ? &rc : nullptr, device, dtype);
  load_weights_into(run_dir + "/adapter.safetensors", lm->plugin().trainable());
  if (lm->router() && lm->router()->trainable()) {
    std::vector<std::pair<std::string, torch::Tensor>> rp;
    for (const auto& p : lm->router()->named_parameters()) rp.emplace_back(p.key(), p.value());
    load_weights_into(run_dir + "/router.safetensors", rp);
  }
  lm->plugin().eval();
  if (lm->router()) lm->router()->eval();
  return lm;
}

namespace {
// [..., D] -> [N, D], then the rows `rows` (all when undefined).
torch::Tensor gather_rows(const torch::Tensor& t, const torch::Tensor& rows) {
  auto flat = t.reshape({-1, t.size(-1)});
  return rows.defined() ? flat.index_select(0, rows.to(flat.device())) : flat;
}
}  // namespace

torch::Tensor SideAdaptedLM::vocab_basis(const torch::Tensor& basis) const {
  if (torch::GradMode::is_enabled()) return backbone_->project_vocab(basis.t().to(dtype_));
  const auto version = static_cast<int64_t>(basis._version());
  if (!wu_cache_.defined() || wu_data_ != basis.data_ptr() || wu_version_ != version) {
    wu_cache_ = backbone_->project_vocab(basis.t().to(dtype_));
    wu_data_ = basis.data_ptr();
    wu_version_ = version;
  }
  return wu_cache_;
}

torch::Tensor SideAdaptedLM::adapted_logits(const AdapterOutput& out, const torch::Tensor& rows, const torch::Tensor& base) const {
  CausalLM& m = *backbone_;
  if (base.defined() && out.shift_basis.defined()) {
    // Additive plugin with the backbone's logits at hand: logits = base + z (W U)^T, exact algebra
    // with the rank-r product W U [r, V] in place of W [H, V].
    auto wu = vocab_basis(out.shift_basis);
    return m.cap_logits(base + torch::matmul(gather_rows(out.shift_coeff, rows).to(wu.scalar_type()), wu));
  }
  return m.cap_logits(m.project_vocab(gather_rows(out.hidden, rows).to(dtype_)));
}

SideLogits SideAdaptedLM::train_logits(const std::vector<torch::Tensor>& inputs, const torch::Tensor& last_rows,
                                       const torch::Tensor& key_mask, const torch::Tensor& rows, const BaseLogits& base_fn,
                                       bool want_backbone) {
  CausalLM& m = *backbone_;
  const auto dev = inputs.at(0).device();
  SideLogits r;
  // 1. The backbone's final-normed state at the scored rows (frozen: no gradient).
  {
    torch::NoGradGuard ng;
    r.state = m.final_norm(last_rows.to(dev, dtype_));
  }
  // 2. The plugin. Per-position plugins see exactly the scored rows; sequence plugins see whole
  //    sequences, and the scored rows are gathered after.
  const bool seq = plugin_->needs_all_positions();
  const AdapterOutput out = seq ? plugin_->forward(inputs, torch::Tensor(), key_mask, nullptr)
                                : plugin_->forward(inputs, r.state.unsqueeze(0), torch::Tensor(), nullptr);
  const torch::Tensor keep = seq ? rows : torch::Tensor();
  r.features = gather_rows(out.features, keep);
  // 3. Adapted logits.
  torch::Tensor base = base_fn ? base_fn(r.state) : torch::Tensor();
  r.adapted = adapted_logits(out, keep, base);
  if (want_backbone) {
    torch::NoGradGuard ng;
    r.backbone = m.cap_logits(base.defined() ? base : m.project_vocab(r.state));
  }
  return r;
}

nlohmann::json SideAdaptedLM::device_footprint() const {
  auto count = [](const torch::nn::Module& m, bool bytes) {
    int64_t n = 0;
    for (const auto& p : m.parameters()) n += p.numel() * (bytes ? p.element_size() : 1);
    return n;
  };
  const auto& cf = backbone_->config();
  const int64_t router_params = router_ ? count(*router_, false) : 0, router_bytes = router_ ? count(*router_, true) : 0;
  const int64_t layer_bytes = static_cast<int64_t>(plugin_->layers_read().size()) * cf.hidden_size * c10::elementSize(dtype_);
  return {{"device_trainable_parameters", plugin_->num_trainable() + router_params},
          {"device_memory_bytes", count(*plugin_, true) + router_bytes + cf.vocab_size * cf.hidden_size * 4},
          {"device_memory_note", "adapter + router parameters + a float32 copy of the frozen vocabulary projection"},
          {"layer_bytes_per_token", layer_bytes}};
}

std::vector<torch::Tensor> SideAdaptedLM::plugin_inputs(const std::vector<torch::Tensor>& hidden_states) const {
  const bool seq = plugin_->needs_all_positions();
  std::vector<torch::Tensor> inputs;
  for (int64_t l : plugin_->layers_read()) {
    const auto& h = hidden_states.at(static_cast<size_t>(l));
    inputs.push_back(seq ? h : h.narrow(1, -1, 1));
  }
  return inputs;
}

torch::Tensor SideAdaptedLM::next_token(const std::vector<torch::Tensor>& hidden_states, const torch::Tensor& key_mask,
                                        AdapterState* state, torch::Tensor* use_adapted) {
  CausalLM& m = *backbone_;
  const int64_t B = hidden_states.at(0).size(0);
  // 1. The plugin reads the layers it was trained on (every new position for sequence plugins).
  const bool seq = plugin_->needs_all_positions();
  auto fin = m.final_norm(hidden_states.at(static_cast<size_t>(m.config().num_layers)).narrow(1, -1, 1));
  auto ao = plugin_->forward(plugin_inputs(hidden_states), fin, key_mask.to(torch::kBool), seq ? state : nullptr);
  auto hid = ao.hidden.narrow(1, -1, 1).to(fin.scalar_type());
  if (!router_) {
    if (use_adapted) *use_adapted = torch::ones({B}, torch::kBool);
    return m.cap_logits(m.project_vocab(hid)).select(1, 0);
  }
  // 2. Both distributions; the router picks per row. An additive plugin's adapted logits are the
  //    backbone's plus z (W U)^T through the cached rank-r product (as in training): one pass
  //    through the frozen head instead of two. Other plugins project both states in one call.
  torch::Tensor lb, la;
  if (ao.shift_basis.defined()) {
    const auto raw = m.project_vocab(fin).select(1, 0);
    la = adapted_logits(ao, torch::Tensor(), raw);
    lb = m.cap_logits(raw);
  } else {
    auto both = m.cap_logits(m.project_vocab(torch::cat({fin, hid}, 0)));
    lb = both.narrow(0, 0, B).select(1, 0), la = both.narrow(0, B, B).select(1, 0);
  }
  auto p = router_->prob(fin.select(1, 0), ao.features.narrow(1, -1, 1).select(1, 0), distribution_features(lb, la));
  auto chose = (p >= router_->threshold).to(torch::kCPU);
  if (use_adapted) *use_adapted = chose;
  return torch::where(chose.to(lb.device()).unsqueeze(1), la, lb);
}

}  // namespace tandem::spa

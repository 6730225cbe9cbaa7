// BERT encoder (MiniLM, BGE, ...): post-LayerNorm blocks with exact-erf GELU, as HF BertModel.
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/core/files.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/models/encoder.h"

namespace fs = std::filesystem;

namespace tandem {
namespace F = torch::nn::functional;

TANDEM_DEFINE_REGISTRY(Encoder);

torch::Tensor Encoder::pool(const torch::Tensor& states, const torch::Tensor& attention_mask) const {
  auto h = states.to(torch::kFloat);
  if (config_.pooling == "cls") return h.select(1, 0);
  auto m = attention_mask.to(h.device(), torch::kFloat).unsqueeze(-1);
  return (h * m).sum(1) / m.sum(1).clamp_min(1e-9);
}

torch::Tensor Encoder::embed(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  torch::NoGradGuard ng;
  auto e = pool(forward(input_ids, attention_mask), attention_mask);
  return config_.normalize ? F::normalize(e, F::NormalizeFuncOptions().p(2).dim(1)) : e;
}

namespace {

struct BertLayer {
  torch::Tensor q, qb, k, kb, v, vb, ao, aob, ln1, ln1b, i, ib, o, ob, ln2, ln2b;
};

class BertEncoder : public Encoder {
 public:
  explicit BertEncoder(const EncoderConfig& c) : Encoder(c) {
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    auto p = [&](const std::string& n, std::vector<int64_t> s) { return frozen(n, std::move(s)); };
    word_ = p("word_embeddings", {c.vocab_size, H});
    pos_ = p("position_embeddings", {c.max_positions, H});
    type_ = p("token_type_embeddings", {c.type_vocab_size, H});
    eln_ = p("embeddings_ln", {H});
    elnb_ = p("embeddings_ln_bias", {H});
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const std::string s = "layer_" + std::to_string(l) + "_";
      BertLayer L{p(s + "q", {H, H}), p(s + "qb", {H}), p(s + "k", {H, H}), p(s + "kb", {H}), p(s + "v", {H, H}),
                  p(s + "vb", {H}), p(s + "ao", {H, H}), p(s + "aob", {H}), p(s + "ln1", {H}), p(s + "ln1b", {H}),
                  p(s + "i", {I, H}), p(s + "ib", {I}), p(s + "o", {H, I}), p(s + "ob", {H}), p(s + "ln2", {H}),
                  p(s + "ln2b", {H})};
      layers_.push_back(L);
    }
  }

  void load_weights(const std::string& dir) override {
    torch::NoGradGuard ng;
    const std::string file = (fs::path(dir) / "model.safetensors").string();
    auto st = load_safetensors(file);
    // BertModel checkpoints name tensors "embeddings...", task heads prefix them with "bert.".
    const std::string pre = st.contains("bert.embeddings.word_embeddings.weight") ? "bert." : "";
    auto fill = [&](torch::Tensor& dst, const std::string& name) {
      if (!st.contains(pre + name)) throw std::runtime_error(file + ": missing tensor '" + pre + name + "'");
      const auto& t = st.at(pre + name);
      if (t.sizes() != dst.sizes())
        throw std::runtime_error(file + ": tensor '" + pre + name + "' has shape " + c10::str(t.sizes()) + ", expected " +
                                 c10::str(dst.sizes()));
      dst.copy_(t);
    };
    fill(word_, "embeddings.word_embeddings.weight");
    fill(pos_, "embeddings.position_embeddings.weight");
    fill(type_, "embeddings.token_type_embeddings.weight");
    fill(eln_, "embeddings.LayerNorm.weight");
    fill(elnb_, "embeddings.LayerNorm.bias");
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string s = "encoder.layer." + std::to_string(l) + ".";
      BertLayer& L = layers_[l];
      fill(L.q, s + "attention.self.query.weight");
      fill(L.qb, s + "attention.self.query.bias");
      fill(L.k, s + "attention.self.key.weight");
      fill(L.kb, s + "attention.self.key.bias");
      fill(L.v, s + "attention.self.value.weight");
      fill(L.vb, s + "attention.self.value.bias");
      fill(L.ao, s + "attention.output.dense.weight");
      fill(L.aob, s + "attention.output.dense.bias");
      fill(L.ln1, s + "attention.output.LayerNorm.weight");
      fill(L.ln1b, s + "attention.output.LayerNorm.bias");
      fill(L.i, s + "intermediate.dense.weight");
      fill(L.ib, s + "intermediate.dense.bias");
      fill(L.o, s + "output.dense.weight");
      fill(L.ob, s + "output.dense.bias");
      fill(L.ln2, s + "output.LayerNorm.weight");
      fill(L.ln2b, s + "output.LayerNorm.bias");
    }
  }

  torch::Tensor forward(const torch::Tensor& ids_in, const torch::Tensor& mask_in) override {
    torch::NoGradGuard ng;
    auto mask = mask_in.defined() ? mask_in : torch::ones_like(ids_in);
    return run_layers(embed_tokens(ids_in), mask, 0, config_.num_layers, {});
  }

  torch::Tensor embed_tokens(const torch::Tensor& ids_in) override {
    torch::NoGradGuard ng;
    const auto& c = config_;
    auto ids = ids_in.to(word_.device());
    const int64_t T = ids.size(1);
    TORCH_CHECK(T <= c.max_positions, "sequence of ", T, " tokens exceeds the encoder's ", c.max_positions, " positions");
    auto x = F::embedding(ids, word_) + pos_.narrow(0, 0, T).unsqueeze(0) + type_[0];
    return torch::layer_norm(x, {c.hidden_size}, eln_, elnb_, c.layer_norm_eps);
  }

  torch::Tensor run_layers(torch::Tensor x, const torch::Tensor& mask_in, int64_t first, int64_t last,
                           const EncoderHook& hook) override {
    const auto& c = config_;
    TORCH_CHECK(0 <= first && first <= last && last <= c.num_layers, "run_layers: layers [", first, ", ", last,
                ") outside [0, ", c.num_layers, "]");
    const auto dev = word_.device();
    x = x.to(dev);
    const int64_t B = x.size(0), T = x.size(1), H = c.hidden_size, nh = c.num_heads, D = H / nh;
    auto mask = mask_in.to(dev);
    auto ln = [&](const torch::Tensor& t, const torch::Tensor& w, const torch::Tensor& b) {
      return torch::layer_norm(t, {H}, w, b, c.layer_norm_eps);
    };
    auto site = [&](int64_t l, EncoderSite s, torch::Tensor t) { return hook ? hook(l, s, t) : t; };
    auto allowed = (mask != 0).view({B, 1, 1, T});
    for (int64_t l = first; l < last; ++l) {
      const auto& L = layers_[l];
      auto q = torch::linear(x, L.q, L.qb).view({B, T, nh, D}).transpose(1, 2);
      auto k = torch::linear(x, L.k, L.kb).view({B, T, nh, D}).transpose(1, 2);
      auto v = torch::linear(x, L.v, L.vb).view({B, T, nh, D}).transpose(1, 2);
      auto a = at::scaled_dot_product_attention(q, k, v, allowed).transpose(1, 2).reshape({B, T, H});
      x = ln(x + site(l, EncoderSite::kAttnOut, torch::linear(a, L.ao, L.aob)), L.ln1, L.ln1b);
      auto h = torch::gelu(site(l, EncoderSite::kFfnHidden, torch::linear(x, L.i, L.ib)));
      x = site(l, EncoderSite::kBlockOut, ln(x + site(l, EncoderSite::kFfnOut, torch::linear(h, L.o, L.ob)), L.ln2, L.ln2b));
    }
    return x;
  }

 private:
  torch::Tensor word_, pos_, type_, eln_, elnb_;
  std::vector<BertLayer> layers_;
};

}  // namespace

TANDEM_REGISTER(Encoder, "bert", BertEncoder);

std::shared_ptr<Encoder> load_encoder(const std::string& dir, const c10::Device& device, c10::ScalarType dtype) {
  const auto cj = (fs::path(dir) / "config.json").string();
  if (!fs::exists(cj)) throw std::runtime_error(dir + ": no config.json (expected an HF encoder directory)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(cj));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(cj + ": not valid JSON (" + e.what() + ")");
  }
  EncoderConfig c;
  c.source = cj;
  c.architecture = j.value("model_type", std::string());
  if (!Registry<Encoder>::instance().contains(c.architecture))
    throw std::runtime_error(cj + ": unknown encoder model_type \"" + c.architecture + "\" (known: " +
                             Registry<Encoder>::instance().known() + ")");
  c.vocab_size = j.at("vocab_size");
  c.hidden_size = j.at("hidden_size");
  c.num_layers = j.at("num_hidden_layers");
  c.num_heads = j.at("num_attention_heads");
  c.intermediate_size = j.at("intermediate_size");
  c.max_positions = j.value("max_position_embeddings", 512);
  c.type_vocab_size = j.value("type_vocab_size", 2);
  c.layer_norm_eps = j.value("layer_norm_eps", 1e-12);
  if (j.value("hidden_act", std::string("gelu")) != "gelu")
    throw std::runtime_error(cj + ": hidden_act \"" + j.value("hidden_act", std::string()) + "\" is not supported (expected gelu)");
  // sentence-transformers' pooling and normalisation, when the directory carries them.
  const auto pool = fs::path(dir) / "1_Pooling" / "config.json";
  if (fs::exists(pool)) {
    auto pj = nlohmann::json::parse(read_file(pool.string()));
    c.pooling = pj.value("pooling_mode_cls_token", false) ? "cls" : "mean";
  }
  const auto modules = fs::path(dir) / "modules.json";
  if (fs::exists(modules))
    for (const auto& m : nlohmann::json::parse(read_file(modules.string())))
      if (m.value("type", std::string()).find("Normalize") != std::string::npos) c.normalize = true;
  std::shared_ptr<Encoder> enc(create_named<Encoder>(c.architecture, c).release());
  enc->to(dtype);
  enc->load_weights(dir);
  enc->to(device);
  enc->eval();
  return enc;
}

}  // namespace tandem

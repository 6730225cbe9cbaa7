// Gemma 2 and Gemma 3 (text): Llama-like blocks with "sandwich" norms (before and after attention and MLP),
// RMSNorm scaled by (1 + w) in float32, q/k RMSNorm per head, embeddings scaled by sqrt(hidden),
// GELU-tanh MLP, and a repeating pattern of sliding-window layers (local RoPE base) and global
// layers. Gemma 2 has no q/k norms and soft-caps attention scores; both soft-cap final logits
// when configured. Numerics follow HF transformers' Gemma2ForCausalLM / Gemma3ForCausalLM.
#include <cmath>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"
#include "tandem/models/decoder_common.h"
#include "tandem/models/rope.h"
#include "tandem/models/team_step.h"

namespace tandem {
namespace F = torch::nn::functional;
using decoder::rms_norm_scaled;

namespace {

struct GemmaLayer {
  torch::Tensor ln_in, ln_post_attn, ln_pre_ff, ln_post_ff, q_norm, k_norm;  // stored as 1 + w
  torch::Tensor q, k, v, o, gate, up, down;
  PackedWeight pq, pk, pv, po, pgate, pup, pdown;  // quantized copies for small-batch steps
  PackedWeight pqkv, pgate_up;                      // q|k|v and gate|up stacked (decoder::stack_packed)
  bool sliding = false;
};

class Gemma3Model : public CausalLM {
 public:
  explicit Gemma3Model(const ModelConfig& c)
      : CausalLM(c), rope_global_(c, c.rope, c.rope_theta, c.head_dim), rope_local_(c, RopeScaling{}, c.rope_local_theta, c.head_dim) {
    const auto& cf = config_;
    const int64_t H = cf.hidden_size, D = cf.head_dim, nh = cf.num_heads, nkv = cf.num_kv_heads;
    auto p = [&](const std::string& name, std::vector<int64_t> shape) { return frozen(name, std::move(shape)); };
    embed_ = p("embed_tokens", {cf.vocab_size, H});
    norm_ = p("norm", {H});
    for (int64_t i = 0; i < cf.num_layers; ++i) {
      const std::string s = "layers_" + std::to_string(i) + "_";
      GemmaLayer L;
      L.ln_in = p(s + "input_layernorm", {H});
      L.ln_post_attn = p(s + "post_attention_layernorm", {H});
      L.ln_pre_ff = p(s + "pre_feedforward_layernorm", {H});
      L.ln_post_ff = p(s + "post_feedforward_layernorm", {H});
      if (cf.qk_norm) {
        L.q_norm = p(s + "q_norm", {D});
        L.k_norm = p(s + "k_norm", {D});
      }
      L.q = p(s + "q_proj", {nh * D, H});
      L.k = p(s + "k_proj", {nkv * D, H});
      L.v = p(s + "v_proj", {nkv * D, H});
      L.o = p(s + "o_proj", {H, nh * D});
      L.gate = p(s + "gate_proj", {cf.intermediate_size, H});
      L.up = p(s + "up_proj", {cf.intermediate_size, H});
      L.down = p(s + "down_proj", {H, cf.intermediate_size});
      L.sliding = i < static_cast<int64_t>(cf.sliding_layers.size()) && cf.sliding_layers[i];
      layers_.push_back(L);
    }
    scale_ = std::pow(cf.query_pre_attn_scalar > 0 ? cf.query_pre_attn_scalar : static_cast<double>(D), -0.5);
  }

  void load_weights(const WeightSource& src) override {
    torch::NoGradGuard ng;
    head_t_.reset();
    auto fill = [&](torch::Tensor& dst, const std::string& name, bool norm) {
      // Norm weights are kept as (1 + w) in float32, exactly what HF computes at run time.
      if (!norm) return src.copy_into(dst, name);
      torch::Tensor t = src.fetch(name, torch::kFloat) + 1.0;
      src.check_shape(t, dst, name);
      dst.set_data(t);  // stays float32 whatever the model dtype
    };
    const std::string m = config_.weight_prefix;
    fill(embed_, m + "embed_tokens.weight", false);
    fill(norm_, m + "norm.weight", true);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const std::string s = m + "layers." + std::to_string(i) + ".";
      GemmaLayer& L = layers_[i];
      fill(L.ln_in, s + "input_layernorm.weight", true);
      fill(L.ln_post_attn, s + "post_attention_layernorm.weight", true);
      fill(L.ln_pre_ff, s + "pre_feedforward_layernorm.weight", true);
      fill(L.ln_post_ff, s + "post_feedforward_layernorm.weight", true);
      if (L.q_norm.defined()) {
        fill(L.q_norm, s + "self_attn.q_norm.weight", true);
        fill(L.k_norm, s + "self_attn.k_norm.weight", true);
      }
      fill(L.q, s + "self_attn.q_proj.weight", false);
      fill(L.k, s + "self_attn.k_proj.weight", false);
      fill(L.v, s + "self_attn.v_proj.weight", false);
      fill(L.o, s + "self_attn.o_proj.weight", false);
      fill(L.gate, s + "mlp.gate_proj.weight", false);
      fill(L.up, s + "mlp.up_proj.weight", false);
      fill(L.down, s + "mlp.down_proj.weight", false);
      if (embed_.scalar_type() == torch::kFloat) {  // the packed kernels compute in float32
        L.pq = src.packed(s + "self_attn.q_proj.weight");
        L.pk = src.packed(s + "self_attn.k_proj.weight");
        L.pv = src.packed(s + "self_attn.v_proj.weight");
        L.po = src.packed(s + "self_attn.o_proj.weight");
        L.pgate = src.packed(s + "mlp.gate_proj.weight");
        L.pup = src.packed(s + "mlp.up_proj.weight");
        L.pdown = src.packed(s + "mlp.down_proj.weight");
        L.pqkv = decoder::stack_packed({&L.pq, &L.pk, &L.pv});
        L.pgate_up = decoder::stack_packed({&L.pgate, &L.pup});
      }
    }
    if (embed_.scalar_type() == torch::kFloat) head_packed_ = src.packed(m + "embed_tokens.weight");
    team_ready_ = embed_.scalar_type() == torch::kFloat;  // every matrix packed: batch-1 steps take team_step
    for (const auto& L : layers_)
      for (const PackedWeight* w : {&L.pq, &L.pk, &L.pv, &L.po, &L.pgate, &L.pup, &L.pdown}) team_ready_ = team_ready_ && w->defined();
  }

  LMOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                   const torch::Tensor& position_ids, KVCache* cache, bool output_hidden_states,
                   int64_t logits_to_keep) override {
    torch::NoGradGuard ng;
    const auto& cf = config_;
    const auto dev = embed_.device();
    const auto dt = embed_.scalar_type();
    const auto in = decoder::step_inputs(input_ids, attention_mask, position_ids, cache, dev);
    const int64_t B = in.B, T = in.T;
    const auto cs_global = rope_global_.tables(in.pos, dt);
    const auto cs_local = rope_local_.tables(in.pos, dt);
    const auto m_global = decoder::attention_mask(in.mask, in.padded, in.past, T);
    const auto m_local = decoder::attention_mask(in.mask, in.padded, in.past, T, cf.sliding_window);
    const int64_t nh = cf.num_heads, nkv = cf.num_kv_heads, D = cf.head_dim;

    LMOutput out;
    // The embedding scale is rounded to the model dtype first, as HF does.
    const auto embed_scale = torch::tensor(std::sqrt(static_cast<double>(cf.hidden_size)), torch::kFloat).to(dt);
    torch::Tensor x = F::embedding(input_ids.to(dev), embed_) * embed_scale.to(dev);
    if (output_hidden_states) out.hidden_states.push_back(x);
    const double eps = cf.rms_norm_eps;
    if (cache && fused_step_applies(in, output_hidden_states, m_global, m_local)) {
      x = team_ready_ ? team_step(x, cs_global, cs_local, *cache) : fused_step(x, cs_global, cs_local, *cache);
      cache->advance(T);
      if (logits_to_keep < 0) return out;
      TANDEM_SPAN("lm_head");
      out.logits = cap_logits(project_vocab(final_norm(x)));
      return out;
    }
    for (size_t i = 0; i < layers_.size(); ++i) {
      const GemmaLayer& L = layers_[i];
      torch::Tensor h, q, k, v, a;
      {
        TANDEM_SPAN("norm");
        h = rms_norm_scaled(x, L.ln_in, eps);
      }
      {
        TANDEM_SPAN("qkv_proj");
        const torch::Tensor none;
        auto qkv = decoder::proj_stacked(h, L.pqkv, {{L.q, L.pq, none}, {L.k, L.pk, none}, {L.v, L.pv, none}});
        q = qkv[0].view({B, T, nh, D}).transpose(1, 2);
        k = qkv[1].view({B, T, nkv, D}).transpose(1, 2);
        v = qkv[2].view({B, T, nkv, D}).transpose(1, 2);
      }
      const auto& cs = L.sliding ? cs_local : cs_global;
      {
        TANDEM_SPAN("rope");
        if (L.q_norm.defined()) {
          q = rms_norm_scaled(q, L.q_norm, eps);
          k = rms_norm_scaled(k, L.k_norm, eps);
        }
        q = decoder::apply_rotary(q, cs);
        k = decoder::apply_rotary(k, cs);
      }
      {
        TANDEM_SPAN("attention");
        if (cache) std::tie(k, v) = cache->append(static_cast<int64_t>(i), k, v);
        const auto& am = L.sliding ? m_local : m_global;
        a = cf.attn_logit_softcapping > 0 ? decoder::attend_softcapped(q, k, v, am, scale_, cf.attn_logit_softcapping)
                                          : decoder::attend(q, k, v, am, scale_);
      }
      {
        TANDEM_SPAN("o_proj");
        a = decoder::proj_packed(a.transpose(1, 2).reshape({B, T, nh * D}), L.o, L.po);
      }
      {
        TANDEM_SPAN("norm");
        x = x + rms_norm_scaled(a, L.ln_post_attn, eps);
        h = rms_norm_scaled(x, L.ln_pre_ff, eps);
      }
      {
        TANDEM_SPAN("mlp");
        const torch::Tensor none;
        auto gate_up = decoder::proj_stacked(h, L.pgate_up, {{L.gate, L.pgate, none}, {L.up, L.pup, none}});
        h = decoder::proj_packed(torch::gelu(gate_up[0], "tanh") * gate_up[1], L.down, L.pdown);
      }
      {
        TANDEM_SPAN("norm");
        x = x + rms_norm_scaled(h, L.ln_post_ff, eps);
      }
      if (output_hidden_states) out.hidden_states.push_back(x);
    }
    if (cache) cache->advance(T);
    if (logits_to_keep < 0) return out;
    if (logits_to_keep > 0 && logits_to_keep < T) x = x.narrow(1, T - logits_to_keep, logits_to_keep);
    TANDEM_SPAN("lm_head");
    out.logits = cap_logits(project_vocab(final_norm(x)));
    return out;
  }

  torch::Tensor final_norm(const torch::Tensor& h) const override { return rms_norm_scaled(h, norm_, config_.rms_norm_eps); }
  torch::Tensor project_vocab(const torch::Tensor& x) override { return decoder::project_head(x, embed_, head_t_, head_packed_); }


 private:
  // ---- One sequence's decode step on its own buffers (as LlamaModel's: see there) ----
  // Same values as the layer loop above, bit for bit (tests/cpp/models_test.cpp); Gemma 2's
  // soft-capped attention keeps the loop.
  bool fused_step_applies(const decoder::StepInputs& in, bool hidden, const decoder::AttentionMask& global,
                          const decoder::AttentionMask& local) const {
    return in.B == 1 && in.T == 1 && !hidden && !global.allowed.defined() && !global.causal && !local.allowed.defined() &&
           !local.causal && config_.attn_logit_softcapping <= 0 && embed_.scalar_type() == torch::kFloat &&
           embed_.device().is_cpu() && !torch::GradMode::is_enabled();
  }

  torch::Tensor fused_step(const torch::Tensor& x_in, const std::pair<torch::Tensor, torch::Tensor>& cs_global,
                           const std::pair<torch::Tensor, torch::Tensor>& cs_local, KVCache& cache) {
    TANDEM_SPAN("fused_step");  // which path a step took, for the profiler (and the test)
    const auto& cf = config_;
    const int64_t H = cf.hidden_size;
    decoder::FusedStep st(x_in, cf, scale_);
    const auto table = [](const torch::Tensor& t) { return t.to(torch::kFloat).contiguous(); };
    const torch::Tensor cos_g = table(cs_global.first), sin_g = table(cs_global.second), cos_l = table(cs_local.first),
                        sin_l = table(cs_local.second);
    // The post-attention and post-MLP norms: in place on a product's output, then the residual add.
    const auto add_normed = [&](torch::Tensor y, const torch::Tensor& ln) {
      y = y.contiguous();
      decoder::rms_norm_row(y.data_ptr<float>(), ln.data_ptr<float>(), H, st.attention.eps, y.data_ptr<float>());
      decoder::add_row(st.stream(), y.data_ptr<float>(), H);
    };
    const torch::Tensor none;
    for (size_t i = 0; i < layers_.size(); ++i) {
      const GemmaLayer& L = layers_[i];
      // 1. Attention: norm, q|k|v, per-head q/k norms, RoPE (local or global), cache write,
      // attention; o, its own norm, the residual add.
      st.attention.q_norm = L.q_norm.defined() ? L.q_norm.data_ptr<float>() : nullptr;
      st.attention.k_norm = L.k_norm.defined() ? L.k_norm.data_ptr<float>() : nullptr;
      st.attention.cos = (L.sliding ? cos_l : cos_g).data_ptr<float>();
      st.attention.sin = (L.sliding ? sin_l : sin_g).data_ptr<float>();
      st.attention.rd = (L.sliding ? cos_l : cos_g).size(-1);
      st.attend(L.ln_in, L.pqkv, {{L.q, L.pq, none}, {L.k, L.pk, none}, {L.v, L.pv, none}}, cache, static_cast<int64_t>(i));
      {
        TANDEM_SPAN("o_proj");
        add_normed(decoder::proj_packed(st.a, L.o, L.po), L.ln_post_attn);
      }
      // 2. MLP: norm, gate|up, GELU-tanh times up, down, its own norm, the residual add.
      st.norm_into_h(L.ln_pre_ff);
      TANDEM_SPAN("mlp");
      auto gate_up = decoder::proj_stacked(st.h, L.pgate_up, {{L.gate, L.pgate, none}, {L.up, L.pup, none}});
      add_normed(decoder::proj_packed(torch::gelu(gate_up[0], "tanh") * gate_up[1], L.down, L.pdown), L.ln_post_ff);
    }
    return st.x;
  }

  /// fused_step on a team of threads when every matrix is packed (team_step.h, as LlamaModel's):
  /// the same values, bit for bit (tests/cpp/models_test.cpp).
  torch::Tensor team_step(const torch::Tensor& x_in, const std::pair<torch::Tensor, torch::Tensor>& cs_global,
                          const std::pair<torch::Tensor, torch::Tensor>& cs_local, KVCache& cache) {
    TANDEM_SPAN("team_step");  // which path a step took, for the profiler (and the test)
    const auto& cf = config_;
    auto x = x_in.contiguous().clone();
    const auto table = [](const torch::Tensor& t) { return t.to(torch::kFloat).contiguous(); };
    const torch::Tensor cos_g = table(cs_global.first), sin_g = table(cs_global.second), cos_l = table(cs_local.first),
                        sin_l = table(cs_local.second);
    decoder::TeamModel m = decoder::team_model(cf, scale_);
    m.act = [](const torch::Tensor& g) { return torch::gelu(g, "tanh"); };
    m.cos = cos_g.data_ptr<float>();
    m.sin = sin_g.data_ptr<float>();
    m.rd = cos_g.size(-1);
    m.cos_local = cos_l.data_ptr<float>();
    m.sin_local = sin_l.data_ptr<float>();
    m.rd_local = cos_l.size(-1);
    std::vector<decoder::TeamLayer> layers;  // made per step, as fused_step reads its weights
    for (const auto& L : layers_) {
      decoder::TeamLayer t;
      t.ln_in = L.ln_in.data_ptr<float>();
      t.ln_post_attn = L.ln_post_attn.data_ptr<float>();
      t.ln_pre_ff = L.ln_pre_ff.data_ptr<float>();
      t.ln_post_ff = L.ln_post_ff.data_ptr<float>();
      t.q_norm = L.q_norm.defined() ? L.q_norm.data_ptr<float>() : nullptr;
      t.k_norm = L.k_norm.defined() ? L.k_norm.data_ptr<float>() : nullptr;
      t.local_rope = L.sliding;
      using Part = decoder::TeamPart;
      t.qkv = L.pqkv.defined() ? std::vector<Part>{Part{&L.pqkv}} : std::vector<Part>{Part{&L.pq}, Part{&L.pk}, Part{&L.pv}};
      t.gate_up = L.pgate_up.defined() ? std::vector<Part>{Part{&L.pgate_up}} : std::vector<Part>{Part{&L.pgate}, Part{&L.pup}};
      t.o = Part{&L.po};
      t.down = Part{&L.pdown};
      layers.push_back(std::move(t));
    }
    decoder::team_step(x.data_ptr<float>(), m, layers, cache);
    return x;
  }

  torch::Tensor embed_, norm_;
  decoder::RotaryEmbedding rope_global_, rope_local_;
  bool team_ready_ = false;
  std::vector<GemmaLayer> layers_;
  double scale_ = 1.0;
  decoder::TransposedHead head_t_;
  PackedWeight head_packed_;
};

}  // namespace

TANDEM_REGISTER(CausalLM, "gemma3_text", Gemma3Model);
TANDEM_REGISTER(CausalLM, "gemma3", Gemma3Model);
TANDEM_REGISTER(CausalLM, "gemma2", Gemma3Model);

}  // namespace tandem

// The Llama-family decoder: Llama 2/3.x, SmolLM2, Mistral/Mixtral, Qwen2/2.5, Qwen3, Phi-3/3.5/4.
// One pre-norm block (RMSNorm, grouped-query attention with rotary positions, gated MLP) whose
// family differences are settings read from config.json: q/k/v and o biases, MLP biases, the
// gate activation, per-head q/k RMSNorm (Qwen3), a sliding window (Mistral, Qwen2, Phi-3),
// partial rotation and every RoPE scaling (rope.h), fused qkv/gate_up tensors (Phi-3, split on
// load) and a sparse mixture-of-experts MLP (Mixtral). Numerics follow HF transformers.
#include <cmath>
#include <functional>
#include <map>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"
#include "tandem/models/decoder_common.h"
#include "tandem/models/rope.h"
#include "tandem/models/team_step.h"

namespace tandem {
namespace F = torch::nn::functional;
using decoder::rms_norm;

namespace {

struct Expert {
  torch::Tensor gate, up, down;
};

struct Layer {
  torch::Tensor ln1, ln2, q, k, v, o, qb, kb, vb, ob, q_norm, k_norm, gate, up, down, gate_b, up_b, down_b;
  torch::Tensor router;         // Mixtral: [experts, hidden]
  std::vector<Expert> experts;  // Mixtral
  bool sliding = false;
  PackedWeight pq, pk, pv, po, pgate, pup, pdown;  // quantized copies for small-batch steps
  PackedWeight pqkv, pgate_up;                      // q|k|v and gate|up stacked (decoder::stack_packed)
  torch::Tensor qkv_b, gate_up_b;  // q|k|v's and gate|up's biases stacked, for the team step's stacked products
};

using decoder::proj_packed;

using Activation = std::function<torch::Tensor(const torch::Tensor&)>;
const std::map<std::string, Activation>& activations() {
  static const std::map<std::string, Activation> m = {
      {"silu", [](const torch::Tensor& x) { return torch::silu(x); }},
      {"swish", [](const torch::Tensor& x) { return torch::silu(x); }},
      {"gelu", [](const torch::Tensor& x) { return torch::gelu(x); }},
      {"gelu_pytorch_tanh", [](const torch::Tensor& x) { return torch::gelu(x, "tanh"); }},
      {"gelu_new", [](const torch::Tensor& x) { return torch::gelu(x, "tanh"); }},
      {"relu", [](const torch::Tensor& x) { return torch::relu(x); }},
  };
  return m;
}

class LlamaModel : public CausalLM {
 public:
  explicit LlamaModel(const ModelConfig& c) : CausalLM(c), rope_(c, c.rope, c.rope_theta, c.head_dim) {
    const auto& cf = config_;
    auto act = activations().find(cf.hidden_act);
    if (act == activations().end()) {
      std::string known;
      for (const auto& [n, f] : activations()) known += (known.empty() ? "" : ", ") + n;
      throw std::runtime_error(cf.source + ": hidden_act \"" + cf.hidden_act + "\" is not supported (supported: " + known + ")");
    }
    act_ = act->second;
    const int64_t H = cf.hidden_size, D = cf.head_dim, nh = cf.num_heads, nkv = cf.num_kv_heads, I = cf.intermediate_size;
    auto p = [&](const std::string& name, std::vector<int64_t> shape) { return frozen(name, std::move(shape)); };
    embed_ = p("embed_tokens", {cf.vocab_size, H});
    norm_ = p("norm", {H});
    if (!cf.tie_word_embeddings) lm_head_ = p("lm_head", {cf.vocab_size, H});
    for (int64_t i = 0; i < cf.num_layers; ++i) {
      const std::string s = "layers_" + std::to_string(i) + "_";
      Layer L;
      L.ln1 = p(s + "input_layernorm", {H});
      L.ln2 = p(s + "post_attention_layernorm", {H});
      L.q = p(s + "q_proj", {nh * D, H});
      L.k = p(s + "k_proj", {nkv * D, H});
      L.v = p(s + "v_proj", {nkv * D, H});
      L.o = p(s + "o_proj", {H, nh * D});
      if (cf.attention_bias) {
        L.qb = p(s + "q_proj_bias", {nh * D});
        L.kb = p(s + "k_proj_bias", {nkv * D});
        L.vb = p(s + "v_proj_bias", {nkv * D});
      }
      if (cf.o_bias) L.ob = p(s + "o_proj_bias", {H});
      if (cf.qk_norm) {
        L.q_norm = p(s + "q_norm", {D});
        L.k_norm = p(s + "k_norm", {D});
      }
      if (cf.num_experts > 0) {
        L.router = p(s + "router", {cf.num_experts, H});
        for (int64_t e = 0; e < cf.num_experts; ++e) {
          const std::string x = s + "expert" + std::to_string(e) + "_";
          L.experts.push_back({p(x + "w1", {I, H}), p(x + "w3", {I, H}), p(x + "w2", {H, I})});
        }
      } else {
        L.gate = p(s + "gate_proj", {I, H});
        L.up = p(s + "up_proj", {I, H});
        L.down = p(s + "down_proj", {H, I});
        if (cf.mlp_bias) {
          L.gate_b = p(s + "gate_proj_bias", {I});
          L.up_b = p(s + "up_proj_bias", {I});
          L.down_b = p(s + "down_proj_bias", {H});
        }
      }
      has_experts_ = has_experts_ || L.router.defined();
      L.sliding = cf.sliding_window > 0 && (cf.sliding_layers.empty() || (i < static_cast<int64_t>(cf.sliding_layers.size()) && cf.sliding_layers[i]));
      layers_.push_back(L);
    }
  }

  void load_weights(const WeightSource& src) override {
    torch::NoGradGuard ng;
    head_t_.reset();
    const auto& cf = config_;
    const std::string m = cf.weight_prefix;
    auto fill = [&](torch::Tensor& dst, const std::string& name) { src.copy_into(dst, name); };
    // Phi-3 stores q|k|v and gate|up as one matrix each: split along the rows.
    auto fill_split = [&](std::vector<torch::Tensor*> dst, const std::string& name) {
      torch::Tensor t = src.fetch(name, dst[0]->scalar_type());
      int64_t at = 0, rows = 0;
      for (auto* d : dst) rows += d->size(0);
      if (t.dim() != 2 || t.size(0) != rows || t.size(1) != dst[0]->size(1))
        throw std::runtime_error(src.describe() + ": tensor '" + name + "' has shape " + c10::str(t.sizes()) + ", expected [" +
                                 std::to_string(rows) + ", " + std::to_string(dst[0]->size(1)) + "] from the model config");
      for (auto* d : dst) {
        d->copy_(t.narrow(0, at, d->size(0)));
        at += d->size(0);
      }
    };
    fill(embed_, m + "embed_tokens.weight");
    fill(norm_, m + "norm.weight");
    if (lm_head_.defined()) fill(lm_head_, "lm_head.weight");
    const bool packed = embed_.scalar_type() == torch::kFloat;  // the packed kernels compute in float32
    for (size_t i = 0; i < layers_.size(); ++i) {
      const std::string s = m + "layers." + std::to_string(i) + ".";
      Layer& L = layers_[i];
      fill(L.ln1, s + "input_layernorm.weight");
      fill(L.ln2, s + "post_attention_layernorm.weight");
      if (src.has(s + "self_attn.qkv_proj.weight")) {
        fill_split({&L.q, &L.k, &L.v}, s + "self_attn.qkv_proj.weight");
      } else {
        fill(L.q, s + "self_attn.q_proj.weight");
        fill(L.k, s + "self_attn.k_proj.weight");
        fill(L.v, s + "self_attn.v_proj.weight");
      }
      fill(L.o, s + "self_attn.o_proj.weight");
      if (L.qb.defined()) {
        fill(L.qb, s + "self_attn.q_proj.bias");
        fill(L.kb, s + "self_attn.k_proj.bias");
        fill(L.vb, s + "self_attn.v_proj.bias");
      }
      if (L.ob.defined()) fill(L.ob, s + "self_attn.o_proj.bias");
      if (L.q_norm.defined()) {
        fill(L.q_norm, s + "self_attn.q_norm.weight");
        fill(L.k_norm, s + "self_attn.k_norm.weight");
      }
      if (L.router.defined()) {
        fill(L.router, s + "block_sparse_moe.gate.weight");
        for (size_t e = 0; e < L.experts.size(); ++e) {
          const std::string x = s + "block_sparse_moe.experts." + std::to_string(e) + ".";
          fill(L.experts[e].gate, x + "w1.weight");
          fill(L.experts[e].up, x + "w3.weight");
          fill(L.experts[e].down, x + "w2.weight");
        }
        continue;
      }
      if (src.has(s + "mlp.gate_up_proj.weight")) {
        fill_split({&L.gate, &L.up}, s + "mlp.gate_up_proj.weight");
      } else {
        fill(L.gate, s + "mlp.gate_proj.weight");
        fill(L.up, s + "mlp.up_proj.weight");
      }
      fill(L.down, s + "mlp.down_proj.weight");
      if (L.gate_b.defined()) {
        fill(L.gate_b, s + "mlp.gate_proj.bias");
        fill(L.up_b, s + "mlp.up_proj.bias");
        fill(L.down_b, s + "mlp.down_proj.bias");
      }
      if (packed) {
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
    if (packed) head_packed_ = src.packed(lm_head_.defined() ? "lm_head.weight" : m + "embed_tokens.weight");
    // The team step serves a model whose every matrix has quantized blocks; its stacked products
    // take the biases stacked too.
    team_ready_ = packed && !has_experts_;
    for (auto& L : layers_) {
      for (const PackedWeight* w : {&L.pq, &L.pk, &L.pv, &L.po, &L.pgate, &L.pup, &L.pdown}) team_ready_ = team_ready_ && w->defined();
      if (L.pqkv.defined() && L.qb.defined()) L.qkv_b = torch::cat({L.qb, L.kb, L.vb}).contiguous();
      if (L.pgate_up.defined() && L.gate_b.defined()) L.gate_up_b = torch::cat({L.gate_b, L.up_b}).contiguous();
    }
  }

  LMOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, const torch::Tensor& position_ids,
                   KVCache* cache, bool output_hidden_states, int64_t logits_to_keep) override {
    torch::NoGradGuard ng;  // the backbone is frozen everywhere tandem uses it
    const auto& cf = config_;
    const auto dev = embed_.device();
    const auto in = decoder::step_inputs(input_ids, attention_mask, position_ids, cache, dev);
    const int64_t B = in.B, T = in.T;
    const auto cs = rope_.tables(in.pos, embed_.scalar_type());
    const auto am_full = decoder::attention_mask(in.mask, in.padded, in.past, T);
    const auto am_window = cf.sliding_window > 0 ? decoder::attention_mask(in.mask, in.padded, in.past, T, cf.sliding_window) : am_full;
    const int64_t nh = cf.num_heads, nkv = cf.num_kv_heads, D = cf.head_dim;
    LMOutput out;
    torch::Tensor x = F::embedding(input_ids.to(dev), embed_);
    if (output_hidden_states) out.hidden_states.push_back(x);
    if (cache && fused_step_applies(in, output_hidden_states, am_full, am_window)) {
      x = team_ready_ ? team_step(x, cs, *cache) : fused_step(x, cs, *cache);
      cache->advance(T);
      if (logits_to_keep < 0) return out;
      TANDEM_SPAN("lm_head");
      out.logits = project_vocab(final_norm(x));
      return out;
    }
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& L = layers_[i];
      torch::Tensor h, q, k, v, a;
      {
        TANDEM_SPAN("norm");
        h = rms_norm(x, L.ln1, cf.rms_norm_eps);
      }
      {
        TANDEM_SPAN("qkv_proj");
        auto qkv = decoder::proj_stacked(h, L.pqkv, {{L.q, L.pq, L.qb}, {L.k, L.pk, L.kb}, {L.v, L.pv, L.vb}});
        q = qkv[0].view({B, T, nh, D}).transpose(1, 2);
        k = qkv[1].view({B, T, nkv, D}).transpose(1, 2);
        v = qkv[2].view({B, T, nkv, D}).transpose(1, 2);
      }
      {
        TANDEM_SPAN("rope");
        if (L.q_norm.defined()) {
          q = rms_norm(q, L.q_norm, cf.rms_norm_eps);
          k = rms_norm(k, L.k_norm, cf.rms_norm_eps);
        }
        q = decoder::apply_rotary(q, cs);
        k = decoder::apply_rotary(k, cs);
      }
      {
        TANDEM_SPAN("attention");
        if (cache) std::tie(k, v) = cache->append(static_cast<int64_t>(i), k, v);
        a = decoder::attend(q, k, v, L.sliding ? am_window : am_full, 1.0 / std::sqrt(static_cast<double>(D)));
        a = a.transpose(1, 2).reshape({B, T, nh * D});
      }
      {
        TANDEM_SPAN("o_proj");
        x = x + proj_packed(a, L.o, L.po, L.ob);
      }
      {
        TANDEM_SPAN("norm");
        h = rms_norm(x, L.ln2, cf.rms_norm_eps);
      }
      TANDEM_SPAN("mlp");
      if (L.router.defined()) {
        x = x + sparse_moe(h, L);
      } else {
        auto gate_up = decoder::proj_stacked(h, L.pgate_up, {{L.gate, L.pgate, L.gate_b}, {L.up, L.pup, L.up_b}});
        x = x + proj_packed(act_(gate_up[0]) * gate_up[1], L.down, L.pdown, L.down_b);
      }
      if (output_hidden_states) out.hidden_states.push_back(x);
    }
    if (cache) cache->advance(T);
    if (logits_to_keep < 0) return out;
    if (logits_to_keep > 0 && logits_to_keep < T) x = x.narrow(1, T - logits_to_keep, logits_to_keep);
    TANDEM_SPAN("lm_head");
    out.logits = project_vocab(final_norm(x));
    return out;
  }

  torch::Tensor final_norm(const torch::Tensor& h) const override { return rms_norm(h, norm_, config_.rms_norm_eps); }

  torch::Tensor project_vocab(const torch::Tensor& x) override {
    return decoder::project_head(x, lm_head_.defined() ? lm_head_ : embed_, head_t_, head_packed_);
  }


 private:
  // ---- One sequence's decode step on its own buffers ----
  // The layer loop above costs ~40 torch dispatches and temporaries per layer (views, transposes,
  // the cache's narrows and copies, residual adds) for one token's few thousand values: on
  // SmolLM2-135M ~1 ms of a ~3 ms step once the products ran at memory speed. This step keeps the
  // hidden state, q/k/v and the attention output in float32 buffers and runs the norms, RoPE, the
  // cache write, attention and residual adds as the loops of decode_step_ops on them; only the
  // products (and the gate activation) remain torch calls, the very functions the loop above
  // calls. The values are those of the loop above, bit for bit (tests/cpp/models_test.cpp), where
  // that loop takes the decode_step_ops loops too (its per-head q/k norms do up to 16 heads).

  /// One token of one sequence, float32 on the CPU, no padding or window mask to apply, no hidden
  /// states asked for, and no mixture-of-experts layer.
  bool fused_step_applies(const decoder::StepInputs& in, bool hidden, const decoder::AttentionMask& full,
                          const decoder::AttentionMask& window) const {
    return in.B == 1 && in.T == 1 && !hidden && !full.allowed.defined() && !full.causal && !window.allowed.defined() &&
           !window.causal && embed_.scalar_type() == torch::kFloat && embed_.device().is_cpu() && !has_experts_ &&
           !torch::GradMode::is_enabled();
  }

  /// x [1, 1, hidden] (the token's embedding) through every layer; returns the last layer's output.
  torch::Tensor fused_step(const torch::Tensor& x_in, const std::pair<torch::Tensor, torch::Tensor>& cs, KVCache& cache) {
    TANDEM_SPAN("fused_step");  // which path a step took, for the profiler (and the test)
    const auto& cf = config_;
    decoder::FusedStep st(x_in, cf, 1.0 / std::sqrt(static_cast<double>(cf.head_dim)));
    const auto cos = cs.first.to(torch::kFloat).contiguous(), sin = cs.second.to(torch::kFloat).contiguous();
    st.attention.cos = cos.data_ptr<float>();
    st.attention.sin = sin.data_ptr<float>();
    st.attention.rd = cos.size(-1);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& L = layers_[i];
      // 1. Attention: norm, q|k|v, per-head q/k norms (Qwen3), RoPE, cache write, attention; o
      // and the residual add.
      st.attention.q_norm = L.q_norm.defined() ? L.q_norm.data_ptr<float>() : nullptr;
      st.attention.k_norm = L.k_norm.defined() ? L.k_norm.data_ptr<float>() : nullptr;
      st.attend(L.ln1, L.pqkv, {{L.q, L.pq, L.qb}, {L.k, L.pk, L.kb}, {L.v, L.pv, L.vb}}, cache, static_cast<int64_t>(i));
      {
        TANDEM_SPAN("o_proj");
        decoder::add_row(st.stream(), proj_packed(st.a, L.o, L.po, L.ob).data_ptr<float>(), cf.hidden_size);
      }
      // 2. MLP: norm, gate|up, activation times up, down, the residual add.
      st.norm_into_h(L.ln2);
      TANDEM_SPAN("mlp");
      auto gate_up = decoder::proj_stacked(st.h, L.pgate_up, {{L.gate, L.pgate, L.gate_b}, {L.up, L.pup, L.up_b}});
      decoder::add_row(st.stream(), proj_packed(act_(gate_up[0]) * gate_up[1], L.down, L.pdown, L.down_b).data_ptr<float>(),
                       cf.hidden_size);
    }
    return st.x;
  }

  /// The team step's view of layer L (team_step.h; its matrices all packed). Made per step, as
  /// fused_step reads its weights: pointers kept across steps would outlive a dtype change.
  static decoder::TeamLayer team_layer(const Layer& L) {
    auto data = [](const torch::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; };
    decoder::TeamLayer t;
    t.ln_in = data(L.ln1);
    t.ln_pre_ff = data(L.ln2);
    t.q_norm = data(L.q_norm);
    t.k_norm = data(L.k_norm);
    t.qkv = L.pqkv.defined() ? std::vector<decoder::TeamPart>{{&L.pqkv, data(L.qkv_b)}}
                             : std::vector<decoder::TeamPart>{{&L.pq, data(L.qb)}, {&L.pk, data(L.kb)}, {&L.pv, data(L.vb)}};
    t.gate_up = L.pgate_up.defined() ? std::vector<decoder::TeamPart>{{&L.pgate_up, data(L.gate_up_b)}}
                                     : std::vector<decoder::TeamPart>{{&L.pgate, data(L.gate_b)}, {&L.pup, data(L.up_b)}};
    t.o = {&L.po, data(L.ob)};
    t.down = {&L.pdown, data(L.down_b)};
    return t;
  }

  /// fused_step on a team of threads (team_step.h) when every layer's matrices are packed: one
  /// parallel region for the whole step instead of ~5 per layer, and no torch dispatch but the
  /// activation's. Same values as fused_step, bit for bit (tests/cpp/models_test.cpp).
  torch::Tensor team_step(const torch::Tensor& x_in, const std::pair<torch::Tensor, torch::Tensor>& cs, KVCache& cache) {
    TANDEM_SPAN("team_step");  // which path a step took, for the profiler (and the test)
    const auto& cf = config_;
    auto x = x_in.contiguous().clone();
    const auto cos = cs.first.to(torch::kFloat).contiguous(), sin = cs.second.to(torch::kFloat).contiguous();
    decoder::TeamModel m = decoder::team_model(cf, 1.0 / std::sqrt(static_cast<double>(cf.head_dim)));
    m.act = act_;
    m.cos = cos.data_ptr<float>();
    m.sin = sin.data_ptr<float>();
    m.rd = cos.size(-1);
    std::vector<decoder::TeamLayer> layers;
    for (const auto& L : layers_) layers.push_back(team_layer(L));
    decoder::team_step(x.data_ptr<float>(), m, layers, cache);
    return x;
  }

  // Mixtral's MLP: softmax router over experts (float32), the top k renormalised, each token's
  // output the weighted sum of its experts' SwiGLU outputs.
  torch::Tensor sparse_moe(const torch::Tensor& h, const Layer& L) const {
    const auto shape = h.sizes().vec();
    auto flat = h.reshape({-1, h.size(-1)});
    auto probs = torch::softmax(torch::linear(flat, L.router).to(torch::kFloat), -1);
    auto [w, idx] = probs.topk(config_.experts_per_token, -1);
    w = (w / w.sum(-1, true)).to(h.scalar_type());
    auto out = torch::zeros_like(flat);
    for (int64_t e = 0; e < static_cast<int64_t>(L.experts.size()); ++e) {
      auto hit = (idx == e);
      auto rows = hit.any(-1).nonzero().squeeze(-1);
      if (rows.numel() == 0) continue;
      const Expert& E = L.experts[e];
      auto xe = flat.index_select(0, rows);
      auto ye = torch::linear(act_(torch::linear(xe, E.gate)) * torch::linear(xe, E.up), E.down);
      auto we = (w * hit.to(w.scalar_type())).sum(-1).index_select(0, rows).unsqueeze(-1);
      out.index_add_(0, rows, ye * we);
    }
    return out.view(shape);
  }

  torch::Tensor embed_, norm_, lm_head_;
  decoder::RotaryEmbedding rope_;
  Activation act_;
  decoder::TransposedHead head_t_;
  PackedWeight head_packed_;
  std::vector<Layer> layers_;
  bool has_experts_ = false;
  bool team_ready_ = false;  // every layer's matrices packed: batch-1 steps take team_step
};

}  // namespace

TANDEM_REGISTER(CausalLM, "llama", LlamaModel);
TANDEM_REGISTER(CausalLM, "mistral", LlamaModel);
TANDEM_REGISTER(CausalLM, "mixtral", LlamaModel);
TANDEM_REGISTER(CausalLM, "qwen2", LlamaModel);
TANDEM_REGISTER(CausalLM, "qwen3", LlamaModel);
TANDEM_REGISTER(CausalLM, "phi3", LlamaModel);

}  // namespace tandem

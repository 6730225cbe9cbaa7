// Loading decoder LMs: HF directories (config.json + safetensors, sharded or single) and GGUF
// files (metadata -> ModelConfig, llama.cpp tensor names -> HF names, dequantized on load).
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/core/files.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/models/causal_lm.h"
#include "tandem/core/formats/gguf.h"

namespace fs = std::filesystem;

namespace tandem {
namespace {

[[noreturn]] void bad_config(const std::string& file, const std::string& what) {
  throw std::runtime_error(file + ": " + what);
}

template <class T>
T json_get(const nlohmann::json& j, const std::string& file, const char* key, const T& fallback, bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) bad_config(file, std::string("missing key \"") + key + "\"");
    return fallback;
  }
  if constexpr (std::is_same_v<T, int64_t>) {
    // 12.5 or "12" must not become 12: sizes are whole numbers.
    if (!j[key].is_number_integer()) bad_config(file, std::string("key \"") + key + "\" must be an integer, got " + j[key].dump());
  }
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    bad_config(file, std::string("key \"") + key + "\" has the wrong type (" + j[key].dump() + ")");
  }
}

std::string known_architectures() {
  std::string list;
  return Registry<CausalLM>::instance().known();
}

// ---- HF safetensors ----
class HfWeights : public WeightSource {
 public:
  explicit HfWeights(const std::string& dir) : dir_(dir) {
    const fs::path index = fs::path(dir) / "model.safetensors.index.json";
    std::vector<std::string> shards;
    if (fs::exists(index)) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(read_file(index.string()));
      } catch (const nlohmann::json::exception& e) {
        bad_config(index.string(), std::string("not valid JSON (") + e.what() + ")");
      }
      if (!j.contains("weight_map") || !j["weight_map"].is_object()) bad_config(index.string(), "missing \"weight_map\"");
      std::set<std::string> files;
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string()) bad_config(index.string(), "weight_map[\"" + it.key() + "\"] must be a file name");
        const std::string f = it.value().get<std::string>();
        // A shard is a file in this directory: no absolute paths, no "..", no sub-directories
        // that climb out (an index must not make tandem read files elsewhere).
        const fs::path rel(f);
        bool escapes = f.empty() || rel.is_absolute();
        for (const auto& part : rel) escapes = escapes || part == "..";
        if (escapes)
          bad_config(index.string(), "weight_map[\"" + it.key() + "\"] = \"" + f + "\" is not a file inside " + dir);
        files.insert(f);
      }
      shards.assign(files.begin(), files.end());
    } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
      shards.push_back("model.safetensors");
    } else {
      throw std::runtime_error(dir + ": no model.safetensors or model.safetensors.index.json (expected an HF model directory)");
    }
    for (const auto& s : shards) {
      files_.push_back(load_safetensors((fs::path(dir) / s).string(), true));
      for (const auto& kv : files_.back().tensors) where_[kv.first] = &kv.second;
    }
  }
  bool has(const std::string& name) const override { return where_.count(name) > 0; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : where_) out.push_back(kv.first);
    return out;
  }
  std::string describe() const override { return dir_; }

 protected:
  torch::Tensor get(const std::string& name, c10::ScalarType dtype) const override {
    auto it = where_.find(name);
    if (it == where_.end()) throw std::runtime_error(describe() + ": missing tensor '" + name + "'");
    return it->second->to(dtype);
  }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, const at::Tensor*> where_;
};

// ---- GGUF ----
class GgufWeights : public WeightSource {
 public:
  GgufWeights(std::shared_ptr<gguf::GgufFile> f, const ModelConfig& c)
      : f_(std::move(f)), norm_shift_(c.architecture == "gemma3") {
    auto map = [&](const std::string& hf, const std::string& gg, int64_t permute_heads = 0) {
      if (f_->has_tensor(gg)) names_[hf] = {gg, permute_heads};
    };
    map("model.embed_tokens.weight", "token_embd.weight");
    map("model.norm.weight", "output_norm.weight");
    map("lm_head.weight", "output.weight");
    const bool gemma = c.architecture == "gemma3";
    // llama.cpp's converter permutes Q and K rows of "llama" models for its interleaved RoPE;
    // tandem uses HF's rotate-half RoPE, so those rows are permuted back on load.
    const bool permuted = c.architecture == "llama";
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string h = "model.layers." + std::to_string(i) + ".", g = "blk." + std::to_string(i) + ".";
      map(h + "input_layernorm.weight", g + "attn_norm.weight");
      if (gemma) {
        map(h + "post_attention_layernorm.weight", g + "post_attention_norm.weight");
        map(h + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight");
        map(h + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight");
        map(h + "self_attn.q_norm.weight", g + "attn_q_norm.weight");
        map(h + "self_attn.k_norm.weight", g + "attn_k_norm.weight");
      } else {
        map(h + "post_attention_layernorm.weight", g + "ffn_norm.weight");
        map(h + "self_attn.q_norm.weight", g + "attn_q_norm.weight");
        map(h + "self_attn.k_norm.weight", g + "attn_k_norm.weight");
      }
      map(h + "self_attn.q_proj.weight", g + "attn_q.weight", permuted ? c.num_heads : 0);
      map(h + "self_attn.k_proj.weight", g + "attn_k.weight", permuted ? c.num_kv_heads : 0);
      map(h + "self_attn.v_proj.weight", g + "attn_v.weight");
      map(h + "self_attn.o_proj.weight", g + "attn_output.weight");
      map(h + "self_attn.q_proj.bias", g + "attn_q.bias");
      map(h + "self_attn.k_proj.bias", g + "attn_k.bias");
      map(h + "self_attn.v_proj.bias", g + "attn_v.bias");
      map(h + "mlp.gate_proj.weight", g + "ffn_gate.weight");
      map(h + "mlp.up_proj.weight", g + "ffn_up.weight");
      map(h + "mlp.down_proj.weight", g + "ffn_down.weight");
    }
  }
  bool has(const std::string& name) const override { return names_.count(name) > 0; }
  /// HF names for the tensors tandem maps, and the file's own names for any it does not.
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    std::set<std::string> mapped;
    for (const auto& kv : names_) out.push_back(kv.first), mapped.insert(kv.second.first);
    for (const auto& t : f_->tensors())
      if (!mapped.count(t.name) && t.name != "rope_freqs.weight") out.push_back(t.name);  // rope_freqs is read into the config
    return out;
  }

 protected:
  torch::Tensor get(const std::string& name, c10::ScalarType dtype) const override {
    auto it = names_.find(name);
    if (it == names_.end()) throw std::runtime_error(describe() + ": missing tensor for '" + name + "'");
    torch::Tensor t = f_->load(it->second.first, torch::kFloat);
    if (const int64_t heads = it->second.second) {
      // Inverse of the converter's reshape(heads, 2, rows/heads/2, cols).swapaxes(1, 2).
      const int64_t rows = t.size(0);
      t = t.reshape({heads, rows / heads / 2, 2, -1}).transpose(1, 2).reshape(t.sizes());
    }
    // Gemma's converter stores RMSNorm weights as 1 + w; the HF layout holds w.
    if (norm_shift_ && name.find("norm.weight") != std::string::npos) t = t - 1.0;
    return t.to(dtype).contiguous();
  }

 public:
  std::string describe() const override { return f_->path(); }

  PackedWeight packed(const std::string& name) const override {
    auto it = names_.find(name);
    // Gemma's norms are stored shifted (1 + w) and are never packed; its matrices are.
    if (it == names_.end() || (norm_shift_ && name.find("norm.weight") != std::string::npos)) return {};
    const auto& info = f_->info(it->second.first);
    const auto type = static_cast<gguf::GgmlType>(info.type);
    if (info.ne.size() != 2 || !packed_supported(type)) return {};
    PackedWeight w;
    w.type = type;
    w.rows = info.ne[1];
    w.cols = info.ne[0];
    w.raw = f_->raw(it->second.first).view({w.rows, -1});  // a view of the mapping
    if (const int64_t heads = it->second.second) {
      // The same row un-permutation as get(), applied to whole quantized rows.
      auto idx = torch::arange(w.rows).reshape({heads, w.rows / heads / 2, 2}).transpose(1, 2).reshape({w.rows});
      w.raw = w.raw.index_select(0, idx);
    }
    return w;
  }

 private:
  std::shared_ptr<gguf::GgufFile> f_;
  bool norm_shift_;
  std::map<std::string, std::pair<std::string, int64_t>> names_;
};

void check_model_sizes(const ModelConfig& c) {
  // Every size read from a file is checked before anything is allocated from it: a damaged or
  // hostile config must end in a message, not in a 10^9-layer allocation or a division by zero.
  auto in = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      bad_config(c.source, std::string(name) + " = " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " +
                               std::to_string(hi) + "]");
  };
  in("vocab size", c.vocab_size, 1, 1LL << 24);
  in("hidden size", c.hidden_size, 1, 1LL << 17);
  in("number of layers", c.num_layers, 1, 4096);
  in("attention heads", c.num_heads, 1, 4096);
  in("key/value heads", c.num_kv_heads, 1, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    bad_config(c.source, "attention heads (" + std::to_string(c.num_heads) + ") must be a multiple of key/value heads (" +
                             std::to_string(c.num_kv_heads) + ")");
  in("head dimension", c.head_dim, 1, 1LL << 14);
  in("intermediate size", c.intermediate_size, 1, 1LL << 20);
  in("context length", c.max_positions, 1, 1LL << 24);
  if (!(c.rms_norm_eps > 0 && c.rms_norm_eps < 1)) bad_config(c.source, "norm epsilon " + std::to_string(c.rms_norm_eps) + " is outside (0, 1)");
  if (!(c.rope_theta > 0)) bad_config(c.source, "RoPE base " + std::to_string(c.rope_theta) + " must be positive");
  // The weights these sizes imply, in elements (doubles: no overflow): at most 2^40.
  const double h = static_cast<double>(c.hidden_size), d = static_cast<double>(c.head_dim);
  const double per_layer = h * d * static_cast<double>(2 * c.num_heads + 2 * c.num_kv_heads) + 3.0 * h * static_cast<double>(c.intermediate_size);
  const double total = static_cast<double>(c.vocab_size) * h * (c.tie_word_embeddings ? 1 : 2) + static_cast<double>(c.num_layers) * per_layer;
  if (total > 1099511627776.0)
    bad_config(c.source, "the sizes imply " + std::to_string(total) + " weights, beyond any loadable model (2^40)");
}

ModelConfig config_from_gguf(const gguf::GgufFile& f) {
  ModelConfig c;
  c.source = f.path();
  c.architecture = f.get_string("general.architecture");
  // The GGUF tensor layouts tandem maps (llama.cpp writes Llama, Mistral and SmolLM as "llama").
  if (c.architecture != "llama" && c.architecture != "qwen2" && c.architecture != "gemma3" && c.architecture != "qwen3")
    throw std::runtime_error(f.path() + ": GGUF architecture '" + c.architecture +
                             "' is not supported (supported: llama, qwen2, qwen3, gemma3; load the HF directory instead)");
  if (!Registry<CausalLM>::instance().contains(c.architecture))
    throw std::runtime_error(f.path() + ": unknown architecture '" + c.architecture + "' (known: " + known_architectures() + ")");
  const std::string a = c.architecture + ".";
  c.hidden_size = f.get_int(a + "embedding_length");
  c.num_layers = f.get_int(a + "block_count");
  c.num_heads = f.get_int(a + "attention.head_count");
  c.num_kv_heads = f.get_int(a + "attention.head_count_kv", c.num_heads);
  c.intermediate_size = f.get_int(a + "feed_forward_length");
  c.head_dim = f.get_int(a + "attention.key_length", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.rms_norm_eps = f.get_float(a + "attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = f.get_float(a + "rope.freq_base", 10000.0);
  c.max_positions = f.get_int(a + "context_length", 2048);
  c.vocab_size = f.has(a + "vocab_size") ? f.get_int(a + "vocab_size")
                                        : f.info("token_embd.weight").shape()[0];
  c.tie_word_embeddings = !f.has_tensor("output.weight");
  c.attention_bias = f.has_tensor("blk.0.attn_q.bias");
  c.o_bias = f.has_tensor("blk.0.attn_output.bias");
  c.qk_norm = c.architecture == "qwen3";
  if (c.o_bias || f.has_tensor("blk.0.ffn_up.bias"))
    throw std::runtime_error(f.path() + ": output or MLP biases in a GGUF are not supported");
  c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  c.eos_token_id = f.get_int("tokenizer.ggml.eos_token_id", -1);
  c.pad_token_id = f.get_int("tokenizer.ggml.padding_token_id", c.eos_token_id);
  check_model_sizes(c);  // before the per-layer tables below are sized from num_layers
  if (c.architecture == "gemma3") {
    // As llama.cpp reads Gemma 3: every 6th layer global, the rest sliding with RoPE base 10^4,
    // attention scaled by head_dim^-0.5, embeddings tied.
    c.sliding_window = f.get_int(a + "attention.sliding_window", 0);
    for (int64_t i = 0; i < c.num_layers; ++i) c.sliding_layers.push_back((i + 1) % 6 != 0);
    c.rope_local_theta = 10000.0;
    c.query_pre_attn_scalar = static_cast<double>(c.head_dim);
    c.tie_word_embeddings = true;
    c.qk_norm = true;
    c.hidden_act = "gelu_pytorch_tanh";
  } else if (f.has(a + "attention.sliding_window")) {
    c.sliding_window = f.get_int(a + "attention.sliding_window");  // every layer (Mistral)
  }
  // RoPE: partial rotation, per-frequency factors (Llama 3.1+: rope_freqs), scaling keys.
  const int64_t rot = f.get_int(a + "rope.dimension_count", c.head_dim);
  c.partial_rotary_factor = static_cast<double>(rot) / static_cast<double>(c.head_dim);
  if (f.has_tensor("rope_freqs.weight")) {
    auto t = f.load("rope_freqs.weight", torch::kFloat).to(torch::kDouble).contiguous();
    c.rope.freq_factors.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  }
  const std::string scaling = f.has(a + "rope.scaling.type") ? f.get_string(a + "rope.scaling.type") : "none";
  if (scaling == "linear" || scaling == "yarn") {
    c.rope.type = scaling;
    c.rope.factor = f.get_float(a + "rope.scaling.factor", 1.0);
    c.rope.factor_set = f.has(a + "rope.scaling.factor");
    c.rope.original_max_positions = f.get_int(a + "rope.scaling.original_context_length", c.max_positions);
    if (scaling == "yarn" && f.has(a + "rope.scaling.attn_factor")) c.rope.attention_factor = f.get_float(a + "rope.scaling.attn_factor");
  } else if (scaling != "none") {
    throw std::runtime_error(f.path() + ": " + a + "rope.scaling.type \"" + scaling + "\" is not supported (supported: none, linear, yarn)");
  }
  return c;
}

// One RoPE parameter object: every key is read or refused by name.
void read_rope(const nlohmann::json& r, const std::string& path, const std::string& where, RopeScaling& out, double& theta,
               double& partial) {
  for (auto it = r.begin(); it != r.end(); ++it) {
    const std::string& k = it.key();
    const auto& v = it.value();
    auto num = [&]() -> double {
      if (!v.is_number()) bad_config(path, where + "." + k + " must be a number, got " + v.dump());
      return v.get<double>();
    };
    auto list = [&]() {
      if (!v.is_array()) bad_config(path, where + "." + k + " must be a list of numbers");
      std::vector<double> xs;
      for (const auto& x : v) {
        if (!x.is_number()) bad_config(path, where + "." + k + " must be a list of numbers");
        xs.push_back(x.get<double>());
      }
      return xs;
    };
    if (v.is_null()) continue;
    if (k == "rope_type" || k == "type") {
      if (!v.is_string()) bad_config(path, where + "." + k + " must be a string");
      out.type = v.get<std::string>();
    } else if (k == "factor") out.factor = num(), out.factor_set = true;
    else if (k == "original_max_position_embeddings") out.original_max_positions = static_cast<int64_t>(num());
    else if (k == "low_freq_factor") out.low_freq_factor = num();
    else if (k == "high_freq_factor") out.high_freq_factor = num();
    else if (k == "beta_fast") out.beta_fast = num();
    else if (k == "beta_slow") out.beta_slow = num();
    else if (k == "mscale") out.mscale = num();
    else if (k == "mscale_all_dim") out.mscale_all_dim = num();
    else if (k == "attention_factor") out.attention_factor = num();
    else if (k == "truncate") out.truncate = v.is_boolean() ? v.get<bool>() : (bad_config(path, where + ".truncate must be true or false"), true);
    else if (k == "short_factor") out.short_factor = list();
    else if (k == "long_factor") out.long_factor = list();
    else if (k == "rope_theta") theta = num();
    else if (k == "partial_rotary_factor") partial = num();
    else bad_config(path, where + "." + k + " is not a RoPE setting tandem knows (value " + v.dump() + ")");
  }
  if (out.type == "default" && out.factor != 1.0) bad_config(path, where + ".factor is set but rope_type is default");
  if (!(out.factor > 0)) bad_config(path, where + ".factor must be positive");
}

}  // namespace

ModelConfig read_hf_config(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    bad_config(path, std::string("not valid JSON (") + e.what() + ")");
  }
  ModelConfig c;
  c.source = path;
  c.architecture = json_get<std::string>(j, path, "model_type", "", true);
  // Multimodal checkpoints (Gemma 3 4B+) nest the language model's config under text_config;
  // its tensors sit under a language-model prefix, found from the weights at load time.
  if (j.contains("text_config") && j["text_config"].is_object()) {
    if (c.architecture != "gemma3")
      bad_config(path, "model_type \"" + c.architecture + "\" nests a text_config; only Gemma 3's multimodal layout is supported");
    nlohmann::json text = j["text_config"];
    for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings"})
      if (!text.contains(key) && j.contains(key)) text[key] = j[key];
    j = std::move(text);
    c.architecture = "gemma3_text";
    c.skipped_prefixes = {"model.vision_tower.", "model.multi_modal_projector.", "vision_tower.", "multi_modal_projector."};
  }
  if (!Registry<CausalLM>::instance().contains(c.architecture))
    bad_config(path, "unknown architecture model_type \"" + c.architecture + "\" (known: " + known_architectures() + ")");
  if (c.architecture == "gpt2") {
    // GPT-2's config.json has its own names; the layer norm epsilon goes to rms_norm_eps.
    c.vocab_size = json_get<int64_t>(j, path, "vocab_size", 0, true);
    c.hidden_size = json_get<int64_t>(j, path, "n_embd", 0, true);
    c.num_layers = json_get<int64_t>(j, path, "n_layer", 0, true);
    c.num_heads = c.num_kv_heads = json_get<int64_t>(j, path, "n_head", 0, true);
    c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
    c.intermediate_size = json_get<int64_t>(j, path, "n_inner", 4 * c.hidden_size, false);
    c.max_positions = json_get<int64_t>(j, path, "n_positions", 1024, false);
    c.rms_norm_eps = json_get<double>(j, path, "layer_norm_epsilon", 1e-5, false);
    c.tie_word_embeddings = true;
    const std::string act = json_get<std::string>(j, path, "activation_function", "gelu_new", false);
    if (act != "gelu_new") bad_config(path, "activation_function \"" + act + "\" is not supported (expected gelu_new)");
    for (const char* flag : {"scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"})
      if (json_get<bool>(j, path, flag, false, false)) bad_config(path, std::string(flag) + " = true is not supported");
    c.bos_token_id = json_get<int64_t>(j, path, "bos_token_id", -1, false);
    c.eos_token_id = json_get<int64_t>(j, path, "eos_token_id", -1, false);
    check_model_sizes(c);
    return c;
  }
  c.vocab_size = json_get<int64_t>(j, path, "vocab_size", 0, true);
  c.hidden_size = json_get<int64_t>(j, path, "hidden_size", 0, true);
  c.num_layers = json_get<int64_t>(j, path, "num_hidden_layers", 0, true);
  c.num_heads = json_get<int64_t>(j, path, "num_attention_heads", 0, true);
  c.num_kv_heads = json_get<int64_t>(j, path, "num_key_value_heads", c.num_heads, false);
  c.intermediate_size = json_get<int64_t>(j, path, "intermediate_size", 0, true);
  c.head_dim = json_get<int64_t>(j, path, "head_dim", c.hidden_size / std::max<int64_t>(1, c.num_heads), false);
  c.rms_norm_eps = json_get<double>(j, path, "rms_norm_eps", 1e-6, false);
  c.max_positions = json_get<int64_t>(j, path, "max_position_embeddings", 2048, false);
  c.tie_word_embeddings = json_get<bool>(j, path, "tie_word_embeddings", false, false);
  const std::string& arch = c.architecture;
  const bool gemma = arch == "gemma3_text" || arch == "gemma2";
  // Biases: Qwen2 always has q/k/v biases; Llama's attention_bias adds them to q/k/v and o.
  const bool attention_bias = json_get<bool>(j, path, "attention_bias", false, false);
  c.attention_bias = arch == "qwen2" || attention_bias;
  c.o_bias = attention_bias && arch != "qwen2" && arch != "qwen3";
  c.mlp_bias = json_get<bool>(j, path, "mlp_bias", false, false);
  if (gemma && (attention_bias || c.mlp_bias)) bad_config(path, "attention_bias / mlp_bias = true is not supported for Gemma");
  c.qk_norm = arch == "qwen3" || arch == "gemma3_text";
  c.hidden_act = json_get<std::string>(j, path, gemma ? "hidden_activation" : "hidden_act", gemma ? "gelu_pytorch_tanh" : "silu", false);
  if (gemma && c.hidden_act != "gelu_pytorch_tanh")
    bad_config(path, "hidden_activation \"" + c.hidden_act + "\" is not supported (expected gelu_pytorch_tanh)");
  c.partial_rotary_factor = json_get<double>(j, path, "partial_rotary_factor", 1.0, false);
  if (json_get<int64_t>(j, path, "pretraining_tp", 1, false) != 1)
    bad_config(path, "pretraining_tp != 1 is not supported (it splits the projections for training only; expected 1)");
  if (arch == "mixtral") {
    c.num_experts = json_get<int64_t>(j, path, "num_local_experts", 0, true);
    c.experts_per_token = json_get<int64_t>(j, path, "num_experts_per_tok", 2, false);
    if (c.num_experts < 1 || c.experts_per_token < 1 || c.experts_per_token > c.num_experts)
      bad_config(path, "num_experts_per_tok must be in [1, num_local_experts]");
  }
  // RoPE base at the top level (older configs) or under rope_parameters (transformers 5).
  c.rope_theta = json_get<double>(j, path, "rope_theta", 10000.0, false);
  check_model_sizes(c);  // before anything is sized from these numbers
  // Sliding-window attention: layer_types when the file lists them, else the family's rule.
  c.sliding_window = json_get<int64_t>(j, path, "sliding_window", 0, false);
  if (j.contains("layer_types") && j["layer_types"].is_array()) {
    for (const auto& t : j["layer_types"]) {
      if (!t.is_string() || (t != "sliding_attention" && t != "full_attention"))
        bad_config(path, "layer_types must list \"sliding_attention\" or \"full_attention\" per layer, got " + t.dump());
      c.sliding_layers.push_back(t.get<std::string>() == "sliding_attention");
    }
    if (static_cast<int64_t>(c.sliding_layers.size()) != c.num_layers)
      bad_config(path, "layer_types has " + std::to_string(c.sliding_layers.size()) + " entries for " +
                           std::to_string(c.num_layers) + " layers (num_hidden_layers)");
  } else if (arch == "qwen2" || arch == "qwen3") {
    const bool use = json_get<bool>(j, path, "use_sliding_window", false, false);
    const int64_t from = json_get<int64_t>(j, path, "max_window_layers", c.num_layers, false);
    for (int64_t i = 0; i < c.num_layers; ++i) c.sliding_layers.push_back(use && i >= from);
  } else if (arch == "gemma3_text") {
    const int64_t pattern = std::max<int64_t>(1, json_get<int64_t>(j, path, "sliding_window_pattern", 6, false));
    for (int64_t i = 0; i < c.num_layers; ++i) c.sliding_layers.push_back((i + 1) % pattern != 0);
  } else if (arch == "gemma2") {
    for (int64_t i = 0; i < c.num_layers; ++i) c.sliding_layers.push_back(i % 2 == 0);
  } else if (arch == "llama" && c.sliding_window > 0) {
    bad_config(path, "sliding_window is set but Llama attends globally (expected null)");
  }
  if ((arch == "qwen2" || arch == "qwen3") && !json_get<bool>(j, path, "use_sliding_window", false, false)) c.sliding_window = 0;
  if (gemma) {
    c.tie_word_embeddings = json_get<bool>(j, path, "tie_word_embeddings", true, false);
    c.query_pre_attn_scalar = json_get<double>(j, path, "query_pre_attn_scalar", static_cast<double>(c.head_dim), false);
    c.final_logit_softcapping = json_get<double>(j, path, "final_logit_softcapping", 0.0, false);
    c.attn_logit_softcapping = json_get<double>(j, path, "attn_logit_softcapping", 0.0, false);
    c.rope_local_theta = json_get<double>(j, path, "rope_local_base_freq", arch == "gemma2" ? c.rope_theta : 10000.0, false);
    if (arch == "gemma2") c.rope_local_theta = c.rope_theta;  // one base for both kinds of layer
  } else {
    for (const char* key : {"final_logit_softcapping", "attn_logit_softcapping"})
      if (json_get<double>(j, path, key, 0.0, false) > 0) bad_config(path, std::string(key) + " is not supported for " + arch);
  }
  // RoPE scaling: rope_scaling (older) or rope_parameters (transformers 5; per layer kind for Gemma 3).
  const int64_t top_orig = json_get<int64_t>(j, path, "original_max_position_embeddings", 0, false);  // Phi-3 keeps it here
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  if (present("rope_scaling") && present("rope_parameters"))
    bad_config(path, "both rope_scaling and rope_parameters are set; keep one (transformers 5 writes rope_parameters)");
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!present(key)) continue;
    if (!j[key].is_object()) bad_config(path, std::string(key) + " must be an object");
    const auto& r = j[key];
    if (r.contains("full_attention") || r.contains("sliding_attention")) {
      for (auto it = r.begin(); it != r.end(); ++it) {
        if (it.key() != "full_attention" && it.key() != "sliding_attention")
          bad_config(path, std::string(key) + "." + it.key() + " is not a layer kind (expected full_attention, sliding_attention)");
        RopeScaling scratch;
        double theta = 0, partial = 0;
        read_rope(it.value(), path, std::string(key) + "." + it.key(), it.key() == "full_attention" ? c.rope : scratch, theta, partial);
        if (it.key() == "sliding_attention" && scratch.type != "default")
          bad_config(path, std::string(key) + ".sliding_attention.rope_type \"" + scratch.type + "\" is not supported (expected default)");
        if (theta > 0) (it.key() == "full_attention" ? c.rope_theta : c.rope_local_theta) = theta;
      }
    } else {
      double theta = 0, partial = 0;
      read_rope(r, path, key, c.rope, theta, partial);
      if (theta > 0) c.rope_theta = theta;
      if (partial > 0) c.partial_rotary_factor = partial;
    }
  }
  if (top_orig > 0 && c.rope.type != "default") c.rope.original_max_positions = top_orig;
  if (arch == "gemma2") c.rope_local_theta = c.rope_theta;
  auto token_id = [&](const char* key) -> int64_t {
    if (!j.contains(key) || j[key].is_null()) return -1;
    if (j[key].is_array()) return j[key].empty() ? -1 : j[key][0].get<int64_t>();
    return j[key].get<int64_t>();
  };
  c.bos_token_id = token_id("bos_token_id");
  c.eos_token_id = token_id("eos_token_id");
  c.pad_token_id = token_id("pad_token_id");
  check_model_sizes(c);
  return c;
}

namespace {

// Tensors in the file that no layer took: an error listing them (a setting the model ignored
// would otherwise go unnoticed), except those HF ignores too (rotary caches, a tied head's copy)
// and a multimodal file's vision tower, which is skipped with a note.
void report_unused(const WeightSource& src, const ModelConfig& cfg) {
  std::vector<std::string> unused;
  size_t skipped = 0;
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& n : src.names()) {
    if (src.used().count(n) || ends_with(n, "rotary_emb.inv_freq") || ends_with(n, ".attn.masked_bias") ||
        (cfg.architecture == "gpt2" && ends_with(n, ".attn.bias")) || (cfg.tie_word_embeddings && ends_with(n, "lm_head.weight")))
      continue;
    bool skip = false;
    for (const auto& p : cfg.skipped_prefixes) skip = skip || n.compare(0, p.size(), p) == 0;
    if (skip) {
      ++skipped;
      continue;
    }
    unused.push_back(n);
  }
  if (skipped) std::fprintf(stderr, "[tandem] %s: %zu vision-tower tensors skipped (tandem runs the text model)\n", src.describe().c_str(), skipped);
  if (unused.empty()) return;
  std::string list;
  for (size_t i = 0; i < unused.size() && i < 8; ++i) list += (i ? ", " : "") + unused[i];
  if (unused.size() > 8) list += ", ... (" + std::to_string(unused.size()) + " in all)";
  throw std::runtime_error(src.describe() + ": the file holds tensors the " + cfg.architecture +
                           " model does not use (a setting in config.json may be missing): " + list);
}

}  // namespace

std::shared_ptr<CausalLM> load_causal_lm(const std::string& path, const c10::Device& device, c10::ScalarType dtype) {
  std::unique_ptr<WeightSource> src;
  ModelConfig cfg;
  if (fs::is_directory(path)) {
    const auto cj = (fs::path(path) / "config.json").string();
    if (!fs::exists(cj)) throw std::runtime_error(path + ": no config.json (expected an HF model directory or a .gguf file)");
    cfg = read_hf_config(cj);
    src = std::make_unique<HfWeights>(path);
  } else if (fs::exists(path)) {
    auto f = std::make_shared<gguf::GgufFile>(path);
    cfg = config_from_gguf(*f);
    src = std::make_unique<GgufWeights>(f, cfg);
  } else {
    throw std::runtime_error(path + ": no such model file or directory");
  }
  // Gemma 3 4B+ keeps the language model under a prefix (transformers 5 or 4 naming).
  for (const char* prefix : {"model.language_model.", "language_model.model."})
    if (src->has(std::string(prefix) + "embed_tokens.weight")) cfg.weight_prefix = prefix;
  std::shared_ptr<CausalLM> model(create_named<CausalLM>(cfg.architecture, cfg).release());
  model->to(dtype);
  model->load_weights(*src);
  report_unused(*src, cfg);
  model->to(device);
  model->eval();
  return model;
}

}  // namespace tandem

// models: padding, and generate() with each kind of next-token policy on a tiny random Llama,
// against decoding written out by hand (no cache, no padding, one sequence at a time).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include <torch/torch.h>
#include <ATen/record_function.h>

#include "tandem/collab/json_constraint.h"
#include "tandem/core/runtime.h"
#include "tandem/models/batching.h"
#include "tandem/models/bf16_matmul.h"
#include "tandem/core/formats/gguf_quants.h"
#include "tandem/models/decode_step_ops.h"
#include "tandem/models/decoder_common.h"
#include "tandem/models/portable_kernels.h"
#include "tandem/models/generation.h"
#include "tandem/models/greedy_argmax.h"
#include "test_helpers.h"
#include "tiny_models.h"

using namespace tandem;
using namespace tandem::testing;

namespace {

// The AVX512-BF16 decode kernel against float32 products of the same bfloat16 values: equal up to
// float32 summation order and the one rounding of the result to bfloat16. K = 70 leaves a masked
// slice of 6; 5 rows are a tile of 4 and one more; 9 weight rows are tiles of 4 and a rest of 1.
TEST(Bf16Matmul, EqualsTheFloat32ProductOfTheSameValues) {
  if (!bf16_kernels_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16 (the kernel is not used here)";
  torch::manual_seed(3);
  for (int64_t K : {64, 70, 576}) {
    for (int64_t M : {1, 5}) {
      auto x = torch::randn({M, K}).to(torch::kBFloat16);
      auto w = torch::randn({9, K}).to(torch::kBFloat16);
      auto b = torch::randn({9}).to(torch::kBFloat16);
      auto ref = torch::matmul(x.to(torch::kDouble), w.to(torch::kDouble).t()) + b.to(torch::kDouble);
      auto got = bf16_matmul(x, w, b);
      ASSERT_EQ(got.scalar_type(), torch::kBFloat16);
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{M, 9}));
      // bfloat16 keeps 8 significant bits: the result may be off by half a unit in the last place.
      auto err = (got.to(torch::kDouble) - ref).abs();
      auto tol = ref.abs() * std::ldexp(1.0, -8) + 1e-3;
      EXPECT_TRUE((err <= tol).all().item<bool>()) << "K=" << K << " M=" << M << " max err " << err.max().item<double>();
      // A 3-D input keeps its leading dimensions.
      EXPECT_EQ(bf16_matmul(x.view({1, M, K}), w).sizes(), (std::vector<int64_t>{1, M, 9}));
    }
  }
}

// The decode-step loops against the torch compositions they replace (written out here). RoPE:
// the same three roundings per value, so equal bit for bit, on a transposed (strided) x, with
// partial rotation and tables shared across the batch. RMSNorm: the mean is summed in another
// order (double here), so equal to float32 rounding of the result.
TEST(DecodeStepOps, RotaryRowsEqualTheTorchComposition) {
  torch::manual_seed(4);
  for (int64_t rd : {8, 16}) {
    for (int64_t tb : {1, 2}) {
      auto x = torch::randn({2, 3, 5, 16}).transpose(1, 2);  // [B=2, H=5, T=3, D=16], strided
      auto cos = torch::randn({tb, 1, 3, rd}), sin = torch::randn({tb, 1, 3, rd});
      auto r = x.narrow(-1, 0, rd);
      auto rot = torch::cat({-r.narrow(-1, rd / 2, rd / 2), r.narrow(-1, 0, rd / 2)}, -1);
      auto ref = torch::cat({r * cos + rot * sin, x.narrow(-1, rd, 16 - rd)}, -1);
      EXPECT_TRUE(torch::equal(decoder::rotary_rows(x, cos, sin), ref)) << "rd " << rd << " table batch " << tb;
    }
  }
}

TEST(DecodeStepOps, RmsNormRowsEqualTheTorchComposition) {
  torch::manual_seed(5);
  auto x = torch::randn({2, 3, 576}) * 4, w = torch::randn({576});
  auto ref = w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5));
  auto got = decoder::rms_norm_rows(x, w, 1e-5);
  EXPECT_LE((got - ref).abs().max().item<double>(), 4 * 1.19e-7 * ref.abs().max().item<double>());
  EXPECT_TRUE(decoder::decode_sized(x, 16));
  // A norm whose weight is being trained keeps the torch composition (and so its gradient).
  auto trained = torch::randn({576}).requires_grad_();
  EXPECT_TRUE(decoder::rms_norm(x, trained, 1e-5).requires_grad());
  EXPECT_TRUE(decoder::rms_norm(x, w, 1e-5).equal(got));  // a frozen one takes the loop
  EXPECT_FALSE(decoder::decode_sized(torch::randn({17, 8}), 16));
  EXPECT_FALSE(decoder::decode_sized(x.to(torch::kBFloat16), 16));
}

// One query's attention against torch's SDPA: grouped-query heads (6 over 2), keys and values as
// the cache holds them (views of a longer buffer), with and without a mask hiding some keys
// (padding, a sliding window). Equal to float32 rounding. Both loops: the AVX-512 one (where the
// CPU has it; head sizes of one and several 16-lane vectors, key counts past a multiple of 16)
// and the plain one (cpu_kernels: portable); and a sequence with every key hidden is NaN in both.
TEST(DecodeStepOps, OneQueryAttentionEqualsSdpa) {
  torch::manual_seed(6);
  for (int64_t D : {16, 64}) {
    auto q = torch::randn({3, 1, 6, D}).transpose(1, 2);  // [B, H, 1, D], strided as in the decoders
    auto kbuf = torch::randn({3, 2, 40, D}), vbuf = torch::randn({3, 2, 40, D});
    auto k = kbuf.narrow(2, 0, 37), v = vbuf.narrow(2, 0, 37);
    auto allowed = torch::rand({3, 1, 1, 37}) > 0.3;
    allowed.index_put_({torch::indexing::Slice(), 0, 0, 36}, true);  // the query's own key
    auto kr = k.repeat_interleave(3, 1), vr = v.repeat_interleave(3, 1);
    for (auto kernels : {CpuKernels::kAuto, CpuKernels::kPortable}) {
      set_cpu_kernels(kernels);
      for (bool masked : {false, true}) {
        auto m = masked ? allowed : torch::Tensor();
        ASSERT_TRUE(decoder::one_query_attention(q, k, v, m));
        auto got = decoder::attend_one_query(q, k, v, m, 0.25);
        auto ref = at::scaled_dot_product_attention(q, kr, vr, m.defined() ? c10::optional<at::Tensor>(m) : c10::nullopt, 0.0,
                                                    false, 0.25);
        EXPECT_TRUE(torch::allclose(got, ref, 1e-5, 1e-6))
            << "D " << D << " portable " << (kernels == CpuKernels::kPortable) << " masked " << masked << " max diff "
            << (got - ref).abs().max().item<double>();
      }
      auto none = allowed.clone();
      none.index_put_({1}, false);  // sequence 1 sees nothing
      auto got = decoder::attend_one_query(q, k, v, none, 0.25);
      EXPECT_TRUE(got.select(0, 1).isnan().all().item<bool>());
      EXPECT_FALSE(got.select(0, 0).isnan().any().item<bool>());
    }
    set_cpu_kernels(CpuKernels::kAuto);
  }
  auto k = torch::randn({1, 2, 29, 16}), v = torch::randn({1, 2, 29, 16});
  EXPECT_FALSE(decoder::one_query_attention(torch::randn({1, 6, 2, 16}), k, v, {}));  // two queries
}

// The vector argmax against torch's on the rows that tell them apart: ties (the first wins, in any
// lane), the maximum in the tail past the last whole 16, -inf rows, NaN rows (torch's rule: the
// first NaN), -0 against +0, widths 16 to Gemma 3's vocabulary, batch dimensions, a strided view;
// and under the portable kernels (torch's argmax itself).
TEST(GreedyArgmax, EqualsTorchArgmax) {
  torch::manual_seed(3);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t V : {16, 17, 31, 33, 49152, 262144}) {
    // Rounded values: many exact ties, spread over lanes and blocks.
    auto rows = (torch::randn({9, V}) * 4).round();
    rows[1].fill_(-inf);
    rows[2].fill_(7.f);                  // all equal: index 0
    rows[3][V - 1] = 100.f;              // the last element, in the tail when V % 16 != 0
    rows[4][V / 2] = nan, rows[4][V - 1] = nan;
    rows[5].fill_(0.f), rows[5][V - 2] = -0.f, rows[5][1] = -0.f;
    rows[6][V - 3] = 50.f, rows[6][5] = 50.f;  // a tie far apart: the first
    rows[7][0] = nan;
    rows[8][V - 1] = inf, rows[8][3] = inf;
    EXPECT_TRUE(torch::equal(greedy_argmax(rows), rows.argmax(-1))) << "V = " << V;
    const auto batched = rows.view({3, 3, V});
    EXPECT_TRUE(torch::equal(greedy_argmax(batched), batched.argmax(-1))) << "V = " << V;
    const auto strided = torch::randn({4, 2, V}).select(1, 1);  // rows 2V apart
    EXPECT_TRUE(torch::equal(greedy_argmax(strided), strided.argmax(-1))) << "V = " << V;
  }
  const auto one = torch::randn({1000});
  EXPECT_EQ(greedy_argmax(one).item<int64_t>(), one.argmax(-1).item<int64_t>());
  // One long row splits across threads: equal maxima in both halves (the first half's wins), the
  // maximum in the last element, a NaN in the second half only; 1, 2 and 3 threads.
  const int threads = at::get_num_threads();
  for (int t : {1, 2, 3}) {
    at::set_num_threads(t);
    for (int c = 0; c < 4; ++c) {
      auto row = torch::randn({1, 262144 + 5});
      if (c == 0) row[0][100] = 9.f, row[0][200000] = 9.f;
      if (c == 1) row[0][262148] = 9.f;
      if (c == 2) row[0][200001] = nan;
      if (c == 3) row[0][131071] = 9.f, row[0][131072] = 9.f;
      EXPECT_EQ(greedy_argmax(row).item<int64_t>(), row.argmax(-1).item<int64_t>()) << t << " threads, case " << c;
    }
  }
  at::set_num_threads(threads);
  set_cpu_kernels(CpuKernels::kPortable);
  const auto r = torch::randn({2, 300});
  EXPECT_TRUE(torch::equal(greedy_argmax(r), r.argmax(-1)));
  set_cpu_kernels(CpuKernels::kAuto);
}

// Every build of the portable kernels (the SSE2/plain-C++ baseline, which no run here picks, and
// the AVX2 one) against the product with the weights dequantized by the GGUF reader (itself
// tested against the gguf package): random blocks with valid float16 scales, 5 weight rows of 512,
// 3 activation rows, error within the float32 dot-product bound n * u * sum |x w|.
TEST(PortableKernels, EveryBuildEqualsTheDequantizedProduct) {
  using gguf::GgmlType;
  struct Layout {
    GgmlType type;
    int64_t block, bytes;
    std::vector<int64_t> halves;  // offsets of float16 fields in a block
  };
  const std::vector<Layout> layouts = {{GgmlType::Q4_0, 32, 18, {0}},  {GgmlType::Q4_1, 32, 20, {0, 2}},
                                       {GgmlType::Q5_0, 32, 22, {0}},  {GgmlType::Q8_0, 32, 34, {0}},
                                       {GgmlType::Q4_K, 256, 144, {0, 2}}, {GgmlType::Q6_K, 256, 210, {208}}};
  const int64_t rows = 5, cols = 512, M = 3;
  torch::manual_seed(7);
  auto x = torch::randn({M, cols});
  for (const auto& l : layouts) {
    const int64_t row_bytes = cols / l.block * l.bytes;
    auto raw = torch::randint(0, 256, {rows * row_bytes}, torch::kUInt8);
    uint8_t* p = raw.data_ptr<uint8_t>();
    for (int64_t blk = 0; blk < rows * cols / l.block; ++blk)
      for (int64_t off : l.halves) {  // 0x2C00-0x2FFF: float16 values in [1/16, 1/8)
        p[blk * l.bytes + off + 1] = static_cast<uint8_t>(0x2C | (p[blk * l.bytes + off + 1] & 3));
      }
    auto w = torch::empty({rows, cols});
    gguf::dequantize(l.type, p, rows * cols, w.data_ptr<float>());
    auto ref = torch::matmul(x.to(torch::kDouble), w.to(torch::kDouble).t());
    auto bound = torch::matmul(x.abs().to(torch::kDouble), w.abs().to(torch::kDouble).t()) * (cols * std::ldexp(1.0, -24));
    std::vector<std::pair<const char*, portable::RowsFn>> builds = {{"baseline", portable::baseline::rows_for(l.type)}};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
      builds.push_back({"avx2", portable::avx2::rows_for(l.type)});
    for (const auto& [name, fn] : builds) {
      ASSERT_NE(fn, nullptr) << name << " " << gguf::type_name(static_cast<uint32_t>(l.type));
      auto y = torch::zeros({M, rows});
      fn(p, row_bytes, x.data_ptr<float>(), M, cols, y.data_ptr<float>(), rows, 0, rows);
      auto err = (y.to(torch::kDouble) - ref).abs();
      EXPECT_TRUE((err <= bound + 1e-6).all().item<bool>())
          << name << " " << gguf::type_name(static_cast<uint32_t>(l.type)) << " max error " << err.max().item<double>();
    }
  }
}

TEST(Batching, PadsLeftOrRightByHand) {
  const std::vector<std::vector<int64_t>> seqs{{1, 2, 3}, {4}};
  auto l = pad_batch(seqs, 9, PadSide::kLeft);
  EXPECT_TRUE(torch::equal(l.ids, torch::tensor({1, 2, 3, 9, 9, 4}, torch::kLong).view({2, 3})));
  EXPECT_TRUE(torch::equal(l.mask, torch::tensor({1, 1, 1, 0, 0, 1}, torch::kLong).view({2, 3})));
  auto r = pad_batch(seqs, 0, PadSide::kRight, 4);
  EXPECT_TRUE(torch::equal(r.ids, torch::tensor({1, 2, 3, 0, 4, 0, 0, 0}, torch::kLong).view({2, 4})));
  EXPECT_TRUE(torch::equal(r.mask, torch::tensor({1, 1, 1, 0, 1, 0, 0, 0}, torch::kLong).view({2, 4})));
  expect_error<std::invalid_argument>([&] { pad_batch(seqs, 0, PadSide::kRight, 2); }, {"exceeds the width 2"});
  std::vector<int64_t> cls{101, 5, 6, 7, 102};
  truncate_keeping_last(cls, 3);
  EXPECT_EQ(cls, (std::vector<int64_t>{101, 5, 102}));
}

// Prompts with a 40-token shared prefix (so the shared-prefix prefill runs) and different tails.
std::vector<std::vector<int64_t>> prompts_with_shared_prefix() {
  std::vector<int64_t> prefix;
  for (int i = 0; i < 40; ++i) prefix.push_back((i * 7) % 40);
  std::vector<std::vector<int64_t>> ps;
  for (const std::vector<int64_t>& tail : {std::vector<int64_t>{1, 2, 3}, {4}, {5, 6, 7, 8, 9}}) {
    ps.push_back(prefix);
    ps.back().insert(ps.back().end(), tail.begin(), tail.end());
  }
  ps.push_back({3, 1, 4});  // and one unrelated short prompt
  return ps;
}

// Names of the operations the calling thread runs while `watch` is set (a RecordFunction hook).
std::vector<std::string>& seen_operations() {
  static std::vector<std::string> names;
  return names;
}

// The decode-step tests' three models: a plain tiny Llama; one with q/k/v, o and MLP biases,
// per-head q/k norms and half the head rotated; a tiny Gemma 3 (sandwich norms, GELU, local and
// global RoPE tables, a 40-token window).
ModelConfig decode_step_variant(int variant) {
  auto c = tiny_llama_config();
  if (variant == 1) c.attention_bias = c.o_bias = c.mlp_bias = c.qk_norm = true, c.partial_rotary_factor = 0.5;
  if (variant == 2) {
    c.architecture = "gemma3_text";
    c.qk_norm = true;
    c.sliding_window = 40;
    c.sliding_layers = {true, false, true};
    c.rope_local_theta = 100.0;
  }
  return c;
}

// m's forward of one token with `cache`, and how many times the calling thread entered span `name`.
std::pair<LMOutput, int64_t> forward_counting(CausalLM& m, int64_t token, KVCache& cache, const std::string& name) {
  seen_operations().clear();
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(
      [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
        seen_operations().emplace_back(fn.name());
        return nullptr;
      }));
  auto out = m.forward(torch::full({1, 1}, token, torch::kLong), {}, {}, &cache, false, 1);
  at::removeCallback(handle);
  return {std::move(out), std::count(seen_operations().begin(), seen_operations().end(), name)};
}

// A decode step of one sequence takes the fused step (llama_model.cpp, gemma3_model.cpp): its
// logits equal the layer loop's bit for bit, step after step (past the cache's first 64 extra
// positions, so its buffers grow): the plain Llama family; with every option its fused step
// handles (q/k/v, o and MLP biases, Qwen3's per-head q/k norms, partial rotation); and Gemma 3
// (sandwich norms, q/k norms, local and global layers), whose sliding layers' window, once the
// sequence is longer, hands the step back to the layer loop. Asking for hidden states takes the
// layer loop, which is how the two are compared (the fused step marks itself for the profiler).
TEST(FusedDecodeStep, EqualsTheLayerLoop) {
  for (int variant = 0; variant < 3; ++variant) {
    const auto c = decode_step_variant(variant);
    std::shared_ptr<CausalLM> m(create_named<CausalLM>(c.architecture, c).release());
    torch::manual_seed(3);
    {
      torch::NoGradGuard ng;
      for (auto& p : m->parameters()) p.normal_(0.0, 0.5);
    }
    m->eval();
    KVCache fused, loop;
    auto prompt = torch::tensor(std::vector<int64_t>{5, 9, 2, 30, 11}, torch::kLong).view({1, 5});
    m->forward(prompt, {}, {}, &fused, false, 1);
    m->forward(prompt, {}, {}, &loop, false, 1);
    int64_t token = 7;
    for (int step = 0; step < 70; ++step) {
      auto ids = torch::full({1, 1}, token, torch::kLong);
      const auto [a, fused_steps] = forward_counting(*m, token, fused, "tandem::fused_step");
      const bool took_fused = fused_steps == 1;
      const auto b = m->forward(ids, {}, {}, &loop, true, 1);
      ASSERT_TRUE(a.hidden_states.empty() && !b.hidden_states.empty());
      const bool windowed = c.sliding_window > 0 && 5 + step + 1 > c.sliding_window;
      ASSERT_EQ(took_fused, !windowed) << "variant " << variant << " step " << step;
      ASSERT_TRUE(torch::equal(a.logits, b.logits)) << "variant " << variant << " step " << step << " max diff "
                                                    << (a.logits - b.logits).abs().max().item<double>();
      token = a.logits.argmax(-1).item<int64_t>();
    }
    EXPECT_EQ(fused.length(), 75);
  }
}

// A tiny Llama (or Gemma 3) whose matrices come as Q8_0 blocks (quantized here: d = max|w| / 127
// in float16, q = round(w / d)), as from a GGUF file: the model then decodes one sequence with its
// team step (team_step.h), which must give the layer loop's logits bit for bit, on either kernel
// path and with the rows, heads and activations split among 1, 2 or 3 threads.
class Q8TinySource : public WeightSource {
 public:
  explicit Q8TinySource(const ModelConfig& c) {
    const int64_t H = c.hidden_size, D = c.head_dim, I = c.intermediate_size, V = c.vocab_size;
    const int64_t q = c.num_heads * D, kv = c.num_kv_heads * D;
    const std::string m = c.weight_prefix;
    add(m + "embed_tokens.weight", {V, H});
    add(m + "norm.weight", {H});
    if (!c.tie_word_embeddings && c.architecture != "gemma3_text") add("lm_head.weight", {V, H});
    for (int64_t i = 0; i < c.num_layers; ++i) {
      const std::string s = m + "layers." + std::to_string(i) + ".";
      add(s + "input_layernorm.weight", {H});
      add(s + "post_attention_layernorm.weight", {H});
      if (c.architecture == "gemma3_text") add(s + "pre_feedforward_layernorm.weight", {H}), add(s + "post_feedforward_layernorm.weight", {H});
      add(s + "self_attn.q_proj.weight", {q, H});
      add(s + "self_attn.k_proj.weight", {kv, H});
      add(s + "self_attn.v_proj.weight", {kv, H});
      add(s + "self_attn.o_proj.weight", {H, q});
      add(s + "mlp.gate_proj.weight", {I, H});
      add(s + "mlp.up_proj.weight", {I, H});
      add(s + "mlp.down_proj.weight", {H, I});
      if (c.attention_bias) add(s + "self_attn.q_proj.bias", {q}), add(s + "self_attn.k_proj.bias", {kv}), add(s + "self_attn.v_proj.bias", {kv});
      if (c.o_bias) add(s + "self_attn.o_proj.bias", {H});
      if (c.mlp_bias) add(s + "mlp.gate_proj.bias", {I}), add(s + "mlp.up_proj.bias", {I}), add(s + "mlp.down_proj.bias", {H});
      if (c.qk_norm) add(s + "self_attn.q_norm.weight", {D}), add(s + "self_attn.k_norm.weight", {D});
    }
  }
  bool has(const std::string& name) const override { return values_.count(name) > 0; }
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& [k, v] : values_) n.push_back(k);
    return n;
  }
  std::string describe() const override { return "<q8 tiny llama>"; }
  PackedWeight packed(const std::string& name) const override {
    auto it = packed_.find(name);
    return it == packed_.end() ? PackedWeight{} : it->second;
  }

 protected:
  torch::Tensor get(const std::string& name, c10::ScalarType dtype) const override { return values_.at(name).to(dtype); }

 private:
  void add(const std::string& name, std::vector<int64_t> shape) {
    auto w = torch::randn(shape) * 0.5;
    if (shape.size() == 2 && name.find("norm") == std::string::npos) {
      const int64_t rows = shape[0], cols = shape[1], blocks = cols / 32;
      PackedWeight p;
      p.type = gguf::GgmlType::Q8_0;
      p.rows = rows;
      p.cols = cols;
      p.raw = torch::empty({rows, blocks * 34}, torch::kUInt8);
      auto wa = w.accessor<float, 2>();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < blocks; ++b) {
          uint8_t* blk = p.raw.data_ptr<uint8_t>() + (r * blocks + b) * 34;
          float amax = 0.f;
          for (int64_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(wa[r][b * 32 + j]));
          const c10::Half d(amax / 127.f);
          std::memcpy(blk, &d.x, 2);
          for (int64_t j = 0; j < 32; ++j) {
            const float qv = std::nearbyint(wa[r][b * 32 + j] / static_cast<float>(d));
            blk[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(qv));
            wa[r][b * 32 + j] = static_cast<float>(d) * qv;  // the float weights are the dequantized ones
          }
        }
      packed_[name] = p;
    }
    values_[name] = w;
  }
  std::map<std::string, torch::Tensor> values_;
  std::map<std::string, PackedWeight> packed_;
};

TEST(TeamDecodeStep, EqualsTheLayerLoopOnPackedWeights) {
  const int threads_before = at::get_num_threads();
  for (int variant = 0; variant < 3; ++variant)
    for (auto kernels : {DecodeKernels::kExact, DecodeKernels::kInt8Activations})
      for (int threads : {1, 2, 3}) {
        const auto c = decode_step_variant(variant);
        std::shared_ptr<CausalLM> m(create_named<CausalLM>(c.architecture, c).release());
        torch::manual_seed(11);
        m->load_weights(Q8TinySource(c));
        m->eval();
        set_decode_kernels(kernels);
        at::set_num_threads(threads);
        KVCache team, loop;
        auto prompt = torch::tensor(std::vector<int64_t>{5, 9, 2, 30, 11}, torch::kLong).view({1, 5});
        m->forward(prompt, {}, {}, &team, false, 1);
        m->forward(prompt, {}, {}, &loop, false, 1);
        int64_t token = 7;
        const std::string what = "variant " + std::to_string(variant) + (kernels == DecodeKernels::kExact ? " exact" : " int8") +
                                 ", " + std::to_string(threads) + " threads";
        for (int step = 0; step < 45; ++step) {
          const auto [a, team_steps] = forward_counting(*m, token, team, "tandem::team_step");
          const auto b = m->forward(torch::full({1, 1}, token, torch::kLong), {}, {}, &loop, true, 1);
          const bool windowed = c.sliding_window > 0 && 5 + step + 1 > c.sliding_window;  // the loop's masks then
          ASSERT_EQ(team_steps, windowed ? 0 : 1) << what << " step " << step;
          ASSERT_TRUE(torch::equal(a.logits, b.logits)) << what << " step " << step << " max diff "
                                                        << (a.logits - b.logits).abs().max().item<double>();
          token = a.logits.argmax(-1).item<int64_t>();
        }
      }
  set_decode_kernels(DecodeKernels::kExact);
  at::set_num_threads(threads_before);
}

TEST(Generate, GreedyPolicyMatchesDecodingByHand) {
  auto m = tiny_llama();
  const auto ps = prompts_with_shared_prefix();
  SamplingOptions so;
  so.max_new_tokens = 8;
  const auto r = generate(*m, ps, so, kEos);
  EXPECT_LT(r.prefill_positions, static_cast<int64_t>(ps.size()) * 45) << "the shared prefix ran once";
  for (size_t b = 0; b < ps.size(); ++b) {
    EXPECT_EQ(r.tokens[b], greedy_by_hand(*m, ps[b], 8)) << "row " << b;
    EXPECT_EQ(r.finish_reasons[b], "length");
  }
  EXPECT_EQ(r.generated_tokens, 8 * static_cast<int64_t>(ps.size()));
}

TEST(Generate, StopTokenEndsOnlyItsRow) {
  auto m = tiny_llama();
  const auto ps = prompts_with_shared_prefix();
  const auto row0 = greedy_by_hand(*m, ps[0], 12);
  // The stop token: row 0's first token that it had not produced before (after at least one).
  size_t cut = 1;
  while (cut < row0.size() && std::find(row0.begin(), row0.begin() + cut, row0[cut]) != row0.begin() + cut) ++cut;
  ASSERT_LT(cut, row0.size()) << "row 0 repeats one token: pick another seed";
  SamplingOptions so;
  so.max_new_tokens = 12;
  so.stop_token_ids = {row0[cut]};
  const auto r = generate(*m, ps, so, kEos);
  EXPECT_EQ(r.tokens[0], std::vector<int64_t>(row0.begin(), row0.begin() + static_cast<long>(cut)));
  EXPECT_EQ(r.finish_reasons[0], "stop");
  for (size_t b = 1; b < ps.size(); ++b) EXPECT_EQ(r.tokens[b], greedy_by_hand(*m, ps[b], 12, row0[cut])) << b;
}

// A scripted policy: feeds fixed tokens, ends row 0 at step 1, and records what it was told.
struct ScriptedPolicy : NextTokenPolicy {
  std::vector<std::vector<bool>> live_seen;
  std::vector<std::pair<int64_t, std::string>> ended;
  void choose(const DecodeStep& step, std::vector<TokenChoice>& choices) override {
    EXPECT_EQ(step.out.logits.size(1), 1);
    live_seen.push_back(step.live);
    for (size_t b = 0; b < choices.size(); ++b) choices[b].feed = 10 + static_cast<int64_t>(b);
    if (step.index == 1) {
      choices[0].finish = true;
      choices[0].reason = "stop";
    }
  }
  void on_end(int64_t row, const std::string& reason) override { ended.emplace_back(row, reason); }
};

TEST(Generate, LoopHonoursFinishCancelAndLength) {
  auto m = tiny_llama();
  ScriptedPolicy policy;
  DecodeOptions d;
  d.max_new_tokens = 4;
  d.pad_id = kEos;
  d.cancelled = [&](int64_t row) { return row == 2 && policy.live_seen.size() >= 2; };  // from step 2 on
  const auto st = generate(*m, {{1, 2}, {3}, {4, 5, 6}}, policy, d);
  EXPECT_EQ(st.finish_reasons, (std::vector<std::string>{"stop", "length", "cancelled"}));
  ASSERT_EQ(policy.live_seen.size(), 4u);
  EXPECT_EQ(policy.live_seen[1], (std::vector<bool>{true, true, true}));
  EXPECT_EQ(policy.live_seen[2], (std::vector<bool>{false, true, false}));
  EXPECT_EQ(policy.ended, (std::vector<std::pair<int64_t, std::string>>{{2, "cancelled"}, {1, "length"}}));
  EXPECT_EQ(st.forwards, 3) << "no forward after the last step";
  EXPECT_EQ(st.prompt_tokens, 6);
}

TEST(Generate, JsonSchemaPolicyAlwaysYieldsTheSchema) {
  auto m = tiny_llama(11);
  CharTokenizer tok;
  auto schema = collab::parse_json_schema(nlohmann::json::parse(R"({"type": "object",
      "properties": {"answer": {"type": "string", "maxLength": 12}, "n": {"type": "integer"},
                     "ok": {"type": "boolean"}, "pick": {"enum": ["yes", "no"]},
                     "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 2}},
      "required": ["answer", "n", "ok", "pick", "tags"]})"), "test");
  const std::vector<std::vector<int64_t>> ps{tok.encode("q: 1"), tok.encode("question two"), tok.encode("x")};
  for (int64_t budget : {200, 12}) {  // enough to finish, and cut short (closed with minimal values)
    const auto rs = collab::generate_json(*m, tok, ps, schema, budget);
    ASSERT_EQ(rs.size(), ps.size());
    for (const auto& r : rs) {
      ASSERT_TRUE(r.value.is_object()) << r.text;
      EXPECT_TRUE(r.value["answer"].is_string() && r.value["answer"].get<std::string>().size() <= 12) << r.text;
      EXPECT_TRUE(r.value["n"].is_number_integer()) << r.text;
      EXPECT_TRUE(r.value["ok"].is_boolean()) << r.text;
      EXPECT_TRUE(r.value["pick"] == "yes" || r.value["pick"] == "no") << r.text;
      EXPECT_TRUE(r.value["tags"].is_array() && r.value["tags"].size() <= 2) << r.text;
      EXPECT_EQ(r.finish_reason, budget == 200 ? "stop" : "length") << r.text;
      EXPECT_LE(r.tokens, budget);
    }
  }
}

}  // namespace

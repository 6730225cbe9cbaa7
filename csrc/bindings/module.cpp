// tandem._C: pybind11 bindings only. No logic here: every function forwards to libtandem.
// torch.Tensor crosses in both directions without copies (pybind11 casters from torch).
#include <torch/extension.h>
#include <pybind11/stl.h>

#include "tandem/core/config.h"
#include "tandem/core/progress.h"
#include "tandem/core/registry.h"
#include "tandem/experiments/explain.h"
#include "tandem/core/runtime.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/experiments/runner.h"
#include "tandem/core/formats/gguf.h"
#include "tandem/models/packed_matmul.h"
#include "tandem/models/causal_lm.h"
#include "tandem/models/encoder.h"
#include "tandem/models/generation.h"
#include "tandem/text/tokenizer.h"
#include "tandem/eval/coqa_metric.h"
#include "tandem/eval/porter_stemmer.h"
#include "tandem/eval/rouge.h"
#include "tandem/data/generation_tasks.h"
#include "tandem/data/summarization.h"
#include "tandem/spa/router.h"
#include "benchmarks/adapter_bench.h"
#include "tandem/moe/model_pool.h"
#include "tandem/moe/profiles.h"

namespace py = pybind11;
using namespace tandem;

namespace {

Config load_any(const std::string& source, bool is_text, const std::string& name,
                const std::vector<std::string>& overrides, const std::string& base_dir) {
  return is_text ? Config::load_string(source, name, overrides, base_dir)
                 : Config::load_file(source, overrides);
}

}  // namespace

void bind_errors(py::module_& m);  // errors.cpp
void bind_fed(py::module_& m);     // fed.cpp
void bind_collab(py::module_& m);  // collab.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "tandem C++ core (libtandem) bindings";

  bind_errors(m);  // errors.cpp: tandem's exception types and the message-keeping translator

  // ---- core ----
  m.def("registry_kinds", &RegistryBase::kinds, "Kinds of registered components.");
  m.def("registry_names", &RegistryBase::names_of, py::arg("kind"), "Names registered under a kind.");
  m.def(
      "explain_config",
      [](const std::string& source, bool is_text, const std::string& name,
         const std::vector<std::string>& overrides, const std::string& base_dir) {
        return explain_config(load_any(source, is_text, name, overrides, base_dir));
      },
      py::arg("source"), py::arg("is_text") = false, py::arg("name") = "<string>",
      py::arg("overrides") = std::vector<std::string>{}, py::arg("base_dir") = ".",
      "Markdown table of every key a run of the config reads: type, default, value, doc.");
  m.def(
      "resolve_config",
      [](const std::string& source, bool is_text, const std::string& name,
         const std::vector<std::string>& overrides, const std::string& base_dir) {
        return load_any(source, is_text, name, overrides, base_dir).dump();
      },
      py::arg("source"), py::arg("is_text") = false, py::arg("name") = "<string>",
      py::arg("overrides") = std::vector<std::string>{}, py::arg("base_dir") = ".",
      "Loads a config (extends and overrides resolved) and returns it as YAML text.");
  m.def(
      "run_experiment",
      [](const std::string& source, bool is_text, const std::string& name,
         const std::vector<std::string>& overrides, const std::string& base_dir,
         const std::string& results_dir, bool echo_log) {
        RunSummary s;
        {
          py::gil_scoped_release release;
          Config cfg = load_any(source, is_text, name, overrides, base_dir);
          s = run_experiment(cfg, RunOptions{results_dir, echo_log});
        }
        return py::make_tuple(s.run_dir, s.metrics.dump());
      },
      py::arg("source"), py::arg("is_text") = false, py::arg("name") = "<string>",
      py::arg("overrides") = std::vector<std::string>{}, py::arg("base_dir") = ".",
      py::arg("results_dir") = "results", py::arg("echo_log") = true,
      "Runs an experiment; returns (run_dir, metrics JSON text).");
  m.def("parse_device", [](const std::string& s) { return parse_device(s).str(); }, py::arg("text"));
  m.def("parse_dtype", [](const std::string& s) { return dtype_name(parse_dtype(s)); }, py::arg("text"));
  m.def("set_threads", &set_threads, py::arg("threads") = 0, "0 = every core this process may use.");
  m.def("available_cores", &available_cores);
  m.def("data_root", &data_root);
  m.def("tensor_data_ptr", [](const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()); },
        py::arg("tensor"), "Address of a tensor's data as C++ sees it (zero-copy checks).");
  m.def("scale_", [](at::Tensor t, double f) { t.mul_(f); return t; }, py::arg("tensor"), py::arg("factor"),
        "Multiplies in place in C++ and returns the same tensor (zero-copy checks).");

  py::class_<Progress>(m, "Progress")
      .def(py::init<std::string, int64_t, std::string>(), py::arg("label"), py::arg("total"), py::arg("unit") = "it")
      .def("update", &Progress::update, py::arg("n") = 1, py::arg("postfix") = "")
      .def("finish", &Progress::finish)
      .def("render", &Progress::render)
      .def_property_readonly("count", &Progress::count);

  // ---- safetensors ----
  m.def(
      "load_safetensors",
      [](const std::string& path, bool mmap) {
        SafetensorsFile f;
        {
          py::gil_scoped_release release;
          f = load_safetensors(path, mmap);
        }
        py::dict tensors;
        for (auto& [name, t] : f.tensors) tensors[py::str(name)] = t;
        return py::make_tuple(tensors, f.metadata);
      },
      py::arg("path"), py::arg("mmap") = true, "Returns ({name: tensor}, metadata).");
  m.def(
      "save_safetensors",
      [](const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
         const std::map<std::string, std::string>& metadata) {
        py::gil_scoped_release release;
        save_safetensors(path, tensors, metadata);
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = std::map<std::string, std::string>{});

  // ---- GGUF ----
  py::class_<gguf::GgufFile, std::shared_ptr<gguf::GgufFile>>(m, "GgufFile")
      .def(py::init<const std::string&>(), py::arg("path"))
      .def_property_readonly("path", &gguf::GgufFile::path)
      .def_property_readonly("version", &gguf::GgufFile::version)
      .def("tensor_names",
           [](const gguf::GgufFile& f) {
             std::vector<std::string> out;
             for (const auto& t : f.tensors()) out.push_back(t.name);
             return out;
           })
      .def("tensor_type", [](const gguf::GgufFile& f, const std::string& n) { return gguf::type_name(f.info(n).type); })
      .def("tensor_shape", [](const gguf::GgufFile& f, const std::string& n) { return f.info(n).shape(); })
      .def("get_string", &gguf::GgufFile::get_string)
      .def("get_int", py::overload_cast<const std::string&>(&gguf::GgufFile::get_int, py::const_))
      .def("get_float", py::overload_cast<const std::string&>(&gguf::GgufFile::get_float, py::const_))
      .def("get_strings", &gguf::GgufFile::get_strings)
      .def("has", &gguf::GgufFile::has)
      .def("metadata_keys",
           [](const gguf::GgufFile& f) {
             std::vector<std::string> out;
             for (const auto& kv : f.metadata()) out.push_back(kv.first);
             return out;
           })
      .def(
          "load",
          [](const gguf::GgufFile& f, const std::string& name, const std::string& dtype) {
            py::gil_scoped_release release;
            return f.load(name, parse_dtype(dtype));
          },
          py::arg("name"), py::arg("dtype") = "float32", "Tensor dequantized to dtype, torch shape order.")
      .def("raw", &gguf::GgufFile::raw, py::arg("name"), "The stored bytes (uint8 view, no copy).")
      .def(
          "packed_matmul",
          [](const gguf::GgufFile& f, const std::string& name, const at::Tensor& x, bool portable) {
            const auto& info = f.info(name);
            PackedWeight w{static_cast<gguf::GgmlType>(info.type), f.raw(name).view({info.ne[1], -1}), info.ne[1], info.ne[0]};
            return packed_matmul(x, w, portable);
          },
          py::arg("name"), py::arg("x"), py::arg("portable") = false,
          "x [M, cols] times the tensor's transpose, read from its quantized blocks.");

  // ---- decoder LMs ----
  py::class_<CausalLM, std::shared_ptr<CausalLM>>(m, "CausalLM")
      .def_property_readonly("architecture", [](const CausalLM& lm) { return lm.config().architecture; })
      .def_property_readonly("vocab_size", [](const CausalLM& lm) { return lm.config().vocab_size; })
      .def_property_readonly("num_layers", [](const CausalLM& lm) { return lm.config().num_layers; })
      .def_property_readonly("hidden_size", [](const CausalLM& lm) { return lm.config().hidden_size; })
      .def_property_readonly("bos_token_id", [](const CausalLM& lm) { return lm.config().bos_token_id; })
      .def_property_readonly("eos_token_id", [](const CausalLM& lm) { return lm.config().eos_token_id; })
      .def_property_readonly("pad_token_id", [](const CausalLM& lm) { return lm.config().pad_token_id; })
      .def("num_parameters", &CausalLM::num_parameters)
      .def(
          "forward",
          [](CausalLM& lm, const at::Tensor& ids, const c10::optional<at::Tensor>& mask,
             const c10::optional<at::Tensor>& pos, bool hidden) {
            LMOutput o;
            {
              py::gil_scoped_release release;
              o = lm.forward(ids, mask.value_or(at::Tensor()), pos.value_or(at::Tensor()), nullptr, hidden);
            }
            return py::make_tuple(o.logits, o.hidden_states);
          },
          py::arg("input_ids"), py::arg("attention_mask") = py::none(), py::arg("position_ids") = py::none(),
          py::arg("output_hidden_states") = false, "Returns (logits [B,T,V] float32, hidden states list).")
      .def(
          "forward_with_cache",
          [](CausalLM& lm, const at::Tensor& ids, const at::Tensor& mask, const std::vector<int64_t>& chunks) {
            // Runs the sequence through the KV cache in chunks (a test of cached decoding).
            py::gil_scoped_release release;
            KVCache cache;
            std::vector<at::Tensor> parts;
            int64_t at_ = 0;
            for (int64_t c : chunks) {
              parts.push_back(lm.forward(ids.narrow(1, at_, c), mask.narrow(1, 0, at_ + c), {}, &cache, false).logits);
              at_ += c;
            }
            return torch::cat(parts, 1);
          },
          py::arg("input_ids"), py::arg("attention_mask"), py::arg("chunks"))
      .def(
          "generate",
          [](CausalLM& lm, const std::vector<std::vector<int64_t>>& prompts, int64_t max_new_tokens, double temperature,
             int64_t top_k, double top_p, const std::vector<int64_t>& stop, uint64_t seed, int64_t pad_id) {
            SamplingOptions o{max_new_tokens, temperature, top_k, top_p, stop, seed};
            GenerationResult r;
            {
              py::gil_scoped_release release;
              r = generate(lm, prompts, o, pad_id < 0 ? std::max<int64_t>(0, lm.config().pad_token_id) : pad_id);
            }
            py::dict d;
            d["tokens"] = r.tokens;
            d["finish_reasons"] = r.finish_reasons;
            d["prompt_tokens"] = r.prompt_tokens;
            d["generated_tokens"] = r.generated_tokens;
            d["prefill_seconds"] = r.prefill_seconds;
            d["decode_seconds"] = r.decode_seconds;
            d["prefill_positions"] = r.prefill_positions;
            return d;
          },
          py::arg("prompts"), py::arg("max_new_tokens") = 64, py::arg("temperature") = 0.0, py::arg("top_k") = 0,
          py::arg("top_p") = 1.0, py::arg("stop_token_ids") = std::vector<int64_t>{}, py::arg("seed") = 0,
          py::arg("pad_id") = -1)
      .def(
          "score",
          [](CausalLM& lm, const std::vector<std::vector<int64_t>>& prompts,
             const std::vector<std::vector<int64_t>>& conts) {
            py::gil_scoped_release release;
            return score_continuations(lm, prompts, conts, std::max<int64_t>(0, lm.config().pad_token_id));
          },
          py::arg("prompts"), py::arg("continuations"));
  m.def(
      "load_causal_lm",
      [](const std::string& path, const std::string& device, const std::string& dtype) {
        py::gil_scoped_release release;
        return load_causal_lm(path, parse_device(device), parse_dtype(dtype));
      },
      py::arg("path"), py::arg("device") = "cpu", py::arg("dtype") = "float32");

  // ---- tokenizers ----
  py::class_<text::Tokenizer, std::shared_ptr<text::Tokenizer>>(m, "Tokenizer")
      .def("encode", &text::Tokenizer::encode, py::arg("text"), py::call_guard<py::gil_scoped_release>())
      .def("encode_batch",
           [](const text::Tokenizer& t, const std::vector<std::string>& texts) {
             std::vector<std::vector<int64_t>> out;
             for (const auto& s : texts) out.push_back(t.encode(s));
             return out;
           },
           py::arg("texts"), py::call_guard<py::gil_scoped_release>())
      .def("decode", &text::Tokenizer::decode, py::arg("ids"), py::arg("skip_special") = false)
      .def("token_to_id", &text::Tokenizer::token_to_id)
      .def("id_to_token", &text::Tokenizer::id_to_token)
      .def_property_readonly("vocab_size", &text::Tokenizer::vocab_size)
      .def_readonly("bos_id", &text::Tokenizer::bos_id)
      .def_readonly("eos_id", &text::Tokenizer::eos_id)
      .def_readonly("pad_id", &text::Tokenizer::pad_id)
      .def_readonly("add_bos", &text::Tokenizer::add_bos)
      .def("encode_for_model", &text::Tokenizer::encode_for_model, py::arg("text"),
           "encode() with BOS first when the model expects it.");
  m.def("load_tokenizer", &text::load_tokenizer, py::arg("path"),
        "Loads a tokenizer.json, an HF model directory, or a .gguf file's vocabulary.");

  // ---- encoders ----
  py::class_<Encoder, std::shared_ptr<Encoder>>(m, "Encoder")
      .def_property_readonly("hidden_size", [](const Encoder& e) { return e.config().hidden_size; })
      .def_property_readonly("pooling", [](const Encoder& e) { return e.config().pooling; })
      .def_property_readonly("normalize", [](const Encoder& e) { return e.config().normalize; })
      .def("forward", &Encoder::forward, py::arg("input_ids"), py::arg("attention_mask"),
           py::call_guard<py::gil_scoped_release>(), "Token states [B, T, H].")
      .def("embed", &Encoder::embed, py::arg("input_ids"), py::arg("attention_mask"),
           py::call_guard<py::gil_scoped_release>(), "Sentence embeddings [B, H] (pooled, maybe normalised).");
  m.def(
      "load_encoder",
      [](const std::string& dir, const std::string& device, const std::string& dtype) {
        py::gil_scoped_release release;
        return load_encoder(dir, parse_device(device), parse_dtype(dtype));
      },
      py::arg("path"), py::arg("device") = "cpu", py::arg("dtype") = "float32");

  // ---- eval ----
  py::class_<RougeScore>(m, "RougeScore")
      .def_readonly("precision", &RougeScore::precision)
      .def_readonly("recall", &RougeScore::recall)
      .def_readonly("fmeasure", &RougeScore::fmeasure);
  m.def(
      "rouge",
      [](const std::string& target, const std::string& prediction, bool stem) {
        const RougeSet r = rouge_all(target, prediction, stem);
        return std::map<std::string, RougeScore>{{"rouge1", r.rouge1}, {"rouge2", r.rouge2}, {"rougeL", r.rougeL}, {"rougeLsum", r.rougeLsum}};
      },
      py::arg("target"), py::arg("prediction"), py::arg("stem") = true);
  m.def("rouge_tokenize", &rouge_tokenize, py::arg("text"), py::arg("stem") = true);
  m.def("porter_stem", &porter_stem, py::arg("word"));
  m.def("coqa_normalize", &coqa_normalize, py::arg("text"));
  m.def("coqa_f1", &coqa_f1, py::arg("gold"), py::arg("prediction"));
  m.def("coqa_exact", &coqa_exact, py::arg("gold"), py::arg("prediction"));
  m.def(
      "coqa_turn_score",
      [](const std::vector<std::string>& golds, const std::string& pred) {
        const CoqaScore s = coqa_turn_score(golds, pred);
        return std::make_pair(s.f1, s.em);
      },
      py::arg("golds"), py::arg("prediction"), "(f1, em) of one turn, leave-one-out over several golds.");
  m.def("detokenize_ptb", &detokenize_ptb, py::arg("text"));
  m.def(
      "load_generation_task",
      [](const std::string& yaml, const std::string& split) {
        const Config c = Config::load_string(yaml, "<task>");
        auto task = create<GenerationTask>(c);
        const Split sp = split == "train" ? Split::kTrain : split == "dev" ? Split::kDev : Split::kTest;
        py::list out;
        for (const auto& ex : task->load(sp)) {
          py::dict d;
          d["id"] = ex.id;
          d["context"] = ex.context;
          d["question"] = ex.question;
          d["target"] = ex.target;
          d["references"] = ex.references;
          d["options"] = ex.options;
          d["answer_index"] = ex.answer_index;
          d["history"] = ex.history;
          d["prompt"] = task->user_text(ex);
          out.append(d);
        }
        return out;
      },
      py::arg("task_yaml"), py::arg("split"), "Examples of a generation task split (dicts), with their prompts.");

  // ---- routing ----
  m.def("router_distribution_features", &distribution_features, py::arg("backbone_logits"), py::arg("adapted_logits"),
        "[..., 5]: entropy (backbone, adapted), top probability (backbone, adapted), KL(adapted || backbone).");
  m.def("router_labels", &router_labels, py::arg("backbone_logits"), py::arg("adapted_logits"), py::arg("gold"));

  // ---- adapters ----
  py::class_<AdapterStepTiming>(m, "AdapterStepTiming")
      .def_readonly("seconds_per_step", &AdapterStepTiming::seconds_per_step)
      .def_readonly("final_loss", &AdapterStepTiming::final_loss)
      .def_readonly("trainable_parameters", &AdapterStepTiming::trainable_parameters);
  m.def("time_adapter_steps", &time_adapter_steps, py::arg("model"), py::arg("adapter_yaml"), py::arg("inputs"),
        py::arg("final_normed"), py::arg("gold"), py::arg("warmup") = 2, py::arg("steps") = 10, py::arg("lr") = 1e-3,
        py::arg("bf16_autocast") = false, py::call_guard<py::gil_scoped_release>(),
        "Seconds per adapter training step (forward, vocabulary projection, CE, backward, AdamW).");
  m.def("final_norm", [](CausalLM& model, const at::Tensor& h) { return model.final_norm(h); }, py::arg("model"), py::arg("hidden"));

  // ---- Symbolic-MoE ----
  py::class_<ModelPool>(m, "ModelPool")
      .def(py::init([](int64_t budget, const std::string& device, const std::string& dtype) {
             return std::make_unique<ModelPool>(budget, parse_device(device), parse_dtype(dtype));
           }),
           py::arg("budget_bytes"), py::arg("device") = "cpu", py::arg("dtype") = "float32")
      .def("acquire", [](ModelPool& p, const std::string& path) { return p.acquire(path)->model; }, py::arg("path"),
           py::call_guard<py::gil_scoped_release>(), "The model (loaded now if absent, evicting idle ones to fit).")
      .def("unload", &ModelPool::unload, py::arg("path"))
      .def_property_readonly("resident_bytes", &ModelPool::resident_bytes)
      .def_property_readonly("peak_resident_bytes", &ModelPool::peak_resident_bytes)
      .def_property_readonly("loads", &ModelPool::loads)
      .def_property_readonly("max_resident_models", &ModelPool::max_resident_models);
  m.def("estimate_model_bytes", [](const std::string& path, const std::string& dtype) { return estimate_model_bytes(path, parse_dtype(dtype)); },
        py::arg("path"), py::arg("dtype") = "float32");
  m.def(
      "moe_profiles",
      [](const std::vector<std::string>& experts, size_t vocab, const std::vector<std::vector<int64_t>>& skills,
         const std::vector<std::vector<bool>>& correct, double smoothing) {
        std::vector<moe::SkillTags> tags;
        for (const auto& s : skills) tags.push_back({s, std::vector<double>(s.size(), 1.0), ""});
        std::vector<std::pair<std::vector<double>, double>> out;
        for (const auto& p : moe::build_profiles(experts, vocab, tags, correct, smoothing)) out.emplace_back(p.skill, p.strength);
        return out;
      },
      py::arg("experts"), py::arg("vocab_size"), py::arg("skills"), py::arg("correct"), py::arg("smoothing") = 1.0,
      "(per-skill scores, strength) per expert from validation correctness.");
  m.def(
      "moe_recruit",
      [](const std::vector<std::pair<std::vector<double>, double>>& profiles, const std::vector<int64_t>& skills, int64_t k,
         const std::string& mode, double temperature, uint64_t seed, const std::string& key) {
        std::vector<moe::ModelProfile> ps;
        for (const auto& [s, st] : profiles) ps.push_back({"", s, st});
        moe::RecruitOptions o;
        o.k = k;
        o.mode = mode;
        o.temperature = temperature;
        o.seed = seed;
        return moe::recruit(moe::expert_scores(ps, {skills, std::vector<double>(skills.size(), 1.0), ""}), o, key);
      },
      py::arg("profiles"), py::arg("skills"), py::arg("k") = 2, py::arg("mode") = "topk", py::arg("temperature") = 1.0,
      py::arg("seed") = 0, py::arg("key") = "", "Recruited expert indices for an instance with `skills`.");
  bind_fed(m);
  bind_collab(m);
}

// models: causal LMs, generation and scoring, encoders.
#include <torch/extension.h>
#include <pybind11/functional.h>
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
#include "tandem/models/language_model.h"
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

void bind_models(py::module_& m) {
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
  py::class_<LanguageModel, std::shared_ptr<LanguageModel>>(m, "LanguageModel")
      .def_property_readonly("model", &LanguageModel::model_ptr)
      .def_property_readonly("tokenizer", &LanguageModel::tokenizer_ptr, "the tokenizer (an error when the checkpoint has none)")
      .def_property_readonly("has_tokenizer", &LanguageModel::has_tokenizer)
      .def_property_readonly("chat_template", &LanguageModel::chat_ptr)
      .def_property_readonly("stop_ids", &LanguageModel::stop_ids)
      .def_property_readonly("path", &LanguageModel::path);
  m.def(
      "load_language_model",
      [](const std::string& path, const std::string& device, const std::string& dtype, const std::string& chat_template) {
        py::gil_scoped_release release;
        return load_language_model(path, parse_device(device), parse_dtype(dtype), chat_template);
      },
      py::arg("path"), py::arg("device") = "cpu", py::arg("dtype") = "float32", py::arg("chat_template") = "auto",
      "Model, tokenizer, chat template and stop ids of a checkpoint, as every tandem system loads them.");
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
  m.def("final_norm", [](CausalLM& model, const at::Tensor& h) { return model.final_norm(h); }, py::arg("model"), py::arg("hidden"));

}

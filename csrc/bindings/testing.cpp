// tandem._C._testing: hooks for tests and benchmarks only (zero-copy probes, adapter-step timing).
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
#include "tandem/models/encoder.h"
#include "tandem/models/generation.h"
#include "tandem/text/tokenizer.h"
#include "tandem/eval/coqa_metric.h"
#include "tandem/eval/porter_stemmer.h"
#include "tandem/eval/rouge.h"
#include "tandem/data/generation_tasks.h"
#include "tandem/data/summarization.h"
#include "tandem/spa/router.h"
#include "tandem/peft/adapter.h"
#include "benchmarks/adapter_bench.h"
#include "benchmarks/read_bandwidth.h"
#include "tandem/moe/model_pool.h"
#include "tandem/moe/profiles.h"

namespace py = pybind11;
using namespace tandem;

void bind_testing(py::module_& m) {
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

  py::class_<AdapterStepTiming>(m, "AdapterStepTiming")
      .def_readonly("seconds_per_step", &AdapterStepTiming::seconds_per_step)
      .def_readonly("final_loss", &AdapterStepTiming::final_loss)
      .def_readonly("trainable_parameters", &AdapterStepTiming::trainable_parameters);
  m.def("stream_read_gbs", &stream_read_gbs, py::arg("buffer"), py::arg("repeats") = 5,
        "GB/s of a streaming read of `buffer` (all intra-op threads, prefetching as the decode kernels), median of repeats.");
  m.def("time_adapter_steps", &time_adapter_steps, py::arg("model"), py::arg("adapter_yaml"), py::arg("inputs"),
        py::arg("final_normed"), py::arg("gold"), py::arg("warmup") = 2, py::arg("steps") = 10, py::arg("lr") = 1e-3,
        py::arg("bf16_autocast") = false, py::call_guard<py::gil_scoped_release>(),
        "Seconds per adapter training step (forward, vocabulary projection, CE, backward, AdamW).");
  m.def(
      "adapter_forward",
      [](CausalLM& model, const std::string& adapter_yaml, const std::vector<at::Tensor>& inputs,
         const at::Tensor& final_normed, const std::optional<at::Tensor>& key_mask, uint64_t seed,
         const std::map<std::string, at::Tensor>& overrides) {
        // Builds an adapter from YAML on `model` (init_from_backbone included), runs one forward and
        // returns its outputs and parameters: the check against hand-written PyTorch references.
        torch::manual_seed(seed);
        const Config c = Config::load_string(adapter_yaml, "<adapter>");
        auto adapter = create<DeviceAdapter>(c, model.config());
        c.check_unused();
        adapter->init_from_backbone(model);
        torch::NoGradGuard ng;
        for (const auto& [name, value] : overrides) {
          auto* p = adapter->named_parameters().find(name);
          if (!p) throw std::invalid_argument("adapter has no parameter " + name);
          p->copy_(value);
        }
        auto out = adapter->forward(inputs, final_normed, key_mask.value_or(at::Tensor()), nullptr);
        py::dict params;
        for (const auto& p : adapter->named_parameters()) params[py::str(p.key())] = p.value().detach().clone();
        py::dict r;
        r["hidden"] = out.hidden;
        r["features"] = out.features;
        r["params"] = params;
        r["layers_read"] = adapter->layers_read();
        return r;
      },
      py::arg("model"), py::arg("adapter_yaml"), py::arg("inputs"), py::arg("final_normed"),
      py::arg("key_mask") = py::none(), py::arg("seed") = 0,
      py::arg("overrides") = std::map<std::string, at::Tensor>{});
  m.def(
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
      py::arg("model"), py::arg("input_ids"), py::arg("attention_mask"), py::arg("chunks"));
}

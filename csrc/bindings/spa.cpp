// spa: SideAdaptedLM (a trained run loaded and decoded from Python) and the router's features and labels.
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
#include "tandem/spa/routed_decoding.h"
#include "tandem/spa/side_adapted_lm.h"
#include "benchmarks/adapter_bench.h"
#include "tandem/moe/model_pool.h"
#include "tandem/moe/profiles.h"

namespace py = pybind11;
using namespace tandem;

void bind_spa(py::module_& m) {
  py::class_<spa::SideAdaptedLM, std::shared_ptr<spa::SideAdaptedLM>>(
      m, "SideAdaptedLM", "A frozen backbone + a trained plugin + (optionally) a router: SPA's model.")
      .def_static(
          "load_run",
          [](const std::string& run_dir, std::shared_ptr<CausalLM> backbone, const std::string& device, const std::string& dtype) {
            py::gil_scoped_release release;
            return std::shared_ptr<spa::SideAdaptedLM>(
                spa::SideAdaptedLM::load_run(run_dir, std::move(backbone), parse_device(device), parse_dtype(dtype)));
          },
          py::arg("run_dir"), py::arg("backbone"), py::arg("device") = "cpu", py::arg("dtype") = "float32")
      .def_property_readonly("layers_read", [](const spa::SideAdaptedLM& lm) { return lm.plugin().layers_read(); })
      .def_property_readonly("has_router", [](const spa::SideAdaptedLM& lm) { return lm.router() != nullptr; })
      .def("device_footprint", [](const spa::SideAdaptedLM& lm) { return lm.device_footprint().dump(); })
      .def(
          "generate",
          [](spa::SideAdaptedLM& lm, const std::vector<std::vector<int64_t>>& prompts, int64_t max_new_tokens,
             const std::vector<int64_t>& stop_ids, int64_t pad_id, int64_t batch) {
            py::gil_scoped_release release;
            DecodeOptions d;
            d.max_new_tokens = max_new_tokens;
            d.pad_id = pad_id;
            const auto r = spa::decode_all(lm.backbone(), &lm, prompts, stop_ids, d, batch, "generate");
            return std::make_tuple(r.tokens, r.routes, r.metrics().dump());
          },
          py::arg("prompts"), py::arg("max_new_tokens"), py::arg("stop_ids"), py::arg("pad_id") = 0, py::arg("batch") = 8);
  m.def("router_distribution_features", &distribution_features, py::arg("backbone_logits"), py::arg("adapted_logits"),
        "[..., 5]: entropy (backbone, adapted), top probability (backbone, adapted), KL(adapted || backbone).");
  m.def("router_labels", &router_labels, py::arg("backbone_logits"), py::arg("adapted_logits"), py::arg("gold"));
}

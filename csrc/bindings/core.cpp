// core: registry, configs (resolve, explain, run), runtime, progress.
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

void bind_core(py::module_& m) {
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
  m.def(
      "set_decode_kernels", [](const std::string& k) { set_decode_kernels(parse_decode_kernels(k)); }, py::arg("kernels"),
      "\"exact\" or \"int8_activations\": how CPU decoding multiplies quantized weights (a run sets it from its config).");
  m.def("decode_kernels", [] { return decode_kernels() == DecodeKernels::kExact ? std::string("exact") : std::string("int8_activations"); });
  m.def(
      "set_cpu_kernels", [](const std::string& k) { set_cpu_kernels(parse_cpu_kernels(k)); }, py::arg("kernels"),
      "\"auto\" or \"portable\": the packed CPU kernels' instructions (a run sets it from its config).");
  m.def("cpu_kernels", [] { return cpu_kernels() == CpuKernels::kAuto ? std::string("auto") : std::string("portable"); });
  m.def("available_cores", &available_cores);
  m.def("data_root", &data_root);
}

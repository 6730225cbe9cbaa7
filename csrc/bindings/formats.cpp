// core/formats: safetensors and GGUF files.
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
#include "tandem/models/portable_kernels.h"
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

void bind_formats(py::module_& m) {
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
          "x [M, cols] times the tensor's transpose, read from its quantized blocks (portable: the Eigen kernels).")
      .def(
          "packed_matmul_int8",
          [](const gguf::GgufFile& f, const std::string& name, const at::Tensor& x, bool portable) {
            const auto& info = f.info(name);
            PackedWeight w{static_cast<gguf::GgmlType>(info.type), f.raw(name).view({info.ne[1], -1}), info.ne[1], info.ne[0]};
            return packed_matmul_int8(x, w, portable);
          },
          py::arg("name"), py::arg("x"), py::arg("portable") = false,
          "The same product with x quantized per 32 values to int8 (decode_kernels: int8_activations).");
  m.def("portable_kernels_build", &portable::instruction_sets,
        "Which build of the portable packed kernels this CPU runs and Eigen's instruction sets in it.");
}

// data and eval: metrics, dataset readers, tasks.
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

void bind_data_eval(py::module_& m) {
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
}

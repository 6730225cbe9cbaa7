// text: tokenizers.
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
#include "tandem/text/chat_template.h"
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

void bind_text(py::module_& m) {
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
      .def(
          "decode_bytes",
          [](const text::Tokenizer& t, const std::vector<int64_t>& ids, bool skip_special) {
            return py::bytes(t.decode(ids, skip_special));  // may end inside a UTF-8 sequence (a cut generation)
          },
          py::arg("ids"), py::arg("skip_special") = false)
      .def("token_to_id", &text::Tokenizer::token_to_id)
      .def("id_to_token", &text::Tokenizer::id_to_token)
      .def_property_readonly("vocab_size", &text::Tokenizer::vocab_size)
      .def_readonly("bos_id", &text::Tokenizer::bos_id)
      .def_readonly("eos_id", &text::Tokenizer::eos_id)
      .def_readonly("pad_id", &text::Tokenizer::pad_id)
      .def_property_readonly("add_bos", &text::Tokenizer::add_bos)
      .def_readonly("prefix_ids", &text::Tokenizer::prefix_ids, "ids encode_for_model puts before every text")
      .def_readonly("suffix_ids", &text::Tokenizer::suffix_ids, "ids encode_for_model puts after every text")
      .def_readonly("chat_template", &text::Tokenizer::chat_template, "the Jinja chat template the tokenizer files carry")
      .def("encode_for_model", &text::Tokenizer::encode_for_model, py::arg("text"),
           "encode() with BOS first when the model expects it.");
  m.def("load_tokenizer", &text::load_tokenizer, py::arg("path"),
        "Loads a tokenizer.json, a SentencePiece tokenizer.model, an HF model directory, or a .gguf file's vocabulary.");
  py::class_<text::ChatTemplate, std::shared_ptr<text::ChatTemplate>>(m, "ChatTemplate")
      .def("render",
           [](const text::ChatTemplate& t, const std::vector<std::map<std::string, std::string>>& messages) {
             std::vector<text::ChatMessage> ms;
             for (const auto& d : messages) {
               auto r = d.find("role"), c = d.find("content");
               if (r == d.end() || c == d.end()) throw py::value_error("each message needs 'role' and 'content'");
               ms.push_back({r->second, c->second});
             }
             return t.render(ms);
           },
           py::arg("messages"), "The prompt text for messages [{role, content}], ending where the reply begins (no BOS).")
      .def_property_readonly("end_of_turn", &text::ChatTemplate::end_of_turn);
  m.def("chat_template", &text::make_chat_template, py::arg("name"), py::arg("tokenizer"),
        "The chat template `name` (a family, or \"auto\": the tokenizer's own template's family).");
  m.def("detect_chat_family", &text::detect_chat_family, py::arg("jinja"),
        "The family of a Jinja chat template (llama3, chatml, gemma, phi3, llama2, mistral), or \"\".");
}

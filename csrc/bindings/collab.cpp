// tandem._C bindings for collab/ (Minions): LM clients, constrained JSON decoding, the
// OpenAI-compatible server and transcript rendering. Bindings only.
#include <torch/extension.h>
#include <pybind11/stl.h>

#include "tandem/collab/json_constraint.h"
#include "tandem/collab/lm_client.h"
#include "tandem/collab/openai_server.h"
#include "tandem/collab/protocol.h"
#include "tandem/core/config.h"
#include "tandem/core/runtime.h"
#include "tandem/data/long_doc_qa.h"

namespace py = pybind11;
using namespace tandem;

namespace {

nlohmann::json to_json(const py::object& o) {
  if (o.is_none()) return nullptr;
  return nlohmann::json::parse(py::module_::import("json").attr("dumps")(o).cast<std::string>());
}

collab::ChatRequest make_request(const std::vector<std::pair<std::string, std::string>>& messages, int64_t max_tokens,
                                 double temperature, uint64_t seed, const py::object& schema) {
  collab::ChatRequest r;
  for (const auto& [role, content] : messages) r.messages.push_back({role, content});
  r.max_tokens = max_tokens;
  r.temperature = temperature;
  r.seed = seed;
  r.json_schema = to_json(schema);
  return r;
}

py::dict response_dict(const collab::ChatResponse& r) {
  return py::dict(py::arg("content") = r.content, py::arg("prompt_tokens") = r.prompt_tokens,
                  py::arg("completion_tokens") = r.completion_tokens, py::arg("finish_reason") = r.finish_reason,
                  py::arg("attempts") = r.attempts);
}

collab::ServeOptions serve_options(const std::string& host, int port, int64_t max_batch, double window_ms, int http_threads,
                                   double read_timeout_s, double header_timeout_s, int64_t long_request_tokens,
                                   const std::string& api_key) {
  collab::ServeOptions o;
  o.host = host;
  o.port = port;
  o.max_batch = max_batch;
  o.batch_window_ms = window_ms;
  o.http_threads = http_threads;
  o.read_timeout_s = read_timeout_s;
  o.header_timeout_s = header_timeout_s;
  o.long_request_tokens = long_request_tokens;
  o.api_key = api_key;
  return o;
}

RuntimeOptions runtime(const std::string& device, const std::string& dtype, int threads) {
  RuntimeOptions rt;
  rt.device = parse_device(device);
  rt.dtype = parse_dtype(dtype);
  rt.threads = threads;
  rt.apply();
  return rt;
}

}  // namespace

void bind_collab(py::module_& m) {

  py::class_<collab::LMClient, std::shared_ptr<collab::LMClient>>(m, "LMClient", "An LM client built from YAML (type: local | openai | replay).")
      .def(py::init([](const std::string& yaml, const std::string& device, const std::string& dtype, int threads) {
             Config c = Config::load_string(yaml, "<client>");
             const RuntimeOptions rt = runtime(device, dtype, threads);
             py::gil_scoped_release release;
             return std::shared_ptr<collab::LMClient>(create<collab::LMClient>(c, rt).release());
           }),
           py::arg("yaml"), py::arg("device") = "cpu", py::arg("dtype") = "float32", py::arg("threads") = 0)
      .def(
          "chat",
          [](collab::LMClient& c, const std::vector<std::vector<std::pair<std::string, std::string>>>& batch,
             int64_t max_tokens, double temperature, uint64_t seed, const py::object& schema) {
            std::vector<collab::ChatRequest> reqs;
            for (const auto& msgs : batch) reqs.push_back(make_request(msgs, max_tokens, temperature, seed, schema));
            std::vector<collab::ChatResponse> out;
            {
              py::gil_scoped_release release;
              out = c.chat(reqs);
            }
            py::list l;
            for (const auto& r : out) l.append(response_dict(r));
            return l;
          },
          py::arg("batch"), py::arg("max_tokens") = 256, py::arg("temperature") = 0.0, py::arg("seed") = 0,
          py::arg("json_schema") = py::none(),
          "Replies to a batch of conversations ([(role, content), ...] each), in order.")
      .def("describe", &collab::LMClient::describe);

  py::class_<collab::LocalEngine, std::shared_ptr<collab::LocalEngine>>(m, "LocalEngine")
      .def(py::init([](const std::string& model, const std::string& device, const std::string& dtype, int threads,
                       const std::string& tmpl) {
             auto rt = runtime(device, dtype, threads);
             py::gil_scoped_release release;
             return std::make_shared<collab::LocalEngine>(model, rt, tmpl);
           }),
           py::arg("model"), py::arg("device") = "cpu", py::arg("dtype") = "float32", py::arg("threads") = 0,
           py::arg("chat_template") = "auto")
      .def("name", &collab::LocalEngine::name);

  m.def(
      "check_serve_options",
      [](const std::string& host, int port, int64_t max_batch, double window_ms, int http_threads, double read_timeout_s,
         double header_timeout_s, int64_t long_request_tokens) {
        serve_options(host, port, max_batch, window_ms, http_threads, read_timeout_s, header_timeout_s, long_request_tokens, "")
            .validate();
      },
      "Range-checks `tandem serve` options (ValueError naming the flag).");

  py::class_<collab::OpenAIServer, std::shared_ptr<collab::OpenAIServer>>(m, "OpenAIServer")
      .def(py::init([](std::shared_ptr<collab::LocalEngine> e, const std::string& host, int port, int64_t max_batch,
                       double window_ms, int http_threads, double read_timeout_s, double header_timeout_s,
                       int64_t long_request_tokens, const std::string& api_key) {
             return std::make_shared<collab::OpenAIServer>(
                 std::move(e), serve_options(host, port, max_batch, window_ms, http_threads, read_timeout_s,
                                             header_timeout_s, long_request_tokens, api_key));
           }),
           py::arg("engine"), py::arg("host") = "127.0.0.1", py::arg("port") = 0, py::arg("max_batch") = 8,
           py::arg("batch_window_ms") = 10.0, py::arg("http_threads") = collab::ServeOptions{}.http_threads,
           py::arg("read_timeout_s") = collab::ServeOptions{}.read_timeout_s,
           py::arg("header_timeout_s") = collab::ServeOptions{}.header_timeout_s,
           py::arg("long_request_tokens") = collab::ServeOptions{}.long_request_tokens, py::arg("api_key") = "")
      .def("start", &collab::OpenAIServer::start, "Serves on background threads; returns the port.")
      .def("run_forever", &collab::OpenAIServer::run_forever, py::call_guard<py::gil_scoped_release>())
      .def("stop", &collab::OpenAIServer::stop, py::call_guard<py::gil_scoped_release>())
      .def("port", &collab::OpenAIServer::port)
      .def("stats", [](const collab::OpenAIServer& s) {
        auto st = s.stats();
        return py::dict(py::arg("requests") = st.requests, py::arg("batches") = st.batches,
                        py::arg("max_batch_seen") = st.max_batch_seen, py::arg("cancelled") = st.cancelled,
                        py::arg("rejected") = st.rejected, py::arg("header_timeouts") = st.header_timeouts);
      });

  m.def(
      "generate_json",
      [](collab::LocalEngine& e, const std::vector<std::string>& prompts, const py::object& schema, int64_t max_new_tokens,
         double temperature, uint64_t seed) {
        auto s = collab::parse_json_schema(to_json(schema), "json_schema");
        std::vector<std::vector<int64_t>> ids;
        for (const auto& p : prompts) ids.push_back(e.tokenizer().encode_for_model(p));
        std::vector<collab::ConstrainedResult> res;
        {
          py::gil_scoped_release release;
          res = collab::generate_json(e.model(), e.tokenizer(), ids, s, max_new_tokens, temperature, seed);
        }
        py::list l;
        for (const auto& r : res)
          l.append(py::dict(py::arg("text") = r.text, py::arg("tokens") = r.tokens, py::arg("chosen") = r.chosen,
                            py::arg("finish_reason") = r.finish_reason));
        return l;
      },
      py::arg("engine"), py::arg("prompts"), py::arg("json_schema"), py::arg("max_new_tokens") = 128,
      py::arg("temperature") = 0.0, py::arg("seed") = 0,
      "Constrained generation from raw prompts (no chat template); every text parses as the schema.");
  m.def("job_output_schema", [] { return collab::job_output_schema().dump(); });
  m.def("transcript_markdown", [](const std::string& j) { return collab::transcript_markdown(nlohmann::json::parse(j)); },
        py::arg("transcript_json"));
  m.def("answer_f1", &answer_f1, py::arg("references"), py::arg("prediction"));
  m.def("chunk_text", &chunk_text, py::arg("text"), py::arg("chunk_chars"));
  m.def(
      "load_long_doc_qa",
      [](const std::string& yaml) {
        Config c = Config::load_string(yaml, "<data>");
        auto ds = create<LongDocDataset>(c);
        py::list out;
        for (const auto& e : ds->load())
          out.append(py::dict(py::arg("id") = e.id, py::arg("document") = e.document, py::arg("question") = e.question,
                              py::arg("answers") = e.answers, py::arg("meta") = e.meta.dump()));
        return out;
      },
      py::arg("yaml"));
}

// Symbolic-MoE: the model pool, profiles, recruiting, and the method as named steps (Pipeline).
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
#include "tandem/models/model_paths.h"
#include "tandem/moe/job_transport.h"
#include "tandem/moe/pipeline.h"
#include "tandem/moe/profiles.h"

namespace py = pybind11;
using namespace tandem;

void bind_moe(py::module_& m) {
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
  // The method's records and steps, one binding per struct (moe/pipeline.h).
  py::class_<McInstance>(m, "McInstance")
      .def(py::init<>())
      .def_readwrite("id", &McInstance::id)
      .def_readwrite("dataset", &McInstance::dataset)
      .def_readwrite("question", &McInstance::question)
      .def_readwrite("n_options", &McInstance::n_options)
      .def_readwrite("gold", &McInstance::gold)
      .def_readwrite("category", &McInstance::category)
      .def_readwrite("stem", &McInstance::stem)
      .def_readwrite("options", &McInstance::options);
  m.def("read_mc_instances", &read_mc_instances, py::arg("path"), py::arg("dataset"), py::arg("limit") = 0,
        py::arg("skip_bad_lines") = false, "Instances of one Symbolic-MoE split file.");
  py::class_<moe::ExpertSpec>(m, "ExpertSpec")
      .def(py::init([](std::string name, std::string model, std::string system, std::string adapter_run, std::string answer) {
             if (answer != "letter" && answer != "loglik")
               throw std::invalid_argument("ExpertSpec answer: expected letter or loglik, got '" + answer + "'");
             return moe::ExpertSpec{std::move(name), resolve_model_path(model), std::move(system), std::move(adapter_run), std::move(answer)};
           }),
           py::arg("name"), py::arg("model"), py::arg("system") = "", py::arg("adapter_run") = "", py::arg("answer") = "letter")
      .def_readonly("name", &moe::ExpertSpec::name)
      .def_readonly("answer", &moe::ExpertSpec::answer)
      .def_readonly("model", &moe::ExpertSpec::model);
  py::class_<moe::Answer>(m, "Answer")
      .def_readonly("choice", &moe::Answer::choice)
      .def_readonly("logprobs", &moe::Answer::logprobs);
  py::class_<moe::SkillTags>(m, "SkillTags")
      .def_readonly("skills", &moe::SkillTags::skills)
      .def_readonly("scores", &moe::SkillTags::scores)
      .def_readonly("keywords", &moe::SkillTags::keywords);
  py::class_<moe::ModelProfile>(m, "ModelProfile")
      .def_readonly("expert", &moe::ModelProfile::expert)
      .def_readonly("skill", &moe::ModelProfile::skill)
      .def_readonly("strength", &moe::ModelProfile::strength);
  py::class_<moe::SkillExtractor, std::shared_ptr<moe::SkillExtractor>>(m, "SkillExtractor")
      .def(py::init([](const std::string& yaml, const std::string& device, const std::string& dtype) {
             RuntimeOptions rt;
             rt.device = parse_device(device);
             rt.dtype = parse_dtype(dtype);
             const Config c = Config::load_string(yaml, "<skills>");
             std::shared_ptr<moe::SkillExtractor> s(create<moe::SkillExtractor>(c, static_cast<const RuntimeOptions&>(rt)).release());
             c.check_unused();
             return s;
           }),
           py::arg("config_yaml"), py::arg("device") = "cpu", py::arg("dtype") = "float32")
      .def("vocabulary", &moe::SkillExtractor::vocabulary);
  py::class_<moe::AggregatorChoice>(m, "AggregatorChoice")
      .def_readonly("expert", &moe::AggregatorChoice::expert)
      .def_readonly("validation", &moe::AggregatorChoice::validation);
  py::class_<moe::Pipeline>(m, "MoePipeline")
      .def(py::init([](std::vector<moe::ExpertSpec> experts, moe::SkillExtractor& skills, ModelPool& pool, int64_t k,
                       const std::string& mode, double temperature, uint64_t seed, double smoothing, int64_t batch_size,
                       const std::string& executor) {
             moe::RecruitOptions o;
             o.k = k;
             o.mode = mode;
             o.temperature = temperature;
             o.seed = seed;
             moe::ExecutorOptions eo;
             eo.batch_size = batch_size;
             eo.type = executor;
             return std::make_unique<moe::Pipeline>(std::move(experts), skills, pool, o, smoothing, eo);
           }),
           py::arg("experts"), py::arg("skills"), py::arg("pool"), py::arg("k") = 2, py::arg("mode") = "topk",
           py::arg("temperature") = 1.0, py::arg("seed") = 0, py::arg("smoothing") = 1.0, py::arg("batch_size") = 8, py::arg("executor") = "batched_by_expert",
           py::keep_alive<1, 3>(), py::keep_alive<1, 4>())
      .def("tag", &moe::Pipeline::tag, py::arg("instances"), py::call_guard<py::gil_scoped_release>())
      .def("answer_all", &moe::Pipeline::answer_all, py::arg("instances"), py::call_guard<py::gil_scoped_release>())
      .def("build_profiles", &moe::Pipeline::build_profiles, py::arg("validation"), py::arg("tags"), py::arg("answers"))
      .def("recruit", &moe::Pipeline::recruit, py::arg("instances"), py::arg("tags"), py::arg("profiles"))
      .def("choose_aggregator", &moe::Pipeline::choose_aggregator, py::arg("candidates"), py::arg("validation"),
           py::arg("recruited"), py::arg("answers"), py::call_guard<py::gil_scoped_release>())
      .def("aggregate", &moe::Pipeline::aggregate, py::arg("aggregator"), py::arg("instances"), py::arg("recruited"),
           py::arg("answers"), py::call_guard<py::gil_scoped_release>());

  m.def(
      "moe_register_transport_executor",
      [](const std::string& name, py::function fn) {
        // The runtime's Python callable (JSON request str -> JSON reply str), called with the GIL.
        auto keep = std::make_shared<py::function>(std::move(fn));
        moe::register_transport_executor(name, [keep](const nlohmann::json& req) {
          py::gil_scoped_acquire gil;
          const std::string reply = (*keep)(req.dump()).cast<std::string>();
          return nlohmann::json::parse(reply);
        });
      },
      py::arg("name"), py::arg("transport"),
      "Registers executor `name`: every run's jobs go to `transport(request_json) -> reply_json` (tandem moe launch).");
  m.def(
      "moe_answer_jobs_json",
      [](const std::string& request, ModelPool& pool) {
        py::gil_scoped_release release;
        return moe::answer_jobs_json(nlohmann::json::parse(request), pool).dump();
      },
      py::arg("request"), py::arg("pool"), "Answers a transport request on this process's pool (a rank's share), as JSON.");
}

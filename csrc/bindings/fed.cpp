// tandem._C bindings for fed/ (FedIns): the Federation a Python runtime drives over
// torch.distributed, and its client updates. Bindings only; the logic is in libtandem.
#include <torch/extension.h>
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "tandem/core/config.h"
#include "tandem/core/runtime.h"
#include "tandem/fed/federation.h"

namespace py = pybind11;
using namespace tandem;

void bind_fed(py::module_& m) {
  py::class_<fed::ClientUpdate>(m, "FedClientUpdate", "What one client sends back after its local round.")
      .def(py::init<>())
      .def_readwrite("client", &fed::ClientUpdate::client)
      .def_readwrite("num_examples", &fed::ClientUpdate::num_examples)
      .def_readwrite("state", &fed::ClientUpdate::state)
      .def_readwrite("usage", &fed::ClientUpdate::usage)
      .def_readwrite("loss", &fed::ClientUpdate::loss)
      .def_readwrite("ok", &fed::ClientUpdate::ok)
      .def_readwrite("sent", &fed::ClientUpdate::sent)
      .def_readwrite("error", &fed::ClientUpdate::error);

  py::class_<fed::RoundRecord>(m, "FedRoundRecord")
      .def_readonly("round", &fed::RoundRecord::round)
      .def_readonly("clients_sampled", &fed::RoundRecord::clients_sampled)
      .def_readonly("clients_ok", &fed::RoundRecord::clients_ok)
      .def_readonly("bytes_up", &fed::RoundRecord::bytes_up)
      .def_readonly("bytes_down", &fed::RoundRecord::bytes_down)
      .def_readonly("train_loss", &fed::RoundRecord::train_loss)
      .def_readonly("accuracy", &fed::RoundRecord::accuracy)
      .def_readonly("seconds", &fed::RoundRecord::seconds)
      .def_readonly("dropped", &fed::RoundRecord::dropped);

  py::class_<fed::Federation, std::shared_ptr<fed::Federation>>(
      m, "Federation",
      "A federated run built from a YAML config (sections backbone, data, partition, model, strategy, fed):\n"
      "frozen features, client partitions, the global model and the aggregation strategy.\n"
      "run() = the server's round loop (in-process by default); train_client() and aggregate() are the\n"
      "two halves a distributed runtime calls; global_state() / set_global_state() move the model.")
      .def(py::init([](const std::string& path, const std::vector<std::string>& overrides) {
             py::gil_scoped_release release;
             Config cfg = Config::load_file(path, overrides);
             auto rt = RuntimeOptions::from_config(cfg);
             rt.apply();
             return std::make_shared<fed::Federation>(cfg, rt);
           }),
           py::arg("config"), py::arg("overrides") = std::vector<std::string>{})
      .def("num_clients", &fed::Federation::num_clients, "Number of federated clients.")
      .def("num_classes", &fed::Federation::num_classes)
      .def("labels", &fed::Federation::labels)
      .def("partition", &fed::Federation::partition, "Training-example indices per client.")
      .def("describe", [](const fed::Federation& f) { return f.describe().dump(); }, "JSON text: clients, classes, sizes, partition summary.")
      .def("sample_clients", &fed::Federation::sample_clients, py::arg("round"))
      .def("state_names", &fed::Federation::state_names, "Names of the tensors clients and server exchange, in wire order.")
      .def("global_state", &fed::Federation::global_state, "Copies of the global model's trainable tensors.")
      .def("set_global_state", &fed::Federation::set_global_state, py::arg("state"))
      .def("reset_global", &fed::Federation::reset_global)
      .def("state_bytes", &fed::Federation::state_bytes)
      .def("pool_size", [](fed::Federation& f) { return f.model().pool_size(); })
      .def("train_client", &fed::Federation::train_client, py::arg("client"), py::arg("round"), py::arg("global_state"),
           py::call_guard<py::gil_scoped_release>(), "One client's local round from `global_state`; returns its update.")
      .def("aggregate", &fed::Federation::aggregate, py::arg("updates"), py::call_guard<py::gil_scoped_release>(),
           "Merges the updates that arrived (failed ones are skipped) into the global model.")
      .def("evaluate", &fed::Federation::evaluate, py::call_guard<py::gil_scoped_release>(), "Accuracy of the global model on the test split.")
      .def("test_choices", &fed::Federation::test_choices, py::arg("limit"))
      .def("test_queries", [](const fed::Federation& f) { return f.test_set().query; })
      .def("train_features",
           [](const fed::Federation& f) {
             const auto& t = f.train_set();
             return py::dict(py::arg("lower") = t.lower, py::arg("mask") = t.mask, py::arg("query") = t.query,
                             py::arg("label") = t.label);
           },
           "The cached frozen features of the training split (rows as in partition()).")
      .def(
          "run",
          [](fed::Federation& f, py::object transport, const std::string& checkpoint_dir,
             const std::vector<int64_t>& only_clients) {
            fed::Transport t = transport.is_none() ? f.simulation_transport()
                                                   : transport.cast<fed::Transport>();
            py::gil_scoped_release release;
            return f.run(t, checkpoint_dir, only_clients);
          },
          py::arg("transport") = py::none(), py::arg("checkpoint_dir") = "", py::arg("only_clients") = std::vector<int64_t>{},
          "Round loop; transport(round, clients, global_state) -> [FedClientUpdate] (None = in-process simulation).");
}

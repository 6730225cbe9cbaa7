// tandem._C: pybind11 bindings only, one file per source folder; no logic here (every function
// forwards to libtandem). torch.Tensor crosses in both directions without copies.
#include <torch/extension.h>

namespace py = pybind11;

void bind_errors(py::module_& m);     // errors.cpp: tandem's exception types and the translator
void bind_core(py::module_& m);       // core.cpp
void bind_formats(py::module_& m);    // formats.cpp
void bind_text(py::module_& m);       // text.cpp
void bind_models(py::module_& m);     // models.cpp
void bind_data_eval(py::module_& m);  // data_eval.cpp
void bind_spa(py::module_& m);        // spa.cpp
void bind_moe(py::module_& m);        // moe.cpp
void bind_fed(py::module_& m);        // fed.cpp
void bind_collab(py::module_& m);     // collab.cpp
void bind_testing(py::module_& m);    // testing.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "tandem C++ core (libtandem) bindings";
  bind_errors(m);
  bind_core(m);
  bind_formats(m);
  bind_text(m);
  bind_models(m);
  bind_data_eval(m);
  bind_spa(m);
  bind_moe(m);
  bind_fed(m);
  bind_collab(m);
  auto testing = m.def_submodule("_testing", "hooks for tests and benchmarks only");
  bind_testing(testing);
}

// Exceptions crossing into Python: tandem's error types as Python classes, and one translator
// that keeps every message intact. Messages quote file contents, so a stray byte must not turn
// a "file:line: ..." error into a UnicodeDecodeError: invalid UTF-8 is escaped as \xNN. Torch
// errors lose their C++ backtrace (the message is what a user needs). Bindings only.
#include <torch/extension.h>

#include "tandem/collab/lm_client.h"
#include "tandem/core/config.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/core/utf8.h"
#include "tandem/core/formats/gguf.h"

namespace py = pybind11;
using namespace tandem;

namespace {

PyObject* g_config_error = nullptr;
PyObject* g_safetensors_error = nullptr;
PyObject* g_gguf_error = nullptr;
PyObject* g_remote_error = nullptr;

void raise(PyObject* type, const char* what) { PyErr_SetString(type, escape_invalid_utf8(what).c_str()); }

void translate(std::exception_ptr p) {
  if (!p) return;
  try {
    std::rethrow_exception(p);
  } catch (py::error_already_set& e) {  // a Python error passing through C++: as it was
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const ConfigError& e) {
    raise(g_config_error, e.what());
  } catch (const SafetensorsError& e) {
    raise(g_safetensors_error, e.what());
  } catch (const gguf::GgufError& e) {
    raise(g_gguf_error, e.what());
  } catch (const collab::RemoteError& e) {
    raise(g_remote_error, e.what());
  } catch (const c10::IndexError& e) {
    raise(PyExc_IndexError, e.what_without_backtrace());
  } catch (const c10::ValueError& e) {
    raise(PyExc_ValueError, e.what_without_backtrace());
  } catch (const c10::TypeError& e) {
    raise(PyExc_TypeError, e.what_without_backtrace());
  } catch (const c10::OutOfMemoryError& e) {
    raise(PyExc_MemoryError, e.what_without_backtrace());
  } catch (const c10::Error& e) {
    raise(PyExc_RuntimeError, e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    raise(PyExc_MemoryError, "out of memory (std::bad_alloc): a size read from a file or config is too large for this machine");
  } catch (const std::invalid_argument& e) {
    raise(PyExc_ValueError, e.what());
  } catch (const std::domain_error& e) {
    raise(PyExc_ValueError, e.what());
  } catch (const std::length_error& e) {
    raise(PyExc_ValueError, e.what());
  } catch (const std::out_of_range& e) {
    raise(PyExc_IndexError, e.what());
  } catch (const std::overflow_error& e) {
    raise(PyExc_OverflowError, e.what());
  } catch (const std::exception& e) {
    raise(PyExc_RuntimeError, e.what());
  }
}

}  // namespace

void bind_errors(py::module_& m) {
  // ValueError subclasses, so `except ValueError` catches every bad-input error.
  g_config_error = py::register_exception<ConfigError>(m, "ConfigError", PyExc_ValueError).ptr();
  g_safetensors_error = py::register_exception<SafetensorsError>(m, "SafetensorsError", PyExc_ValueError).ptr();
  g_gguf_error = py::register_exception<gguf::GgufError>(m, "GgufError", PyExc_ValueError).ptr();
  g_remote_error = py::register_exception<collab::RemoteError>(m, "RemoteError", PyExc_RuntimeError).ptr();
  // Module-local: tried before any translator another extension (torch's) registered globally.
  py::register_local_exception_translator(translate);
}

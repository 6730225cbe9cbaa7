// Precompiled header for the pybind11 module: torch/extension.h brings torch + pybind11 casters.
#pragma once
#include <torch/extension.h>
#include <pybind11/stl.h>
#include <pybind11/functional.h>

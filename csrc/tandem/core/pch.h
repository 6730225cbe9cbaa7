// Precompiled header for libtandem, its tests and benchmarks: torch is the expensive include.
#pragma once
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

